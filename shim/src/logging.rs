//! Where log lines go: the journal with structured fields, stderr, or nowhere, depending on who
//! runs us. Code logs through `tracing`; this module builds the subscriber layer that writes
//! those events out. [`crate::telemetry`] assembles it with the rest of the subscriber.
//!
//! In the journal, each field of an event and of the spans around it is a journal field of its
//! own, named in upper case without a prefix: a line logged while serving a task API call
//! carries `NAMESPACE`, `CONTAINER_ID` (and `EXEC_ID`, `UNIT` where they apply), so
//! `journalctl CONTAINER_ID=<id>` finds every line about a container.

use std::os::fd::AsFd;
use std::path::Path;

use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The name our lines carry in the journal (`SYSLOG_IDENTIFIER`) and on stderr.
pub const IDENTIFIER: &str = "containerd-shim-systemd-v1";

/// journald's native protocol socket.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Who this process is, which decides where its log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// A systemd service (the daemon, the in-unit helper): the journal when systemd connected
    /// our stderr to it, else stderr.
    Service,
    /// A subcommand run by containerd (`start`, `delete`): the journal when there is one, and
    /// never stderr, which containerd reads as part of the answer (2.x parses stdout and stderr
    /// together). Failures are still reported on stderr, by the caller, as the error message.
    ContainerdCommand,
}

/// Where log lines end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// journald's native protocol, with structured fields.
    Journal,
    /// Plain lines on stderr.
    Stderr,
    /// Nowhere.
    Discard,
}

impl LogTarget {
    /// The sink for this kind of process, given whether stderr is connected to the journal
    /// and whether journald's socket exists.
    pub fn sink(self, stderr_is_journal: bool, journal_socket_exists: bool) -> LogSink {
        match self {
            LogTarget::Service if stderr_is_journal => LogSink::Journal,
            LogTarget::Service => LogSink::Stderr,
            LogTarget::ContainerdCommand if journal_socket_exists => LogSink::Journal,
            LogTarget::ContainerdCommand => LogSink::Discard,
        }
    }

    /// The sink for this process as it runs now.
    pub fn current_sink(self) -> LogSink {
        self.sink(stderr_is_journal(), Path::new(JOURNAL_SOCKET).exists())
    }
}

/// The layer writing events to `sink`; `None` for [`LogSink::Discard`], or when the journal
/// cannot be reached (a service then falls back to stderr).
pub fn layer<S>(target: LogTarget, sink: LogSink) -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    match sink {
        LogSink::Journal => match journal_layer() {
            Ok(journal) => Some(Box::new(journal)),
            Err(_) if target == LogTarget::Service => Some(stderr_layer()),
            Err(_) => None,
        },
        LogSink::Stderr => Some(stderr_layer()),
        LogSink::Discard => None,
    }
}

/// tracing-journald with no field prefix: our `container_id` field becomes `CONTAINER_ID`,
/// not the default `F_CONTAINER_ID`. Span fields are written with the same names, so an
/// event inside a task API call's span carries the task's fields.
fn journal_layer() -> std::io::Result<tracing_journald::Layer> {
    Ok(tracing_journald::layer()?.with_field_prefix(None).with_syslog_identifier(IDENTIFIER.to_string()))
}

fn stderr_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    Box::new(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false))
}

/// Whether our stderr is the journal stream systemd gave us: `$JOURNAL_STREAM` holds the
/// `device:inode` of that stream (systemd.exec(5), "Environment variables in spawned
/// processes"), and it is inherited by children whose stderr may be something else.
pub fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    journal_stream_matches(&stream, stat.st_dev, stat.st_ino)
}

/// Whether `$JOURNAL_STREAM` (`device:inode`, both decimal) names a file with `dev` and `ino`.
fn journal_stream_matches(stream: &str, dev: u64, ino: u64) -> bool {
    let Some((stream_dev, stream_ino)) = stream.split_once(':') else {
        return false;
    };
    stream_dev.parse() == Ok(dev) && stream_ino.parse() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_our_stderr() {
        struct Case {
            name: &'static str,
            stream: &'static str,
            matches: bool,
        }
        let cases = [
            Case { name: "same device and inode", stream: "24:1234", matches: true },
            Case { name: "other inode", stream: "24:1235", matches: false },
            Case { name: "other device", stream: "25:1234", matches: false },
            Case { name: "no colon", stream: "241234", matches: false },
            Case { name: "not numbers", stream: "a:b", matches: false },
            Case { name: "empty", stream: "", matches: false },
        ];
        for case in cases {
            assert_eq!(journal_stream_matches(case.stream, 24, 1234), case.matches, "{}", case.name);
        }
    }

    #[test]
    fn containerd_commands_never_log_to_stderr() {
        assert_eq!(LogTarget::ContainerdCommand.sink(true, true), LogSink::Journal);
        assert_eq!(LogTarget::ContainerdCommand.sink(false, true), LogSink::Journal);
        assert_eq!(LogTarget::ContainerdCommand.sink(true, false), LogSink::Discard);
        assert_eq!(LogTarget::ContainerdCommand.sink(false, false), LogSink::Discard);
    }

    #[test]
    fn services_log_to_the_journal_only_when_systemd_connected_them() {
        assert_eq!(LogTarget::Service.sink(true, true), LogSink::Journal);
        assert_eq!(LogTarget::Service.sink(false, true), LogSink::Stderr);
        assert_eq!(LogTarget::Service.sink(false, false), LogSink::Stderr);
    }
}
