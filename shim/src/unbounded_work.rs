//! Threads of their own for work that may never return, so that it never takes one of the few
//! blocking threads of tokio's pool (see [`crate::blocking`]) that record saves, note fsyncs,
//! cgroup reads and Creates share.
//!
//! The one such work is the release of a detached root filesystem (see `daemon::cleanup`): the
//! last close of the descriptor holding it unmounts it for good, and an overlay whose layers sit
//! on a hung NFS or FUSE mount does not come back from that. Each job runs on a thread started
//! for it, up to a bound; more jobs wait in a queue for the next thread that comes free, and a
//! thread ends once the queue is empty. Nothing joins the threads: a daemon that exits leaves
//! a hung release to the kernel.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A job: a closure run once on one of the threads.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// How many releases may hang at once before further ones wait for a thread.
pub const DEFAULT_MAX_THREADS: usize = 8;

/// Runs jobs that may block for ever on threads of their own, at most `max_threads` at once.
/// Cloning gives another handle to the same threads and queue.
#[derive(Clone)]
pub struct UnboundedWork {
    shared: Arc<Shared>,
}

struct Shared {
    /// Names the threads (`<name>` in `ps -L`, at most 15 bytes).
    name: &'static str,
    max_threads: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Threads running a job or about to take the next.
    running: usize,
    /// Jobs no thread has taken yet.
    queue: VecDeque<Job>,
}

impl Default for UnboundedWork {
    fn default() -> UnboundedWork {
        UnboundedWork::new("rootfs-release", DEFAULT_MAX_THREADS)
    }
}

impl UnboundedWork {
    /// Threads named `name`, at most `max_threads` (at least one) at once.
    pub fn new(name: &'static str, max_threads: usize) -> UnboundedWork {
        let shared = Shared { name, max_threads: max_threads.max(1), state: Mutex::new(State::default()) };
        UnboundedWork { shared: Arc::new(shared) }
    }

    /// Runs `job` on a thread of its own, or queues it while `max_threads` are busy. Never
    /// blocks the caller beyond taking a lock.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        let mut state = self.shared.lock();
        state.queue.push_back(Box::new(job));
        if state.running >= self.shared.max_threads {
            return;
        }
        state.running += 1;
        drop(state);
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new().name(self.shared.name.to_string()).spawn(move || shared.work());
        if let Err(error) = started {
            // The job stays queued for the next thread; the thread limit was reached, or memory.
            tracing::warn!("starting a {} thread: {error}; the work waits for the next one", self.shared.name);
            self.shared.lock().running -= 1;
        }
    }

    /// How many threads are running or about to run a job.
    pub fn running_threads(&self) -> usize {
        self.shared.lock().running
    }
}

impl Shared {
    /// A thread's life: jobs from the queue until it is empty.
    fn work(&self) {
        loop {
            let job = {
                let mut state = self.lock();
                match state.queue.pop_front() {
                    Some(job) => job,
                    None => {
                        state.running -= 1;
                        return;
                    }
                }
            };
            job();
        }
    }

    /// The state; a job never runs under the lock, so a poisoned one is consistent still.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_beyond_the_bound_wait_for_a_free_thread() {
        let work = UnboundedWork::new("test-unbounded", 2);
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let (done, finished) = mpsc::channel();
        for job in 0..3 {
            let released = Arc::clone(&released);
            let done = done.clone();
            work.submit(move || {
                let _ = released.lock().expect("lock").recv();
                done.send(job).expect("report");
            });
        }
        assert_eq!(work.running_threads(), 2, "the third job waits in the queue");
        for _ in 0..3 {
            release.send(()).expect("release a job");
        }
        let mut jobs: Vec<i32> =
            (0..3).map(|_| finished.recv_timeout(Duration::from_secs(10)).expect("done")).collect();
        jobs.sort();
        assert_eq!(jobs, [0, 1, 2]);
    }
}
