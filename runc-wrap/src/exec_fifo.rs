//! Starting a created container the way `runc start` does, without running runc.
//!
//! After `runc create`, runc's init waits to open `<state dir>/exec.fifo` for writing. A reader
//! releases it: init writes one byte and execs the container's process. The reader then
//! removes the fifo, which is how runc tells a running container from a created one. `runc
//! start` is exactly that plus its own process start-up (about 8 ms of a Go binary, on the
//! critical path of every `ctr run`). crun keeps the same fifo. Where there is no fifo (another
//! runtime), the caller runs `<runtime> start`.

use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::Error;

/// The fifo's name in a container's runc state directory.
pub const EXEC_FIFO: &str = "exec.fifo";

/// How the release went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// init was released and the fifo removed: the container runs.
    Started,
    /// There is no exec fifo: the runtime works otherwise; run its `start`.
    NoFifo,
}

/// Why releasing a created container through its exec fifo failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseFailure {
    /// init could not be pinned (by pidfd) before the fifo was opened.
    #[error("watching init {pid}: {source}")]
    PinInit {
        /// init's pid.
        pid: u32,
        /// Why.
        #[source]
        source: pty::Error,
    },
    /// The fifo or init's pidfd could not be opened or registered with the runtime.
    #[error("{what}: {source}")]
    Watch {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading init's byte failed.
    #[error("reading the fifo: {source}")]
    Read {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// init died before it opened the fifo.
    #[error("init {pid} exited before it was released")]
    InitExited {
        /// init's pid.
        pid: u32,
    },
    /// init did not open the fifo in time.
    #[error("init {pid} did not open the fifo within {timeout:?}")]
    Timeout {
        /// init's pid.
        pid: u32,
        /// How long we waited.
        timeout: Duration,
    },
    /// init closed the fifo without writing: someone else started the container.
    #[error("init closed the fifo without a byte: the container was already started")]
    NoByte,
    /// The fifo could not be removed after the release (runc would take the container for
    /// created still).
    #[error("removing it after the release: {source}")]
    Remove {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Releases the init (pid `init_pid`) of created container `id` whose runc state directory is
/// `state_dir`, waiting at most `timeout`. Fails if init dies first, or closes the fifo without
/// a byte (a container started by someone else).
pub async fn release(state_dir: &Path, id: &str, init_pid: u32, timeout: Duration) -> Result<Released, Error> {
    let fifo = state_dir.join(EXEC_FIFO);
    let failed = |failure| Error::ExecFifo { id: id.to_string(), fifo: fifo.clone(), failure };
    let watching = |what| move |source| failed(ReleaseFailure::Watch { what, source });
    // Pinned first: once the fifo is open, init may run its process, exit and be reaped at once.
    let init = pty::pidfd_open(init_pid).map_err(|source| failed(ReleaseFailure::PinInit { pid: init_pid, source }))?;
    let Some(reader) = open_reader(&fifo).map_err(watching("opening the fifo"))? else {
        return Ok(Released::NoFifo);
    };
    let reader = watch(reader).map_err(watching("watching the fifo"))?;
    let init = watch(init).map_err(watching("watching init"))?;
    let outcome = tokio::time::timeout(timeout, async {
        tokio::select! {
            biased;
            byte = first_byte(&reader) => byte,
            _ = init.readable() => Err(ReleaseFailure::InitExited { pid: init_pid }),
        }
    })
    .await
    .unwrap_or(Err(ReleaseFailure::Timeout { pid: init_pid, timeout }));
    outcome.map_err(failed)?;
    match std::fs::remove_file(&fifo) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(failed(ReleaseFailure::Remove { source })),
        _ => Ok(Released::Started),
    }
}

/// `fd` registered with tokio for readability.
fn watch(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which alone owns it from then on: it stays
    // open, and the same descriptor, until the `AsyncFd` is dropped.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|error| error.into_parts().1)
}

/// The fifo opened for reading without waiting for a writer; `None` if there is none.
fn open_reader(fifo: &Path) -> std::io::Result<Option<OwnedFd>> {
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(fifo) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if !file.metadata()?.file_type().is_fifo() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a fifo"));
    }
    Ok(Some(OwnedFd::from(file)))
}

/// Waits for init's byte. A fifo opened for reading polls hung up only after a writer came and
/// went, so until init opens it this simply waits.
async fn first_byte(reader: &AsyncFd<OwnedFd>) -> Result<(), ReleaseFailure> {
    loop {
        let mut guard = reader.readable().await.map_err(|source| ReleaseFailure::Read { source })?;
        let mut byte = [0u8; 1];
        match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), &mut byte).map_err(std::io::Error::from)) {
            Ok(Ok(1..)) => return Ok(()),
            Ok(Ok(_)) => return Err(ReleaseFailure::NoByte),
            Ok(Err(source)) => return Err(ReleaseFailure::Read { source }),
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;
    use crate::test_support::ScratchDir;

    fn state_dir(name: &str) -> ScratchDir {
        crate::test_support::scratch_dir("exec-fifo", name)
    }

    fn make_fifo(dir: &Path) -> PathBuf {
        let fifo = dir.join(EXEC_FIFO);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        fifo
    }

    /// Plays runc init: waits for a reader, writes a byte, then lingers like the exec'd process.
    fn init_writing(fifo: PathBuf, byte: bool) -> std::process::Child {
        let script = if byte { "printf 0 > \"$0\"; sleep 2" } else { ": > \"$0\"; sleep 2" };
        std::process::Command::new("sh").args(["-c", script]).arg(fifo).spawn().unwrap()
    }

    #[tokio::test]
    async fn a_waiting_init_is_released_and_the_fifo_removed() {
        let dir = state_dir("release");
        let fifo = make_fifo(&dir);
        let mut init = init_writing(fifo.clone(), true);
        let released = release(&dir, "c1", init.id(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(released, Released::Started);
        assert!(!fifo.exists(), "the fifo marks a created container; it must go");
        let _ = init.kill();
        let _ = init.wait();
    }

    #[tokio::test]
    async fn an_init_whose_process_exits_at_once_is_still_released() {
        let dir = state_dir("quick");
        let fifo = make_fifo(&dir);
        let mut init = std::process::Command::new("sh").args(["-c", "printf 0 > \"$0\""]).arg(&fifo).spawn().unwrap();
        let pid = init.id();
        let reaper = std::thread::spawn(move || init.wait());
        assert_eq!(release(&dir, "c5", pid, Duration::from_secs(5)).await.unwrap(), Released::Started);
        let _ = reaper.join();
    }

    #[tokio::test]
    async fn without_a_fifo_the_runtime_must_start_it_itself() {
        let dir = state_dir("nofifo");
        assert_eq!(release(&dir, "c2", std::process::id(), Duration::from_secs(1)).await.unwrap(), Released::NoFifo);
    }

    #[tokio::test]
    async fn an_init_that_died_is_reported_not_waited_for() {
        let dir = state_dir("dead");
        make_fifo(&dir);
        let mut init = std::process::Command::new("true").spawn().unwrap();
        let pid = init.id();
        // Not reaped yet: a zombie's pidfd polls readable, as a dead init's does.
        std::thread::sleep(Duration::from_millis(100));
        let error = release(&dir, "c3", pid, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(&error, Error::ExecFifo { id, failure: ReleaseFailure::InitExited { pid: dead }, .. }
                if id == "c3" && *dead == pid),
            "{error:?}"
        );
        let _ = init.wait();
    }

    #[tokio::test]
    async fn a_fifo_closed_without_a_byte_is_an_error() {
        let dir = state_dir("empty");
        let fifo = make_fifo(&dir);
        let mut init = init_writing(fifo, false);
        let error = release(&dir, "c4", init.id(), Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(&error, Error::ExecFifo { failure: ReleaseFailure::NoByte, .. }), "{error:?}");
        let _ = init.kill();
        let _ = init.wait();
    }

    #[test]
    fn a_regular_file_is_refused() {
        let dir = state_dir("regular");
        std::fs::File::create(dir.join(EXEC_FIFO)).unwrap().write_all(b"0").unwrap();
        assert!(open_reader(&dir.join(EXEC_FIFO)).is_err());
    }
}
