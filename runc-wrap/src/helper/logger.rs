//! `binary://` logging, as containerd's runc shim does it (`NewBinaryIO`): a logger program
//! gets the container's stdout and stderr as the read ends of two pipes on its fds 3 and 4, and
//! the write end of a readiness pipe on fd 5, which it closes (or writes a byte to) once it is
//! ready; the container gets the pipes' write ends. The URI's query parameters become its
//! arguments, each name followed by its value (`binary:///bin/logger?a=1` runs
//! `/bin/logger a 1`), and its environment is only `CONTAINER_ID` and `CONTAINER_NAMESPACE`.
//!
//! The helper starts it inside the container's unit, so it lives as long as the unit, beside
//! the container and not as a child of the daemon: a daemon restart never touches it. When the
//! container's processes are gone it reads end-of-file; when Delete stops the unit, systemd
//! sends what remains SIGTERM and, after the stop timeout, SIGKILL (runc-v2 too sends SIGTERM,
//! then SIGKILL after 12 s).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Error;

/// The scheme of a logger URI.
pub const BINARY_SCHEME: &str = "binary://";

/// The logger a `binary://` URI names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerCommand {
    /// The program (the URI's path; absolute).
    pub program: PathBuf,
    /// Its arguments: each query parameter's name, then its first value.
    pub args: Vec<String>,
}

/// Whether `path` (a stdio path from containerd) is a `binary://` logger URI.
pub fn is_logger_uri(path: &Path) -> bool {
    path.to_str().is_some_and(|text| text.starts_with(BINARY_SCHEME))
}

impl LoggerCommand {
    /// Parses `binary:///path/to/logger?name=value&…` (percent-decoded like Go's
    /// `url.ParseQuery`: `%XX` and `+` for a space). The path must be absolute.
    pub fn parse(uri: &str) -> Result<LoggerCommand, Error> {
        let bad = |reason: &str| Error::LogUri { uri: uri.to_string(), reason: reason.to_string() };
        let rest = uri.strip_prefix(BINARY_SCHEME).ok_or_else(|| bad("it is not a binary:// URI"))?;
        let rest = rest.split_once('#').map_or(rest, |(before, _fragment)| before);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let program = percent_decode(path, false).ok_or_else(|| bad("its path has a bad %-escape"))?;
        if !program.starts_with('/') || program.len() < 2 {
            return Err(bad("its path is not absolute (binary:///path/to/logger)"));
        }
        let mut args = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            args.push(percent_decode(name, true).ok_or_else(|| bad("a query parameter has a bad %-escape"))?);
            args.push(percent_decode(value, true).ok_or_else(|| bad("a query parameter has a bad %-escape"))?);
        }
        Ok(LoggerCommand { program: PathBuf::from(program), args })
    }
}

/// `%XX` escapes, and in a query `+` for a space; `None` for a malformed escape or a result that
/// is not UTF-8.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'%' => {
                let high = (input.next()? as char).to_digit(16)?;
                let low = (input.next()? as char).to_digit(16)?;
                bytes.push(u8::try_from(high * 16 + low).ok()?);
            }
            b'+' if plus_is_space => bytes.push(b' '),
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

/// Who the logger logs for: its `CONTAINER_ID` and `CONTAINER_NAMESPACE`.
#[derive(Debug, Clone, Copy)]
pub struct LoggedContainer<'a> {
    /// The container id.
    pub id: &'a str,
    /// Its containerd namespace.
    pub namespace: &'a str,
}

/// The write ends the container gets as its stdout and stderr.
pub struct LoggerPipes {
    /// Container stdout.
    pub stdout: OwnedFd,
    /// Container stderr.
    pub stderr: OwnedFd,
}

/// Starts the logger and waits (at most `timeout`) until it says it is ready.
pub fn start_logger(
    logger: &LoggerCommand,
    container: LoggedContainer<'_>,
    timeout: Duration,
) -> Result<LoggerPipes, Error> {
    let spawn_error = |source: std::io::Error| Error::LoggerSpawn { program: logger.program.clone(), source };
    let (stdout_read, stdout_write) = pipe().map_err(spawn_error)?;
    let (stderr_read, stderr_write) = pipe().map_err(spawn_error)?;
    let (ready_read, ready_write) = pipe().map_err(spawn_error)?;
    let inherited = [stdout_read.as_raw_fd(), stderr_read.as_raw_fd(), ready_write.as_raw_fd()];
    let mut command = Command::new(&logger.program);
    command
        .args(&logger.args)
        .env_clear()
        .env("CONTAINER_ID", container.id)
        .env("CONTAINER_NAMESPACE", container.namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec the closure only calls dup2(2), which is async-signal-safe,
    // on fds that stay open in the parent until `spawn` returns. dup2 clears FD_CLOEXEC on the
    // copies, so exactly fds 3, 4 and 5 pass to the logger (the originals are close-on-exec).
    unsafe {
        command.pre_exec(move || {
            // Move all three above 5 first, so that placing one cannot overwrite another.
            let mut lifted = [0; 3];
            for (slot, fd) in lifted.iter_mut().zip(inherited) {
                *slot = nix::libc::fcntl(fd, nix::libc::F_DUPFD_CLOEXEC, 10);
                if *slot < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (target, fd) in (3..).zip(lifted) {
                if nix::libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn().map_err(spawn_error)?;
    // Only the logger holds these now: its exit is end-of-file on the readiness pipe.
    drop((stdout_read, stderr_read, ready_write));
    wait_until_ready(ready_read, &logger.program, timeout)?;
    Ok(LoggerPipes { stdout: stdout_write, stderr: stderr_write })
}

/// Reads the readiness pipe until a byte or end-of-file, on a thread with a deadline.
fn wait_until_ready(ready: OwnedFd, program: &Path, timeout: Duration) -> Result<(), Error> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = sender.send(File::from(ready).read(&mut byte).map(drop));
    });
    match receiver.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(Error::LoggerSpawn { program: program.to_path_buf(), source }),
        Err(_) => Err(Error::LoggerNotReady { program: program.to_path_buf(), timeout }),
    }
}

/// A pipe whose ends are close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::scratch_dir;

    #[test]
    fn the_query_becomes_name_value_arguments_decoded_like_go() {
        let logger =
            LoggerCommand::parse("binary:///usr/local/bin/nerdctl?_NERDCTL_INTERNAL_LOGGING=/var/lib/nerdctl/1935db59")
                .expect("nerdctl's URI");
        assert_eq!(logger.program, PathBuf::from("/usr/local/bin/nerdctl"));
        assert_eq!(logger.args, ["_NERDCTL_INTERNAL_LOGGING", "/var/lib/nerdctl/1935db59"]);
        let decoded = LoggerCommand::parse("binary:///opt/my%20logger?a=1+2&flag&b=%2Fx%3Dy").expect("escapes");
        assert_eq!(decoded.program, PathBuf::from("/opt/my logger"));
        assert_eq!(decoded.args, ["a", "1 2", "flag", "", "b", "/x=y"]);
        assert!(LoggerCommand::parse("binary:///bin/logger").expect("no query").args.is_empty());
    }

    #[test]
    fn bad_logger_uris_are_refused_naming_what_is_wrong() {
        for (uri, expected) in [
            ("binary://relative/logger", "not absolute"),
            ("binary://", "not absolute"),
            ("binary:///bin/x?a=%zz", "%-escape"),
            ("file:///bin/x", "not a binary:// URI"),
        ] {
            let error = LoggerCommand::parse(uri).expect_err(uri);
            assert!(matches!(&error, Error::LogUri { uri: named, .. } if named == uri), "{uri}: {error:?}");
            // What is wrong is said in words only, and those words are what containerd shows for
            // a bad stdout or stderr URI (bad_input checks "not absolute").
            assert!(error.to_string().contains(expected), "{uri}: {error}");
        }
    }

    #[test]
    fn the_logger_gets_both_streams_and_its_environment_and_is_waited_for() {
        let dir = scratch_dir("logger", "streams");
        let script = dir.join("logger.sh");
        let out = dir.join("out");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$CONTAINER_NAMESPACE/$CONTAINER_ID $* $(env | wc -l)\" > {out}.env\n\
                 exec 5>&-\n/bin/cat <&3 > {out}.1 & /bin/cat <&4 > {out}.2 & wait\n",
                out = out.display()
            ),
        )
        .expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let uri = format!("binary://{}?k=v", script.display());
        let logger = LoggerCommand::parse(&uri).expect("uri");
        let pipes = start_logger(&logger, LoggedContainer { id: "c1", namespace: "ns" }, Duration::from_secs(10))
            .expect("logger ready");
        std::io::Write::write_all(&mut File::from(pipes.stdout), b"to stdout\n").expect("write stdout");
        std::io::Write::write_all(&mut File::from(pipes.stderr), b"to stderr\n").expect("write stderr");
        let read = |suffix: &str| std::fs::read_to_string(format!("{}.{suffix}", out.display())).unwrap_or_default();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while (read("1").is_empty() || read("2").is_empty()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!((read("1"), read("2")), ("to stdout\n".to_string(), "to stderr\n".to_string()));
        // `env` lists what sh itself adds (PWD) besides our two.
        assert!(read("env").starts_with("ns/c1 k v "), "{}", read("env"));
    }

    #[test]
    fn a_logger_that_is_never_ready_times_out() {
        let dir = scratch_dir("logger", "slow");
        let script = dir.join("slow.sh");
        std::fs::write(&script, "#!/bin/sh\nexec /bin/sleep 3\n").expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let logger = LoggerCommand { program: script, args: Vec::new() };
        let started = start_logger(&logger, LoggedContainer { id: "c", namespace: "n" }, Duration::from_millis(300));
        assert!(matches!(started, Err(Error::LoggerNotReady { .. })), "{:?}", started.err());
    }
}
