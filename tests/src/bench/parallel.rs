//! Items 2, 3 and 5: a round of N `sleep` tasks of one runtime, through containerd's gRPC API.
//!
//! 1. N container records (snapshot + record) are made first, untimed: that work is containerd's
//!    and the same for every runtime.
//! 2. Timed: `Tasks.Create` + `Tasks.Start` of all N at once, until the last `Start` has
//!    returned (each task is then RUNNING). The CPU time containerd, systemd, journald, the bus
//!    and the shims used meanwhile is recorded.
//! 3. After a settling pause: the memory of the shims and of systemd (see [`super::footprint`]).
//! 4. Optionally `ctr run --rm … true` a few times in a row while the N tasks run.
//! 5. Timed: `Tasks.Kill` (SIGKILL) of all N at once, until the last `TaskExit` event has
//!    reached the benchmark's subscription.
//! 6. Everything is removed, also after a failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::task::JoinSet;

use super::events::ExitWatch;
use super::footprint::{Census, Component, Footprint, ShimKind};
use super::procfs::CpuTime;
use super::target::Target;
use super::{sequential, Error, Runtime};
use crate::grpc::{Client, Container, ContainerConfig, Stdio};
use crate::{unique_id, unit_of};

/// How long the benchmark waits for all exits after killing a round.
const EXIT_TIMEOUT: Duration = Duration::from_secs(120);

/// How a round is run.
#[derive(Debug, Clone, Copy)]
pub struct RoundPlan {
    /// How many tasks run at once.
    pub tasks: usize,
    /// How many `ctr run --rm … true` to time while they run.
    pub loaded_runs: usize,
    /// How long to wait after the starts before reading memory (Go shims finish their start-up
    /// allocations, systemd its bookkeeping).
    pub settle: Duration,
}

/// What a round measured.
#[derive(Debug, Clone)]
pub struct Round {
    /// How many tasks ran.
    pub tasks: usize,
    /// From the first `Tasks.Create` to the last `Tasks.Start` returning.
    pub start_wall: Duration,
    /// CPU time per component during the starts.
    pub start_cpu: HashMap<Component, CpuTime>,
    /// Memory before the tasks were created.
    pub before: Footprint,
    /// Memory while all of them ran.
    pub running: Footprint,
    /// `ctr run --rm … true` timings while they ran.
    pub loaded_runs: Vec<Duration>,
    /// From the first `Tasks.Kill` to the last `TaskExit` arriving.
    pub kill_wall: Duration,
}

/// Runs one round of `plan.tasks` tasks of `runtime`.
pub async fn round(
    target: &Target,
    client: &Client,
    exits: &ExitWatch,
    runtime: &Runtime,
    plan: RoundPlan,
) -> Result<Round, Error> {
    let ids: Vec<String> = (0..plan.tasks).map(|_| unique_id(&format!("bench-par{}", plan.tasks))).collect();
    let containers = create_containers(client, runtime, &ids).await?;
    let measured = measure(target, client, exits, runtime, plan, &containers).await;
    let cleaned = remove_all(containers).await;
    let round = measured?;
    cleaned?;
    Ok(round)
}

async fn measure(
    target: &Target,
    client: &Client,
    exits: &ExitWatch,
    runtime: &Runtime,
    plan: RoundPlan,
    containers: &[Arc<Container>],
) -> Result<Round, Error> {
    let task_units = match runtime.kind {
        ShimKind::SystemdDaemon => {
            containers.iter().map(|container| unit_of(client.namespace(), container.id())).collect()
        }
        ShimKind::RuncV2 => Vec::new(),
    };
    let census = Census::new(target.sandbox.pid, runtime.kind, &target.namespace, task_units, &target.address)?;
    let before = census.memory()?;
    let cpu_before = census.cpu()?;

    let started = Instant::now();
    let mut starts = JoinSet::new();
    for container in containers {
        let container = Arc::clone(container);
        starts.spawn(async move {
            container.create_task(&Stdio::none()).await?;
            container.start().await
        });
    }
    join_all(starts).await?;
    let start_wall = started.elapsed();
    let start_cpu = census.cpu()?.since(&cpu_before);

    tokio::time::sleep(plan.settle).await;
    let running = census.memory()?;

    let (loaded_target, loaded_runtime) = (target.clone(), runtime.clone());
    let loaded_runs =
        tokio::task::spawn_blocking(move || sequential::in_a_row(&loaded_target, &loaded_runtime, plan.loaded_runs))
            .await
            .map_err(|_| Error::Setup { what: "timing ctr run under load" })??;

    let ids: Vec<String> = containers.iter().map(|container| container.id().to_string()).collect();
    let killed = Instant::now();
    let mut kills = JoinSet::new();
    for container in containers {
        let container = Arc::clone(container);
        kills.spawn(async move { container.kill(Signal::SIGKILL).await });
    }
    join_all(kills).await?;
    let arrivals = exits.wait_for_exits(&ids, EXIT_TIMEOUT).await?;
    let last = arrivals.into_iter().max().unwrap_or(killed);
    let kill_wall = last.saturating_duration_since(killed);

    Ok(Round { tasks: containers.len(), start_wall, start_cpu, before, running, loaded_runs, kill_wall })
}

/// Creates the container records for `ids`, all at once. If any fails, those made are removed.
async fn create_containers(client: &Client, runtime: &Runtime, ids: &[String]) -> Result<Vec<Arc<Container>>, Error> {
    let mut creations = JoinSet::new();
    for id in ids {
        let client = client.clone();
        let config = ContainerConfig::busybox(id, &runtime.name, &["sleep", "3600"]);
        creations.spawn(async move { client.create_container(&config).await });
    }
    let mut containers = Vec::with_capacity(ids.len());
    let mut failure = None;
    while let Some(joined) = creations.join_next().await {
        match joined {
            Ok(Ok(container)) => containers.push(Arc::new(container)),
            Ok(Err(error)) => failure = failure.or(Some(Error::Grpc(error))),
            Err(_) => failure = failure.or(Some(Error::Setup { what: "a container creation panicked" })),
        }
    }
    match failure {
        None => Ok(containers),
        Some(error) => {
            let _ = remove_all(containers).await;
            Err(error)
        }
    }
}

/// Removes every container with its task and snapshot, all at once; the first error is returned.
async fn remove_all(containers: Vec<Arc<Container>>) -> Result<(), Error> {
    let mut removals = JoinSet::new();
    for container in containers {
        removals.spawn(async move {
            match Arc::try_unwrap(container) {
                Ok(container) => container.cleanup().await,
                // Still shared by a task that was cut short: its drop cleans up.
                Err(_) => Ok(()),
            }
        });
    }
    join_all(removals).await.map(drop)
}

/// Waits for every spawned call; returns their results or the first error.
async fn join_all<T: 'static>(mut set: JoinSet<Result<T, crate::grpc::Error>>) -> Result<Vec<T>, Error> {
    let mut results = Vec::with_capacity(set.len());
    let mut failure = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(value)) => results.push(value),
            Ok(Err(error)) => failure = failure.or(Some(Error::Grpc(error))),
            Err(_) => failure = failure.or(Some(Error::Setup { what: "a concurrent call panicked" })),
        }
    }
    failure.map_or(Ok(results), Err)
}
