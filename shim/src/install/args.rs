//! The command lines of `install` and `uninstall`. Flags take one or two dashes, and a value
//! either as the next argument or after `=`.

use std::path::{Path, PathBuf};

use runc_wrap::runc::resolve_binary;

use super::units::{InstallSpec, DEFAULT_PATH_ENV};
use super::Scope;
use crate::config::{ConfigSource, DaemonUnitSettings};
use crate::error::Error;

/// containerd's default gRPC address.
pub const DEFAULT_CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";

/// Where containerd is assumed to be when `PATH` does not have it.
const DEFAULT_CONTAINERD_BINARY: &str = "/usr/bin/containerd";

/// `install [--dry-run] [--runtime] [--address ADDR] [--binary PATH] [--publish-binary PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallCommand {
    /// Print the unit files, change nothing.
    pub dry_run: bool,
    /// Where the files go.
    pub scope: Scope,
    /// containerd's gRPC address.
    pub address: String,
    /// The shim binary the service runs (default: this one).
    pub binary: Option<PathBuf>,
    /// The containerd binary (default: `containerd` in `PATH`).
    pub publish_binary: Option<PathBuf>,
}

/// `uninstall [--dry-run] [--address ADDR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallCommand {
    /// Say what would be removed, change nothing.
    pub dry_run: bool,
    /// containerd's gRPC address.
    pub address: String,
}

/// Usage of both commands.
pub const USAGE: &str = "containerd-shim-systemd-v1 install [--dry-run] [--runtime] [--address ADDR] [--binary PATH] [--publish-binary PATH]
       containerd-shim-systemd-v1 uninstall [--dry-run] [--address ADDR]";

impl InstallCommand {
    /// Parses the arguments after `install`.
    pub fn parse(args: &[String]) -> Result<InstallCommand, Error> {
        let mut command = InstallCommand {
            dry_run: false,
            scope: Scope::System,
            address: DEFAULT_CONTAINERD_ADDRESS.into(),
            binary: None,
            publish_binary: None,
        };
        let mut flags = Flags::new(args);
        while let Some(flag) = flags.next_flag()? {
            match flag.as_str() {
                "dry-run" => command.dry_run = true,
                "runtime" => command.scope = Scope::Runtime,
                "address" => command.address = flags.value(&flag)?,
                "binary" => command.binary = Some(flags.value(&flag)?.into()),
                "publish-binary" => command.publish_binary = Some(flags.value(&flag)?.into()),
                _ => return Err(unknown(&flag)),
            }
        }
        Ok(command)
    }

    /// The unit files' inputs: `exe` is this binary, `path_env` where containerd is looked up,
    /// `config` the configuration file in effect (passed on when it is not the default one) and
    /// `daemon` its settings for the daemon's unit.
    pub fn spec(
        &self,
        exe: &Path,
        path_env: &str,
        config: &ConfigSource,
        daemon: &DaemonUnitSettings,
    ) -> Result<InstallSpec, Error> {
        let binary = self.binary.clone().unwrap_or_else(|| exe.to_path_buf());
        if !binary.is_absolute() {
            return Err(Error::InvalidRequest(format!("--binary {} is not an absolute path", binary.display())));
        }
        let binary = resolve_binary(&binary.to_string_lossy(), None).map_err(|error| {
            Error::InvalidRequest(format!("the shim binary {} is not usable: {error}", binary.display()))
        })?;
        let publish_binary = match &self.publish_binary {
            Some(path) => path.clone(),
            None => resolve_binary("containerd", Some(path_env)).unwrap_or_else(|_| DEFAULT_CONTAINERD_BINARY.into()),
        };
        let config = match config {
            ConfigSource::Default => None,
            ConfigSource::Explicit(path) if path.is_absolute() => Some(path.clone()),
            ConfigSource::Explicit(path) => {
                return Err(Error::InvalidRequest(format!(
                    "{}={} is not an absolute path",
                    crate::config::PATH_ENV,
                    path.display()
                )))
            }
        };
        Ok(InstallSpec {
            ttrpc_address: format!("{}.ttrpc", self.address),
            containerd_address: self.address.clone(),
            path_env: daemon_path(&binary),
            binary,
            publish_binary,
            config,
            fd_store_max: daemon.fd_store_max,
        })
    }
}

impl UninstallCommand {
    /// Parses the arguments after `uninstall`.
    pub fn parse(args: &[String]) -> Result<UninstallCommand, Error> {
        let mut command = UninstallCommand { dry_run: false, address: DEFAULT_CONTAINERD_ADDRESS.into() };
        let mut flags = Flags::new(args);
        while let Some(flag) = flags.next_flag()? {
            match flag.as_str() {
                "dry-run" => command.dry_run = true,
                "address" => command.address = flags.value(&flag)?,
                _ => return Err(unknown(&flag)),
            }
        }
        Ok(command)
    }
}

/// systemd's default `PATH`, with the shim's own directory first when it is elsewhere (runc and
/// CRIU installed beside it are found, as containerd finds shims beside itself).
fn daemon_path(binary: &Path) -> String {
    match binary.parent().and_then(Path::to_str) {
        Some(dir) if !DEFAULT_PATH_ENV.split(':').any(|entry| entry == dir) => format!("{dir}:{DEFAULT_PATH_ENV}"),
        _ => DEFAULT_PATH_ENV.to_string(),
    }
}

fn unknown(flag: &str) -> Error {
    Error::InvalidRequest(format!("unknown flag --{flag}\nusage: {USAGE}"))
}

/// Walks `--name`, `--name value` and `--name=value` arguments.
struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
    inline_value: Option<String>,
}

impl<'a> Flags<'a> {
    fn new(args: &'a [String]) -> Flags<'a> {
        Flags { args: args.iter(), inline_value: None }
    }

    fn next_flag(&mut self) -> Result<Option<String>, Error> {
        if let Some(value) = self.inline_value.take() {
            return Err(Error::InvalidRequest(format!("unexpected value {value:?}\nusage: {USAGE}")));
        }
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')).filter(|flag| !flag.is_empty())
        else {
            return Err(Error::InvalidRequest(format!("unexpected argument {arg:?}\nusage: {USAGE}")));
        };
        Ok(Some(match flag.split_once('=') {
            Some((name, value)) => {
                self.inline_value = Some(value.to_string());
                name.to_string()
            }
            None => flag.to_string(),
        }))
    }

    fn value(&mut self, flag: &str) -> Result<String, Error> {
        let value = self.inline_value.take().or_else(|| self.args.next().cloned());
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| Error::InvalidRequest(format!("--{flag} needs a value\nusage: {USAGE}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn install_flags_with_defaults() {
        let command = InstallCommand::parse(&[]).unwrap();
        assert_eq!(
            command,
            InstallCommand {
                dry_run: false,
                scope: Scope::System,
                address: DEFAULT_CONTAINERD_ADDRESS.into(),
                binary: None,
                publish_binary: None
            }
        );
        let command = InstallCommand::parse(&args(
            "--dry-run --runtime --address=/run/c.sock -binary /opt/shim --publish-binary /c",
        ))
        .unwrap();
        assert!(command.dry_run);
        assert_eq!(command.scope, Scope::Runtime);
        assert_eq!(command.address, "/run/c.sock");
        assert_eq!(command.binary, Some(PathBuf::from("/opt/shim")));
        assert_eq!(command.publish_binary, Some(PathBuf::from("/c")));
    }

    #[test]
    fn uninstall_flags() {
        let command = UninstallCommand::parse(&args("--address /run/c.sock --dry-run")).unwrap();
        assert_eq!(command, UninstallCommand { dry_run: true, address: "/run/c.sock".into() });
    }

    #[test]
    fn bad_command_lines_are_refused() {
        let cases = [
            ("unknown flag", "--now", "unknown flag --now"),
            ("missing value", "--address", "--address needs a value"),
            ("empty value", "--address=", "--address needs a value"),
            ("value for a switch", "--dry-run=yes", "unexpected value \"yes\""),
            ("positional argument", "/run/c.sock", "unexpected argument"),
        ];
        for (name, line, message) in cases {
            let error = InstallCommand::parse(&args(line)).expect_err(name);
            assert!(matches!(error, Error::InvalidRequest(_)), "{name}: {error:?}");
            assert!(error.to_string().contains(message), "{name}: {error}");
        }
        assert!(UninstallCommand::parse(&args("--runtime")).is_err(), "uninstall looks in every scope");
    }

    #[test]
    fn spec_takes_this_binary_and_passes_a_named_configuration() {
        let exe = std::env::current_exe().unwrap();
        let command = InstallCommand::parse(&args("--address /run/c/c.sock --publish-binary /opt/containerd")).unwrap();
        let daemon = DaemonUnitSettings { fd_store_max: 64 };
        let spec = command.spec(&exe, "", &ConfigSource::Explicit("/etc/x.toml".into()), &daemon).unwrap();
        assert_eq!(spec.binary, exe);
        assert_eq!(spec.ttrpc_address, "/run/c/c.sock.ttrpc");
        assert_eq!(spec.publish_binary, PathBuf::from("/opt/containerd"));
        assert_eq!(spec.config, Some(PathBuf::from("/etc/x.toml")));
        assert!(spec.path_env.starts_with(exe.parent().unwrap().to_str().unwrap()), "{}", spec.path_env);
        assert!(spec.path_env.ends_with(DEFAULT_PATH_ENV));
        assert_eq!(spec.fd_store_max, 64, "the configured fd store");

        let relative = command.spec(&exe, "", &ConfigSource::Explicit("x.toml".into()), &daemon).unwrap_err();
        assert!(relative.to_string().contains("not an absolute path"), "{relative}");
        let missing = InstallCommand { binary: Some("/nonexistent/shim".into()), ..command };
        let error = missing.spec(&exe, "", &ConfigSource::Default, &daemon).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/shim"), "{error}");
    }

    #[test]
    fn the_daemon_path_is_systemds_with_the_shims_directory_first() {
        assert_eq!(daemon_path(Path::new("/usr/local/bin/shim")), DEFAULT_PATH_ENV);
        assert_eq!(daemon_path(Path::new("/opt/shim/bin/shim")), format!("/opt/shim/bin:{DEFAULT_PATH_ENV}"));
    }
}
