//! `SdNotify`: what a container may tell systemd about its unit. systemd takes `MAINPID=`,
//! `STOPPING=1`, `EXTEND_TIMEOUT_USEC=` and more from any uid-0 sender it accepts, and root in
//! a container without a user namespace is uid 0: a container given systemd's own socket could
//! name any host process as its unit's main process, which the unit's stop then kills. So the
//! container gets a socket of ours instead, and a relay in the unit (forked by the helper, a
//! process of the unit's own, like the stdio copiers) passes on only `READY=1` and `STATUS=…`.
//! The main process is named by the helper itself (`MAINPID=` of the init runc created).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::unistd::{fork, ForkResult};

use crate::Error;

/// Where the container finds the relay's socket (and `NOTIFY_SOCKET` names it).
pub const CONTAINER_NOTIFY_SOCKET: &str = "/run/notify/notify.sock";

/// The largest notification read; systemd's own limit is about the same (its `NOTIFY_BUFFER_MAX`).
const MAX_MESSAGE: usize = 4096;

/// A relay that runs.
#[derive(Debug)]
pub struct NotifyRelay {
    /// Its socket's path on the host, to be mounted at [`CONTAINER_NOTIFY_SOCKET`].
    pub socket: PathBuf,
    /// The relay process.
    pub pid: nix::unistd::Pid,
}

/// The lines of `message` a container may send to systemd: `READY=1` and `STATUS=…`, joined
/// again; `None` if there are none.
pub fn forwardable(message: &str) -> Option<String> {
    let kept: Vec<&str> =
        message.split('\n').filter(|line| *line == "READY=1" || line.starts_with("STATUS=")).collect();
    (!kept.is_empty()).then(|| kept.join("\n"))
}

/// Binds the relay's socket at `<bundle>/shim-notify/notify.sock` (writable by any user of the
/// container) and forks the relay, which forwards what [`forwardable`] keeps to `systemd_socket`
/// (the unit's `$NOTIFY_SOCKET`) until the unit stops. Call with no other thread running (it
/// forks).
pub fn start_notify_relay(bundle: &Path, systemd_socket: &str) -> Result<NotifyRelay, Error> {
    if !systemd_socket.starts_with('/') {
        return Err(Error::NotifySocket { socket: systemd_socket.to_string() });
    }
    let dir = bundle.join(crate::protocol::files::NOTIFY_DIR);
    let path = dir.join("notify.sock");
    let state_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::StateFile { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(state_error(&dir))?;
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(state_error(&path)(error)),
        _ => {}
    }
    let socket = UnixDatagram::bind(&path).map_err(state_error(&path))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).map_err(state_error(&path))?;
    // SAFETY: the helper is single-threaded here (no runtime, no threads yet), so the child may
    // allocate and use the socket freely before it runs its loop.
    match unsafe { fork() }.map_err(|source| Error::Supervise { action: "forking the notify relay", source })? {
        ForkResult::Child => {
            let code = match relay(&socket, systemd_socket) {
                Ok(()) => 0,
                Err(error) => {
                    tracing::error!("notify relay: {error}");
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => Ok(NotifyRelay { socket: path, pid: child }),
    }
}

/// Forwards what the container may say, until the socket fails (the unit stopping ends the
/// process first).
fn relay(socket: &UnixDatagram, systemd_socket: &str) -> std::io::Result<()> {
    let mut buffer = vec![0u8; MAX_MESSAGE];
    loop {
        let length = socket.recv(&mut buffer)?;
        let message = String::from_utf8_lossy(&buffer[..length]);
        match forwardable(&message) {
            Some(kept) => {
                if let Err(error) = crate::notify::send_state(systemd_socket, &kept) {
                    tracing::warn!("notify relay: passing {kept:?} on to systemd: {error}");
                }
            }
            None => tracing::info!("notify relay: dropped a notification the container may not send: {message:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::scratch_dir;
    use std::time::Duration;

    #[test]
    fn only_ready_and_status_pass() {
        assert_eq!(forwardable("READY=1").as_deref(), Some("READY=1"));
        assert_eq!(forwardable("READY=1\nSTATUS=serving").as_deref(), Some("READY=1\nSTATUS=serving"));
        assert_eq!(forwardable("MAINPID=1\nREADY=1\nSTOPPING=1").as_deref(), Some("READY=1"));
        for hostile in ["MAINPID=1234", "STOPPING=1", "EXTEND_TIMEOUT_USEC=999999999", "FDSTORE=1", "READY=10", ""] {
            assert_eq!(forwardable(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn the_relay_passes_on_what_is_allowed_and_nothing_else() {
        let dir = scratch_dir("notify-relay", "pass");
        let systemd = dir.join("systemd.sock");
        let fake_systemd = UnixDatagram::bind(&systemd).expect("fake systemd socket");
        fake_systemd.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let bundle = dir.join("bundle");
        let relay = start_notify_relay(&bundle, systemd.to_str().expect("utf-8")).expect("relay");
        let container = UnixDatagram::unbound().expect("container side");
        container.send_to(b"MAINPID=1\nSTOPPING=1", &relay.socket).expect("hostile");
        container.send_to(b"STATUS=up\nMAINPID=1\nREADY=1", &relay.socket).expect("ready");
        let mut buffer = [0u8; 256];
        let received = fake_systemd.recv(&mut buffer);
        let _ = nix::sys::signal::kill(relay.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(relay.pid, None);
        let length = received.expect("forwarded");
        assert_eq!(
            &buffer[..length],
            b"STATUS=up\nREADY=1",
            "only the allowed lines, and the hostile datagram not at all"
        );
    }
}
