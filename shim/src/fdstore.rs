//! systemd's file-descriptor store: the daemon hands its listening sockets and containerd's
//! accepted connections to systemd (`FDSTORE=1` with `FDNAME=`, sd_notify(3)) and gets them back
//! as `LISTEN_FDS`/`LISTEN_FDNAMES` when systemd restarts it, so a crash or `systemctl restart`
//! closes nothing containerd holds. systemd drops a stored connection by itself once its peer
//! hangs up (POLLHUP).

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use unit_gen::{validate_identifier, IdentifierKind};

use crate::connection_id::ConnectionId;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// What a stored descriptor is, from its `FDNAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredFd {
    /// The control socket `start` talks to.
    Control,
    /// The listening ttrpc socket of a containerd namespace.
    NamespaceListener(String),
    /// An accepted ttrpc connection from containerd in a namespace, with the id its pending
    /// `Wait` calls are noted under.
    Connection {
        /// The namespace.
        namespace: String,
        /// The connection's id.
        id: ConnectionId,
    },
}

impl StoredFd {
    /// The `FDNAME` (at most 255 characters, no `:`-free requirement; namespaces are
    /// identifiers, so `/` separates safely).
    pub fn name(&self) -> String {
        match self {
            StoredFd::Control => "control".to_string(),
            StoredFd::NamespaceListener(namespace) => format!("listen/{namespace}"),
            StoredFd::Connection { namespace, id } => format!("conn/{namespace}/{id}"),
        }
    }

    /// Parses an `FDNAME`; unknown names give `None`. A name is checked as strictly as a
    /// request would be (the namespace an identifier, the connection id a [`ConnectionId`]):
    /// both become paths, and whoever can pass descriptors to systemd's store can name them.
    pub fn parse(name: &str) -> Option<StoredFd> {
        let namespace = |namespace: &str| validate_identifier(IdentifierKind::Namespace, namespace).ok();
        match name.split_once('/') {
            None if name == "control" => Some(StoredFd::Control),
            Some(("listen", listened)) => {
                namespace(listened)?;
                Some(StoredFd::NamespaceListener(listened.to_string()))
            }
            Some(("conn", rest)) => {
                let (connected, id) = rest.split_once('/')?;
                namespace(connected)?;
                Some(StoredFd::Connection { namespace: connected.to_string(), id: ConnectionId::parse(id).ok()? })
            }
            _ => None,
        }
    }
}

/// The descriptors systemd passed to this process, by kind. Takes them out of the environment
/// (a child must not believe they are its own). Unknown or invalid names are closed.
pub fn take_listen_fds() -> Vec<(StoredFd, OwnedFd)> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let ours = pid.and_then(|pid| pid.parse::<u32>().ok()) == Some(std::process::id());
    let count: RawFd = count.and_then(|count| count.parse().ok()).filter(|_| ours).unwrap_or(0);
    let names: Vec<&str> = names.split(':').collect();
    (0..count)
        .filter_map(|index| {
            let raw = LISTEN_FDS_START + index;
            // SAFETY: systemd passed fds 3..3+LISTEN_FDS to this process (LISTEN_PID is ours),
            // nothing else owns them, and each is taken exactly once here.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
            let name = names.get(usize::try_from(index).ok()?).copied().unwrap_or_default();
            let kind = StoredFd::parse(name);
            if kind.is_none() {
                tracing::warn!(
                    "closing a descriptor systemd passed back under an unknown or invalid name {name:?} (fd {raw})"
                );
            }
            Some((kind?, fd))
        })
        .collect()
}

/// Stores `fd` in systemd's fd store as `kind`. Without `$NOTIFY_SOCKET` (not under systemd)
/// there is no store, and that is not an error.
pub fn store(fd: BorrowedFd<'_>, kind: &StoredFd) -> std::io::Result<()> {
    runc_wrap::notify::notify_with_fd(&format!("FDSTORE=1\nFDNAME={}", kind.name()), fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names_round_trip() {
        for kind in [
            StoredFd::Control,
            StoredFd::NamespaceListener("k8s.io".into()),
            StoredFd::Connection { namespace: "default".into(), id: ConnectionId::parse("123-4").unwrap() },
        ] {
            assert_eq!(StoredFd::parse(&kind.name()), Some(kind.clone()), "{kind:?}");
        }
        assert_eq!(StoredFd::parse("stored"), None);
        assert_eq!(StoredFd::parse("conn/"), None);
        assert_eq!(StoredFd::parse("conn/default"), None, "a connection needs its id");
        assert_eq!(StoredFd::parse("other/x"), None);
    }

    #[test]
    fn hostile_connection_ids_and_namespaces_are_refused() {
        for name in [
            "conn/default/..",
            "conn/default/.",
            "conn/default/a/b",
            "conn/default/",
            "conn/../123-4",
            "conn/a/b/123-4",
            "listen/..",
            "listen/a/b",
            "listen/",
        ] {
            assert_eq!(StoredFd::parse(name), None, "{name:?}");
        }
    }
}
