//! Only root (or the uid containerd runs as) may talk to the daemon: its sockets are 0600 and
//! root's, and a connection from another uid that gets through anyway (a socket made world
//! writable by mistake) is refused on its peer credentials (SO_PEERCRED) and logged.
//!
//! The other uid is `nobody` (65534), through `setpriv` inside the sandbox, running the
//! `peer_probe` binary of this crate. The daemon's socket directory is 0700, so the probe
//! reaches the socket through a hard link in a directory of its own: same inode, same mode.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tests::direct::{client, context, daemon_address, start_shim};
use tests::{unique_id, wait_until, Run, Sandbox};

const NAMESPACE: &str = "bad-peer";
const NOBODY: &str = "65534";

/// The namespace socket `start` hands out for [`NAMESPACE`], as seen from the sandbox.
fn namespace_socket(sandbox: &Sandbox) -> PathBuf {
    let (run, address) = start_shim(sandbox, NAMESPACE, "probe");
    let address = address.unwrap_or_else(|| panic!("start failed: {run:?}"));
    PathBuf::from(address.strip_prefix("unix://").expect("a unix address"))
}

/// The daemon's control socket (`paths::DaemonIdentity`), as seen from the sandbox.
fn control_socket() -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\0{}", tests::RUNTIME, daemon_address()).as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    PathBuf::from("/run/containerd/s").join(hex)
}

/// A copy of `peer_probe` that `nobody` may run, and a directory `nobody` may enter holding a
/// hard link to `socket`; both removed on drop.
struct ProbeSetup<'a> {
    sandbox: &'a Sandbox,
    probe_dir: PathBuf,
    link_dir: PathBuf,
}

impl<'a> ProbeSetup<'a> {
    fn new(sandbox: &'a Sandbox, socket: &Path) -> ProbeSetup<'a> {
        let name = unique_id("peer-probe");
        let probe_dir = sandbox.root.join(&name);
        std::fs::create_dir_all(&probe_dir).expect("probe directory");
        std::fs::set_permissions(&probe_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::copy(env!("CARGO_BIN_EXE_peer_probe"), probe_dir.join("peer_probe")).expect("copy the probe");
        std::fs::set_permissions(probe_dir.join("peer_probe"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // The link must be on the socket's filesystem, the sandbox's /run.
        let link_dir = PathBuf::from("/run").join(&name);
        let setup = ProbeSetup { sandbox, probe_dir, link_dir };
        let host_link_dir = sandbox.host_path(&setup.link_dir);
        std::fs::create_dir(&host_link_dir).expect("link directory");
        std::fs::set_permissions(&host_link_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::hard_link(sandbox.host_path(socket), sandbox.host_path(setup.link()))
            .expect("hard link to the socket");
        setup
    }

    /// The socket's hard link, as seen from the sandbox.
    fn link(&self) -> PathBuf {
        self.link_dir.join("socket")
    }

    /// Runs the probe against the link, as `nobody` or as root.
    fn probe(&self, as_nobody: bool) -> Run {
        let probe = self.probe_dir.join("peer_probe");
        let (probe, link) = (probe.to_str().expect("utf-8"), self.link());
        let link = link.to_str().expect("utf-8");
        let run = if as_nobody {
            self.sandbox.run(&["setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", probe, link])
        } else {
            self.sandbox.run(&[probe, link])
        };
        run.success("peer_probe")
    }

    /// Sets the socket's mode (through the link: one inode).
    fn chmod_socket(&self, mode: u32) {
        std::fs::set_permissions(self.sandbox.host_path(self.link()), std::fs::Permissions::from_mode(mode))
            .expect("chmod the socket");
    }
}

impl Drop for ProbeSetup<'_> {
    fn drop(&mut self) {
        // Whatever failed, the socket is root's only again.
        let _ = std::fs::set_permissions(self.sandbox.host_path(self.link()), std::fs::Permissions::from_mode(0o600));
        let _ = std::fs::remove_dir_all(self.sandbox.host_path(&self.link_dir));
        let _ = std::fs::remove_dir_all(&self.probe_dir);
    }
}

/// The `key: value` line `key` of the probe's output.
fn field<'a>(run: &'a Run, key: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {key:?} in {run:?}"))
}

#[test]
fn the_daemons_sockets_are_root_owned_and_0600_in_a_closed_directory() {
    let sandbox = Sandbox::get();
    let socket = namespace_socket(sandbox);
    for socket in [socket, control_socket()] {
        let meta = std::fs::metadata(sandbox.host_path(&socket)).unwrap_or_else(|error| panic!("{socket:?}: {error}"));
        assert_eq!(meta.mode() & 0o7777, 0o600, "{} mode", socket.display());
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{} owner", socket.display());
        let dir = socket.parent().expect("a directory");
        let dir_meta = std::fs::metadata(sandbox.host_path(dir)).expect("socket directory");
        assert_eq!(dir_meta.uid(), 0, "{} owner", dir.display());
        assert_eq!(dir_meta.mode() & 0o022, 0, "{} is writable by others: {:o}", dir.display(), dir_meta.mode());
    }
}

#[tokio::test]
async fn another_uid_is_refused_by_the_socket_mode_and_by_its_peer_credentials_and_logged() {
    let sandbox = Sandbox::get();
    let socket = namespace_socket(sandbox);
    let client = client(sandbox, NAMESPACE).await;
    let setup = ProbeSetup::new(sandbox, &socket);

    // Root through the link is served: the link reaches the daemon.
    let root = setup.probe(false);
    assert_eq!((field(&root, "connect"), field(&root, "request")), ("ok", "answered NOT_FOUND"), "{root:?}");

    // Mode 0600: nobody cannot even connect.
    let refused_by_mode = setup.probe(true);
    assert_eq!(field(&refused_by_mode, "connect"), "EACCES", "{refused_by_mode:?}");

    // World-writable by mistake: nobody connects, and the daemon drops the connection.
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() - 1;
    setup.chmod_socket(0o666);
    let refused_by_credentials = setup.probe(true);
    setup.chmod_socket(0o600);
    assert_eq!(field(&refused_by_credentials, "connect"), "ok", "{refused_by_credentials:?}");
    assert!(field(&refused_by_credentials, "request").starts_with("closed"), "{refused_by_credentials:?}");

    let pid = field(&refused_by_credentials, "pid").to_string();
    let needle = format!("refused a connection from uid {NOBODY} pid Some({pid})");
    let mut journal = String::new();
    let logged = wait_until(Duration::from_secs(10), || {
        let since = format!("@{since}");
        let args = ["journalctl", "-u", "containerd-shim-systemd-v1-*", "--since", &since, "--no-pager", "-o", "cat"];
        journal = sandbox.run(&args).stdout;
        journal.contains(&needle)
    });
    assert!(logged, "the refusal is not in the daemon's journal ({needle:?}):\n{journal}");

    // The daemon serves root as before, on the socket and on the connection it had.
    let request = containerd_shim_protos::api::StateRequest { id: "no-such-task".into(), ..Default::default() };
    match client.state(context(), &request).await {
        Err(ttrpc::Error::RpcStatus(status)) => assert_eq!(status.code(), ttrpc::Code::NOT_FOUND),
        other => panic!("the daemon stopped serving root: {other:?}"),
    }
    let meta = std::fs::metadata(sandbox.host_path(&socket)).expect("socket");
    assert_eq!(meta.mode() & 0o7777, 0o600, "the socket's mode is restored");
}

/// The daemon runs as root for every tenant and parses what containerd and D-Bus send it: its
/// binary is position-independent (ELF type `ET_DYN`), so its addresses are randomised.
#[test]
fn the_shim_binary_is_position_independent() {
    let sandbox = tests::Sandbox::get();
    let binary = std::fs::read(&sandbox.shim).expect("the shim binary");
    assert_eq!(&binary[..4], b"\x7fELF", "{} is an ELF file", sandbox.shim);
    const ET_DYN: u16 = 3;
    let elf_type = u16::from_le_bytes([binary[16], binary[17]]);
    assert_eq!(elf_type, ET_DYN, "{} is position-independent (readelf -h: DYN)", sandbox.shim);
}
