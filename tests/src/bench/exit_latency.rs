//! Item 4: how long after a container's init exits containerd publishes its `TaskExit`.
//!
//! The container runs `sleep 0.5` and exits by itself, so no call of ours is in flight when it
//! does. Its exit instant is taken independently of any shim, from a pidfd on its init (see
//! [`super::pidfd`]); the arrival instant is when the event reached the benchmark's
//! subscription. Both are the host's monotonic clock, read by real-time threads so that a busy
//! machine does not delay the reading (see [`super::realtime`]). The figure therefore includes
//! containerd's forwarding and the gRPC stream to us, the same for both runtimes. busybox's
//! `date` has no `%N`, and the `exited_at` a shim reports is its own claim, so neither is used.
//!
//! Each sample also times `Tasks.Create`, `Tasks.Start` and `Tasks.Delete`: where the time of a
//! task's life goes, call by call. The runtimes take turns sample by sample.

use std::time::{Duration, Instant};

use super::events::ExitWatch;
use super::footprint::SandboxInit;
use super::pidfd::ExitWatcher;
use super::target::Target;
use super::{Error, Runtime};
use crate::grpc::{Client, Container, ContainerConfig, Stdio};
use crate::{unique_id, Sandbox};

/// What the container runs: long enough for the benchmark to find its pid and open a pidfd.
const CONTAINER_ARGS: &[&str] = &["sleep", "0.5"];
/// How long a sample waits for the exit and for its event.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One sample's timings.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// `Tasks.Create`.
    pub create: Duration,
    /// `Tasks.Start`.
    pub start: Duration,
    /// Exit → `TaskExit` arrival; `None` if the exit could not be watched (the init was gone
    /// before its pidfd was opened).
    pub exit_to_event: Option<Duration>,
    /// `Tasks.Delete` after the exit.
    pub delete: Duration,
    /// Whether both instants were taken by real-time threads (see [`super::realtime`]).
    pub realtime: bool,
}

/// Takes one sample of `runtime`.
pub async fn sample(target: &Target, client: &Client, exits: &ExitWatch, runtime: &Runtime) -> Result<Sample, Error> {
    let id = unique_id("bench-exit");
    let container = client.create_container(&ContainerConfig::busybox(&id, &runtime.name, CONTAINER_ARGS)).await?;
    let measured = measure(target.sandbox, exits, &container).await;
    let cleaned = container.cleanup().await;
    let sample = measured?;
    cleaned?;
    Ok(sample)
}

async fn measure(sandbox: &Sandbox, exits: &ExitWatch, container: &Container) -> Result<Sample, Error> {
    let begun = Instant::now();
    container.create_task(&Stdio::none()).await?;
    let create = begun.elapsed();
    let begun = Instant::now();
    let pid = container.start().await?;
    let start = begun.elapsed();

    let init = SandboxInit::read(sandbox.pid)?;
    let watcher = match init.host_pid_of(pid)? {
        Some(host_pid) => ExitWatcher::new(host_pid).ok(),
        None => None,
    };
    let (exited, realtime) = match watcher {
        Some(watcher) => {
            let (exited, realtime) = wait_on_realtime_thread(watcher).await?;
            (Some(exited), realtime)
        }
        None => (None, false),
    };
    let arrived = exits.wait_for_exits(&[container.id().to_string()], SAMPLE_TIMEOUT).await?[0];
    let exit_to_event = exited.map(|exited: Instant| arrived.saturating_duration_since(exited));

    let begun = Instant::now();
    container.delete_task().await?;
    let delete = begun.elapsed();
    Ok(Sample { create, start, exit_to_event, delete, realtime: realtime && exits.realtime() })
}

/// Waits for the exit on a thread of its own at real-time priority; returns when the exit was
/// seen and whether the thread got that priority.
async fn wait_on_realtime_thread(watcher: ExitWatcher) -> Result<(Instant, bool), Error> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-exit".into())
        .spawn(move || {
            let realtime = super::realtime::raise_current_thread();
            let _ = sender.send(watcher.wait(SAMPLE_TIMEOUT).map(|exited| (exited, realtime)));
        })
        .map_err(|source| Error::Spawn { what: "the exit watcher thread", source })?;
    receiver.await.map_err(|_| Error::Setup { what: "waiting on a pidfd" })?
}
