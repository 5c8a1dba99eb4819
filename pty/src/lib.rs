//! Terminal plumbing for containers started as systemd units.
//!
//! A tty container's pty master travels like this: runc sends it over the console socket
//! ([`console_socket`]) to a copier process that lives in the container's unit and shuttles bytes between the
//! master and containerd's fifos (`copy`, to come). The shim daemon resizes the terminal without talking to the copier: it
//! takes a duplicate of the copier's master ([`remote`]) and sets its window size ([`window`]).

pub mod console_socket;
mod error;
mod master;
pub mod remote;
mod wait;
pub mod window;

#[cfg(test)]
mod test_support;

pub use console_socket::ConsoleSocket;
pub use error::Error;
pub use remote::master_of_process;
pub use window::{set_window_size, window_size};
