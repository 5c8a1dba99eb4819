//! Signalling a container's init without running runc, as `runc kill` without `--all` does:
//! the daemon knows init's pid, so a signal costs a pidfd and a system call instead of a Go
//! process start (about 8 ms). The reply then comes at once, before the container's exit can
//! set off containerd 1.6's Delete, whose Shutdown closes the task's one ttrpc connection and
//! with it a Kill still waiting for runc (`ctr task kill` failed with "ttrpc: closed").
//!
//! The pid is trusted only for a process in the task's own unit ([`super::unit_process`]), and
//! the signal goes through the pidfd that pinned it. Anything unexpected leaves the signal to
//! runc.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::unit_process::{pin_unit_process, UnitProcess};

/// What became of the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signalled {
    /// Delivered to the task's init.
    Sent,
    /// init is gone.
    Gone,
    /// The pid could not be shown to be the task's init: let runc decide.
    Unverified,
}

/// Sends `signal` to `pid` if that process lives in unit `unit`'s cgroup.
pub async fn signal_init(pid: u32, unit: &str, signal: Signal) -> Signalled {
    let unit = unit.to_string();
    let pinned = tokio::task::spawn_blocking(move || pin_unit_process(Path::new("/proc"), pid, &unit)).await;
    let pidfd = match pinned {
        Ok(Ok(UnitProcess::InUnit(pidfd))) => pidfd,
        Ok(Ok(UnitProcess::Gone)) => return Signalled::Gone,
        // Elsewhere, no pidfd, or the lookup's thread lost: not shown to be the init.
        _ => return Signalled::Unverified,
    };
    match pidfd_send_signal(&pidfd, signal) {
        Ok(()) => Signalled::Sent,
        Err(Errno::ESRCH) => Signalled::Gone,
        Err(_) => Signalled::Unverified,
    }
}

/// Whether a process with `pid` exists (a zombie counts): `kill(pid, 0)`.
pub fn process_exists(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|pid| pid > 0 && kill(Pid::from_raw(pid), None).is_ok())
}

/// `pidfd_send_signal(2)` through rustix (nix does not wrap it). A signal rustix has no name for
/// (a real-time one) is left to runc, as an unverified pid is.
fn pidfd_send_signal(pidfd: &OwnedFd, signal: Signal) -> Result<(), Errno> {
    let Some(signal) = rustix::process::Signal::from_named_raw(signal as i32) else {
        return Err(Errno::EINVAL);
    };
    rustix::process::pidfd_send_signal(pidfd, signal).map_err(|errno| Errno::from_raw(errno.raw_os_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "containerd-default-killed\\x2d7.service";

    #[tokio::test]
    async fn a_process_outside_the_unit_is_left_to_runc_and_not_signalled() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let outcome = signal_init(child.id(), UNIT, Signal::SIGKILL).await;
        assert_eq!(outcome, Signalled::Unverified);
        assert_eq!(child.try_wait().expect("try_wait"), None, "the process was not signalled");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    #[tokio::test]
    async fn a_pid_with_no_process_is_gone() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("reap");
        // The pid may be reused in between, then it is not in the unit: either way no signal.
        assert_ne!(signal_init(pid, UNIT, Signal::SIGKILL).await, Signalled::Sent);
    }

    #[test]
    fn a_signal_sent_through_a_pidfd_reaches_the_process_and_a_reaped_one_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("non-zero pid");
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
        pidfd_send_signal(&pidfd, Signal::SIGTERM).expect("send");
        let status = child.wait().expect("reap");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(Signal::SIGTERM as i32));
        assert_eq!(pidfd_send_signal(&pidfd, Signal::SIGTERM), Err(Errno::ESRCH));
    }
}
