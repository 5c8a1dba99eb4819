//! The crate's one error type.

use nix::errno::Errno;

/// Everything that can go wrong in the terminal plumbing; each variant names what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The terminal's window size could not be set.
    #[error("failed to set the terminal window size to {rows} rows and {cols} columns")]
    SetWindowSize {
        /// The rows asked for.
        rows: u16,
        /// The columns asked for.
        cols: u16,
        /// The error from `ioctl(TIOCSWINSZ)`.
        #[source]
        source: Errno,
    },
    /// The terminal's window size could not be read.
    #[error("failed to read the terminal window size")]
    GetWindowSize {
        /// The error from `ioctl(TIOCGWINSZ)`.
        #[source]
        source: Errno,
    },
}
