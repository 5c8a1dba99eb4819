//! Taking a pty master out of another process, so the shim daemon can resize a terminal that the console copier
//! owns without any protocol between the two.
//!
//! `pidfd_open(2)` pins the copier (a pid alone could be reused) and `pidfd_getfd(2)` duplicates its master into
//! our table; both need Linux 5.6, and `pidfd_getfd` the right to ptrace the target, which root has.
//!
//! Why rustix for the two calls: nix (0.31) does not wrap them, and rustix's `process` module does, returning an
//! `OwnedFd` with no `unsafe` on our side. rustix 1 with that feature is already compiled into the shim (zbus uses
//! it), so it adds no crate to the build; its errors are turned into nix's `Errno`, which the rest of this crate
//! uses.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags};

use crate::master::pty_number;
use crate::Error;

/// Returns a duplicate of file descriptor `fd` of process `pid`, checked to be a pty master.
///
/// The duplicate shares the open file with the process's own descriptor (as `dup` would), is close-on-exec, and
/// is ours to close; the process keeps its descriptor.
pub fn master_of_process(pid: u32, fd: i32) -> Result<OwnedFd, Error> {
    let pidfd = pidfd_open(pid)?;
    master_of_pidfd(pidfd.as_fd(), pid, fd)
}

/// [`master_of_process`] for the process behind `pidfd` (opened for `pid`), for a caller that
/// has checked that process first: the pidfd pins it, so the descriptor comes from the process
/// that was checked, or from none.
pub fn master_of_pidfd(pidfd: BorrowedFd<'_>, pid: u32, fd: i32) -> Result<OwnedFd, Error> {
    let taken = pidfd_getfd(pidfd, pid, fd)?;
    pty_number(taken.as_fd()).map_err(|source| Error::NotPtyMaster { pid, fd, source })?;
    Ok(taken)
}

/// A pidfd for `pid` (close-on-exec): it pins the process, and polls readable once it exits.
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, Error> {
    // pid 0 would not name a process, and the kernel's pid_t is signed.
    let raw_pid = i32::try_from(pid).ok().filter(|raw| *raw > 0).and_then(Pid::from_raw);
    let raw_pid = raw_pid.ok_or(Error::InvalidPid { pid })?;
    rustix::process::pidfd_open(raw_pid, PidfdFlags::empty()).map_err(|error| match errno(error) {
        Errno::ENOSYS => Error::PidfdUnsupported { source: Errno::ENOSYS },
        Errno::ESRCH => Error::NoSuchProcess { pid },
        source => Error::PidfdOpen { pid, source },
    })
}

/// Duplicates descriptor `fd` of the process behind `pidfd` into our table (close-on-exec, per
/// pidfd_getfd(2)).
fn pidfd_getfd(pidfd: BorrowedFd<'_>, pid: u32, fd: i32) -> Result<OwnedFd, Error> {
    // The kernel answers EBADF for a negative number; rustix debug-asserts against passing one.
    if fd < 0 {
        return Err(Error::NoSuchFd { pid, fd });
    }
    rustix::process::pidfd_getfd(pidfd, fd, PidfdGetfdFlags::empty()).map_err(|error| match errno(error) {
        // Linux 5.3 to 5.5 have pidfd_open but not pidfd_getfd.
        Errno::ENOSYS => Error::PidfdUnsupported { source: Errno::ENOSYS },
        Errno::ESRCH => Error::NoSuchProcess { pid },
        Errno::EBADF => Error::NoSuchFd { pid, fd },
        source => Error::PidfdGetfd { pid, fd, source },
    })
}

/// rustix's error number as nix's, the type this crate's errors carry.
fn errno(error: rustix::io::Errno) -> Errno {
    Errno::from_raw(error.raw_os_error())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::test_support::{open_pty, read_within};
    use crate::window::{set_window_size, window_size};

    /// Runs `test`, failing with what is missing when this kernel (or a seccomp filter) hides the
    /// pidfd calls: the daemon needs them, so a host without them fails, not passes.
    fn with_pidfds(name: &str, test: impl FnOnce()) {
        if let Err(Error::PidfdUnsupported { source }) = pidfd_open(std::process::id()) {
            panic!("{name}: pidfd_open, which ResizePty needs, is not available here ({source})");
        }
        test();
    }

    #[test]
    fn master_of_process_returns_a_working_duplicate_of_our_own_master() {
        with_pidfds("master_of_process_returns_a_working_duplicate_of_our_own_master", || {
            let pty = open_pty();
            let taken = master_of_process(std::process::id(), pty.master.as_raw_fd()).expect("take master");
            assert_ne!(taken.as_raw_fd(), pty.master.as_raw_fd(), "a duplicate gets a descriptor of its own");

            // A resize through the duplicate reaches the terminal, as the shim daemon's ResizePty needs.
            set_window_size(taken.as_fd(), 33, 99).expect("resize through duplicate");
            assert_eq!(window_size(pty.slave.as_fd()).expect("slave size"), (33, 99));

            // The duplicate shares the open file: output written to the slave can be read through it, and closing
            // it leaves the original working.
            let mut slave = fs::File::from(pty.slave.try_clone().expect("clone slave"));
            slave.write_all(b"shared").expect("write to slave");
            assert_eq!(read_within(taken.as_fd(), 6, std::time::Duration::from_secs(5)), b"shared");
            drop(taken);
            set_window_size(pty.master.as_fd(), 10, 20).expect("original master still works");
        });
    }

    #[test]
    fn master_of_process_rejects_bad_targets() {
        with_pidfds("master_of_process_rejects_bad_targets", || {
            struct Case {
                name: &'static str,
                pid: u32,
                fd: i32,
                check: fn(&Error) -> bool,
            }
            let me = std::process::id();
            let pty = open_pty();
            let (pipe_reader, _pipe_writer) = nix::unistd::pipe().expect("pipe");
            // Pids are always below pid_max, so pid_max itself names no process.
            let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
                .expect("read pid_max")
                .trim()
                .parse()
                .expect("parse pid_max");
            let cases = [
                Case {
                    name: "pipe",
                    pid: me,
                    fd: pipe_reader.as_raw_fd(),
                    check: |e| matches!(e, Error::NotPtyMaster { source: Errno::ENOTTY, .. }),
                },
                Case {
                    name: "pty slave",
                    pid: me,
                    fd: pty.slave.as_raw_fd(),
                    check: |e| matches!(e, Error::NotPtyMaster { source: Errno::ENOTTY, .. }),
                },
                Case { name: "negative fd", pid: me, fd: -1, check: |e| matches!(e, Error::NoSuchFd { fd: -1, .. }) },
                Case {
                    name: "fd not open",
                    pid: me,
                    fd: i32::MAX,
                    check: |e| matches!(e, Error::NoSuchFd { fd: i32::MAX, .. }),
                },
                Case { name: "pid 0", pid: 0, fd: 0, check: |e| matches!(e, Error::InvalidPid { pid: 0 }) },
                Case {
                    name: "pid beyond pid_t",
                    pid: u32::MAX,
                    fd: 0,
                    check: |e| matches!(e, Error::InvalidPid { pid: u32::MAX }),
                },
                Case {
                    name: "no such process",
                    pid: pid_max,
                    fd: 0,
                    check: |e| matches!(e, Error::NoSuchProcess { .. }),
                },
            ];
            for case in cases {
                match master_of_process(case.pid, case.fd) {
                    Ok(_) => panic!("{}: a master was returned", case.name),
                    Err(err) => assert!((case.check)(&err), "{}: unexpected error {err:?}", case.name),
                }
            }
        });
    }

    #[test]
    fn not_a_pty_master_error_names_the_process_and_fd() {
        let err = Error::NotPtyMaster { pid: 42, fd: 7, source: Errno::ENOTTY };
        assert_eq!(err.to_string(), "file descriptor 7 of process 42 is not a pty master");
    }
}
