//! Invoking the runc CLI. Argument lists are built by pure functions (unit-tested); the daemon
//! runs them asynchronously with a deadline, the helper `exec`s `runc create` in place.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;
use tracing::Instrument;

use crate::deadlines::{RuncDeadlines, RuncOperation};
use crate::Error;

/// Variables systemd sets for the daemon's own service that must not reach runc: with
/// `NOTIFY_SOCKET` set, runc sets up sd_notify forwarding for the container (and `runc start`
/// then expects the forwarding socket `runc create` made).
const SERVICE_ONLY_ENV: [&str; 4] = ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// Which runc a container has and how it is created: the runtime options' runc settings
/// (`BinaryName`, `Root`, `NoPivotRoot`, `NoNewKeyring`), resolved to absolute paths, and the
/// CRIU found for it. The one shape of these settings from a Create to runc's command line: the
/// helper's request files carry it as it is (`RuncInvocation`), the daemon's task record in
/// fields of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuncSettings {
    /// Absolute path of the runc binary.
    pub binary: PathBuf,
    /// runc's `--root`, where it keeps container state.
    pub root: PathBuf,
    /// CRIU for checkpoint and restore. runc runs `criu` from its `PATH` (1.1 by default, 1.2 and
    /// later always: they warn on `--criu`, into the container's stderr for a create), and inside a
    /// unit that `PATH` is systemd's, not containerd's: runc gets this file's directory first.
    #[serde(default)]
    pub criu: Option<PathBuf>,
    /// `runc create --no-pivot`: do not pivot_root (for a rootfs on a ramdisk).
    #[serde(default)]
    pub no_pivot_root: bool,
    /// `runc create --no-new-keyring`: keep the caller's session keyring.
    #[serde(default)]
    pub no_new_keyring: bool,
}

/// Where `runc create` finds the bundle and writes its pid file and log.
#[derive(Debug, Clone, Copy)]
pub struct CreatePaths<'a> {
    /// The OCI bundle.
    pub bundle: &'a Path,
    /// The pid file runc writes.
    pub pid_file: &'a Path,
    /// runc's JSON log.
    pub log: &'a Path,
    /// The console socket, for a container with a terminal.
    pub console_socket: Option<&'a Path>,
}

/// Where `runc exec` finds the process spec and writes its pid file and log.
#[derive(Debug, Clone, Copy)]
pub struct ExecPaths<'a> {
    /// The OCI process spec (JSON).
    pub process: &'a Path,
    /// The pid file runc writes.
    pub pid_file: &'a Path,
    /// runc's JSON log.
    pub log: &'a Path,
    /// The console socket, for a process with a terminal.
    pub console_socket: Option<&'a Path>,
}

/// What `runc checkpoint` is asked to do (containerd's `CheckpointOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointArgs {
    /// Where CRIU writes the images.
    pub image_path: PathBuf,
    /// Where CRIU writes its work files and logs.
    pub work_path: PathBuf,
    /// Keep the container running after the dump (containerd's `exit` is false).
    pub leave_running: bool,
    /// `--tcp-established`.
    pub tcp_established: bool,
    /// `--ext-unix-sk`.
    pub external_unix_sockets: bool,
    /// `--shell-job` (the container has a terminal).
    pub shell_job: bool,
    /// `--file-locks`.
    pub file_locks: bool,
    /// `--empty-ns` for each namespace type named.
    pub empty_namespaces: Vec<String>,
    /// `--manage-cgroups-mode`.
    pub cgroups_mode: Option<String>,
}

/// systemd's default `PATH` for services, where a unit's processes find programs.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A runc to run: its settings, and how long each operation may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runc {
    /// Which runc, its root, CRIU and create flags.
    pub settings: RuncSettings,
    /// How long each operation may take before runc is killed and the call abandoned.
    pub deadlines: RuncDeadlines,
}

impl Runc {
    /// runc at `binary` with state under `root`, other settings at their defaults.
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Runc {
        Runc::with_settings(RuncSettings { binary: binary.into(), root: root.into(), ..RuncSettings::default() })
    }

    /// The runc `settings` describe, with the default deadlines.
    pub fn with_settings(settings: RuncSettings) -> Runc {
        Runc { settings, deadlines: RuncDeadlines::default() }
    }

    /// Whether the binary is runc itself (its file is named `runc`) rather than a program that
    /// wraps it (`BinaryName` pointing at a script that adds behaviour and then runs runc).
    /// Only runc itself may be driven without running it: releasing init through the exec fifo,
    /// signalling init through a pidfd, and removing an exited container's state without
    /// `runc delete` are what runc would do, but a wrapper expects to see every step.
    pub fn is_plain_runc(&self) -> bool {
        self.settings.binary.file_name().is_some_and(|name| name == "runc")
    }

    /// The same runc, with `deadlines` for its operations.
    pub fn with_deadlines(mut self, deadlines: RuncDeadlines) -> Runc {
        self.deadlines = deadlines;
        self
    }

    /// `runc --root R --log L --log-format json create --bundle B --pid-file P [flags] ID` (argv
    /// without the binary). Run by the helper with the container's stdio as its own.
    pub fn create_args(&self, id: &str, paths: CreatePaths<'_>) -> Vec<OsString> {
        let mut args = self.global_args(Some(paths.log));
        args.extend([
            "create".into(),
            "--bundle".into(),
            paths.bundle.into(),
            "--pid-file".into(),
            paths.pid_file.into(),
        ]);
        if self.settings.no_pivot_root {
            args.push("--no-pivot".into());
        }
        if self.settings.no_new_keyring {
            args.push("--no-new-keyring".into());
        }
        if let Some(socket) = paths.console_socket {
            args.extend(["--console-socket".into(), socket.into()]);
        }
        args.push(id.into());
        args
    }

    /// `runc --root R --log L --log-format json exec --detach --process P --pid-file F [--console-socket S] ID`
    /// (argv without the binary). Run by the exec helper with the process's stdio as its own.
    pub fn exec_args(&self, id: &str, paths: ExecPaths<'_>) -> Vec<OsString> {
        let mut args = self.global_args(Some(paths.log));
        args.extend([
            "exec".into(),
            "--detach".into(),
            "--process".into(),
            paths.process.into(),
            "--pid-file".into(),
            paths.pid_file.into(),
        ]);
        if let Some(socket) = paths.console_socket {
            args.extend(["--console-socket".into(), socket.into()]);
        }
        args.push(id.into());
        args
    }

    /// `runc checkpoint …` for container `id`.
    pub fn checkpoint_args(&self, id: &str, checkpoint: &CheckpointArgs) -> Vec<OsString> {
        let mut args = self.global_args(None);
        args.extend([
            "checkpoint".into(),
            "--image-path".into(),
            checkpoint.image_path.clone().into(),
            "--work-path".into(),
            checkpoint.work_path.clone().into(),
        ]);
        let flags = [
            (checkpoint.leave_running, "--leave-running"),
            (checkpoint.tcp_established, "--tcp-established"),
            (checkpoint.external_unix_sockets, "--ext-unix-sk"),
            (checkpoint.shell_job, "--shell-job"),
            (checkpoint.file_locks, "--file-locks"),
        ];
        args.extend(flags.into_iter().filter(|(on, _)| *on).map(|(_, flag)| OsString::from(flag)));
        for namespace in &checkpoint.empty_namespaces {
            args.extend(["--empty-ns".into(), namespace.into()]);
        }
        if let Some(mode) = &checkpoint.cgroups_mode {
            args.extend(["--manage-cgroups-mode".into(), mode.into()]);
        }
        args.push(id.into());
        args
    }

    /// Checkpoints container `id` with CRIU.
    pub async fn checkpoint(&self, id: &str, checkpoint: &CheckpointArgs) -> Result<(), Error> {
        self.run(RuncOperation::Checkpoint, id, self.checkpoint_args(id, checkpoint)).await
    }

    /// `runc … restore --detach --bundle B --pid-file P --image-path I --work-path W [flags] ID`:
    /// like [`Runc::create_args`], but the container comes back from a checkpoint, running.
    pub fn restore_args(&self, id: &str, paths: CreatePaths<'_>, image_path: &Path, work_path: &Path) -> Vec<OsString> {
        let mut args = self.global_args(Some(paths.log));
        args.extend([
            "restore".into(),
            "--detach".into(),
            "--bundle".into(),
            paths.bundle.into(),
            "--pid-file".into(),
            paths.pid_file.into(),
            "--image-path".into(),
            image_path.into(),
            "--work-path".into(),
            work_path.into(),
        ]);
        if self.settings.no_pivot_root {
            args.push("--no-pivot".into());
        }
        if let Some(socket) = paths.console_socket {
            args.extend(["--console-socket".into(), socket.into()]);
        }
        args.push(id.into());
        args
    }

    /// `runc start ID`.
    pub fn start_args(&self, id: &str) -> Vec<OsString> {
        let mut args = self.global_args(None);
        args.extend(["start".into(), id.into()]);
        args
    }

    /// `runc kill [--all] ID SIGNAL`.
    pub fn kill_args(&self, id: &str, signal: Signal, all: bool) -> Vec<OsString> {
        let mut args = self.global_args(None);
        args.push("kill".into());
        if all {
            args.push("--all".into());
        }
        args.extend([id.into(), (signal as i32).to_string().into()]);
        args
    }

    /// `runc delete [--force] ID`.
    pub fn delete_args(&self, id: &str, force: bool) -> Vec<OsString> {
        let mut args = self.global_args(None);
        args.push("delete".into());
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        args
    }

    /// The `PATH` runc must run with to find [`RuncSettings::criu`], given the caller's own `current`
    /// one; `None` when runc may keep the caller's.
    pub fn path_env(&self, current: Option<&std::ffi::OsStr>) -> Option<OsString> {
        let dir = self.settings.criu.as_deref()?.parent().filter(|dir| !dir.as_os_str().is_empty())?;
        let rest = current.filter(|path| !path.is_empty()).unwrap_or(std::ffi::OsStr::new(DEFAULT_PATH));
        let mut path = OsString::from(dir);
        path.push(":");
        path.push(rest);
        Some(path)
    }

    fn global_args(&self, log: Option<&Path>) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--root".into(), self.settings.root.clone().into()];
        if let Some(log) = log {
            args.extend(["--log".into(), log.into(), "--log-format".into(), "json".into()]);
        }
        args
    }

    /// Whether runc has state for container `id`: its state file exists. A fact on disk, not a
    /// guess from runc's error text.
    pub async fn has_container(&self, id: &str) -> bool {
        tokio::fs::try_exists(self.settings.root.join(id).join("state.json")).await.unwrap_or(false)
    }

    /// Forgets container `id` whose processes are all gone and whose cgroups its caller
    /// removes, and that has no poststop hooks: all `runc delete` would still do is remove its
    /// state directory, which this does without running runc.
    pub async fn forget_exited(&self, id: &str) -> Result<(), Error> {
        let state_dir = self.settings.root.join(id);
        match tokio::fs::remove_dir_all(&state_dir).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::StateFile { path: state_dir, source: error })
            }
            _ => Ok(()),
        }
    }

    /// Starts the created container `id`, whose init is `init_pid`, by releasing it through
    /// runc's exec fifo (see [`crate::exec_fifo`]); where there is no fifo, with `runc start`.
    /// Only for specs without poststart hooks, which some runc versions run in `runc start`.
    pub async fn start_created(&self, id: &str, init_pid: u32) -> Result<(), Error> {
        let span = runc_span("start", id);
        let deadline = self.deadlines.of(RuncOperation::Start);
        let released = crate::exec_fifo::release(&self.settings.root.join(id), id, init_pid, deadline)
            .instrument(span.clone())
            .await;
        match released {
            Ok(crate::exec_fifo::Released::Started) => Ok(()),
            Ok(crate::exec_fifo::Released::NoFifo) => self.start(id).await,
            Err(error) => {
                mark_failed(&span, &error);
                Err(error)
            }
        }
    }

    /// Starts the created container `id` (`runc start`).
    pub async fn start(&self, id: &str) -> Result<(), Error> {
        self.run(RuncOperation::Start, id, self.start_args(id)).await
    }

    /// Sends `signal` to the container's init, or to all its processes.
    pub async fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), Error> {
        self.run(RuncOperation::Kill, id, self.kill_args(id, signal, all)).await
    }

    /// Freezes every process of container `id` (`runc pause`).
    pub async fn pause(&self, id: &str) -> Result<(), Error> {
        self.run(RuncOperation::Pause, id, self.simple_args("pause", id)).await
    }

    /// Thaws container `id` (`runc resume`).
    pub async fn resume(&self, id: &str) -> Result<(), Error> {
        self.run(RuncOperation::Resume, id, self.simple_args("resume", id)).await
    }

    /// Applies the resources in the JSON file `resources` (an OCI `LinuxResources`) to container `id`.
    pub async fn update(&self, id: &str, resources: &Path) -> Result<(), Error> {
        let mut args = self.global_args(None);
        args.extend(["update".into(), "--resources".into(), resources.into(), id.into()]);
        self.run(RuncOperation::Update, id, args).await
    }

    /// The pids of every process in container `id` (`runc ps --format json`).
    pub async fn ps(&self, id: &str) -> Result<Vec<u32>, Error> {
        let mut args = self.global_args(None);
        args.extend(["ps".into(), "--format".into(), "json".into(), id.into()]);
        let output = self.output(RuncOperation::Ps, id, args).await?;
        parse_ps_output(&output).map_err(|message| Error::RuncFailed {
            command: "ps",
            id: id.to_string(),
            status: "unparsable output".into(),
            message,
        })
    }

    fn simple_args(&self, command: &str, id: &str) -> Vec<OsString> {
        let mut args = self.global_args(None);
        args.extend([command.into(), id.into()]);
        args
    }

    /// Deletes container `id`; with `force`, a running one is killed first.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        self.run(RuncOperation::Delete, id, self.delete_args(id, force)).await
    }

    async fn run(&self, operation: RuncOperation, id: &str, args: Vec<OsString>) -> Result<(), Error> {
        self.output(operation, id, args).await.map(drop)
    }

    /// Runs runc with `args` and returns its stdout, in a span named after the command in the
    /// export (`runc.start`, …) that is marked failed when runc fails. runc is killed once the
    /// operation's deadline passes.
    async fn output(&self, operation: RuncOperation, id: &str, args: Vec<OsString>) -> Result<Vec<u8>, Error> {
        let span = runc_span(operation.command(), id);
        let deadline = self.deadlines.of(operation);
        let result = self.run_runc(operation.command(), id, args, deadline).instrument(span.clone()).await;
        if let Err(error) = &result {
            mark_failed(&span, error);
        }
        result
    }

    async fn run_runc(
        &self,
        command: &'static str,
        id: &str,
        args: Vec<OsString>,
        deadline: Duration,
    ) -> Result<Vec<u8>, Error> {
        let mut child = Command::new(&self.settings.binary);
        child.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        if let Some(path) = self.path_env(std::env::var_os("PATH").as_deref()) {
            child.env("PATH", path);
        }
        for name in SERVICE_ONLY_ENV {
            child.env_remove(name);
        }
        let spawned = child.spawn().map_err(|source| Error::SpawnRunc {
            binary: self.settings.binary.clone(),
            command,
            id: id.to_string(),
            source,
        })?;
        // kill_on_drop: a runc past its deadline is killed, not left running unwatched.
        let output = tokio::time::timeout(deadline, spawned.wait_with_output())
            .await
            .map_err(|_| Error::RuncTimeout { command, id: id.to_string(), timeout: deadline })?
            .map_err(|source| Error::SpawnRunc {
                binary: self.settings.binary.clone(),
                command,
                id: id.to_string(),
                source,
            })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(Error::RuncFailed {
            command,
            id: id.to_string(),
            status: output.status.to_string(),
            message: last_line(&String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// `runc ps --format json` prints a JSON array of pids (`null` when there are none).
fn parse_ps_output(output: &[u8]) -> Result<Vec<u32>, String> {
    let pids: Option<Vec<u32>> =
        serde_json::from_slice(output).map_err(|error| format!("{error}: {:?}", String::from_utf8_lossy(output)))?;
    Ok(pids.unwrap_or_default())
}

/// The last error runc wrote to its JSON log (`{"level":"error","msg":"…"}` lines), if any.
pub fn last_error_in_log(log_contents: &str) -> Option<String> {
    log_contents
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry.get("level").and_then(|level| level.as_str()) == Some("error"))
        .and_then(|entry| entry.get("msg").and_then(|msg| msg.as_str()).map(str::to_string))
}

fn last_line(text: &str) -> String {
    text.lines().rev().map(str::trim).find(|line| !line.is_empty()).unwrap_or("no error output").to_string()
}

/// Finds `name` the way a shell would: as is when it contains `/`, else in each `PATH` entry.
///
/// Why not the `which` crate (8.x): on Unix it keeps empty and relative `PATH` entries and
/// resolves them against the working directory, and expands `~` from `$HOME`; a root daemon
/// must not pick runc out of whatever directory it happens to run in. Its error
/// (`CannotFindBinaryPath`) also does not say what was searched, which ours does.
pub fn resolve_binary(name: &str, path_env: Option<&str>) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |path: &Path| {
        path.metadata().map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    if name.is_empty() {
        return Err(Error::BinaryNotFound { name: name.to_string(), searched: "an empty name".into() });
    }
    if name.contains('/') {
        let path = PathBuf::from(name);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(Error::BinaryNotFound { name: name.to_string(), searched: "that path".into() })
        };
    }
    let path_env = path_env.unwrap_or("");
    path_env
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| Error::BinaryNotFound { name: name.to_string(), searched: format!("PATH={path_env}") })
}

/// The span of one runc operation, named after the command in the export (`runc.start`, …).
fn runc_span(command: &'static str, id: &str) -> tracing::Span {
    tracing::info_span!(
        "runc",
        otel.name = %format_args!("runc.{command}"),
        otel.kind = "client",
        command,
        container_id = id,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    )
}

/// Marks `span` failed with `error`.
fn mark_failed(span: &tracing::Span, error: &Error) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", tracing::field::display(error));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runc() -> Runc {
        Runc::new("/usr/sbin/runc", "/run/r")
    }

    #[test]
    fn only_a_binary_named_runc_is_driven_without_running_it() {
        assert!(runc().is_plain_runc());
        assert!(Runc::new("/usr/local/bin/runc", "/r").is_plain_runc());
        for wrapper in ["/usr/local/bin/runc-wrapper", "/opt/failpoint-runc", "/usr/bin/runsc", "/usr/bin/crun"] {
            assert!(!Runc::new(wrapper, "/r").is_plain_runc(), "{wrapper}");
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|arg| arg.into_string().unwrap()).collect()
    }

    #[test]
    fn create_args_log_as_json_and_write_a_pid_file() {
        let paths = CreatePaths {
            bundle: Path::new("/b"),
            pid_file: Path::new("/b/init.pid"),
            log: Path::new("/b/log.json"),
            console_socket: None,
        };
        let args = strings(runc().create_args("t1", paths));
        let expected = "--root /run/r --log /b/log.json --log-format json create --bundle /b --pid-file /b/init.pid t1";
        assert_eq!(args.join(" "), expected);
        let flagged =
            Runc::with_settings(RuncSettings { no_pivot_root: true, no_new_keyring: true, ..runc().settings });
        let args = strings(flagged.create_args("t1", paths));
        assert_eq!(args[args.len() - 3..], ["--no-pivot", "--no-new-keyring", "t1"]);
        let tty = CreatePaths { console_socket: Some(Path::new("/c.sock")), ..paths };
        let args = strings(runc().create_args("t1", tty));
        assert_eq!(args[args.len() - 3..], ["--console-socket", "/c.sock", "t1"]);
    }

    #[test]
    fn exec_args_detach_and_pass_the_console_socket_only_for_terminals() {
        let mut paths = ExecPaths {
            process: Path::new("/b/e/process.json"),
            pid_file: Path::new("/b/e/pid"),
            log: Path::new("/b/e/log.json"),
            console_socket: None,
        };
        let expected = "--root /run/r --log /b/e/log.json --log-format json exec --detach --process /b/e/process.json \
                        --pid-file /b/e/pid t1";
        assert_eq!(
            strings(runc().exec_args("t1", paths)).join(" "),
            expected.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        paths.console_socket = Some(Path::new("/b/e/console.sock"));
        let args = strings(runc().exec_args("t1", paths));
        assert_eq!(args[args.len() - 3..], ["--console-socket", "/b/e/console.sock", "t1"]);
    }

    #[test]
    fn checkpoint_args_carry_containerds_options() {
        let checkpoint = CheckpointArgs {
            image_path: "/cp".into(),
            work_path: "/work".into(),
            leave_running: true,
            file_locks: true,
            empty_namespaces: vec!["network".into()],
            cgroups_mode: Some("soft".into()),
            ..Default::default()
        };
        let expected = "--root /run/r checkpoint --image-path /cp --work-path /work --leave-running --file-locks \
                        --empty-ns network --manage-cgroups-mode soft t1";
        let expected: Vec<&str> = expected.split_whitespace().collect();
        assert_eq!(strings(runc().checkpoint_args("t1", &checkpoint)), expected);
    }

    #[test]
    fn restore_args_detach_from_the_image() {
        let paths = CreatePaths {
            bundle: Path::new("/b"),
            pid_file: Path::new("/b/init.pid"),
            log: Path::new("/b/log.json"),
            console_socket: None,
        };
        let args = strings(runc().restore_args("t1", paths, Path::new("/cp"), Path::new("/w")));
        let expected = "--root /run/r --log /b/log.json --log-format json restore --detach --bundle /b \
                        --pid-file /b/init.pid --image-path /cp --work-path /w t1";
        assert_eq!(args, expected.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn criu_is_found_through_path_not_the_deprecated_flag() {
        let runc = Runc::with_settings(RuncSettings { criu: Some("/opt/criu/criu".into()), ..runc().settings });
        assert_eq!(strings(runc.start_args("t1")), ["--root", "/run/r", "start", "t1"]);
        assert_eq!(runc.path_env(Some("/usr/bin:/bin".as_ref())), Some("/opt/criu:/usr/bin:/bin".into()));
        assert_eq!(runc.path_env(None), Some(format!("/opt/criu:{DEFAULT_PATH}").into()));
        assert_eq!(super::Runc::new("/usr/sbin/runc", "/run/r").path_env(Some("/bin".as_ref())), None);
    }

    #[test]
    fn ps_output_is_a_json_list_of_pids() {
        assert_eq!(parse_ps_output(b"[1,23,456]\n").unwrap(), [1, 23, 456]);
        assert_eq!(parse_ps_output(b"null").unwrap(), Vec::<u32>::new());
        let error = parse_ps_output(b"PID CMD").unwrap_err();
        assert!(error.contains("PID CMD"), "{error}");
    }

    #[test]
    fn kill_args_use_signal_numbers() {
        assert_eq!(strings(runc().kill_args("t1", Signal::SIGKILL, false)), ["--root", "/run/r", "kill", "t1", "9"]);
        assert_eq!(
            strings(runc().kill_args("t1", Signal::SIGTERM, true)),
            ["--root", "/run/r", "kill", "--all", "t1", "15"]
        );
    }

    #[test]
    fn delete_and_start_args() {
        assert_eq!(strings(runc().delete_args("t1", true)), ["--root", "/run/r", "delete", "--force", "t1"]);
        assert_eq!(strings(runc().start_args("t1")), ["--root", "/run/r", "start", "t1"]);
    }

    #[test]
    fn last_error_in_log_takes_the_newest_error() {
        let log = concat!(
            r#"{"level":"error","msg":"old failure","time":"t"}"#,
            "\n",
            r#"{"level":"warning","msg":"noise","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH","time":"t"}"#,
            "\n",
            "not json\n",
        );
        assert_eq!(last_error_in_log(log).as_deref(), Some("exec: \"nope\": executable file not found in $PATH"));
        assert_eq!(last_error_in_log(""), None);
    }

    #[test]
    fn resolve_binary_searches_path_and_names_what_it_searched() {
        assert_eq!(resolve_binary("sh", Some("/nonexistent:/bin")).unwrap(), PathBuf::from("/bin/sh"));
        let error = resolve_binary("no-such-runc", Some("/bin:/usr/bin")).unwrap_err();
        assert!(
            matches!(&error, Error::BinaryNotFound { name, searched }
                if name == "no-such-runc" && searched == "PATH=/bin:/usr/bin"),
            "{error:?}"
        );
        assert!(matches!(
            resolve_binary("/nonexistent/runc", None),
            Err(Error::BinaryNotFound { searched, .. }) if searched == "that path"
        ));
        assert!(matches!(resolve_binary("", Some("/bin")), Err(Error::BinaryNotFound { .. })));
    }

    #[tokio::test]
    async fn failing_runc_reports_its_last_stderr_line() {
        let fake = Runc::new("/bin/sh", "/nonexistent");
        // `sh --root …` fails with an error message on stderr; the wrapper must surface it.
        let error = fake.start("t1").await.unwrap_err();
        assert!(matches!(error, Error::RuncFailed { command: "start", .. }), "{error}");
    }

    /// A fake runc that takes 2 s whatever it is asked, with test-sized deadlines either side of
    /// that: pause's is shorter, checkpoint's (as the configuration sets it) longer.
    #[tokio::test]
    async fn a_checkpoint_outlives_the_deadline_of_pause() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::test_support::scratch_dir("runc-deadlines", "checkpoint");
        let binary = dir.join("runc");
        std::fs::write(&binary, "#!/bin/sh\nsleep 2\n").expect("write the fake runc");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("make it executable");
        let deadlines = RuncDeadlines {
            pause: Duration::from_millis(500),
            ..RuncDeadlines::with_checkpoint(Duration::from_secs(20))
        };
        let slow = Runc::new(&binary, &*dir).with_deadlines(deadlines);
        assert_eq!(slow.deadlines.of(RuncOperation::Checkpoint), Duration::from_secs(20));
        assert_ne!(slow.deadlines.of(RuncOperation::Checkpoint), slow.deadlines.of(RuncOperation::Pause));

        let checkpoint =
            CheckpointArgs { image_path: dir.join("image"), work_path: dir.join("work"), ..Default::default() };
        slow.checkpoint("t1", &checkpoint).await.expect("the checkpoint finishes within its own deadline");
        let error = slow.pause("t1").await.expect_err("pause is killed at its deadline");
        assert!(
            matches!(error, Error::RuncTimeout { command: "pause", timeout, .. } if timeout == Duration::from_millis(500)),
            "{error}"
        );
    }

    #[tokio::test]
    async fn missing_runc_binary_is_a_spawn_error_naming_it() {
        let missing = Runc::new("/nonexistent/runc", "/run/r");
        let error = missing.kill("t1", Signal::SIGTERM, false).await.unwrap_err();
        assert!(
            matches!(&error, Error::SpawnRunc { binary, command: "kill", id, .. }
                if binary == Path::new("/nonexistent/runc") && id == "t1"),
            "{error:?}"
        );
    }
}
