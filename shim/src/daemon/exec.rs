//! Exec processes (`ctr task exec`, CRI ExecSync): Exec records the process and writes its
//! files, Start runs its unit, Kill signals it, Delete removes its unit and files. Each exec is a
//! transient unit of its own (see `unit_gen::exec_unit` for its shape).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::ExecProcessRequest;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Process;
use runc_wrap::atomic_file::{read_json, write_json_atomically};
use runc_wrap::protocol::{exec_dir, files, ConsolePaths, ExecRequest, HelperFailure, RuncInvocation, StdioPaths};
use unit_gen::{render_exec_unit, ExecHelperPaths, ExecUnitRequest};

use super::bundle::{read_pid_file, stdio_path};
use super::cleanup::remove_exec_residue;
use super::exec_process::ExecProcess;
use super::manager::TaskManager;
use super::process_exit::Deleted;
use super::task::{Exit, Task, TaskKey};
use crate::blocking::blocking;
use crate::error::Error;
use crate::systemd::{error_names, JobResult};

/// How long we wait for an exec unit's start job: systemd's TimeoutStartSec plus a margin.
const START_JOB_TIMEOUT: Duration = Duration::from_micros(unit_gen::init_unit::START_TIMEOUT_USEC + 10_000_000);

/// The type containerd gives the process spec of an exec (`typeurl` of `specs.Process`).
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

impl TaskManager {
    /// The task and its exec process `exec_id`, or NOT_FOUND.
    pub fn exec_of(&self, key: &TaskKey, exec_id: &str) -> Result<(Arc<Task>, Arc<ExecProcess>), Error> {
        let task = self.task(key)?;
        let exec = task.exec(exec_id).ok_or_else(|| Error::ExecNotFound {
            namespace: key.namespace.clone(),
            id: key.id.clone(),
            exec_id: exec_id.to_string(),
        })?;
        Ok((task, exec))
    }

    /// Adds exec process `request.exec_id` to task `key` and writes its files; nothing runs yet.
    pub async fn add_exec(&self, key: &TaskKey, request: ExecProcessRequest) -> Result<(), Error> {
        let task = self.task(key)?;
        {
            let lifecycle = task.lifecycle();
            if !lifecycle.is_live() {
                return Err(Error::BadState {
                    namespace: key.namespace.clone(),
                    id: key.id.clone(),
                    state: lifecycle.name(),
                    action: "exec a process",
                });
            }
        }
        let process_json = process_spec(&request)?;
        let stdio = StdioPaths {
            stdin: stdio_path("stdin", &request.stdin)?,
            stdout: stdio_path("stdout", &request.stdout)?,
            stderr: stdio_path("stderr", &request.stderr)?,
        };
        let exec_id = request.exec_id.clone();
        let unit = task.unit_naming.exec(&key.namespace, &key.id, &exec_id);
        let dir = exec_dir(&task.bundle, &exec_id);
        let exec = Arc::new(ExecProcess::added(exec_id.clone(), unit, dir.clone(), stdio.clone(), request.terminal));
        if task.insert_exec(Arc::clone(&exec)).is_err() {
            return Err(Error::ExecExists { namespace: key.namespace.clone(), id: key.id.clone(), exec_id });
        }

        let exec_request = ExecRequest {
            namespace: key.namespace.clone(),
            container_id: key.id.clone(),
            exec_id: exec_id.clone(),
            unit: exec.unit.to_string(),
            process_file: dir.join(files::exec::PROCESS),
            stdio,
            stdio_options: task.stdio_options,
            console: request.terminal.then(|| ConsolePaths {
                socket: self.settings.identity.console_socket(&format!("{key}/{exec_id}")),
                record: dir.join(files::exec::CONSOLE_RECORD),
            }),
            runc: RuncInvocation { settings: task.runc.runc().settings.clone(), log: dir.join(files::exec::RUNC_LOG) },
            pid_file: dir.join(files::exec::PID),
            failure_report: dir.join(files::exec::HELPER_FAILURE),
            fifo_timeout_ms: u64::try_from(self.settings.fifo_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let written =
            blocking("writing the exec request", move || write_exec_files(&dir, &process_json, &exec_request))
                .await
                .and_then(|result| result);
        if let Err(error) = written {
            task.remove_exec(&exec.exec_id);
            let dir = exec.dir.clone();
            let _ = blocking("removing the exec files", move || std::fs::remove_dir_all(dir)).await;
            return Err(error);
        }
        self.tasks.add_exec_unit(exec.unit_path.clone(), key.clone(), exec.exec_id.clone());
        self.events.exec_added(&task, &exec);
        self.state.save(&task).written().await;
        Ok(())
    }

    /// Starts exec `exec_id` of task `key`; returns its pid.
    pub async fn start_exec(&self, key: &TaskKey, exec_id: &str) -> Result<u32, Error> {
        self.heap_trimmer.note_work();
        let (task, exec) = self.exec_of(key, exec_id)?;
        exec.lifecycle().begin_start().map_err(|refused| exec_bad_state(key, exec_id, refused.state, "start"))?;
        self.prime_cgroup_move();
        match self.launch_exec(&task, &exec).await {
            Ok(pid) => {
                {
                    let mut lifecycle = exec.lifecycle();
                    match lifecycle.finish_start(pid) {
                        Ok(raced_exit) => {
                            self.events.exec_started(&task, &exec, pid);
                            if let Some(exit) = raced_exit {
                                self.events.exec_exited(&task, &exec, pid, exit);
                                exec.announce_exit(exit);
                                super::exits::log_exec_exit(&task, &exec, pid, exit);
                            }
                        }
                        Err(refused) => {
                            tracing::error!(task = %key, exec = exec_id, "exec is {} after start", refused.state)
                        }
                    }
                }
                self.state.save(&task).written().await;
                Ok(pid)
            }
            Err(error) => {
                exec.lifecycle().fail_start();
                // A failed unit stays loaded; clear it so the exec can be retried or deleted.
                if let Err(reset_error) = self.systemd.reset_failed_unit(exec.unit.as_str()).await {
                    tracing::warn!(task = %key, exec = exec_id, "resetting {}: {reset_error}", exec.unit);
                }
                Err(error)
            }
        }
    }

    async fn launch_exec(&self, task: &Task, exec: &ExecProcess) -> Result<u32, Error> {
        let helper = ExecHelperPaths {
            exe: self.settings.exe.display().to_string(),
            exec_request: exec.dir.join(files::exec::REQUEST).display().to_string(),
            exit_state: exec.dir.join(files::exec::EXIT_STATE).display().to_string(),
        };
        let unit = render_exec_unit(&ExecUnitRequest {
            unit: &exec.unit,
            namespace: &task.key.namespace,
            id: &task.key.id,
            exec_id: &exec.exec_id,
            slice: task.spec_facts.slice.as_deref(),
            helper: &helper,
            systemd_version: self.systemd.version(),
        })?;
        match self.systemd.start_transient_unit(&unit, START_JOB_TIMEOUT).await {
            Ok(JobResult::Done) => read_pid_file(&exec.dir.join(files::exec::PID)).await,
            Ok(result) => Err(self.exec_failure(task, exec, &result).await),
            Err(error) if error.is(error_names::UNIT_EXISTS) => Err(Error::UnitExists {
                namespace: task.key.namespace.clone(),
                id: task.key.id.clone(),
                unit: exec.unit.to_string(),
            }),
            Err(error) => Err(Error::Systemd(error)),
        }
    }

    /// Why an exec unit's start job failed: the helper's report, else the job result.
    async fn exec_failure(&self, task: &Task, exec: &ExecProcess, result: &JobResult) -> Error {
        let report_path = exec.dir.join(files::exec::HELPER_FAILURE);
        let report = blocking("reading the exec failure", move || read_json::<HelperFailure>(&report_path)).await;
        let (stage, message) = match report {
            Ok(Ok(report)) => (report.stage.to_string(), report.message),
            _ => ("starting the unit".to_string(), format!("start job {result}; see `journalctl -u {}`", exec.unit)),
        };
        Error::ExecStartFailed {
            namespace: task.key.namespace.clone(),
            id: task.key.id.clone(),
            exec_id: exec.exec_id.clone(),
            stage,
            message,
        }
    }

    /// Sends `signal` to exec `exec_id`. The signal goes to the process itself, not to the
    /// unit's main process (the helper cannot forward SIGKILL); its pid cannot be reused before
    /// the helper, its reaper, has reaped it and systemd told us.
    pub fn kill_exec(&self, key: &TaskKey, exec_id: &str, signal: Signal) -> Result<(), Error> {
        let (_task, exec) = self.exec_of(key, exec_id)?;
        let lifecycle = exec.lifecycle();
        if lifecycle.exit().is_some() {
            return Err(Error::ProcessFinished { namespace: key.namespace.clone(), id: key.id.clone() });
        }
        let pid = lifecycle.pid();
        let Ok(raw_pid) = i32::try_from(pid) else {
            return Err(exec_bad_state(key, exec_id, lifecycle.name(), "kill"));
        };
        if raw_pid == 0 {
            return Err(exec_bad_state(key, exec_id, lifecycle.name(), "kill"));
        }
        match nix::sys::signal::kill(Pid::from_raw(raw_pid), signal) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ESRCH) => {
                Err(Error::ProcessFinished { namespace: key.namespace.clone(), id: key.id.clone() })
            }
            Err(errno) => Err(Error::io(format!("sending {signal} to exec {exec_id} (pid {pid})"), errno.into())),
        }
    }

    /// Waits until exec `exec_id` has exited.
    pub async fn wait_exec(&self, key: &TaskKey, exec_id: &str) -> Result<Exit, Error> {
        let (_task, exec) = self.exec_of(key, exec_id)?;
        let mut receiver = exec.exit_receiver();
        let gone = || Error::ExecNotFound {
            namespace: key.namespace.clone(),
            id: key.id.clone(),
            exec_id: exec_id.to_string(),
        };
        let exit = receiver.wait_for(Option::is_some).await.map_err(|_| gone())?;
        exit.ok_or_else(gone)
    }

    /// Deletes exec `exec_id`: its unit and files. A running exec must be killed first.
    pub async fn delete_exec(&self, key: &TaskKey, exec_id: &str) -> Result<Deleted, Error> {
        self.heap_trimmer.note_work();
        let (task, exec) = self.exec_of(key, exec_id)?;
        let previous =
            exec.lifecycle().begin_delete().map_err(|refused| exec_bad_state(key, exec_id, refused.state, "delete"))?;
        if let Err(error) = remove_exec_residue(&self.systemd, &exec.unit, &exec.dir).await {
            *exec.lifecycle() = previous;
            return Err(error);
        }
        let lifecycle = *exec.lifecycle();
        task.remove_exec(exec_id);
        self.tasks.remove_unit_path(&exec.unit_path);
        self.state.save(&task).written().await;
        // An exec deleted before it ran never exited; report it like runc-v2, with status 0.
        let exit = lifecycle.exit().unwrap_or(Exit { status: 0, at: SystemTime::now() });
        Ok(Deleted { pid: lifecycle.pid(), exit })
    }
}

fn exec_bad_state(key: &TaskKey, exec_id: &str, state: &'static str, action: &'static str) -> Error {
    Error::ExecBadState {
        namespace: key.namespace.clone(),
        id: key.id.clone(),
        exec_id: exec_id.to_string(),
        state,
        action,
    }
}

/// The exec's OCI process spec, checked (JSON of an OCI `Process` with arguments), with the
/// request's `terminal` flag as its `terminal`: containerd's client picks the exec's terminal
/// with its IO (`cio.WithTerminal`), whatever the spec it sends says, and runc-v2 does the same
/// (`spec.Terminal = r.Terminal`). Every other field is passed on as it came.
fn process_spec(request: &ExecProcessRequest) -> Result<Vec<u8>, Error> {
    let Some(spec) = request.spec.as_ref() else {
        return Err(Error::InvalidRequest(format!("exec {:?} has no process spec", request.exec_id)));
    };
    if !spec.type_url.is_empty() && spec.type_url != PROCESS_TYPE_URL {
        return Err(Error::InvalidRequest(format!(
            "exec {:?}: process spec has type {:?}, expected {PROCESS_TYPE_URL}",
            request.exec_id, spec.type_url
        )));
    }
    let invalid = |source| Error::InvalidProcessSpec { exec_id: request.exec_id.clone(), source };
    let process: Process = serde_json::from_slice(&spec.value).map_err(invalid)?;
    if process.args().as_ref().is_none_or(|args| args.is_empty()) {
        return Err(Error::InvalidRequest(format!("exec {:?}: process spec has no args", request.exec_id)));
    }
    if process.terminal().unwrap_or(false) == request.terminal {
        return Ok(spec.value.clone());
    }
    let mut fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&spec.value).map_err(invalid)?;
    fields.insert("terminal".into(), serde_json::Value::Bool(request.terminal));
    serde_json::to_vec(&fields).map_err(invalid)
}

/// Writes `<dir>/process.json` and `<dir>/request.json`.
fn write_exec_files(dir: &Path, process_json: &[u8], request: &ExecRequest) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|error| Error::io(format!("creating {}", dir.display()), error))?;
    let process_path = dir.join(files::exec::PROCESS);
    std::fs::write(&process_path, process_json)
        .map_err(|error| Error::io(format!("writing {}", process_path.display()), error))?;
    write_json_atomically(&dir.join(files::exec::REQUEST), request).map_err(Error::Runc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;

    fn request(exec_id: &str, terminal: bool, type_url: &str, value: &str) -> ExecProcessRequest {
        ExecProcessRequest {
            exec_id: exec_id.into(),
            terminal,
            spec: Some(Any { type_url: type_url.into(), value: value.as_bytes().to_vec(), ..Default::default() })
                .into(),
            ..Default::default()
        }
    }

    #[test]
    fn process_spec_must_be_a_process_with_args() {
        let good = r#"{"args":["sh","-c","exit 5"],"cwd":"/","user":{"uid":0,"gid":0}}"#;
        assert_eq!(process_spec(&request("e1", false, PROCESS_TYPE_URL, good)).unwrap(), good.as_bytes());
        let not_json = process_spec(&request("e1", false, PROCESS_TYPE_URL, "nope")).expect_err("not json");
        assert!(matches!(&not_json, Error::InvalidProcessSpec { exec_id, .. } if exec_id == "e1"), "{not_json:?}");
        // InvalidRequest says what is wrong in words only, and those words are what containerd
        // shows (bad_input checks them end to end).
        let cases = [
            ("no args", request("e1", false, PROCESS_TYPE_URL, r#"{"cwd":"/","user":{"uid":0,"gid":0}}"#), "no args"),
            ("wrong type", request("e1", false, "types.containerd.io/other", good), "expected"),
            ("no spec", ExecProcessRequest { exec_id: "e1".into(), ..Default::default() }, "no process spec"),
        ];
        for (name, request, expected) in cases {
            let error = process_spec(&request).expect_err(name);
            assert!(matches!(error, Error::InvalidRequest(_)), "{name}: {error}");
            assert!(error.to_string().contains(expected), "{name}: {error}");
        }
    }

    #[test]
    fn the_requests_terminal_flag_wins_over_the_process_specs_both_ways_round() {
        let spec = |terminal: bool| {
            format!(r#"{{"terminal":{terminal},"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}},"x-extra":1}}"#)
        };
        for (requested, in_spec) in [(true, false), (false, true), (true, true), (false, false)] {
            let json = process_spec(&request("e1", requested, PROCESS_TYPE_URL, &spec(in_spec))).expect("valid");
            let written: serde_json::Value = serde_json::from_slice(&json).expect("json");
            assert_eq!(written["terminal"], requested, "request {requested}, spec {in_spec}");
            assert_eq!(written["args"], serde_json::json!(["sh"]), "the rest passes on unchanged");
            assert_eq!(written["x-extra"], 1, "fields we do not know pass on too");
        }
        let without = r#"{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}}"#;
        let json = process_spec(&request("e1", true, PROCESS_TYPE_URL, without)).expect("valid");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&json).expect("json")["terminal"], true);
    }
}
