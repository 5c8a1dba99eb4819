//! Terminal plumbing for containers started as systemd units.
//!
//! A tty container's pty master travels like this: runc sends it over the console socket
//! (`console_socket`, to come) to a copier process that lives in the container's unit and shuttles bytes between the
//! master and containerd's fifos (`copy`, to come). The shim daemon resizes the terminal without talking to the copier: it
//! takes a duplicate of the copier's master (`remote`, to come) and sets its window size ([`window`]).

mod error;
pub mod window;

pub use error::Error;
pub use window::{set_window_size, window_size};
