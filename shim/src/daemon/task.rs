//! One container task: its identity, where its files and unit are, and its lifecycle state. The
//! state enum carries its data, so a pid or exit status can never disagree with the status.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use containerd_shim_protos::api::Status;
use runc_wrap::protocol::StdioPaths;
use runc_wrap::Runc;
use tokio::sync::watch;
use unit_gen::UnitName;

/// A task's identity: containerd namespace and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    /// containerd namespace.
    pub namespace: String,
    /// Task (container) id.
    pub id: String,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.id)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub status: u32,
    /// When.
    pub at: SystemTime,
}

/// Where a task is in its life. Transitions happen under the task's lock, which is never held
/// across an await.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The unit is starting (`runc create` under way). An exit seen meanwhile waits here.
    Creating {
        /// An exit observed before creation finished.
        pending_exit: Option<Exit>,
    },
    /// `runc create` done: init waits to be started.
    Created {
        /// The container init's pid (the unit's main pid).
        pid: u32,
    },
    /// `runc start` under way. An exit seen meanwhile is published after TaskStart.
    Starting {
        /// Init pid.
        pid: u32,
        /// An exit observed before `runc start` returned.
        pending_exit: Option<Exit>,
    },
    /// The container runs.
    Running {
        /// Init pid.
        pid: u32,
    },
    /// Init exited.
    Exited {
        /// Init pid.
        pid: u32,
        /// How it ended.
        exit: Exit,
    },
    /// Delete under way.
    Deleting {
        /// Init pid.
        pid: u32,
        /// How it ended, if known.
        exit: Option<Exit>,
    },
}

impl Lifecycle {
    /// The init pid, 0 while unknown.
    pub fn pid(&self) -> u32 {
        match *self {
            Lifecycle::Creating { .. } => 0,
            Lifecycle::Created { pid }
            | Lifecycle::Starting { pid, .. }
            | Lifecycle::Running { pid }
            | Lifecycle::Exited { pid, .. }
            | Lifecycle::Deleting { pid, .. } => pid,
        }
    }

    /// The exit, once known.
    pub fn exit(&self) -> Option<Exit> {
        match *self {
            Lifecycle::Exited { exit, .. } => Some(exit),
            Lifecycle::Deleting { exit, .. } => exit,
            _ => None,
        }
    }

    /// The status containerd sees.
    pub fn status(&self) -> Status {
        match self {
            Lifecycle::Creating { .. } | Lifecycle::Created { .. } | Lifecycle::Starting { .. } => Status::CREATED,
            Lifecycle::Running { .. } => Status::RUNNING,
            Lifecycle::Exited { .. } | Lifecycle::Deleting { .. } => Status::STOPPED,
        }
    }

    /// A word for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Lifecycle::Creating { .. } => "being created",
            Lifecycle::Created { .. } => "created",
            Lifecycle::Starting { .. } => "starting",
            Lifecycle::Running { .. } => "running",
            Lifecycle::Exited { .. } => "stopped",
            Lifecycle::Deleting { .. } => "being deleted",
        }
    }

    /// Whether signals may be sent to init.
    pub fn can_kill(&self) -> bool {
        matches!(
            self,
            Lifecycle::Created { .. } | Lifecycle::Starting { .. } | Lifecycle::Running { .. }
        )
    }
}

/// A container task and its unit.
pub struct Task {
    /// Namespace and id.
    pub key: TaskKey,
    /// The OCI bundle directory.
    pub bundle: PathBuf,
    /// The task's unit.
    pub unit: UnitName,
    /// The unit's D-Bus object path.
    pub unit_path: String,
    /// The container's stdio as containerd gave it.
    pub stdio: StdioPaths,
    /// runc with this task's binary and root.
    pub runc: Runc,
    lifecycle: Mutex<Lifecycle>,
    exit_sender: watch::Sender<Option<Exit>>,
}

impl Task {
    /// A task whose unit is about to be started.
    pub fn creating(key: TaskKey, bundle: PathBuf, unit: UnitName, stdio: StdioPaths, runc: Runc) -> Task {
        let unit_path = unit.object_path();
        Task {
            key,
            bundle,
            unit,
            unit_path,
            stdio,
            runc,
            lifecycle: Mutex::new(Lifecycle::Creating { pending_exit: None }),
            exit_sender: watch::channel(None).0,
        }
    }

    /// The lifecycle, locked. Never hold the guard across an await.
    pub fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        // Poisoning means a panic while the lock was held; the enum itself is still valid.
        self.lifecycle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets waiters know the exit; call while holding the lifecycle lock, after the transition.
    pub fn announce_exit(&self, exit: Exit) {
        self.exit_sender.send_replace(Some(exit));
    }

    /// A receiver that sees the exit once it is announced.
    pub fn exit_receiver(&self) -> watch::Receiver<Option<Exit>> {
        self.exit_sender.subscribe()
    }
}
