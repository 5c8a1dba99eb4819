//! What the unit tests share.

use std::ops::Deref;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use runc_wrap::notify::NotifySocket;

/// A fresh, empty directory under the temporary directory, named for the test and this
/// process, and removed with everything in it when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A directory named `shim-<name>-<pid>`.
    pub fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("shim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        ScratchDir(dir)
    }
}

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
