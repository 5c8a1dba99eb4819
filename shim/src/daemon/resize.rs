//! ResizePty: sets a terminal's window size. The pty master is held by the copier process in
//! the container's (or exec's) unit; its console record names the copier's pid and master fd,
//! and we take a duplicate of that fd (pidfd_getfd) to set the size. No protocol to the copier,
//! and nothing of the terminal lives in the daemon. The recorded pid is trusted only for a
//! process in the task's (or exec's) own unit, checked through a pidfd that then takes the fd:
//! once the copier is gone its pid may name another process, whose terminal is none of ours.

use std::path::{Path, PathBuf};

use runc_wrap::atomic_file::read_json;
use runc_wrap::protocol::{files, ConsoleRecord};

use super::manager::TaskManager;
use super::request::ProcessRef;
use super::task::TaskKey;
use super::unit_process::{pin_unit_process, UnitProcess};
use crate::blocking::blocking;
use crate::error::Error;

impl TaskManager {
    /// Sets the window size of `process`'s terminal of task `key`.
    pub async fn resize_pty(&self, key: &TaskKey, process: ProcessRef, rows: u32, cols: u32) -> Result<(), Error> {
        let rows = u16::try_from(rows).map_err(|_| Error::InvalidRequest(format!("{rows} rows is too many")))?;
        let cols = u16::try_from(cols).map_err(|_| Error::InvalidRequest(format!("{cols} columns is too many")))?;
        let (terminal, record, unit, name) = match &process {
            ProcessRef::Init => {
                let task = self.task(key)?;
                (task.terminal, task.bundle.join(files::CONSOLE_RECORD), task.unit.to_string(), key.to_string())
            }
            ProcessRef::Exec(exec_id) => {
                let (_task, exec) = self.exec_of(key, exec_id)?;
                let name = format!("exec {exec_id} of {key}");
                (exec.terminal, exec.dir.join(files::exec::CONSOLE_RECORD), exec.unit.to_string(), name)
            }
        };
        if !terminal {
            return Err(Error::NoTerminal { process: name });
        }
        let copier = Copier { record, unit, name };
        blocking("resizing the terminal", move || set_size(&copier, Path::new("/proc"), rows, cols)).await?
    }
}

/// Where a terminal's copier is recorded, and the unit it must live in.
struct Copier {
    record: PathBuf,
    unit: String,
    name: String,
}

/// A terminal whose copier is gone belongs to a process that ended: there is nothing left to
/// resize, which is not an error (containerd resizes right after Start, when a short process may
/// already be done; runc-v2 accepts that too). Nor is a recorded pid that now names a process
/// outside the unit (the copier's pid, reused): that terminal is left alone. `proc`: where
/// procfs is (tests use another process's view of it only through the real one).
fn set_size(copier: &Copier, proc: &Path, rows: u16, cols: u16) -> Result<(), Error> {
    let name = &copier.name;
    let record: ConsoleRecord = read_json(&copier.record).map_err(Error::Runc)?;
    let terminal_error = |source| Error::Terminal { process: name.clone(), source };
    // The pidfd pins the process: the one checked here is the one whose fd is taken below.
    let pidfd = match pin_unit_process(proc, record.pid, &copier.unit) {
        Ok(UnitProcess::InUnit(pidfd)) => pidfd,
        Ok(UnitProcess::Gone) => {
            tracing::debug!("not resizing the terminal of {name}: it is closed");
            return Ok(());
        }
        Ok(UnitProcess::Elsewhere) => {
            tracing::warn!("not resizing the terminal of {name}: pid {} is no longer its copier", record.pid);
            return Ok(());
        }
        Err(source) => return Err(terminal_error(source)),
    };
    let master = match pty::master_of_pidfd(std::os::fd::AsFd::as_fd(&pidfd), record.pid, record.master_fd) {
        Ok(master) => master,
        Err(pty::Error::NoSuchProcess { .. } | pty::Error::NoSuchFd { .. }) => {
            tracing::debug!("not resizing the terminal of {name}: it is closed");
            return Ok(());
        }
        Err(source) => return Err(terminal_error(source)),
    };
    pty::set_window_size(std::os::fd::AsFd::as_fd(&master), rows, cols).map_err(terminal_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runc_wrap::atomic_file::write_json_atomically;
    use std::os::fd::{AsFd, AsRawFd};

    #[test]
    fn a_recorded_pid_outside_the_unit_gets_no_resize() {
        // A terminal of this test process, recorded as if it were a copier's: this process is
        // in no container unit, as a process that took a dead copier's pid would not be.
        let pty = nix::pty::openpty(None, None).expect("a pty");
        pty::set_window_size(pty.master.as_fd(), 24, 80).expect("initial size");
        let dir = std::env::temp_dir().join(format!("resize-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let record = dir.join("console.json");
        let pid = std::process::id();
        write_json_atomically(&record, &ConsoleRecord { pid, master_fd: pty.master.as_raw_fd() }).expect("record");
        let copier = Copier { record, unit: "containerd-default-t1.service".into(), name: "t1".into() };
        set_size(&copier, Path::new("/proc"), 50, 132).expect("not an error");
        assert_eq!(pty::window_size(pty.master.as_fd()).expect("size"), (24, 80), "left alone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
