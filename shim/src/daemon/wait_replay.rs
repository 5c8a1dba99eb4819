//! Pending `Wait` calls survive a daemon restart.
//!
//! containerd's connections outlive the daemon (systemd's fd store keeps them), but a request the
//! old daemon had read and not answered would stay unanswered forever. Short calls finish before a
//! graceful stop; `Wait` lasts as long as the process does. So every containerd connection passes
//! through a small frame relay: it notes each `Wait` request (its raw ttrpc frame) in a file
//! before the ttrpc server sees it, and drops the note when the answer goes out. A restarted
//! daemon feeds the noted frames of each kept connection to its own server first, as if
//! containerd had just sent them: the same stream ids, so containerd takes the answers as
//! replies to its original calls. `Wait` is idempotent, so a replay never does harm.
//!
//! The relay also lets a graceful stop (`systemctl restart`) finish cleanly: on SIGTERM it stops
//! reading new requests (they wait in the socket for the next daemon) and the daemon exits once
//! every short call it has read is answered.
//!
//! A connection the relay is done with (containerd closed it, or it sent what cannot be read)
//! leaves systemd's fd store. One it gives up on is also shut down: the store's copy would
//! otherwise keep it open, and containerd would wait on it until its calls time out.
//!
//! ttrpc frames: a 10-byte header (length u32 BE, stream id u32 BE, type u8, flags u8), then
//! `length` bytes; requests (type 1) carry a `ttrpc.Request` with the method name.
//!
//! Why this is written here: containerd treats a closed shim connection as a dead shim and
//! cleans its tasks up (it reconnects only when it restarts itself), since a v2 shim is not
//! meant to restart ("don't cleanup after containerd-shim-v2 crash",
//! <https://github.com/containerd/containerd/issues/6737>, answered "ShimV2 will cleanup the
//! resource after shim is dead"; "when the ttrpc connection is closed somehow, the containerd
//! task manager will start to cleanup dead shim", in
//! <https://github.com/containerd/containerd/pull/6031>). So the connections must outlive the
//! daemon, and then a `Wait` the old daemon had read would go unanswered for good: its
//! connection stays open, so nothing tells containerd's client to give up or ask again.
//! ttrpc-rust (0.10) has nothing for this either: its server's `shutdown` and `disconnect`
//! close the active connections, and it cannot be handed a request another process read. The
//! relay is the smallest piece that closes the gap.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::protobuf::Message;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::{watch, Notify};

use crate::connection_id::{ConnectionId, ConnectionIds};
use crate::fdstore::{FdStore, StoredFd};

const HEADER_LENGTH: usize = 10;
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
/// ttrpc's own limit on a message body.
const MAX_BODY: usize = 4 << 20;

/// Where a daemon notes pending `Wait` frames: `<its state dir>/pending-waits/<connection id>/<stream id>`.
pub fn pending_dir(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("pending-waits")
}

/// One ttrpc frame, header included.
struct Frame {
    bytes: Vec<u8>,
}

impl Frame {
    fn stream_id(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    fn kind(&self) -> u8 {
        self.bytes[8]
    }

    /// Whether this is a request for a `…Task/Wait` method.
    fn is_wait_request(&self) -> bool {
        self.kind() == TYPE_REQUEST
            && ttrpc::Request::parse_from_bytes(&self.bytes[HEADER_LENGTH..])
                .is_ok_and(|request| request.method == "Wait" && request.service.ends_with(".Task"))
    }
}

async fn read_frame(reader: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Option<Frame>> {
    read_frame_after(&[], reader).await
}

/// Reads a frame whose first bytes, `start` (at most a header's worth), were already read.
async fn read_frame_after(start: &[u8], reader: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; HEADER_LENGTH];
    header[..start.len()].copy_from_slice(start);
    match reader.read_exact(&mut header[start.len()..]).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && start.is_empty() => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if length > MAX_BODY {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("ttrpc frame of {length} bytes")));
    }
    let mut bytes = Vec::with_capacity(HEADER_LENGTH + length);
    bytes.extend_from_slice(&header);
    bytes.resize(HEADER_LENGTH + length, 0);
    reader.read_exact(&mut bytes[HEADER_LENGTH..]).await?;
    Ok(Some(Frame { bytes }))
}

/// What [`next_frame`] found on containerd's side of a connection.
enum NextFrame {
    /// A whole frame, counted in flight.
    Frame(Frame),
    /// A drain began before the next frame did: nothing more is read here.
    Draining,
    /// containerd closed the connection.
    Closed,
    /// Reading failed.
    Failed(std::io::Error),
}

/// Waits for the next frame from containerd, unless a drain begins first.
///
/// A drain must never cut a frame in two, nor leave one read and unanswered: the old daemon
/// would take it to its grave, and containerd would wait forever for the answer. So the wait
/// is cut short by a drain up to the frame's first byte, and from then on the frame is read
/// whole and counted in flight, which the drain waits for. Readiness alone is no sign of a
/// frame (tokio keeps a socket "readable" until a read would block), so the first bytes are
/// taken with a non-blocking read, and a read that would block goes back to waiting. Counting
/// in flight before checking the drain flag, against the drain setting its flag before
/// counting, leaves no gap between the two.
async fn next_frame(
    socket: &UnixStream,
    reader: &mut Shared,
    relays: &Relays,
    draining: &mut watch::Receiver<bool>,
) -> NextFrame {
    loop {
        tokio::select! {
            biased;
            () = until_draining(draining) => return NextFrame::Draining,
            readable = socket.readable() => if let Err(error) = readable { return NextFrame::Failed(error) },
        }
        relays.started();
        if relays.is_draining() {
            relays.finished();
            return NextFrame::Draining;
        }
        let mut header = [0u8; HEADER_LENGTH];
        let first = match socket.try_read(&mut header) {
            Ok(0) => Err(NextFrame::Closed),
            Ok(count) => Ok(count),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                relays.finished();
                continue;
            }
            Err(error) => Err(NextFrame::Failed(error)),
        };
        let frame = match first {
            Ok(count) => read_frame_after(&header[..count], reader).await,
            Err(outcome) => {
                relays.finished();
                return outcome;
            }
        };
        return match frame {
            Ok(Some(frame)) => NextFrame::Frame(frame),
            Ok(None) => {
                relays.finished();
                NextFrame::Closed
            }
            Err(error) => {
                relays.finished();
                NextFrame::Failed(error)
            }
        };
    }
}

/// What all relays share: connection ids unique across daemon restarts (see
/// [`ConnectionIds`]), the count of short calls in flight, the drain switch, and the fd store
/// their connections are kept in.
pub struct Relays {
    notes_dir: PathBuf,
    fd_store: Arc<FdStore>,
    ids: ConnectionIds,
    in_flight: AtomicUsize,
    answered: Notify,
    draining: watch::Sender<bool>,
    /// Set with the watch, for the reader's check that must be ordered against `in_flight`.
    draining_now: AtomicBool,
}

impl Relays {
    /// No relay yet; notes go under `notes_dir`, connections are kept in `fd_store` and named
    /// by `ids`.
    pub fn new(notes_dir: PathBuf, fd_store: Arc<FdStore>, ids: ConnectionIds) -> Relays {
        Relays {
            notes_dir,
            fd_store,
            ids,
            in_flight: AtomicUsize::new(0),
            answered: Notify::new(),
            draining: watch::channel(false).0,
            draining_now: AtomicBool::new(false),
        }
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> ConnectionId {
        self.ids.next()
    }

    /// The directory of connection `id`'s pending `Wait` notes: always one level below the
    /// notes directory, as a [`ConnectionId`] is one plain path component.
    fn notes_of(&self, id: &ConnectionId) -> PathBuf {
        self.notes_dir.join(id.as_str())
    }

    /// Stops reading new requests and waits (at most `timeout`) until every short call that was
    /// read has been answered. Pending `Wait` calls are left to the next daemon's replay.
    /// Returns once a drain has begun.
    pub async fn until_draining(&self) {
        let mut draining = self.draining.subscribe();
        until_draining(&mut draining).await;
    }

    pub async fn drain(&self, timeout: Duration) {
        self.draining_now.store(true, Ordering::SeqCst);
        self.draining.send_replace(true);
        let finished = tokio::time::timeout(timeout, async {
            loop {
                let answered = self.answered.notified();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                answered.await;
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!("{} call(s) still unanswered after {timeout:?}", self.in_flight.load(Ordering::SeqCst));
        }
    }

    /// Whether a drain has begun; read after counting a call under way.
    fn is_draining(&self) -> bool {
        self.draining_now.load(Ordering::SeqCst)
    }

    /// Counts a call under way, which a drain waits for.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// The call counted by [`Relays::started`] is answered.
    pub fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.answered.notify_waiters();
    }
}

/// How a connection reached the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Just accepted: any notes under its id are stale (its id is fresh, so there should be none).
    Accepted,
    /// Kept in systemd's fd store across a restart: its notes are replayed.
    Kept,
}

/// Puts the relay between containerd's `connection` (of `namespace`, kept in the fd store
/// under `connection_id`) and the ttrpc server; returns the server's end. For a kept
/// connection, the frames an earlier daemon noted are replayed first.
pub fn relay(
    relays: Arc<Relays>,
    connection: UnixStream,
    namespace: String,
    connection_id: ConnectionId,
    origin: Origin,
) -> std::io::Result<UnixStream> {
    let (server_end, relay_end) = UnixStream::pair()?;
    let notes = Arc::new(relays.notes_of(&connection_id));
    let stored_as = StoredFd::Connection { namespace, id: connection_id };
    let containerd_side = Arc::new(connection);
    let mut from_containerd = Shared(Arc::clone(&containerd_side));
    let mut to_containerd = Shared(Arc::clone(&containerd_side));
    let (mut from_server, mut to_server) = relay_end.into_split();
    // Short calls read and not yet answered, by stream id.
    let short_calls = Arc::new(Mutex::new(HashSet::new()));

    let requests_notes = Arc::clone(&notes);
    let requests_relays = Arc::clone(&relays);
    let requests_short = Arc::clone(&short_calls);
    tokio::spawn(async move {
        if origin == Origin::Accepted {
            forget_all(&requests_notes).await;
        }
        for frame in replayed(&requests_notes).await {
            if to_server.write_all(&frame).await.is_err() {
                return;
            }
        }
        let mut draining = requests_relays.draining.subscribe();
        loop {
            match next_frame(&containerd_side, &mut from_containerd, &requests_relays, &mut draining).await {
                NextFrame::Frame(frame) => {
                    // The frame counts as in flight from its first byte (see `next_frame`). A
                    // short call stays counted until its answer is written; anything else is
                    // done once it is passed on (a `Wait` once it is noted, for replay).
                    let short = frame.kind() == TYPE_REQUEST && !frame.is_wait_request();
                    if frame.is_wait_request() {
                        note(&requests_notes, &frame).await;
                    }
                    if short {
                        lock(&requests_short).insert(frame.stream_id());
                    }
                    let forwarded = to_server.write_all(&frame.bytes).await;
                    if !short {
                        requests_relays.finished();
                    }
                    if forwarded.is_err() {
                        return;
                    }
                }
                NextFrame::Draining => {
                    // Keep the server's end open: closing it would end the calls still being
                    // answered. What containerd sends from now on waits for the next daemon.
                    let _kept_open = to_server;
                    std::future::pending::<()>().await;
                    return;
                }
                NextFrame::Closed => break,
                NextFrame::Failed(error) => {
                    tracing::warn!("giving up on containerd connection {}: {error}", stored_as.name());
                    shut_down(&containerd_side, &stored_as);
                    break;
                }
            }
        }
        // The connection is closed, or given up: nothing of it can be answered any more, and
        // the next daemon must not get it back.
        let _ = to_server.shutdown().await;
        forget_all(&requests_notes).await;
        if let Err(error) = requests_relays.fd_store.remove(&stored_as).await {
            tracing::warn!("{error}");
        }
    });
    tokio::spawn(async move {
        while let Ok(Some(frame)) = read_frame(&mut from_server).await {
            let was_short = frame.kind() == TYPE_RESPONSE && lock(&short_calls).remove(&frame.stream_id());
            let written = to_containerd.write_all(&frame.bytes).await;
            // The note goes only once the answer is out: a stopping daemon can answer a Wait
            // (its process exited) and be gone before the write, and the next daemon must then
            // replay it. A note that outlives its written answer costs one extra answer, which
            // containerd drops as one for a finished call.
            if frame.kind() == TYPE_RESPONSE && !was_short && written.is_ok() {
                answered(&notes, frame.stream_id()).await;
            }
            if was_short {
                relays.finished();
            }
            if written.is_err() {
                break;
            }
        }
        // The server is gone: calls it never answered will not be.
        for _ in lock(&short_calls).drain() {
            relays.finished();
        }
    });
    Ok(server_end)
}

/// Shuts containerd's connection `stored_as` down both ways: containerd sees it close even
/// while the fd store still holds a copy (systemd drops that copy on the hang-up, or on the
/// removal that follows), instead of waiting on it until its calls time out.
fn shut_down(connection: &UnixStream, stored_as: &StoredFd) {
    use std::os::fd::AsRawFd;
    if let Err(error) = nix::sys::socket::shutdown(connection.as_raw_fd(), nix::sys::socket::Shutdown::Both) {
        tracing::warn!("shutting down containerd connection {}: {error}", stored_as.name());
    }
}

/// containerd's side of a connection, read and written through a shared reference. Not
/// `into_split`: its write half shuts the socket down when dropped, and this socket is shared
/// with systemd's fd store; a stopping daemon must leave it untouched for the next one.
struct Shared(Arc<UnixStream>);

impl AsyncRead for Shared {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(count) => {
                    buf.advance(count);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Never shuts the shared socket down.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Returns once a drain has begun.
async fn until_draining(draining: &mut watch::Receiver<bool>) {
    while !is_set(draining) {
        if draining.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn is_set(draining: &mut watch::Receiver<bool>) -> bool {
    *draining.borrow_and_update()
}

fn lock(calls: &Mutex<HashSet<u32>>) -> std::sync::MutexGuard<'_, HashSet<u32>> {
    calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn note(dir: &Arc<PathBuf>, frame: &Frame) {
    let path = dir.join(frame.stream_id().to_string());
    let bytes = frame.bytes.clone();
    let dir = PathBuf::clone(dir);
    let written = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        runc_wrap::atomic_file::write_atomically(&path, &bytes).map_err(std::io::Error::other)
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::warn!("could not note a pending Wait: {written:?}");
    }
}

async fn answered(dir: &Arc<PathBuf>, stream_id: u32) {
    let path = dir.join(stream_id.to_string());
    if tokio::fs::try_exists(&path).await.unwrap_or(false) {
        let _ = tokio::fs::remove_file(&path).await;
    }
}

async fn forget_all(dir: &Arc<PathBuf>) {
    let _ = tokio::fs::remove_dir_all(dir.as_path()).await;
}

/// The frames an earlier daemon noted for this connection, oldest stream first.
async fn replayed(dir: &Arc<PathBuf>) -> Vec<Vec<u8>> {
    let dir = PathBuf::clone(dir);
    tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut frames: Vec<(u32, Vec<u8>)> = entries
            .flatten()
            .filter_map(|entry| {
                let stream_id = entry.file_name().to_str()?.parse().ok()?;
                Some((stream_id, std::fs::read(entry.path()).ok()?))
            })
            .filter(|(_, bytes)| bytes.len() >= HEADER_LENGTH)
            .collect();
        frames.sort_by_key(|(stream_id, _)| *stream_id);
        if !frames.is_empty() {
            tracing::info!("replaying {} pending Wait call(s) on a kept connection", frames.len());
        }
        frames.into_iter().map(|(_, bytes)| bytes).collect()
    })
    .await
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fake_notify_socket, next_notification, scratch};
    use std::os::fd::AsFd;

    fn frame(stream_id: u32, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&stream_id.to_be_bytes());
        bytes.extend_from_slice(&[kind, 0]);
        bytes.extend_from_slice(body);
        bytes
    }

    fn request(service: &str, method: &str) -> Vec<u8> {
        let request = ttrpc::Request { service: service.into(), method: method.into(), ..Default::default() };
        request.write_to_bytes().expect("encode")
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_wait_requests_recognised() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let wait = frame(7, TYPE_REQUEST, &request("containerd.task.v2.Task", "Wait"));
        let state = frame(9, TYPE_REQUEST, &request("containerd.task.v2.Task", "State"));
        let response = frame(7, TYPE_RESPONSE, b"xyz");
        for bytes in [&wait, &state, &response] {
            a.write_all(bytes).await.unwrap();
        }
        drop(a);
        let first = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!((first.stream_id(), first.is_wait_request()), (7, true));
        let second = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!((second.stream_id(), second.is_wait_request()), (9, false));
        let third = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!((third.kind(), third.bytes.len()), (TYPE_RESPONSE, HEADER_LENGTH + 3));
        assert!(read_frame(&mut b).await.unwrap().is_none(), "end of stream");
    }

    /// containerd's end, the relay's end (as the relay holds it), and the shared state.
    fn connection() -> (UnixStream, Arc<UnixStream>, Relays) {
        let (containerd, daemon) = UnixStream::pair().unwrap();
        (
            containerd,
            Arc::new(daemon),
            Relays::new(PathBuf::from("/nonexistent"), Arc::new(FdStore::new(None, 0, 0)), ConnectionIds::new(1, 1)),
        )
    }

    /// A length no ttrpc frame may have.
    fn oversized_header() -> Vec<u8> {
        let mut header = u32::MAX.to_be_bytes().to_vec();
        header.extend_from_slice(&[0, 0, 0, 1, TYPE_REQUEST, 0]);
        header
    }

    #[tokio::test]
    async fn a_connection_the_relay_gives_up_on_closes_for_containerd_and_leaves_the_fd_store() {
        let dir = scratch("relay-gives-up");
        let (notifications, notify_socket) = fake_notify_socket(&dir);
        let relays = Arc::new(Relays::new(
            dir.join("pending"),
            Arc::new(FdStore::new(Some(notify_socket), 10, 0)),
            ConnectionIds::new(1, 1),
        ));
        let (mut containerd, daemon) = UnixStream::pair().unwrap();
        // systemd's copy of the daemon's end, as the fd store holds it.
        let _stored_copy = daemon.as_fd().try_clone_to_owned().unwrap();
        let _server_end =
            relay(relays, daemon, "default".into(), ConnectionId::parse("1-0").unwrap(), Origin::Accepted).unwrap();
        containerd.write_all(&oversized_header()).await.unwrap();
        let mut rest = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), containerd.read(&mut rest))
            .await
            .expect("containerd sees the connection close");
        assert_eq!(read.unwrap(), 0, "end of stream");
        let removal = tokio::task::spawn_blocking(move || next_notification(&notifications)).await.unwrap();
        assert_eq!(removal, "FDSTOREREMOVE=1\nFDNAME=conn/default/1-0");
    }

    #[tokio::test]
    async fn a_frame_that_began_before_a_drain_is_read_whole_and_counted_in_flight() {
        let (mut containerd, daemon, relays) = connection();
        let mut draining = relays.draining.subscribe();
        let state = frame(3, TYPE_REQUEST, &request("containerd.task.v2.Task", "State"));
        containerd.write_all(&state).await.unwrap();
        let next = next_frame(&daemon, &mut Shared(Arc::clone(&daemon)), &relays, &mut draining).await;
        let NextFrame::Frame(read) = next else { panic!("expected a frame") };
        assert_eq!((read.stream_id(), read.bytes.len()), (3, state.len()));
        assert_eq!(relays.in_flight.load(Ordering::SeqCst), 1, "counted until answered");
    }

    #[tokio::test]
    async fn after_a_drain_begins_the_next_frame_is_left_in_the_socket_for_the_next_daemon() {
        let (mut containerd, daemon, relays) = connection();
        let relays = Arc::new(relays);
        let mut draining = relays.draining.subscribe();
        let create = frame(1, TYPE_REQUEST, &request("containerd.task.v2.Task", "Create"));
        containerd.write_all(&create).await.unwrap();
        let mut reader = Shared(Arc::clone(&daemon));
        assert!(matches!(next_frame(&daemon, &mut reader, &relays, &mut draining).await, NextFrame::Frame(_)));
        relays.finished();
        // The socket still looks readable to tokio (no read has hit WouldBlock yet); the
        // relay waits for the next frame while the drain begins, then the frame arrives.
        let waiting = {
            let (daemon, relays) = (Arc::clone(&daemon), Arc::clone(&relays));
            tokio::spawn(async move {
                let mut reader = Shared(Arc::clone(&daemon));
                matches!(next_frame(&daemon, &mut reader, &relays, &mut draining).await, NextFrame::Draining)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        relays.drain(Duration::from_secs(5)).await;
        let connect = frame(3, TYPE_REQUEST, &request("containerd.task.v2.Task", "Connect"));
        containerd.write_all(&connect).await.unwrap();
        assert!(waiting.await.unwrap(), "the relay stops at the drain");
        assert_eq!(relays.in_flight.load(Ordering::SeqCst), 0);
        let mut left = vec![0u8; connect.len()];
        daemon.try_read(&mut left).expect("the frame is still in the socket");
        assert_eq!(left, connect, "whole and unread");
    }

    #[test]
    fn notes_of_a_kept_connection_stay_one_level_below_the_notes_directory() {
        let relays = Relays::new(
            PathBuf::from("/state/pending-waits"),
            Arc::new(FdStore::new(None, 0, 0)),
            ConnectionIds::new(1, 1),
        );
        for id in [relays.next_id(), ConnectionId::parse("123-4").unwrap()] {
            let notes = relays.notes_of(&id);
            assert_eq!(notes.parent(), Some(relays.notes_dir.as_path()), "{id}");
        }
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&frame(1, TYPE_REQUEST, &[])[..4].iter().map(|_| 0xff).collect::<Vec<_>>()).await.unwrap();
        a.write_all(&[0; 6]).await.unwrap();
        assert!(read_frame(&mut b).await.is_err());
    }
}
