//! The terminal of a container or exec process, set up by the helper around runc.
//!
//! runc creates the pty and sends its master over the console socket while `runc create` /
//! `runc exec` runs; the message waits in the socket until we accept it. Once runc has exited,
//! the helper receives the master and forks a copier that shuttles bytes between the master and
//! containerd's fifos for as long as the terminal lives, then records the copier's pid and master
//! fd for the daemon's ResizePty.
//!
//! Why a copier process in the unit rather than in the daemon: the terminal must not depend on
//! the daemon staying up. A daemon restart (upgrade, crash) then leaves every interactive shell
//! working; the copier belongs to the container's unit, shows in `systemctl status`, and is
//! stopped with it (on SIGTERM it drains what the terminal still holds, then exits).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::unistd::{fork, ForkResult};
use pty::ConsoleSocket;

use crate::atomic_file::write_json_atomically;
use crate::helper::logger::LoggedContainer;
use crate::helper::privileges::drop_all_privileges;
use crate::helper::stdio::prepare_stdio;
use crate::protocol::{ConsolePaths, ConsoleRecord, StdioOptions, StdioPaths};
use crate::Error;

/// How long the master may take to arrive after runc has exited (it is queued by then).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the console socket runc will connect to.
pub fn bind_console(console: &ConsolePaths) -> Result<ConsoleSocket, Error> {
    if let Some(dir) = console.socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::StateFile { path: dir.to_path_buf(), source })?;
    }
    Ok(ConsoleSocket::bind(&console.socket)?)
}

/// After runc exited successfully: takes the master from `socket`, forks the copier, and writes
/// the console record. Call with no other thread running (it forks).
pub fn start_copier(
    socket: ConsoleSocket,
    console: &ConsolePaths,
    stdio: &StdioPaths,
    options: StdioOptions,
    fifo_timeout: Duration,
    container: LoggedContainer<'_>,
) -> Result<(), Error> {
    let master = socket.receive_master(RECEIVE_TIMEOUT)?;
    socket.remove()?;
    let master_fd = master.as_raw_fd();
    // SAFETY: the helper is single-threaded here (no runtime, no threads alive), so the child
    // may allocate and open files freely before it runs the copy loop.
    match unsafe { fork() }.map_err(|source| Error::Supervise { action: "forking the terminal copier", source })? {
        ForkResult::Child => {
            let code = match run_copier(master, stdio, options, fifo_timeout, container) {
                Ok(()) => 0,
                Err(error) => {
                    tracing::error!("terminal copier: {error}");
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(master);
            let pid = u32::try_from(child.as_raw()).unwrap_or_default();
            write_json_atomically(&console.record, &ConsoleRecord { pid, master_fd })
        }
    }
}

fn run_copier(
    master: OwnedFd,
    stdio: &StdioPaths,
    options: StdioOptions,
    fifo_timeout: Duration,
    container: LoggedContainer<'_>,
) -> Result<(), Error> {
    run_copier_with(master, stdio, options, fifo_timeout, container, pty::run_console_copy)
}

/// The copier's life: open containerd's side (fifos, files, or a logger it starts), drop every
/// privilege (see [`crate::helper::privileges`]), then `copy` between the master and that side
/// until the terminal is done.
fn run_copier_with<End: std::fmt::Debug>(
    master: OwnedFd,
    stdio: &StdioPaths,
    options: StdioOptions,
    fifo_timeout: Duration,
    container: LoggedContainer<'_>,
    copy: impl FnOnce(OwnedFd, Option<OwnedFd>, Option<OwnedFd>) -> Result<End, pty::Error>,
) -> Result<(), Error> {
    pty::block_copy_signals()?;
    // A terminal has one output stream: containerd passes no stderr.
    let paths = StdioPaths { stdin: stdio.stdin.clone(), stdout: stdio.stdout.clone(), stderr: None };
    let opened = prepare_stdio(&paths, options, fifo_timeout, container)?;
    // Everything is open: the threads prepare_stdio used to wait for opens have returned, and
    // the copy loop runs on this one thread.
    drop_all_privileges()?;
    let stdin = paths.stdin.is_some().then_some(opened.stdin);
    let stdout = (paths.stdout.is_some() || options.output_to_journal).then_some(opened.stdout);
    let end = copy(master, stdin, stdout)?;
    tracing::debug!("terminal copier done: {end:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::privileges::tests::{privilege_lines, privileges_after_in_child, DROPPED};

    #[test]
    fn the_terminal_copier_copies_without_privileges() {
        let after = privileges_after_in_child(|| {
            let master = OwnedFd::from(std::fs::File::open("/dev/null").expect("open /dev/null"));
            let container = LoggedContainer { id: "t1", namespace: "default" };
            let no_stdio = StdioPaths { stdin: None, stdout: None, stderr: None };
            let copy = |_master, _stdin, _stdout| -> Result<(), pty::Error> {
                assert_eq!(privilege_lines(), DROPPED, "the copy loop starts without privileges");
                Ok(())
            };
            let options = StdioOptions::default();
            run_copier_with(master, &no_stdio, options, Duration::from_secs(5), container, copy).expect("copier");
        });
        assert_eq!(after, DROPPED);
    }
}
