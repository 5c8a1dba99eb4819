//! The daemon's task table, indexed by (namespace, id) and by unit object path (for routing
//! systemd's signals). The lock is held only to look up or change the maps, never across I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::task::{Task, TaskKey};

#[derive(Default)]
struct Maps {
    by_key: HashMap<TaskKey, Arc<Task>>,
    by_unit_path: HashMap<String, TaskKey>,
}

/// All tasks the daemon serves, in every namespace.
#[derive(Default)]
pub(crate) struct TaskTable {
    maps: Mutex<Maps>,
}

impl TaskTable {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `task`; returns it back if one with the same key exists.
    pub fn insert_new(&self, task: Arc<Task>) -> Result<(), Arc<Task>> {
        let mut maps = self.maps();
        if maps.by_key.contains_key(&task.key) {
            return Err(task);
        }
        maps.by_unit_path.insert(task.unit_path.clone(), task.key.clone());
        maps.by_key.insert(task.key.clone(), task);
        Ok(())
    }

    /// The task with `key`.
    pub fn get(&self, key: &TaskKey) -> Option<Arc<Task>> {
        self.maps().by_key.get(key).cloned()
    }

    /// The task whose unit has `object_path`.
    pub fn by_unit_path(&self, object_path: &str) -> Option<Arc<Task>> {
        let maps = self.maps();
        maps.by_unit_path.get(object_path).and_then(|key| maps.by_key.get(key)).cloned()
    }

    /// Removes the task with `key`.
    pub fn remove(&self, key: &TaskKey) {
        let mut maps = self.maps();
        if let Some(task) = maps.by_key.remove(key) {
            maps.by_unit_path.remove(&task.unit_path);
        }
    }

    /// How many tasks there are.
    pub fn len(&self) -> usize {
        self.maps().by_key.len()
    }
}
