//! `helper exec REQUEST`: the main process of an exec process's unit (`Type=notify`).
//!
//! It makes itself a child subreaper, runs `runc exec --detach --pid-file`, tells systemd
//! `READY=1` once the process runs, then waits for it and exits the way it exited (same code, or
//! death by the same signal), so systemd's `ExecMainCode`/`ExecMainStatus`, `$EXIT_STATUS` for
//! `ExecStopPost` and `systemctl status` all report the exec process's own exit.
//!
//! Why not `Type=forking` with `PIDFile=` as for init: init waits in `runc init` until
//! `runc start`, but an exec process runs at once. A short one (`sh -c 'exit 5'`) may be gone
//! before systemd reads the pid file; systemd then fails the unit with result `protocol` and the
//! exit status is lost. As subreaper, the helper inherits the process when runc exits and cannot
//! miss its exit. Signals sent to the unit's main process are forwarded to the exec process.

use std::path::Path;
use std::time::Duration;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{raise, sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::atomic_file::{read_json, read_pid_file, write_json_atomically};
use crate::helper::logger::LoggedContainer;
use crate::helper::spawn::run_runc;
use crate::helper::stdio::prepare_stdio;
use crate::helper::terminal::{bind_console, start_copier};
use crate::protocol::{ExecRequest, HelperFailure, HelperStage};
use crate::runc::ExecPaths;
use crate::Error;

/// Signals forwarded to the exec process. SIGCHLD is waited for, not forwarded; SIGKILL and
/// SIGSTOP cannot be caught (the daemon signals the exec process directly, not this helper).
const FORWARDED: [Signal; 12] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGWINCH,
    Signal::SIGALRM,
];

/// How the exec process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessEnd {
    Exited(i32),
    Signaled(Signal),
}

/// Runs the exec helper; returns the process exit code to use (when it does not die by the
/// exec process's signal instead).
pub fn run_exec(request_path: &Path) -> i32 {
    let request: ExecRequest = match read_json(request_path) {
        Ok(request) => request,
        Err(error) => {
            tracing::error!("helper exec: {error}");
            return 1;
        }
    };
    let pid = match start_process(&request) {
        Ok(pid) => pid,
        Err((stage, error)) => {
            tracing::error!(container = %request.container_id, exec = %request.exec_id, "helper exec failed while {stage}: {error}");
            let failure = HelperFailure { stage, message: error.to_string() };
            if let Err(report_error) = write_json_atomically(&request.failure_report, &failure) {
                tracing::error!("helper exec: could not report the failure: {report_error}");
            }
            return 1;
        }
    };
    if let Err(error) = crate::notify::notify(&format!("READY=1\nSTATUS=exec process {pid} running")) {
        tracing::error!("helper exec: telling systemd the process runs: {error}");
    }
    match supervise(pid) {
        Ok(ProcessEnd::Exited(code)) => code,
        Ok(ProcessEnd::Signaled(signal)) => die_by(signal),
        Err(error) => {
            tracing::error!(exec = %request.exec_id, "helper exec: {error}");
            1
        }
    }
}

/// Runs `runc exec --detach`; returns the exec process's pid.
fn start_process(request: &ExecRequest) -> Result<Pid, (HelperStage, Error)> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|source| (HelperStage::ExecRunc, Error::Supervise { action: "becoming a child subreaper", source }))?;
    let timeout = Duration::from_millis(request.fifo_timeout_ms);
    let logged = LoggedContainer { id: &request.container_id, namespace: &request.namespace };
    let runc = request.runc.runc();
    let mut paths = ExecPaths {
        process: &request.process_file,
        pid_file: &request.pid_file,
        log: &request.runc.log,
        console_socket: None,
    };
    let log = &request.runc.log;
    match &request.console {
        None => {
            let stdio = prepare_stdio(&request.stdio, request.stdio_options, timeout, logged)
                .map_err(|e| (HelperStage::Stdio, e))?;
            let args = runc.exec_args(&request.container_id, paths);
            run_runc("exec", &request.container_id, &runc, args, Some(stdio), log)
                .map_err(|e| (HelperStage::ExecRunc, e))?;
        }
        Some(console) => {
            let socket = bind_console(console).map_err(|e| (HelperStage::Console, e))?;
            paths.console_socket = Some(&console.socket);
            let args = runc.exec_args(&request.container_id, paths);
            run_runc("exec", &request.container_id, &runc, args, None, log).map_err(|e| (HelperStage::ExecRunc, e))?;
            start_copier(socket, console, &request.stdio, request.stdio_options, timeout, logged)
                .map_err(|e| (HelperStage::Console, e))?;
        }
    }
    let pid = read_pid_file(&request.pid_file).map_err(|error| (HelperStage::ExecRunc, error))?;
    // read_pid_file only gives pids that fit a pid_t.
    Ok(Pid::from_raw(pid as i32))
}

/// Forwards signals to `pid` until it ends; reaps every other child on the way.
fn supervise(pid: Pid) -> Result<ProcessEnd, Error> {
    let mut waited = SigSet::empty();
    waited.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        waited.add(signal);
    }
    waited.thread_block().map_err(|source| Error::Supervise { action: "blocking signals", source })?;
    loop {
        // The process may have ended before the signals were blocked: check before waiting.
        if let Some(end) = reap(pid)? {
            return Ok(end);
        }
        match waited.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(signal) => {
                if let Err(error) = nix::sys::signal::kill(pid, signal) {
                    tracing::warn!("forwarding {signal} to exec process {pid}: {error}");
                }
            }
            Err(source) => return Err(Error::Supervise { action: "waiting for signals", source }),
        }
    }
}

/// Reaps finished children; returns how `pid` ended once it has.
fn reap(pid: Pid) -> Result<Option<ProcessEnd>, Error> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(reaped, code)) if reaped == pid => return Ok(Some(ProcessEnd::Exited(code))),
            Ok(WaitStatus::Signaled(reaped, signal, _)) if reaped == pid => {
                return Ok(Some(ProcessEnd::Signaled(signal)))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue, // another child (a terminal copier) or a stop/continue report
            Err(nix::errno::Errno::ECHILD) => {
                return Err(Error::Supervise {
                    action: "waiting for the exec process",
                    source: nix::errno::Errno::ECHILD,
                })
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(source) => return Err(Error::Supervise { action: "waiting for the exec process", source }),
        }
    }
}

/// Ends this process by `signal`, as the exec process ended, without dumping core.
fn die_by(signal: Signal) -> i32 {
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing the default disposition is async-signal-safe and we are single-threaded.
    let _ = unsafe { sigaction(signal, &default) };
    let mut just_this = SigSet::empty();
    just_this.add(signal);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&just_this), None);
    let _ = raise(signal);
    // Signals whose default is not to terminate (or raise failing): report it like runc-v2.
    128 + signal as i32
}
