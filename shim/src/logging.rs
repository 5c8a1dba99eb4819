//! Logging setup. Code logs through `tracing`; with no tracing subscriber installed, its events
//! are forwarded to the `log` facade, which goes to the journal when systemd connected our
//! stderr to it (`$JOURNAL_STREAM`), else to stderr.

use std::io::Write;

/// Installs the logger for this process; `debug` lowers the level to debug.
pub fn init(debug: bool) {
    let level = if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info };
    let installed = if std::env::var_os("JOURNAL_STREAM").is_some() {
        systemd_journal_logger::JournalLog::new()
            .map(|journal| journal.with_syslog_identifier("containerd-shim-systemd-v1".to_string()))
            .and_then(|journal| journal.install().map_err(std::io::Error::other))
            .is_ok()
    } else {
        false
    };
    if !installed {
        // Only fails if a logger is already installed, which is fine.
        let _ = log::set_boxed_logger(Box::new(StderrLogger));
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
