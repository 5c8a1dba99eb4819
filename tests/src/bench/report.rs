//! The benchmark's results as Markdown: one table per item, ours beside the baseline with their
//! ratio, and the targets checked at the end. Rendering is pure.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::exit_latency::Sample;
use super::footprint::Component;
use super::parallel::Round;
use super::procfs::{CpuTime, Memory};
use super::stats::{ratio, Summary};
use super::Pair;

/// Where and how the benchmark ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Our runtime's name, with the daemon binary it ran.
    pub ours: String,
    /// The baseline runtime's name.
    pub baseline: String,
    /// containerd's version and the `ctr` used.
    pub containerd: String,
    /// CPUs, model and kernel.
    pub machine: String,
    /// Load averages at start and end: how busy the machine was.
    pub load: String,
    /// `full` or `smoke`, with the sizes.
    pub mode: String,
}

/// Everything measured; a section is `None` when it was not run.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Where and how.
    pub context: Context,
    /// Item 1: sequential `ctr run --rm` timings.
    pub sequential: Option<Pair<Vec<Duration>>>,
    /// Items 2, 3, 5: rounds by task count, ascending.
    pub rounds: Vec<Pair<Round>>,
    /// The task count of items 2 and 3.
    pub main_tasks: usize,
    /// Item 4: exit latency samples.
    pub exits: Option<Pair<Vec<Sample>>>,
}

/// The targets, as ratios ours / baseline (exit latency: ours, absolute).
mod targets {
    use std::time::Duration;

    pub const MEMORY_RATIO: f64 = 0.05;
    pub const SEQUENTIAL_P50_RATIO: f64 = 0.8;
    pub const PARALLEL_START_RATIO: f64 = 1.0;
    pub const EXIT_P50: Duration = Duration::from_millis(10);
}

/// A Markdown table.
struct Table {
    text: String,
}

impl Table {
    fn new(headers: &[&str]) -> Table {
        let mut table = Table { text: String::new() };
        table.row(headers.iter().map(|header| header.to_string()).collect());
        table.row(headers.iter().map(|_| "---".to_string()).collect());
        table
    }

    fn row(&mut self, cells: Vec<String>) -> &mut Table {
        let _ = writeln!(self.text, "| {} |", cells.join(" | "));
        self
    }

    fn render(&self) -> &str {
        &self.text
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn signed_mib(kib: i64) -> String {
    format!("{:+.2} MiB", kib as f64 / 1024.0)
}

/// A ratio, with a third decimal below 0.1 so that a figure near the 0.05 memory target is not
/// rounded onto it.
fn times(value: Option<f64>) -> String {
    match value {
        None => "–".to_string(),
        Some(value) if value < 0.1 => format!("{value:.3}"),
        Some(value) => format!("{value:.2}"),
    }
}

fn duration_ratio(ours: Duration, baseline: Duration) -> Option<f64> {
    ratio(ours.as_secs_f64(), baseline.as_secs_f64())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// Growth of systemd's RSS during a round, in KiB (negative if it shrank).
fn systemd_growth_kib(round: &Round) -> i64 {
    round.running.systemd.rss_kib as i64 - round.before.systemd.rss_kib as i64
}

/// One runtime's memory in one round, with systemd's growth counted over that runtime's rounds
/// so far. systemd keeps memory it frees for reuse, so a round only grows it past the
/// high-water mark of the rounds before; with rounds in ascending size, the sum of a runtime's
/// growths up to N tasks is what N tasks cost systemd (on a fresh systemd).
#[derive(Debug, Clone, Copy)]
pub(super) struct MemoryView {
    pub(super) tasks: usize,
    pub(super) shims: usize,
    pub(super) shim: Memory,
    pub(super) systemd_growth_kib: i64,
}

impl MemoryView {
    /// Shims' PSS plus systemd's growth: the memory the runtime's design costs.
    pub(super) fn cost_kib(&self) -> u64 {
        self.shim.pss_kib + self.systemd_growth_kib.max(0) as u64
    }

    fn per_task(kib: f64, tasks: usize) -> String {
        format!("{:.0} KiB", kib / tasks.max(1) as f64)
    }
}

/// The CPU time all components used during a round's starts.
pub(super) fn start_cpu_total(round: &Round) -> CpuTime {
    round
        .start_cpu
        .values()
        .fold(CpuTime::default(), |sum, cpu| CpuTime { own: sum.own + cpu.own, children: sum.children + cpu.children })
}

fn cpu_cell(cpu: CpuTime) -> String {
    format!("{} ({} + {})", ms(cpu.total()), ms(cpu.own), ms(cpu.children))
}

impl Results {
    /// The whole report.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        self.write_context(&mut out);
        self.write_sequential(&mut out);
        self.write_main_round(&mut out);
        self.write_exits(&mut out);
        self.write_curve(&mut out);
        self.write_targets(&mut out);
        out
    }

    fn write_context(&self, out: &mut String) {
        let context = &self.context;
        let _ = writeln!(out, "# containerd-shim-systemd-v1 vs runc-v2\n");
        let mut table = Table::new(&["", ""]);
        table
            .row(vec!["ours".into(), context.ours.clone()])
            .row(vec!["baseline".into(), context.baseline.clone()])
            .row(vec!["containerd".into(), context.containerd.clone()])
            .row(vec!["machine".into(), context.machine.clone()])
            .row(vec!["load average".into(), context.load.clone()])
            .row(vec!["mode".into(), context.mode.clone()]);
        let _ = writeln!(out, "{}", table.render());
    }

    fn write_sequential(&self, out: &mut String) {
        let Some(runs) = &self.sequential else { return };
        let (Some(ours), Some(baseline)) = (Summary::of(&runs.ours), Summary::of(&runs.baseline)) else { return };
        let _ = writeln!(
            out,
            "## 1. `ctr run --rm busybox true`, one after another ({} runs each, taking turns)\n",
            ours.count
        );
        let mut table = Table::new(&["", "ours", "runc-v2", "ours / runc-v2"]);
        for (label, ours, baseline) in
            [("min", ours.min, baseline.min), ("p50", ours.p50, baseline.p50), ("p90", ours.p90, baseline.p90)]
        {
            table.row(vec![label.into(), ms(ours), ms(baseline), times(duration_ratio(ours, baseline))]);
        }
        let _ = writeln!(out, "{}", table.render());
    }

    /// The index of the round of items 2 and 3.
    pub(super) fn main_round(&self) -> Option<usize> {
        self.rounds.iter().position(|round| round.ours.tasks == self.main_tasks)
    }

    /// Each round's memory views, in round order.
    pub(super) fn memory_views(&self) -> Vec<Pair<MemoryView>> {
        let mut growth = Pair { ours: 0i64, baseline: 0i64 };
        self.rounds
            .iter()
            .map(|pair| {
                growth.ours += systemd_growth_kib(&pair.ours).max(0);
                growth.baseline += systemd_growth_kib(&pair.baseline).max(0);
                let view = |round: &Round, systemd_growth_kib: i64| MemoryView {
                    tasks: round.tasks,
                    shims: round.running.shims,
                    shim: round.running.shim_memory,
                    systemd_growth_kib,
                };
                Pair { ours: view(&pair.ours, growth.ours), baseline: view(&pair.baseline, growth.baseline) }
            })
            .collect()
    }

    fn write_main_round(&self, out: &mut String) {
        let Some(index) = self.main_round() else { return };
        let (ours, baseline) = (&self.rounds[index].ours, &self.rounds[index].baseline);
        let tasks = ours.tasks;
        let _ = writeln!(out, "## 2. {tasks} tasks at once through gRPC\n");
        let mut table = Table::new(&["", "ours", "runc-v2", "ours / runc-v2"]);
        table
            .row(vec![
                "create + start, until all RUNNING".into(),
                ms(ours.start_wall),
                ms(baseline.start_wall),
                times(duration_ratio(ours.start_wall, baseline.start_wall)),
            ])
            .row(vec![
                "SIGKILL, until every TaskExit arrived".into(),
                ms(ours.kill_wall),
                ms(baseline.kill_wall),
                times(duration_ratio(ours.kill_wall, baseline.kill_wall)),
            ]);
        let _ = writeln!(out, "{}", table.render());

        let _ = writeln!(
            out,
            "CPU time used during those starts: total (own + the children each waited for). Ours runs \
             `runc create` under systemd, runc-v2 under its shims. Clock ticks are 10 ms.\n"
        );
        let mut table = Table::new(&["", "ours", "runc-v2", "ours / runc-v2"]);
        let cpu = |round: &Round, component: Component| round.start_cpu.get(&component).copied().unwrap_or_default();
        for component in Component::ALL {
            let (ours_cpu, baseline_cpu) = (cpu(ours, component), cpu(baseline, component));
            table.row(vec![
                component.label().into(),
                cpu_cell(ours_cpu),
                cpu_cell(baseline_cpu),
                times(duration_ratio(ours_cpu.total(), baseline_cpu.total())),
            ]);
        }
        let total = start_cpu_total;
        table.row(vec![
            "**total**".into(),
            cpu_cell(total(ours)),
            cpu_cell(total(baseline)),
            times(duration_ratio(total(ours).total(), total(baseline).total())),
        ]);
        let _ = writeln!(out, "{}", table.render());

        let views = &self.memory_views()[index];
        let (ours, baseline) = (&views.ours, &views.baseline);
        let _ = writeln!(out, "## 3. Memory with {tasks} `sleep` tasks running\n");
        let mut table = Table::new(&["", "ours", "runc-v2", "ours / runc-v2"]);
        let memory_row = |label: &str, pick: fn(&Memory) -> u64| {
            let (a, b) = (pick(&ours.shim), pick(&baseline.shim));
            vec![label.to_string(), mib(a), mib(b), times(ratio(a as f64, b as f64))]
        };
        table
            .row(vec!["shim processes".into(), ours.shims.to_string(), baseline.shims.to_string(), String::new()])
            .row(memory_row("shims' RSS", |memory| memory.rss_kib))
            .row(memory_row("shims' PSS", |memory| memory.pss_kib))
            .row(memory_row("shims' anonymous memory", |memory| memory.anonymous_kib))
            .row(vec![
                "systemd RSS growth (up to this round)".into(),
                signed_mib(ours.systemd_growth_kib),
                signed_mib(baseline.systemd_growth_kib),
                String::new(),
            ])
            .row(vec![
                "shims' PSS + systemd growth".into(),
                mib(ours.cost_kib()),
                mib(baseline.cost_kib()),
                times(ratio(ours.cost_kib() as f64, baseline.cost_kib() as f64)),
            ])
            .row(vec![
                "… per task".into(),
                MemoryView::per_task(ours.cost_kib() as f64, tasks),
                MemoryView::per_task(baseline.cost_kib() as f64, tasks),
                String::new(),
            ]);
        let _ = writeln!(out, "{}", table.render());
    }

    fn write_exits(&self, out: &mut String) {
        let Some(samples) = &self.exits else { return };
        let latencies =
            |samples: &[Sample]| samples.iter().filter_map(|sample| sample.exit_to_event).collect::<Vec<_>>();
        let missed = |samples: &[Sample]| samples.iter().filter(|sample| sample.exit_to_event.is_none()).count();
        let (ours, baseline) = (Summary::of(&latencies(&samples.ours)), Summary::of(&latencies(&samples.baseline)));
        let realtime = samples.ours.iter().chain(&samples.baseline).all(|sample| sample.realtime);
        let _ = writeln!(
            out,
            "## 4. Container exit → `TaskExit` at the subscriber ({} samples each, {} + {} missed)\n",
            samples.ours.len(),
            missed(&samples.ours),
            missed(&samples.baseline)
        );
        if !realtime {
            let _ = writeln!(out, "Timestamps were taken at normal priority (no SCHED_FIFO): expect noise.\n");
        }
        let mut table = Table::new(&["", "ours", "runc-v2", "ours / runc-v2"]);
        if let (Some(ours), Some(baseline)) = (ours, baseline) {
            for (label, ours, baseline) in
                [("p50", ours.p50, baseline.p50), ("p90", ours.p90, baseline.p90), ("max", ours.max, baseline.max)]
            {
                table.row(vec![
                    format!("exit → TaskExit {label}"),
                    ms(ours),
                    ms(baseline),
                    times(duration_ratio(ours, baseline)),
                ]);
            }
        }
        type Pick = fn(&Sample) -> Duration;
        let calls: [(&str, Pick); 3] = [
            ("Tasks.Create p50", |sample| sample.create),
            ("Tasks.Start p50", |sample| sample.start),
            ("Tasks.Delete p50", |sample| sample.delete),
        ];
        for (label, pick) in calls {
            let p50 = |samples: &[Sample]| Summary::of(&samples.iter().map(pick).collect::<Vec<_>>()).map(|s| s.p50);
            if let (Some(ours), Some(baseline)) = (p50(&samples.ours), p50(&samples.baseline)) {
                table.row(vec![label.into(), ms(ours), ms(baseline), times(duration_ratio(ours, baseline))]);
            }
        }
        let _ = writeln!(out, "{}", table.render());
    }

    fn write_curve(&self, out: &mut String) {
        if self.rounds.is_empty() {
            return;
        }
        let _ = writeln!(out, "## 5. Cost curve\n");
        let mut table = Table::new(&[
            "tasks",
            "start all: ours",
            "runc-v2",
            "ratio",
            "kill all: ours",
            "runc-v2",
            "`ctr run` p50 meanwhile: ours",
            "runc-v2",
            "ratio",
        ]);
        for round in &self.rounds {
            let (ours, baseline) = (&round.ours, &round.baseline);
            let p50 = |round: &Round| Summary::of(&round.loaded_runs).map(|summary| summary.p50);
            let (ours_run, baseline_run) = (p50(ours), p50(baseline));
            table.row(vec![
                ours.tasks.to_string(),
                ms(ours.start_wall),
                ms(baseline.start_wall),
                times(duration_ratio(ours.start_wall, baseline.start_wall)),
                ms(ours.kill_wall),
                ms(baseline.kill_wall),
                ours_run.map_or_else(|| "–".into(), ms),
                baseline_run.map_or_else(|| "–".into(), ms),
                times(ours_run.zip(baseline_run).and_then(|(a, b)| duration_ratio(a, b))),
            ]);
        }
        let _ = writeln!(out, "{}", table.render());

        let mut table = Table::new(&[
            "tasks",
            "shims' PSS: ours",
            "runc-v2",
            "ratio",
            "systemd growth per task: ours",
            "runc-v2",
            "PSS + systemd growth: ours",
            "runc-v2",
            "ratio",
        ]);
        for views in self.memory_views() {
            let (ours, baseline) = (&views.ours, &views.baseline);
            table.row(vec![
                ours.tasks.to_string(),
                mib(ours.shim.pss_kib),
                mib(baseline.shim.pss_kib),
                times(ratio(ours.shim.pss_kib as f64, baseline.shim.pss_kib as f64)),
                MemoryView::per_task(ours.systemd_growth_kib as f64, ours.tasks),
                MemoryView::per_task(baseline.systemd_growth_kib as f64, baseline.tasks),
                mib(ours.cost_kib()),
                mib(baseline.cost_kib()),
                times(ratio(ours.cost_kib() as f64, baseline.cost_kib() as f64)),
            ]);
        }
        let _ = writeln!(out, "{}", table.render());
    }

    fn write_targets(&self, out: &mut String) {
        let mut table = Table::new(&["target", "measured", ""]);
        let mut any = false;
        if let Some(index) = self.main_round() {
            let views = &self.memory_views()[index];
            let (ours, baseline) = (&views.ours, &views.baseline);
            let pss = ratio(ours.shim.pss_kib as f64, baseline.shim.pss_kib as f64);
            table.row(vec![
                format!("shims' PSS at {} tasks, ours / runc-v2 ≤ {}", ours.tasks, targets::MEMORY_RATIO),
                times(pss),
                verdict(pss.is_some_and(|value| value <= targets::MEMORY_RATIO)).into(),
            ]);
            let with_systemd = ratio(ours.cost_kib() as f64, baseline.cost_kib() as f64);
            table.row(vec![
                format!("… counting systemd's growth, ≤ {}", targets::MEMORY_RATIO),
                times(with_systemd),
                verdict(with_systemd.is_some_and(|value| value <= targets::MEMORY_RATIO)).into(),
            ]);
            let (ours, baseline) = (&self.rounds[index].ours, &self.rounds[index].baseline);
            let start = duration_ratio(ours.start_wall, baseline.start_wall);
            table.row(vec![
                format!("{} parallel starts, wall ours / runc-v2 ≤ {}", ours.tasks, targets::PARALLEL_START_RATIO),
                times(start),
                verdict(start.is_some_and(|value| value <= targets::PARALLEL_START_RATIO)).into(),
            ]);
            any = true;
        }
        if let Some(runs) = &self.sequential {
            if let (Some(ours), Some(baseline)) = (Summary::of(&runs.ours), Summary::of(&runs.baseline)) {
                let p50 = duration_ratio(ours.p50, baseline.p50);
                table.row(vec![
                    format!("sequential `ctr run` p50, ours / runc-v2 ≤ {}", targets::SEQUENTIAL_P50_RATIO),
                    times(p50),
                    verdict(p50.is_some_and(|value| value <= targets::SEQUENTIAL_P50_RATIO)).into(),
                ]);
                any = true;
            }
        }
        if let Some(samples) = &self.exits {
            let latencies: Vec<Duration> = samples.ours.iter().filter_map(|sample| sample.exit_to_event).collect();
            if let Some(ours) = Summary::of(&latencies) {
                table.row(vec![
                    format!("exit → TaskExit p50, ours ≤ {}", ms(targets::EXIT_P50)),
                    ms(ours.p50),
                    verdict(ours.p50 <= targets::EXIT_P50).into(),
                ]);
                any = true;
            }
        }
        if any {
            let _ = writeln!(out, "## Targets\n\n{}", table.render());
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::bench::footprint::Footprint;

    fn round(tasks: usize, start_ms: u64, shim_pss_kib: u64, systemd_before: u64, systemd_running: u64) -> Round {
        let memory = |pss_kib| Memory { rss_kib: pss_kib * 2, pss_kib, anonymous_kib: pss_kib / 2 };
        Round {
            tasks,
            start_wall: Duration::from_millis(start_ms),
            start_cpu: HashMap::from([(
                Component::Systemd,
                CpuTime { own: Duration::from_millis(10), children: Duration::from_millis(30) },
            )]),
            before: Footprint {
                shims: 0,
                exe: None,
                shim_memory: Memory::default(),
                systemd: memory(systemd_before / 2),
            },
            running: Footprint {
                shims: tasks,
                exe: None,
                shim_memory: memory(shim_pss_kib),
                systemd: memory(systemd_running / 2),
            },
            loaded_runs: vec![Duration::from_millis(80)],
            kill_wall: Duration::from_millis(300),
        }
    }

    /// Results of one small run, for the report's tests and those of the rows.
    pub(in crate::bench) fn results() -> Results {
        Results {
            context: Context { ours: "io.containerd.systemd.v1".into(), ..Context::default() },
            sequential: Some(Pair {
                ours: vec![Duration::from_millis(60), Duration::from_millis(70)],
                baseline: vec![Duration::from_millis(100), Duration::from_millis(90)],
            }),
            rounds: vec![Pair {
                ours: round(50, 900, 10_240, 10_000, 12_048),
                baseline: round(50, 1000, 512_000, 10_000, 10_000),
            }],
            main_tasks: 50,
            exits: Some(Pair {
                ours: vec![Sample {
                    create: Duration::from_millis(30),
                    start: Duration::from_millis(10),
                    exit_to_event: Some(Duration::from_millis(4)),
                    delete: Duration::from_millis(20),
                    realtime: true,
                }],
                baseline: vec![Sample {
                    create: Duration::from_millis(40),
                    start: Duration::from_millis(12),
                    exit_to_event: None,
                    delete: Duration::from_millis(25),
                    realtime: true,
                }],
            }),
        }
    }

    #[test]
    fn report_has_every_section_with_ratios() {
        let markdown = results().to_markdown();
        for expected in [
            "## 1. `ctr run --rm busybox true`, one after another (2 runs each, taking turns)",
            "| p50 | 60.0 ms | 90.0 ms | 0.67 |",
            "| create + start, until all RUNNING | 900.0 ms | 1000.0 ms | 0.90 |",
            "| shims' PSS | 10.0 MiB | 500.0 MiB | 0.020 |",
            "| systemd RSS growth (up to this round) | +2.00 MiB | +0.00 MiB |  |",
            "| systemd (PID 1) | 40.0 ms (10.0 ms + 30.0 ms) |",
            "| shims' PSS + systemd growth | 12.0 MiB | 500.0 MiB | 0.024 |",
            "(1 samples each, 0 + 1 missed)",
            "| Tasks.Create p50 | 30.0 ms | 40.0 ms | 0.75 |",
            "## 5. Cost curve",
            "| exit → TaskExit p50, ours ≤ 10.0 ms | 4.0 ms | met |",
            "| sequential `ctr run` p50, ours / runc-v2 ≤ 0.8 | 0.67 | met |",
        ] {
            assert!(markdown.contains(expected), "missing {expected:?} in\n{markdown}");
        }
    }

    #[test]
    fn systemd_growth_adds_up_over_a_runtimes_rounds() {
        let mut results = results();
        results.rounds = vec![
            Pair { ours: round(10, 100, 10_240, 10_000, 11_024), baseline: round(10, 100, 51_200, 10_000, 10_000) },
            Pair { ours: round(50, 900, 10_240, 11_024, 14_096), baseline: round(50, 1000, 512_000, 14_096, 14_096) },
        ];
        let markdown = results.to_markdown();
        // 1 MiB in the first round and 3 MiB more in the second: 4 MiB for 50 tasks.
        assert!(
            markdown.contains("| systemd RSS growth (up to this round) | +4.00 MiB | +0.00 MiB |  |"),
            "{markdown}"
        );
        assert!(markdown.contains("| 10 | 10.0 MiB | 50.0 MiB | 0.20 | 102 KiB | 0 KiB |"), "{markdown}");
        assert!(markdown.contains("| 50 | 10.0 MiB | 500.0 MiB | 0.020 | 82 KiB | 0 KiB | 14.0 MiB |"), "{markdown}");
    }

    #[test]
    fn a_missed_target_is_marked() {
        let mut results = results();
        results.rounds[0].ours.start_wall = Duration::from_millis(1500);
        let markdown = results.to_markdown();
        assert!(
            markdown.contains("| 50 parallel starts, wall ours / runc-v2 ≤ 1 | 1.50 | **not met** |"),
            "{markdown}"
        );
    }

    #[test]
    fn sections_not_run_are_left_out() {
        let results = Results { sequential: None, exits: None, rounds: Vec::new(), ..results() };
        let markdown = results.to_markdown();
        assert!(!markdown.contains("## 1."), "{markdown}");
        assert!(!markdown.contains("## Targets"), "{markdown}");
    }
}
