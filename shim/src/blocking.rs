//! Running blocking work (file I/O, `stat` walks, datagram sends) off the async workers.

use crate::error::Error;

/// Runs `work` on tokio's blocking pool. A panic or cancellation of the blocking task becomes an
/// [`Error::Io`] saying what was being done (`context`); `work`'s own result is returned as is.
pub async fn blocking<T, F>(context: &str, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|error| Error::io(context, std::io::Error::other(error)))
}
