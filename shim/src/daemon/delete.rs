//! Delete: removes everything the task left (unit, runc state, mounts, cgroups, our files) and
//! forgets it. A running task must be killed first, as with runc-v2.
//!
//! For a container that exited, Delete answers without waiting for its unit's stop, which
//! [`super::unit_stops`] asks for and awaits: the unit records the exit outside the bundle.

use std::time::SystemTime;

use nix::sys::signal::Signal;

use super::cleanup::{begin_task_residue_removal, ContainerEnd};
use super::manager::TaskManager;
use super::process_exit::Deleted;
use super::task::{Exit, Task, TaskKey};
use crate::error::Error;

impl TaskManager {
    /// Deletes task `key`.
    pub async fn delete(&self, key: &TaskKey) -> Result<Deleted, Error> {
        let task = self.task(key)?;
        let previous = task.lifecycle().begin_delete().map_err(|refused| Error::BadState {
            namespace: key.namespace.clone(),
            id: key.id.clone(),
            state: refused.state,
            action: "delete",
        })?;

        let end = match previous.exit() {
            Some(_) if !task.spec_facts.poststop_hooks => ContainerEnd::ExitedWithoutPoststopHooks,
            _ => ContainerEnd::Unknown,
        };
        if let Err(error) = self.remove_residue(&task, end).await {
            // Back to where it was, so containerd may retry; an exit observed meanwhile (held
            // back while deleting) is published now, or it would be lost.
            let published = {
                let mut lifecycle = task.lifecycle();
                let seen = lifecycle.fail_delete(previous);
                if let Some((pid, exit)) = seen {
                    self.events.task_exited(&task, pid, exit);
                    task.announce_exit(exit);
                    super::exits::log_init_exit(&task, pid, exit);
                }
                seen.is_some()
            };
            if published {
                self.state.save(&task).written().await;
            }
            return Err(error);
        }

        let deleted = {
            let lifecycle = task.lifecycle();
            let pid = lifecycle.pid();
            // A task deleted before it ever ran was killed by `runc delete --force`.
            let exit = lifecycle.exit().unwrap_or(Exit { status: 128 + Signal::SIGKILL as u32, at: SystemTime::now() });
            self.events.task_deleted(&task, pid, exit);
            Deleted { pid, exit }
        };
        self.tasks.remove(key);
        self.state.remove(key).written().await;
        self.heap_trimmer.note_work();
        Ok(deleted)
    }

    /// Removes the task's residue. An exited container's unit may finish going down after the
    /// answer; any other is waited for, so what Delete killed is gone when it answers.
    async fn remove_residue(&self, task: &Task, end: ContainerEnd) -> Result<(), Error> {
        let pending_stop = begin_task_residue_removal(
            &self.systemd,
            &*self.runtimes,
            &self.rootfs_releases,
            &task.unit,
            &task.bundle,
            &task.exit_file,
            end,
        )
        .await?;
        if end == ContainerEnd::ExitedWithoutPoststopHooks {
            self.unit_stops.finish_in_background(pending_stop);
            Ok(())
        } else {
            pending_stop.finish().await
        }
    }
}
