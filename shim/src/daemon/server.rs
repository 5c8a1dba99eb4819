//! The daemon's sockets. A control socket (for `start`), and one ttrpc socket per containerd
//! namespace, each serving the task API under both `containerd.task.v2.Task` (containerd
//! 1.6/1.7) and `containerd.task.v3.Task` (2.x) — the protos differ only in their package name.
//! Every connection's peer credentials are checked: root, or our own uid, only.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::shim_async::create_task;
use futures::stream::{self, Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::OnceCell;
use ttrpc::asynchronous::transport::Listener;
use ttrpc::r#async::Server;
use unit_gen::{validate_identifier, IdentifierKind};

use super::manager::TaskManager;
use super::service::TaskService;
use super::wait_replay::{pending_dir, relay, Origin, Relays};
use crate::blocking::blocking;
use crate::connection_id::{ConnectionId, ConnectionIds};
use crate::control::{read_line, ControlRequest, ControlResponse, CONTROL_TIMEOUT};
use crate::error::Error;
use crate::fdstore::{FdStore, StoredFd};
use crate::paths::{unix_address, DaemonIdentity};

const TASK_V3: &str = "containerd.task.v3.Task";
const TASK_V2: &str = "containerd.task.v2.Task";

/// Sockets systemd's fd store gave back, sorted for the servers that resume them.
#[derive(Default)]
pub struct RestoredSockets {
    /// The control socket.
    pub control: Option<UnixListener>,
    /// Per namespace: its listener and the connections containerd had open.
    pub namespaces: HashMap<String, NamespaceSockets>,
}

/// One namespace's sockets from the fd store.
#[derive(Default)]
pub struct NamespaceSockets {
    /// Its listening socket.
    pub listener: Option<UnixListener>,
    /// containerd's connections, accepted before the restart, with their ids.
    pub connections: Vec<(UnixStream, ConnectionId)>,
}

impl RestoredSockets {
    /// Sorts `fds` by kind, as tokio sockets.
    pub fn from_fds(fds: Vec<(StoredFd, OwnedFd)>) -> Result<RestoredSockets, Error> {
        let mut restored = RestoredSockets::default();
        for (kind, fd) in fds {
            let adopt = |error| Error::io(format!("adopting the stored descriptor {}", kind.name()), error);
            match &kind {
                StoredFd::Control => restored.control = Some(listener_from(fd).map_err(adopt)?),
                StoredFd::NamespaceListener(namespace) => {
                    let listener = listener_from(fd).map_err(adopt)?;
                    restored.namespaces.entry(namespace.clone()).or_default().listener = Some(listener);
                }
                StoredFd::Connection { namespace, id } => {
                    let stream = std::os::unix::net::UnixStream::from(fd);
                    stream.set_nonblocking(true).map_err(adopt)?;
                    let stream = UnixStream::from_std(stream).map_err(adopt)?;
                    restored.namespaces.entry(namespace.clone()).or_default().connections.push((stream, id.clone()));
                }
            }
        }
        Ok(restored)
    }
}

fn listener_from(fd: OwnedFd) -> std::io::Result<UnixListener> {
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// Hands the control socket to systemd's fd store, so a restarted daemon gets it back; failure
/// only costs that (the next daemon binds it anew, and `start` retries meanwhile), so it is
/// logged.
pub async fn keep_control_in_fd_store(fd_store: &FdStore, control: &UnixListener) {
    if let Err(error) = fd_store.store(control.as_fd(), &StoredFd::Control).await {
        tracing::warn!("{error}");
    }
}

/// A running ttrpc server for one namespace; dropping the server would stop it.
struct Served {
    socket: PathBuf,
    _server: Mutex<Server>,
}

/// The per-namespace ttrpc servers, created on demand.
pub struct NamespaceServers {
    identity: DaemonIdentity,
    manager: Arc<TaskManager>,
    served: Mutex<HashMap<String, Arc<OnceCell<Served>>>>,
    relays: Arc<Relays>,
    fd_store: Arc<FdStore>,
}

impl NamespaceServers {
    /// No namespace served yet; listeners and connections are kept in `fd_store`, connections
    /// named by `connection_ids`.
    pub fn new(
        identity: DaemonIdentity,
        manager: Arc<TaskManager>,
        fd_store: Arc<FdStore>,
        connection_ids: ConnectionIds,
    ) -> NamespaceServers {
        let relays = Arc::new(Relays::new(pending_dir(&identity.state_dir()), Arc::clone(&fd_store), connection_ids));
        NamespaceServers { identity, manager, served: Mutex::new(HashMap::new()), relays, fd_store }
    }

    /// Stops reading new requests and waits for the short ones under way (see
    /// [`Relays::drain`]).
    pub async fn drain(&self, timeout: Duration) {
        self.relays.drain(timeout).await;
    }

    /// Serves the task API for `namespace` (once; later calls return the same socket).
    pub async fn serve(&self, namespace: &str) -> Result<PathBuf, Error> {
        self.serve_with(namespace, NamespaceSockets::default()).await
    }

    /// Serves `namespace` again after a restart, with the listener and containerd's
    /// connections systemd kept.
    pub async fn resume(&self, namespace: &str, sockets: NamespaceSockets) -> Result<PathBuf, Error> {
        self.serve_with(namespace, sockets).await
    }

    async fn serve_with(&self, namespace: &str, sockets: NamespaceSockets) -> Result<PathBuf, Error> {
        validate_identifier(IdentifierKind::Namespace, namespace)?;
        let cell = {
            let mut served = self.served.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(served.entry(namespace.to_string()).or_default())
        };
        let served = cell
            .get_or_try_init(|| async {
                let socket = self.identity.namespace_socket(namespace);
                let listener = match sockets.listener {
                    Some(listener) => listener,
                    None => {
                        let listener = bind_socket(&socket).await?;
                        // Not kept, it would close at the next restart with every connection
                        // containerd has yet to open: refuse the namespace instead.
                        let kind = StoredFd::NamespaceListener(namespace.to_string());
                        self.fd_store.store(listener.as_fd(), &kind).await?;
                        listener
                    }
                };
                let service = Arc::new(TaskService::new(Arc::clone(&self.manager), namespace.to_string()));
                let kept = KeptConnections {
                    namespace: namespace.to_string(),
                    relays: Arc::clone(&self.relays),
                    fd_store: Arc::clone(&self.fd_store),
                };
                let relays = Arc::clone(&self.relays);
                let kept_connections =
                    sockets.connections.into_iter().map(|(connection, id)| Ok((connection, id, Origin::Kept)));
                let accepted = kept_in_fd_store(accept_trusted(listener), kept)
                    .map(|accepted| accepted.map(|(connection, id)| (connection, id, Origin::Accepted)));
                let relayed_namespace = namespace.to_string();
                let connections = stream::iter(kept_connections).chain(accepted).map(move |connection| {
                    connection.and_then(|(connection, id, origin)| {
                        relay(Arc::clone(&relays), connection, relayed_namespace.clone(), id, origin)
                    })
                });
                let server = start_task_server(connections, service).await?;
                tracing::info!(namespace, "serving the task API on {}", socket.display());
                Ok::<_, Error>(Served { socket, _server: Mutex::new(server) })
            })
            .await?;
        Ok(served.socket.clone())
    }
}

async fn start_task_server(
    connections: impl Stream<Item = std::io::Result<UnixStream>> + Send + 'static,
    service: Arc<TaskService>,
) -> Result<Server, Error> {
    let mut server = Server::new().add_listener(Listener::new(connections));
    server = server.register_service(create_task(Arc::clone(&service) as _));
    server = server.register_service(renamed(create_task(service as _), TASK_V3, TASK_V2));
    server
        .start()
        .await
        .map_err(|error| Error::io("starting the ttrpc server", std::io::Error::other(error.to_string())))?;
    Ok(server)
}

fn renamed<S>(mut services: HashMap<String, S>, from: &str, to: &str) -> HashMap<String, S> {
    match services.remove(from) {
        Some(service) => HashMap::from([(to.to_string(), service)]),
        None => services,
    }
}

/// Serves control requests on `listener` until the daemon exits.
/// Once a drain begins, no new control connection is accepted: `start`s wait in the backlog of
/// the kept socket for the next daemon, and the ones under way are answered first.
pub async fn serve_control(listener: UnixListener, namespaces: Arc<NamespaceServers>) {
    let connections = accept_trusted(listener);
    futures::pin_mut!(connections);
    loop {
        let connection = tokio::select! {
            biased;
            () = namespaces.relays.until_draining() => return,
            connection = futures::StreamExt::next(&mut connections) => connection,
        };
        let Some(connection) = connection else { return };
        let Ok(connection) = connection else { continue };
        let namespaces = Arc::clone(&namespaces);
        namespaces.relays.started();
        tokio::spawn(async move {
            if tokio::time::timeout(CONTROL_TIMEOUT, answer_control(connection, &namespaces)).await.is_err() {
                tracing::warn!("a control request timed out");
            }
            namespaces.relays.finished();
        });
    }
}

async fn answer_control(connection: UnixStream, namespaces: &NamespaceServers) {
    let (read, mut write) = connection.into_split();
    let response = match read_line(read).await.map(|line| serde_json::from_str::<ControlRequest>(&line)) {
        // `start` probes whether a daemon answers by connecting and closing.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return,
        Ok(Ok(ControlRequest::ServeNamespace { namespace })) => {
            // containerd runs `start` for each new task: a Create follows.
            namespaces.manager.prime_cgroup_move();
            match namespaces.serve(&namespace).await {
                Ok(socket) => ControlResponse::Serving { address: unix_address(&socket) },
                Err(error) => ControlResponse::Refused { reason: error.to_string() },
            }
        }
        Ok(Err(error)) => ControlResponse::Refused { reason: format!("malformed control request: {error}") },
        Err(error) => ControlResponse::Refused { reason: format!("reading the control request: {error}") },
    };
    if let ControlResponse::Refused { reason } = &response {
        tracing::warn!("refused a control request: {reason}");
    }
    let Ok(mut line) = serde_json::to_vec(&response) else {
        return;
    };
    line.push(b'\n');
    let _ = write.write_all(&line).await;
}

/// Where a namespace's accepted connections are kept so they outlive a restart of the daemon.
#[derive(Clone)]
struct KeptConnections {
    /// The namespace they belong to.
    namespace: String,
    /// Gives each a fresh connection id.
    relays: Arc<Relays>,
    /// Keeps them.
    fd_store: Arc<FdStore>,
}

/// Connections from root or from our own uid (the uid containerd runs as launched us); anyone
/// else is logged and dropped. Accept errors (e.g. out of fds) are logged, and accepting resumes
/// after a short pause instead of ending the server.
fn accept_trusted(listener: UnixListener) -> impl Stream<Item = std::io::Result<UnixStream>> + Send + 'static {
    let own_uid = nix::unistd::geteuid().as_raw();
    stream::unfold(listener, move |listener| async move {
        loop {
            match listener.accept().await {
                Ok((connection, _)) => match connection.peer_cred() {
                    Ok(credentials) if credentials.uid() == 0 || credentials.uid() == own_uid => {
                        return Some((Ok(connection), listener));
                    }
                    Ok(credentials) => tracing::warn!(
                        "refused a connection from uid {} pid {:?}: only root or uid {own_uid} may use this socket",
                        credentials.uid(),
                        credentials.pid()
                    ),
                    Err(error) => tracing::warn!("refused a connection whose credentials are unreadable: {error}"),
                },
                Err(error) => {
                    tracing::error!("accepting a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Puts each of the `accepted` connections in systemd's fd store under a fresh connection id
/// (of `keep`'s namespace), so it outlives a restart of the daemon; the id comes with the
/// connection. One the store cannot keep (it is full) is logged and closed at once: containerd's
/// call fails now, cleanly, instead of its task's connection closing at the next restart, when
/// containerd would take the task for dead.
fn kept_in_fd_store(
    accepted: impl Stream<Item = std::io::Result<UnixStream>> + Send + 'static,
    keep: KeptConnections,
) -> impl Stream<Item = std::io::Result<(UnixStream, ConnectionId)>> + Send + 'static {
    accepted.filter_map(move |accepted| {
        let keep = keep.clone();
        async move {
            let connection = match accepted {
                Ok(connection) => connection,
                Err(error) => return Some(Err(error)),
            };
            let id = keep.relays.next_id();
            let kind = StoredFd::Connection { namespace: keep.namespace.clone(), id: id.clone() };
            match keep.fd_store.store(connection.as_fd(), &kind).await {
                Ok(()) => Some(Ok((connection, id))),
                Err(error) => {
                    tracing::error!(namespace = keep.namespace, "refused a connection from containerd: {error}");
                    None
                }
            }
        }
    })
}

/// Binds a socket, mode 0600. A socket file nobody answers on is stale and replaced; one that
/// answers belongs to a live daemon, and we refuse to steal it.
pub async fn bind_socket(socket: &Path) -> Result<UnixListener, Error> {
    if let Some(dir) = socket.parent() {
        let dir = dir.to_path_buf();
        blocking("creating the socket directory", move || {
            std::fs::DirBuilder::new().recursive(true).mode(0o711).create(&dir)
        })
        .await?
        .map_err(|error| Error::io(format!("creating the directory of {}", socket.display()), error))?;
    }
    if tokio::fs::try_exists(socket).await.unwrap_or(false) {
        if UnixStream::connect(socket).await.is_ok() {
            return Err(Error::io(
                format!("binding {}", socket.display()),
                std::io::Error::new(std::io::ErrorKind::AddrInUse, "another daemon is serving this socket"),
            ));
        }
        tokio::fs::remove_file(socket)
            .await
            .map_err(|error| Error::io(format!("removing stale {}", socket.display()), error))?;
    }
    let listener =
        UnixListener::bind(socket).map_err(|error| Error::io(format!("binding {}", socket.display()), error))?;
    tokio::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .await
        .map_err(|error| Error::io(format!("restricting {}", socket.display()), error))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::test_support::{fake_notify_socket, next_notification, scratch};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_connection_the_fd_store_has_no_room_for_is_refused_and_closed() {
        let dir = scratch("server-fdstore-full");
        let (notifications, notify_socket) = fake_notify_socket(&dir);
        let config = Config::parse(Path::new("/c.toml"), "[daemon]\nfd_store_max = 3\n").unwrap();
        // The control socket and the namespace's listener hold two of the three places.
        let fd_store = Arc::new(FdStore::new(Some(notify_socket), config.daemon.fd_store_max, 2));
        let relays = Arc::new(Relays::new(dir.join("pending"), Arc::clone(&fd_store), ConnectionIds::new(1, 1)));
        let socket = dir.join("default.sock");
        let keep = KeptConnections { namespace: "default".into(), relays, fd_store: Arc::clone(&fd_store) };
        let accepted = kept_in_fd_store(accept_trusted(UnixListener::bind(&socket).unwrap()), keep);
        futures::pin_mut!(accepted);

        let _first = UnixStream::connect(&socket).await.unwrap();
        let (_kept, id) = accepted.next().await.unwrap().unwrap();
        assert_eq!(next_notification(&notifications), format!("FDSTORE=1\nFDNAME=conn/default/{id}"));

        let mut second = UnixStream::connect(&socket).await.unwrap();
        let served = tokio::time::timeout(Duration::from_millis(500), accepted.next()).await;
        assert!(served.is_err(), "the connection the store has no room for is not served");
        let mut rest = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), second.read(&mut rest))
            .await
            .expect("containerd sees its connection close");
        assert_eq!(read.unwrap(), 0, "end of stream");
        assert_eq!(fd_store.held(), 3);
        notifications.set_nonblocking(true).unwrap();
        let mut message = [0u8; 256];
        let more = notifications.recv(&mut message);
        assert!(more.is_err(), "nothing more was stored: {:?}", more.map(|length| message[..length].to_vec()));
    }
}
