//! The one consumer of every message systemd sends us. It routes `JobRemoved` to whoever waits
//! for that unit's job, and `PropertiesChanged` of units under a watched object-path prefix to
//! one channel. Waiters register *before* they make the call that creates the job, because the
//! signal can be routed before the call's reply is handed back.
//!
//! Only systemd's own signals are routed. On the private socket the one peer is PID 1. On the
//! system bus anyone may send us a signal, unicast, whatever our match rules say: a forged
//! `PropertiesChanged` with an exit in it would become a false `TaskExit`, and the
//! orchestrator's Delete would then kill the real container. There a signal counts only when
//! its sender is the unique name that owns `org.freedesktop.systemd1` now; the bus driver (whose
//! name no client can take) says when that owner changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use tokio::sync::mpsc;
use zbus::{Message, MessageStream, OwnedObjectPath, OwnedVariant};

/// How a systemd job ended (the `result` of `JobRemoved`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// Finished successfully.
    Done,
    /// Canceled before it finished.
    Canceled,
    /// Timed out (e.g. `TimeoutStartSec=`).
    Timeout,
    /// The unit's command failed.
    Failed,
    /// A dependency failed.
    Dependency,
    /// Skipped (nothing to do).
    Skipped,
    /// Any other result string.
    Other(String),
}

impl JobResult {
    fn parse(result: &str) -> JobResult {
        match result {
            "done" => JobResult::Done,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "failed" => JobResult::Failed,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            other => JobResult::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for JobResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobResult::Done => f.write_str("done"),
            JobResult::Canceled => f.write_str("canceled"),
            JobResult::Timeout => f.write_str("timeout"),
            JobResult::Failed => f.write_str("failed"),
            JobResult::Dependency => f.write_str("dependency"),
            JobResult::Skipped => f.write_str("skipped"),
            JobResult::Other(other) => f.write_str(other),
        }
    }
}

/// A `JobRemoved` signal.
#[derive(Debug, Clone)]
pub(crate) struct JobRemoved {
    pub job: OwnedObjectPath,
    pub result: JobResult,
}

/// Properties of a watched unit changed (`org.freedesktop.DBus.Properties.PropertiesChanged`).
#[derive(Debug)]
pub struct UnitChange {
    /// The unit's object path.
    pub path: String,
    /// The interface whose properties changed, e.g. `org.freedesktop.systemd1.Service`.
    pub interface: String,
    /// Changed properties with their new values.
    pub changed: HashMap<String, OwnedVariant>,
    /// Properties that changed without their value being sent.
    pub invalidated: Vec<String>,
}

type JobSender = mpsc::UnboundedSender<JobRemoved>;

/// The well-known name systemd owns on the bus.
pub(crate) const SYSTEMD_BUS_NAME: &str = "org.freedesktop.systemd1";
/// The bus driver: the sender of `NameOwnerChanged`, a name no client can own.
const BUS_DRIVER: &str = "org.freedesktop.DBus";

/// Whose signals are systemd's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignalSource {
    /// A peer-to-peer connection to PID 1 (the private socket): every message is systemd's.
    Peer,
    /// The system bus: only the unique name that owns [`SYSTEMD_BUS_NAME`] (none while it is
    /// not known, or while nobody owns it).
    BusOwner(Option<String>),
}

/// Routing tables shared between the router task and the waiters.
pub(crate) struct Routes {
    source: Mutex<SignalSource>,
    jobs: Mutex<HashMap<String, Vec<(u64, JobSender)>>>,
    next_watch: AtomicU64,
    unit_changes: Mutex<Option<(String, mpsc::UnboundedSender<UnitChange>)>>,
}

impl Routes {
    /// Empty tables that route the signals of `source` only.
    pub(crate) fn new(source: SignalSource) -> Routes {
        Routes {
            source: Mutex::new(source),
            jobs: Mutex::default(),
            next_watch: AtomicU64::new(0),
            unit_changes: Mutex::default(),
        }
    }

    fn source(&self) -> MutexGuard<'_, SignalSource> {
        self.source.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the owner of systemd's bus name that `GetNameOwner` answered, unless a
    /// `NameOwnerChanged` routed meanwhile already told a newer one.
    pub(crate) fn learn_bus_owner(&self, owner: &str) {
        if let SignalSource::BusOwner(known @ None) = &mut *self.source() {
            *known = Some(owner.to_string());
        }
    }

    /// Whether a signal from `sender` is systemd's.
    fn is_systemd(&self, sender: Option<&str>) -> bool {
        match &*self.source() {
            SignalSource::Peer => true,
            SignalSource::BusOwner(owner) => owner.is_some() && owner.as_deref() == sender,
        }
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<String, Vec<(u64, JobSender)>>> {
        // A poisoned lock only means a waiter panicked; the table itself stays consistent.
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts collecting `JobRemoved` signals of `unit` until the returned watch is dropped.
    pub(crate) fn watch_jobs(self: &Arc<Self>, unit: &str) -> JobWatch {
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = self.next_watch.fetch_add(1, Ordering::Relaxed);
        self.jobs().entry(unit.to_string()).or_default().push((id, sender));
        JobWatch { routes: Arc::clone(self), unit: unit.to_string(), id, receiver }
    }

    /// Sends `PropertiesChanged` of every object under `path_prefix` to the returned receiver.
    pub(crate) fn watch_units(&self, path_prefix: &str) -> mpsc::UnboundedReceiver<UnitChange> {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self.unit_changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((path_prefix.to_string(), sender));
        receiver
    }

    fn route(&self, message: &Message) {
        let header = message.header();
        let (Some(interface), Some(member)) = (header.interface(), header.member()) else {
            return;
        };
        let sender = header.sender().map(|sender| sender.as_str());
        if (interface.as_str(), member.as_str()) == (BUS_DRIVER, "NameOwnerChanged") {
            if sender == Some(BUS_DRIVER) {
                self.follow_owner_change(message);
            }
            return;
        }
        if !self.is_systemd(sender) {
            tracing::debug!("ignoring {interface}.{member} from {sender:?}, which is not systemd");
            return;
        }
        match (interface.as_str(), member.as_str()) {
            ("org.freedesktop.systemd1.Manager", "JobRemoved") => self.route_job_removed(message),
            ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
                if let Some(path) = header.path() {
                    self.route_properties_changed(path.as_str(), message);
                }
            }
            _ => {}
        }
    }

    /// A new owner of systemd's bus name (systemd re-executed, or the bus restarted it).
    fn follow_owner_change(&self, message: &Message) {
        let Ok((name, _old, new)) = message.body().deserialize::<(String, String, String)>() else {
            return;
        };
        if name != SYSTEMD_BUS_NAME {
            return;
        }
        if let SignalSource::BusOwner(owner) = &mut *self.source() {
            tracing::info!("{SYSTEMD_BUS_NAME} is now owned by {new:?}");
            *owner = (!new.is_empty()).then_some(new);
        }
    }

    fn route_job_removed(&self, message: &Message) {
        let Ok((_id, job, unit, result)) = message.body().deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            tracing::warn!("undecodable JobRemoved signal");
            return;
        };
        let mut jobs = self.jobs();
        if let Some(watchers) = jobs.get_mut(&unit) {
            let removed = JobRemoved { job, result: JobResult::parse(&result) };
            watchers.retain(|(_, sender)| sender.send(removed.clone()).is_ok());
        }
    }

    fn route_properties_changed(&self, path: &str, message: &Message) {
        let guard = self.unit_changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some((prefix, sender)) = guard.as_ref() else {
            return;
        };
        if !path.starts_with(prefix.as_str()) {
            return;
        }
        match message.body().deserialize::<(String, HashMap<String, OwnedVariant>, Vec<String>)>() {
            Ok((interface, changed, invalidated)) => {
                let _ = sender.send(UnitChange { path: path.to_string(), interface, changed, invalidated });
            }
            Err(error) => tracing::warn!("undecodable PropertiesChanged for {path}: {error}"),
        }
    }

    fn close(&self) {
        self.jobs().clear();
        *self.unit_changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// Routes every incoming message until the connection closes; then drops all waiters so they
/// fail instead of hanging.
pub(crate) async fn run_router(mut stream: MessageStream, routes: Arc<Routes>) {
    while let Some(message) = stream.next().await {
        match message {
            Ok(message) if message.message_type() == zbus::message::Type::Signal => routes.route(&message),
            Ok(_) => {}
            Err(error) => tracing::warn!("error reading from systemd: {error}"),
        }
    }
    tracing::error!("the connection to systemd closed");
    routes.close();
}

/// Collects `JobRemoved` for one unit; unregisters itself when dropped.
pub(crate) struct JobWatch {
    routes: Arc<Routes>,
    unit: String,
    id: u64,
    receiver: mpsc::UnboundedReceiver<JobRemoved>,
}

impl JobWatch {
    /// Waits for `job` to be removed and returns its result; `None` when the router stopped.
    pub(crate) async fn wait_for(&mut self, job: &OwnedObjectPath) -> Option<JobResult> {
        while let Some(removed) = self.receiver.recv().await {
            if &removed.job == job {
                return Some(removed.result);
            }
        }
        None
    }

    /// The unit watched.
    pub(crate) fn unit(&self) -> &str {
        &self.unit
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        let mut jobs = self.routes.jobs();
        if let Some(watchers) = jobs.get_mut(&self.unit) {
            watchers.retain(|(id, _)| *id != self.id);
            if watchers.is_empty() {
                jobs.remove(&self.unit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT_PATH: &str = "/org/freedesktop/systemd1/unit/ctr_2dx_2eservice";

    fn properties_changed(sender: &str) -> Message {
        let changed = HashMap::from([("ExecMainCode".to_string(), zbus::Variant::from(1i32))]);
        let body = ("org.freedesktop.systemd1.Service", changed, Vec::<String>::new());
        Message::signal(UNIT_PATH, "org.freedesktop.DBus.Properties", "PropertiesChanged")
            .sender(sender)
            .build(&body)
            .unwrap()
    }

    fn owner_changed(sender: &str, new_owner: &str) -> Message {
        Message::signal("/org/freedesktop/DBus", BUS_DRIVER, "NameOwnerChanged")
            .sender(sender)
            .build(&(SYSTEMD_BUS_NAME, ":1.1", new_owner))
            .unwrap()
    }

    fn routed(routes: &Routes, message: &Message) -> bool {
        let mut changes = routes.watch_units("/org/freedesktop/systemd1/unit/");
        routes.route(message);
        changes.try_recv().is_ok()
    }

    #[test]
    fn on_the_bus_only_the_owner_of_systemds_name_is_heard() {
        let routes = Routes::new(SignalSource::BusOwner(None));
        assert!(!routed(&routes, &properties_changed(":1.1")), "owner not known yet");
        routes.learn_bus_owner(":1.1");
        assert!(routed(&routes, &properties_changed(":1.1")));
        assert!(!routed(&routes, &properties_changed(":1.66")), "a stranger's unicast signal");
    }

    #[test]
    fn a_new_owner_is_taken_from_the_bus_driver_only() {
        let routes = Routes::new(SignalSource::BusOwner(None));
        routes.learn_bus_owner(":1.1");
        routes.route(&owner_changed(":1.66", ":1.66"));
        assert!(!routed(&routes, &properties_changed(":1.66")), "a forged NameOwnerChanged");
        routes.route(&owner_changed(BUS_DRIVER, ":1.7"));
        assert!(routed(&routes, &properties_changed(":1.7")));
        assert!(!routed(&routes, &properties_changed(":1.1")), "the old owner");
        routes.learn_bus_owner(":1.1");
        assert!(routed(&routes, &properties_changed(":1.7")), "an older answer does not undo a change");
        routes.route(&owner_changed(BUS_DRIVER, ""));
        assert!(!routed(&routes, &properties_changed(":1.7")), "nobody owns the name");
    }

    #[test]
    fn on_the_private_socket_pid_1_is_the_only_peer() {
        let routes = Routes::new(SignalSource::Peer);
        assert!(routed(&routes, &properties_changed(":1.1")));
    }
}
