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

/// Exec processes are not implemented yet: an exec id names nothing we know.
pub fn require_init(key: &TaskKey, exec_id: &str) -> Result<(), Error> {
    if exec_id.is_empty() {
        return Ok(());
    }
    validate_identifier(IdentifierKind::ExecId, exec_id)?;
    Err(Error::ExecNotFound { namespace: key.namespace.clone(), id: key.id.clone(), exec_id: exec_id.to_string() })
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
    fn exec_ids_are_not_found_until_exec_is_supported() {
        let key = TaskKey { namespace: "ns".into(), id: "t".into() };
        assert!(require_init(&key, "").is_ok());
        assert!(matches!(require_init(&key, "e1"), Err(Error::ExecNotFound { .. })));
        assert!(matches!(require_init(&key, "../e"), Err(Error::InvalidInput(_))));
    }
}
