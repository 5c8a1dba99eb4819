//! Helpers shared by the unit tests: ptys that do not leak into other tests' children, and bounded reads.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{PollFd, PollFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use crate::wait::poll_until;

/// Both ends of a pty opened for a test.
pub(crate) struct TestPty {
    pub(crate) master: OwnedFd,
    pub(crate) slave: OwnedFd,
}

/// Opens a pty whose ends are close-on-exec (so a child another test spawns cannot keep the slave open and delay
/// the master's EOF) and whose slave is in raw mode (so bytes cross unchanged, without echo or CRLF translation).
pub(crate) fn open_pty() -> TestPty {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("posix_openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname_r(&master).expect("ptsname_r");
    let slave =
        open(name.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty()).expect("open slave");
    let mut termios = tcgetattr(&slave).expect("tcgetattr");
    cfmakeraw(&mut termios);
    tcsetattr(&slave, SetArg::TCSANOW, &termios).expect("tcsetattr");
    TestPty { master: OwnedFd::from(master), slave }
}

/// Reads until `len` bytes arrived, panicking with what did arrive if `timeout` passes first.
pub(crate) fn read_within(fd: BorrowedFd<'_>, len: usize, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < len {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ready = poll_until(&mut fds, Some(deadline)).expect("poll");
        assert!(
            ready > 0,
            "timed out after {timeout:?} with {} of {len} bytes: {:?}",
            got.len(),
            String::from_utf8_lossy(&got)
        );
        let want = (len - got.len()).min(buf.len());
        match nix::unistd::read(fd, &mut buf[..want]) {
            Ok(0) => panic!("EOF after {} of {len} bytes: {:?}", got.len(), String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(err) => panic!("read failed after {} of {len} bytes: {err}", got.len()),
        }
    }
    got
}

/// Reads until EOF, panicking with what did arrive if `timeout` passes first.
pub(crate) fn read_to_eof_within(fd: BorrowedFd<'_>, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ready = poll_until(&mut fds, Some(deadline)).expect("poll");
        assert!(ready > 0, "no EOF within {timeout:?}; got {} bytes", got.len());
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(err) => panic!("read failed after {} bytes: {err}", got.len()),
        }
    }
}
