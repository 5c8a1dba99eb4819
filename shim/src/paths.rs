//! Where things live on disk. One daemon serves one containerd: its socket and unit names are
//! derived from containerd's address, so two containerd instances get two daemons.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// The runtime name containerd knows us by.
pub const RUNTIME_NAME: &str = "io.containerd.systemd.v1";

/// containerd's directory for shim sockets (kept short: unix socket paths are limited to 108 bytes).
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// Our state root: runc state and caches.
pub const STATE_ROOT: &str = "/run/containerd/io.containerd.systemd.v1";

/// The daemon serving the containerd at `containerd_address`: its control socket and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonIdentity {
    /// containerd's address, from which every name here is derived.
    pub containerd_address: String,
    /// Absolute path of the daemon's control socket.
    pub control_socket: PathBuf,
    /// Name of the daemon's systemd unit.
    pub unit: String,
}

impl DaemonIdentity {
    /// The identity of the daemon for the containerd listening at `containerd_address`.
    pub fn for_containerd(containerd_address: &str) -> DaemonIdentity {
        let hex = hex_digest(&format!("{RUNTIME_NAME}\0{containerd_address}"));
        DaemonIdentity {
            containerd_address: containerd_address.to_string(),
            control_socket: PathBuf::from(SOCKET_DIR).join(&hex),
            unit: format!("containerd-shim-systemd-v1-{}.service", &hex[..16]),
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

fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The console socket for a terminal of `process` (`<namespace>/<id>` or `<namespace>/<id>/<exec id>`):
/// short and fixed-length whatever the ids, since unix socket paths are limited to 108 bytes.
pub fn console_socket(process: &str) -> PathBuf {
    PathBuf::from(STATE_ROOT).join("console").join(format!("{}.sock", &hex_digest(process)[..32]))
}

/// runc's state root for containers of `namespace` (as runc-v2 keeps one per namespace).
pub fn runc_root(namespace: &str) -> PathBuf {
    PathBuf::from(STATE_ROOT).join("runc").join(namespace)
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
    fn socket_path_strips_the_scheme() {
        assert_eq!(socket_path_of("unix:///run/x.sock"), PathBuf::from("/run/x.sock"));
        assert_eq!(socket_path_of("/run/x.sock"), PathBuf::from("/run/x.sock"));
    }
}
