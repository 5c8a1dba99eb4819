//! The runtime the daemon drives: the runc operations it runs itself (start, kill, pause,
//! resume, update, ps, checkpoint, delete, and the look at runc's state), behind one small
//! object-safe trait, so the daemon's lifecycle verbs can be tested without runc.
//!
//! Why a trait and not a mock of the `runc` binary: a fake binary would test argument lists,
//! which pure functions in [`crate::runc`] already cover, and it would need a process per call;
//! what the daemon's tests need is to record which operation ran on which container and to make
//! any of them fail, time out or hang at will (youki's recorded-syscall test double is the
//! model). `runc create` and `runc exec` are not here: they run inside the task's unit, in the
//! helper, which keeps using [`Runc`] directly.
//!
//! The daemon holds a task's runtime as `Arc<dyn Runtime>` and gets it from a
//! [`RuntimeFactory`] given to it at construction: Create and adoption turn the [`Runc`] they
//! decided on (binary, root, CRIU, deadlines) into a runtime through it. [`RuncFactory`] is the
//! production one; the fake is in [`crate::test_support`] (feature `test-support`).
//!
//! The methods return boxed futures rather than being `async fn`s so that the trait stays
//! object-safe without a macro crate.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use nix::sys::signal::Signal;

use crate::runc::{CheckpointArgs, Runc};
use crate::Error;

/// What a [`Runtime`] method returns: a boxed future of its result.
pub type RuntimeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// The runc operations the daemon runs on a task's container.
pub trait Runtime: Send + Sync {
    /// The runc this runtime stands for: its binary, root and CRIU, which the daemon writes
    /// into the helper's requests and the task's record.
    fn runc(&self) -> &Runc;

    /// Whether the binary is runc itself, not a program wrapping it ([`Runc::is_plain_runc`]).
    fn is_plain_runc(&self) -> bool;

    /// Whether runc has state for container `id` ([`Runc::has_container`]).
    fn has_container<'a>(&'a self, id: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

    /// Removes the state of an exited container without running runc ([`Runc::forget_exited`]).
    fn forget_exited<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// Releases a created container through its exec fifo ([`Runc::start_created`]).
    fn start_created<'a>(&'a self, id: &'a str, init_pid: u32) -> RuntimeFuture<'a, ()>;

    /// `runc start`.
    fn start<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// `runc kill [--all]`.
    fn kill<'a>(&'a self, id: &'a str, signal: Signal, all: bool) -> RuntimeFuture<'a, ()>;

    /// `runc pause`.
    fn pause<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// `runc resume`.
    fn resume<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// `runc update --resources`.
    fn update<'a>(&'a self, id: &'a str, resources: &'a Path) -> RuntimeFuture<'a, ()>;

    /// `runc ps`: the container's pids.
    fn ps<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, Vec<u32>>;

    /// `runc checkpoint`.
    fn checkpoint<'a>(&'a self, id: &'a str, args: &'a CheckpointArgs) -> RuntimeFuture<'a, ()>;

    /// `runc delete [--force]`.
    fn delete<'a>(&'a self, id: &'a str, force: bool) -> RuntimeFuture<'a, ()>;
}

impl Runtime for Runc {
    fn runc(&self) -> &Runc {
        self
    }

    fn is_plain_runc(&self) -> bool {
        Runc::is_plain_runc(self)
    }

    fn has_container<'a>(&'a self, id: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(Runc::has_container(self, id))
    }

    fn forget_exited<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::forget_exited(self, id))
    }

    fn start_created<'a>(&'a self, id: &'a str, init_pid: u32) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::start_created(self, id, init_pid))
    }

    fn start<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::start(self, id))
    }

    fn kill<'a>(&'a self, id: &'a str, signal: Signal, all: bool) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::kill(self, id, signal, all))
    }

    fn pause<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::pause(self, id))
    }

    fn resume<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::resume(self, id))
    }

    fn update<'a>(&'a self, id: &'a str, resources: &'a Path) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::update(self, id, resources))
    }

    fn ps<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, Vec<u32>> {
        Box::pin(Runc::ps(self, id))
    }

    fn checkpoint<'a>(&'a self, id: &'a str, args: &'a CheckpointArgs) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::checkpoint(self, id, args))
    }

    fn delete<'a>(&'a self, id: &'a str, force: bool) -> RuntimeFuture<'a, ()> {
        Box::pin(Runc::delete(self, id, force))
    }
}

/// Turns the runc a task uses into the runtime that drives it.
pub trait RuntimeFactory: Send + Sync {
    /// The runtime for `runc`.
    fn runtime(&self, runc: Runc) -> Arc<dyn Runtime>;
}

/// The production factory: every runtime is the runc CLI itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuncFactory;

impl RuntimeFactory for RuncFactory {
    fn runtime(&self, runc: Runc) -> Arc<dyn Runtime> {
        Arc::new(runc)
    }
}
