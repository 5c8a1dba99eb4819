//! `helper create REQUEST`: the ExecStart of a container's unit. Places the container cgroup,
//! mounts the rootfs, opens stdio, then replaces itself with `runc create --pid-file`, so runc's
//! exit ends the unit's start job and systemd adopts the container init from the pid file.
//! Anything that fails before the exec is reported in the request's failure file for the daemon.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use crate::atomic_file::{read_json, read_pid_file, write_json_atomically};
use crate::helper::cgroup::place_container_cgroup;
use crate::helper::config_patch::expose_notify_socket;
use crate::helper::logger::LoggedContainer;
use crate::helper::notify_relay::{start_notify_relay, CONTAINER_NOTIFY_SOCKET};
use crate::helper::pipe_copier::start_pipe_copier;
use crate::helper::spawn::{run_runc, runc_command};
use crate::helper::stdio::prepare_stdio;
use crate::helper::terminal::{bind_console, start_copier};
use crate::protocol::{files, CreateRequest, ExitState, HelperFailure, HelperStage, InitExitedAtCreate};
use crate::runc::CreatePaths;
use crate::Error;

/// Runs the create helper; returns only on failure, with the process exit code to use.
pub fn run_create(request_path: &Path) -> i32 {
    let request: CreateRequest = match read_json(request_path) {
        Ok(request) => request,
        Err(error) => {
            // Without the request there is no failure file to write to: the journal must do.
            tracing::error!("helper create: {error}");
            return 1;
        }
    };
    let (stage, error) = match prepare_and_run(&request) {
        Ok(code) => return code,
        Err(failure) => failure,
    };
    tracing::error!(container = %request.container_id, "helper create failed while {stage}: {error}");
    let failure = HelperFailure { stage, message: error.to_string() };
    if let Err(report_error) = write_json_atomically(&request.failure_report, &failure) {
        tracing::error!("helper create: could not report the failure: {report_error}");
    }
    1
}

/// Prepares the container and runs `runc create`: in place of this process when nothing is
/// left to do after runc, as a child when there is (a terminal's copier; with `SdNotify`, telling
/// systemd the container init is the main process, which it then waits to hear `READY=1` from).
fn prepare_and_run(request: &CreateRequest) -> Result<i32, (HelperStage, Error)> {
    let cgroup = place_container_cgroup(&request.bundle, &request.supervisor).map_err(|e| (HelperStage::Cgroup, e))?;
    tracing::debug!(container = %request.container_id, "container cgroup is {cgroup}");
    let notify_socket = std::env::var("NOTIFY_SOCKET").ok();
    if request.sd_notify {
        let socket = notify_socket.as_deref().unwrap_or_default();
        let relay = start_notify_relay(&request.bundle, socket).map_err(|e| (HelperStage::Notify, e))?;
        tracing::debug!(container = %request.container_id, "notify relay {} on {}", relay.pid, relay.socket.display());
        expose_notify_socket(&request.bundle, &relay.socket, CONTAINER_NOTIFY_SOCKET)
            .map_err(|e| (HelperStage::Notify, e))?;
    }

    mount_rootfs(request).map_err(|e| (HelperStage::Mount, e))?;

    let timeout = Duration::from_millis(request.fifo_timeout_ms);
    let logged = LoggedContainer { id: &request.container_id, namespace: &request.namespace };
    let runc = request.runc.runc();
    let mut paths = CreatePaths {
        bundle: &request.bundle,
        pid_file: &request.pid_file,
        log: &request.runc.log,
        console_socket: None,
    };
    let (id, binary, log) = (&request.container_id, &request.runc.settings.binary, &request.runc.log);
    let socket = match &request.console {
        Some(console) => {
            paths.console_socket = Some(&console.socket);
            Some(bind_console(console).map_err(|e| (HelperStage::Console, e))?)
        }
        None => None,
    };
    // A terminal's copier opens containerd's fifos itself; otherwise runc gets the container's
    // stdio: containerd's fifos, or pipes to a copier when the container must be checkpointable.
    let stdio = match socket {
        Some(_) => None,
        None => {
            let outside = prepare_stdio(&request.stdio, request.stdio_options, timeout, logged)
                .map_err(|e| (HelperStage::Stdio, e))?;
            Some(if request.stdio_pipes || request.restore.is_some() {
                start_pipe_copier(outside).map_err(|e| (HelperStage::Stdio, e))?.into()
            } else {
                outside
            })
        }
    };
    let (command, args) = match &request.restore {
        None => ("create", runc.create_args(id, paths)),
        Some(from) => ("restore", runc.restore_args(id, paths, &from.image_path, &from.work_path)),
    };
    let wrapped = !runc.is_plain_runc() && request.restore.is_none();
    let stdio = match (socket.is_none() && !request.sd_notify && !wrapped, stdio) {
        (true, Some(stdio)) => {
            // Nothing is left to do after runc: it takes this process's place.
            let source =
                runc_command(&runc).args(args).stdin(stdio.stdin).stdout(stdio.stdout).stderr(stdio.stderr).exec();
            return Err((
                HelperStage::ExecRunc,
                Error::SpawnRunc { binary: binary.clone(), command, id: id.clone(), source },
            ));
        }
        (_, stdio) => stdio,
    };
    if wrapped {
        become_subreaper().map_err(|e| (HelperStage::ExecRunc, e))?;
    }
    run_runc(command, id, &runc, args, stdio, log).map_err(|e| (HelperStage::ExecRunc, e))?;
    if wrapped {
        if let Some(ended) = init_gone_after_create(&request.pid_file).map_err(|e| (HelperStage::ExecRunc, e))? {
            tracing::warn!(container = %id, "init {} ended right after create (status {})", ended.pid, ended.exit.status);
            let record = request.bundle.join(files::INIT_EXITED_AT_CREATE);
            write_json_atomically(&record, &ended).map_err(|e| (HelperStage::ExecRunc, e))?;
            // Nothing for systemd to adopt (the pid may even be reused by now): the unit's
            // start fails, and the daemon finds this record.
            if let Err(source) = std::fs::remove_file(&request.pid_file) {
                tracing::warn!(container = %id, "removing {}: {source}", request.pid_file.display());
            }
            return Ok(0);
        }
    }
    if let (Some(socket), Some(console)) = (socket, &request.console) {
        start_copier(socket, console, &request.stdio, request.stdio_options, timeout, logged)
            .map_err(|e| (HelperStage::Console, e))?;
    }
    if request.sd_notify {
        let pid = read_pid_file(&request.pid_file).map_err(|error| (HelperStage::Notify, error))?;
        let state = format!("MAINPID={pid}");
        crate::notify::notify(&state)
            .map_err(|source| (HelperStage::Notify, Error::NotifySystemd { state, source }))?;
    }
    Ok(0)
}

/// Makes this process the subreaper of what it starts: when `runc create` (run through a
/// program wrapping runc) exits, the container init becomes our child rather than systemd's,
/// so [`init_gone_after_create`] can tell whether it is still there and how it ended. After
/// this process exits, systemd adopts the init from the pid file as always.
fn become_subreaper() -> Result<(), Error> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    let result = unsafe { nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if result != 0 {
        return Err(Error::Supervise {
            action: "becoming the subreaper of runc's init",
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

/// How long the helper waits, after a wrapper's `create` returned, for an init that has a
/// signal pending (the wrapper sent it just before it exited) to end.
const INIT_SETTLE: Duration = Duration::from_secs(2);

/// The container init named in `pid_file`, if it has ended or is about to (a signal pending),
/// reaped here as its subreaper, with how it ended. An init with nothing pending runs on and
/// costs no wait.
fn init_gone_after_create(pid_file: &Path) -> Result<Option<InitExitedAtCreate>, Error> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let pid = read_pid_file(pid_file)?;
    let Ok(raw) = i32::try_from(pid) else { return Ok(None) };
    let deadline = std::time::Instant::now() + INIT_SETTLE;
    let status = loop {
        match waitpid(nix::unistd::Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break (u32::try_from(code).unwrap_or(255), None),
            Ok(WaitStatus::Signaled(_, signal, _)) => break (128 + signal as u32, Some(signal as i32)),
            // Still there: it is ending if a signal is pending (kill(2) queues it before it
            // returns); otherwise it runs on.
            Ok(_) if signal_pending(pid) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            // Running on, or not ours to wait for: systemd adopts it from the pid file.
            _ => return Ok(None),
        }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let exit = ExitState { status: status.0, signal: status.1, exited_at_unix_ns: now };
    Ok(Some(InitExitedAtCreate { pid, exit }))
}

/// Whether process `pid` has a signal pending (`SigPnd` or `ShdPnd` of its status), or is
/// already a zombie.
fn signal_pending(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    status.lines().any(|line| match line.split_once(':') {
        Some(("SigPnd" | "ShdPnd", mask)) => u64::from_str_radix(mask.trim(), 16).is_ok_and(|mask| mask != 0),
        Some(("State", state)) => state.trim_start().starts_with('Z'),
        _ => false,
    })
}

/// Mounts containerd's rootfs mounts on `<bundle>/rootfs` with containerd-shim's
/// `mount_rootfs` (rust-extensions' port of containerd's Linux mount code): mount flags from
/// options, overlay `lowerdir` compaction (with a `chdir`) when the options outgrow a page,
/// loop devices, propagation and read-only bind remounts. Over 400 lines we would otherwise
/// own; it is why runc-wrap depends on containerd-shim (docs/dependencies.md,
/// "containerd-shim").
fn mount_rootfs(request: &CreateRequest) -> Result<(), Error> {
    if request.rootfs.is_empty() {
        return Ok(());
    }
    let target = request.bundle.join("rootfs");
    std::fs::create_dir_all(&target).map_err(|source| Error::StateFile { path: target.clone(), source })?;
    for mount in &request.rootfs {
        let fs_type = (!mount.fs_type.is_empty()).then_some(mount.fs_type.as_str());
        let source = (!mount.source.is_empty()).then_some(mount.source.as_str());
        containerd_shim::mount::mount_rootfs(fs_type, source, &mount.options, &target).map_err(|source| {
            Error::Mount {
                fs_type: mount.fs_type.clone(),
                source_path: mount.source.clone(),
                target: target.clone(),
                message: source.to_string(),
            }
        })?;
    }
    Ok(())
}
