//! The long-lived daemon: one per containerd, serving the task API for every task of that
//! containerd, in every namespace. It runs as a systemd service; each task runs as a unit of
//! its own, so containers do not depend on the daemon's process.
//!
//! Its modules form three layers, and imports point down only (`shim/tests/module_layout.rs`
//! checks it, and that no two modules import each other in a circle):
//! - entry points: the task API service (`service.rs`), the sockets (`server.rs`) and adoption
//!   of the tasks a previous daemon left (`adopt.rs`);
//! - lifecycle verbs, one file each, implemented on the task manager (`manager.rs`): `create`,
//!   `start`, `delete`, `exec`, `kill`, `pause`, `pids`, `resize`, `stats`, `update`,
//!   `checkpoint`. A verb never uses another verb;
//! - shared services the verbs use: the task table and a task's state (`task`, `exec_process`,
//!   `process_exit`, `table`), state files (`state`, `record_check`), what the bundle holds
//!   (`bundle`), exits (`exits`, `init_signal`, `unit_process`), cleanup (`cleanup`,
//!   `unit_stops`), events (`events`, `publisher`), and the rest of the manager's parts.
//!
//! Pure logic the daemon shares with the other commands lives outside it: runtime options are
//! decoded by [`crate::runtime_options`], units are rendered by the `unit-gen` crate.

mod adopt;
mod bundle;
mod checkpoint;
mod cleanup;
mod create;
mod delete;
mod events;
mod exec;
mod exec_process;
mod exits;
mod heap_trim;
mod init_signal;
mod kill;
mod manager;
mod pause;
mod pids;
mod process_exit;
mod publisher;
mod record_check;
mod request;
mod resize;
mod server;
mod service;
mod start;
mod state;
mod stats;
mod table;
mod task;
mod unit_process;
mod unit_stops;
mod update;
#[cfg(test)]
mod verb_tests;
mod wait_replay;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use unit_gen::escape::unit_object_path;
use unit_gen::names::TASK_UNIT_PREFIX;

pub use cleanup::{remove_task_residue, ContainerEnd};
pub use events::timestamp;
pub use manager::DaemonSettings;

use crate::blocking::blocking;
use crate::cgroup::{MigrationPrimer, SharedInotify};
use crate::connection_id::ConnectionIds;
use crate::error::Error;
use crate::fdstore::{FdStore, StoredFd};
use crate::paths::DaemonIdentity;
use crate::systemd::{Systemd, Transport, TransportPreference};
use events::EventSender;
use manager::TaskManager;
use state::StateStore;

/// How long a stopping daemon waits for the calls it has read to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping daemon tries to hand its queued events to containerd.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a daemon that fell back to the system bus tries systemd's private socket again.
const PRIVATE_SOCKET_RETRY: Duration = Duration::from_secs(30);

/// How the daemon was asked to run.
#[derive(Debug)]
pub struct DaemonConfig {
    /// Which containerd this daemon serves (names its sockets).
    pub identity: DaemonIdentity,
    /// containerd's ttrpc address, for events.
    pub ttrpc_address: String,
    /// This binary.
    pub exe: PathBuf,
    /// `PATH` to find runc in.
    pub path_env: String,
    /// Sockets and connections systemd's fd store gave back (after a restart).
    pub restored: Vec<(StoredFd, OwnedFd)>,
    /// systemd's notification socket (`$NOTIFY_SOCKET`), which reaches the fd store; `None`
    /// when not run by systemd.
    pub notify_socket: Option<runc_wrap::notify::NotifySocket>,
    /// The configuration file's settings.
    pub config: crate::config::Config,
}

/// Sets the daemon's process up; call before any thread exists. Its allocator keeps one malloc
/// arena: glibc would give each thread one of its own (the bench saw 15 arenas after 50
/// parallel creates), memory that stays with the daemon. Returns the async runtime the daemon
/// runs on ([`crate::blocking::daemon_runtime`]).
pub fn prepare_process() -> std::io::Result<tokio::runtime::Runtime> {
    // SAFETY: mallopt only sets an allocator parameter; the caller promises no other thread
    // exists yet.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
    crate::blocking::daemon_runtime()
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// The control socket is bound and systemd told `READY=1` first, so the `start` waiting on our
/// start job is released as early as possible; a `start` that connects before we serve waits
/// in the listen backlog for the moment it takes to connect to systemd.
pub async fn run(mut config: DaemonConfig) -> Result<(), Error> {
    // What systemd passed back is in the store still (the control socket counts even when the
    // socket unit, not the store, passed it: a place too few is refused early, never lost).
    let held = u32::try_from(config.restored.len()).unwrap_or(u32::MAX);
    let fd_store = Arc::new(FdStore::new(config.notify_socket.take(), config.config.daemon.fd_store_max, held));
    let mut restored = server::RestoredSockets::from_fds(std::mem::take(&mut config.restored))?;
    let control = match restored.control.take() {
        Some(control) => control,
        None => {
            let control = server::bind_socket(&config.identity.control_socket).await?;
            server::keep_control_in_fd_store(&fd_store, &control).await;
            control
        }
    };
    blocking("notifying systemd", || runc_wrap::notify::notify("READY=1"))
        .await?
        .map_err(|error| Error::io("notifying systemd", error))?;

    let systemd = Arc::new(Systemd::connect(config.config.systemd_transport).await?);
    tracing::info!("connected to systemd {} over {:?}", systemd.version(), systemd.transport());
    let private_socket_back = async {
        let fell_back = config.config.systemd_transport == TransportPreference::PrivateSocket
            && systemd.transport() == Transport::Bus;
        if !fell_back {
            return std::future::pending().await;
        }
        Systemd::private_socket_answers_again(PRIVATE_SOCKET_RETRY).await
    };
    let changes = systemd.watch_units(&unit_object_path(TASK_UNIT_PREFIX));
    let events = EventSender::spawn(config.ttrpc_address.clone());
    let settings = DaemonSettings {
        exe: config.exe.clone(),
        path_env: config.path_env.clone(),
        unit_options: config.config.unit_options.clone(),
        task_defaults: config.config.task_defaults.clone(),
        fifo_timeout: Duration::from_secs(30),
        identity: config.identity.clone(),
        cgroup_hierarchy: blocking("finding the host's cgroup hierarchy", crate::cgroup::host_hierarchy).await?,
        runc_deadlines: config.config.runc_deadlines,
    };
    let state = StateStore::spawn(state::records_dir(&config.identity));
    let primer = blocking("finding the daemon's cgroup", MigrationPrimer::for_current_process).await?;
    let manager = Arc::new(TaskManager::new(
        Arc::clone(&systemd),
        Arc::new(runc_wrap::RuncFactory),
        events,
        settings,
        state,
        primer,
        SharedInotify::new(),
    ));
    // Tasks come back from their records before exits are routed to them; what happened while
    // no daemon ran is reconciled once routing is on, so no exit falls between the two.
    let adopted = manager.adopt_recorded_tasks().await;
    let mut exits = tokio::spawn(exits::watch_exits(Arc::clone(&manager), changes));
    manager.reconcile_adopted(adopted).await;
    if let Err(error) = manager.sweep_exit_files().await {
        tracing::error!("sweeping the exit files of deleted tasks: {error}");
    }

    let instance = blocking("drawing the daemon's connection id tag", runc_wrap::random::random_u64)
        .await?
        .map_err(|error| Error::io("drawing the daemon's connection id tag", error))?;
    let connection_ids = ConnectionIds::new(std::process::id(), instance);
    let namespaces = Arc::new(server::NamespaceServers::new(
        config.identity.clone(),
        Arc::clone(&manager),
        fd_store,
        connection_ids,
    ));
    for (namespace, sockets) in restored.namespaces {
        let connections = sockets.connections.len();
        namespaces.resume(&namespace, sockets).await?;
        tracing::info!(namespace, connections, "resumed serving the task API with the sockets systemd kept");
    }
    tokio::spawn(server::serve_control(control, Arc::clone(&namespaces)));
    tracing::info!("serving control requests on {}", config.identity.control_socket.display());

    let mut terminate =
        signal(SignalKind::terminate()).map_err(|error| Error::io("installing SIGTERM handler", error))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|error| Error::io("installing SIGINT handler", error))?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping; container units keep running"),
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping; container units keep running"),
        // The bus is the fallback, not a home: a daemon there must trust the bus's word on
        // which sender is systemd. The next daemon (Restart=always) connects privately again.
        () = private_socket_back => tracing::info!("systemd's private socket answers again: restarting to use it"),
        // Crash-only: without systemd's signals no exit would be seen. systemd restarts us
        // (Restart=always) and the new daemon reconnects, keeps the sockets, re-adopts tasks.
        _ = &mut exits => return Err(Error::Systemd(crate::systemd::SystemdError::ConnectionLost { unit: "the daemon".into() })),
    }
    // New requests wait in the sockets for the next daemon; the ones read are answered first.
    namespaces.drain(DRAIN_TIMEOUT).await;
    manager.hand_over(HAND_OVER_TIMEOUT).await;
    // The socket files stay: after `systemctl restart` the next daemon serves the same sockets
    // from the fd store; after a stop, the next `start` finds them stale and binds anew.
    Ok(())
}
