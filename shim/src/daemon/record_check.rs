//! Which task records a restarted daemon may trust. A record comes back from disk, where
//! anything may have changed it since it was written, and what it holds becomes unit names,
//! paths the daemon later removes and binaries it runs. So it passes the same checks, by the
//! same functions, as the Create request that made it, and it must lie where the record of the
//! task it names belongs: a copy of a record under another name would otherwise adopt a task
//! twice, and the failing second adoption used to delete the first one's record. A record that
//! fails is logged and left where it is, neither adopted nor deleted.

use std::collections::HashSet;
use std::path::Path;

use unit_gen::{validate_identifier, DaemonTag, IdentifierKind, UnitNaming};

use super::bundle::{bundle_path, stdio_path};
use super::request::{process_ref, task_key};
use super::state::{record_path, StoredRecord, TaskRecord};
use super::task::TaskKey;
use crate::error::Error;
use crate::paths::exit_file_of;
use runc_wrap::protocol::StdioPaths;

/// The records of `stored` that pass [`check_record`], at most one per task; the others are
/// logged and left alone.
pub fn trusted_records(
    stored: Vec<StoredRecord>,
    records_dir: &Path,
    exits_dir: &Path,
    naming: &UnitNaming,
) -> Vec<TaskRecord> {
    let mut keys = HashSet::new();
    let mut trusted = Vec::new();
    for StoredRecord { path, record } in stored {
        match check_record(&path, &record, records_dir, exits_dir, naming) {
            // One file per task path makes a second record of a task impossible once the path
            // is checked; should one still come, the first is kept and nothing is removed.
            Ok(key) if !keys.insert(key.clone()) => {
                tracing::error!(task = %key, "a second record of the task at {}: leaving it alone", path.display());
            }
            Ok(_) => trusted.push(record),
            Err(error) => tracing::error!("{error}; leaving it in place, neither adopted nor removed"),
        }
    }
    trusted
}

/// Checks `record`, read from `path`, as its Create was checked: the namespace, task id and exec
/// ids are identifiers, the bundle and stdio paths are ones a request may give, runc's binary
/// and root are absolute, the exit file is the one the daemon gives the task's unit (or the
/// bundle's, for units of older daemons), its unit is named as this daemon (`naming`) or a
/// daemon before it names units, and `path` is where the task's record belongs.
pub fn check_record(
    path: &Path,
    record: &TaskRecord,
    records_dir: &Path,
    exits_dir: &Path,
    naming: &UnitNaming,
) -> Result<TaskKey, Error> {
    let untrusted = |source| Error::UntrustedRecord { path: path.to_path_buf(), source: Box::new(source) };
    let key = record_key(record).map_err(untrusted)?;
    let expected = record_path(records_dir, &key);
    if path != expected {
        return Err(Error::MisplacedRecord {
            path: path.to_path_buf(),
            namespace: key.namespace,
            id: key.id,
            expected,
        });
    }
    check_contents(record, &key, exits_dir, naming).map_err(untrusted)?;
    Ok(key)
}

/// The task key a record names, checked as a request's.
fn record_key(record: &TaskRecord) -> Result<TaskKey, Error> {
    validate_identifier(IdentifierKind::Namespace, &record.namespace)?;
    task_key(&record.namespace, &record.id)
}

/// How the units of `record`'s task are named: as this daemon names them (`own`), or plainly,
/// for units made before daemons of other containerds than the default one tagged their names.
pub fn unit_naming_of(record: &TaskRecord, own: &UnitNaming) -> Result<UnitNaming, Error> {
    match record.unit_tag.as_deref() {
        None => Ok(UnitNaming::Plain),
        Some(tag) if own.tag().map(DaemonTag::as_str) == Some(tag) => Ok(own.clone()),
        Some(tag) => Err(Error::InvalidRequest(format!("unit tag {tag:?} is not this daemon's"))),
    }
}

fn check_contents(record: &TaskRecord, key: &TaskKey, exits_dir: &Path, naming: &UnitNaming) -> Result<(), Error> {
    bundle_path(utf8("bundle", &record.bundle)?)?;
    let naming = unit_naming_of(record, naming)?;
    if let Some(exit_file) = &record.exit_file {
        let expected = exit_file_of(exits_dir, naming.task(&key.namespace, &key.id).as_str());
        if *exit_file != expected {
            return Err(Error::InvalidRequest(format!(
                "exit file {} is not the task unit's {}",
                exit_file.display(),
                expected.display()
            )));
        }
    }
    check_stdio(&record.stdio)?;
    for (what, binary) in [("runc binary", Some(&record.runc_binary)), ("runc root", Some(&record.runc_root))]
        .into_iter()
        .chain([("criu binary", record.criu.as_ref())])
    {
        if let Some(binary) = binary.filter(|binary| !binary.is_absolute()) {
            return Err(Error::InvalidRequest(format!("{what} {} is not absolute", binary.display())));
        }
    }
    for exec in &record.execs {
        if exec.exec_id.is_empty() {
            return Err(Error::InvalidRequest("an exec record without an exec id".into()));
        }
        process_ref(&exec.exec_id)?;
        check_stdio(&exec.stdio)?;
    }
    Ok(())
}

fn check_stdio(stdio: &StdioPaths) -> Result<(), Error> {
    for (stream, value) in [("stdin", &stdio.stdin), ("stdout", &stdio.stdout), ("stderr", &stdio.stderr)] {
        if let Some(value) = value {
            stdio_path(stream, utf8(stream, value)?)?;
        }
    }
    Ok(())
}

/// `path` as text, as containerd sends it: a record with a path no request could hold is refused.
fn utf8<'a>(what: &str, path: &'a Path) -> Result<&'a str, Error> {
    path.to_str().ok_or_else(|| Error::InvalidRequest(format!("{what} {} is not UTF-8", path.display())))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use runc_wrap::protocol::StdioOptions;

    use super::*;
    use crate::daemon::exec_process::ExecLifecycle;
    use crate::daemon::state::ExecRecord;
    use crate::daemon::task::{CriuPaths, Lifecycle};

    const RECORDS: &str = "/state/tasks";
    const EXITS: &str = "/state/exits";

    fn record(namespace: &str, id: &str) -> TaskRecord {
        TaskRecord {
            namespace: namespace.into(),
            id: id.into(),
            bundle: "/run/containerd/io.containerd.runtime.v2.task/default/t1".into(),
            exit_file: Some(exit_file_of(Path::new(EXITS), unit_gen::UnitName::for_task(namespace, id).as_str())),
            unit_tag: None,
            stdio: StdioPaths {
                stdin: None,
                stdout: Some("/run/f/out".into()),
                stderr: Some("file:///var/log/x".into()),
            },
            stdio_options: StdioOptions::default(),
            terminal: false,
            runc_binary: "/usr/sbin/runc".into(),
            runc_root: "/run/containerd/runc/default".into(),
            criu: None,
            runc_no_pivot_root: false,
            runc_no_new_keyring: false,
            criu_paths: CriuPaths::default(),
            restore_pending: false,
            lifecycle: Lifecycle::Running { pid: 7 },
            execs: vec![ExecRecord {
                exec_id: "e1".into(),
                stdio: StdioPaths::default(),
                terminal: false,
                lifecycle: ExecLifecycle::Running { pid: 9 },
            }],
        }
    }

    fn stored_at_its_place(record: TaskRecord) -> StoredRecord {
        let path =
            record_path(Path::new(RECORDS), &TaskKey { namespace: record.namespace.clone(), id: record.id.clone() });
        StoredRecord { path, record }
    }

    fn check(stored: &StoredRecord) -> Result<TaskKey, Error> {
        check_record(&stored.path, &stored.record, Path::new(RECORDS), Path::new(EXITS), &UnitNaming::Plain)
    }

    #[test]
    fn a_record_as_the_daemon_writes_it_is_trusted() {
        let key = check(&stored_at_its_place(record("default", "t1"))).expect("trusted");
        assert_eq!(key, TaskKey { namespace: "default".into(), id: "t1".into() });
        let mut older = record("default", "t1");
        older.exit_file = None;
        check(&stored_at_its_place(older)).expect("a record of an older daemon, exit file in the bundle");
    }

    #[test]
    fn records_failing_a_create_check_are_refused() {
        struct Case {
            name: &'static str,
            change: fn(&mut TaskRecord),
        }
        let cases = [
            Case { name: "namespace ..", change: |r| r.namespace = "..".into() },
            Case { name: "namespace with a slash", change: |r| r.namespace = "a/b".into() },
            Case { name: "task id ..", change: |r| r.id = "..".into() },
            Case { name: "task id with a slash", change: |r| r.id = "../../etc/x".into() },
            Case { name: "relative bundle", change: |r| r.bundle = "bundle".into() },
            Case { name: "empty bundle", change: |r| r.bundle = PathBuf::new() },
            Case { name: "exit file elsewhere", change: |r| r.exit_file = Some("/etc/passwd".into()) },
            Case { name: "relative stdout", change: |r| r.stdio.stdout = Some("out".into()) },
            Case { name: "unknown stdio scheme", change: |r| r.stdio.stderr = Some("http://x".into()) },
            Case { name: "relative runc binary", change: |r| r.runc_binary = "runc".into() },
            Case { name: "relative runc root", change: |r| r.runc_root = "root".into() },
            Case { name: "relative criu", change: |r| r.criu = Some("criu".into()) },
            Case { name: "exec id ..", change: |r| r.execs[0].exec_id = "..".into() },
            Case { name: "empty exec id", change: |r| r.execs[0].exec_id = String::new() },
            Case { name: "relative exec stdin", change: |r| r.execs[0].stdio.stdin = Some("in".into()) },
        ];
        for case in cases {
            let mut record = record("default", "t1");
            (case.change)(&mut record);
            // Stored where a record of its (possibly hostile) key would be written.
            let path = Path::new(RECORDS).join(&record.namespace).join(format!("{}.json", record.id));
            match check(&StoredRecord { path, record }) {
                Err(Error::UntrustedRecord { .. }) => {}
                other => panic!("case {:?}: expected UntrustedRecord, got {other:?}", case.name),
            }
        }
    }

    #[test]
    fn a_records_unit_is_named_as_this_daemon_or_one_before_it_named_units() {
        let own = UnitNaming::Tagged(DaemonTag::parse("0a1b2c3d").unwrap());
        let plain = record("default", "web");
        assert_eq!(unit_naming_of(&plain, &own).unwrap(), UnitNaming::Plain, "a record from before tags");
        let tagged = TaskRecord { unit_tag: Some("0a1b2c3d".into()), ..plain.clone() };
        assert_eq!(unit_naming_of(&tagged, &own).unwrap(), own);
        for foreign in ["ffffffff", "../../x", ""] {
            let record = TaskRecord { unit_tag: Some(foreign.into()), ..plain.clone() };
            assert!(unit_naming_of(&record, &own).is_err(), "{foreign:?}");
            assert!(unit_naming_of(&record, &UnitNaming::Plain).is_err(), "{foreign:?}");
        }
        // The exit file must be the one of the unit the record names.
        let stored = StoredRecord {
            path: record_path(Path::new(RECORDS), &plain.key()),
            record: TaskRecord {
                exit_file: Some(exit_file_of(Path::new(EXITS), own.task("default", "web").as_str())),
                ..plain.clone()
            },
        };
        assert!(check_record(&stored.path, &stored.record, Path::new(RECORDS), Path::new(EXITS), &own).is_err());
        let stored =
            StoredRecord { record: TaskRecord { unit_tag: Some("0a1b2c3d".into()), ..stored.record }, ..stored };
        assert!(check_record(&stored.path, &stored.record, Path::new(RECORDS), Path::new(EXITS), &own).is_ok());
    }

    #[test]
    fn a_copy_under_another_tasks_name_is_refused_and_the_survivor_kept() {
        let survivor = stored_at_its_place(record("default", "t1"));
        let copy = StoredRecord { path: Path::new(RECORDS).join("default/t2.json"), record: survivor.record.clone() };
        assert!(matches!(check(&copy), Err(Error::MisplacedRecord { .. })));
        for order in [vec![copy.clone(), survivor.clone()], vec![survivor.clone(), copy.clone()]] {
            let trusted = trusted_records(order, Path::new(RECORDS), Path::new(EXITS), &UnitNaming::Plain);
            assert_eq!(trusted, vec![survivor.record.clone()]);
        }
    }
}
