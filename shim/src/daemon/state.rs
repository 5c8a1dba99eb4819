//! The daemon's task table on disk, so a restarted daemon can adopt every task: one JSON record
//! per task under `/run/containerd/io.containerd.systemd.v1/daemons/<daemon>/tasks/<namespace>/<id>.json`
//! (each daemon its own: see `DaemonIdentity::state_dir`), written atomically. One writer task applies saves and removals in the order they were made,
//! so a record never goes back in time; callers never wait for the disk.
//!
//! A record's lifecycle also says which events containerd has had: the daemon enqueues
//! `TaskExit` in the same step that makes a process `Exited`, and saves after that step. A
//! process that a record shows running but that systemd (or its `ExitStopPost` file) shows gone
//! exited while the daemon was down, and its `TaskExit` is still owed.

use std::path::{Path, PathBuf};

use runc_wrap::atomic_file::{read_json, remove_if_present, write_json_atomically};
use runc_wrap::protocol::{files, StdioOptions, StdioPaths};
use runc_wrap::runc::RuncSettings;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::exec_process::{ExecLifecycle, ExecProcess};
use super::task::{CriuPaths, Lifecycle, Task, TaskKey};
use crate::paths::DaemonIdentity;

/// Where the records of the daemon `identity` live.
pub fn records_dir(identity: &DaemonIdentity) -> PathBuf {
    identity.state_dir().join("tasks")
}

/// Everything needed to serve a task again, but what its bundle holds (the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// containerd namespace.
    pub namespace: String,
    /// Task id.
    pub id: String,
    /// The bundle.
    pub bundle: PathBuf,
    /// Where the init unit's `ExecStopPost` records the exit; absent in records of daemons that
    /// had it write into the bundle ([`TaskRecord::exit_file`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_file: Option<PathBuf>,
    /// The tag in the names of the task's units ([`unit_gen::UnitNaming`]); absent for plain
    /// names, the only ones daemons wrote before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_tag: Option<String>,
    /// Stdio as containerd gave it.
    pub stdio: StdioPaths,
    /// Stdio owner and log mode.
    pub stdio_options: StdioOptions,
    /// Whether init has a terminal.
    pub terminal: bool,
    /// runc binary ([`RuncSettings::binary`]; the record keeps the task's runc settings in
    /// fields of its own, named as records have always named them).
    pub runc_binary: PathBuf,
    /// runc state root.
    pub runc_root: PathBuf,
    /// CRIU, if found.
    pub criu: Option<PathBuf>,
    /// `runc create --no-pivot`; absent in records of daemons that did not keep it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runc_no_pivot_root: bool,
    /// `runc create --no-new-keyring`; absent in records of daemons that did not keep it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runc_no_new_keyring: bool,
    /// Default CRIU directories.
    pub criu_paths: CriuPaths,
    /// Created from a checkpoint and not started yet.
    pub restore_pending: bool,
    /// Where init is.
    pub lifecycle: Lifecycle,
    /// The exec processes.
    pub execs: Vec<ExecRecord>,
}

/// An exec process's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRecord {
    /// Exec id.
    pub exec_id: String,
    /// Stdio as containerd gave it.
    pub stdio: StdioPaths,
    /// Whether it has a terminal.
    pub terminal: bool,
    /// Where it is.
    pub lifecycle: ExecLifecycle,
}

impl TaskRecord {
    /// A snapshot of `task` (takes its locks briefly, one at a time).
    pub fn of(task: &Task) -> TaskRecord {
        let lifecycle = *task.lifecycle();
        let execs = task.exec_list().iter().map(|exec| ExecRecord::of(exec)).collect();
        let runc = &task.runc.runc().settings;
        TaskRecord {
            namespace: task.key.namespace.clone(),
            id: task.key.id.clone(),
            bundle: task.bundle.clone(),
            exit_file: Some(task.exit_file.clone()),
            unit_tag: task.unit_naming.tag().map(ToString::to_string),
            stdio: task.stdio.clone(),
            stdio_options: task.stdio_options,
            terminal: task.terminal,
            runc_binary: runc.binary.clone(),
            runc_root: runc.root.clone(),
            criu: runc.criu.clone(),
            runc_no_pivot_root: runc.no_pivot_root,
            runc_no_new_keyring: runc.no_new_keyring,
            criu_paths: task.criu_paths.clone(),
            restore_pending: task.is_restore_pending(),
            lifecycle,
            execs,
        }
    }

    /// The task's runc settings.
    pub fn runc_settings(&self) -> RuncSettings {
        RuncSettings {
            binary: self.runc_binary.clone(),
            root: self.runc_root.clone(),
            criu: self.criu.clone(),
            no_pivot_root: self.runc_no_pivot_root,
            no_new_keyring: self.runc_no_new_keyring,
        }
    }

    /// The task's key.
    pub fn key(&self) -> TaskKey {
        TaskKey { namespace: self.namespace.clone(), id: self.id.clone() }
    }

    /// Where the init unit's `ExecStopPost` records the exit: the bundle's `exit-state.json`
    /// for units made by daemons that did not record the place.
    pub fn exit_file(&self) -> PathBuf {
        self.exit_file.clone().unwrap_or_else(|| self.bundle.join(files::EXIT_STATE))
    }
}

impl ExecRecord {
    fn of(exec: &ExecProcess) -> ExecRecord {
        ExecRecord {
            exec_id: exec.exec_id.clone(),
            stdio: exec.stdio.clone(),
            terminal: exec.terminal,
            lifecycle: *exec.lifecycle(),
        }
    }
}

enum Change {
    Save(Box<TaskRecord>, oneshot::Sender<()>),
    Remove(TaskKey, oneshot::Sender<()>),
    Flush(oneshot::Sender<()>),
}

/// A change handed to the writer; [`Saved::written`] waits until it is on disk. Calls that
/// answer containerd wait for it first, so a task containerd was told about is never missing
/// from the records after a crash.
pub struct Saved(oneshot::Receiver<()>);

impl Saved {
    /// Waits until the change is written (or the writer is gone).
    pub async fn written(self) {
        let _ = self.0.await;
    }
}

/// The sending side of the record writer.
#[derive(Clone)]
pub struct StateStore {
    sender: mpsc::UnboundedSender<Change>,
    dir: PathBuf,
}

impl StateStore {
    /// Starts the writer for records under `dir`.
    pub fn spawn(dir: PathBuf) -> StateStore {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_all(dir.clone(), receiver));
        StateStore { sender, dir }
    }

    /// The directory the records are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `task`'s current state.
    pub fn save(&self, task: &Task) -> Saved {
        let (done, saved) = oneshot::channel();
        let _ = self.sender.send(Change::Save(Box::new(TaskRecord::of(task)), done));
        Saved(saved)
    }

    /// Removes task `key`'s record.
    pub fn remove(&self, key: &TaskKey) -> Saved {
        let (done, saved) = oneshot::channel();
        let _ = self.sender.send(Change::Remove(key.clone(), done));
        Saved(saved)
    }

    /// Waits until every change handed over so far is written.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.sender.send(Change::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }
}

/// The record file of task `key` under `dir` (namespaces and ids are validated identifiers).
pub fn record_path(dir: &Path, key: &TaskKey) -> PathBuf {
    dir.join(&key.namespace).join(format!("{}.json", key.id))
}

async fn write_all(dir: PathBuf, mut receiver: mpsc::UnboundedReceiver<Change>) {
    while let Some(change) = receiver.recv().await {
        let (write, done) = match change {
            Change::Save(record, done) => (Write::Save(record), done),
            Change::Remove(key, done) => (Write::Remove(key), done),
            Change::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let dir = dir.clone();
        let written = tokio::task::spawn_blocking(move || apply(&dir, write)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!("task state: {error}"),
            Err(error) => tracing::error!("task state writer: {error}"),
        }
        let _ = done.send(());
    }
}

/// One file operation of the writer.
enum Write {
    Save(Box<TaskRecord>),
    Remove(TaskKey),
}

fn apply(dir: &Path, write: Write) -> Result<(), runc_wrap::Error> {
    match write {
        Write::Save(record) => {
            let path = record_path(dir, &record.key());
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|source| runc_wrap::Error::StateFile { path: parent.to_path_buf(), source })?;
            }
            write_json_atomically(&path, &*record)
        }
        Write::Remove(key) => remove_if_present(&record_path(dir, &key)),
    }
}

/// A record as found on disk, with the file it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record file.
    pub path: PathBuf,
    /// What it holds, not checked yet (see `record_check`).
    pub record: TaskRecord,
}

/// Every record under `dir`; unreadable ones are logged and skipped (and left for inspection).
pub fn load_all(dir: &Path) -> Vec<StoredRecord> {
    let Ok(namespaces) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for namespace in namespaces.flatten() {
        let Ok(files) = std::fs::read_dir(namespace.path()) else { continue };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().and_then(|extension| extension.to_str()) != Some("json") {
                continue;
            }
            match read_json::<TaskRecord>(&path) {
                Ok(record) => records.push(StoredRecord { path, record }),
                Err(error) => tracing::error!("skipping task record {}: {error}", path.display()),
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::task::Exit;
    use std::time::{Duration, UNIX_EPOCH};

    fn record(id: &str, lifecycle: Lifecycle) -> TaskRecord {
        TaskRecord {
            namespace: "default".into(),
            id: id.into(),
            bundle: "/run/b".into(),
            exit_file: Some("/run/exits/u.json".into()),
            unit_tag: None,
            stdio: StdioPaths { stdin: None, stdout: Some("/run/f/out".into()), stderr: None },
            stdio_options: StdioOptions::default(),
            terminal: false,
            runc_binary: "/usr/sbin/runc".into(),
            runc_root: "/run/r".into(),
            criu: None,
            runc_no_pivot_root: false,
            runc_no_new_keyring: false,
            criu_paths: CriuPaths::default(),
            restore_pending: false,
            lifecycle,
            execs: vec![ExecRecord {
                exec_id: "e1".into(),
                stdio: StdioPaths::default(),
                terminal: true,
                lifecycle: ExecLifecycle::Running { pid: 9 },
            }],
        }
    }

    #[test]
    fn a_records_runc_settings_are_the_tasks_and_an_older_record_without_create_flags_reads_as_none_set() {
        let mut flagged = record("t1", Lifecycle::Running { pid: 7 });
        flagged.runc_no_pivot_root = true;
        flagged.criu = Some("/usr/sbin/criu".into());
        let json = serde_json::to_value(&flagged).unwrap();
        assert_eq!(json["runc_no_pivot_root"], true);
        assert!(json.get("runc_no_new_keyring").is_none(), "unset flags are left out: {json}");
        let settings = serde_json::from_value::<TaskRecord>(json).unwrap().runc_settings();
        assert_eq!(
            settings,
            RuncSettings {
                binary: "/usr/sbin/runc".into(),
                root: "/run/r".into(),
                criu: Some("/usr/sbin/criu".into()),
                no_pivot_root: true,
                no_new_keyring: false,
            }
        );
        let mut older = serde_json::to_value(record("t1", Lifecycle::Running { pid: 7 })).unwrap();
        let fields = older.as_object_mut().unwrap();
        assert!(fields.remove("runc_no_pivot_root").is_none() && fields.remove("runc_no_new_keyring").is_none());
        let older: TaskRecord = serde_json::from_value(older).unwrap();
        assert!(!older.runc_settings().no_pivot_root && !older.runc_settings().no_new_keyring);
    }

    #[test]
    fn records_round_trip_through_files_and_removal_deletes_them() {
        let dir = std::env::temp_dir().join(format!("shim-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let exited = Lifecycle::Exited { pid: 7, exit: Exit { status: 3, at: UNIX_EPOCH + Duration::from_secs(5) } };
        for change in [
            Write::Save(Box::new(record("t1", Lifecycle::Running { pid: 7 }))),
            Write::Save(Box::new(record("t1", exited))),
            Write::Save(Box::new(record("t2", Lifecycle::Created { pid: 8 }))),
        ] {
            apply(&dir, change).unwrap();
        }
        let mut loaded: Vec<TaskRecord> = load_all(&dir).into_iter().map(|stored| stored.record).collect();
        loaded.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            loaded,
            vec![record("t1", exited), record("t2", Lifecycle::Created { pid: 8 })],
            "the last save wins"
        );
        apply(&dir, Write::Remove(TaskKey { namespace: "default".into(), id: "t1".into() })).unwrap();
        assert_eq!(load_all(&dir).len(), 1);
        std::fs::write(dir.join("default").join("broken.json"), "{").unwrap();
        assert_eq!(load_all(&dir).len(), 1, "a broken record is skipped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
