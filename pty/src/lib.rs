//! Terminal plumbing for containers started as systemd units (console socket, pty copy).
//! The vertical slice runs containers without a terminal; this crate grows with TTY support.
