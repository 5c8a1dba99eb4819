//! Two builds of our runtime compared figure by figure: the rows ([`super::rows`]) of harness
//! passes run with the build before a change and with the build after it, on the same containerd,
//! each pass also measuring the baseline (runc-v2). Pure: files in, Markdown out.
//!
//! A build's figure is scored by its ratio to the baseline of the same pass, so that a machine
//! that is slower in one pass than in another does not count against the build that ran then.
//! Where the baseline's value is not positive in every pass (systemd's growth under runc-v2,
//! missed events), the ratio means nothing and the score is the value itself.
//!
//! The verdict allows for noise. runc-v2 is the same binary in every pass, so the spread of its
//! values across all passes is what the machine and the method alone make a figure vary; with two
//! or more passes per build, the spread of that build's own scores counts too. The tolerance is
//! the largest of these, and `after` is worse only when its score exceeds `before`'s by more, and
//! its value differs from before's by more than the figure can resolve (a clock tick of CPU).

use std::fmt::Write as _;

use super::rows::{Figures, Row, Unit};

/// Which build a pass ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The build before the change.
    Before,
    /// The build after it (the current one).
    After,
}

impl Build {
    fn name(self) -> &'static str {
        match self {
            Build::Before => "before",
            Build::After => "after",
        }
    }
}

/// One run of the harness.
#[derive(Debug, Clone)]
pub struct Pass {
    /// The build of ours it ran.
    pub build: Build,
    /// What it measured.
    pub figures: Figures,
}

/// How a row's builds are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Ours / the baseline of the same pass.
    Ratio,
    /// Ours itself: the baseline was not positive in some pass.
    Value,
}

/// One build's figure over its passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    /// How many passes measured it.
    pub passes: usize,
    /// The median of ours.
    pub ours: f64,
    /// The median of ours / baseline, if the baseline was positive in every pass.
    pub ratio: Option<f64>,
    /// The median score (see [`Basis`]).
    pub score: f64,
    /// The range of the scores (max − min): 0 with one pass.
    pub spread: f64,
}

/// Whether after is worse than before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// After's score is below before's by more than the noise.
    Better,
    /// The two scores are within the noise of each other.
    Same,
    /// After's score is above before's by more than the noise.
    Worse,
    /// One build has no such row.
    Missing,
}

impl Verdict {
    fn cell(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Same => "same (within noise)",
            Verdict::Worse => "**worse**",
            Verdict::Missing => "–",
        }
    }
}

/// A row of the report, both builds.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    /// The report's section.
    pub section: String,
    /// The figure.
    pub label: String,
    /// What the values count.
    pub unit: Unit,
    /// How the builds are scored.
    pub basis: Basis,
    /// Before's figure, if any pass of it had the row.
    pub before: Option<Side>,
    /// After's.
    pub after: Option<Side>,
    /// How far after's score may exceed before's and still count as the same, in score units.
    pub tolerance: f64,
    /// The outcome.
    pub verdict: Verdict,
}

/// The comparison of all passes.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What each build is (path, commit), as the caller names them.
    pub labels: (String, String),
    /// The passes, in the order they ran.
    pub passes: Vec<Pass>,
    /// Every row, in report order.
    pub rows: Vec<Compared>,
}

/// The median of non-empty `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// max − min of `values`, 0 for none.
fn range(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    if values.is_empty() {
        0.0
    } else {
        max - min
    }
}

fn side(rows: &[&Row], basis: Basis) -> Option<Side> {
    if rows.is_empty() {
        return None;
    }
    let ours: Vec<f64> = rows.iter().map(|row| row.ours).collect();
    let ratios: Option<Vec<f64>> =
        rows.iter().map(|row| (row.baseline > 0.0).then(|| row.ours / row.baseline)).collect();
    let scores = match basis {
        Basis::Ratio => ratios.clone().unwrap_or_default(),
        Basis::Value => ours.clone(),
    };
    Some(Side {
        passes: rows.len(),
        ours: median(&ours),
        ratio: ratios.as_deref().map(median),
        score: median(&scores),
        spread: range(&scores),
    })
}

/// Compares one row over the passes that have it.
fn compare_row(before: &[&Row], after: &[&Row]) -> Option<Compared> {
    let first = before.first().or(after.first())?;
    let all = || before.iter().chain(after);
    let basis = if all().all(|row| row.baseline > 0.0) { Basis::Ratio } else { Basis::Value };
    let (before_side, after_side) = (side(before, basis), side(after, basis));
    let baselines: Vec<f64> = all().map(|row| row.baseline).collect();
    // The baseline's spread across every pass, in score units: relative to its median for a
    // ratio, as it is for a value.
    let baseline_noise = match (basis, before_side) {
        (Basis::Ratio, Some(before)) => range(&baselines) / median(&baselines) * before.score.abs(),
        (Basis::Ratio, None) => 0.0,
        (Basis::Value, _) => range(&baselines),
    };
    let own_noise = [before_side, after_side].iter().flatten().map(|side| side.spread).fold(0.0, f64::max);
    let tolerance = baseline_noise.max(own_noise);
    let resolution = all().map(|row| row.resolution).fold(0.0, f64::max);
    let resolved = |before: Side, after: Side| (after.ours - before.ours).abs() > resolution;
    let verdict = match (before_side, after_side) {
        (Some(before), Some(after)) if !resolved(before, after) => Verdict::Same,
        (Some(before), Some(after)) if after.score > before.score + tolerance => Verdict::Worse,
        (Some(before), Some(after)) if after.score < before.score - tolerance => Verdict::Better,
        (Some(_), Some(_)) => Verdict::Same,
        _ => Verdict::Missing,
    };
    Some(Compared {
        section: first.section.clone(),
        label: first.label.clone(),
        unit: first.unit,
        basis,
        before: before_side,
        after: after_side,
        tolerance,
        verdict,
    })
}

impl Comparison {
    /// Matches the rows of `passes` by section and label and compares each.
    pub fn new(labels: (String, String), passes: Vec<Pass>) -> Comparison {
        // Report order: rows as they first appear, before's passes first.
        let mut keys: Vec<(&str, &str)> = Vec::new();
        let ordered = passes
            .iter()
            .filter(|pass| pass.build == Build::Before)
            .chain(passes.iter().filter(|pass| pass.build == Build::After));
        for pass in ordered {
            for row in &pass.figures.rows {
                let key = (row.section.as_str(), row.label.as_str());
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        let rows_of = |build: Build, (section, label): (&str, &str)| -> Vec<&Row> {
            passes
                .iter()
                .filter(|pass| pass.build == build)
                .flat_map(|pass| &pass.figures.rows)
                .filter(|row| row.section == section && row.label == label)
                .collect()
        };
        let rows = keys
            .iter()
            .filter_map(|&key| compare_row(&rows_of(Build::Before, key), &rows_of(Build::After, key)))
            .collect();
        Comparison { labels, passes, rows }
    }

    /// How many rows got `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|row| row.verdict == verdict).count()
    }

    /// The comparison as Markdown: the builds and passes, a summary, and a table per section.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# containerd-shim-systemd-v1: before vs after, each against runc-v2\n");
        let _ = writeln!(out, "| | |\n| --- | --- |");
        let _ = writeln!(out, "| before | {} |", self.labels.0);
        let _ = writeln!(out, "| after | {} |", self.labels.1);
        if let Some(first) = self.passes.first() {
            let context = &first.figures.context;
            let _ = writeln!(out, "| baseline | {} |", context.baseline);
            let _ = writeln!(out, "| containerd | {} |", context.containerd);
            let _ = writeln!(out, "| machine | {} |", context.machine);
            let _ = writeln!(out, "| mode | {} |", context.mode);
        }
        let _ = writeln!(
            out,
            "\n## Passes, in the order they ran\n\n| pass | build | ours | load average |\n| --- | --- | --- | --- |"
        );
        for (index, pass) in self.passes.iter().enumerate() {
            let context = &pass.figures.context;
            let _ = writeln!(out, "| {} | {} | {} | {} |", index + 1, pass.build.name(), context.ours, context.load);
        }
        let _ = writeln!(
            out,
            "\n## Summary\n\n{} rows: {} worse beyond noise, {} better, {} the same within noise, {} missing on one side.\n",
            self.rows.len(),
            self.count(Verdict::Worse),
            self.count(Verdict::Better),
            self.count(Verdict::Same),
            self.count(Verdict::Missing)
        );
        for row in self.rows.iter().filter(|row| row.verdict == Verdict::Worse) {
            let _ = writeln!(out, "- **worse**: {} / {}", row.section, row.label);
        }
        let _ = writeln!(
            out,
            "\nValues are medians over a build's passes; `/ runc-v2` is ours over runc-v2 of the same pass \
             (median over passes). The change compares the scores: the ratio, or the value itself where \
             runc-v2's was not positive in every pass (marked ᵛ). Noise is the larger of runc-v2's spread \
             across all passes and each build's own spread across its passes; a change within it, or one \
             of a value by no more than its resolution (a clock tick of CPU time), is \"same\".\n"
        );
        let mut section = "";
        for row in &self.rows {
            if row.section != section {
                section = &row.section;
                let _ = writeln!(
                    out,
                    "\n### {section}\n\n| | before | / runc-v2 | after | / runc-v2 | change | noise | verdict |\n\
                     | --- | --- | --- | --- | --- | --- | --- | --- |"
                );
            }
            let value = |side: Option<Side>| side.map_or_else(|| "–".into(), |side| format_value(side.ours, row.unit));
            let ratio = |side: Option<Side>| {
                side.and_then(|side| side.ratio).map_or_else(|| "–".into(), |ratio| format!("{ratio:.3}"))
            };
            let _ = writeln!(
                out,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} |",
                row.label,
                if row.basis == Basis::Value { " ᵛ" } else { "" },
                value(row.before),
                ratio(row.before),
                value(row.after),
                ratio(row.after),
                change(row),
                noise(row),
                row.verdict.cell()
            );
        }
        out
    }
}

fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms => format!("{value:.1} ms"),
        Unit::Kib if value.abs() >= 1024.0 => format!("{:.1} MiB", value / 1024.0),
        Unit::Kib => format!("{value:.0} KiB"),
        Unit::Count => format!("{value:.1}").trim_end_matches(".0").to_string(),
    }
}

/// After's score against before's: in percent where before's is not zero.
fn change(row: &Compared) -> String {
    let (Some(before), Some(after)) = (row.before, row.after) else { return "–".into() };
    let difference = after.score - before.score;
    if before.score > 0.0 {
        format!("{:+.1} %", difference / before.score * 100.0)
    } else {
        format!("{}{}", if difference >= 0.0 { "+" } else { "" }, format_value(difference, row.unit))
    }
}

/// The tolerance, in percent of before's score where that is positive.
fn noise(row: &Compared) -> String {
    match row.before {
        Some(before) if before.score > 0.0 => format!("±{:.1} %", row.tolerance / before.score * 100.0),
        Some(_) if row.basis == Basis::Value => format!("±{}", format_value(row.tolerance, row.unit)),
        _ => "–".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Context;

    fn row(label: &str, ours: f64, baseline: f64) -> Row {
        Row { section: "1. s".into(), label: label.into(), unit: Unit::Ms, ours, baseline, resolution: 0.0 }
    }

    fn pass(build: Build, rows: Vec<Row>) -> Pass {
        Pass { build, figures: Figures { context: Context::default(), rows } }
    }

    fn compare(passes: Vec<Pass>) -> Comparison {
        Comparison::new(("old".into(), "new".into()), passes)
    }

    #[test]
    fn verdicts_score_each_build_against_the_baseline_of_its_own_pass() {
        struct Case {
            name: &'static str,
            passes: Vec<Pass>,
            verdict: Verdict,
        }
        let cases = [
            Case {
                name: "a slower machine in after's pass is not after's fault",
                passes: vec![
                    pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
                    pass(Build::After, vec![row("p50", 96.0, 120.0)]),
                ],
                verdict: Verdict::Same,
            },
            Case {
                name: "a higher ratio with a steady baseline is worse",
                passes: vec![
                    pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
                    pass(Build::After, vec![row("p50", 90.0, 100.0)]),
                ],
                verdict: Verdict::Worse,
            },
            Case {
                name: "a change within the baseline's spread is the same",
                // 0.80 → 0.84 while runc-v2 moved from 100 to 110: ±9.5 % of 0.8 is 0.076.
                passes: vec![
                    pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
                    pass(Build::After, vec![row("p50", 92.4, 110.0)]),
                ],
                verdict: Verdict::Same,
            },
            Case {
                name: "a change beyond the baseline's spread is worse",
                // 0.80 → 0.90 with the same ±0.076.
                passes: vec![
                    pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
                    pass(Build::After, vec![row("p50", 99.0, 110.0)]),
                ],
                verdict: Verdict::Worse,
            },
            Case {
                name: "a lower ratio beyond the noise is better",
                passes: vec![
                    pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
                    pass(Build::After, vec![row("p50", 60.0, 100.0)]),
                ],
                verdict: Verdict::Better,
            },
            Case {
                name: "a build's own spread over its passes widens the noise",
                passes: vec![
                    pass(Build::Before, vec![row("p50", 70.0, 100.0)]),
                    pass(Build::After, vec![row("p50", 90.0, 100.0)]),
                    pass(Build::After, vec![row("p50", 70.0, 100.0)]),
                    pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
                ],
                // before 0.70, 0.80 (median 0.75); after 0.90, 0.70 (median 0.80); spread 0.20.
                verdict: Verdict::Same,
            },
            Case {
                name: "a zero baseline compares the values, with the baseline's range as noise",
                passes: vec![
                    pass(Build::Before, vec![row("growth", 100.0, 0.0)]),
                    pass(Build::After, vec![row("growth", 400.0, 200.0)]),
                ],
                verdict: Verdict::Worse,
            },
            Case {
                name: "a change of no more than the figure's resolution is the same",
                // One 10 ms tick of CPU more, against a baseline that stayed put.
                passes: vec![
                    pass(Build::Before, vec![Row { resolution: 10.0, ..row("cpu", 10.0, 20.0) }]),
                    pass(Build::After, vec![Row { resolution: 10.0, ..row("cpu", 20.0, 20.0) }]),
                ],
                verdict: Verdict::Same,
            },
            Case {
                name: "a row one build lacks has no verdict",
                passes: vec![
                    pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
                    pass(Build::After, vec![row("p90", 80.0, 100.0)]),
                ],
                verdict: Verdict::Missing,
            },
        ];
        for case in cases {
            let comparison = compare(case.passes);
            let first = comparison.rows.first().unwrap_or_else(|| panic!("{}: no rows", case.name));
            assert_eq!(first.verdict, case.verdict, "{}: {first:#?}", case.name);
        }
    }

    #[test]
    fn ratios_and_values_are_medians_over_a_builds_passes() {
        let comparison = compare(vec![
            pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
            pass(Build::After, vec![row("p50", 45.0, 90.0)]),
            pass(Build::After, vec![row("p50", 55.0, 110.0)]),
            pass(Build::Before, vec![row("p50", 60.0, 100.0)]),
            pass(Build::Before, vec![row("p50", 90.0, 100.0)]),
        ]);
        let row = &comparison.rows[0];
        assert_eq!(row.basis, Basis::Ratio);
        let before = row.before.expect("before");
        let after = row.after.expect("after");
        assert_eq!((before.passes, before.ours, before.ratio), (3, 80.0, Some(0.8)));
        assert_eq!((after.passes, after.ours, after.ratio), (2, 50.0, Some(0.5)));
        // runc-v2 ranged over 90–110 around 100: 20 % of before's 0.8; before's own spread 0.3.
        assert!((row.tolerance - 0.3).abs() < 1e-9, "{row:#?}");
        assert_eq!(row.verdict, Verdict::Same);
    }

    #[test]
    fn rows_match_by_section_and_label_in_report_order() {
        let other_section = Row { section: "2. t".into(), ..row("p50", 1.0, 1.0) };
        let comparison = compare(vec![
            pass(Build::After, vec![row("p90", 1.0, 1.0), row("p50", 1.0, 1.0), other_section.clone()]),
            pass(Build::Before, vec![row("p50", 1.0, 1.0), other_section, row("min", 1.0, 1.0)]),
        ]);
        let keys: Vec<(&str, &str, Verdict)> =
            comparison.rows.iter().map(|row| (row.section.as_str(), row.label.as_str(), row.verdict)).collect();
        assert_eq!(
            keys,
            [
                ("1. s", "p50", Verdict::Same),
                ("2. t", "p50", Verdict::Same),
                ("1. s", "min", Verdict::Missing),
                ("1. s", "p90", Verdict::Missing),
            ]
        );
    }

    #[test]
    fn markdown_shows_both_builds_ratios_and_the_worse_rows() {
        let comparison = compare(vec![
            pass(Build::Before, vec![row("p50", 80.0, 100.0)]),
            pass(Build::After, vec![row("p50", 90.0, 100.0)]),
        ]);
        let markdown = comparison.to_markdown();
        for expected in [
            "| before | old |",
            "1 rows: 1 worse beyond noise, 0 better",
            "- **worse**: 1. s / p50",
            "### 1. s",
            "| p50 | 80.0 ms | 0.800 | 90.0 ms | 0.900 | +12.5 % | ±0.0 % | **worse** |",
        ] {
            assert!(markdown.contains(expected), "missing {expected:?} in\n{markdown}");
        }
    }
}
