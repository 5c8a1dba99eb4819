//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

/// Everything that can go wrong in the terminal plumbing; each variant names what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The console socket path is taken by something that is not a socket; we refuse to delete it.
    #[error("console socket path {path} exists and is not a socket")]
    NotASocket {
        /// The path we were asked to bind.
        path: PathBuf,
    },
    /// Looking at what already sits at the console socket path failed.
    #[error("failed to inspect console socket path {path}")]
    InspectSocketPath {
        /// The path we were asked to bind.
        path: PathBuf,
        /// The error from `lstat`.
        #[source]
        source: io::Error,
    },
    /// A stale socket left at the console socket path could not be removed.
    #[error("failed to remove stale console socket {path}")]
    RemoveStaleSocket {
        /// The stale socket's path.
        path: PathBuf,
        /// The error from `unlink`.
        #[source]
        source: io::Error,
    },
    /// Binding or listening on the console socket failed (the path may be longer than `sun_path` allows).
    #[error("failed to bind console socket {path}")]
    Bind {
        /// The path we were asked to bind.
        path: PathBuf,
        /// The error from `bind` or `listen`.
        #[source]
        source: io::Error,
    },
    /// The console socket could not be restricted to its owner.
    #[error("failed to restrict console socket {path} to mode 0600")]
    SetSocketMode {
        /// The console socket's path.
        path: PathBuf,
        /// The error from `chmod`.
        #[source]
        source: io::Error,
    },
    /// Waiting for runc to connect or to send failed.
    #[error("failed to wait for runc on console socket {path}")]
    WaitForConsole {
        /// The console socket's path.
        path: PathBuf,
        /// The error from `poll`.
        #[source]
        source: Errno,
    },
    /// runc did not connect and send the master in time.
    #[error("timed out after {timeout:?} waiting for the pty master on console socket {path}")]
    ReceiveTimeout {
        /// The console socket's path.
        path: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// Accepting a connection on the console socket failed.
    #[error("failed to accept a connection on console socket {path}")]
    Accept {
        /// The console socket's path.
        path: PathBuf,
        /// The error from `accept`.
        #[source]
        source: io::Error,
    },
    /// The credentials of a connecting process could not be read, so it could not be trusted.
    #[error("failed to read the credentials of a peer on console socket {path}")]
    PeerCredentials {
        /// The console socket's path.
        path: PathBuf,
        /// The error from `getsockopt(SO_PEERCRED)`.
        #[source]
        source: Errno,
    },
    /// Receiving runc's message failed.
    #[error("failed to receive the pty master on console socket {path}")]
    ReceiveMessage {
        /// The console socket's path.
        path: PathBuf,
        /// The error from `recvmsg`.
        #[source]
        source: Errno,
    },
    /// The peer closed the connection or sent a message without a file descriptor.
    #[error("the peer on console socket {path} sent no file descriptor")]
    NoFdReceived {
        /// The console socket's path.
        path: PathBuf,
    },
    /// The peer sent a file descriptor that is not a pty master.
    #[error("the file descriptor received on console socket {path} is not a pty master")]
    ReceivedNotPtyMaster {
        /// The console socket's path.
        path: PathBuf,
        /// The error from the TIOCGPTN probe.
        #[source]
        source: Errno,
    },
    /// The console socket file could not be removed.
    #[error("failed to remove console socket {path}")]
    RemoveSocket {
        /// The console socket's path.
        path: PathBuf,
        /// The error from `unlink`.
        #[source]
        source: io::Error,
    },

    /// SIGTERM and SIGINT could not be blocked for the copier.
    #[error("failed to block SIGTERM and SIGINT for the console copier")]
    BlockSignals {
        /// The error from `pthread_sigmask`.
        #[source]
        source: Errno,
    },
    /// SIGPIPE could not be ignored, so a vanished stdout reader would kill the copier.
    #[error("failed to ignore SIGPIPE for the console copier")]
    IgnoreSigpipe {
        /// The error from `sigaction`.
        #[source]
        source: Errno,
    },
    /// The signalfd that delivers SIGTERM and SIGINT to the copy loop could not be created or read.
    #[error("failed to use a signalfd for SIGTERM and SIGINT")]
    SignalFd {
        /// The error from `signalfd` or its `read`.
        #[source]
        source: Errno,
    },
    /// One of the copied streams could not be made non-blocking.
    #[error("failed to make the {stream} non-blocking")]
    SetNonBlocking {
        /// Which stream.
        stream: Stream,
        /// The error from `fcntl`.
        #[source]
        source: Errno,
    },
    /// Waiting for the copied streams failed.
    #[error("failed to poll the terminal streams")]
    Poll {
        /// The error from `poll`.
        #[source]
        source: Errno,
    },
    /// Reading one of the copied streams failed.
    #[error("failed to read from the {stream}")]
    Read {
        /// Which stream.
        stream: Stream,
        /// The error from `read`.
        #[source]
        source: Errno,
    },
    /// Writing one of the copied streams failed.
    #[error("failed to write to the {stream}")]
    Write {
        /// Which stream.
        stream: Stream,
        /// The error from `write`.
        #[source]
        source: Errno,
    },

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

    /// The pid does not fit the kernel's `pid_t`.
    #[error("pid {pid} is not a valid process id")]
    InvalidPid {
        /// The pid asked for.
        pid: u32,
    },
    /// The kernel has no `pidfd_open` or `pidfd_getfd` (they need Linux 5.6), or a seccomp filter hides them.
    #[error("pidfd_open and pidfd_getfd are not available (Linux 5.6 or newer is needed)")]
    PidfdUnsupported {
        /// The error from the syscall, normally ENOSYS.
        #[source]
        source: Errno,
    },
    /// No process has the pid.
    #[error("no process with pid {pid}")]
    NoSuchProcess {
        /// The pid asked for.
        pid: u32,
    },
    /// `pidfd_open` failed for another reason.
    #[error("failed to open a pidfd for process {pid}")]
    PidfdOpen {
        /// The pid asked for.
        pid: u32,
        /// The error from `pidfd_open`.
        #[source]
        source: Errno,
    },
    /// The process has no open file descriptor with that number.
    #[error("process {pid} has no open file descriptor {fd}")]
    NoSuchFd {
        /// The process's pid.
        pid: u32,
        /// The file descriptor number asked for.
        fd: i32,
    },
    /// `pidfd_getfd` failed for another reason (EPERM: we may not ptrace the process).
    #[error("failed to take file descriptor {fd} of process {pid}")]
    PidfdGetfd {
        /// The process's pid.
        pid: u32,
        /// The file descriptor number asked for.
        fd: i32,
        /// The error from `pidfd_getfd`.
        #[source]
        source: Errno,
    },
    /// The file descriptor taken from the process is not a pty master.
    #[error("file descriptor {fd} of process {pid} is not a pty master")]
    NotPtyMaster {
        /// The process's pid.
        pid: u32,
        /// The file descriptor number asked for.
        fd: i32,
        /// The error from the TIOCGPTN probe.
        #[source]
        source: Errno,
    },
}

/// A stream the console copier reads or writes, named in errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The pty master received from runc.
    Master,
    /// containerd's stdin fifo, copied into the terminal.
    Stdin,
    /// containerd's stdout fifo, which receives the terminal's output.
    Stdout,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Master => "pty master",
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
        })
    }
}
