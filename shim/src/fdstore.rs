//! systemd's file-descriptor store: the daemon hands its listening sockets and containerd's
//! accepted connections to systemd (`FDSTORE=1` with `FDNAME=`, sd_notify(3)) and gets them back
//! as `LISTEN_FDS`/`LISTEN_FDNAMES` when systemd restarts it, so a crash or `systemctl restart`
//! closes nothing containerd holds. systemd drops a stored connection by itself once its peer
//! hangs up (POLLHUP).
//!
//! Messages go out without blocking (see [`runc_wrap::notify`]): while PID 1's queue is full,
//! [`FdStore`] retries on the runtime's timer, so the daemon's one runtime thread keeps serving.
//!
//! The store holds at most the unit's `FileDescriptorStoreMax=` descriptors, and systemd
//! closes any beyond that without telling the sender (systemd.service(5)): a connection lost
//! so would close at the next restart, and containerd would take its task for dead. So
//! [`FdStore`] counts what it holds and refuses to store past the limit, while the connection
//! can still be refused cleanly.
//!
//! No crate does this part: sd-notify's `fdstore` feature sends `FDSTORE=1` blocking and knows
//! nothing of the store's limit (see [`runc_wrap::notify`] for why its sends do not fit), and
//! the names (`control`, `listen/<namespace>`, `conn/<namespace>/<id>`) are ours.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use runc_wrap::notify::{NotifySocket, RETRY_DELAYS};

use crate::error::Error;

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
///
/// Why not `sd-notify`'s `listen_fds_with_names` (0.5): it hands out bare `RawFd`s, and a
/// `LISTEN_FDNAMES` whose count differs from `LISTEN_FDS` fails the whole set, leaving every
/// descriptor open and owned by nobody. Here each descriptor becomes an `OwnedFd` at once, and
/// one with a bad name is closed alone (it would otherwise keep a containerd connection open
/// that nobody serves).
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

/// systemd's fd store of this daemon, reached through its notification socket, and how full
/// it is.
#[derive(Debug)]
pub struct FdStore {
    /// `None` when the daemon does not run under systemd: there is no store.
    notify_socket: Option<NotifySocket>,
    /// The unit's `FileDescriptorStoreMax=`.
    capacity: u32,
    /// How many descriptors the store holds.
    held: AtomicU32,
}

impl FdStore {
    /// The store behind `notify_socket` (`$NOTIFY_SOCKET`; none without it), which holds at
    /// most `capacity` descriptors and already holds `held` (the ones systemd passed back).
    pub fn new(notify_socket: Option<NotifySocket>, capacity: u32, held: u32) -> FdStore {
        FdStore { notify_socket, capacity, held: AtomicU32::new(held) }
    }

    /// Stores `fd` as `kind`, if the store has room for it. Without a store (not under
    /// systemd) there is nothing to do, and that is not an error.
    pub async fn store(&self, fd: BorrowedFd<'_>, kind: &StoredFd) -> Result<(), Error> {
        if self.notify_socket.is_none() {
            return Ok(());
        }
        let capacity = self.capacity;
        self.held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| (held < capacity).then_some(held + 1))
            .map_err(|_| Error::FdStoreFull { name: kind.name(), capacity })?;
        let sent = self.send(&format!("FDSTORE=1\nFDNAME={}", kind.name()), Some(fd)).await;
        if let Err(error) = sent {
            self.released();
            return Err(Error::io(format!("keeping {} in systemd's fd store", kind.name()), error));
        }
        Ok(())
    }

    /// Takes `kind` out of the store (`FDSTOREREMOVE=1`): systemd closes its copy, and a
    /// restarted daemon does not get it back. Its place is free again even if the message is
    /// lost: systemd drops a stored socket whose peer hung up by itself.
    pub async fn remove(&self, kind: &StoredFd) -> Result<(), Error> {
        if self.notify_socket.is_none() {
            return Ok(());
        }
        self.released();
        self.send(&format!("FDSTOREREMOVE=1\nFDNAME={}", kind.name()), None)
            .await
            .map_err(|error| Error::io(format!("taking {} out of systemd's fd store", kind.name()), error))
    }

    /// How many descriptors the store holds.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::SeqCst)
    }

    fn released(&self) {
        let _ = self.held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| Some(held.saturating_sub(1)));
    }

    /// Sends `state` without blocking the runtime: a full queue is retried after each of
    /// [`RETRY_DELAYS`], sleeping on the runtime's timer, and then fails.
    async fn send(&self, state: &str, fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
        let Some(socket) = &self.notify_socket else {
            return Ok(());
        };
        for delay in RETRY_DELAYS {
            match socket.try_send(state, fd) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => tokio::time::sleep(delay).await,
                sent => return sent,
            }
        }
        socket.try_send(state, fd).map_err(|error| socket.still_full(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fake_notify_socket, next_notification, scratch};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Fills `socket`'s queue until a fresh sender cannot add one message (a sender's own
    /// buffer can run out first, so each round starts a new one).
    fn fill(socket: &NotifySocket) {
        loop {
            let filler = UnixDatagram::unbound().unwrap();
            filler.set_nonblocking(true).unwrap();
            let mut sent = 0;
            while filler.send_to(b"STATUS=filler", socket.address()).is_ok() {
                sent += 1;
            }
            if sent == 0 {
                return;
            }
        }
    }

    #[test]
    fn a_full_notification_queue_fails_the_store_without_stalling_the_runtime() {
        let dir = scratch("fdstore-full");
        let (_receiver, socket) = fake_notify_socket(&dir);
        fill(&socket);
        let store = FdStore::new(Some(socket), 10, 0);
        let (kept, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        // The daemon's runtime: one thread. Run apart, so a store that blocks it fails the test
        // instead of hanging it.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let _ = done.send(runtime.block_on(async move {
                // Ticks only while the runtime's thread is free.
                let ticks = Arc::new(AtomicUsize::new(0));
                let ticker = tokio::spawn({
                    let ticks = Arc::clone(&ticks);
                    async move {
                        loop {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            ticks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                let started = Instant::now();
                let stored = store.store(kept.as_fd(), &StoredFd::Control).await;
                ticker.abort();
                (stored, started.elapsed(), ticks.load(Ordering::SeqCst))
            }));
        });
        let (stored, elapsed, ticks) =
            outcome.recv_timeout(Duration::from_secs(5)).expect("the store returned instead of blocking the runtime");
        let Err(Error::Io { source, .. }) = stored else { panic!("nobody could take the descriptor: {stored:?}") };
        assert_eq!(source.kind(), std::io::ErrorKind::WouldBlock, "{source}");
        assert!(elapsed < Duration::from_secs(2), "retried for {elapsed:?}");
        assert!(ticks >= 10, "the runtime ran other tasks meanwhile ({ticks} ticks)");
    }

    #[tokio::test]
    async fn a_stored_descriptor_reaches_the_notification_socket_with_its_name() {
        let dir = scratch("fdstore-stored");
        let (receiver, socket) = fake_notify_socket(&dir);
        let store = FdStore::new(Some(socket), 10, 0);
        let (kept, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let kind = StoredFd::Connection { namespace: "default".into(), id: ConnectionId::parse("1-0").unwrap() };
        store.store(kept.as_fd(), &kind).await.unwrap();
        assert_eq!(next_notification(&receiver), "FDSTORE=1\nFDNAME=conn/default/1-0");
    }

    #[tokio::test]
    async fn without_systemd_there_is_no_store_and_no_error() {
        let (kept, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        FdStore::new(None, 1, 1).store(kept.as_fd(), &StoredFd::Control).await.unwrap();
    }

    #[tokio::test]
    async fn a_full_store_refuses_a_descriptor_until_one_leaves_it() {
        let dir = scratch("fdstore-capacity");
        let (receiver, socket) = fake_notify_socket(&dir);
        // Two places, one taken by the control socket systemd passed back.
        let store = FdStore::new(Some(socket), 2, 1);
        let (kept, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let first = StoredFd::Connection { namespace: "default".into(), id: ConnectionId::parse("1-0").unwrap() };
        let second = StoredFd::Connection { namespace: "default".into(), id: ConnectionId::parse("1-1").unwrap() };
        store.store(kept.as_fd(), &first).await.unwrap();
        assert_eq!(next_notification(&receiver), "FDSTORE=1\nFDNAME=conn/default/1-0");
        let refused = store.store(kept.as_fd(), &second).await.unwrap_err();
        assert!(
            matches!(&refused, Error::FdStoreFull { name, capacity: 2 } if name == "conn/default/1-1"),
            "{refused:?}"
        );
        // The message is the contract: it names the setting that raises the limit.
        assert!(refused.to_string().contains("fd_store_max"), "{refused}");
        store.remove(&first).await.unwrap();
        assert_eq!(next_notification(&receiver), "FDSTOREREMOVE=1\nFDNAME=conn/default/1-0");
        store.store(kept.as_fd(), &second).await.unwrap();
        assert_eq!(next_notification(&receiver), "FDSTORE=1\nFDNAME=conn/default/1-1");
        assert_eq!(store.held(), 2);
    }

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
