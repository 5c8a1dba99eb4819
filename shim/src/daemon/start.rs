//! Start: `runc start` lets the created init exec the container's process. An exit observed
//! while runc runs is held back and published after `TaskStart`, so containerd always sees
//! create → start → exit in that order.

use super::manager::TaskManager;
use super::task::{Lifecycle, TaskKey};
use crate::error::Error;

impl TaskManager {
    /// Starts task `key`; returns its init pid.
    pub async fn start(&self, key: &TaskKey) -> Result<u32, Error> {
        let task = self.task(key)?;
        let pid = {
            let mut lifecycle = task.lifecycle();
            match *lifecycle {
                Lifecycle::Created { pid } => {
                    *lifecycle = Lifecycle::Starting {
                        pid,
                        pending_exit: None,
                    };
                    pid
                }
                other => {
                    return Err(Error::BadState {
                        namespace: key.namespace.clone(),
                        id: key.id.clone(),
                        state: other.name(),
                        action: "start",
                    })
                }
            }
        };

        let started = task.runc.start(&key.id).await;

        let mut lifecycle = task.lifecycle();
        let Lifecycle::Starting { pending_exit, .. } = *lifecycle else {
            // Only this function leaves Starting; anything else is a bug worth shouting about.
            tracing::error!(task = %key, "state changed under a start: {:?}", *lifecycle);
            return Err(Error::BadState {
                namespace: key.namespace.clone(),
                id: key.id.clone(),
                state: lifecycle.name(),
                action: "start",
            });
        };
        match (started, pending_exit) {
            (Ok(()), None) => {
                *lifecycle = Lifecycle::Running { pid };
                self.events.task_started(&task, pid);
                Ok(pid)
            }
            (Ok(()), Some(exit)) => {
                *lifecycle = Lifecycle::Exited { pid, exit };
                self.events.task_started(&task, pid);
                self.events.task_exited(&task, pid, exit);
                task.announce_exit(exit);
                Ok(pid)
            }
            (Err(error), pending_exit) => {
                match pending_exit {
                    Some(exit) => {
                        *lifecycle = Lifecycle::Exited { pid, exit };
                        self.events.task_exited(&task, pid, exit);
                        task.announce_exit(exit);
                    }
                    None => *lifecycle = Lifecycle::Created { pid },
                }
                Err(Error::Runc(error))
            }
        }
    }
}
