//! Real-time priority for the threads that take the exit-latency timestamps. On a busy machine a
//! normal thread woken by an exit or an event may wait milliseconds for a CPU, which would be
//! read as latency. A `SCHED_FIFO` thread runs as soon as it is woken; these threads sleep
//! almost all the time, so they take nothing from the runtimes being measured.

/// The lowest real-time priority: above every normal thread, below the kernel's own.
const PRIORITY: i32 = 1;

/// Makes the calling thread `SCHED_FIFO`; says whether that worked (it needs root or
/// `CAP_SYS_NICE`).
pub fn raise_current_thread() -> bool {
    let param = nix::libc::sched_param { sched_priority: PRIORITY };
    // SAFETY: sched_setscheduler reads `param` during the call only; pid 0 is the calling thread.
    unsafe { nix::libc::sched_setscheduler(0, nix::libc::SCHED_FIFO, &param) == 0 }
}
