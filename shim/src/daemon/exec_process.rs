//! One exec process of a task (`ctr task exec`): its identity, unit, files and lifecycle. Like
//! the task's [`super::task::Lifecycle`], the state enum carries its data and its transitions
//! are pure methods that say which events to publish.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use containerd_shim_protos::api::Status;
use runc_wrap::protocol::StdioPaths;
use tokio::sync::watch;
use unit_gen::UnitName;

use super::process_exit::{Exit, ExitWatch, Refused};

/// Where an exec process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecLifecycle {
    /// Added by Exec; nothing runs yet.
    Added,
    /// Its unit is starting (`runc exec` under way). An exit seen meanwhile waits here.
    Starting {
        /// An exit observed before the start finished.
        pending_exit: Option<Exit>,
    },
    /// The process runs.
    Running {
        /// Its pid.
        pid: u32,
    },
    /// It exited.
    Exited {
        /// Its pid (0 if it never ran).
        pid: u32,
        /// How it ended.
        exit: Exit,
    },
    /// Delete under way.
    Deleting {
        /// Its pid (0 if it never ran).
        pid: u32,
        /// How it ended, if it ran.
        exit: Option<Exit>,
    },
}

impl ExecLifecycle {
    /// The pid, 0 while unknown.
    pub fn pid(&self) -> u32 {
        match *self {
            ExecLifecycle::Added | ExecLifecycle::Starting { .. } => 0,
            ExecLifecycle::Running { pid }
            | ExecLifecycle::Exited { pid, .. }
            | ExecLifecycle::Deleting { pid, .. } => pid,
        }
    }

    /// The exit, once known.
    pub fn exit(&self) -> Option<Exit> {
        match *self {
            ExecLifecycle::Exited { exit, .. } => Some(exit),
            ExecLifecycle::Deleting { exit, .. } => exit,
            _ => None,
        }
    }

    /// The status containerd sees.
    pub fn status(&self) -> Status {
        match self {
            ExecLifecycle::Added | ExecLifecycle::Starting { .. } => Status::CREATED,
            ExecLifecycle::Running { .. } => Status::RUNNING,
            ExecLifecycle::Exited { .. } | ExecLifecycle::Deleting { .. } => Status::STOPPED,
        }
    }

    /// A word for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            ExecLifecycle::Added => "created",
            ExecLifecycle::Starting { .. } => "starting",
            ExecLifecycle::Running { .. } => "running",
            ExecLifecycle::Exited { .. } => "stopped",
            ExecLifecycle::Deleting { .. } => "being deleted",
        }
    }

    /// Before starting the unit.
    pub fn begin_start(&mut self) -> Result<(), Refused> {
        if *self != ExecLifecycle::Added {
            return Err(Refused { state: self.name() });
        }
        *self = ExecLifecycle::Starting { pending_exit: None };
        Ok(())
    }

    /// The unit started and the process has `pid`. Returns an exit that raced the start, to be
    /// published right after `TaskExecStarted`.
    pub fn finish_start(&mut self, pid: u32) -> Result<Option<Exit>, Refused> {
        let ExecLifecycle::Starting { pending_exit } = *self else {
            return Err(Refused { state: self.name() });
        };
        *self = match pending_exit {
            Some(exit) => ExecLifecycle::Exited { pid, exit },
            None => ExecLifecycle::Running { pid },
        };
        Ok(pending_exit)
    }

    /// The start failed: nothing runs, the exec may be started again or deleted.
    pub fn fail_start(&mut self) {
        if matches!(self, ExecLifecycle::Starting { .. }) {
            *self = ExecLifecycle::Added;
        }
    }

    /// systemd reported the process's end. Returns `(pid, exit)` when `TaskExit` is to be
    /// published now.
    pub fn observe_exit(&mut self, exit: Exit) -> Option<(u32, Exit)> {
        match self {
            ExecLifecycle::Starting { pending_exit } => {
                pending_exit.get_or_insert(exit);
                None
            }
            ExecLifecycle::Running { pid } => {
                let pid = *pid;
                *self = ExecLifecycle::Exited { pid, exit };
                Some((pid, exit))
            }
            ExecLifecycle::Deleting { exit: known, .. } => {
                known.get_or_insert(exit);
                None
            }
            ExecLifecycle::Added | ExecLifecycle::Exited { .. } => None,
        }
    }

    /// Before removing the exec: returns the state to go back to if removal fails.
    pub fn begin_delete(&mut self) -> Result<ExecLifecycle, Refused> {
        let previous = *self;
        *self = match previous {
            ExecLifecycle::Added => ExecLifecycle::Deleting { pid: 0, exit: None },
            ExecLifecycle::Exited { pid, exit } => ExecLifecycle::Deleting { pid, exit: Some(exit) },
            _ => return Err(Refused { state: self.name() }),
        };
        Ok(previous)
    }
}

/// An exec process and its unit.
pub struct ExecProcess {
    /// The exec id.
    pub exec_id: String,
    /// Its unit.
    pub unit: UnitName,
    /// The unit's D-Bus object path.
    pub unit_path: String,
    /// `<bundle>/shim-exec/<exec id>`: request, process spec, pid, log, exit state.
    pub dir: PathBuf,
    /// Its stdio as containerd gave it.
    pub stdio: StdioPaths,
    /// Whether it has a terminal.
    pub terminal: bool,
    lifecycle: Mutex<ExecLifecycle>,
    exit: ExitWatch,
}

impl ExecProcess {
    /// An exec that was just added.
    pub fn added(exec_id: String, unit: UnitName, dir: PathBuf, stdio: StdioPaths, terminal: bool) -> ExecProcess {
        let unit_path = unit.object_path();
        ExecProcess {
            exec_id,
            unit,
            unit_path,
            dir,
            stdio,
            terminal,
            lifecycle: Mutex::new(ExecLifecycle::Added),
            exit: ExitWatch::new(),
        }
    }

    /// The lifecycle, locked. Never hold the guard across an await.
    pub fn lifecycle(&self) -> MutexGuard<'_, ExecLifecycle> {
        self.lifecycle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets waiters know the exit; call while holding the lifecycle lock, after the transition.
    pub fn announce_exit(&self, exit: Exit) {
        self.exit.announce(exit);
    }

    /// A receiver that sees the exit once it is announced.
    pub fn exit_receiver(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.receiver()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn exit(status: u32) -> Exit {
        Exit { status, at: UNIX_EPOCH + Duration::from_secs(u64::from(status)) }
    }

    #[test]
    fn exec_exit_during_start_is_published_after_exec_started() {
        let mut exec = ExecLifecycle::Added;
        exec.begin_start().unwrap();
        assert_eq!(exec.observe_exit(exit(5)), None, "held back while starting");
        assert_eq!(exec.finish_start(42), Ok(Some(exit(5))));
        assert_eq!(exec, ExecLifecycle::Exited { pid: 42, exit: exit(5) });
        assert_eq!(exec.status(), Status::STOPPED);
    }

    #[test]
    fn running_exec_exit_is_published_once() {
        let mut exec = ExecLifecycle::Added;
        assert_eq!(exec.status(), Status::CREATED);
        exec.begin_start().unwrap();
        assert_eq!(exec.finish_start(42), Ok(None));
        assert_eq!(exec.status(), Status::RUNNING);
        assert_eq!(exec.observe_exit(exit(0)), Some((42, exit(0))));
        assert_eq!(exec.observe_exit(exit(0)), None);
        assert_eq!(exec.exit(), Some(exit(0)));
    }

    #[test]
    fn exec_cannot_start_twice_or_be_deleted_while_running() {
        let mut exec = ExecLifecycle::Added;
        exec.begin_start().unwrap();
        assert_eq!(exec.begin_start(), Err(Refused { state: "starting" }));
        exec.finish_start(42).unwrap();
        assert_eq!(exec.begin_delete(), Err(Refused { state: "running" }));
        assert_eq!(exec.finish_start(42), Err(Refused { state: "running" }));
    }

    #[test]
    fn failed_start_can_be_deleted() {
        let mut exec = ExecLifecycle::Added;
        exec.begin_start().unwrap();
        exec.fail_start();
        assert_eq!(exec, ExecLifecycle::Added);
        assert_eq!(exec.begin_delete(), Ok(ExecLifecycle::Added));
        assert_eq!(exec.pid(), 0);
        assert_eq!(exec.exit(), None);
    }
}
