//! Opens the container's stdio as containerd's fifos (or files) and hands them to runc as its
//! own stdio, so the container writes straight into containerd's fifos: no copying process in
//! between, and nothing breaks when the daemon restarts.
//!
//! Opening a fifo blocks until its other end is open, so:
//! - stdin is opened `O_NONBLOCK` (which never waits for a writer) and switched back to blocking
//!   for the container. A client whose own stdin is already at EOF (a CI job, `</dev/null`)
//!   closes its end before we ever open ours; waiting for it would hang forever. The container
//!   reads what a writer sends and sees EOF once no writer is left.
//! - stdout and stderr wait for containerd's reader, which is open before Create in practice:
//!   a non-blocking open finds it at once. Only when it is not there yet does the open wait, on
//!   a thread with a deadline, so a client that went away fails the unit instead of hanging
//!   it. (Starting that thread costs up to 2 ms when it must wake an idle CPU, which is why it
//!   is not the first try.)

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use nix::unistd::{Gid, Uid};

use crate::helper::logger::{is_logger_uri, start_logger, LoggedContainer, LoggerCommand};
use crate::protocol::{StdioOptions, StdioPaths};
use crate::Error;

/// The three descriptors runc gets as fds 0, 1 and 2.
pub struct OpenedStdio {
    /// Container stdin.
    pub stdin: OwnedFd,
    /// Container stdout.
    pub stdout: OwnedFd,
    /// Container stderr.
    pub stderr: OwnedFd,
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

/// Opens stdio as `options` say: stdout and stderr from this process's own (the unit's journal)
/// in journal mode, and owned by `options.owner` when one is set. A `binary://` stdout starts
/// its logger for `container` (see [`crate::helper::logger`]).
pub fn prepare_stdio(
    paths: &StdioPaths,
    options: StdioOptions,
    timeout: Duration,
    container: LoggedContainer<'_>,
) -> Result<OpenedStdio, Error> {
    let stdio = if options.output_to_journal {
        let journal_only = StdioPaths { stdin: paths.stdin.clone(), stdout: None, stderr: None };
        let opened = open_stdio(&journal_only, timeout, container)?;
        let own = |fd: BorrowedFd<'_>, name: &str| {
            fd.try_clone_to_owned().map_err(|source| open_error(Path::new(name), source))
        };
        OpenedStdio {
            stdin: opened.stdin,
            stdout: own(std::io::stdout().as_fd(), "the journal (stdout)")?,
            stderr: own(std::io::stderr().as_fd(), "the journal (stderr)")?,
        }
    } else {
        open_stdio(paths, timeout, container)?
    };
    if let Some((uid, gid)) = options.owner {
        let mut owned = vec![(&paths.stdin, &stdio.stdin)];
        let logger = paths.stdout.as_deref().is_some_and(is_logger_uri);
        if !options.output_to_journal && !logger {
            owned.extend([(&paths.stdout, &stdio.stdout), (&paths.stderr, &stdio.stderr)]);
        }
        for (path, fd) in owned {
            let Some(path) = path else { continue };
            nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|errno| open_error(path, errno.into()))?;
        }
    }
    Ok(stdio)
}

/// Opens all three, `/dev/null` where containerd gave no path; stdout and stderr from a
/// logger started for `container` where containerd gave a `binary://` URI (it gives the same
/// one for both).
pub fn open_stdio(paths: &StdioPaths, timeout: Duration, container: LoggedContainer<'_>) -> Result<OpenedStdio, Error> {
    let stdin = open_end(paths.stdin.as_deref(), Direction::Read, timeout)?;
    if let Some(uri) = paths.stdout.as_deref().filter(|path| is_logger_uri(path)) {
        let logger = LoggerCommand::parse(&uri.to_string_lossy())?;
        let pipes = start_logger(&logger, container, timeout)?;
        return Ok(OpenedStdio { stdin, stdout: pipes.stdout, stderr: pipes.stderr });
    }
    let stdout = open_end(paths.stdout.as_deref(), Direction::Write, timeout)?;
    let stderr = match (&paths.stdout, &paths.stderr) {
        (Some(out), Some(err)) if out == err => stdout.try_clone().map_err(|source| open_error(err, source))?,
        _ => open_end(paths.stderr.as_deref(), Direction::Write, timeout)?,
    };
    Ok(OpenedStdio { stdin, stdout, stderr })
}

fn open_end(path: Option<&Path>, direction: Direction, timeout: Duration) -> Result<OwnedFd, Error> {
    if let (Direction::Read, Some(path)) = (direction, path) {
        return open_stdin(path);
    }
    let (path, is_log_file) = match path {
        None => (PathBuf::from("/dev/null"), false),
        Some(path) => match strip_file_scheme(path) {
            Some(file) => (file, true),
            None => (path.to_path_buf(), false),
        },
    };
    match open_without_waiting(end_options(direction, is_log_file), &path) {
        Ok(fd) => return Ok(fd),
        // A fifo nobody reads yet: wait for its reader below.
        Err(error) if error.raw_os_error() == Some(nix::libc::ENXIO) => {}
        Err(source) => return Err(open_error(&path, source)),
    }
    let (sender, receiver) = mpsc::channel();
    let thread_path = path.clone();
    std::thread::spawn(move || {
        let opened = end_options(direction, is_log_file)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(&thread_path)
            .map(OwnedFd::from);
        let _ = sender.send(opened);
    });
    match receiver.recv_timeout(timeout) {
        Ok(Ok(fd)) => Ok(fd),
        Ok(Err(source)) => Err(open_error(&path, source)),
        Err(_) => Err(Error::FifoTimeout { path, timeout }),
    }
}

/// How an end is opened, but for the flags that say whether the open may wait.
fn end_options(direction: Direction, is_log_file: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    match direction {
        Direction::Read => options.read(true),
        // A `file://` log is created if needed and appended to. A fifo is never created
        // here: a missing fifo is an error, not a reason to write to a regular file.
        Direction::Write => options.write(true).append(true).create(is_log_file).mode(0o640),
    };
    options
}

/// Opens stdin without waiting for a writer, then makes reads block again.
fn open_stdin(path: &Path) -> Result<OwnedFd, Error> {
    open_without_waiting(end_options(Direction::Read, false), path).map_err(|source| open_error(path, source))
}

/// Opens `path` with `options` without waiting for a fifo's other end (`O_NONBLOCK`), then
/// clears `O_NONBLOCK`: the container's reads and writes block.
fn open_without_waiting(mut options: OpenOptions, path: &Path) -> std::io::Result<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fd = OwnedFd::from(options.custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK).open(path)?);
    let flags = fcntl(&fd, FcntlArg::F_GETFL)?;
    let blocking = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(&fd, FcntlArg::F_SETFL(blocking))?;
    Ok(fd)
}

/// containerd passes `file:///path` for file logging; plain paths are fifos.
fn strip_file_scheme(path: &Path) -> Option<PathBuf> {
    path.to_str().and_then(|text| text.strip_prefix("file://")).map(PathBuf::from)
}

fn open_error(path: &Path, source: std::io::Error) -> Error {
    Error::OpenStdio { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ScratchDir;

    const TEST_CONTAINER: LoggedContainer<'static> = LoggedContainer { id: "c1", namespace: "default" };
    use nix::sys::stat::Mode;
    use nix::unistd::mkfifo;
    use std::io::{Read, Write};

    fn scratch(name: &str) -> ScratchDir {
        crate::test_support::scratch_dir("runc-wrap-stdio", name)
    }

    #[test]
    fn missing_paths_become_dev_null() {
        let stdio = open_stdio(&StdioPaths::default(), Duration::from_secs(1), TEST_CONTAINER).unwrap();
        let mut stdin = std::fs::File::from(stdio.stdin);
        let mut buffer = [0u8; 1];
        assert_eq!(stdin.read(&mut buffer).unwrap(), 0);
    }

    #[test]
    fn missing_fifo_is_an_error_not_a_new_file() {
        let dir = scratch("missing");
        let paths = StdioPaths { stdout: Some(dir.join("gone")), ..Default::default() };
        assert!(matches!(open_stdio(&paths, Duration::from_secs(1), TEST_CONTAINER), Err(Error::OpenStdio { .. })));
        assert!(!dir.join("gone").exists());
    }

    #[test]
    fn stdin_fifo_opens_without_a_writer_and_carries_later_input() {
        let dir = scratch("stdin");
        let fifo = dir.join("stdin");
        mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let paths = StdioPaths { stdin: Some(fifo.clone()), ..Default::default() };
        let stdio = open_stdio(&paths, Duration::from_millis(100), TEST_CONTAINER).unwrap();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || std::fs::write(writer_path, b"abc").unwrap());
        writer.join().unwrap();
        let mut input = String::new();
        std::fs::File::from(stdio.stdin).read_to_string(&mut input).unwrap();
        assert_eq!(input, "abc", "data written after the open arrives, then EOF");
    }

    #[test]
    fn fifo_without_reader_times_out_naming_the_fifo() {
        let dir = scratch("timeout");
        let fifo = dir.join("stdout");
        mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let paths = StdioPaths { stdout: Some(fifo.clone()), ..Default::default() };
        let error = open_stdio(&paths, Duration::from_millis(100), TEST_CONTAINER).err().expect("must time out");
        assert!(matches!(&error, Error::FifoTimeout { path, .. } if path == &fifo), "{error}");
    }

    #[test]
    fn fifo_with_reader_carries_output() {
        let dir = scratch("reader");
        let fifo = dir.join("stdout");
        mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::read_to_string(reader_path).unwrap());
        let paths = StdioPaths { stdout: Some(fifo.clone()), stderr: Some(fifo), ..Default::default() };
        let stdio = open_stdio(&paths, Duration::from_secs(5), TEST_CONTAINER).unwrap();
        std::fs::File::from(stdio.stdout).write_all(b"out ").unwrap();
        std::fs::File::from(stdio.stderr).write_all(b"err").unwrap();
        drop(stdio.stdin);
        assert_eq!(reader.join().unwrap(), "out err");
    }

    #[test]
    fn ends_opened_without_waiting_are_handed_over_blocking() {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let dir = scratch("blocking");
        let (stdin, stdout) = (dir.join("stdin"), dir.join("stdout"));
        for fifo in [&stdin, &stdout] {
            mkfifo(fifo, Mode::from_bits_truncate(0o600)).unwrap();
        }
        let _reader = OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(&stdout).unwrap();
        let paths = StdioPaths { stdin: Some(stdin), stdout: Some(stdout), stderr: None };
        let stdio = open_stdio(&paths, Duration::from_millis(100), TEST_CONTAINER).unwrap();
        for fd in [&stdio.stdin, &stdio.stdout, &stdio.stderr] {
            let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).unwrap());
            assert!(!flags.contains(OFlag::O_NONBLOCK), "{flags:?}");
        }
    }

    #[test]
    fn owner_option_chowns_the_stdio_files() {
        let dir = scratch("owner");
        let log = dir.join("log");
        let paths = StdioPaths { stdout: Some(format!("file://{}", log.display()).into()), ..Default::default() };
        let options = StdioOptions { owner: Some((1234, 4321)), output_to_journal: false };
        drop(prepare_stdio(&paths, options, Duration::from_secs(1), TEST_CONTAINER).unwrap());
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&log).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 4321));
    }

    #[test]
    fn journal_mode_leaves_containerds_output_paths_alone() {
        let dir = scratch("journal");
        let log = dir.join("log");
        let paths = StdioPaths { stdout: Some(format!("file://{}", log.display()).into()), ..Default::default() };
        let options = StdioOptions { owner: None, output_to_journal: true };
        drop(prepare_stdio(&paths, options, Duration::from_secs(1), TEST_CONTAINER).unwrap());
        assert!(!log.exists(), "output goes to the helper's own stdout, not the file");
    }

    #[test]
    fn file_scheme_appends_to_a_file() {
        let dir = scratch("file");
        let log = dir.join("log");
        let fresh = dir.join("fresh");
        std::fs::write(&log, "old\n").unwrap();
        let uri = PathBuf::from(format!("file://{}", log.display()));
        let paths = StdioPaths { stdout: Some(uri), ..Default::default() };
        let stdio = open_stdio(&paths, Duration::from_secs(1), TEST_CONTAINER).unwrap();
        std::fs::File::from(stdio.stdout).write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "old\nnew\n");
        let paths = StdioPaths { stderr: Some(format!("file://{}", fresh.display()).into()), ..Default::default() };
        drop(open_stdio(&paths, Duration::from_secs(1), TEST_CONTAINER).unwrap());
        assert!(fresh.exists(), "a file:// log is created");
    }
}
