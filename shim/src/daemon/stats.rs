//! Stats and OOM: the container's cgroup, found once its init runs, gives containerd's cgroup
//! metrics (`ctr task metrics`), and an OOM watcher on it publishes `TaskOOM`.
//!
//! OOM detection: the memory cgroup's own notification (v1 `memory.oom_control` eventfd, v2
//! `memory.events`), as runc-v2 does. systemd's `Result=oom-kill` would only see OOM kills in
//! the unit's cgroup on the unified hierarchy with the memory controller, which hybrid hosts
//! (ours) lack, and only after the unit stopped; the kernel's event fires when the kill happens,
//! so `TaskOOM` precedes the exit it causes.

use std::sync::Arc;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use tokio::sync::{mpsc, oneshot};

use super::events::EventSender;
use super::manager::TaskManager;
use super::task::{OomCounts, Task, TaskKey};
use crate::blocking::blocking;
use crate::cgroup::{read_metrics, ContainerCgroups, OomOutcome, OomWatcher};
use crate::error::Error;

impl TaskManager {
    /// Finds the cgroup of `task`'s init (`pid`) and starts watching it for OOM kills. A task
    /// whose cgroup cannot be found still runs; Stats then says why.
    pub(super) async fn watch_cgroup(&self, task: &Arc<Task>, pid: u32) {
        let inotify = self.oom_inotify.clone();
        let found = blocking("finding the container's cgroup", move || {
            let cgroups = ContainerCgroups::of_pid(pid)?;
            // The cgroup serves metrics and the exit's cleanup even if its OOM watch fails
            // (e.g. `ENOSPC` once root's `max_user_watches` is reached).
            let watcher = OomWatcher::new(&cgroups, &inotify);
            Ok::<_, crate::cgroup::CgroupError>((cgroups, watcher))
        })
        .await;
        match found {
            Ok(Ok((cgroups, watcher))) => {
                task.set_cgroups(cgroups);
                match watcher {
                    Ok(watcher) => {
                        let (counts, requests) = mpsc::channel(1);
                        task.set_oom_counts(OomCounts(counts));
                        tokio::spawn(publish_ooms(Arc::clone(task), self.events.clone(), watcher, requests));
                    }
                    Err(error) => tracing::warn!(task = %task.key, "no OOM events: {error}"),
                }
            }
            Ok(Err(error)) => tracing::warn!(task = %task.key, "no cgroup metrics or OOM events: {error}"),
            Err(error) => tracing::warn!(task = %task.key, "no cgroup metrics or OOM events: {error}"),
        }
    }

    /// The cgroup metrics of task `key`.
    pub async fn stats(&self, key: &TaskKey) -> Result<Any, Error> {
        let task = self.task(key)?;
        let Some(cgroups) = task.cgroups() else {
            return Err(Error::BadState {
                namespace: key.namespace.clone(),
                id: key.id.clone(),
                state: task.lifecycle().name(),
                action: "read metrics (its cgroup is unknown)",
            });
        };
        let cgroups = cgroups.clone();
        Ok(blocking("reading cgroup metrics", move || read_metrics(&cgroups)).await??)
    }
}

/// Publishes `TaskOOM` for each OOM kill until the cgroup is removed, and when asked through
/// `requests` (see [`OomCounts`]).
async fn publish_ooms(
    task: Arc<Task>,
    events: EventSender,
    mut watcher: OomWatcher,
    mut requests: mpsc::Receiver<oneshot::Sender<()>>,
) {
    loop {
        let outcome = tokio::select! {
            outcome = watcher.wait_oom() => outcome.map(|outcome| match outcome {
                OomOutcome::Oom => Some(1),
                OomOutcome::CgroupGone => None,
            }),
            Some(done) = requests.recv() => {
                let counted = watcher.take_ooms_so_far().await.map(Some);
                let _ = done.send(());
                counted
            }
        };
        match outcome {
            Ok(Some(ooms)) => {
                for _ in 0..ooms {
                    tracing::info!(
                        namespace = %task.key.namespace,
                        container_id = %task.key.id,
                        unit = %task.unit,
                        "OOM kill in the container",
                    );
                    events.task_oom(&task);
                }
            }
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(
                    namespace = %task.key.namespace,
                    container_id = %task.key.id,
                    "stopped watching for OOM kills: {error}",
                );
                return;
            }
        }
    }
}
