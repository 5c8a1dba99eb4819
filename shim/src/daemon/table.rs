//! The daemon's task table, indexed by (namespace, id) and by unit object path (for routing
//! systemd's signals). The lock is held only to look up or change the maps, never across I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::task::{Task, TaskKey};

/// Whose unit an object path is: a task's init, or one of its exec processes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnitOwner {
    key: TaskKey,
    exec_id: Option<String>,
}

#[derive(Default)]
struct Maps {
    by_key: HashMap<TaskKey, Arc<Task>>,
    by_unit_path: HashMap<String, UnitOwner>,
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
        maps.by_unit_path.insert(task.unit_path.clone(), UnitOwner { key: task.key.clone(), exec_id: None });
        maps.by_key.insert(task.key.clone(), task);
        Ok(())
    }

    /// The task with `key`.
    pub fn get(&self, key: &TaskKey) -> Option<Arc<Task>> {
        self.maps().by_key.get(key).cloned()
    }

    /// The task whose unit (init's, or an exec's) has `object_path`, and the exec id if it is
    /// an exec's.
    pub fn by_unit_path(&self, object_path: &str) -> Option<(Arc<Task>, Option<String>)> {
        let maps = self.maps();
        let owner = maps.by_unit_path.get(object_path)?;
        let task = maps.by_key.get(&owner.key)?;
        Some((Arc::clone(task), owner.exec_id.clone()))
    }

    /// Routes the exec unit at `object_path` to exec `exec_id` of task `key`.
    pub fn add_exec_unit(&self, object_path: String, key: TaskKey, exec_id: String) {
        self.maps().by_unit_path.insert(object_path, UnitOwner { key, exec_id: Some(exec_id) });
    }

    /// Stops routing the unit at `object_path`.
    pub fn remove_unit_path(&self, object_path: &str) {
        self.maps().by_unit_path.remove(object_path);
    }

    /// Removes the task with `key`, and the routes to its units.
    pub fn remove(&self, key: &TaskKey) {
        let mut maps = self.maps();
        if maps.by_key.remove(key).is_some() {
            maps.by_unit_path.retain(|_, owner| owner.key != *key);
        }
    }

    /// How many tasks there are.
    pub fn len(&self) -> usize {
        self.maps().by_key.len()
    }
}
