//! A [`Runtime`] that runs nothing: it records every call and answers as scripted. Every
//! runtime a [`FakeRuntimes`] makes shares one script, so a test sees the calls of all its
//! tasks in order (each names its container).
//!
//! An operation can be made to fail (as runc failing, with its message), to time out (as a runc
//! killed at its deadline), or to be held until the test releases it, which is how a test
//! makes something happen *while* an operation runs, without sleeping.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{Notify, Semaphore};

use crate::deadlines::RuncOperation;
use crate::runc::{CheckpointArgs, Runc};
use crate::runtime::{Runtime, RuntimeFactory, RuntimeFuture};
use crate::Error;

/// One call the daemon made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeCall {
    /// Asked whether runc has state for the container.
    HasContainer(String),
    /// Removed an exited container's state without runc.
    ForgetExited(String),
    /// Released a created container through its exec fifo.
    StartCreated {
        /// The container.
        id: String,
        /// Its init.
        init_pid: u32,
    },
    /// `runc start`.
    Start(String),
    /// `runc kill`.
    Kill {
        /// The container.
        id: String,
        /// The signal.
        signal: Signal,
        /// `--all`.
        all: bool,
    },
    /// `runc pause`.
    Pause(String),
    /// `runc resume`.
    Resume(String),
    /// `runc update` with the resources file's contents.
    Update {
        /// The container.
        id: String,
        /// What the resources file held when runc was called.
        resources: String,
    },
    /// `runc ps`.
    Ps(String),
    /// `runc checkpoint`.
    Checkpoint {
        /// The container.
        id: String,
        /// The arguments.
        args: CheckpointArgs,
    },
    /// `runc delete`.
    Delete {
        /// The container.
        id: String,
        /// `--force`.
        force: bool,
    },
}

impl RuntimeCall {
    /// The runc operation this call is, if it is one (looking at runc's state is not).
    pub fn operation(&self) -> Option<RuncOperation> {
        Some(match self {
            RuntimeCall::HasContainer(_) | RuntimeCall::ForgetExited(_) => return None,
            RuntimeCall::StartCreated { .. } | RuntimeCall::Start(_) => RuncOperation::Start,
            RuntimeCall::Kill { .. } => RuncOperation::Kill,
            RuntimeCall::Pause(_) => RuncOperation::Pause,
            RuntimeCall::Resume(_) => RuncOperation::Resume,
            RuntimeCall::Update { .. } => RuncOperation::Update,
            RuntimeCall::Ps(_) => RuncOperation::Ps,
            RuntimeCall::Checkpoint { .. } => RuncOperation::Checkpoint,
            RuntimeCall::Delete { .. } => RuncOperation::Delete,
        })
    }
}

/// How a scripted operation ends.
#[derive(Debug, Clone)]
enum Outcome {
    /// runc exited non-zero, printing `message`.
    Fail(String),
    /// runc was killed at its deadline.
    Timeout,
}

#[derive(Default)]
struct Script {
    calls: Vec<RuntimeCall>,
    outcomes: Vec<(RuncOperation, Outcome)>,
    held: HashSet<RuncOperation>,
    removed: HashSet<String>,
    pids: Vec<u32>,
}

struct Shared {
    script: Mutex<Script>,
    called: Notify,
    releases: Semaphore,
    plain_runc: bool,
}

/// Makes fake runtimes that share one script; cheap to clone (clones share it too).
#[derive(Clone)]
pub struct FakeRuntimes {
    shared: Arc<Shared>,
}

impl FakeRuntimes {
    /// Runtimes that pass for a program wrapping runc (`plain_runc` false), so the daemon asks
    /// them for every step, or for runc itself.
    pub fn new(plain_runc: bool) -> FakeRuntimes {
        FakeRuntimes {
            shared: Arc::new(Shared {
                script: Mutex::default(),
                called: Notify::new(),
                releases: Semaphore::new(0),
                plain_runc,
            }),
        }
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next call of `operation` fails as runc does, printing `message` on stderr.
    pub fn fail_next(&self, operation: RuncOperation, message: &str) {
        self.script().outcomes.push((operation, Outcome::Fail(message.to_string())));
    }

    /// The next call of `operation` runs past its deadline.
    pub fn time_out_next(&self, operation: RuncOperation) {
        self.script().outcomes.push((operation, Outcome::Timeout));
    }

    /// The next call of `operation` waits, once recorded, until [`FakeRuntimes::release`].
    pub fn hold(&self, operation: RuncOperation) {
        self.script().held.insert(operation);
    }

    /// Lets one held call go on.
    pub fn release(&self) {
        self.shared.releases.add_permits(1);
    }

    /// What `runc ps` answers.
    pub fn set_pids(&self, pids: Vec<u32>) {
        self.script().pids = pids;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<RuntimeCall> {
        self.script().calls.clone()
    }

    /// Waits until a call that `matches` has been made, and returns it.
    pub async fn called(&self, matches: impl Fn(&RuntimeCall) -> bool) -> RuntimeCall {
        loop {
            let notified = self.shared.called.notified();
            if let Some(call) = self.script().calls.iter().find(|call| matches(call)).cloned() {
                return call;
            }
            notified.await;
        }
    }

    /// Records `call`, waits if its operation is held, and returns its scripted outcome.
    async fn run(&self, call: RuntimeCall) -> Result<(), Error> {
        let operation = call.operation();
        let id = match &call {
            RuntimeCall::HasContainer(id)
            | RuntimeCall::ForgetExited(id)
            | RuntimeCall::Start(id)
            | RuntimeCall::Pause(id)
            | RuntimeCall::Resume(id)
            | RuntimeCall::Ps(id)
            | RuntimeCall::StartCreated { id, .. }
            | RuntimeCall::Kill { id, .. }
            | RuntimeCall::Update { id, .. }
            | RuntimeCall::Checkpoint { id, .. }
            | RuntimeCall::Delete { id, .. } => id.clone(),
        };
        let held = {
            let mut script = self.script();
            script.calls.push(call);
            operation.is_some_and(|operation| script.held.remove(&operation))
        };
        self.shared.called.notify_waiters();
        if held {
            if let Ok(permit) = self.shared.releases.acquire().await {
                permit.forget();
            }
        }
        let Some(operation) = operation else {
            return Ok(());
        };
        let outcome = {
            let mut script = self.script();
            let position = script.outcomes.iter().position(|(scripted, _)| *scripted == operation);
            position.map(|position| script.outcomes.remove(position).1)
        };
        match outcome {
            None => Ok(()),
            Some(Outcome::Fail(message)) => {
                Err(Error::RuncFailed { command: operation.command(), id, status: "exit status: 1".into(), message })
            }
            Some(Outcome::Timeout) => {
                Err(Error::RuncTimeout { command: operation.command(), id, timeout: Duration::from_secs(60) })
            }
        }
    }
}

impl RuntimeFactory for FakeRuntimes {
    fn runtime(&self, runc: Runc) -> Arc<dyn Runtime> {
        Arc::new(FakeRuntime { runc, runtimes: self.clone() })
    }
}

/// One task's fake runtime.
struct FakeRuntime {
    runc: Runc,
    runtimes: FakeRuntimes,
}

impl Runtime for FakeRuntime {
    fn runc(&self) -> &Runc {
        &self.runc
    }

    fn is_plain_runc(&self) -> bool {
        self.runtimes.shared.plain_runc
    }

    fn has_container<'a>(&'a self, id: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let _ = self.runtimes.run(RuntimeCall::HasContainer(id.to_string())).await;
            !self.runtimes.script().removed.contains(id)
        })
    }

    fn forget_exited<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.runtimes.run(RuntimeCall::ForgetExited(id.to_string())).await?;
            self.runtimes.script().removed.insert(id.to_string());
            Ok(())
        })
    }

    fn start_created<'a>(&'a self, id: &'a str, init_pid: u32) -> RuntimeFuture<'a, ()> {
        Box::pin(self.runtimes.run(RuntimeCall::StartCreated { id: id.to_string(), init_pid }))
    }

    fn start<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(self.runtimes.run(RuntimeCall::Start(id.to_string())))
    }

    fn kill<'a>(&'a self, id: &'a str, signal: Signal, all: bool) -> RuntimeFuture<'a, ()> {
        Box::pin(self.runtimes.run(RuntimeCall::Kill { id: id.to_string(), signal, all }))
    }

    fn pause<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(self.runtimes.run(RuntimeCall::Pause(id.to_string())))
    }

    fn resume<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(self.runtimes.run(RuntimeCall::Resume(id.to_string())))
    }

    fn update<'a>(&'a self, id: &'a str, resources: &'a Path) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            let resources = std::fs::read_to_string(resources).unwrap_or_default();
            self.runtimes.run(RuntimeCall::Update { id: id.to_string(), resources }).await
        })
    }

    fn ps<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, Vec<u32>> {
        Box::pin(async move {
            self.runtimes.run(RuntimeCall::Ps(id.to_string())).await?;
            Ok(self.runtimes.script().pids.clone())
        })
    }

    fn checkpoint<'a>(&'a self, id: &'a str, args: &'a CheckpointArgs) -> RuntimeFuture<'a, ()> {
        Box::pin(self.runtimes.run(RuntimeCall::Checkpoint { id: id.to_string(), args: args.clone() }))
    }

    fn delete<'a>(&'a self, id: &'a str, force: bool) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.runtimes.run(RuntimeCall::Delete { id: id.to_string(), force }).await?;
            self.runtimes.script().removed.insert(id.to_string());
            Ok(())
        })
    }
}
