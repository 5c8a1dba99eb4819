//! Giving freed heap back to the system once a burst of work is over. glibc keeps memory a
//! program frees for reuse and returns only what sits at the top of the heap, so the daemon would
//! hold the high-water mark of its busiest moment for good: the bench saw a 100-task round's
//! heap stay through later, smaller rounds (the Create bound in `manager` keeps that mark low).
//! When the daemon has had no Create, Exec or Delete for [`QUIET`], `malloc_trim` returns every
//! free page, wherever it is in the heap: one trim per burst.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// How long the daemon must have been without heap-heavy work before its heap is trimmed.
const QUIET: Duration = Duration::from_millis(250);

/// Trims the heap after bursts of work.
#[derive(Default)]
pub struct HeapTrimmer {
    shared: Arc<Mutex<Quiet>>,
}

/// When the last heap-heavy work was, and whether a task waits for the quiet after it.
struct Quiet {
    last_work: Instant,
    waiting: bool,
}

impl Default for Quiet {
    fn default() -> Self {
        Quiet { last_work: Instant::now(), waiting: false }
    }
}

impl HeapTrimmer {
    /// Notes heap-heavy work (a Create, Exec or Delete): the heap is trimmed once [`QUIET`] has
    /// passed without more.
    pub fn note_work(&self) {
        let mut quiet = lock(&self.shared);
        quiet.last_work = Instant::now();
        if quiet.waiting {
            return;
        }
        quiet.waiting = true;
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            wait_for_quiet(&shared).await;
            // It walks the heap under the allocator's lock: not on the runtime's thread.
            let _ = tokio::task::spawn_blocking(trim_heap).await;
        });
    }
}

/// Sleeps until [`QUIET`] after the last work, moving the deadline while work keeps coming.
async fn wait_for_quiet(shared: &Mutex<Quiet>) {
    loop {
        let deadline = {
            let mut quiet = lock(shared);
            let deadline = quiet.last_work + QUIET;
            if deadline <= Instant::now() {
                quiet.waiting = false;
                return;
            }
            deadline
        };
        tokio::time::sleep_until(deadline).await;
    }
}

fn lock(shared: &Mutex<Quiet>) -> MutexGuard<'_, Quiet> {
    // Two plain fields, consistent after any panic: a poisoned lock is still good to use.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(target_env = "gnu")]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory the allocator holds; it is thread-safe.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn trim_heap() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_a_quiet_period_after_the_last_work() {
        let trimmer = HeapTrimmer::default();
        trimmer.note_work();
        let shared = Arc::clone(&trimmer.shared);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        trimmer.note_work();
        assert!(lock(&shared).waiting, "the first wait still runs");
        let waited = tokio::spawn(async move {
            while lock(&shared).waiting {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            started.elapsed()
        });
        let elapsed = waited.await.expect("the watcher runs");
        assert!(elapsed >= Duration::from_millis(200) + QUIET, "waited only {elapsed:?}");
        assert!(elapsed < Duration::from_millis(200) + QUIET * 2, "waited {elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn work_after_a_trim_starts_a_new_wait() {
        let trimmer = HeapTrimmer::default();
        trimmer.note_work();
        tokio::time::sleep(QUIET * 2).await;
        assert!(!lock(&trimmer.shared).waiting, "the first wait is over");
        trimmer.note_work();
        assert!(lock(&trimmer.shared).waiting, "new work waits again");
    }
}
