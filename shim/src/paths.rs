//! Where things live on disk. One daemon serves one containerd: its socket and unit names are
//! derived from containerd's address, so two containerd instances get two daemons.

use std::path::{Path, PathBuf};

use unit_gen::names::hex_digest;
use unit_gen::{DaemonTag, UnitNaming};

/// The runtime name containerd knows us by.
pub const RUNTIME_NAME: &str = "io.containerd.systemd.v1";

/// containerd's directory for shim sockets (kept short: unix socket paths are limited to 108 bytes).
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// Our state root: runc state and caches.
pub const STATE_ROOT: &str = "/run/containerd/io.containerd.systemd.v1";

/// The address of the containerd a host runs by default. Its daemon keeps the names units and
/// runc state had before two containerds could share a host ([`UnitNaming::Plain`]).
pub const DEFAULT_CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";

/// The daemon serving the containerd at `containerd_address`: its control socket and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonIdentity {
    /// containerd's address, from which every name here is derived.
    pub containerd_address: String,
    /// Absolute path of the daemon's control socket.
    pub control_socket: PathBuf,
    /// Name of the daemon's systemd unit.
    pub unit: String,
    /// How the daemon names its task units: plain for the default containerd, tagged for any
    /// other, so two containerds' tasks of the same name never share a unit.
    pub unit_naming: UnitNaming,
}

impl DaemonIdentity {
    /// The identity of the daemon for the containerd listening at `containerd_address`.
    pub fn for_containerd(containerd_address: &str) -> DaemonIdentity {
        let hex = hex_digest(&format!("{RUNTIME_NAME}\0{containerd_address}"));
        let unit_naming = match DaemonTag::parse(&hex[..DaemonTag::LEN]) {
            Some(tag) if socket_path_of(containerd_address) != Path::new(DEFAULT_CONTAINERD_ADDRESS) => {
                UnitNaming::Tagged(tag)
            }
            _ => UnitNaming::Plain,
        };
        DaemonIdentity {
            containerd_address: containerd_address.to_string(),
            control_socket: PathBuf::from(SOCKET_DIR).join(&hex),
            unit: format!("containerd-shim-systemd-v1-{}.service", &hex[..16]),
            unit_naming,
        }
    }

    /// This daemon's own state directory (its task records): two daemons, serving two
    /// containerd instances, must never adopt each other's tasks.
    pub fn state_dir(&self) -> PathBuf {
        let hex = self.control_socket.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        PathBuf::from(STATE_ROOT).join("daemons").join(hex)
    }

    /// Where the `ExecStopPost` of this daemon's task units record their exits, one file per
    /// unit ([`exit_file_of`]): outside the bundle, which containerd removes right after Delete
    /// answers, while the unit may still be stopping.
    pub fn exits_dir(&self) -> PathBuf {
        self.state_dir().join("exits")
    }

    /// The socket unit `install` writes beside the daemon's service: same name, `.socket`.
    pub fn socket_unit(&self) -> String {
        let stem = self.unit.strip_suffix(".service").unwrap_or(&self.unit);
        format!("{stem}.socket")
    }

    /// runc's state root for this daemon's containers of `namespace` when the task's options
    /// name none (one per namespace, as runc-v2 keeps): `runc/<namespace>` under
    /// [`STATE_ROOT`] for the default containerd, `runc-<tag>/<namespace>` for any other.
    pub fn default_runc_root(&self, namespace: &str) -> PathBuf {
        let base = match self.unit_naming.tag() {
            None => "runc".to_string(),
            Some(tag) => format!("runc-{tag}"),
        };
        PathBuf::from(STATE_ROOT).join(base).join(namespace)
    }

    /// The console socket for a terminal of `process` (`<namespace>/<id>` or
    /// `<namespace>/<id>/<exec id>`) of this daemon: short and fixed-length whatever the ids,
    /// since unix socket paths are limited to 108 bytes.
    pub fn console_socket(&self, process: &str) -> PathBuf {
        let digest = hex_digest(&format!("{}\0{process}", self.containerd_address));
        PathBuf::from(STATE_ROOT).join("console").join(format!("{}.sock", &digest[..32]))
    }

    /// The ttrpc socket serving the task API for `namespace`.
    pub fn namespace_socket(&self, namespace: &str) -> PathBuf {
        PathBuf::from(SOCKET_DIR).join(hex_digest(&format!("{RUNTIME_NAME}\0{}\0{namespace}", self.containerd_address)))
    }
}

/// The exit file of the task unit `unit` in `exits_dir`.
pub fn exit_file_of(exits_dir: &std::path::Path, unit: &str) -> PathBuf {
    exits_dir.join(format!("{unit}.json"))
}

/// `unix://` + `path`: the form containerd dials.
pub fn unix_address(path: &std::path::Path) -> String {
    format!("unix://{}", path.display())
}

/// A path from a `unix://` address (or a bare path).
pub fn socket_path_of(address: &str) -> PathBuf {
    PathBuf::from(address.strip_prefix("unix://").unwrap_or(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_daemon_per_containerd_address() {
        let first = DaemonIdentity::for_containerd("/run/containerd/containerd.sock");
        let second = DaemonIdentity::for_containerd("/run/other/containerd.sock");
        assert_ne!(first, second);
        assert_eq!(first, DaemonIdentity::for_containerd("/run/containerd/containerd.sock"));
        assert!(first.control_socket.starts_with(SOCKET_DIR));
        assert!(first.control_socket.as_os_str().len() < 108, "unix socket path too long");
        assert!(first.unit.starts_with("containerd-shim-systemd-v1-") && first.unit.ends_with(".service"));
        assert_eq!(first.socket_unit(), first.unit.replace(".service", ".socket"));
        assert_ne!(first.state_dir(), second.state_dir());
        assert!(first.state_dir().starts_with(STATE_ROOT));
    }

    #[test]
    fn each_namespace_has_its_own_socket() {
        let daemon = DaemonIdentity::for_containerd("/run/containerd/containerd.sock");
        let other = DaemonIdentity::for_containerd("/run/other.sock");
        let default = daemon.namespace_socket("default");
        assert_ne!(default, daemon.namespace_socket("k8s.io"));
        assert_ne!(default, other.namespace_socket("default"));
        assert_ne!(default, daemon.control_socket);
        assert!(default.as_os_str().len() < 108);
        assert!(unix_address(&default).starts_with("unix:///run/containerd/s/"));
    }

    #[test]
    fn only_the_default_containerds_daemon_keeps_plain_names() {
        let default = DaemonIdentity::for_containerd("/run/containerd/containerd.sock");
        assert_eq!(default.unit_naming, UnitNaming::Plain);
        assert_eq!(
            DaemonIdentity::for_containerd("unix:///run/containerd/containerd.sock").unit_naming,
            UnitNaming::Plain
        );
        assert_eq!(default.default_runc_root("k8s.io"), PathBuf::from(STATE_ROOT).join("runc/k8s.io"));
        let other = DaemonIdentity::for_containerd("/run/other/containerd.sock");
        let tag = other.unit_naming.tag().expect("another containerd's daemon tags its names").clone();
        assert_eq!(other.default_runc_root("k8s.io"), PathBuf::from(STATE_ROOT).join(format!("runc-{tag}/k8s.io")));
        assert_ne!(default.console_socket("default/web"), other.console_socket("default/web"));
        assert!(other.console_socket("default/web").as_os_str().len() < 108);
    }

    #[test]
    fn socket_path_strips_the_scheme() {
        assert_eq!(socket_path_of("unix:///run/x.sock"), PathBuf::from("/run/x.sock"));
        assert_eq!(socket_path_of("/run/x.sock"), PathBuf::from("/run/x.sock"));
    }
}
