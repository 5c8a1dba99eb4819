//! Giving freed heap back to the system once a burst of work is over. glibc keeps memory a
//! program frees for reuse and returns only what sits at the top of the heap, so the daemon would
//! hold the high-water mark of its busiest moment for good: 50 Creates at once hold 50 request
//! futures, parsed specs and D-Bus messages together, 2.5 MB at the peak against 1.1 MB live
//! once they are done (heaptrack), and the bench saw a 100-task round's heap stay through later,
//! smaller rounds. When the daemon has had no Create, Exec or Delete for [`QUIET`],
//! `malloc_trim` returns every free page, wherever it is in the heap: one trim per burst.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// How long the daemon must have been without heap-heavy work before its heap is trimmed.
const QUIET: Duration = Duration::from_millis(250);

/// Trims the heap after bursts of work.
pub struct HeapTrimmer {
    shared: Arc<Shared>,
}

struct Shared {
    /// When the trimmer was made: activity instants are kept as milliseconds since then.
    origin: Instant,
    /// Milliseconds after `origin` of the last heap-heavy request.
    last_work_ms: AtomicU64,
    /// Whether a task is waiting for the quiet period to trim.
    waiting: AtomicBool,
}

impl Default for HeapTrimmer {
    fn default() -> Self {
        let shared =
            Shared { origin: Instant::now(), last_work_ms: AtomicU64::new(0), waiting: AtomicBool::new(false) };
        HeapTrimmer { shared: Arc::new(shared) }
    }
}

impl HeapTrimmer {
    /// Notes heap-heavy work (a Create, Exec or Delete): the heap is trimmed once [`QUIET`] has
    /// passed without more.
    pub fn note_work(&self) {
        self.shared.last_work_ms.store(self.shared.elapsed_ms(), Ordering::SeqCst);
        if self.shared.waiting.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            shared.wait_for_quiet().await;
            // It walks the heap under the allocator's lock: not on the runtime's thread.
            let _ = tokio::task::spawn_blocking(trim_heap).await;
        });
    }
}

impl Shared {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Sleeps until [`QUIET`] after the last work, moving the deadline while work keeps coming.
    async fn wait_for_quiet(&self) {
        loop {
            let last = self.last_work_ms.load(Ordering::SeqCst);
            tokio::time::sleep_until(self.origin + Duration::from_millis(last) + QUIET).await;
            if self.last_work_ms.load(Ordering::SeqCst) != last {
                continue;
            }
            self.waiting.store(false, Ordering::SeqCst);
            // Work noted just before the store saw the flag set and left its trim to this wait,
            // which then goes on, unless work noted since has started a wait of its own.
            if self.last_work_ms.load(Ordering::SeqCst) == last || self.waiting.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }
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
        assert!(shared.waiting.load(Ordering::SeqCst), "the first wait still runs");
        let waited = tokio::spawn(async move {
            while shared.waiting.load(Ordering::SeqCst) {
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
        assert!(!trimmer.shared.waiting.load(Ordering::SeqCst), "the first wait is over");
        trimmer.note_work();
        assert!(trimmer.shared.waiting.load(Ordering::SeqCst), "new work waits again");
    }
}
