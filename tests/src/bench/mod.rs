//! The benchmark: our runtime against containerd's `io.containerd.runc.v2`, in one
//! run, on the sandbox's containerd and the busybox test image. What each item measures and how
//! is in its module; `tests/src/bin/bench.rs` is the command and docs/benchmarks.md the guide.
//!
//! Everything happens in a containerd namespace of the benchmark's own (`bench-…`), under ids
//! unique to the process, and is removed at the end, also after a failure.

pub mod compare;
pub mod events;
pub mod exit_latency;
pub mod footprint;
pub mod parallel;
pub mod pidfd;
pub mod procfs;
pub mod realtime;
pub mod report;
pub mod rows;
pub mod sequential;
pub mod stats;
pub mod target;

use std::path::PathBuf;
use std::time::Duration;

use self::events::ExitWatch;
use self::footprint::{Census, ShimKind};
use self::parallel::RoundPlan;
use self::report::{Context, Results};
use self::target::Target;
use crate::grpc;
use crate::{Sandbox, RUNTIME};

/// Something for our runtime and the same for the baseline.
#[derive(Debug, Clone, Default)]
pub struct Pair<T> {
    /// Ours.
    pub ours: T,
    /// The baseline's.
    pub baseline: T,
}

/// A runtime under test.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The name containerd knows it by.
    pub name: String,
    /// How to find its shims.
    pub kind: ShimKind,
}

/// What to run, and how much.
#[derive(Debug, Clone)]
pub struct Config {
    /// containerd's address as the sandbox sees it.
    pub address: String,
    /// The containerd namespace (must start with `bench-`).
    pub namespace: String,
    /// Our runtime.
    pub ours: Runtime,
    /// The baseline.
    pub baseline: Runtime,
    /// Item 1: timed sequential `ctr run`s per runtime (0 skips the item).
    pub sequential_runs: usize,
    /// Untimed `ctr run`s per runtime before them.
    pub warmup_runs: usize,
    /// Items 2 and 3: tasks at once (0 skips items 2, 3 and 5).
    pub parallel_tasks: usize,
    /// Item 5: further task counts.
    pub curve: Vec<usize>,
    /// Item 5: `ctr run`s timed while a round's tasks run.
    pub loaded_runs: usize,
    /// Item 4: exit latency samples per runtime (0 skips the item).
    pub exit_samples: usize,
    /// Pause between a round's starts and its memory reading.
    pub settle: Duration,
    /// Whether this is the small CI run.
    pub smoke: bool,
}

impl Config {
    /// The full sizes: 30 sequential runs, 50 tasks at once, a curve at 10, 50 and 100.
    pub fn full() -> Config {
        Config {
            address: target::DEFAULT_ADDRESS.into(),
            namespace: "bench-harness".into(),
            ours: Runtime { name: RUNTIME.into(), kind: ShimKind::SystemdDaemon },
            baseline: Runtime { name: grpc::RUNC_V2.into(), kind: ShimKind::RuncV2 },
            sequential_runs: 30,
            warmup_runs: 2,
            parallel_tasks: 50,
            curve: vec![10, 50, 100],
            loaded_runs: 10,
            exit_samples: 20,
            settle: Duration::from_secs(1),
            smoke: false,
        }
    }

    /// A few of everything, so CI sees the harness work in well under 30 s.
    pub fn smoke() -> Config {
        Config {
            sequential_runs: 3,
            warmup_runs: 1,
            parallel_tasks: 3,
            curve: Vec::new(),
            loaded_runs: 1,
            exit_samples: 2,
            settle: Duration::from_millis(200),
            smoke: true,
            ..Config::full()
        }
    }

    /// The task counts of the rounds, ascending, each once.
    fn round_sizes(&self) -> Vec<usize> {
        if self.parallel_tasks == 0 {
            return Vec::new();
        }
        let mut sizes: Vec<usize> =
            self.curve.iter().copied().chain([self.parallel_tasks]).filter(|&n| n > 0).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    fn describe(&self) -> String {
        format!(
            "{}: {} sequential runs (+{} warm-up), rounds of {:?} tasks with {} `ctr run`s each, {} exit samples",
            if self.smoke { "smoke" } else { "full" },
            self.sequential_runs,
            self.warmup_runs,
            self.round_sizes(),
            self.loaded_runs,
            self.exit_samples
        )
    }
}

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

/// Runs the benchmark as `config` says and returns the results. The namespace is removed at
/// the end whatever happened.
pub async fn run(config: &Config) -> Result<Results, Error> {
    if !config.namespace.starts_with("bench-") {
        return Err(Error::Setup { what: "checking the namespace: it must start with `bench-`" });
    }
    let target =
        Target { sandbox: Sandbox::get(), address: config.address.clone(), namespace: config.namespace.clone() };
    let load_at_start = load_average();
    let measured = match target.import_image() {
        Ok(()) => measure(&target, config).await,
        Err(error) => Err(error),
    };
    target.remove_namespace();
    let mut results = measured?;
    results.context = context(&target, config, &results, &load_at_start);
    Ok(results)
}

async fn measure(target: &Target, config: &Config) -> Result<Results, Error> {
    let client = target.client().await?;
    let exits = ExitWatch::subscribe(target, &client, &config.baseline.name).await?;
    let runtimes = [config.ours.clone(), config.baseline.clone()];
    let mut results = Results { main_tasks: config.parallel_tasks, ..Results::default() };

    if config.sequential_runs > 0 {
        eprintln!("bench: item 1, {} sequential `ctr run`s per runtime", config.sequential_runs);
        let (sequential_target, both) = (target.clone(), runtimes.to_vec());
        let (warmup, count) = (config.warmup_runs, config.sequential_runs);
        let mut timings =
            tokio::task::spawn_blocking(move || sequential::interleaved(&sequential_target, &both, warmup, count))
                .await
                .map_err(|_| Error::Setup { what: "timing sequential runs" })??;
        let baseline = timings.pop().unwrap_or_default();
        let ours = timings.pop().unwrap_or_default();
        results.sequential = Some(Pair { ours, baseline });
    }

    for (index, tasks) in config.round_sizes().into_iter().enumerate() {
        let plan = RoundPlan { tasks, loaded_runs: config.loaded_runs, settle: config.settle };
        eprintln!("bench: round of {tasks} tasks at once");
        // Who goes first alternates from round to round.
        let (ours, baseline) = if index % 2 == 0 {
            let ours = parallel::round(target, &client, &exits, &config.ours, plan).await?;
            (ours, parallel::round(target, &client, &exits, &config.baseline, plan).await?)
        } else {
            let baseline = parallel::round(target, &client, &exits, &config.baseline, plan).await?;
            (parallel::round(target, &client, &exits, &config.ours, plan).await?, baseline)
        };
        results.rounds.push(Pair { ours, baseline });
    }

    if config.exit_samples > 0 {
        eprintln!("bench: item 4, {} exit samples per runtime", config.exit_samples);
        let mut samples = Pair::<Vec<exit_latency::Sample>>::default();
        for index in 0..config.exit_samples {
            let ours_first = index % 2 == 0;
            for ours in [ours_first, !ours_first] {
                let (runtime, into) =
                    if ours { (&config.ours, &mut samples.ours) } else { (&config.baseline, &mut samples.baseline) };
                into.push(exit_latency::sample(target, &client, &exits, runtime).await?);
            }
        }
        results.exits = Some(samples);
    }
    Ok(results)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Where and how the benchmark ran, for the report's head.
fn context(target: &Target, config: &Config, results: &Results, load_at_start: &str) -> Context {
    // The shim binary that ran, unless the runtime was given as that path.
    let baseline_shim = results
        .rounds
        .iter()
        .find_map(|round| round.baseline.running.exe.as_ref())
        .filter(|exe| exe.as_os_str() != config.baseline.name.as_str())
        .map(|exe| format!(" (`{}`)", exe.display()))
        .unwrap_or_default();
    Context {
        ours: format!("`{}`: {}", config.ours.name, daemon_binary(target, config)),
        baseline: format!("`{}`{baseline_shim}", config.baseline.name),
        containerd: format!("{} at `{}` (`{}`)", target.containerd_version(), target.address, target.sandbox.ctr),
        machine: machine(),
        load: format!("{load_at_start} at start, {} at end (1, 5, 15 min)", load_average()),
        mode: config.describe(),
    }
}

/// The binary our daemon runs, with its size (a debug build is ten times a release one).
fn daemon_binary(target: &Target, config: &Config) -> String {
    let Ok(census) = Census::new(target.sandbox.pid, config.ours.kind, &target.namespace, Vec::new(), &target.address)
    else {
        return "sandbox gone".into();
    };
    let processes = procfs::Process::all().unwrap_or_default();
    let Some(daemon) = census.daemon(&processes) else { return "no daemon running".into() };
    let exe = std::fs::read_link(format!("/proc/{}/exe", daemon.pid))
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| daemon.cmdline.first().cloned().unwrap_or_default());
    let size = std::fs::metadata(format!("/proc/{}/exe", daemon.pid)).map(|meta| meta.len()).unwrap_or(0);
    format!("daemon `{exe}` ({:.1} MB binary)", size as f64 / 1e6)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} × {model}, Linux {}", kernel.trim())
}
