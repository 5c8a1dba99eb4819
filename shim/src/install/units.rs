//! The `.socket` and `.service` unit files `install` writes, rendered from what they are for. Pure:
//! no I/O here, so the files are checked byte for byte in the tests below.
//!
//! The pair is named exactly like the daemon's transient unit (`containerd-shim-systemd-v1-<hash>`,
//! from containerd's address): `start` finds it without being told, `journalctl -u` shows the
//! daemon under one name however it was started, and systemd refuses a transient unit named like
//! a unit file, so an installed and an on-demand daemon never run side by side.
//!
//! The service is the transient unit's twin (`Type=notify`, `Restart=always`, the fd store),
//! plus what only an installed unit can do well:
//! - socket activation: the socket unit listens on the daemon's control socket and hands it over
//!   as `control` (`FileDescriptorName=`), the name the daemon's fd store already gives it;
//! - `KillMode=process`: only the daemon is signalled when it stops or restarts. Containers are
//!   units of their own either way; what else runs in the daemon's cgroup is the runc (and CRIU)
//!   it runs for Kill, Pause, Update, Checkpoint and Delete. Killed halfway, those leave a
//!   container frozen (a pause, or CRIU's freeze during a dump) or its state half removed; with
//!   `process` they finish, and the restarted daemon reads the result from runc;
//! - `LimitNOFILE=`: the daemon keeps every ttrpc connection of containerd and up to
//!   `FileDescriptorStoreMax` stored descriptors (`[daemon] fd_store_max` of the configuration,
//!   which the daemon counts against); the default soft limit (1024) is too low;
//! - `OOMScoreAdjust=`: the daemon goes after containers under memory pressure (systemd applies
//!   it where PID 1 may lower scores, and logs and ignores it where it may not).
//!
//! Hardening that is left out, on purpose:
//! - anything that gives the daemon a mount namespace of its own (`ProtectSystem=`,
//!   `ProtectHome=`, `PrivateTmp=`, `ReadOnlyPaths=`, `PrivateDevices=`, `ProtectKernel*=`,
//!   `ProtectControlGroups=`): the daemon unmounts task root filesystems and prunes cgroup
//!   directories, and runc writes cgroup files; in a namespace of its own the unmounts would not
//!   reach the host (mounts leak, bundles stay busy) and the cgroup writes would fail;
//! - anything built on a seccomp filter (`SystemCallFilter=`, `SystemCallArchitectures=`,
//!   `RestrictNamespaces=`, `RestrictRealtime=`, `LockPersonality=`, `MemoryDenyWriteExecute=`,
//!   `RestrictSUIDSGID=`, `ProtectClock=`): the filter is inherited by the CRIU that checkpoints
//!   containers, and the kernel refuses `PTRACE_O_SUSPEND_SECCOMP` to a tracer that runs under
//!   seccomp itself, so no container with a seccomp profile (all of them, by default) could be
//!   checkpointed; CRIU also needs `setns()` into the container's namespaces;
//! - `CapabilityBoundingSet=`, `NoNewPrivileges=`, `PrivateNetwork=`: runc and CRIU need the
//!   capabilities a container manager has, and CRIU the host's network namespace to dump a
//!   host-network container's sockets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use unit_gen::daemon_unit::{accounting, DAEMON_START_TIMEOUT_USEC};

use crate::config;
use crate::error::Error;
use crate::paths::{unix_address, DaemonIdentity};

/// systemd's default `PATH` for services; containerd run by systemd has it, and so the daemon it
/// launches on demand.
pub const DEFAULT_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The daemon's soft and hard limit on open files.
const NOFILE_LIMIT: u32 = 1_048_576;

/// The daemon's OOM score adjustment: spared before containers, killed before containerd
/// (whose unit sets -999).
const OOM_SCORE_ADJUST: i32 = -500;

/// How long after a crash the daemon is restarted (as the transient unit does).
const RESTART_DELAY: &str = "100ms";

/// What the unit files are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    /// containerd's gRPC socket: names the daemon, its control socket and its units.
    pub containerd_address: String,
    /// The shim binary the service runs.
    pub binary: PathBuf,
    /// The containerd binary (`-publish-binary`, as containerd passes it to `start`).
    pub publish_binary: PathBuf,
    /// containerd's ttrpc address, where events go (`$TTRPC_ADDRESS`).
    pub ttrpc_address: String,
    /// `PATH` of the daemon, where it finds runc and CRIU.
    pub path_env: String,
    /// A configuration file other than the default one, passed in the environment.
    pub config: Option<PathBuf>,
    /// `FileDescriptorStoreMax=`, from the configuration's `[daemon] fd_store_max`.
    pub fd_store_max: u32,
}

/// One unit file: its name and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// The unit's name, which is also the file's name.
    pub name: String,
    /// The file's content.
    pub contents: String,
}

/// The two files `install` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFiles {
    /// The control socket's `.socket` unit (the one that is enabled).
    pub socket: UnitFile,
    /// The daemon's `.service` unit, activated through the socket.
    pub service: UnitFile,
}

impl UnitFiles {
    /// Both files, socket first.
    pub fn all(&self) -> [&UnitFile; 2] {
        [&self.socket, &self.service]
    }
}

/// Renders the socket and service units for `spec`, for a systemd of major version
/// `systemd_version`.
pub fn render_units(spec: &InstallSpec, systemd_version: u32) -> Result<UnitFiles, Error> {
    for (what, value) in [
        ("the containerd address", spec.containerd_address.as_str()),
        ("the shim binary", path_str(&spec.binary)?),
        ("the containerd binary", path_str(&spec.publish_binary)?),
        ("the ttrpc address", spec.ttrpc_address.as_str()),
        ("PATH", spec.path_env.as_str()),
    ] {
        check_value(what, value)?;
    }
    for (what, path) in
        [("the containerd address", Path::new(&spec.containerd_address)), ("the shim binary", &spec.binary)]
    {
        if !path.is_absolute() {
            return Err(Error::InvalidRequest(format!("{what} {} is not an absolute path", path.display())));
        }
    }
    if let Some(config) = &spec.config {
        check_value("the configuration file", path_str(config)?)?;
    }
    let identity = DaemonIdentity::for_containerd(&spec.containerd_address);
    let control_socket = path_str(&identity.control_socket)?;
    Ok(UnitFiles {
        socket: UnitFile { name: identity.socket_unit(), contents: render_socket(spec, control_socket) },
        service: UnitFile { name: identity.unit.clone(), contents: render_service(spec, &identity, systemd_version)? },
    })
}

const HEADER: &str =
    "# Written by `containerd-shim-systemd-v1 install`; `containerd-shim-systemd-v1 uninstall` removes it.\n";

fn render_socket(spec: &InstallSpec, control_socket: &str) -> String {
    let mut text = String::from(HEADER);
    text.push_str("[Unit]\n");
    let _ = writeln!(
        text,
        "Description=containerd-shim-systemd-v1 control socket for containerd at {}",
        specifiers(&spec.containerd_address)
    );
    text.push_str("\n[Socket]\n");
    let _ = writeln!(text, "ListenStream={}", specifiers(control_socket));
    // The name under which the daemon takes it (LISTEN_FDNAMES), as from its own fd store.
    text.push_str("FileDescriptorName=control\n");
    text.push_str("SocketMode=0600\n");
    // As containerd makes its state directories, should systemd come first.
    text.push_str("DirectoryMode=0711\n");
    // Stopped (uninstalled), it leaves no socket file that nobody answers on.
    text.push_str("RemoveOnStop=yes\n");
    text.push_str("\n[Install]\nWantedBy=sockets.target\n");
    text
}

fn render_service(spec: &InstallSpec, identity: &DaemonIdentity, systemd_version: u32) -> Result<String, Error> {
    let socket_unit = identity.socket_unit();
    let control_address = unix_address(&identity.control_socket);
    let exec_start = [
        path_str(&spec.binary)?,
        "-address",
        &spec.containerd_address,
        "-publish-binary",
        path_str(&spec.publish_binary)?,
        "-socket",
        &control_address,
        "daemon",
    ]
    .map(exec_argument)
    .join(" ");

    let mut text = String::from(HEADER);
    text.push_str("[Unit]\n");
    let _ = writeln!(
        text,
        "Description=containerd-shim-systemd-v1 daemon for containerd at {}",
        specifiers(&spec.containerd_address)
    );
    // Started alone, the daemon would bind the control socket itself, and the socket unit could
    // take the path from under it later.
    let _ = writeln!(text, "Requires={socket_unit}\nAfter={socket_unit}");
    text.push_str("# Never rate limited: a unit that hits the limit fails, and its fd store goes with it.\n");
    text.push_str("StartLimitIntervalSec=0\n");
    text.push_str("\n[Service]\nType=notify\nNotifyAccess=main\n");
    let _ = writeln!(text, "ExecStart={exec_start}");
    let _ = writeln!(text, "Environment={}", environment_entry("TTRPC_ADDRESS", &spec.ttrpc_address));
    let _ = writeln!(text, "Environment={}", environment_entry("PATH", &spec.path_env));
    if let Some(config) = &spec.config {
        let _ = writeln!(text, "Environment={}", environment_entry(config::PATH_ENV, path_str(config)?));
    }
    let _ = writeln!(text, "TimeoutStartSec={}s", DAEMON_START_TIMEOUT_USEC / 1_000_000);
    text.push_str("# Crash-only: a restarted daemon gets its sockets and containerd's connections back from\n");
    text.push_str("# the fd store and re-adopts every task.\n");
    let _ = writeln!(text, "Restart=always\nRestartSec={RESTART_DELAY}\nFileDescriptorStoreMax={}", spec.fd_store_max);
    text.push_str("# Containers run in units of their own; the runc and CRIU the daemon runs finish their work.\n");
    text.push_str("KillMode=process\n");
    text.push_str("# The containers' controllers, kept realized so a container starting or stopping changes\n");
    text.push_str("# no slice's controllers (on cgroup v1 each change makes systemd migrate the root cgroup).\n");
    for name in accounting(systemd_version) {
        let _ = writeln!(text, "{name}=yes");
    }
    text.push_str("# No mount namespace, seccomp filter or capability limits: they would break unmounting\n");
    text.push_str("# task root filesystems, cgroup writes and checkpoints (README.md, \"Install the daemon\").\n");
    text.push_str("UMask=0077\n");
    let _ = writeln!(text, "LimitNOFILE={NOFILE_LIMIT}\nOOMScoreAdjust={OOM_SCORE_ADJUST}");
    Ok(text)
}

fn path_str(path: &Path) -> Result<&str, Error> {
    path.to_str().ok_or_else(|| Error::InvalidRequest(format!("{} is not valid UTF-8", path.display())))
}

/// Refuses what no quoting makes safe in a unit file: line breaks and other control characters.
fn check_value(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::InvalidRequest(format!("{what} is empty")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!("{what} {value:?} contains a control character")));
    }
    Ok(())
}

/// `%` starts a specifier in most settings (systemd.unit(5), "Specifiers").
fn specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

/// One argument of `ExecStart=` (systemd.service(5), "Command lines"): `%` and `$` are doubled
/// (specifiers, variable expansion), and an argument with whitespace, quotes, backslashes or a
/// lone `;` is double-quoted with C escapes.
fn exec_argument(value: &str) -> String {
    let escaped = specifiers(value).replace('$', "$$");
    let needs_quotes = escaped.is_empty()
        || escaped == ";"
        || escaped.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
    if needs_quotes {
        quoted(&escaped)
    } else {
        escaped
    }
}

/// One `Environment=` assignment, always quoted (systemd.exec(5), "Environment=").
fn environment_entry(name: &str, value: &str) -> String {
    quoted(&specifiers(&format!("{name}={value}")))
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use unit_gen::daemon_unit::DEFAULT_FD_STORE_MAX;
    use unit_gen::{render_daemon_unit, DaemonUnitRequest, PropertyValue};

    fn spec() -> InstallSpec {
        InstallSpec {
            containerd_address: "/run/containerd/containerd.sock".into(),
            binary: "/usr/local/bin/containerd-shim-systemd-v1".into(),
            publish_binary: "/usr/bin/containerd".into(),
            ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
            path_env: DEFAULT_PATH_ENV.into(),
            config: None,
            fd_store_max: DEFAULT_FD_STORE_MAX,
        }
    }

    const SOCKET: &str = "\
# Written by `containerd-shim-systemd-v1 install`; `containerd-shim-systemd-v1 uninstall` removes it.
[Unit]
Description=containerd-shim-systemd-v1 control socket for containerd at /run/containerd/containerd.sock

[Socket]
ListenStream=/run/containerd/s/84d36bdd197595f47fbdf42bb6413a1491fc9b804fd1c4e89cfedeb24c0a6a26
FileDescriptorName=control
SocketMode=0600
DirectoryMode=0711
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
";

    const SERVICE: &str = "\
# Written by `containerd-shim-systemd-v1 install`; `containerd-shim-systemd-v1 uninstall` removes it.
[Unit]
Description=containerd-shim-systemd-v1 daemon for containerd at /run/containerd/containerd.sock
Requires=containerd-shim-systemd-v1-84d36bdd197595f4.socket
After=containerd-shim-systemd-v1-84d36bdd197595f4.socket
# Never rate limited: a unit that hits the limit fails, and its fd store goes with it.
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/local/bin/containerd-shim-systemd-v1 -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -socket unix:///run/containerd/s/84d36bdd197595f47fbdf42bb6413a1491fc9b804fd1c4e89cfedeb24c0a6a26 daemon
Environment=\"TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc\"
Environment=\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"
TimeoutStartSec=30s
# Crash-only: a restarted daemon gets its sockets and containerd's connections back from
# the fd store and re-adopts every task.
Restart=always
RestartSec=100ms
FileDescriptorStoreMax=4096
# Containers run in units of their own; the runc and CRIU the daemon runs finish their work.
KillMode=process
# The containers' controllers, kept realized so a container starting or stopping changes
# no slice's controllers (on cgroup v1 each change makes systemd migrate the root cgroup).
MemoryAccounting=yes
CPUAccounting=yes
IOAccounting=yes
TasksAccounting=yes
# No mount namespace, seccomp filter or capability limits: they would break unmounting
# task root filesystems, cgroup writes and checkpoints (README.md, \"Install the daemon\").
UMask=0077
LimitNOFILE=1048576
OOMScoreAdjust=-500
";

    #[test]
    fn units_for_the_default_containerd() {
        let units = render_units(&spec(), 252).unwrap();
        assert_eq!(units.socket.name, "containerd-shim-systemd-v1-84d36bdd197595f4.socket");
        assert_eq!(units.service.name, "containerd-shim-systemd-v1-84d36bdd197595f4.service");
        assert_eq!(units.socket.contents, SOCKET);
        assert_eq!(units.service.contents, SERVICE);
    }

    #[test]
    fn names_and_socket_are_the_daemons_own() {
        let spec = InstallSpec { containerd_address: "/run/other/containerd.sock".into(), ..spec() };
        let identity = DaemonIdentity::for_containerd(&spec.containerd_address);
        let units = render_units(&spec, 252).unwrap();
        assert_eq!(units.service.name, identity.unit, "the transient daemon's name, so `start` finds it");
        assert_eq!(units.socket.name, identity.socket_unit());
        let listen = format!("ListenStream={}\n", identity.control_socket.display());
        assert!(units.socket.contents.contains(&listen), "{}", units.socket.contents);
        assert!(units.service.contents.contains(&format!("-socket {} daemon", unix_address(&identity.control_socket))));
    }

    #[test]
    fn a_named_configuration_file_is_passed_in_the_environment() {
        let spec = InstallSpec { config: Some("/etc/shim/test.toml".into()), ..spec() };
        let service = render_units(&spec, 252).unwrap().service.contents;
        assert!(
            service.contains("\nEnvironment=\"CONTAINERD_SHIM_SYSTEMD_CONFIG=/etc/shim/test.toml\"\n"),
            "{service}"
        );
    }

    /// The installed service must not drift from the transient unit `start` launches.
    #[test]
    fn service_matches_the_transient_daemon_unit() {
        let transient = render_daemon_unit(&DaemonUnitRequest {
            unit_name: "x.service".into(),
            exe: "/x".into(),
            args: vec![],
            environment: vec![],
            description: String::new(),
            systemd_version: 252,
            fd_store_max: 64,
        });
        let spec = InstallSpec { fd_store_max: 64, ..spec() };
        let service = render_units(&spec, 252).unwrap().service.contents;
        let setting = |name: &str| {
            service.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix('=')).unwrap_or_default().to_string()
        };
        let text = |name: &str| match transient.property(name) {
            Some(PropertyValue::Str(value)) => value.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(setting("Type"), text("Type"));
        assert_eq!(setting("NotifyAccess"), text("NotifyAccess"));
        assert_eq!(setting("Restart"), text("Restart"));
        for name in accounting(252) {
            assert_eq!(setting(name), "yes", "{name}");
            assert_eq!(transient.property(name), Some(&PropertyValue::Bool(true)), "{name}");
        }
        assert_eq!(transient.property("StartLimitIntervalUSec"), Some(&PropertyValue::U64(0)));
        assert_eq!(setting("StartLimitIntervalSec"), "0");
        assert_eq!(transient.property("RestartUSec"), Some(&PropertyValue::U64(100_000)), "RestartSec={RESTART_DELAY}");
        assert_eq!(
            transient.property("UMask"),
            Some(&PropertyValue::U32(u32::from_str_radix(&setting("UMask"), 8).unwrap()))
        );
        assert_eq!(
            transient.property("FileDescriptorStoreMax"),
            Some(&PropertyValue::U32(setting("FileDescriptorStoreMax").parse().unwrap()))
        );
        assert_eq!(
            transient.property("TimeoutStartUSec"),
            Some(&PropertyValue::U64(
                setting("TimeoutStartSec").trim_end_matches('s').parse::<u64>().unwrap() * 1_000_000
            ))
        );
    }

    #[test]
    fn exec_arguments_and_environment_are_quoted_for_systemd() {
        let cases = [
            ("plain", "/usr/bin/containerd", "/usr/bin/containerd"),
            ("space", "/opt/my shim/bin", "\"/opt/my shim/bin\""),
            ("percent", "/run/100%/c.sock", "/run/100%%/c.sock"),
            ("dollar", "/run/$HOME/c.sock", "/run/$$HOME/c.sock"),
            ("quote", "/run/a\"b", "\"/run/a\\\"b\""),
            ("backslash", "/run/a\\x2db", "\"/run/a\\\\x2db\""),
            ("lone semicolon", ";", "\";\""),
        ];
        for (name, value, expected) in cases {
            assert_eq!(exec_argument(value), expected, "{name}");
        }
        assert_eq!(environment_entry("PATH", "/a b:/c%"), "\"PATH=/a b:/c%%\"");
    }

    struct Case {
        name: &'static str,
        spec: InstallSpec,
        mentions: &'static str,
    }

    #[test]
    fn unusable_inputs_are_refused() {
        let cases = [
            Case {
                name: "relative address",
                spec: InstallSpec { containerd_address: "containerd.sock".into(), ..spec() },
                mentions: "not an absolute path",
            },
            Case {
                name: "relative binary",
                spec: InstallSpec { binary: "bin/shim".into(), ..spec() },
                mentions: "not an absolute path",
            },
            Case {
                name: "newline in the address",
                spec: InstallSpec { containerd_address: "/run/c.sock\nExecStartPre=/bin/evil".into(), ..spec() },
                mentions: "control character",
            },
            Case {
                name: "newline in PATH",
                spec: InstallSpec { path_env: "/bin\n".into(), ..spec() },
                mentions: "control character",
            },
            Case {
                name: "empty ttrpc address",
                spec: InstallSpec { ttrpc_address: String::new(), ..spec() },
                mentions: "is empty",
            },
            Case {
                name: "newline in the configuration path",
                spec: InstallSpec { config: Some("/etc/x\n.toml".into()), ..spec() },
                mentions: "control character",
            },
        ];
        for case in cases {
            let error = render_units(&case.spec, 252).expect_err(case.name);
            assert!(matches!(error, Error::InvalidRequest(_)), "{}: {error:?}", case.name);
            assert!(error.to_string().contains(case.mentions), "{}: {error}", case.name);
        }
    }
}
