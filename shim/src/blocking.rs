//! Running blocking work (file I/O, `stat` walks, datagram sends) off the async workers, on the
//! few threads of tokio's blocking pool. Work that may never return (the release of a detached
//! root filesystem) does not belong here: [`crate::unbounded_work`] runs it on threads of its own.

use std::time::Duration;

use crate::error::Error;

/// How many blocking threads the daemon's runtime has. The daemon's blocking work is short file
/// I/O; two threads keep a burst of it going without a thread (and its memory) per request.
pub const DAEMON_BLOCKING_THREADS: usize = 2;

/// How long an idle blocking thread of the daemon lives, so a burst's threads do not keep their
/// memory.
const DAEMON_BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The daemon's runtime: one thread runs the event loop, as systemd runs its own (the work is
/// I/O-bound: a Create spends under 3 ms of the daemon's CPU, and each worker thread costs a
/// stack, scheduler state and a malloc cache); blocking work gets [`DAEMON_BLOCKING_THREADS`].
pub fn daemon_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(DAEMON_BLOCKING_THREADS)
        .thread_keep_alive(DAEMON_BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
}

/// Runs `work` on tokio's blocking pool. A panic or cancellation of the blocking task becomes an
/// [`Error::Io`] saying what was being done (`context`); `work`'s own result is returned as is.
pub async fn blocking<T, F>(context: &str, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|error| Error::io(context, std::io::Error::other(error)))
}

/// [`blocking`], but the caller waits at most `limit`: a read that hangs (a cgroup file of a
/// stuck kernel path) fails its request with [`Error::BlockingTimeout`] instead of holding it.
/// The work itself cannot be stopped and keeps its thread until it returns, so this is for
/// work whose result nobody needs once the caller gave up (reads, not record writes, whose
/// order matters).
pub async fn blocking_within<T, F>(context: &str, limit: Duration, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::time::timeout(limit, blocking(context, work))
        .await
        .map_err(|_| Error::BlockingTimeout { context: context.to_string(), limit })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_hangs_fails_at_its_limit() {
        let (unblock, blocked) = std::sync::mpsc::channel::<()>();
        let error = blocking_within("reading cgroup metrics", Duration::from_millis(100), move || blocked.recv())
            .await
            .expect_err("the read hangs");
        assert!(
            matches!(&error, Error::BlockingTimeout { context, limit } if context == "reading cgroup metrics"
                && *limit == Duration::from_millis(100)),
            "{error}"
        );
        assert_eq!(error.code(), ttrpc::Code::DEADLINE_EXCEEDED);
        drop(unblock);
        assert_eq!(blocking_within("reading", Duration::from_secs(10), || 7).await.expect("done"), 7);
    }
}
