//! ResizePty: sets a terminal's window size. The pty master is held by the copier process in
//! the container's (or exec's) unit; its console record names the copier's pid and master fd,
//! and we take a duplicate of that fd (pidfd_getfd) to set the size. No protocol to the copier,
//! and nothing of the terminal lives in the daemon.

use std::path::PathBuf;

use runc_wrap::atomic_file::read_json;
use runc_wrap::protocol::{files, ConsoleRecord};

use super::manager::TaskManager;
use super::request::ProcessRef;
use super::task::TaskKey;
use crate::blocking::blocking;
use crate::error::Error;

impl TaskManager {
    /// Sets the window size of `process`'s terminal of task `key`.
    pub async fn resize_pty(&self, key: &TaskKey, process: ProcessRef, rows: u32, cols: u32) -> Result<(), Error> {
        let rows = u16::try_from(rows).map_err(|_| Error::InvalidRequest(format!("{rows} rows is too many")))?;
        let cols = u16::try_from(cols).map_err(|_| Error::InvalidRequest(format!("{cols} columns is too many")))?;
        let (terminal, record, name) = match &process {
            ProcessRef::Init => {
                let task = self.task(key)?;
                (task.terminal, task.bundle.join(files::CONSOLE_RECORD), key.to_string())
            }
            ProcessRef::Exec(exec_id) => {
                let (_task, exec) = self.exec_of(key, exec_id)?;
                (exec.terminal, exec.dir.join(files::exec::CONSOLE_RECORD), format!("exec {exec_id} of {key}"))
            }
        };
        if !terminal {
            return Err(Error::NoTerminal { process: name });
        }
        blocking("resizing the terminal", move || set_size(record, rows, cols, name)).await?
    }
}

/// A terminal whose copier is gone belongs to a process that ended: there is nothing left to
/// resize, which is not an error (containerd resizes right after Start, when a short process may
/// already be done; runc-v2 accepts that too).
fn set_size(record_path: PathBuf, rows: u16, cols: u16, name: String) -> Result<(), Error> {
    let record: ConsoleRecord = read_json(&record_path).map_err(Error::State)?;
    let master = match pty::master_of_process(record.pid, record.master_fd) {
        Ok(master) => master,
        Err(pty::Error::NoSuchProcess { .. } | pty::Error::NoSuchFd { .. }) => {
            tracing::debug!("not resizing the terminal of {name}: it is closed");
            return Ok(());
        }
        Err(source) => return Err(Error::Terminal { process: name, source }),
    };
    pty::set_window_size(std::os::fd::AsFd::as_fd(&master), rows, cols)
        .map_err(|source| Error::Terminal { process: name, source })
}
