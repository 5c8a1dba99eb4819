//! How a process ends, and who learns of it: what a task's init and its execs share. Their
//! lifecycles (`task.rs`, `exec_process.rs`) build on these types.

use std::time::SystemTime;

use tokio::sync::watch;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub status: u32,
    /// When.
    pub at: SystemTime,
}

/// Lets waiters (`Wait`) learn a process's exit once it is known.
pub struct ExitWatch {
    sender: watch::Sender<Option<Exit>>,
}

impl ExitWatch {
    /// No exit yet.
    pub fn new() -> ExitWatch {
        ExitWatch { sender: watch::channel(None).0 }
    }

    /// Publishes the exit to every receiver; call under the lifecycle lock, after the transition.
    pub fn announce(&self, exit: Exit) {
        self.sender.send_replace(Some(exit));
    }

    /// A receiver that sees the exit once it is announced.
    pub fn receiver(&self) -> watch::Receiver<Option<Exit>> {
        self.sender.subscribe()
    }
}

impl Default for ExitWatch {
    fn default() -> Self {
        ExitWatch::new()
    }
}

/// A transition the current state does not allow; `state` names the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The state the task is in.
    pub state: &'static str,
}

/// What Delete reports of a task's init or an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The process's pid.
    pub pid: u32,
    /// How it ended.
    pub exit: Exit,
}
