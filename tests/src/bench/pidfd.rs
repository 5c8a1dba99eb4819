//! The instant a process exits, seen independently of any shim: a pidfd (pidfd_open(2)) polls
//! readable as soon as the process has exited (it is a zombie or gone), which is the earliest
//! moment its parent, and so any shim or systemd, could learn of it.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::Error;

/// A process being watched for its exit.
#[derive(Debug)]
pub struct ExitWatcher {
    pid: u32,
    fd: OwnedFd,
}

impl ExitWatcher {
    /// Starts watching host process `pid`. Fails if it is already gone.
    pub fn new(pid: u32) -> Result<ExitWatcher, Error> {
        let raw_pid = nix::libc::pid_t::try_from(pid).map_err(|_| Error::Pidfd { pid, source: nix::Error::EINVAL })?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
        let raw = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, raw_pid, 0) };
        if raw < 0 {
            return Err(Error::Pidfd { pid, source: nix::Error::last() });
        }
        let raw = i32::try_from(raw).map_err(|_| Error::Pidfd { pid, source: nix::Error::EBADF })?;
        // SAFETY: the syscall succeeded, so `raw` is a new fd that nothing else owns.
        Ok(ExitWatcher { pid, fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    /// Blocks until the process has exited, at most `timeout`; returns when that was seen.
    pub fn wait(&self, timeout: Duration) -> Result<Instant, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let poll_timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, poll_timeout) {
                Ok(0) if left.is_zero() => return Err(Error::NoExit { pid: self.pid, timeout }),
                Ok(0) | Err(nix::Error::EINTR) => continue,
                Ok(_) => return Ok(Instant::now()),
                Err(source) => return Err(Error::Pidfd { pid: self.pid, source }),
            }
        }
    }
}
