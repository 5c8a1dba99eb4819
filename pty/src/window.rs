//! Terminal window size: what containerd's `ResizePty` sets and what the container's programs read back.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::Error;

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);

/// Sets the window size of the terminal behind `master` to `rows` × `cols`.
///
/// The kernel sends SIGWINCH to the terminal's foreground process group, so the container's shell redraws. The
/// pixel sizes are left at zero, as containerd's `ResizePty` only carries rows and columns.
pub fn set_window_size(master: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), Error> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: the fd is borrowed, so it stays open for the call; TIOCSWINSZ only reads the winsize we pass.
    unsafe { tiocswinsz(master.as_raw_fd(), &size) }.map_err(|source| Error::SetWindowSize { rows, cols, source })?;
    Ok(())
}

/// Returns the window size `(rows, cols)` of the terminal behind `fd`, which may be either side of a pty.
pub fn window_size(fd: BorrowedFd<'_>) -> Result<(u16, u16), Error> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: the fd is borrowed, so it stays open for the call; TIOCGWINSZ writes one winsize into `size`.
    unsafe { tiocgwinsz(fd.as_raw_fd(), &mut size) }.map_err(|source| Error::GetWindowSize { source })?;
    Ok((size.ws_row, size.ws_col))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use nix::pty::openpty;

    use super::*;

    #[test]
    fn window_size_set_on_the_master_is_read_back_through_the_slave() {
        let pty = openpty(None, None).expect("openpty");
        set_window_size(pty.master.as_fd(), 42, 133).expect("set window size");
        assert_eq!(window_size(pty.slave.as_fd()).expect("slave window size"), (42, 133));
        assert_eq!(window_size(pty.master.as_fd()).expect("master window size"), (42, 133));

        // A second resize replaces the first rather than being ignored.
        set_window_size(pty.master.as_fd(), 24, 80).expect("resize again");
        assert_eq!(window_size(pty.slave.as_fd()).expect("slave window size"), (24, 80));
    }

    #[test]
    fn window_size_of_a_non_terminal_is_an_error() {
        let (reader, _writer) = nix::unistd::pipe().expect("pipe");
        match window_size(reader.as_fd()) {
            Err(Error::GetWindowSize { source }) => assert_eq!(source, nix::errno::Errno::ENOTTY),
            other => panic!("expected GetWindowSize(ENOTTY), got {other:?}"),
        }
        match set_window_size(reader.as_fd(), 10, 20) {
            Err(Error::SetWindowSize { rows: 10, cols: 20, source }) => assert_eq!(source, nix::errno::Errno::ENOTTY),
            other => panic!("expected SetWindowSize(ENOTTY), got {other:?}"),
        }
    }
}
