//! Terminal plumbing for containers started as systemd units.
//!
//! A tty container's pty master travels like this: runc sends it over the console socket
//! ([`console_socket`]) to a copier process that lives in the container's unit and shuttles bytes between the
//! master and containerd's fifos ([`copy`]). The shim daemon resizes the terminal without talking to the copier: it
//! takes a duplicate of the copier's master ([`remote`]) and sets its window size ([`window`]).
//!
//! The in-unit helper, still single-threaded, uses it in this order:
//!
//! ```text
//! socket = ConsoleSocket::bind(path)
//! fork()
//!   child (the copier):  block_copy_signals()
//!                        master = socket.receive_master(timeout); drop(socket)   // removes the socket file
//!                        record (getpid(), master.as_raw_fd()) for the daemon's master_of_process
//!                        run_console_copy(master, stdin_fifo, stdout_fifo); exit
//!   parent:              exec runc create --console-socket path …               // runs no destructor
//! ```

pub mod console_socket;
pub mod copy;
mod error;
mod master;
pub mod remote;
mod wait;
pub mod window;

#[cfg(test)]
mod test_support;

pub use console_socket::ConsoleSocket;
pub use copy::{block_copy_signals, run_console_copy, run_console_copy_with, CopyEnd, CopyOptions};
pub use error::{Error, Stream};
pub use remote::{master_of_pidfd, master_of_process, pidfd_open};
pub use window::{set_window_size, window_size};
