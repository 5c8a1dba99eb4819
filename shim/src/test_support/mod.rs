//! What the unit tests share: scratch directories, a fake notification socket, and a fake
//! systemd Manager ([`fake_systemd`]).

pub mod fake_systemd;

use std::os::unix::net::UnixDatagram;
use std::path::Path;

use runc_wrap::notify::NotifySocket;

pub use runc_wrap::test_support::ScratchDir;

/// A [`ScratchDir`] named `shim-<name>-<pid>`.
pub fn scratch(name: &str) -> ScratchDir {
    runc_wrap::test_support::scratch_dir("shim", name)
}

/// A notification socket bound in `dir` that stands in for systemd's: what the daemon sends
/// is read from the returned receiver.
pub fn fake_notify_socket(dir: &Path) -> (UnixDatagram, NotifySocket) {
    let path = dir.join("notify.sock");
    let receiver = UnixDatagram::bind(&path).expect("bind a notification socket");
    (receiver, NotifySocket::new(path.display().to_string()))
}

/// The next message on a fake notification socket, waiting at most a few seconds.
pub fn next_notification(receiver: &UnixDatagram) -> String {
    receiver.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("set a read timeout");
    let mut message = [0u8; 512];
    let length = receiver.recv(&mut message).expect("a notification");
    String::from_utf8_lossy(&message[..length]).into_owned()
}
