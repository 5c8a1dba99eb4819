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
use crate::fdstore::StoredFd;
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

/// Hands `socket` to systemd's fd store, so a restarted daemon gets it back; failure only costs
/// that (a restart would then close it), so it is logged.
pub fn keep_in_fd_store(socket: &impl AsFd, kind: &StoredFd) {
    if let Err(error) = crate::fdstore::store(socket.as_fd(), kind) {
        tracing::warn!("could not keep {} in systemd's fd store: {error}", kind.name());
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
}

impl NamespaceServers {
    /// No namespace served yet; containerd's connections are named by `connection_ids`.
    pub fn new(identity: DaemonIdentity, manager: Arc<TaskManager>, connection_ids: ConnectionIds) -> NamespaceServers {
        let relays = Arc::new(Relays::new(pending_dir(&identity.state_dir()), connection_ids));
        NamespaceServers { identity, manager, served: Mutex::new(HashMap::new()), relays }
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
                        keep_in_fd_store(&listener, &StoredFd::NamespaceListener(namespace.to_string()));
                        listener
                    }
                };
                let service = Arc::new(TaskService::new(Arc::clone(&self.manager), namespace.to_string()));
                let relays = Arc::clone(&self.relays);
                let kept_connections =
                    sockets.connections.into_iter().map(|(connection, id)| Ok((connection, id, Origin::Kept)));
                // Each accepted connection goes to systemd's fd store under a fresh id, so it
                // outlives a restart of the daemon; its relay notes its pending Waits under it.
                let accepted = {
                    let (namespace, relays) = (namespace.to_string(), Arc::clone(&self.relays));
                    accept_trusted(listener).map(move |accepted| {
                        accepted.map(|connection| {
                            let id = relays.next_id();
                            let kind = StoredFd::Connection { namespace: namespace.clone(), id: id.clone() };
                            keep_in_fd_store(&connection, &kind);
                            (connection, id, Origin::Accepted)
                        })
                    })
                };
                let connections = stream::iter(kept_connections).chain(accepted).map(move |connection| {
                    connection.and_then(|(connection, id, origin)| relay(Arc::clone(&relays), connection, id, origin))
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
