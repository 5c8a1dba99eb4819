//! Pause and Resume: `runc pause`/`runc resume` freeze and thaw every process of the container
//! (the freezer cgroup on v1, `cgroup.freeze` on v2). The unit stays active meanwhile.

use super::manager::TaskManager;
use super::task::TaskKey;
use crate::error::Error;

impl TaskManager {
    /// Freezes task `key`; publishes `TaskPaused`.
    pub async fn pause(&self, key: &TaskKey) -> Result<(), Error> {
        let task = self.task(key)?;
        self.require_state(&task, "pause", |lifecycle| matches!(lifecycle, super::task::Lifecycle::Running { .. }))?;
        task.runc.pause(&key.id).await.map_err(Error::Runc)?;
        let paused = task.lifecycle().finish_pause();
        match paused {
            Ok(()) => {
                self.events.task_paused(&task);
                self.state.save(&task).written().await;
            }
            // It died while runc froze it: the exit is what counts.
            Err(refused) => tracing::info!(task = %key, "task is {} after runc pause", refused.state),
        }
        Ok(())
    }

    /// Thaws task `key`; publishes `TaskResumed`.
    pub async fn resume(&self, key: &TaskKey) -> Result<(), Error> {
        let task = self.task(key)?;
        self.require_state(&task, "resume", |lifecycle| matches!(lifecycle, super::task::Lifecycle::Paused { .. }))?;
        task.runc.resume(&key.id).await.map_err(Error::Runc)?;
        let resumed = task.lifecycle().finish_resume();
        match resumed {
            Ok(()) => {
                self.events.task_resumed(&task);
                self.state.save(&task).written().await;
            }
            Err(refused) => tracing::info!(task = %key, "task is {} after runc resume", refused.state),
        }
        Ok(())
    }
}
