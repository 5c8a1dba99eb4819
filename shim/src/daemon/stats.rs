//! Stats and OOM: the container's cgroup, found once its init runs, gives containerd's cgroup
//! metrics (`ctr task metrics`), and an OOM watcher on it publishes `TaskOOM`.
//!
//! OOM detection: the memory cgroup's own notification (v1 `memory.oom_control` eventfd, v2
//! `memory.events`), as runc-v2 does. systemd's `Result=oom-kill` would only see OOM kills in
//! the unit's cgroup on the unified hierarchy with the memory controller, which hybrid hosts
//! (ours) lack, and only after the unit stopped; the kernel's event fires when the kill happens,
//! so `TaskOOM` precedes the exit it causes.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::events::EventSender;
use super::manager::TaskManager;
use super::task::{OomCounts, Task, TaskKey};
use crate::blocking::{blocking, blocking_within};
use crate::cgroup::{read_metrics, ContainerCgroups, OomOutcome, OomWatcher};
use crate::error::Error;

/// How long Stats waits for the cgroup's files: reading them takes a millisecond, and a Stats
/// left hanging would keep containerd's metrics collection waiting with it.
const METRICS_READ_LIMIT: Duration = Duration::from_secs(10);

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
        Ok(blocking_within("reading cgroup metrics", METRICS_READ_LIMIT, move || read_metrics(&cgroups)).await??)
    }
}

/// How often a container's OOM kills after the first are summed up in one log line.
const OOM_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Publishes `TaskOOM` for the OOM kills until the cgroup is removed, and when asked through
/// `requests` (see [`OomCounts`]). Kills counted at once are one `TaskOOM` (the publisher merges
/// a `TaskOOM` into an unsent one anyway: it carries nothing but the container id).
async fn publish_ooms(
    task: Arc<Task>,
    events: EventSender,
    mut watcher: OomWatcher,
    mut requests: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut log = OomKillLog::default();
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
            Ok(Some(0)) => {}
            Ok(Some(kills)) => {
                if let Some(kills) = log.note(kills, Instant::now()) {
                    log_oom_kills(&task, kills);
                }
                events.task_oom(&task);
            }
            Ok(None) => {
                log_oom_kills(&task, log.unlogged());
                return;
            }
            Err(error) => {
                log_oom_kills(&task, log.unlogged());
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

fn log_oom_kills(task: &Task, kills: u64) {
    if kills > 0 {
        tracing::info!(
            namespace = %task.key.namespace,
            container_id = %task.key.id,
            unit = %task.unit,
            kills,
            "OOM kills in the container",
        );
    }
}

/// Rate-limits the log of one container's OOM kills: the first is logged at once, later ones
/// as one line with their number at most every [`OOM_LOG_INTERVAL`], so a container in an OOM
/// loop does not spend the journal's rate limit, which all containers share.
#[derive(Debug, Default)]
struct OomKillLog {
    /// When the last line was logged.
    last_line: Option<Instant>,
    /// Kills not in a line yet.
    unlogged: u64,
}

impl OomKillLog {
    /// Notes `kills` more at `now`; returns how many to log, if a line is due.
    fn note(&mut self, kills: u64, now: Instant) -> Option<u64> {
        self.unlogged += kills;
        let due = self.last_line.is_none_or(|at| now.saturating_duration_since(at) >= OOM_LOG_INTERVAL);
        if !due {
            return None;
        }
        self.last_line = Some(now);
        Some(self.unlogged())
    }

    /// Takes the kills not logged yet, for a last line.
    fn unlogged(&mut self) -> u64 {
        std::mem::take(&mut self.unlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_oom_kill_is_logged_and_later_ones_summed_up_once_a_minute() {
        let start = Instant::now();
        let mut log = OomKillLog::default();
        assert_eq!(log.note(1, start), Some(1), "the first kill");
        let quiet: Vec<Option<u64>> =
            (1..=9_999u32).map(|kill| log.note(1, start + OOM_LOG_INTERVAL * kill / 10_000)).collect();
        assert!(quiet.iter().all(Option::is_none), "no line for the kills of the next minute");
        assert_eq!(log.note(1, start + OOM_LOG_INTERVAL), Some(10_000), "one line sums them up");
        assert_eq!(log.note(2, start + OOM_LOG_INTERVAL * 3 / 2), None);
        assert_eq!(log.unlogged(), 2, "what is left goes in a last line");
        assert_eq!(log.unlogged(), 0);
    }
}
