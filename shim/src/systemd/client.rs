//! The systemd Manager client: connection, subscription, and the calls the shim makes.
//!
//! Why raw `call_method` rather than typed proxies. zbus's `#[proxy]` needs its `proxy`
//! feature (off here; no new crate, more of zbus compiled), and the `zbus_systemd` crate is
//! that macro run over all of systemd's interfaces (0.26201: zbus 6, 9,737 generated lines in
//! `systemd1` alone) for the dozen calls we make, with every argument an owned `String` and
//! properties as `OwnedVariant`. A proxy for a unit or service object is built per object
//! path, and caches properties by default (its first property read costs a `GetAll` and a
//! `PropertiesChanged` subscription per proxy) unless each builder turns that off; its signal
//! streams ask the bus driver who owns
//! `org.freedesktop.systemd1`, which the private socket (peer-to-peer, PID 1 alone) does not
//! serve, and our signals go through `super::router` from one message stream anyway. So
//! proxies would cover the method calls only, and there the one `Systemd::call` gives every
//! call its span and classifies its error by D-Bus name in one place. What we give up is the
//! compile-time check of argument types; each call's body is exercised against real systemd by
//! the integration tests.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::Instrument;
use unit_gen::TransientUnit;
use zbus::connection::Builder;
use zbus::{Connection, Message, MessageStream, OwnedObjectPath, OwnedVariant, Variant};

use super::error::SystemdError;
use super::private_socket::authenticate;
use super::router::{run_router, JobResult, JobWatch, Routes, SignalSource, UnitChange, SYSTEMD_BUS_NAME};
use super::values::to_dbus_properties;

const DESTINATION: &str = SYSTEMD_BUS_NAME;
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// systemd's private socket: a direct connection to PID 1, faster than the bus and available
/// even when dbus-daemon is not. Only root may use it.
const PRIVATE_SOCKET: &str = "/run/systemd/private";

/// How long the private socket gets to answer its first call before the bus is used.
const PRIVATE_SOCKET_PROBE: Duration = Duration::from_secs(2);

/// How we reach systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `/run/systemd/private`, straight to PID 1.
    Private,
    /// The system bus (dbus-daemon or dbus-broker).
    Bus,
}

/// Which way to reach systemd the configuration asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransportPreference {
    /// The private socket when we are root and it answers; the system bus otherwise.
    #[default]
    PrivateSocket,
    /// Always the system bus.
    Bus,
}

/// How many incoming messages may queue before the router reads them. zbus allocates the whole
/// queue up front (72 bytes a message, so 16 Ki of them cost 1.1 MiB, resident as the ring goes
/// round), and a full queue loses nothing: the connection stops reading until the router, which
/// only forwards each message to a channel, has made room.
const MAX_QUEUED: usize = 512;

/// Deadline for a single method call.
const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// How the main process of a service ended (`ExecMain*` properties of the Service interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceExit {
    /// The main process's pid.
    pub pid: u32,
    /// containerd's exit status: the code, or 128 + signal.
    pub status: u32,
    /// When it exited, microseconds since the Unix epoch (0 if unknown).
    pub exited_at_usec: u64,
}

/// The `MainPID` a properties change announces, if it names a process.
pub fn main_pid_of(properties: &HashMap<String, OwnedVariant>) -> Option<u32> {
    let pid = u32::try_from(properties.get("MainPID")?.try_clone().ok()?).ok()?;
    (pid != 0).then_some(pid)
}

/// `si_code` values systemd reports in `ExecMainCode` (from `waitid(2)`).
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
const CLD_DUMPED: i32 = 3;

impl ServiceExit {
    /// Reads an exit from `ExecMain*` properties, if they describe one: a code of
    /// CLD_EXITED, CLD_KILLED or CLD_DUMPED (0 means the main process has not exited), and the
    /// pid of the process that exited.
    pub fn from_properties(properties: &HashMap<String, OwnedVariant>) -> Option<ServiceExit> {
        Self::parse(properties)
    }

    /// Whether `properties` tell of an exit but not of the process that exited: not to be
    /// trusted as one, to be asked of systemd instead.
    pub fn names_no_process(properties: &HashMap<String, OwnedVariant>) -> bool {
        let code = properties.get("ExecMainCode").and_then(|value| i32::try_from(value.try_clone().ok()?).ok());
        matches!(code, Some(CLD_EXITED | CLD_KILLED | CLD_DUMPED)) && Self::parse(properties).is_none()
    }

    fn parse(properties: &HashMap<String, OwnedVariant>) -> Option<ServiceExit> {
        let code = i32::try_from(properties.get("ExecMainCode")?.try_clone().ok()?).ok()?;
        let raw_status = i32::try_from(properties.get("ExecMainStatus")?.try_clone().ok()?).ok()?;
        // An exit that names no process matches none (it would pass for whichever init runs).
        let pid = u32::try_from(properties.get("ExecMainPID")?.try_clone().ok()?).ok().filter(|pid| *pid != 0)?;
        let exited_at_usec = properties
            .get("ExecMainExitTimestamp")
            .and_then(|value| value.try_clone().ok())
            .and_then(|value| u64::try_from(value).ok())
            .unwrap_or(0);
        let status = match code {
            CLD_EXITED => u32::try_from(raw_status).ok()?,
            CLD_KILLED | CLD_DUMPED => 128 + u32::try_from(raw_status).ok()?,
            _ => return None,
        };
        Some(ServiceExit { pid, status, exited_at_usec })
    }
}

/// A connection to systemd with its signal router running.
pub struct Systemd {
    connection: Connection,
    routes: Arc<Routes>,
    version: u32,
    transport: Transport,
}

impl Systemd {
    /// Connects (private socket when root, else the system bus), subscribes to signals and
    /// starts routing them.
    ///
    /// The first call on the private socket has a short deadline, and the system bus is used
    /// when it passes: a PID 1 that does not answer there must not stall a `start` or `delete`.
    pub async fn connect(preference: TransportPreference) -> Result<Systemd, SystemdError> {
        if preference == TransportPreference::PrivateSocket && private_socket_usable() {
            match tokio::time::timeout(PRIVATE_SOCKET_PROBE, Self::connect_over(Transport::Private)).await {
                Ok(Ok(systemd)) => return Ok(systemd),
                Ok(Err(error)) => tracing::warn!("systemd's private socket failed ({error}); using the system bus"),
                Err(_) => tracing::warn!(
                    "systemd's private socket did not answer in {PRIVATE_SOCKET_PROBE:?}; using the system bus"
                ),
            }
        }
        Self::connect_over(Transport::Bus).await
    }

    async fn connect_over(transport: Transport) -> Result<Systemd, SystemdError> {
        let (connection, address) = match transport {
            Transport::Private => (connect_private().await, PRIVATE_SOCKET),
            Transport::Bus => (connect_bus().await, "the system bus"),
        };
        let connection = connection.map_err(|source| SystemdError::Connect { address: address.to_string(), source })?;
        Self::over(connection, transport).await
    }

    /// The client over an established `connection` that reaches systemd by `transport`:
    /// [`Transport::Private`] for a peer-to-peer connection whose one peer is systemd (every
    /// signal on it is trusted), [`Transport::Bus`] for the system bus. [`Systemd::connect`]
    /// uses it; the daemon's unit tests pass one end of a socket pair whose other end serves a
    /// fake Manager, so the router and the marshalling are those of production.
    pub async fn over(connection: Connection, transport: Transport) -> Result<Systemd, SystemdError> {
        // The stream exists before Subscribe, so no signal can slip past it.
        let stream = MessageStream::from(&connection);
        let source = match transport {
            Transport::Private => SignalSource::Peer,
            Transport::Bus => SignalSource::BusOwner(None),
        };
        let routes = Arc::new(Routes::new(source));
        tokio::spawn(run_router(stream, Arc::clone(&routes)));

        let mut systemd = Systemd { connection, routes, version: 0, transport };
        if transport == Transport::Bus {
            // On the bus, broadcast signals only reach us through match rules: systemd's, and
            // the bus driver's word on who owns systemd's name (the only sender we route from).
            let owner_changes = format!(
                "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',\
                 member='NameOwnerChanged',arg0='{DESTINATION}'"
            );
            for rule in [format!("type='signal',sender='{DESTINATION}'"), owner_changes] {
                systemd.call_bus_driver("AddMatch", &(rule,)).await?;
            }
            let reply = systemd.call_bus_driver("GetNameOwner", &(DESTINATION,)).await?;
            let owner: String =
                reply.body().deserialize().map_err(|source| SystemdError::from_call("GetNameOwner", "bus", source))?;
            systemd.routes.learn_bus_owner(&owner);
        }
        systemd.version = systemd.read_version().await?;
        systemd.call_manager("Subscribe", "manager", &()).await?;
        Ok(systemd)
    }

    /// systemd's major version, e.g. 252.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// How this connection reaches systemd.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Waits until systemd's private socket, which this connection (on the bus) could not use,
    /// answers a call within the probe deadline, trying every `interval`. Never returns when we
    /// may not use it (not root, no socket).
    pub async fn private_socket_answers_again(interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            if !private_socket_usable() {
                continue;
            }
            match tokio::time::timeout(PRIVATE_SOCKET_PROBE, probe_private_socket()).await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => tracing::debug!("systemd's private socket still fails: {error}"),
                Err(_) => tracing::debug!("systemd's private socket still does not answer"),
            }
        }
    }

    /// Sends every `PropertiesChanged` of units whose object path starts with `path_prefix`
    /// to the returned receiver (one watcher; a second call replaces the first).
    pub fn watch_units(&self, path_prefix: &str) -> mpsc::UnboundedReceiver<UnitChange> {
        self.routes.watch_units(path_prefix)
    }

    /// Starts `unit` as a transient unit (mode `fail`) and waits for its start job.
    pub async fn start_transient_unit(
        &self,
        unit: &TransientUnit,
        timeout: Duration,
    ) -> Result<JobResult, SystemdError> {
        let name = unit.name.as_str();
        let mut watch = self.routes.watch_jobs(name);
        let properties = to_dbus_properties(&unit.properties);
        let auxiliary: Vec<(String, Vec<(String, Variant<'static>)>)> = Vec::new();
        let reply = self.call_manager("StartTransientUnit", name, &(name, "fail", properties, auxiliary)).await?;
        let job = object_path_of(&reply, "StartTransientUnit", name)?;
        wait_job(&mut watch, &job, timeout).await
    }

    /// Starts `unit` as a transient unit (mode `fail`) and returns its start job without
    /// waiting, for callers that have something else to wait for meanwhile.
    pub async fn begin_transient_unit(&self, unit: &TransientUnit) -> Result<QueuedJob, SystemdError> {
        let name = unit.name.as_str();
        let watch = self.routes.watch_jobs(name);
        let properties = to_dbus_properties(&unit.properties);
        let auxiliary: Vec<(String, Vec<(String, Variant<'static>)>)> = Vec::new();
        let reply = self.call_manager("StartTransientUnit", name, &(name, "fail", properties, auxiliary)).await?;
        let job = object_path_of(&reply, "StartTransientUnit", name)?;
        Ok(QueuedJob { watch, job })
    }

    /// Starts (or joins the start job of) the loaded unit `name` and waits for it.
    pub async fn start_unit(&self, name: &str, timeout: Duration) -> Result<JobResult, SystemdError> {
        let mut watch = self.routes.watch_jobs(name);
        let reply = self.call_manager("StartUnit", name, &(name, "replace")).await?;
        let job = object_path_of(&reply, "StartUnit", name)?;
        wait_job(&mut watch, &job, timeout).await
    }

    /// Stops unit `name` and waits until it is down; `None` when no such unit is loaded.
    pub async fn stop_unit(&self, name: &str, timeout: Duration) -> Result<Option<JobResult>, SystemdError> {
        match self.begin_stop_unit(name).await? {
            Some(mut job) => job.wait(timeout).await.map(Some),
            None => Ok(None),
        }
    }

    /// Queues the stop of unit `name` and returns its job without waiting; `None` when no such
    /// unit is loaded. systemd carries the job out whether or not anyone waits for it.
    pub async fn begin_stop_unit(&self, name: &str) -> Result<Option<QueuedJob>, SystemdError> {
        let watch = self.routes.watch_jobs(name);
        let reply = match self.call_manager("StopUnit", name, &(name, "replace")).await {
            Err(error) if error.is_no_such_unit() => return Ok(None),
            other => other?,
        };
        let job = object_path_of(&reply, "StopUnit", name)?;
        Ok(Some(QueuedJob { watch, job }))
    }

    /// Forgets the failed state of unit `name`; a unit that is not loaded is fine.
    pub async fn reset_failed_unit(&self, name: &str) -> Result<(), SystemdError> {
        match self.call_manager("ResetFailedUnit", name, &(name,)).await {
            Err(error) if error.is_no_such_unit() => Ok(()),
            other => other.map(drop),
        }
    }

    /// The `ActiveState` of unit `name`, or `None` when it is not loaded.
    pub async fn unit_active_state(&self, name: &str) -> Result<Option<String>, SystemdError> {
        let reply = match self.call_manager("GetUnit", name, &(name,)).await {
            Err(error) if error.is_no_such_unit() => return Ok(None),
            other => other?,
        };
        let path = object_path_of(&reply, "GetUnit", name)?;
        let value = self.get_property(path.as_str(), UNIT, "ActiveState").await?;
        Ok(String::try_from(value).ok())
    }

    /// The `LoadState` of unit `name`, loading it from its unit file if need be: `loaded` when
    /// a unit file (or a transient unit) defines it, `not-found` when nothing does.
    pub async fn unit_load_state(&self, name: &str) -> Result<String, SystemdError> {
        let reply = self.call_manager("LoadUnit", name, &(name,)).await?;
        let path = object_path_of(&reply, "LoadUnit", name)?;
        let value = self.get_property(path.as_str(), UNIT, "LoadState").await?;
        Ok(String::try_from(value).unwrap_or_default())
    }

    /// How the main process of the service at `object_path` ended, if it has.
    pub async fn service_exit(&self, object_path: &str) -> Result<Option<ServiceExit>, SystemdError> {
        let reply = self.call(Some(DESTINATION), object_path, PROPERTIES, "GetAll", object_path, &(SERVICE,)).await?;
        let properties: HashMap<String, OwnedVariant> =
            reply.body().deserialize().map_err(|source| SystemdError::from_call("GetAll", object_path, source))?;
        Ok(ServiceExit::from_properties(&properties))
    }

    async fn read_version(&self) -> Result<u32, SystemdError> {
        let value = self.get_property(MANAGER_PATH, MANAGER, "Version").await?;
        let text = String::try_from(value).unwrap_or_default();
        Ok(parse_major_version(&text))
    }

    async fn get_property(&self, path: &str, interface: &str, name: &str) -> Result<OwnedVariant, SystemdError> {
        let reply = self.call(Some(DESTINATION), path, PROPERTIES, "Get", path, &(interface, name)).await?;
        reply.body().deserialize::<OwnedVariant>().map_err(|source| SystemdError::from_call("Get", path, source))
    }

    async fn call_bus_driver<B>(&self, method: &'static str, body: &B) -> Result<Message, SystemdError>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        self.call(Some("org.freedesktop.DBus"), "/org/freedesktop/DBus", "org.freedesktop.DBus", method, "bus", body)
            .await
    }

    async fn call_manager<B>(&self, method: &'static str, target: &str, body: &B) -> Result<Message, SystemdError>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        self.call(Some(DESTINATION), MANAGER_PATH, MANAGER, method, target, body).await
    }

    async fn call<B>(
        &self,
        destination: Option<&str>,
        path: &str,
        interface: &str,
        method: &'static str,
        target: &str,
        body: &B,
    ) -> Result<Message, SystemdError>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        // One span per call, named after the method in the export; `unit` is what the call is
        // about: a unit name, a unit's object path, or the manager.
        let span = tracing::info_span!(
            "dbus",
            otel.name = %format_args!("dbus.{method}"),
            otel.kind = "client",
            rpc.system = "dbus",
            rpc.service = interface,
            rpc.method = method,
            unit = target,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        );
        let reply = self
            .connection
            .call_method(destination, path, Some(interface), method, body)
            .instrument(span.clone())
            .await;
        reply.map_err(|error| {
            let error = SystemdError::from_call(method, target, error);
            // NoSuchUnit is an answer (every caller takes it as "not loaded"), not a failure.
            if !error.is_no_such_unit() {
                crate::telemetry::record_failure(&span, &error);
            }
            error
        })
    }
}

/// Whether we may use systemd's private socket: only root may, and only where it exists.
fn private_socket_usable() -> bool {
    nix::unistd::geteuid().is_root() && Path::new(PRIVATE_SOCKET).exists()
}

/// Connects to the private socket, asks systemd's version, and closes the connection again.
async fn probe_private_socket() -> zbus::Result<()> {
    let connection = connect_private().await?;
    connection.call_method(Some(DESTINATION), MANAGER_PATH, Some(PROPERTIES), "Get", &(MANAGER, "Version")).await?;
    Ok(())
}

async fn connect_private() -> zbus::Result<Connection> {
    let io_error = |error| zbus::Error::InputOutput(Arc::new(error));
    let stream = tokio::net::UnixStream::connect(PRIVATE_SOCKET).await.map_err(io_error)?;
    let (socket, guid) = authenticate(stream).await.map_err(io_error)?;
    builder_with_limits(Builder::authenticated_socket(socket, guid).p2p()).build().await
}

async fn connect_bus() -> zbus::Result<Connection> {
    builder_with_limits(Builder::system()).build().await
}

fn builder_with_limits(builder: Builder<'static>) -> Builder<'static> {
    let max_queued = NonZeroUsize::new(MAX_QUEUED).unwrap_or(NonZeroUsize::MIN);
    builder.max_queued(max_queued).method_timeout(CALL_TIMEOUT)
}

fn object_path_of(reply: &Message, method: &'static str, target: &str) -> Result<OwnedObjectPath, SystemdError> {
    reply.body().deserialize::<OwnedObjectPath>().map_err(|source| SystemdError::from_call(method, target, source))
}

/// A job in flight; its result is seen even if it finished before [`QueuedJob::wait`].
pub struct QueuedJob {
    watch: JobWatch,
    job: OwnedObjectPath,
}

impl QueuedJob {
    /// Waits for the job's result.
    pub async fn wait(&mut self, timeout: Duration) -> Result<JobResult, SystemdError> {
        wait_job(&mut self.watch, &self.job, timeout).await
    }
}

async fn wait_job(watch: &mut JobWatch, job: &OwnedObjectPath, timeout: Duration) -> Result<JobResult, SystemdError> {
    match tokio::time::timeout(timeout, watch.wait_for(job)).await {
        Ok(Some(result)) => Ok(result),
        Ok(None) => Err(SystemdError::ConnectionLost { unit: watch.unit().to_string() }),
        Err(_) => Err(SystemdError::JobTimeout { unit: watch.unit().to_string(), timeout }),
    }
}

/// `"252.38-1~deb12u1"` → 252; anything unparsable → 0 (treated as very old).
fn parse_major_version(text: &str) -> u32 {
    let digits: String = text.trim_start_matches('v').chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::error::names;
    use super::*;

    #[test]
    fn major_version_is_parsed_from_systemds_version_string() {
        assert_eq!(parse_major_version("252.38-1~deb12u1"), 252);
        assert_eq!(parse_major_version("257"), 257);
        assert_eq!(parse_major_version("v249"), 249);
        assert_eq!(parse_major_version("garbage"), 0);
    }

    fn exec_main(code: i32, status: i32) -> HashMap<String, OwnedVariant> {
        let mut properties = HashMap::new();
        properties.insert("ExecMainCode".to_string(), OwnedVariant::try_from(Variant::from(code)).unwrap());
        properties.insert("ExecMainStatus".to_string(), OwnedVariant::try_from(Variant::from(status)).unwrap());
        properties.insert("ExecMainPID".to_string(), OwnedVariant::try_from(Variant::from(42u32)).unwrap());
        properties
    }

    #[test]
    fn exit_codes_and_signal_deaths_map_like_runc_v2() {
        assert_eq!(ServiceExit::from_properties(&exec_main(CLD_EXITED, 3)).map(|e| e.status), Some(3));
        assert_eq!(ServiceExit::from_properties(&exec_main(CLD_KILLED, 9)).map(|e| e.status), Some(137));
        assert_eq!(ServiceExit::from_properties(&exec_main(CLD_DUMPED, 11)).map(|e| e.status), Some(139));
        assert_eq!(ServiceExit::from_properties(&exec_main(CLD_EXITED, 0)).map(|e| e.pid), Some(42));
    }

    #[test]
    fn no_exit_yet_gives_none() {
        assert_eq!(ServiceExit::from_properties(&exec_main(0, 0)), None);
        assert_eq!(ServiceExit::from_properties(&HashMap::new()), None);
    }

    #[test]
    fn an_exit_that_names_no_process_matches_none() {
        let mut without_pid = exec_main(CLD_EXITED, 0);
        without_pid.remove("ExecMainPID");
        assert_eq!(ServiceExit::from_properties(&without_pid), None);
        let mut pid_zero = exec_main(CLD_EXITED, 0);
        pid_zero.insert("ExecMainPID".to_string(), OwnedVariant::try_from(Variant::from(0u32)).unwrap());
        assert_eq!(ServiceExit::from_properties(&pid_zero), None);
        assert!(ServiceExit::names_no_process(&without_pid) && ServiceExit::names_no_process(&pid_zero));
        assert!(!ServiceExit::names_no_process(&exec_main(CLD_EXITED, 0)));
        assert!(!ServiceExit::names_no_process(&exec_main(0, 0)));
    }

    #[test]
    fn stale_names_are_known() {
        let error = SystemdError::Call {
            method: "StopUnit",
            target: "x".into(),
            name: names::NO_SUCH_UNIT.into(),
            message: String::new(),
        };
        assert!(error.is_no_such_unit());
        assert!(!error.is(names::UNIT_EXISTS));
    }
}
