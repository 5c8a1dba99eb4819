//! `sd_notify(3)`: messages to systemd over its notification socket (`$NOTIFY_SOCKET`), plain
//! (`READY=1`) or with a descriptor attached (`FDSTORE=1`).
//!
//! Every send is non-blocking. PID 1 reads the socket; while its queue is full, a blocking
//! `sendmsg` would wait for PID 1 to catch up, and in the daemon that wait would stall its only
//! runtime thread, so every task with it. A full queue gives [`std::io::ErrorKind::WouldBlock`]
//! instead, and the caller waits out [`RETRY_DELAYS`] its own way: a thread may sleep
//! ([`NotifySocket::send`]), async code sleeps on its runtime's timer.
//!
//! Why not the `sd-notify` or `libsystemd` crate: both send on a blocking datagram socket with
//! no `MSG_DONTWAIT` (sd-notify 0.5 `connected_unix_datagram` + `send`, libsystemd 0.7
//! `sendmsg` with empty flags), so a full queue would hold the daemon's one runtime thread;
//! both read `$NOTIFY_SOCKET` themselves on every call, so neither can send to a socket we
//! name (the helper's relay forwards to the socket it was started with, tests use their own);
//! sd-notify does not take the abstract `@name` form, and libsystemd would add nix 0.29, nom,
//! hmac and sha2 0.10 to the build. What we need of sd_notify(3) is one `sendmsg`, which this
//! module is.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::sys::socket::{sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr};

/// How long to wait before each retry of a send that found systemd's queue full; after the
/// last one the send fails. Half a second in all: PID 1 empties its queue far faster unless it
/// is stuck, and a caller must not be held longer than that.
pub const RETRY_DELAYS: [Duration; 4] =
    [Duration::from_millis(10), Duration::from_millis(40), Duration::from_millis(150), Duration::from_millis(300)];

/// systemd's notification socket, as `$NOTIFY_SOCKET` names it: a path, or `@name` in the
/// abstract namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySocket(String);

impl NotifySocket {
    /// The socket at `address` (a path, or `@name`).
    pub fn new(address: impl Into<String>) -> NotifySocket {
        NotifySocket(address.into())
    }

    /// The socket `$NOTIFY_SOCKET` names; `None` when the process was not started by systemd as
    /// `Type=notify`.
    pub fn from_env() -> Option<NotifySocket> {
        std::env::var_os("NOTIFY_SOCKET").map(|address| NotifySocket::new(address.to_string_lossy()))
    }

    /// The address, as given.
    pub fn address(&self) -> &str {
        &self.0
    }

    /// One attempt to send `state`, with `fd` attached (SCM_RIGHTS) when given. Never waits: a
    /// full queue gives [`std::io::ErrorKind::WouldBlock`].
    pub fn try_send(&self, state: &str, fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
        let address = match self.0.strip_prefix('@') {
            Some(abstract_name) => UnixAddr::new_abstract(abstract_name.as_bytes())?,
            None => UnixAddr::new(self.0.as_str())?,
        };
        let sender =
            socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
        let fds = fd.map(|fd| [fd.as_raw_fd()]);
        let control: Vec<ControlMessage<'_>> =
            fds.as_ref().map(|fds| ControlMessage::ScmRights(fds)).into_iter().collect();
        let message = [std::io::IoSlice::new(state.as_bytes())];
        sendmsg(sender.as_raw_fd(), &message, &control, MsgFlags::MSG_DONTWAIT, Some(&address))?;
        Ok(())
    }

    /// Sends `state` (with `fd`, when given), sleeping this thread through [`RETRY_DELAYS`]
    /// while the queue is full. For a short-lived process or a blocking thread, never for async
    /// code.
    pub fn send(&self, state: &str, fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
        for delay in RETRY_DELAYS {
            match self.try_send(state, fd) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(delay),
                sent => return sent,
            }
        }
        self.try_send(state, fd).map_err(|error| self.still_full(error))
    }

    /// The error for a send whose last try found the queue still full: it says for how long.
    pub fn still_full(&self, error: std::io::Error) -> std::io::Error {
        if error.kind() != std::io::ErrorKind::WouldBlock {
            return error;
        }
        let waited: Duration = RETRY_DELAYS.iter().sum();
        std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!("systemd's notification socket {} stayed full for {waited:?}", self.0),
        )
    }
}

/// Sends `state` (e.g. `READY=1`) to systemd. Without `$NOTIFY_SOCKET` (not run by systemd as
/// `Type=notify`) there is no one to tell, and that is not an error.
pub fn notify(state: &str) -> std::io::Result<()> {
    match NotifySocket::from_env() {
        Some(socket) => socket.send(state, None),
        None => Ok(()),
    }
}

/// Sends `state` to the notification socket `socket_path` (a path, or `@name` in the abstract
/// namespace), as `$NOTIFY_SOCKET` names it.
pub fn send_state(socket_path: &str, state: &str) -> std::io::Result<()> {
    NotifySocket::new(socket_path).send(state, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::scratch_dir;
    use std::os::unix::net::UnixDatagram;
    use std::time::Instant;

    /// A bound notification socket that nobody reads, its queue filled until a fresh sender
    /// would have to wait: PID 1 under load.
    fn full_notify_socket(dir: &std::path::Path) -> (UnixDatagram, String) {
        let path = dir.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind the notification socket");
        // A sender's own buffer can run out before the receiver's queue does: fill from fresh
        // senders until one cannot send a single message.
        loop {
            let filler = UnixDatagram::unbound().expect("a filler socket");
            filler.set_nonblocking(true).expect("a non-blocking filler");
            let mut sent = 0;
            while filler.send_to(b"STATUS=filler", &path).is_ok() {
                sent += 1;
            }
            if sent == 0 {
                break;
            }
        }
        (receiver, path.display().to_string())
    }

    #[test]
    fn a_full_notification_socket_does_not_block_the_sender() {
        let dir = scratch_dir("notify", "full");
        let (_receiver, path) = full_notify_socket(&dir);
        let (done, outcome) = std::sync::mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            let _ = done.send(send_state(&path, "READY=1"));
        });
        let result = outcome.recv_timeout(Duration::from_secs(5)).expect("the send returned instead of blocking");
        let error = result.expect_err("nobody could take the message");
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock, "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "retried for {:?}", started.elapsed());
    }
}
