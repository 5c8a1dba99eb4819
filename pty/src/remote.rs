//! Taking a pty master out of another process, so the shim daemon can resize a terminal that the console copier
//! owns without any protocol between the two.
//!
//! `pidfd_open(2)` pins the copier (a pid alone could be reused) and `pidfd_getfd(2)` duplicates its master into
//! our table; both need Linux 5.6, and `pidfd_getfd` the right to ptrace the target, which root has. nix does not
//! wrap either call, so they are made through `libc::syscall`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

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
    let raw_pid = libc::pid_t::try_from(pid).ok().filter(|raw| *raw > 0).ok_or(Error::InvalidPid { pid })?;
    let flags: libc::c_uint = 0;
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new descriptor or -1; no memory is shared.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, flags) };
    let raw = Errno::result(ret).map_err(|errno| match errno {
        Errno::ENOSYS => Error::PidfdUnsupported { source: errno },
        Errno::ESRCH => Error::NoSuchProcess { pid },
        source => Error::PidfdOpen { pid, source },
    })?;
    // SAFETY: the kernel has just created this descriptor (always close-on-exec) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(syscall_fd(raw)) })
}

/// Duplicates descriptor `fd` of the process behind `pidfd` into our table.
fn pidfd_getfd(pidfd: BorrowedFd<'_>, pid: u32, fd: i32) -> Result<OwnedFd, Error> {
    let flags: libc::c_uint = 0;
    // SAFETY: pidfd_getfd takes two descriptor numbers and flags by value and returns a new descriptor or -1; the
    // pidfd is borrowed, so it stays open for the call.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, flags) };
    let raw = Errno::result(ret).map_err(|errno| match errno {
        // Linux 5.3 to 5.5 have pidfd_open but not pidfd_getfd.
        Errno::ENOSYS => Error::PidfdUnsupported { source: errno },
        Errno::ESRCH => Error::NoSuchProcess { pid },
        Errno::EBADF => Error::NoSuchFd { pid, fd },
        source => Error::PidfdGetfd { pid, fd, source },
    })?;
    // SAFETY: the kernel has just installed this descriptor (close-on-exec, per pidfd_getfd(2)) and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(syscall_fd(raw)) })
}

/// A successful syscall's return value as a descriptor. The cast cannot truncate: the kernel's fd-returning calls
/// produce an int, which `syscall(2)` merely widens to a long.
fn syscall_fd(ret: libc::c_long) -> RawFd {
    ret as RawFd
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

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
