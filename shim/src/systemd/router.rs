//! The one consumer of every message systemd sends us. It routes `JobRemoved` to whoever waits
//! for that unit's job, and `PropertiesChanged` of units under a watched object-path prefix to
//! one channel. Waiters register *before* they make the call that creates the job, because the
//! signal can be routed before the call's reply is handed back.

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

/// Routing tables shared between the router task and the waiters.
#[derive(Default)]
pub(crate) struct Routes {
    jobs: Mutex<HashMap<String, Vec<(u64, JobSender)>>>,
    next_watch: AtomicU64,
    unit_changes: Mutex<Option<(String, mpsc::UnboundedSender<UnitChange>)>>,
}

impl Routes {
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
