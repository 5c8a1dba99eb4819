//! Our systemd client over D-Bus (zbus): connection (systemd's private socket when we are root,
//! the system bus otherwise), the few Manager and Unit methods we need, and one signal router
//! that turns `JobRemoved` and `PropertiesChanged` into waits and unit-change events. One
//! subscription for everything: no per-unit polling.

mod client;
mod error;
mod private_socket;
mod router;
mod values;

pub use client::{main_pid_of, QueuedJob, ServiceExit, Systemd, Transport, TransportPreference};
pub use error::{names as error_names, SystemdError};
pub use router::{JobResult, UnitChange};
