//! Recognising a pty master among file descriptors.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

// TIOCGPTN asks a pty master for the number N of its /dev/pts/N slave. Only the master side answers it (the slave
// and every other file return ENOTTY), which makes it a cheap and exact test for "this is a pty master".
nix::ioctl_read_bad!(tiocgptn, libc::TIOCGPTN, libc::c_uint);

/// Returns the number of the slave (`/dev/pts/N`) of `fd`, or the errno that shows `fd` is not a pty master.
pub(crate) fn pty_number(fd: BorrowedFd<'_>) -> Result<u32, Errno> {
    let mut number: libc::c_uint = 0;
    // SAFETY: the fd is borrowed, so it stays open for the call, and TIOCGPTN writes one c_uint into `number`.
    unsafe { tiocgptn(fd.as_raw_fd(), &mut number) }?;
    Ok(number)
}
