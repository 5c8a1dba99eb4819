//! The shim's error type and its one mapping to ttrpc status codes (at the service boundary):
//! not found → NOT_FOUND, bad state → FAILED_PRECONDITION, bad input → INVALID_ARGUMENT,
//! unsupported → UNIMPLEMENTED, already exists → ALREADY_EXISTS.

use std::path::PathBuf;

use ttrpc::Code;

use crate::systemd::SystemdError;

/// Everything that can go wrong serving a task request or running a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An id or namespace is not a valid identifier, or a slice is invalid.
    #[error(transparent)]
    InvalidInput(#[from] unit_gen::Error),
    /// No task with that id in that namespace.
    #[error("task {namespace}/{id} not found")]
    TaskNotFound {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
    },
    /// An exec id names no process of the task.
    #[error("exec {exec_id:?} of task {namespace}/{id} not found")]
    ExecNotFound {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
        /// The exec id asked for.
        exec_id: String,
    },
    /// An exec with that id already exists in the task.
    #[error("exec {exec_id:?} already exists in task {namespace}/{id}")]
    ExecExists {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
        /// The exec id.
        exec_id: String,
    },
    /// An exec process is in a state that does not allow the operation.
    #[error("exec {exec_id:?} of task {namespace}/{id} is {state}: cannot {action}")]
    ExecBadState {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
        /// The exec id.
        exec_id: String,
        /// Its current state.
        state: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// Starting an exec process failed inside its unit.
    #[error("starting exec {exec_id:?} in task {namespace}/{id} failed while {stage}: {message}")]
    ExecStartFailed {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
        /// The exec id.
        exec_id: String,
        /// What the unit was doing.
        stage: String,
        /// Why it failed.
        message: String,
    },
    /// ResizePty of a process without a terminal.
    #[error("{process} has no terminal")]
    NoTerminal {
        /// The task or exec.
        process: String,
    },
    /// The terminal could not be reached or resized.
    #[error("terminal of {process}: {source}")]
    Terminal {
        /// The task or exec.
        process: String,
        /// What failed.
        #[source]
        source: pty::Error,
    },
    /// A task with that id already exists in that namespace.
    #[error("task {namespace}/{id} already exists")]
    TaskExists {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
    },
    /// The task's unit already exists (left over from an earlier task of the same id).
    #[error("unit {unit} for task {namespace}/{id} already exists; remove it with `systemctl stop {unit}; systemctl reset-failed {unit}`")]
    UnitExists {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
        /// The unit name.
        unit: String,
    },
    /// The task is in a state that does not allow the operation.
    #[error("task {namespace}/{id} is {state}: cannot {action}")]
    BadState {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
        /// Its current state.
        state: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// The process already exited (what containerd expects from killing an exited task).
    #[error("process of task {namespace}/{id} already finished")]
    ProcessFinished {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
    },
    /// A connection id read back from systemd's fd store is not one the daemon would make.
    #[error("invalid connection id {id:?}: {reason}")]
    InvalidConnectionId {
        /// The id (its first 80 characters).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A task record read back from disk fails a check the Create that made it passed.
    #[error("task record {path} is not trusted: {source}")]
    UntrustedRecord {
        /// The record file.
        path: PathBuf,
        /// The check it fails.
        #[source]
        source: Box<Error>,
    },
    /// A task record lies where it does not belong: a copy, or a record moved or renamed.
    #[error("task record {path} names task {namespace}/{id}, whose record belongs at {expected}")]
    MisplacedRecord {
        /// The record file.
        path: PathBuf,
        /// The namespace it names.
        namespace: String,
        /// The task id it names.
        id: String,
        /// Where that task's record belongs.
        expected: PathBuf,
    },
    /// Something in the request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The bundle is missing or unusable.
    #[error("bundle {path}: {reason}")]
    InvalidBundle {
        /// The bundle path from the request.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The bundle could not be looked at.
    #[error("bundle {path}: {source}")]
    UnreadableBundle {
        /// The bundle path from the request.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bundle's config.json is not a usable OCI spec.
    #[error("config.json in bundle {bundle} is not a valid OCI runtime spec: {reason}")]
    InvalidSpec {
        /// The bundle.
        bundle: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The bundle's config.json could not be read (not a regular file, too large, a symlink loop).
    #[error("config.json in bundle {bundle} cannot be read: {source}")]
    UnreadableSpec {
        /// The bundle.
        bundle: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bundle's config.json does not parse as an OCI spec.
    #[error("config.json in bundle {bundle} is not a valid OCI runtime spec: {source}")]
    MalformedSpec {
        /// The bundle.
        bundle: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// An exec's process spec does not parse as an OCI `Process`.
    #[error("exec {exec_id:?}: process spec is not valid: {source}")]
    InvalidProcessSpec {
        /// The exec id.
        exec_id: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Update's resources do not parse as an OCI `LinuxResources`.
    #[error("resources are not valid OCI LinuxResources: {source}")]
    InvalidResources {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A feature this shim does not implement.
    #[error("{0} is not supported by containerd-shim-systemd-v1")]
    Unsupported(String),
    /// Runtime options refused ([`crate::runtime_options`]).
    #[error(transparent)]
    RuntimeOptions(#[from] crate::runtime_options::OptionsError),
    /// containerd's bootstrap parameters and its flags or environment name different containerds.
    #[error(
        "containerd's bootstrap parameters give {parameter} {bootstrap:?}, but {given_as} is {given:?}; refusing to \
         guess which containerd the task belongs to"
    )]
    BootstrapDisagrees {
        /// The bootstrap parameter (`containerd_grpc_address`, …).
        parameter: &'static str,
        /// Its value.
        bootstrap: String,
        /// The flag or variable that says otherwise (`-address`, …).
        given_as: &'static str,
        /// Its value.
        given: String,
    },
    /// `-info` got no runtime features from the OCI runtime binary a task would run.
    #[error("runtime features of {}: {failure}", binary.display())]
    RuntimeFeatures {
        /// The binary asked (`BinaryName`, the configuration's `runc_binary`, or runc).
        binary: PathBuf,
        /// What went wrong.
        #[source]
        failure: runc_wrap::features::FeaturesFailure,
    },
    /// runc-wrap failed: a binary lookup, a runc invocation, a state file. Its code follows
    /// from what failed ([`runc_wrap_code`]), never from where it surfaced.
    #[error(transparent)]
    Runc(#[from] runc_wrap::Error),
    /// Creating the container failed inside its unit.
    #[error("creating task {namespace}/{id} failed while {stage}: {message}")]
    CreateFailed {
        /// Namespace.
        namespace: String,
        /// Task id.
        id: String,
        /// What the unit was doing.
        stage: String,
        /// Why it failed.
        message: String,
        /// Whether the request itself was at fault (e.g. an unmountable rootfs).
        caused_by_input: bool,
    },
    /// The container's cgroup could not be read.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    /// A systemd call failed.
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    /// A signal number that is not a signal.
    #[error("invalid signal {0}")]
    InvalidSignal(u32),
    /// The configuration file is unreadable or invalid.
    #[error("configuration file {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A `systemctl` command that `install` or `uninstall` ran failed.
    #[error("systemctl {command} failed ({status}): {message}")]
    Systemctl {
        /// Its arguments.
        command: String,
        /// How it ended.
        status: String,
        /// The last line it wrote to stderr.
        message: String,
    },
    /// `delete` asked the daemon, which is alive, and it refused: nothing is removed behind it.
    #[error("the daemon refused to delete task {namespace}/{id} ({code}): {message}; leaving the task to it")]
    DaemonRefusedDelete {
        /// The namespace.
        namespace: String,
        /// The task id.
        id: String,
        /// The daemon's ttrpc code.
        code: String,
        /// The daemon's message.
        message: String,
    },
    /// `install` found the daemon's unit name held by the transient unit `start` launched.
    #[error(
        "the daemon's unit {unit} is a transient unit launched on demand by `start` ({state}); install once it is \
         gone: stop it while no containers run (containerd treats the tasks of a stopped daemon as dead), or \
         install after a reboot"
    )]
    TransientDaemon {
        /// The unit.
        unit: String,
        /// Its `ActiveState`.
        state: String,
    },
    /// systemd's fd store of the daemon is full: a connection kept beyond its limit would be
    /// closed at the daemon's next restart.
    #[error(
        "cannot keep {name} in systemd's fd store: it already holds {capacity} descriptors, the daemon unit's \
         FileDescriptorStoreMax (raise [daemon] fd_store_max in the configuration file)"
    )]
    FdStoreFull {
        /// The descriptor's `FDNAME`.
        name: String,
        /// The store's limit.
        capacity: u32,
    },
    /// Blocking work (file I/O, cgroup reads) did not finish in time; it may still be running
    /// on its blocking thread.
    #[error("{context}: not done within {limit:?}")]
    BlockingTimeout {
        /// What was being done.
        context: String,
        /// How long it was given.
        limit: std::time::Duration,
    },
    /// Some other I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The ttrpc status code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidInput(_)
            | Error::InvalidRequest(_)
            | Error::InvalidBundle { .. }
            | Error::UnreadableBundle { .. }
            | Error::InvalidSpec { .. }
            | Error::UnreadableSpec { .. }
            | Error::MalformedSpec { .. }
            | Error::InvalidProcessSpec { .. }
            | Error::InvalidResources { .. }
            | Error::RuntimeOptions(_)
            | Error::BootstrapDisagrees { .. }
            | Error::Config { .. }
            | Error::InvalidConnectionId { .. }
            | Error::InvalidSignal(_) => Code::INVALID_ARGUMENT,
            Error::CreateFailed { caused_by_input: true, .. } => Code::INVALID_ARGUMENT,
            Error::TaskNotFound { .. } | Error::ExecNotFound { .. } | Error::ProcessFinished { .. } => Code::NOT_FOUND,
            Error::TaskExists { .. } | Error::ExecExists { .. } | Error::UnitExists { .. } => Code::ALREADY_EXISTS,
            Error::BadState { .. }
            | Error::ExecBadState { .. }
            | Error::RuntimeFeatures { .. }
            | Error::TransientDaemon { .. }
            | Error::DaemonRefusedDelete { .. }
            | Error::NoTerminal { .. } => Code::FAILED_PRECONDITION,
            Error::Unsupported(_) => Code::UNIMPLEMENTED,
            Error::FdStoreFull { .. } => Code::RESOURCE_EXHAUSTED,
            Error::Runc(error) => runc_wrap_code(error),
            Error::CreateFailed { .. } | Error::ExecStartFailed { .. } => Code::UNKNOWN,
            Error::Systemd(SystemdError::Connect { .. } | SystemdError::ConnectionLost { .. }) => Code::UNAVAILABLE,
            Error::Systemd(SystemdError::JobTimeout { .. }) | Error::BlockingTimeout { .. } => Code::DEADLINE_EXCEEDED,
            Error::Cgroup(error) if error.is_not_found() => Code::NOT_FOUND,
            Error::Systemd(_)
            | Error::Cgroup(_)
            | Error::UntrustedRecord { .. }
            | Error::MisplacedRecord { .. }
            | Error::Io { .. }
            | Error::Terminal { .. }
            | Error::Systemctl { .. } => Code::INTERNAL,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

/// The code of a runc-wrap error, by what failed: the same kind gets the same code whichever
/// operation met it. Exhaustive, so a new kind is classified here before it can surface.
fn runc_wrap_code(error: &runc_wrap::Error) -> Code {
    use runc_wrap::Error as E;
    match error {
        // The binary a task would run is missing: nothing works until that changes (bad_input's
        // "runc missing from PATH" expects this).
        E::BinaryNotFound { .. } => Code::FAILED_PRECONDITION,
        // runc ran, or was to run, and did not do what was asked: what containerd's runc-v2
        // reports for a failing runc command.
        E::SpawnRunc { .. } | E::RuncFailed { .. } | E::RuncTimeout { .. } | E::ExecFifo { .. } => Code::UNKNOWN,
        // What the request asked for cannot be done: a rootfs that does not mount, a logger
        // URI that names no program.
        E::Mount { .. } | E::LogUri { .. } => Code::INVALID_ARGUMENT,
        // Our own files and the helper's machinery.
        E::StateFile { .. }
        | E::Encode { .. }
        | E::Decode { .. }
        | E::NotAnObject { .. }
        | E::BadPidFile { .. }
        | E::ExitEnvironment { .. }
        | E::OwnCgroupUnreadable { .. }
        | E::NoUnitCgroup
        | E::NotInSupervisorCgroup { .. }
        | E::Cgroup { .. }
        | E::OpenStdio { .. }
        | E::LoggerSpawn { .. }
        | E::LoggerNotReady { .. }
        | E::FifoTimeout { .. }
        | E::Supervise { .. }
        | E::DropPrivileges { .. }
        | E::Console(_)
        | E::NotifySystemd { .. }
        | E::NotifySocket { .. } => Code::INTERNAL,
    }
}

impl From<Error> for ttrpc::Error {
    fn from(error: Error) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(error.code(), error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_codes_containerd_expects() {
        let not_found = Error::TaskNotFound { namespace: "ns".into(), id: "t".into() };
        assert_eq!(not_found.code(), Code::NOT_FOUND);
        let finished = Error::ProcessFinished { namespace: "ns".into(), id: "t".into() };
        assert_eq!(finished.code(), Code::NOT_FOUND);
        assert_eq!(Error::Unsupported("exec".into()).code(), Code::UNIMPLEMENTED);
        let running = Error::BadState { namespace: "ns".into(), id: "t".into(), state: "running", action: "delete" };
        assert_eq!(running.code(), Code::FAILED_PRECONDITION);
        assert_eq!(Error::TaskExists { namespace: "ns".into(), id: "t".into() }.code(), Code::ALREADY_EXISTS);
        assert_eq!(Error::InvalidRequest("x".into()).code(), Code::INVALID_ARGUMENT);
    }

    /// Each kind of runc-wrap error has one code, whichever operation met it: a missing binary
    /// is FAILED_PRECONDITION (bad_input's "runc missing from PATH"), a failing runc command
    /// UNKNOWN (as runc-v2 reports it), a bad rootfs or logger URI INVALID_ARGUMENT, and our own
    /// state files and the helper's machinery INTERNAL.
    #[test]
    fn each_runc_wrap_error_kind_has_one_code() {
        use runc_wrap::Error as E;
        use std::time::Duration;
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let json = || serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let errno = nix::errno::Errno::EPERM;
        let cases: Vec<(E, Code)> = vec![
            (E::BinaryNotFound { name: "runc".into(), searched: "PATH=/bin".into() }, Code::FAILED_PRECONDITION),
            (
                E::SpawnRunc { binary: "/bin/runc".into(), command: "start", id: "t".into(), source: io() },
                Code::UNKNOWN,
            ),
            (
                E::RuncFailed { command: "kill", id: "t".into(), status: "exit status: 1".into(), message: "x".into() },
                Code::UNKNOWN,
            ),
            (E::RuncTimeout { command: "pause", id: "t".into(), timeout: Duration::from_secs(1) }, Code::UNKNOWN),
            (
                E::ExecFifo {
                    id: "t".into(),
                    fifo: "/run/t/exec.fifo".into(),
                    failure: runc_wrap::exec_fifo::ReleaseFailure::NoByte,
                },
                Code::UNKNOWN,
            ),
            (
                E::Mount { fs_type: "bind".into(), source_path: "/x".into(), target: "/r".into(), message: "x".into() },
                Code::INVALID_ARGUMENT,
            ),
            (E::LogUri { uri: "binary://x".into(), reason: "x".into() }, Code::INVALID_ARGUMENT),
            (E::StateFile { path: "/run/b/init.pid".into(), source: io() }, Code::INTERNAL),
            (E::Encode { path: "/run/b/create.json".into(), source: json() }, Code::INTERNAL),
            (E::Decode { path: "/run/b/create.json".into(), source: json() }, Code::INTERNAL),
            (E::NotAnObject { path: "/run/b/config.json".into() }, Code::INTERNAL),
            (E::BadPidFile { path: "/run/b/init.pid".into(), contents: "x".into() }, Code::INTERNAL),
            (E::ExitEnvironment { exit_code: "x".into(), exit_status: "y".into() }, Code::INTERNAL),
            (E::OwnCgroupUnreadable { source: io() }, Code::INTERNAL),
            (E::NoUnitCgroup, Code::INTERNAL),
            (
                E::NotInSupervisorCgroup {
                    cgroup: "/x".into(),
                    supervisor: runc_wrap::protocol::SupervisorCgroup::StartedIn { name: "s".into() },
                },
                Code::INTERNAL,
            ),
            (E::Cgroup { path: "/sys/fs/cgroup/x".into(), action: "creating", source: io() }, Code::INTERNAL),
            (E::OpenStdio { path: "/run/f/out".into(), source: io() }, Code::INTERNAL),
            (E::LoggerSpawn { program: "/bin/logger".into(), source: io() }, Code::INTERNAL),
            (E::LoggerNotReady { program: "/bin/logger".into(), timeout: Duration::from_secs(1) }, Code::INTERNAL),
            (E::FifoTimeout { path: "/run/f/out".into(), timeout: Duration::from_secs(1) }, Code::INTERNAL),
            (E::Supervise { action: "waiting", source: errno }, Code::INTERNAL),
            (E::DropPrivileges { step: "setuid", source: errno }, Code::INTERNAL),
            (E::Console(pty::Error::NotASocket { path: "/run/c.sock".into() }), Code::INTERNAL),
            (E::NotifySystemd { state: "MAINPID=42".into(), source: io() }, Code::INTERNAL),
            (E::NotifySocket { socket: "x".into() }, Code::INTERNAL),
        ];
        for (error, code) in cases {
            let name = format!("{error:?}");
            assert_eq!(Error::from(error).code(), code, "{name}");
        }
    }

    #[test]
    fn ttrpc_status_carries_code_and_message() {
        let status: ttrpc::Error = Error::TaskNotFound { namespace: "ns".into(), id: "t1".into() }.into();
        let ttrpc::Error::RpcStatus(status) = status else { panic!("not a status") };
        assert_eq!(status.code(), Code::NOT_FOUND);
        assert_eq!(status.message(), "task ns/t1 not found");
    }
}
