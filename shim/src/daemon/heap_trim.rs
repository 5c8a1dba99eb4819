//! Giving freed heap back to the system once tasks are gone. glibc keeps memory a program frees
//! for reuse and returns only what sits at the top of the heap, so after a burst of tasks the
//! daemon would hold its high-water mark for good (the bench saw the heap of a 100-task round
//! stay through later, smaller rounds). A second after a Delete, `malloc_trim` returns every
//! free page, wherever it is in the heap; the deletes of that second share the one trim.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long after a Delete the heap is trimmed: one trim per burst of deletes, not one each.
const TRIM_DELAY: Duration = Duration::from_secs(1);

/// Schedules heap trims.
#[derive(Default)]
pub struct HeapTrimmer {
    scheduled: Arc<AtomicBool>,
}

impl HeapTrimmer {
    /// Trims the heap [`TRIM_DELAY`] from now, unless a trim is already scheduled.
    pub fn trim_soon(&self) {
        if self.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let scheduled = Arc::clone(&self.scheduled);
        tokio::spawn(async move {
            tokio::time::sleep(TRIM_DELAY).await;
            scheduled.store(false, Ordering::SeqCst);
            // It walks the heap under the allocator's lock: not on a runtime worker.
            let _ = tokio::task::spawn_blocking(trim_heap).await;
        });
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
