//! The typed messages between the daemon and the helper that runs inside a container's unit.
//! The daemon writes a [`CreateRequest`] before starting the unit; the helper answers a failure
//! with a [`HelperFailure`] (success needs no answer: runc's pid file is the answer), and the
//! `ExecStopPost` helper records an [`ExitState`]. All three are JSON files in the task's bundle.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::Error;

/// File names inside the bundle directory. containerd owns the bundle; these names do not clash
/// with its files (`config.json`, `rootfs`, `address`, `log`, `bootstrap.json`, …).
pub mod files {
    /// The daemon's [`super::CreateRequest`].
    pub const CREATE_REQUEST: &str = "shim-create.json";
    /// The helper's [`super::HelperFailure`], written only when it fails.
    pub const HELPER_FAILURE: &str = "shim-helper-failure.json";
    /// Written by `runc create --pid-file`, read by systemd as `PIDFile=`.
    pub const INIT_PID: &str = "init.pid";
    /// runc's JSON log (`runc --log … --log-format json`).
    pub const RUNC_LOG: &str = "runc-log.json";
    /// The durable [`super::ExitState`] written by `ExecStopPost`.
    pub const EXIT_STATE: &str = "exit-state.json";
    /// The [`super::ConsoleRecord`] of a container with a terminal.
    pub const CONSOLE_RECORD: &str = "shim-console.json";
    /// The helper's record of a container init that had already exited when `runc create`
    /// (through a program wrapping runc) returned: [`super::InitExitedAtCreate`].
    pub const INIT_EXITED_AT_CREATE: &str = "shim-init-exited.json";
    /// The directory of the `SdNotify` relay's socket, which the container gets instead of
    /// systemd's (runc-wrap's `helper::notify_relay`).
    pub const NOTIFY_DIR: &str = "shim-notify";

    /// The directory holding one subdirectory per exec process ([`exec`]).
    pub const EXEC_DIR: &str = "shim-exec";

    /// Every file we may leave in a bundle, for cleanup (besides [`EXEC_DIR`]).
    pub const ALL: [&str; 7] =
        [CREATE_REQUEST, HELPER_FAILURE, INIT_PID, RUNC_LOG, EXIT_STATE, CONSOLE_RECORD, INIT_EXITED_AT_CREATE];

    /// File names inside an exec process's directory, `<bundle>/shim-exec/<exec id>/`.
    pub mod exec {
        /// The daemon's [`super::super::ExecRequest`].
        pub const REQUEST: &str = "request.json";
        /// The OCI process spec for `runc exec --process`.
        pub const PROCESS: &str = "process.json";
        /// The helper's failure report.
        pub const HELPER_FAILURE: &str = "helper-failure.json";
        /// Written by `runc exec --pid-file`, read by systemd as `PIDFile=`.
        pub const PID: &str = "pid";
        /// runc's JSON log.
        pub const RUNC_LOG: &str = "runc-log.json";
        /// The durable exit state written by `ExecStopPost`.
        pub const EXIT_STATE: &str = "exit-state.json";
        /// The console record of an exec with a terminal.
        pub const CONSOLE_RECORD: &str = "console.json";
    }
}

/// The directory of exec process `exec_id` in `bundle` (the exec id is a validated identifier).
pub fn exec_dir(bundle: &std::path::Path, exec_id: &str) -> PathBuf {
    bundle.join(files::EXEC_DIR).join(exec_id)
}

/// One rootfs mount from containerd's `CreateTaskRequest`, mounted in order on `<bundle>/rootfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsMount {
    /// Filesystem type, e.g. `overlay` or `bind`.
    pub fs_type: String,
    /// Mount source.
    pub source: String,
    /// Mount options as containerd gives them (`ro`, `lowerdir=…`).
    pub options: Vec<String>,
}

/// Where the container's stdio goes. `None` means `/dev/null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioPaths {
    /// Read end for the container's stdin (a fifo containerd created).
    pub stdin: Option<PathBuf>,
    /// Write end for stdout (fifo or file).
    pub stdout: Option<PathBuf>,
    /// Write end for stderr (fifo or file).
    pub stderr: Option<PathBuf>,
}

/// How the container's stdio is set up beyond where it goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioOptions {
    /// Owner `(uid, gid)` given to the stdio fifos or files (runc option `IoUid`/`IoGid`).
    pub owner: Option<(u32, u32)>,
    /// stdout and stderr go to the unit's journal instead of containerd's paths.
    pub output_to_journal: bool,
}

/// Where a process with a terminal gets its console: the socket runc sends the pty master to,
/// and the record of the copier process that then holds it (for the daemon's ResizePty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsolePaths {
    /// The console socket (`runc … --console-socket`); a short path, unix sockets allow 108 bytes.
    pub socket: PathBuf,
    /// Where the helper writes the [`ConsoleRecord`].
    pub record: PathBuf,
}

/// The copier that holds a terminal's pty master: the daemon takes a duplicate of fd
/// `master_fd` of process `pid` (pidfd_getfd) to set the window size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleRecord {
    /// The copier's pid.
    pub pid: u32,
    /// The master's fd number in the copier.
    pub master_fd: i32,
}

/// The checkpoint a container is restored from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreFrom {
    /// CRIU's images.
    pub image_path: PathBuf,
    /// CRIU's work directory (logs).
    pub work_path: PathBuf,
}

/// How to invoke runc for this container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuncInvocation {
    /// Which runc, its root, CRIU and create flags (in the same JSON object as `log`).
    #[serde(flatten)]
    pub settings: crate::runc::RuncSettings,
    /// runc's JSON log file (`--log`).
    pub log: PathBuf,
}

impl RuncInvocation {
    /// The runc this invocation describes.
    pub fn runc(&self) -> crate::Runc {
        crate::Runc::with_settings(self.settings.clone())
    }
}

/// What the daemon asks the in-unit helper to do: mount, open stdio, exec `runc create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The containerd namespace (for a `binary://` logger's `CONTAINER_NAMESPACE`).
    #[serde(default)]
    pub namespace: String,
    /// The container (task) id, as runc knows it.
    pub container_id: String,
    /// The OCI bundle directory.
    pub bundle: PathBuf,
    /// Mounts that make up the rootfs; empty when the bundle's rootfs is ready.
    pub rootfs: Vec<RootfsMount>,
    /// The container's stdio.
    pub stdio: StdioPaths,
    /// Stdio owner and journal mode.
    #[serde(default)]
    pub stdio_options: StdioOptions,
    /// The console, when the container has a terminal.
    #[serde(default)]
    pub console: Option<ConsolePaths>,
    /// The unit is `Type=notify` and the container itself says `READY=1` (option `SdNotify`).
    #[serde(default)]
    pub sd_notify: bool,
    /// Stdio through pipes and a copier, so CRIU can checkpoint the container (option
    /// `Checkpointable`; always for a restore).
    #[serde(default)]
    pub stdio_pipes: bool,
    /// Restore from a checkpoint (`runc restore`) instead of `runc create`.
    #[serde(default)]
    pub restore: Option<RestoreFrom>,
    /// runc binary, root and log.
    pub runc: RuncInvocation,
    /// Where runc writes the init pid.
    pub pid_file: PathBuf,
    /// Where the helper reports a failure.
    pub failure_report: PathBuf,
    /// How long to wait for the other end of a stdio fifo before giving up.
    pub fifo_timeout_ms: u64,
    /// Where the unit's own processes live, beside the container's cgroup.
    pub supervisor: SupervisorCgroup,
}

/// The cgroup below the unit's where the helper and `runc create` run, so that the unit's own
/// cgroup holds no process and can enable controllers for the container's (the unified
/// hierarchy's "no internal processes" rule, cgroups(7)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisorCgroup {
    /// systemd started the helper in `<unit cgroup>/<name>` (`DelegateSubgroup=`).
    StartedIn {
        /// The subgroup's name.
        name: String,
    },
    /// systemd started the helper in the unit's own cgroup: on the unified hierarchy the helper
    /// moves itself into `<unit cgroup>/<name>` first; on v1 and hybrid hosts, where the rule
    /// does not bind the controllers, it stays.
    MoveTo {
        /// The subgroup's name.
        name: String,
    },
}

/// What the daemon asks the helper of an exec unit to do: open stdio, exec `runc exec --detach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The containerd namespace (for a `binary://` logger's `CONTAINER_NAMESPACE`).
    #[serde(default)]
    pub namespace: String,
    /// The container (task) id, as runc knows it.
    pub container_id: String,
    /// The exec id.
    pub exec_id: String,
    /// The exec unit's name, so cleanup without the daemon's memory can find it.
    pub unit: String,
    /// The OCI process spec file for `runc exec --process`.
    pub process_file: PathBuf,
    /// The process's stdio.
    pub stdio: StdioPaths,
    /// Stdio owner and journal mode (the task's).
    #[serde(default)]
    pub stdio_options: StdioOptions,
    /// The console, when the process has a terminal (`process.terminal` in the spec).
    #[serde(default)]
    pub console: Option<ConsolePaths>,
    /// runc binary, root and log.
    pub runc: RuncInvocation,
    /// Where runc writes the process's pid.
    pub pid_file: PathBuf,
    /// Where the helper reports a failure.
    pub failure_report: PathBuf,
    /// How long to wait for the other end of a stdio fifo before giving up.
    pub fifo_timeout_ms: u64,
}

/// The step of container creation that failed inside the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HelperStage {
    /// Reading the create request.
    ReadRequest,
    /// Placing the container's cgroup inside the unit.
    Cgroup,
    /// Mounting the rootfs.
    Mount,
    /// Opening stdio.
    Stdio,
    /// Setting up the terminal.
    Console,
    /// Handing the container systemd's notification socket.
    Notify,
    /// Executing runc.
    ExecRunc,
}

impl std::fmt::Display for HelperStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HelperStage::ReadRequest => "reading the create request",
            HelperStage::Cgroup => "placing the container cgroup",
            HelperStage::Mount => "mounting the rootfs",
            HelperStage::Stdio => "opening stdio",
            HelperStage::Console => "setting up the terminal",
            HelperStage::Notify => "handing the container systemd's notification socket",
            HelperStage::ExecRunc => "executing runc",
        })
    }
}

/// The helper's report when it could not get as far as `runc create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperFailure {
    /// What it was doing.
    pub stage: HelperStage,
    /// The error, with context.
    pub message: String,
}

/// A container init that was gone by the time `runc create` returned (a program wrapping runc
/// may end it right after create): systemd cannot adopt it, so the helper, the init's
/// subreaper meanwhile, reaped it and records how it ended. The task is then created and
/// stopped, as under runc-v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitExitedAtCreate {
    /// The init's pid.
    pub pid: u32,
    /// How it ended.
    pub exit: ExitState,
}

/// How a container's main process ended, as systemd told `ExecStopPost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitState {
    /// containerd's exit status: the exit code, or 128 + signal number for a signal death
    /// (what runc-v2 reports).
    pub status: u32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    /// When it was recorded, in nanoseconds since the Unix epoch.
    pub exited_at_unix_ns: u128,
}

impl ExitState {
    /// Builds the exit state from what systemd passes to `ExecStopPost`: `$EXIT_CODE` is
    /// `exited`, `killed` or `dumped`; `$EXIT_STATUS` is the exit code or the signal's name
    /// without `SIG` (systemd.exec(5), "Environment variables set or propagated by the service
    /// manager"). `None` when systemd passed none: no main process ever ran.
    pub fn from_systemd_env(
        exit_code: Option<&str>,
        exit_status: Option<&str>,
        now: SystemTime,
    ) -> Result<Option<ExitState>, Error> {
        let (Some(code), Some(status)) = (exit_code, exit_status) else {
            return Ok(None);
        };
        let bad = || Error::ExitEnvironment { exit_code: code.to_string(), exit_status: status.to_string() };
        let exited_at_unix_ns = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos();
        match code {
            "exited" => {
                let status: u32 = status.parse().map_err(|_| bad())?;
                Ok(Some(ExitState { status, signal: None, exited_at_unix_ns }))
            }
            "killed" | "dumped" => {
                let signal = signal_from_name(status).ok_or_else(bad)?;
                Ok(Some(ExitState { status: 128 + signal as u32, signal: Some(signal), exited_at_unix_ns }))
            }
            _ => Err(bad()),
        }
    }

    /// When the process exited.
    pub fn exited_at(&self) -> SystemTime {
        let nanos = u64::try_from(self.exited_at_unix_ns).unwrap_or(u64::MAX);
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }
}

/// Signal number for a name as systemd prints it (`KILL`), also accepting `SIGKILL` and digits.
fn signal_from_name(name: &str) -> Option<i32> {
    if let Ok(number) = name.parse::<i32>() {
        return Signal::try_from(number).ok().map(|signal| signal as i32);
    }
    let full = if name.starts_with("SIG") { name.to_string() } else { format!("SIG{name}") };
    full.parse::<Signal>().ok().map(|signal| signal as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_runc_invocation_is_one_flat_json_object_as_older_daemons_wrote_it() {
        let written_before = r#"{"binary":"/usr/sbin/runc","root":"/run/r","log":"/b/log.json","no_pivot_root":true,
            "no_new_keyring":false,"criu":null}"#;
        let invocation: RuncInvocation = serde_json::from_str(written_before).unwrap();
        let expected = crate::runc::RuncSettings {
            binary: "/usr/sbin/runc".into(),
            root: "/run/r".into(),
            criu: None,
            no_pivot_root: true,
            no_new_keyring: false,
        };
        assert_eq!((&invocation.settings, invocation.log.as_path()), (&expected, std::path::Path::new("/b/log.json")));
        let json = serde_json::to_value(&invocation).unwrap();
        assert_eq!(json, serde_json::from_str::<serde_json::Value>(written_before).unwrap());
        let minimal: RuncInvocation = serde_json::from_str(r#"{"binary":"/r","root":"/s","log":"/l"}"#).unwrap();
        assert_eq!(
            minimal.runc().settings,
            crate::runc::RuncSettings { binary: "/r".into(), root: "/s".into(), ..Default::default() }
        );
    }

    #[test]
    fn exit_code_is_reported_as_is() {
        let state = ExitState::from_systemd_env(Some("exited"), Some("3"), at(10)).unwrap().unwrap();
        assert_eq!(state, ExitState { status: 3, signal: None, exited_at_unix_ns: 10_000_000_000 });
    }

    #[test]
    fn signal_death_is_128_plus_signal_like_runc_v2() {
        let killed = ExitState::from_systemd_env(Some("killed"), Some("KILL"), at(1)).unwrap().unwrap();
        assert_eq!((killed.status, killed.signal), (137, Some(9)));
        let dumped = ExitState::from_systemd_env(Some("dumped"), Some("SEGV"), at(1)).unwrap().unwrap();
        assert_eq!((dumped.status, dumped.signal), (139, Some(11)));
        let term = ExitState::from_systemd_env(Some("killed"), Some("SIGTERM"), at(1)).unwrap().unwrap();
        assert_eq!(term.status, 143);
    }

    #[test]
    fn missing_environment_means_nothing_to_record() {
        assert_eq!(ExitState::from_systemd_env(None, None, at(1)).unwrap(), None);
        assert_eq!(ExitState::from_systemd_env(Some("exited"), None, at(1)).unwrap(), None);
    }

    #[test]
    fn garbage_environment_is_an_error_naming_it() {
        for (code, status) in [("exited", "x"), ("killed", "NOSUCHSIG"), ("weird", "1"), ("exited", "-1")] {
            let error = ExitState::from_systemd_env(Some(code), Some(status), at(1)).unwrap_err();
            assert!(
                matches!(&error, Error::ExitEnvironment { exit_code, exit_status }
                    if exit_code == code && exit_status == status),
                "{code}/{status}: {error:?}"
            );
        }
    }

    #[test]
    fn exit_state_round_trips_through_json() {
        let state = ExitState { status: 137, signal: Some(9), exited_at_unix_ns: 1_795_000_000_123_456_789 };
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<ExitState>(&json).unwrap(), state);
        assert_eq!(state.exited_at(), UNIX_EPOCH + Duration::from_nanos(1_795_000_000_123_456_789));
    }

    #[test]
    fn truncated_exit_state_is_rejected() {
        assert!(serde_json::from_str::<ExitState>(r#"{"status":1"#).is_err());
        assert!(serde_json::from_str::<ExitState>(r#"{"signal":null}"#).is_err());
    }
}
