//! Start: releasing the created init (through runc's exec fifo, or `runc start` when the spec
//! has poststart hooks or the runtime binary wraps runc) lets it exec the container's process. An exit observed
//! while runc runs is held back and published after `TaskStart`, so containerd always sees
//! create → start → exit in that order.

use super::bundle::read_spec;
use super::manager::TaskManager;
use super::task::{StartOutcome, TaskKey};
use crate::error::Error;

impl TaskManager {
    /// Starts task `key`; returns its init pid.
    pub async fn start(&self, key: &TaskKey) -> Result<u32, Error> {
        let task = self.task(key)?;
        let bad_state =
            |state| Error::BadState { namespace: key.namespace.clone(), id: key.id.clone(), state, action: "start" };
        let init_pid = task.lifecycle().begin_start().map_err(|refused| bad_state(refused.state))?;

        let started = if task.take_restore_pending() {
            self.restore(&task).await
        } else if task.spec_facts.poststart_hooks || !task.runc.is_plain_runc() {
            // runc versions differ on whether `runc start` runs poststart hooks: leave it to runc.
            // A program wrapping runc sees its `start` as under runc-v2.
            task.runc.start(&key.id).await.map_err(Error::Runc)
        } else {
            task.runc.start_created(&key.id, init_pid).await.map_err(Error::Runc)
        };

        let pid = {
            let mut lifecycle = task.lifecycle();
            // Only this function leaves Starting, so a refusal here is a bug worth shouting about.
            let outcome = lifecycle.finish_start(started.is_ok()).map_err(|refused| {
                tracing::error!(task = %key, "task left the starting state under a start: {}", refused.state);
                bad_state(refused.state)
            })?;
            let (StartOutcome::Started { pid, exit } | StartOutcome::Failed { pid, exit }) = outcome;
            if matches!(outcome, StartOutcome::Started { .. }) {
                self.events.task_started(&task, pid);
            }
            if let Some(exit) = exit {
                self.events.task_exited(&task, pid, exit);
                task.announce_exit(exit);
                super::exits::log_init_exit(&task, pid, exit);
            }
            pid
        };
        self.state.save(&task).written().await;
        started.map(|()| pid)
    }

    /// Starts the unit of a task created from a checkpoint; its helper runs `runc restore`.
    async fn restore(&self, task: &std::sync::Arc<super::task::Task>) -> Result<(), Error> {
        let started = async {
            let spec = read_spec(&task.bundle).await?;
            self.start_init_unit(task, &spec, false, None).await
        };
        match started.await {
            Ok(pid) => {
                if let Err(refused) = task.lifecycle().adopt_pid(pid) {
                    tracing::error!(task = %task.key, "restored task is {}", refused.state);
                }
                self.watch_cgroup(task, pid).await;
                Ok(())
            }
            Err(error) => {
                if let Err(cleanup) = super::cleanup::stop_unit_only(&self.systemd, &task.unit).await {
                    tracing::warn!(task = %task.key, "cleaning up after a failed restore: {cleanup}");
                }
                task.mark_restore_pending();
                Err(error)
            }
        }
    }
}
