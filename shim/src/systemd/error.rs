//! Errors talking to systemd. D-Bus errors are classified by their error *name*
//! (`org.freedesktop.systemd1.NoSuchUnit`), never by message text.

use std::time::Duration;

/// D-Bus error names systemd uses that we act on.
pub mod names {
    /// No unit of that name is loaded.
    pub const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
    /// A unit of that name already exists (StartTransientUnit).
    pub const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
    /// The object path does not exist (a unit that was collected).
    pub const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
}

/// What went wrong talking to systemd.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// Could not connect to systemd.
    #[error("connecting to systemd at {address}: {source}")]
    Connect {
        /// Where we tried.
        address: String,
        /// Why it failed.
        #[source]
        source: zbus::Error,
    },
    /// A method call returned a D-Bus error.
    #[error("systemd {method} for {target} failed: {name}: {message}")]
    Call {
        /// The method.
        method: &'static str,
        /// The unit or object it concerned.
        target: String,
        /// The D-Bus error name.
        name: String,
        /// The error message.
        message: String,
    },
    /// A method call failed below D-Bus error level (I/O, encoding, timeout).
    #[error("systemd {method} for {target}: {source}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The unit or object it concerned.
        target: String,
        /// The underlying error.
        #[source]
        source: zbus::Error,
    },
    /// A job did not finish within its deadline.
    #[error("systemd job for {unit} did not finish within {timeout:?}")]
    JobTimeout {
        /// The unit.
        unit: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The signal router stopped: the connection to systemd is gone.
    #[error("the connection to systemd was lost while waiting for a job of {unit}")]
    ConnectionLost {
        /// The unit whose job was awaited.
        unit: String,
    },
}

impl SystemdError {
    /// Wraps a zbus error from calling `method` on `target`.
    pub(crate) fn from_call(method: &'static str, target: &str, error: zbus::Error) -> SystemdError {
        let target = target.to_string();
        match error {
            zbus::Error::MethodError(name, message, _) => SystemdError::Call {
                method,
                target,
                name: name.as_str().to_string(),
                message: message.unwrap_or_default(),
            },
            zbus::Error::FDO(fdo) => {
                let (name, message) = fdo_name_and_message(&fdo);
                SystemdError::Call { method, target, name, message }
            }
            other => SystemdError::Transport { method, target, source: other },
        }
    }

    /// Whether this is the D-Bus error called `name`.
    pub fn is(&self, name: &str) -> bool {
        matches!(self, SystemdError::Call { name: actual, .. } if actual == name)
    }

    /// Whether the unit or its object is simply not there (any more).
    pub fn is_no_such_unit(&self) -> bool {
        self.is(names::NO_SUCH_UNIT) || self.is(names::UNKNOWN_OBJECT)
    }
}

fn fdo_name_and_message(error: &zbus::fdo::Error) -> (String, String) {
    use zbus::DBusError;
    (error.name().as_str().to_string(), error.description().unwrap_or_default().to_string())
}
