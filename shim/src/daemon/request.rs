//! What every request needs before it reaches a task: a validated task key. The namespace is
//! the one the ttrpc socket serves (containerd 1.6 sends none with its calls).

use unit_gen::{validate_identifier, IdentifierKind};

use super::task::TaskKey;
use crate::error::Error;

/// The validated key of task `id` in `namespace`.
pub fn task_key(namespace: &str, id: &str) -> Result<TaskKey, Error> {
    validate_identifier(IdentifierKind::TaskId, id)?;
    Ok(TaskKey { namespace: namespace.to_string(), id: id.to_string() })
}

/// Which process of a task a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessRef {
    /// The container's init (an empty exec id).
    Init,
    /// Exec process with this (validated) id.
    Exec(String),
}

/// The process named by `exec_id`: init when empty, else a validated exec id.
pub fn process_ref(exec_id: &str) -> Result<ProcessRef, Error> {
    if exec_id.is_empty() {
        return Ok(ProcessRef::Init);
    }
    validate_identifier(IdentifierKind::ExecId, exec_id)?;
    Ok(ProcessRef::Exec(exec_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_task_ids_are_refused() {
        for id in ["a/b", "..", &"x".repeat(300), "a\0b", "", "a b", "ü"] {
            assert!(matches!(task_key("default", id), Err(Error::InvalidInput(_))), "{id:?}");
        }
        assert_eq!(task_key("default", "t1").unwrap(), TaskKey { namespace: "default".into(), id: "t1".into() });
    }

    #[test]
    fn exec_ids_are_validated() {
        assert_eq!(process_ref("").unwrap(), ProcessRef::Init);
        assert_eq!(process_ref("e1").unwrap(), ProcessRef::Exec("e1".into()));
        for hostile in ["../e", "a/b", "a\0b", &"e".repeat(300), "é"] {
            assert!(matches!(process_ref(hostile), Err(Error::InvalidInput(_))), "{hostile:?}");
        }
    }
}
