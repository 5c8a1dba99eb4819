//! The console socket through which runc hands over a tty container's pty master.
//!
//! With `runc create --console-socket PATH`, runc connects to the unix stream socket at PATH and sends one message:
//! its payload is the terminal's name and its SCM_RIGHTS ancillary data carries the pty master (runc's
//! `--console-socket` documentation; runc then closes its own copy). [`ConsoleSocket`] owns the listening side: it
//! binds PATH, receives that one master, and removes PATH again.

use std::fs::{self, Permissions};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{getsockopt, recvmsg, sockopt, ControlMessageOwned, MsgFlags};

use crate::master::pty_number;
use crate::wait::poll_until;
use crate::Error;

/// The most file descriptors the kernel lets one message carry (`SCM_MAX_FD`). Making room for all of them means the
/// control data is never truncated, so every descriptor a peer sends reaches us as an `OwnedFd` and is closed, instead
/// of some being installed in our table where we cannot see them.
const SCM_MAX_FD: usize = 253;

/// Room for the payload, the terminal's name (runc sends a path such as `/dev/pts/3`).
const NAME_CAPACITY: usize = 4096;

/// A bound, listening console socket; the socket file is removed when this is dropped.
///
/// After a `fork`, both processes hold a `ConsoleSocket`: only the one that receives the master should let it drop.
/// The other side normally `exec`s (runc), which runs no destructor; a parent that returns instead should
/// [`std::mem::forget`] its copy, or it removes the path the child still listens on.
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Cleared once the socket file is gone, so `Drop` does not remove a file someone else created since.
    owns_file: bool,
}

impl ConsoleSocket {
    /// Binds a unix stream socket at `path`, readable and writable by its owner only (mode 0600).
    ///
    /// A socket left at `path` by an earlier run is removed first; anything else at `path` is an error, as it is not
    /// ours to delete.
    pub fn bind(path: &Path) -> Result<ConsoleSocket, Error> {
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path).map_err(|source| Error::Bind { path: path.to_owned(), source })?;
        // From here on the file exists: build the value first so that an error below still removes it.
        let socket = ConsoleSocket { listener, path: path.to_owned(), owns_file: true };
        // bind(2) creates the file with 0777 & ~umask, and umask is process-wide, so it cannot be narrowed for this
        // one call without racing other threads. The short window before the chmod is covered by the peer
        // credential check in `receive_master`.
        fs::set_permissions(path, Permissions::from_mode(0o600))
            .map_err(|source| Error::SetSocketMode { path: path.to_owned(), source })?;
        // Non-blocking so that a connection that is reset between poll and accept cannot block us past the deadline.
        socket.listener.set_nonblocking(true).map_err(|source| Error::Bind { path: path.to_owned(), source })?;
        Ok(socket)
    }

    /// The socket's path, to pass to `runc --console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits up to `timeout` for runc to connect and send the pty master, and returns it.
    ///
    /// Connections from a user other than root or our own effective user are dropped and waiting goes on; the first
    /// trusted connection must carry a file descriptor, which must be a pty master. Any further descriptors in the
    /// same message are closed.
    pub fn receive_master(&self, timeout: Duration) -> Result<OwnedFd, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let stream = self.accept_before(deadline, timeout)?;
            if self.peer_is_trusted(&stream)? {
                return self.receive_from(&stream, deadline, timeout);
            }
        }
    }

    /// Removes the socket file now, reporting a failure that `Drop` could only log.
    pub fn remove(mut self) -> Result<(), Error> {
        self.owns_file = false;
        remove_socket_file(&self.path)
    }

    /// Accepts one connection, waiting on the listener until `deadline`.
    fn accept_before(&self, deadline: Instant, timeout: Duration) -> Result<UnixStream, Error> {
        loop {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            let ready = poll_until(&mut fds, Some(deadline))
                .map_err(|source| Error::WaitForConsole { path: self.path.clone(), source })?;
            if ready == 0 {
                return Err(Error::ReceiveTimeout { path: self.path.clone(), timeout });
            }
            match self.listener.accept() {
                Ok((stream, _)) => return Ok(stream),
                // The connection went away between poll and accept, or a signal interrupted us: wait again.
                Err(err)
                    if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
                        || err.raw_os_error() == Some(libc::ECONNABORTED) =>
                {
                    continue
                }
                Err(source) => return Err(Error::Accept { path: self.path.clone(), source }),
            }
        }
    }

    /// Whether the connecting process runs as root or as our own effective user, as runc does.
    fn peer_is_trusted(&self, stream: &UnixStream) -> Result<bool, Error> {
        let credentials = getsockopt(stream, sockopt::PeerCredentials)
            .map_err(|source| Error::PeerCredentials { path: self.path.clone(), source })?;
        let uid = credentials.uid();
        let trusted = uid == 0 || uid == nix::unistd::geteuid().as_raw();
        if !trusted {
            tracing::warn!(
                path = %self.path.display(),
                uid,
                pid = credentials.pid(),
                "ignoring a console socket connection from an untrusted user"
            );
        }
        Ok(trusted)
    }

    /// Receives runc's one message on `stream` and returns the pty master it carries.
    fn receive_from(&self, stream: &UnixStream, deadline: Instant, timeout: Duration) -> Result<OwnedFd, Error> {
        let mut name = [0u8; NAME_CAPACITY];
        let (name_len, mut fds) = loop {
            let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
            let ready = poll_until(&mut fds, Some(deadline))
                .map_err(|source| Error::WaitForConsole { path: self.path.clone(), source })?;
            if ready == 0 {
                return Err(Error::ReceiveTimeout { path: self.path.clone(), timeout });
            }
            match receive_message(stream, &mut name) {
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(source) => return Err(Error::ReceiveMessage { path: self.path.clone(), source }),
                Ok(received) => break received,
            }
        };
        if fds.is_empty() {
            return Err(Error::NoFdReceived { path: self.path.clone() });
        }
        let master = fds.remove(0);
        if !fds.is_empty() {
            tracing::warn!(path = %self.path.display(), extra = fds.len(), "closing extra fds sent on the console socket");
            // Dropping the OwnedFds closes them.
            drop(fds);
        }
        let number = pty_number(master.as_fd())
            .map_err(|source| Error::ReceivedNotPtyMaster { path: self.path.clone(), source })?;
        tracing::debug!(
            path = %self.path.display(),
            name = %String::from_utf8_lossy(&name[..name_len]),
            number,
            "received the pty master"
        );
        Ok(master)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        if self.owns_file {
            if let Err(err) = remove_socket_file(&self.path) {
                tracing::warn!(error = %err, "leaving the console socket file behind");
            }
        }
    }
}

/// Reads one message from `stream` without blocking: the payload's length and every fd it carried, each owned.
fn receive_message(stream: &UnixStream, name: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), Errno> {
    let mut iov = [IoSliceMut::new(name)];
    let mut control = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    // MSG_CMSG_CLOEXEC: the master must not leak into programs the receiver may exec later.
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let message = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut control), flags)?;
    let mut fds = Vec::new();
    // cmsgs() refuses truncated control data with ENOBUFS; the buffer above has room for the kernel's maximum, so
    // that cannot happen.
    for control_message in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw_fds) = control_message {
            // SAFETY: the kernel has just installed these descriptors in our table for this message; nothing else
            // knows them, so each gets exactly one owner here.
            fds.extend(raw_fds.into_iter().map(|raw| unsafe { OwnedFd::from_raw_fd(raw) }));
        }
    }
    Ok((message.bytes, fds))
}

/// Removes a socket left at `path` by an earlier run; refuses to remove anything that is not a socket.
fn remove_stale_socket(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::InspectSocketPath { path: path.to_owned(), source }),
        Ok(metadata) if metadata.file_type().is_socket() => {
            tracing::debug!(path = %path.display(), "removing a stale console socket");
            fs::remove_file(path).map_err(|source| Error::RemoveStaleSocket { path: path.to_owned(), source })
        }
        Ok(_) => Err(Error::NotASocket { path: path.to_owned() }),
    }
}

/// Removes the socket file at `path`; one that is already gone counts as removed.
fn remove_socket_file(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::RemoveSocket { path: path.to_owned(), source }),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::BorrowedFd;
    use std::thread;

    use nix::sys::socket::{sendmsg, ControlMessage};

    use super::*;
    use crate::test_support::{open_pty, read_within};
    use crate::window::{set_window_size, window_size};

    /// Sends one message like runc does: the terminal's name as payload, `fds` as SCM_RIGHTS.
    fn send_like_runc(stream: &UnixStream, name: &[u8], fds: &[BorrowedFd<'_>]) {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let iov = [io::IoSlice::new(name)];
        let control = [ControlMessage::ScmRights(&raw)];
        let control: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &control };
        sendmsg::<()>(stream.as_raw_fd(), &iov, control, MsgFlags::empty(), None).expect("sendmsg");
    }

    #[test]
    fn receive_master_returns_the_pty_master_runc_sends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        let socket = ConsoleSocket::bind(&path).expect("bind");
        let mode = fs::metadata(&path).expect("stat socket").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "socket mode is {mode:o}");

        let pty = open_pty();
        // The connection waits in the backlog, so the sender needs no thread of its own.
        let runc = UnixStream::connect(&path).expect("connect");
        send_like_runc(&runc, b"/dev/pts/0", &[pty.master.as_fd()]);
        drop(pty.master);

        let master = socket.receive_master(Duration::from_secs(5)).expect("receive master");
        // The received fd drives the very terminal whose slave we hold: output crosses it and a resize shows.
        let mut slave = fs::File::from(pty.slave);
        slave.write_all(b"ping").expect("write to slave");
        assert_eq!(read_within(master.as_fd(), 4, Duration::from_secs(5)), b"ping");
        set_window_size(master.as_fd(), 50, 120).expect("resize through received master");
        assert_eq!(window_size(slave.as_fd()).expect("slave size"), (50, 120));

        drop(socket);
        assert!(!path.exists(), "dropping the console socket leaves {} behind", path.display());
    }

    #[test]
    fn receive_master_closes_extra_fds_in_the_message() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        let socket = ConsoleSocket::bind(&path).expect("bind");
        let pty = open_pty();
        let (pipe_reader, pipe_writer) = nix::unistd::pipe().expect("pipe");
        let mut pipe_reader = fs::File::from(pipe_reader);

        let runc = UnixStream::connect(&path).expect("connect");
        send_like_runc(&runc, b"/dev/pts/0", &[pty.master.as_fd(), pipe_writer.as_fd()]);
        drop(pipe_writer);
        let _master = socket.receive_master(Duration::from_secs(5)).expect("receive master");

        // EOF on the pipe proves that the receiver closed the write end it was sent.
        let mut rest = Vec::new();
        pipe_reader.read_to_end(&mut rest).expect("read pipe to EOF");
        assert!(rest.is_empty());
    }

    #[test]
    fn receive_master_rejects_bad_messages() {
        /// What the peer does after connecting.
        enum Send {
            /// Closes the connection without sending anything.
            Nothing,
            /// Sends the name without ancillary data.
            NameOnly,
            /// Sends a pipe instead of a pty master.
            Pipe,
            /// Sends the slave side of a pty instead of the master.
            Slave,
        }
        struct Case {
            name: &'static str,
            send: Send,
            check: fn(&Error) -> bool,
        }
        let cases = [
            Case {
                name: "closed without a message",
                send: Send::Nothing,
                check: |e| matches!(e, Error::NoFdReceived { .. }),
            },
            Case { name: "name without fd", send: Send::NameOnly, check: |e| matches!(e, Error::NoFdReceived { .. }) },
            Case {
                name: "pipe instead of master",
                send: Send::Pipe,
                check: |e| matches!(e, Error::ReceivedNotPtyMaster { source: Errno::ENOTTY, .. }),
            },
            Case {
                name: "slave instead of master",
                send: Send::Slave,
                check: |e| matches!(e, Error::ReceivedNotPtyMaster { source: Errno::ENOTTY, .. }),
            },
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        for case in cases {
            let path = dir.path().join("console.sock");
            let socket = ConsoleSocket::bind(&path).unwrap_or_else(|e| panic!("{}: bind: {e}", case.name));
            let runc = UnixStream::connect(&path).unwrap_or_else(|e| panic!("{}: connect: {e}", case.name));
            let pty = open_pty();
            let (pipe_reader, _pipe_writer) = nix::unistd::pipe().expect("pipe");
            match case.send {
                Send::Nothing => {}
                Send::NameOnly => send_like_runc(&runc, b"/dev/pts/0", &[]),
                Send::Pipe => send_like_runc(&runc, b"/dev/pts/0", &[pipe_reader.as_fd()]),
                Send::Slave => send_like_runc(&runc, b"/dev/pts/0", &[pty.slave.as_fd()]),
            }
            drop(runc);
            match socket.receive_master(Duration::from_secs(5)) {
                Ok(_) => panic!("{}: a master was accepted", case.name),
                Err(err) => assert!((case.check)(&err), "{}: unexpected error {err:?}", case.name),
            }
        }
    }

    /// Connects to `path` from a thread running as user `nobody` and sends `fd` over the connection; `None` when
    /// this thread cannot become `nobody` here (not root, or the uid is not mapped in our user namespace).
    fn connect_as_nobody(path: &Path, fd: BorrowedFd<'_>) -> Option<io::Result<()>> {
        const NOBODY: libc::uid_t = 65534;
        let raw_fd = fd.as_raw_fd();
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: the raw syscall changes the credentials of this thread only (glibc's setresuid would
                    // change every thread's); the thread ends right after.
                    let ret = unsafe { libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, NOBODY) };
                    if ret != 0 {
                        return None;
                    }
                    Some(UnixStream::connect(path).map(|stream| {
                        // SAFETY: the caller's fd outlives this scoped thread.
                        let fd = unsafe { BorrowedFd::borrow_raw(raw_fd) };
                        send_like_runc(&stream, b"/dev/pts/0", &[fd]);
                    }))
                })
                .join()
                .expect("nobody thread panicked")
        })
    }

    #[test]
    #[ignore = "needs root, to act as another user (tests/run runs it)"]
    fn only_root_or_our_user_can_hand_over_a_master() {
        assert!(nix::unistd::geteuid().is_root(), "needs root, to act as another user");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        let socket = ConsoleSocket::bind(&path).expect("bind");
        let impostor_pty = open_pty();

        // The socket's mode keeps other users out...
        match connect_as_nobody(&path, impostor_pty.master.as_fd()) {
            None => panic!("cannot become nobody here"),
            Some(Err(err)) => assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "connect as nobody: {err}"),
            Some(Ok(())) => panic!("nobody could connect to a 0600 console socket"),
        }

        // ...and if one gets in anyway (before the chmod in bind), its master is ignored in favour of runc's.
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).expect("open the dir");
        fs::set_permissions(&path, Permissions::from_mode(0o666)).expect("open the socket");
        connect_as_nobody(&path, impostor_pty.master.as_fd())
            .expect("became nobody before")
            .expect("connect as nobody to an open socket");
        let runc_pty = open_pty();
        let runc = UnixStream::connect(&path).expect("connect");
        send_like_runc(&runc, b"/dev/pts/1", &[runc_pty.master.as_fd()]);

        let master = socket.receive_master(Duration::from_secs(5)).expect("receive master");
        let runc_number = pty_number(runc_pty.master.as_fd()).expect("runc's pty number");
        assert_eq!(pty_number(master.as_fd()).expect("received pty number"), runc_number, "got the impostor's master");
    }

    #[test]
    fn receive_master_times_out_when_nobody_connects() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        let socket = ConsoleSocket::bind(&path).expect("bind");
        let start = Instant::now();
        match socket.receive_master(Duration::from_millis(100)) {
            Err(Error::ReceiveTimeout { timeout, .. }) => assert_eq!(timeout, Duration::from_millis(100)),
            other => panic!("expected ReceiveTimeout, got {other:?}"),
        }
        assert!(start.elapsed() >= Duration::from_millis(100), "gave up after {:?}", start.elapsed());
    }

    #[test]
    fn receive_master_times_out_when_the_peer_connects_but_sends_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        let socket = ConsoleSocket::bind(&path).expect("bind");
        let _silent = UnixStream::connect(&path).expect("connect");
        match socket.receive_master(Duration::from_millis(100)) {
            Err(Error::ReceiveTimeout { .. }) => {}
            other => panic!("expected ReceiveTimeout, got {other:?}"),
        }
    }

    #[test]
    fn bind_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        // std's listener leaves its file behind when dropped, like a crashed earlier run.
        drop(UnixListener::bind(&path).expect("bind stale"));
        assert!(path.exists());
        let socket = ConsoleSocket::bind(&path).expect("bind over stale socket");
        UnixStream::connect(&path).expect("the new socket accepts connections");
        socket.remove().expect("remove");
        assert!(!path.exists());
    }

    #[test]
    fn bind_refuses_to_delete_a_file_that_is_not_a_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        fs::write(&path, b"precious").expect("write file");
        match ConsoleSocket::bind(&path) {
            Err(Error::NotASocket { path: reported }) => assert_eq!(reported, path),
            other => panic!("expected NotASocket, got {other:?}"),
        }
        assert_eq!(fs::read(&path).expect("file still there"), b"precious");
    }

    #[test]
    fn bind_reports_a_path_too_long_for_a_unix_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x".repeat(200));
        match ConsoleSocket::bind(&path) {
            Err(Error::Bind { path: reported, .. }) => assert_eq!(reported, path),
            other => panic!("expected Bind, got {other:?}"),
        }
    }
}
