//! Exit detection: systemd's `PropertiesChanged` for a task unit's Service interface carries
//! `ExecMainCode`/`ExecMainStatus` as soon as the main process (the container init) is reaped.
//! One subscription serves every task; nothing polls.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::exec_process::ExecProcess;
use super::init_signal::process_exists;
use super::manager::TaskManager;
use super::task::{Exit, Task};
use crate::blocking::blocking;
use crate::cgroup::{kill_every_process, Leftovers};
use crate::error::Error;
use crate::systemd::{main_pid_of, ServiceExit, UnitChange};

const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";

/// Consumes unit changes until the systemd connection goes away.
pub async fn watch_exits(manager: Arc<TaskManager>, mut changes: UnboundedReceiver<UnitChange>) {
    while let Some(change) = changes.recv().await {
        if change.interface != SERVICE_INTERFACE {
            continue;
        }
        let Some((task, exec_id)) = manager.tasks.by_unit_path(&change.path) else {
            continue;
        };
        if let (None, Some(pid)) = (&exec_id, main_pid_of(&change.changed)) {
            task.announce_main_pid(pid);
        }
        if let Some(exit) = ServiceExit::from_properties(&change.changed) {
            if exec_id.is_none() && init_exit_needs_settling(&task) {
                // Counting OOMs and killing leftovers read the cgroup: off the stream.
                let manager = Arc::clone(&manager);
                tokio::spawn(async move { observe_after_settling(&manager, &task, None, exit).await });
            } else {
                manager.observe_unit_exit(&task, exec_id.as_deref(), exit);
            }
        } else if change.invalidated.iter().any(|name| name == "ExecMainCode")
            || ServiceExit::names_no_process(&change.changed)
        {
            // systemd sent only the names, or an exit without the pid that exited: ask for the
            // values, without stalling the stream.
            let manager = Arc::clone(&manager);
            let path = change.path.clone();
            tokio::spawn(async move {
                match manager.systemd.service_exit(&path).await {
                    Ok(Some(exit)) => observe_after_settling(&manager, &task, exec_id.as_deref(), exit).await,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(
                            namespace = %task.key.namespace,
                            container_id = %task.key.id,
                            "reading the exit of unit {path}: {error}",
                        )
                    }
                }
            });
        }
    }
    tracing::error!("stopped watching exits: the systemd connection is gone");
}

/// How long the exit of a container without a PID namespace of its own waits for what is left
/// of it to die once killed (processes in uninterruptible sleep, e.g. on a hung NFS mount, may
/// take long; the exit is published then anyway, and the unit's stop kills them in the end).
const LEFTOVERS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the container's cgroup is looked at again while its leftovers die.
const LEFTOVERS_POLL: Duration = Duration::from_millis(5);

/// Whether an init's exit has work before it is published: OOM kills to count first, or
/// processes that can outlive the init (no PID namespace of its own) to kill first.
fn init_exit_needs_settling(task: &Task) -> bool {
    task.oom_counts().is_some() || !task.spec_facts.own_pid_namespace
}

/// Routes the end of a unit's main process as [`TaskManager::observe_unit_exit`] does, after,
/// for an init: publishing the OOM kills its cgroup already counts (an init the OOM killer ended
/// gets its `TaskOOM` before its `TaskExit`), and, for a container without a PID namespace of its
/// own, killing every process left in its cgroup and waiting until they are gone, as runc-v2
/// does: no `Wait` returns, and no `TaskExit` goes out, while a process of the container lives
/// (containerd's CRI waits for the container's output to close before it calls it stopped).
async fn observe_after_settling(manager: &TaskManager, task: &Task, exec_id: Option<&str>, exit: ServiceExit) {
    if exec_id.is_none() {
        if let Some(oom_counts) = task.oom_counts() {
            oom_counts.publish_so_far().await;
        }
        if !task.spec_facts.own_pid_namespace && is_this_inits_exit(task, exit.pid) {
            kill_leftovers(task).await;
        }
    }
    manager.observe_unit_exit(task, exec_id, exit);
}

/// Whether the process that ended (`exited_pid`, 0 if unknown) is the task's current init: a
/// late signal of a previous unit of the same name must never kill the new container.
fn is_this_inits_exit(task: &Task, exited_pid: u32) -> bool {
    let init = task.lifecycle().pid();
    match (init, exited_pid) {
        (0, _) => false,
        (init, 0) => !process_exists(init),
        (init, exited) => init == exited,
    }
}

/// Kills every process left in the task's container cgroup and waits, up to
/// [`LEFTOVERS_TIMEOUT`], until none is left.
async fn kill_leftovers(task: &Task) {
    let Some(cgroups) = task.cgroups().cloned() else {
        tracing::warn!(task = %task.key, "the container's cgroup is unknown: its leftover processes are killed only when its unit stops");
        return;
    };
    let deadline = Instant::now() + LEFTOVERS_TIMEOUT;
    loop {
        let round = cgroups.clone();
        let outcome = blocking("killing what is left of a container", move || kill_every_process(&round))
            .await
            .and_then(|round| round.map_err(Error::from));
        match outcome {
            Ok(Leftovers::None) => return,
            Ok(Leftovers::Signalled) => {}
            Err(error) => {
                tracing::warn!(task = %task.key, "killing the container's leftover processes: {error}");
                return;
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                task = %task.key,
                "processes of the container in cgroup {} outlived SIGKILL for {} s; publishing its exit anyway",
                cgroups.path(),
                LEFTOVERS_TIMEOUT.as_secs(),
            );
            return;
        }
        tokio::time::sleep(LEFTOVERS_POLL).await;
    }
}

impl TaskManager {
    /// Routes the end of a unit's main process to the task's init or to exec `exec_id`.
    fn observe_unit_exit(&self, task: &Task, exec_id: Option<&str>, exit: ServiceExit) {
        if !self.observes_exits() {
            tracing::debug!(
                namespace = %task.key.namespace,
                container_id = %task.key.id,
                "stopping: the next daemon takes over this exit",
            );
            return;
        }
        match exec_id {
            None => self.observe_exit(task, exit),
            Some(exec_id) => match task.exec(exec_id) {
                Some(exec) => self.observe_exec_exit(task, &exec, exit),
                None => {
                    tracing::debug!(
                        namespace = %task.key.namespace,
                        container_id = %task.key.id,
                        "exit of exec {exec_id}, which is gone",
                    )
                }
            },
        }
    }

    /// Records that an exec process ended (its unit's main process is the helper that waited
    /// for it and exited the same way), publishing `TaskExit` unless its start will.
    fn observe_exec_exit(&self, task: &Task, exec: &ExecProcess, service_exit: ServiceExit) {
        let exit = Exit { status: service_exit.status, at: exit_time(service_exit.exited_at_usec) };
        self.record_exec_exit(task, exec, exit);
    }

    /// Makes `exec` exited, publishing `TaskExit` once, and saves the task's record.
    pub(super) fn record_exec_exit(&self, task: &Task, exec: &ExecProcess, exit: Exit) {
        let published = {
            let mut lifecycle = exec.lifecycle();
            let observed = lifecycle.observe_exit(exit);
            if let Some((pid, exit)) = observed {
                self.events.exec_exited(task, exec, pid, exit);
                exec.announce_exit(exit);
                log_exec_exit(task, exec, pid, exit);
            }
            observed.is_some()
        };
        if published {
            drop(self.state.save(task));
        }
    }

    /// Records that the task's main process ended, publishing `TaskExit` unless a create or
    /// start in progress will publish it after its own event.
    pub(super) fn observe_exit(&self, task: &Task, service_exit: ServiceExit) {
        let exit = Exit { status: service_exit.status, at: exit_time(service_exit.exited_at_usec) };
        self.record_exit(task, service_exit.pid, exit);
    }

    /// Makes init exited, publishing `TaskExit` once (unless a create or start in progress
    /// will), and saves the task's record. `exited_pid`: the process that ended, 0 if the
    /// source does not say; the exit of another process than init is ignored.
    pub(super) fn record_exit(&self, task: &Task, exited_pid: u32, exit: Exit) {
        let published = {
            let mut lifecycle = task.lifecycle();
            let observed = lifecycle.observe_exit(exited_pid, exit);
            if let Some((pid, exit)) = observed {
                self.events.task_exited(task, pid, exit);
                task.announce_exit(exit);
                log_init_exit(task, pid, exit);
            } else if exited_pid != 0 && lifecycle.pid() != 0 && lifecycle.pid() != exited_pid {
                tracing::debug!(
                    namespace = %task.key.namespace,
                    container_id = %task.key.id,
                    "ignoring exit of pid {exited_pid} (init is {})",
                    lifecycle.pid(),
                );
            }
            observed.is_some()
        };
        if published {
            drop(self.state.save(task));
        }
    }
}

/// The journal line of an init's exit (with the task's fields), wherever it is published from.
pub(super) fn log_init_exit(task: &Task, pid: u32, exit: Exit) {
    tracing::info!(
        namespace = %task.key.namespace,
        container_id = %task.key.id,
        unit = %task.unit,
        "init {pid} exited with status {}",
        exit.status,
    );
}

/// The journal line of an exec process's exit.
pub(super) fn log_exec_exit(task: &Task, exec: &ExecProcess, pid: u32, exit: Exit) {
    tracing::info!(
        namespace = %task.key.namespace,
        container_id = %task.key.id,
        exec_id = %exec.exec_id,
        unit = %exec.unit,
        "exec process {pid} exited with status {}",
        exit.status,
    );
}

pub(super) fn exit_time(exited_at_usec: u64) -> SystemTime {
    if exited_at_usec == 0 {
        SystemTime::now()
    } else {
        UNIX_EPOCH + Duration::from_micros(exited_at_usec)
    }
}
