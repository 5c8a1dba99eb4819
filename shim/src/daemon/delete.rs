//! Delete: removes everything the task left (unit, runc state, mounts, cgroups, our files) and
//! forgets it. A running task must be killed first, as with runc-v2.

use std::time::SystemTime;

use nix::sys::signal::Signal;

use super::cleanup::remove_task_residue;
use super::manager::TaskManager;
use super::task::{Exit, Lifecycle, TaskKey};
use crate::error::Error;

/// What Delete reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Init pid.
    pub pid: u32,
    /// How init ended.
    pub exit: Exit,
}

impl TaskManager {
    /// Deletes task `key`.
    pub async fn delete(&self, key: &TaskKey) -> Result<Deleted, Error> {
        let task = self.task(key)?;
        let previous = {
            let mut lifecycle = task.lifecycle();
            let previous = *lifecycle;
            match previous {
                Lifecycle::Created { pid } => *lifecycle = Lifecycle::Deleting { pid, exit: None },
                Lifecycle::Exited { pid, exit } => *lifecycle = Lifecycle::Deleting { pid, exit: Some(exit) },
                other => {
                    return Err(Error::BadState {
                        namespace: key.namespace.clone(),
                        id: key.id.clone(),
                        state: other.name(),
                        action: "delete",
                    })
                }
            }
            previous
        };

        if let Err(error) = remove_task_residue(&self.systemd, &task.unit, &task.bundle).await {
            *task.lifecycle() = previous; // let containerd retry
            return Err(error);
        }

        let deleted = {
            let lifecycle = task.lifecycle();
            let pid = lifecycle.pid();
            // A task deleted before it ever ran was killed by `runc delete --force`.
            let exit = lifecycle.exit().unwrap_or(Exit {
                status: 128 + Signal::SIGKILL as u32,
                at: SystemTime::now(),
            });
            self.events.task_deleted(&task, pid, exit);
            Deleted { pid, exit }
        };
        self.tasks.remove(key);
        Ok(deleted)
    }
}
