//! The benchmark of issue 5: our runtime against containerd's `io.containerd.runc.v2`, in one
//! run, on the sandbox's containerd and the busybox test image. What each item measures and how
//! is in its module; `tests/src/bin/bench.rs` is the command and the README's "Benchmarks"
//! section the guide.
//!
//! Everything happens in a containerd namespace of the benchmark's own (`bench-…`), under ids
//! unique to the process, and is removed at the end, also after a failure.

pub mod procfs;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use crate::grpc;

/// What went wrong while benchmarking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A containerd call failed.
    #[error(transparent)]
    Grpc(#[from] grpc::Error),
    /// A `ctr` command failed.
    #[error("`{what}` failed (exit code {code:?}): {stderr}")]
    Ctr {
        /// The command.
        what: String,
        /// Its exit code, if it exited.
        code: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A command could not be started.
    #[error("failed to run {what}")]
    Spawn {
        /// The command.
        what: &'static str,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// `/proc` could not be read.
    #[error("failed to read {path}")]
    Proc {
        /// The path.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox's systemd is not running.
    #[error("the sandbox's systemd (pid {pid}) is gone")]
    SandboxGone {
        /// Its host pid.
        pid: u32,
    },
    /// A pidfd could not be opened or polled.
    #[error("failed to watch process {pid} through a pidfd")]
    Pidfd {
        /// The host pid.
        pid: u32,
        /// The system error.
        #[source]
        source: nix::Error,
    },
    /// A watched process did not exit in time.
    #[error("process {pid} did not exit within {timeout:?}")]
    NoExit {
        /// The host pid.
        pid: u32,
        /// How long the benchmark waited.
        timeout: Duration,
    },
    /// The event subscription failed.
    #[error("containerd's event stream: {reason}")]
    Events {
        /// What happened.
        reason: String,
    },
    /// Some `TaskExit` events never came.
    #[error("no TaskExit within {timeout:?} for {} tasks: {missing:?}", missing.len())]
    ExitsMissing {
        /// The containers whose exits are missing.
        missing: Vec<String>,
        /// How long the benchmark waited.
        timeout: Duration,
    },
    /// A helper task of the benchmark itself failed.
    #[error("the benchmark failed while {what}")]
    Setup {
        /// What it was doing.
        what: &'static str,
    },
    /// The report could not be written.
    #[error("failed to write the report to {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}
