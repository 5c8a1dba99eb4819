//! Summaries of timing samples: min, nearest-rank percentiles and max, as the report prints them.

use std::time::Duration;

/// A set of timing samples, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The smallest sample.
    pub min: Duration,
    /// The median (nearest rank).
    pub p50: Duration,
    /// The 90th percentile (nearest rank).
    pub p90: Duration,
    /// The largest sample.
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Summary {
            count: sorted.len(),
            min: *sorted.first()?,
            p50: nearest_rank(&sorted, 50),
            p90: nearest_rank(&sorted, 90),
            max: *sorted.last()?,
        })
    }
}

/// The `percent`th percentile of non-empty `sorted` by the nearest-rank method: the smallest
/// sample with at least `percent`% of the samples at or below it. No interpolation, so every
/// figure reported is a time that was measured.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// `ours / baseline`, if the baseline is not zero.
pub fn ratio(ours: f64, baseline: f64) -> Option<f64> {
    (baseline != 0.0).then(|| ours / baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&value| Duration::from_millis(value)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank_samples_whatever_the_input_order() {
        struct Case {
            name: &'static str,
            samples: Vec<Duration>,
            min: u64,
            p50: u64,
            p90: u64,
            max: u64,
        }
        let cases = [
            Case { name: "one sample", samples: ms(&[7]), min: 7, p50: 7, p90: 7, max: 7 },
            Case { name: "two samples", samples: ms(&[9, 3]), min: 3, p50: 3, p90: 9, max: 9 },
            Case {
                name: "ten samples",
                samples: ms(&[10, 1, 9, 2, 8, 3, 7, 4, 6, 5]),
                min: 1,
                p50: 5,
                p90: 9,
                max: 10,
            },
            Case {
                name: "eleven samples",
                samples: ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
                min: 1,
                p50: 6,
                p90: 10,
                max: 11,
            },
        ];
        for case in cases {
            let summary = Summary::of(&case.samples).unwrap_or_else(|| panic!("{}: no summary", case.name));
            assert_eq!(summary.count, case.samples.len(), "{}", case.name);
            assert_eq!(
                (summary.min, summary.p50, summary.p90, summary.max),
                (
                    Duration::from_millis(case.min),
                    Duration::from_millis(case.p50),
                    Duration::from_millis(case.p90),
                    Duration::from_millis(case.max)
                ),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn no_samples_give_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn ratio_against_a_zero_baseline_is_undefined() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, 4.0), Some(0.25));
    }
}
