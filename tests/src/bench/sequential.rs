//! Item 1: `ctr run --rm IMAGE ID true`, one after another, timed from outside as a user sees
//! it (ctr's own process start, image lookup, snapshot, task create/start/wait/delete, container
//! removal). The runtimes take turns run by run (who goes first alternating), so a change in the machine's load while the
//! benchmark runs falls on both alike.

use std::time::{Duration, Instant};

use super::target::Target;
use super::{Error, Runtime};
use crate::{unique_id, IMAGE};

/// Times one `ctr run --rm … true` with `runtime`. The command runs through `nsenter` and
/// `timeout` (see [`crate::Sandbox::command`]), which adds the same few milliseconds to both
/// runtimes.
pub fn time_ctr_run(target: &Target, runtime: &Runtime) -> Result<Duration, Error> {
    let id = unique_id("bench-seq");
    let started = Instant::now();
    target.ctr(&["run", "--rm", "--runtime", &runtime.name, IMAGE, &id, "true"])?;
    Ok(started.elapsed())
}

/// `warmup` untimed then `count` timed runs of each runtime, taking turns; returns the timings
/// per runtime, in the order of `runtimes`.
pub fn interleaved(
    target: &Target,
    runtimes: &[Runtime],
    warmup: usize,
    count: usize,
) -> Result<Vec<Vec<Duration>>, Error> {
    let mut timings = vec![Vec::with_capacity(count); runtimes.len()];
    for round in 0..warmup + count {
        // Who goes first alternates too: a run right after the other runtime's may find caches
        // warm or cold.
        let mut order: Vec<usize> = (0..runtimes.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let took = time_ctr_run(target, &runtimes[index])?;
            if round >= warmup {
                timings[index].push(took);
            }
        }
    }
    Ok(timings)
}

/// `count` runs of `runtime` in a row.
pub fn in_a_row(target: &Target, runtime: &Runtime, count: usize) -> Result<Vec<Duration>, Error> {
    (0..count).map(|_| time_ctr_run(target, runtime)).collect()
}
