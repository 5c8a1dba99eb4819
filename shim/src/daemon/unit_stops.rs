//! Units whose stop finishes after Delete has answered.
//!
//! Stopping an exited container's unit makes systemd spawn its `ExecStopPost` helper, which
//! records the exit durably; on hybrid cgroup hosts that alone takes 5–6 ms, during which
//! nothing is left for containerd to wait for: the exit status is known, runc's state and the
//! mounts are gone, and the record is removed. So Delete answers first; the stop is asked for
//! and awaited here, with what may only be removed after it. A Create of a task with
//! the same unit name waits for that stop first, so a unit name is never reused while its
//! previous unit is still going down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use unit_gen::UnitName;

use super::cleanup::PendingStop;

/// The stops under way, by unit name.
#[derive(Default)]
pub struct UnitStops {
    pending: Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>,
}

impl UnitStops {
    /// Finishes `stop` on its own task; [`UnitStops::settled`] waits for it until then.
    pub fn finish_in_background(&self, stop: PendingStop) {
        let unit = stop.unit().as_str().to_string();
        let (done, receiver) = watch::channel(false);
        self.lock().insert(unit.clone(), receiver.clone());
        let pending = Arc::clone(&self.pending);
        tokio::spawn(async move {
            if let Err(error) = stop.finish().await {
                tracing::warn!(unit = %unit, "finishing the stop of a deleted task's unit: {error}");
            }
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.get(&unit).is_some_and(|entry| entry.same_channel(&receiver)) {
                pending.remove(&unit);
            }
            drop(pending);
            let _ = done.send(true);
        });
    }

    /// Returns once no stop of `unit` is under way.
    pub async fn settled(&self, unit: &UnitName) {
        let receiver = self.lock().get(unit.as_str()).cloned();
        if let Some(mut receiver) = receiver {
            // An error means the finishing task is gone, which it only is once done.
            let _ = receiver.wait_for(|done| *done).await;
        }
    }

    /// Returns once every stop under way now is done.
    pub async fn all_settled(&self) {
        let receivers: Vec<_> = self.lock().values().cloned().collect();
        for mut receiver in receivers {
            let _ = receiver.wait_for(|done| *done).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<bool>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
