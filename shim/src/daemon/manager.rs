//! The task manager: the table of tasks plus what every lifecycle verb needs (systemd, the
//! event queue, daemon settings). Each verb lives in a file of its own (`create.rs`, …).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runc_wrap::deadlines::RuncDeadlines;
use runc_wrap::RuntimeFactory;
use unit_gen::UnitOptions;

use super::events::EventSender;
use super::heap_trim::HeapTrimmer;
use super::state::StateStore;
use super::table::TaskTable;
use super::task::{Exit, Task, TaskKey};
use super::unit_stops::UnitStops;
use crate::cgroup::{MigrationPrimer, SharedInotify};
use crate::error::Error;
use crate::paths::DaemonIdentity;
use crate::runtime_options::TaskOptions;
use crate::systemd::Systemd;
use crate::unbounded_work::UnboundedWork;
use unit_gen::CgroupHierarchy;

/// Daemon-wide settings every task uses.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// This binary (it carries the in-unit helper).
    pub exe: PathBuf,
    /// The `PATH` runc is looked up in (containerd's, passed down by `start`).
    pub path_env: String,
    /// Unit-wide options (default slice).
    pub unit_options: UnitOptions,
    /// What a task's runtime options leave unset (from the configuration file).
    pub task_defaults: TaskOptions,
    /// How long the helper waits for the other end of a stdio fifo.
    pub fifo_timeout: Duration,
    /// Which containerd the daemon serves: where its task units record their exits, how they
    /// are named, its default runc roots and console sockets.
    pub identity: DaemonIdentity,
    /// The host's cgroup hierarchy.
    pub cgroup_hierarchy: CgroupHierarchy,
    /// How long each runc operation may take (the configuration file's `[runc]`).
    pub runc_deadlines: RuncDeadlines,
}

/// How many Creates parse and submit at once; the others wait for a slot before they parse anything.
///
/// A Create in flight holds its request, parsed spec, boxed futures and D-Bus messages, tens of
/// KiB that it frees when done, between the small allocations each task keeps. With 50 at once,
/// the holes they left were too fragmented for `malloc_trim` to give back: 1.5 MiB more heap
/// stayed resident after a 50-task burst than with this bound. Eight in flight still keep
/// systemd's job queue and both CPUs busy: the bench's 50 parallel starts took as long as
/// before (0.69 of runc-v2's time against 0.72 unbounded). A slot is held only while a Create
/// parses and submits its unit, never while the unit starts (see [`TaskManager::create`]).
const CREATE_SLOTS: usize = 8;

/// All tasks and the means to act on them.
pub struct TaskManager {
    pub(super) tasks: TaskTable,
    pub(super) systemd: Arc<Systemd>,
    /// Makes the runtime that drives each task's container (runc; a fake in unit tests).
    pub(super) runtimes: Arc<dyn RuntimeFactory>,
    pub(super) events: EventSender,
    pub(super) settings: DaemonSettings,
    /// Names the temporary resource files of Update.
    pub(super) update_sequence: AtomicU64,
    /// The task table on disk.
    pub(super) state: StateStore,
    /// Units of deleted tasks still going down.
    pub(super) unit_stops: UnitStops,
    /// Returns the memory of deleted tasks to the system.
    pub(super) heap_trimmer: HeapTrimmer,
    /// Bounds the Creates in flight ([`CREATE_SLOTS`]).
    pub(super) create_slots: tokio::sync::Semaphore,
    /// Starts the kernel's wait for a cgroup move when a new unit is coming.
    pub(super) migration_primer: MigrationPrimer,
    /// Where detached root filesystems are released, off tokio's blocking pool.
    pub(super) rootfs_releases: UnboundedWork,
    /// The daemon's one inotify instance, which every task's cgroup v2 OOM watch goes through.
    pub(super) oom_inotify: SharedInotify,
    /// Cleared when the daemon stops: exits seen from then on are left to the next daemon,
    /// which finds them in systemd and publishes them; one whose `TaskExit` was queued here
    /// but never sent would be lost.
    observing_exits: AtomicBool,
}

impl TaskManager {
    /// A manager with no tasks.
    pub fn new(
        systemd: Arc<Systemd>,
        runtimes: Arc<dyn RuntimeFactory>,
        events: EventSender,
        settings: DaemonSettings,
        state: StateStore,
        migration_primer: MigrationPrimer,
        oom_inotify: SharedInotify,
    ) -> TaskManager {
        TaskManager {
            tasks: TaskTable::default(),
            systemd,
            runtimes,
            events,
            settings,
            update_sequence: AtomicU64::new(0),
            state,
            unit_stops: UnitStops::default(),
            heap_trimmer: HeapTrimmer::default(),
            create_slots: tokio::sync::Semaphore::new(CREATE_SLOTS),
            migration_primer,
            rootfs_releases: UnboundedWork::default(),
            oom_inotify,
            observing_exits: AtomicBool::new(true),
        }
    }

    /// Call when systemd is about to move a new unit's first process into its cgroup (a task or
    /// an exec is coming): the kernel's wait before that move starts now, in the background
    /// ([`MigrationPrimer`]).
    pub fn prime_cgroup_move(&self) {
        self.migration_primer.prime();
    }

    /// The task with `key`, or NOT_FOUND.
    pub fn task(&self, key: &TaskKey) -> Result<Arc<Task>, Error> {
        self.tasks.get(key).ok_or_else(|| Error::TaskNotFound { namespace: key.namespace.clone(), id: key.id.clone() })
    }

    /// Waits until the task's init has exited.
    pub async fn wait(&self, key: &TaskKey) -> Result<Exit, Error> {
        let mut receiver = self.task(key)?.exit_receiver();
        let exit = receiver
            .wait_for(Option::is_some)
            .await
            // The sender went away: the task was deleted while we waited.
            .map_err(|_| Error::TaskNotFound { namespace: key.namespace.clone(), id: key.id.clone() })?;
        exit.ok_or_else(|| Error::TaskNotFound { namespace: key.namespace.clone(), id: key.id.clone() })
    }

    /// Refuses `action` unless the task's lifecycle passes `allowed`.
    pub(super) fn require_state(
        &self,
        task: &Task,
        action: &'static str,
        allowed: impl Fn(&super::task::Lifecycle) -> bool,
    ) -> Result<(), Error> {
        let lifecycle = task.lifecycle();
        if allowed(&lifecycle) {
            return Ok(());
        }
        Err(Error::BadState {
            namespace: task.key.namespace.clone(),
            id: task.key.id.clone(),
            state: lifecycle.name(),
            action,
        })
    }

    /// Stops taking in exits, sends every queued event and writes every record: what a stopping
    /// daemon owes containerd and the next daemon. Called once no request is being served.
    pub async fn hand_over(&self, timeout: Duration) {
        self.observing_exits.store(false, Ordering::SeqCst);
        self.events.flush(timeout).await;
        self.state.flush().await;
        // Not needed for correctness (the next daemon sweeps what they leave), but a clean
        // hand-over leaves nothing behind.
        let _ = tokio::time::timeout(timeout, self.unit_stops.all_settled()).await;
    }

    /// Whether exits are still taken in (see [`TaskManager::hand_over`]).
    pub(super) fn observes_exits(&self) -> bool {
        self.observing_exits.load(Ordering::SeqCst)
    }

    /// How many tasks the daemon serves.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }
}
