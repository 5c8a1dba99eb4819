//! The report's figures as data: one [`Row`] for each figure of the Markdown report, ours beside
//! the baseline's, for `bench --json` and for comparing runs by machine (`bench-compare`,
//! [`super::compare`]). The report shows a ratio beside most figures; a row carries the two
//! values it came from, so the comparison can take ratios itself. Pure, like the report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::footprint::Component;
use super::parallel::Round;
use super::procfs::clock_ticks_per_second;
use super::report::{start_cpu_total, Context, Results};
use super::stats::Summary;

/// What a row's values count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Milliseconds (wall or CPU time).
    Ms,
    /// KiB of memory (a growth may be negative).
    Kib,
    /// A number of things (processes, missed events).
    Count,
}

/// One figure of the report, for both runtimes. Lower is better for every row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The report's section, e.g. `2. 50 tasks at once`.
    pub section: String,
    /// The figure within it, as the report labels it. Section and label name a row.
    pub label: String,
    /// What the values count.
    pub unit: Unit,
    /// Ours.
    pub ours: f64,
    /// The baseline's, measured in the same run.
    pub baseline: f64,
    /// The smallest difference the figure can show, in `unit` (one clock tick for CPU times);
    /// 0 where it is finer than matters.
    #[serde(default)]
    pub resolution: f64,
}

/// What `bench --json` writes: where the run happened and every figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The report's head.
    pub context: Context,
    /// Every figure, in report order.
    pub rows: Vec<Row>,
}

/// The rows of one section, as they are added.
struct Section<'a> {
    name: String,
    rows: &'a mut Vec<Row>,
}

impl Section<'_> {
    fn add(&mut self, label: impl Into<String>, unit: Unit, ours: f64, baseline: f64) -> &mut Self {
        self.rows.push(Row { section: self.name.clone(), label: label.into(), unit, ours, baseline, resolution: 0.0 });
        self
    }

    fn ms(&mut self, label: impl Into<String>, ours: Duration, baseline: Duration) -> &mut Self {
        self.add(label, Unit::Ms, millis(ours), millis(baseline))
    }

    /// The last row added can resolve no less than `resolution`.
    fn resolving(&mut self, resolution: f64) -> &mut Self {
        if let Some(row) = self.rows.last_mut() {
            row.resolution = resolution;
        }
        self
    }

    fn kib(&mut self, label: impl Into<String>, ours: f64, baseline: f64) -> &mut Self {
        self.add(label, Unit::Kib, ours, baseline)
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl Results {
    /// The report's head and figures, for `--json`.
    pub fn figures(&self) -> Figures {
        Figures { context: self.context.clone(), rows: self.rows() }
    }

    /// Every figure of the report, in its order. A figure the report shows as `–` (no samples
    /// on one side) has no row.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        self.sequential_rows(&mut rows);
        self.main_round_rows(&mut rows);
        self.exit_rows(&mut rows);
        self.curve_rows(&mut rows);
        rows
    }

    fn sequential_rows(&self, rows: &mut Vec<Row>) {
        let Some(runs) = &self.sequential else { return };
        let (Some(ours), Some(baseline)) = (Summary::of(&runs.ours), Summary::of(&runs.baseline)) else { return };
        let mut section = Section { name: "1. sequential `ctr run --rm busybox true`".into(), rows };
        section.ms("min", ours.min, baseline.min).ms("p50", ours.p50, baseline.p50).ms("p90", ours.p90, baseline.p90);
    }

    fn main_round_rows(&self, rows: &mut Vec<Row>) {
        let Some(index) = self.main_round() else { return };
        let (ours, baseline) = (&self.rounds[index].ours, &self.rounds[index].baseline);
        let tasks = ours.tasks;
        let mut section = Section { name: format!("2. {tasks} tasks at once through gRPC"), rows };
        section.ms("create + start, until all RUNNING", ours.start_wall, baseline.start_wall).ms(
            "SIGKILL, until every TaskExit arrived",
            ours.kill_wall,
            baseline.kill_wall,
        );
        let cpu =
            |round: &Round, component: Component| round.start_cpu.get(&component).copied().unwrap_or_default().total();
        // CPU time comes in clock ticks.
        let tick = 1000.0 / clock_ticks_per_second().max(1) as f64;
        for component in Component::ALL {
            section
                .ms(
                    format!("CPU during the starts: {}", component.label()),
                    cpu(ours, component),
                    cpu(baseline, component),
                )
                .resolving(tick);
        }
        section
            .ms("CPU during the starts: total", start_cpu_total(ours).total(), start_cpu_total(baseline).total())
            .resolving(tick);

        let views = &self.memory_views()[index];
        let (ours, baseline) = (&views.ours, &views.baseline);
        let mut section = Section { name: format!("3. memory with {tasks} `sleep` tasks running"), rows: section.rows };
        section
            .add("shim processes", Unit::Count, ours.shims as f64, baseline.shims as f64)
            .kib("shims' RSS", ours.shim.rss_kib as f64, baseline.shim.rss_kib as f64)
            .kib("shims' PSS", ours.shim.pss_kib as f64, baseline.shim.pss_kib as f64)
            .kib("shims' anonymous memory", ours.shim.anonymous_kib as f64, baseline.shim.anonymous_kib as f64)
            .kib(
                "systemd RSS growth (up to this round)",
                ours.systemd_growth_kib as f64,
                baseline.systemd_growth_kib as f64,
            )
            .kib("shims' PSS + systemd growth", ours.cost_kib() as f64, baseline.cost_kib() as f64)
            .kib(
                "… per task",
                ours.cost_kib() as f64 / tasks.max(1) as f64,
                baseline.cost_kib() as f64 / tasks.max(1) as f64,
            );
    }

    fn exit_rows(&self, rows: &mut Vec<Row>) {
        let Some(samples) = &self.exits else { return };
        let mut section = Section { name: "4. container exit → `TaskExit` at the subscriber".into(), rows };
        let latencies = |samples: &[super::exit_latency::Sample]| {
            samples.iter().filter_map(|sample| sample.exit_to_event).collect::<Vec<_>>()
        };
        if let (Some(ours), Some(baseline)) =
            (Summary::of(&latencies(&samples.ours)), Summary::of(&latencies(&samples.baseline)))
        {
            section
                .ms("exit → TaskExit p50", ours.p50, baseline.p50)
                .ms("exit → TaskExit p90", ours.p90, baseline.p90)
                .ms("exit → TaskExit max", ours.max, baseline.max);
        }
        let missed = |samples: &[super::exit_latency::Sample]| {
            samples.iter().filter(|sample| sample.exit_to_event.is_none()).count() as f64
        };
        section.add("TaskExit missed", Unit::Count, missed(&samples.ours), missed(&samples.baseline));
        type Pick = fn(&super::exit_latency::Sample) -> Duration;
        let calls: [(&str, Pick); 3] = [
            ("Tasks.Create p50", |sample| sample.create),
            ("Tasks.Start p50", |sample| sample.start),
            ("Tasks.Delete p50", |sample| sample.delete),
        ];
        for (label, pick) in calls {
            let p50 = |samples: &[super::exit_latency::Sample]| {
                Summary::of(&samples.iter().map(pick).collect::<Vec<_>>()).map(|summary| summary.p50)
            };
            if let (Some(ours), Some(baseline)) = (p50(&samples.ours), p50(&samples.baseline)) {
                section.ms(label, ours, baseline);
            }
        }
    }

    fn curve_rows(&self, rows: &mut Vec<Row>) {
        let mut section = Section { name: "5. cost curve".into(), rows };
        for (round, views) in self.rounds.iter().zip(self.memory_views()) {
            let (ours, baseline) = (&round.ours, &round.baseline);
            let tasks = ours.tasks;
            section.ms(format!("{tasks} tasks: start all"), ours.start_wall, baseline.start_wall).ms(
                format!("{tasks} tasks: kill all"),
                ours.kill_wall,
                baseline.kill_wall,
            );
            let p50 = |round: &Round| Summary::of(&round.loaded_runs).map(|summary| summary.p50);
            if let (Some(ours), Some(baseline)) = (p50(ours), p50(baseline)) {
                section.ms(format!("{tasks} tasks: `ctr run` p50 meanwhile"), ours, baseline);
            }
            let (ours, baseline) = (&views.ours, &views.baseline);
            section
                .kib(format!("{tasks} tasks: shims' PSS"), ours.shim.pss_kib as f64, baseline.shim.pss_kib as f64)
                .kib(
                    format!("{tasks} tasks: systemd growth per task"),
                    ours.systemd_growth_kib as f64 / tasks.max(1) as f64,
                    baseline.systemd_growth_kib as f64 / tasks.max(1) as f64,
                )
                .kib(
                    format!("{tasks} tasks: PSS + systemd growth"),
                    ours.cost_kib() as f64,
                    baseline.cost_kib() as f64,
                );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::results;

    fn find<'r>(rows: &'r [Row], section: &str, label: &str) -> &'r Row {
        rows.iter()
            .find(|row| row.section.starts_with(section) && row.label == label)
            .unwrap_or_else(|| panic!("no row {section:?} / {label:?} in {rows:#?}"))
    }

    #[test]
    fn every_report_table_has_its_rows_with_both_values() {
        let rows = results().rows();
        struct Case {
            section: &'static str,
            label: &'static str,
            unit: Unit,
            ours: f64,
            baseline: f64,
        }
        let cases = [
            Case { section: "1.", label: "p50", unit: Unit::Ms, ours: 60.0, baseline: 90.0 },
            Case {
                section: "2. 50 tasks",
                label: "create + start, until all RUNNING",
                unit: Unit::Ms,
                ours: 900.0,
                baseline: 1000.0,
            },
            Case {
                section: "2. 50 tasks",
                label: "CPU during the starts: systemd (PID 1)",
                unit: Unit::Ms,
                ours: 40.0,
                baseline: 40.0,
            },
            Case { section: "3. memory", label: "shim processes", unit: Unit::Count, ours: 50.0, baseline: 50.0 },
            Case { section: "3. memory", label: "shims' PSS", unit: Unit::Kib, ours: 10_240.0, baseline: 512_000.0 },
            Case {
                section: "3. memory",
                label: "systemd RSS growth (up to this round)",
                unit: Unit::Kib,
                ours: 2048.0,
                baseline: 0.0,
            },
            Case { section: "4.", label: "TaskExit missed", unit: Unit::Count, ours: 0.0, baseline: 1.0 },
            Case { section: "4.", label: "Tasks.Delete p50", unit: Unit::Ms, ours: 20.0, baseline: 25.0 },
            Case { section: "5.", label: "50 tasks: kill all", unit: Unit::Ms, ours: 300.0, baseline: 300.0 },
            Case {
                section: "5.",
                label: "50 tasks: PSS + systemd growth",
                unit: Unit::Kib,
                ours: 12_288.0,
                baseline: 512_000.0,
            },
        ];
        for case in cases {
            let row = find(&rows, case.section, case.label);
            assert_eq!((row.unit, row.ours, row.baseline), (case.unit, case.ours, case.baseline), "{}", case.label);
        }
    }

    #[test]
    fn cpu_rows_resolve_no_less_than_a_clock_tick() {
        let rows = results().rows();
        let tick = 1000.0 / clock_ticks_per_second() as f64;
        assert_eq!(find(&rows, "2. 50 tasks", "CPU during the starts: total").resolution, tick);
        assert_eq!(find(&rows, "2. 50 tasks", "create + start, until all RUNNING").resolution, 0.0);
    }

    #[test]
    fn figures_without_samples_on_one_side_have_no_row() {
        let rows = results().rows();
        // The baseline's only exit sample missed its TaskExit: no latency to compare.
        assert!(!rows.iter().any(|row| row.label.starts_with("exit → TaskExit")), "{rows:#?}");
    }

    #[test]
    fn figures_survive_json() {
        let figures = results().figures();
        let text = serde_json::to_string(&figures).expect("figures serialise");
        let back: Figures = serde_json::from_str(&text).expect("figures parse");
        assert_eq!(back, figures);
    }
}
