//! The daemon's configuration file, `/etc/containerd-shim-systemd-v1/config.toml` (another path
//! through `$CONTAINERD_SHIM_SYSTEMD_CONFIG`): daemon-wide defaults that a task's runtime options
//! override field by field. Read once when the daemon starts; a missing file at the default
//! path means built-in defaults, and anything else wrong with it (an unknown key, a bad value)
//! stops the daemon with the file, the line and the key in the message.
//!
//! ```toml
//! runc_binary = "/usr/sbin/runc"   # runc's BinaryName; default "runc" in PATH
//! runc_root = "/run/runc-systemd"  # runc's Root; the namespace is appended; default
//!                                  # /run/containerd/io.containerd.systemd.v1/runc
//! log_mode = "journal"             # "fifo" (default) or "journal"
//!
//! [unit]
//! slice = "containers.slice"       # Slice= of tasks whose spec names none
//!
//! [tracing]
//! otlp_endpoint = "http://127.0.0.1:4318"  # where spans go (OTLP/HTTP, protobuf) when the
//!                                          # daemon's environment names no endpoint
//!
//! [systemd]
//! connection = "bus"               # "private" (default): systemd's private socket, the
//!                                  # system bus only while that does not answer; "bus": always
//!                                  # the system bus
//! [daemon]
//! fd_store_max = 4096              # FileDescriptorStoreMax= of the daemon's own unit, and
//!                                  # the descriptors (one per task connection) it keeps
//!
//! [runc]
//! checkpoint_timeout = 1800        # seconds `runc checkpoint` (a CRIU dump) may take before
//!                                  # it is killed; default 1800 (30 minutes)
//! ```
//!
//! `[daemon]` shapes the daemon's own unit: `start` and `install` read it when they write that
//! unit, the daemon when it starts, so the two agree. A change takes effect once the unit is
//! written anew (`install` again, or the on-demand unit launched after the daemon stopped).

use std::path::{Path, PathBuf};

use std::time::Duration;

use runc_wrap::deadlines::{RuncDeadlines, DEFAULT_CHECKPOINT_TIMEOUT};
use serde::Deserialize;
use unit_gen::daemon_unit::DEFAULT_FD_STORE_MAX;
use unit_gen::slice::validate_slice_name;
use unit_gen::UnitOptions;

use crate::error::Error;
use crate::runtime_options::{LogMode, TaskOptions};
use crate::systemd::TransportPreference;

/// Where the configuration is read from when nothing else is said.
pub const DEFAULT_PATH: &str = "/etc/containerd-shim-systemd-v1/config.toml";

/// The environment variable naming another configuration file.
pub const PATH_ENV: &str = "CONTAINERD_SHIM_SYSTEMD_CONFIG";

/// The fewest descriptors the fd store may hold: the control socket, a namespace's listener
/// and one connection.
const FD_STORE_MIN: u32 = 3;

/// The most descriptors the fd store may hold: systemd keeps each one open in PID 1, and the
/// daemon another copy of each.
const FD_STORE_LIMIT: u32 = 65_536;

/// The longest `[runc] checkpoint_timeout`, in seconds (a day): a longer one is a typo.
const CHECKPOINT_TIMEOUT_LIMIT_SECS: u64 = 24 * 60 * 60;

/// Which configuration file applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// [`DEFAULT_PATH`]; its absence means defaults.
    Default,
    /// A file named by [`PATH_ENV`]; it must exist.
    Explicit(PathBuf),
}

impl ConfigSource {
    /// The source `$CONTAINERD_SHIM_SYSTEMD_CONFIG` (read by the caller) selects; unset or empty
    /// means the default path.
    pub fn from_env_value(value: Option<&str>) -> ConfigSource {
        match value.filter(|value| !value.is_empty()) {
            Some(path) => ConfigSource::Explicit(PathBuf::from(path)),
            None => ConfigSource::Default,
        }
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::Default => Path::new(DEFAULT_PATH),
            ConfigSource::Explicit(path) => path,
        }
    }
}

/// The daemon-wide settings, after validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Defaults for every task's runtime options (runc binary and root, log mode).
    pub task_defaults: TaskOptions,
    /// Unit-wide options (the default slice).
    pub unit_options: UnitOptions,
    /// Span export.
    pub tracing: TracingSettings,
    /// How the daemon reaches systemd.
    pub systemd_transport: TransportPreference,
    /// The daemon's own unit.
    pub daemon: DaemonUnitSettings,
    /// How long each runc operation may take.
    pub runc_deadlines: RuncDeadlines,
}

/// `[daemon]`: the daemon's own unit, the transient one `start` launches and the one `install`
/// writes alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonUnitSettings {
    /// The unit's `FileDescriptorStoreMax=`; the daemon refuses a connection it could not keep
    /// there rather than lose it at its next restart.
    pub fd_store_max: u32,
}

impl Default for DaemonUnitSettings {
    fn default() -> DaemonUnitSettings {
        DaemonUnitSettings { fd_store_max: DEFAULT_FD_STORE_MAX }
    }
}

/// `[tracing]`: where the daemon exports its spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingSettings {
    /// The OTLP/HTTP base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it (`/v1/traces` is
    /// appended); the environment's endpoint, when set, wins.
    pub otlp_endpoint: Option<String>,
}

/// The file's schema: every table refuses keys it does not know.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    runc_binary: Option<String>,
    runc_root: Option<PathBuf>,
    log_mode: Option<LogMode>,
    #[serde(default)]
    unit: UnitTable,
    #[serde(default)]
    tracing: TracingTable,
    #[serde(default)]
    daemon: DaemonTable,
    #[serde(default)]
    systemd: SystemdTable,
    #[serde(default)]
    runc: RuncTable,
}

/// `[runc]`: how the daemon runs runc.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuncTable {
    /// Seconds.
    checkpoint_timeout: Option<u64>,
}

/// `[systemd]`: how the daemon reaches systemd.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemdTable {
    connection: Option<SystemdConnection>,
}

/// The values of `[systemd] connection`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SystemdConnection {
    Private,
    Bus,
}

/// `[unit]`: defaults for the units tasks run in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitTable {
    slice: Option<String>,
    tasks_max: Option<u64>,
}

/// `[tracing]`: span export.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TracingTable {
    otlp_endpoint: Option<String>,
}

/// `[daemon]`: the daemon's own unit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonTable {
    fd_store_max: Option<u32>,
}

impl Config {
    /// Reads the configuration from `source`.
    pub fn load(source: &ConfigSource) -> Result<Config, Error> {
        let path = source.path();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && *source == ConfigSource::Default => {
                Ok(Config::default())
            }
            Err(error) => Err(Error::Config { path: path.to_path_buf(), reason: format!("cannot be read: {error}") }),
        }
    }

    /// Parses and validates `text`, the content of the file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
        let invalid = |reason: String| Error::Config { path: path.to_path_buf(), reason };
        let file: ConfigFile = toml::from_str(text).map_err(|error| {
            let line = error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => invalid(format!("line {line}: {}", error.message())),
                None => invalid(error.message().to_string()),
            }
        })?;
        if file.runc_binary.as_deref() == Some("") {
            return Err(invalid("runc_binary is empty".into()));
        }
        if let Some(root) = &file.runc_root {
            if !root.is_absolute() {
                return Err(invalid(format!("runc_root {} is not an absolute path", root.display())));
            }
        }
        if let Some(slice) = &file.unit.slice {
            validate_slice_name(slice).map_err(|error| invalid(format!("[unit] slice: {error}")))?;
        }
        if file.unit.tasks_max == Some(0) {
            return Err(invalid("[unit] tasks_max must be at least 1".to_string()));
        }
        if let Some(endpoint) = &file.tracing.otlp_endpoint {
            // The exporter speaks plain HTTP only (a collector on the host).
            if !endpoint.starts_with("http://") || endpoint.len() == "http://".len() {
                return Err(invalid(format!("[tracing] otlp_endpoint {endpoint:?} is not an http:// URL")));
            }
        }
        if let Some(fd_store_max) = file.daemon.fd_store_max {
            if !(FD_STORE_MIN..=FD_STORE_LIMIT).contains(&fd_store_max) {
                return Err(invalid(format!(
                    "[daemon] fd_store_max must be between {FD_STORE_MIN} and {FD_STORE_LIMIT}, not {fd_store_max}"
                )));
            }
        }
        let checkpoint_timeout = match file.runc.checkpoint_timeout {
            None => DEFAULT_CHECKPOINT_TIMEOUT,
            Some(seconds) if (1..=CHECKPOINT_TIMEOUT_LIMIT_SECS).contains(&seconds) => Duration::from_secs(seconds),
            Some(seconds) => {
                return Err(invalid(format!(
                    "[runc] checkpoint_timeout must be between 1 and {CHECKPOINT_TIMEOUT_LIMIT_SECS} seconds, not {seconds}"
                )))
            }
        };
        Ok(Config {
            task_defaults: TaskOptions {
                runc_binary: file.runc_binary,
                runc_root: file.runc_root.map(|root| root.display().to_string()),
                log_mode: file.log_mode.unwrap_or_default(),
                ..TaskOptions::default()
            },
            unit_options: UnitOptions { default_slice: file.unit.slice, default_tasks_max: file.unit.tasks_max },
            tracing: TracingSettings { otlp_endpoint: file.tracing.otlp_endpoint },
            systemd_transport: match file.systemd.connection {
                None | Some(SystemdConnection::Private) => TransportPreference::PrivateSocket,
                Some(SystemdConnection::Bus) => TransportPreference::Bus,
            },
            daemon: DaemonUnitSettings { fd_store_max: file.daemon.fd_store_max.unwrap_or(DEFAULT_FD_STORE_MAX) },
            runc_deadlines: RuncDeadlines::with_checkpoint(checkpoint_timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/containerd-shim-systemd-v1/config.toml";

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(Path::new(PATH), text)
    }

    #[test]
    fn an_empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(Config::default().daemon.fd_store_max, DEFAULT_FD_STORE_MAX);
        assert_eq!(Config::default().runc_deadlines.checkpoint, DEFAULT_CHECKPOINT_TIMEOUT);
        assert_eq!(parse("# nothing here\n\n[unit]\n").unwrap(), Config::default());
    }

    #[test]
    fn every_setting_is_read() {
        let text = "runc_binary = \"/usr/sbin/runc\"\nrunc_root = \"/run/r\"\nlog_mode = \"journal\"\n\n\
                    [unit]\nslice = \"containers.slice\"\ntasks_max = 4096\n\n[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\n\n\
                    [systemd]\nconnection = \"bus\"\n\n\
                    [daemon]\nfd_store_max = 512\n\n\
                    [runc]\ncheckpoint_timeout = 7200\n";
        let config = parse(text).unwrap();
        assert_eq!(config.task_defaults.runc_binary.as_deref(), Some("/usr/sbin/runc"));
        assert_eq!(config.task_defaults.runc_root.as_deref(), Some("/run/r"));
        assert_eq!(config.task_defaults.log_mode, LogMode::Journal);
        assert_eq!(config.unit_options.default_slice.as_deref(), Some("containers.slice"));
        assert_eq!(config.unit_options.default_tasks_max, Some(4096));
        assert_eq!(config.tracing.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
        assert_eq!(config.systemd_transport, TransportPreference::Bus);
        assert_eq!(config.daemon.fd_store_max, 512);
        assert_eq!(config.runc_deadlines.checkpoint, Duration::from_secs(7200));
        assert_ne!(config.runc_deadlines.checkpoint, config.runc_deadlines.pause);
        assert!(!config.task_defaults.sd_notify && !config.task_defaults.no_pivot_root);
    }

    struct Case {
        name: &'static str,
        text: &'static str,
        /// Every one of these appears in the message.
        mentions: &'static [&'static str],
    }

    #[test]
    fn bad_files_are_refused_naming_the_file_line_and_key() {
        let cases = [
            Case { name: "unknown top-level key", text: "runc_bianry = \"x\"\n", mentions: &["line 1", "runc_bianry"] },
            Case {
                name: "unknown key in [unit]",
                text: "log_mode = \"fifo\"\n[unit]\nslcie = \"a.slice\"\n",
                mentions: &["line 3", "slcie", "slice"],
            },
            Case { name: "unknown table", text: "[units]\nslice = \"a.slice\"\n", mentions: &["line 1", "units"] },
            Case { name: "unknown log mode", text: "log_mode = \"syslog\"\n", mentions: &["line 1", "syslog"] },
            Case { name: "wrong type", text: "runc_binary = 3\n", mentions: &["line 1"] },
            Case { name: "not toml", text: "runc_binary =\n", mentions: &["line 1"] },
            Case { name: "empty runc binary", text: "runc_binary = \"\"\n", mentions: &["runc_binary is empty"] },
            Case { name: "relative runc root", text: "runc_root = \"run/r\"\n", mentions: &["run/r", "absolute"] },
            Case {
                name: "slice that is not a slice",
                text: "[unit]\nslice = \"containers.service\"\n",
                mentions: &["containers.service", "does not end in .slice"],
            },
            Case { name: "zero tasks", text: "[unit]\ntasks_max = 0\n", mentions: &["tasks_max", "at least 1"] },
            Case { name: "negative tasks", text: "[unit]\ntasks_max = -5\n", mentions: &["line 2", "-5"] },
            Case {
                name: "unknown key in [tracing]",
                text: "[tracing]\notlp_endpiont = \"http://a:4318\"\n",
                mentions: &["line 2", "otlp_endpiont"],
            },
            Case {
                name: "https endpoint",
                text: "[tracing]\notlp_endpoint = \"https://a:4318\"\n",
                mentions: &["otlp_endpoint", "https://a:4318", "http://"],
            },
            Case {
                name: "unknown systemd connection",
                text: "[systemd]\nconnection = \"socket\"\n",
                mentions: &["line 2", "socket", "private", "bus"],
            },
            Case {
                name: "fd store too small for a connection",
                text: "[daemon]\nfd_store_max = 2\n",
                mentions: &["fd_store_max", "between 3 and 65536", "not 2"],
            },
            Case {
                name: "fd store beyond the limit",
                text: "[daemon]\nfd_store_max = 100000\n",
                mentions: &["fd_store_max", "not 100000"],
            },
            Case {
                name: "unknown key in [daemon]",
                text: "[daemon]\nfd_store_maximum = 10\n",
                mentions: &["line 2", "fd_store_maximum"],
            },
            Case {
                name: "zero checkpoint timeout",
                text: "[runc]\ncheckpoint_timeout = 0\n",
                mentions: &["[runc] checkpoint_timeout", "between 1 and 86400 seconds", "not 0"],
            },
            Case {
                name: "checkpoint timeout beyond a day",
                text: "[runc]\ncheckpoint_timeout = 100000\n",
                mentions: &["[runc] checkpoint_timeout", "not 100000"],
            },
            Case {
                name: "checkpoint timeout as a string",
                text: "[runc]\ncheckpoint_timeout = \"30m\"\n",
                mentions: &["line 2", "\"30m\""],
            },
            Case {
                name: "unknown key in [runc]",
                text: "[runc]\ncheckpoint_timeuot = 10\n",
                mentions: &["line 2", "checkpoint_timeuot"],
            },
            Case {
                name: "endpoint without a host",
                text: "[tracing]\notlp_endpoint = \"http://\"\n",
                mentions: &["otlp_endpoint"],
            },
        ];
        for case in cases {
            let error = parse(case.text).expect_err(case.name);
            assert!(matches!(error, Error::Config { .. }), "{}: {error:?}", case.name);
            // The parser's words are what tells the operator which key is wrong.
            let message = error.to_string();
            assert!(message.starts_with(&format!("configuration file {PATH}: ")), "{}: {message}", case.name);
            for mention in case.mentions {
                assert!(message.contains(mention), "{}: {message:?} does not mention {mention:?}", case.name);
            }
        }
    }

    #[test]
    fn the_environment_names_another_file() {
        assert_eq!(ConfigSource::from_env_value(None), ConfigSource::Default);
        assert_eq!(ConfigSource::from_env_value(Some("")), ConfigSource::Default);
        let explicit = ConfigSource::from_env_value(Some("/x/c.toml"));
        assert_eq!(explicit.path(), Path::new("/x/c.toml"));
        assert_eq!(ConfigSource::Default.path(), Path::new(DEFAULT_PATH));
    }

    #[test]
    fn a_missing_default_file_means_defaults_but_a_named_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("shim-config-{}", std::process::id()));
        let missing = dir.join("missing.toml");
        let error = Config::load(&ConfigSource::Explicit(missing.clone())).unwrap_err();
        assert!(matches!(&error, Error::Config { path, .. } if *path == missing), "{error:?}");
        std::fs::create_dir_all(&dir).unwrap();
        let present = dir.join("config.toml");
        std::fs::write(&present, "[unit]\nslice = \"x.slice\"\n").unwrap();
        let config = Config::load(&ConfigSource::Explicit(present)).unwrap();
        assert_eq!(config.unit_options.default_slice.as_deref(), Some("x.slice"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
