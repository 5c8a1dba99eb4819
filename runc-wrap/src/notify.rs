//! `sd_notify(3)`: tells systemd the daemon is ready (`READY=1`) over `$NOTIFY_SOCKET`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1`) to systemd. Without `$NOTIFY_SOCKET` (not run by systemd as
/// `Type=notify`) there is no one to tell, and that is not an error.
pub fn notify(state: &str) -> std::io::Result<()> {
    let Some(socket_path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket_path = socket_path.to_string_lossy().into_owned();
    // An '@' prefix names a socket in the abstract namespace.
    let address = match socket_path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
        None => SocketAddr::from_pathname(&socket_path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}
