//! runc-wrap: everything that touches runc. The runc CLI wrapper used by the daemon, the typed
//! protocol between the daemon and the helper inside each container's unit, atomic state files,
//! and the helper itself.

pub mod atomic_file;
pub mod deadlines;
pub mod exec_fifo;
pub mod features;
pub mod helper;
pub mod notify;
pub mod protocol;
pub mod random;
pub mod runc;
pub mod runtime;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

use std::path::PathBuf;
use std::time::Duration;

pub use runc::Runc;
pub use runtime::{RuncFactory, Runtime, RuntimeFactory};

/// Errors of runc invocations, state files and the in-unit helper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A state file could not be read, written or removed.
    #[error("state file {path}: {source}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A state file's JSON could not be produced.
    #[error("encoding {path}: {source}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A state file holds something other than the expected JSON.
    #[error("{path} is not valid: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON document that must be an object is not.
    #[error("{path} is not a JSON object")]
    NotAnObject {
        /// The file.
        path: PathBuf,
    },
    /// Releasing a created container through runc's exec fifo failed.
    #[error("starting container {id} through {fifo}: {failure}")]
    ExecFifo {
        /// The container.
        id: String,
        /// runc's exec fifo.
        fifo: PathBuf,
        /// What went wrong.
        #[source]
        failure: crate::exec_fifo::ReleaseFailure,
    },
    /// runc could not be started at all.
    #[error("running {binary} {command} for container {id}: {source}")]
    SpawnRunc {
        /// The runc binary.
        binary: PathBuf,
        /// The runc subcommand.
        command: &'static str,
        /// The container.
        id: String,
        /// Why it could not run.
        #[source]
        source: std::io::Error,
    },
    /// runc ran and failed.
    #[error("runc {command} {id} failed ({status}): {message}")]
    RuncFailed {
        /// The runc subcommand.
        command: &'static str,
        /// The container.
        id: String,
        /// How runc exited.
        status: String,
        /// The last line runc printed on stderr.
        message: String,
    },
    /// runc did not finish in time.
    #[error("runc {command} {id} did not finish within {timeout:?}")]
    RuncTimeout {
        /// The runc subcommand.
        command: &'static str,
        /// The container.
        id: String,
        /// The deadline.
        timeout: Duration,
    },
    /// A binary was not found where it was looked for.
    #[error("binary {name:?} not found (searched {searched})")]
    BinaryNotFound {
        /// The name or path asked for.
        name: String,
        /// Where it was looked for.
        searched: String,
    },
    /// systemd's `$EXIT_CODE` / `$EXIT_STATUS` make no sense together.
    #[error("unexpected exit environment EXIT_CODE={exit_code:?} EXIT_STATUS={exit_status:?}")]
    ExitEnvironment {
        /// `$EXIT_CODE`.
        exit_code: String,
        /// `$EXIT_STATUS`.
        exit_status: String,
    },
    /// The helper could not read its own cgroups (`/proc/self/cgroup`).
    #[error("reading the helper's own cgroups from /proc/self/cgroup: {source}")]
    OwnCgroupUnreadable {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// This process is not in a systemd-managed cgroup.
    #[error("the helper is not in a systemd cgroup (no name=systemd or unified entry in /proc/self/cgroup)")]
    NoUnitCgroup,
    /// systemd did not start the helper in the subgroup the unit names.
    #[error("the helper runs in cgroup {cgroup}, not in the unit's subgroup {supervisor:?}")]
    NotInSupervisorCgroup {
        /// The helper's cgroup.
        cgroup: String,
        /// Where it should be.
        supervisor: crate::protocol::SupervisorCgroup,
    },
    /// A cgroup could not be created, entered or examined.
    #[error("{action} cgroup {path}: {source}")]
    Cgroup {
        /// The cgroup directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A rootfs mount failed.
    #[error("mounting {fs_type} {source_path} on {target}: {message}")]
    Mount {
        /// Filesystem type.
        fs_type: String,
        /// Mount source.
        source_path: String,
        /// Mount target.
        target: PathBuf,
        /// The mount error.
        message: String,
    },
    /// A stdio fifo or file could not be opened.
    #[error("opening stdio {path}: {source}")]
    OpenStdio {
        /// The fifo or file.
        path: PathBuf,
        /// The open error.
        #[source]
        source: std::io::Error,
    },
    /// A `binary://` log URI that cannot name a logger.
    #[error("log URI {uri:?}: {reason}")]
    LogUri {
        /// The URI.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `binary://` logger could not be started, or failed before it was ready.
    #[error("starting the logger {program}: {source}")]
    LoggerSpawn {
        /// The logger program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `binary://` logger never said it was ready.
    #[error("the logger {program} did not say it was ready (close or write its fd 5) within {timeout:?}")]
    LoggerNotReady {
        /// The logger program.
        program: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// The other end of a stdio fifo never opened.
    #[error("timed out after {timeout:?} waiting for the other end of fifo {path}")]
    FifoTimeout {
        /// The fifo.
        path: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// A system call the exec helper needs to supervise its process failed.
    #[error("{action}: {source}")]
    Supervise {
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: nix::errno::Errno,
    },
    /// A copier could not drop its privileges; it does not copy as root.
    #[error("dropping the copier's privileges: {step}: {source}")]
    DropPrivileges {
        /// Which step failed.
        step: &'static str,
        /// The error.
        #[source]
        source: nix::errno::Errno,
    },
    /// A pid file does not hold a pid.
    #[error("pid file {path} holds {contents:?}, not a pid")]
    BadPidFile {
        /// The file.
        path: PathBuf,
        /// What it holds.
        contents: String,
    },
    /// The terminal could not be set up.
    #[error("terminal: {0}")]
    Console(#[from] pty::Error),
    /// A message to systemd over its notification socket (`$NOTIFY_SOCKET`) was not sent.
    #[error("telling systemd {state:?}: {source}")]
    NotifySystemd {
        /// The message, e.g. `MAINPID=42`.
        state: String,
        /// Why it was not sent.
        #[source]
        source: std::io::Error,
    },
    /// `$NOTIFY_SOCKET` cannot be handed to a container.
    #[error("NOTIFY_SOCKET {socket:?} is not a socket path that can be mounted into the container")]
    NotifySocket {
        /// The value.
        socket: String,
    },
}
