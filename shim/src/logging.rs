//! Logging setup. Code logs through `tracing`; with no tracing subscriber installed, its events
//! are forwarded to the `log` facade, which this module points at the journal or stderr,
//! depending on who runs us.

use std::io::Write;
use std::path::Path;

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

/// Installs the logger for this process; `debug` lowers the level to debug.
pub fn init(target: LogTarget, debug: bool) {
    let level = if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info };
    let use_journal = match target {
        LogTarget::Service => systemd_journal_logger::connected_to_journal(),
        LogTarget::ContainerdCommand => Path::new("/run/systemd/journal/socket").exists(),
    };
    let installed_journal = use_journal
        && systemd_journal_logger::JournalLog::new()
            .map(|journal| journal.with_syslog_identifier("containerd-shim-systemd-v1".to_string()))
            .and_then(|journal| journal.install().map_err(std::io::Error::other))
            .is_ok();
    if !installed_journal {
        match target {
            // Only fails if a logger is already installed, which is fine.
            LogTarget::Service => drop(log::set_boxed_logger(Box::new(StderrLogger))),
            LogTarget::ContainerdCommand => {
                log::set_max_level(log::LevelFilter::Off);
                return;
            }
        }
    }
    log::set_max_level(level);
}

/// Plain `level: message` lines on stderr, for when there is no journal.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ =
                writeln!(std::io::stderr().lock(), "containerd-shim-systemd-v1: {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}
