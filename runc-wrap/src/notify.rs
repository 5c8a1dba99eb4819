//! `sd_notify(3)`: tells systemd the daemon is ready (`READY=1`) over `$NOTIFY_SOCKET`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1`) to systemd. Without `$NOTIFY_SOCKET` (not run by systemd as
/// `Type=notify`) there is no one to tell, and that is not an error.
pub fn notify(state: &str) -> std::io::Result<()> {
    let Some(socket_path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    send_state(&socket_path.to_string_lossy(), state)
}

/// Sends `state` to the notification socket `socket_path` (a path, or `@name` in the abstract
/// namespace), as `$NOTIFY_SOCKET` names it.
pub fn send_state(socket_path: &str, state: &str) -> std::io::Result<()> {
    // An '@' prefix names a socket in the abstract namespace.
    let address = match socket_path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
        None => SocketAddr::from_pathname(socket_path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

/// Sends `state` with `fd` attached (SCM_RIGHTS), as `FDSTORE=1` needs. Without
/// `$NOTIFY_SOCKET` there is no one to tell, and that is not an error.
pub fn notify_with_fd(state: &str, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let Some(socket_path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket_path = socket_path.to_string_lossy().into_owned();
    let address = match socket_path.strip_prefix('@') {
        Some(abstract_name) => UnixAddr::new_abstract(abstract_name.as_bytes())?,
        None => UnixAddr::new(socket_path.as_str())?,
    };
    let sender = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    let fds = [fd.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(state.as_bytes())];
    sendmsg(sender.as_raw_fd(), &iov, &control, MsgFlags::empty(), Some(&address))?;
    Ok(())
}
