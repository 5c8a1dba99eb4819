//! Unit tests of the lifecycle verbs, run against fakes: a fake systemd Manager on the other end
//! of a peer-to-peer D-Bus connection ([`crate::test_support::fake_systemd`]), a fake runtime in
//! place of runc ([`runc_wrap::test_support::FakeRuntimes`]), and a recorder in place of
//! containerd's events service (the publisher's [`Forward`] seam). Nothing is booted and no
//! root is needed: a task's bundle, records and runc binary are in a scratch directory, its
//! pids name no process (they are above the kernel's `PID_MAX_LIMIT`), so the cgroup and OOM
//! watches find nothing and leave the host alone.
//!
//! What the in-unit helper does when systemd starts a task's unit (write the init's pid file,
//! report a failure) each test scripts through [`FakeSystemd::on_start`], writing the files the
//! real helper writes, at the paths the protocol names.

mod adoption;
mod create;
mod delete;
mod exec;
mod other;
mod running;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim_protos::api::{CreateTaskRequest, ForwardRequest};
use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::protobuf::Message;
use runc_wrap::protocol::files;
use runc_wrap::test_support::FakeRuntimes;
use tokio::sync::Notify;
use unit_gen::{CgroupHierarchy, UnitName, UnitOptions};

use super::events::EventSender;
use super::manager::{DaemonSettings, TaskManager};
use super::publisher::{Forward, ForwardError};
use super::state::{record_path, StateStore, TaskRecord};
use super::task::TaskKey;
use crate::cgroup::{MigrationPrimer, SharedInotify};
use crate::paths::DaemonIdentity;
use crate::runtime_options::TaskOptions;
use crate::test_support::fake_systemd::{FakeSystemd, JobEnd, StartAnswer};
use crate::test_support::{scratch, ScratchDir};

/// A pid no process can have (above `PID_MAX_LIMIT`, 2^22).
pub const INIT_PID: u32 = 4_200_001;
/// Another, for exec processes.
pub const EXEC_PID: u32 = 4_200_002;
/// The namespace every test task is in.
pub const NAMESPACE: &str = "default";

/// Records every event the publisher hands over, as containerd's events service would take it.
#[derive(Clone, Default)]
pub struct Events {
    taken: Arc<Mutex<Vec<ForwardRequest>>>,
    arrived: Arc<Notify>,
}

#[async_trait]
impl Forward for Events {
    async fn forward(&mut self, request: &ForwardRequest) -> Result<(), ForwardError> {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner).push(request.clone());
        self.arrived.notify_waiters();
        Ok(())
    }
}

impl Events {
    /// The topics published so far, in order.
    pub fn topics(&self) -> Vec<String> {
        let taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        taken.iter().filter_map(|request| request.envelope.as_ref()).map(|envelope| envelope.topic.clone()).collect()
    }

    /// Waits until `topic` has been published `count` times.
    pub async fn published(&self, topic: &str, count: usize) {
        within(async {
            loop {
                let arrived = self.arrived.notified();
                if self.topics().iter().filter(|published| *published == topic).count() >= count {
                    return;
                }
                arrived.await;
            }
        })
        .await
    }

    /// Every `TaskExit` published so far.
    pub fn exits(&self) -> Vec<TaskExit> {
        let taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        taken
            .iter()
            .filter_map(|request| request.envelope.as_ref())
            .filter(|envelope| envelope.topic == "/tasks/exit")
            .filter_map(|envelope| envelope.event.as_ref())
            .map(|event| TaskExit::parse_from_bytes(&event.value).expect("a TaskExit"))
            .collect()
    }
}

/// A daemon over the fakes, in a scratch directory of its own.
pub struct Daemon {
    pub dir: ScratchDir,
    pub systemd: FakeSystemd,
    pub runtimes: FakeRuntimes,
    pub manager: Arc<TaskManager>,
    pub events: Events,
    exits: tokio::task::JoinHandle<()>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.exits.abort();
    }
}

impl Daemon {
    /// A daemon with no tasks; `test` names its scratch directory.
    pub async fn start(test: &str) -> Daemon {
        let dir = scratch(&format!("verbs-{test}"));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("a bin directory");
        // Create looks runc up in PATH; the fake runtime stands in for it.
        let runc = bin.join("runc");
        std::fs::write(&runc, "#!/bin/sh\nexit 1\n").expect("a runc to find");
        std::fs::set_permissions(&runc, std::fs::Permissions::from_mode(0o755)).expect("chmod runc");
        Daemon::over(dir, FakeSystemd::new(), FakeRuntimes::new(false)).await
    }

    /// A daemon in `dir` over `systemd` and `runtimes` (a restarted daemon keeps all three).
    async fn over(dir: ScratchDir, systemd: FakeSystemd, runtimes: FakeRuntimes) -> Daemon {
        let client = Arc::new(systemd.client().await);
        let changes = client.watch_units(&unit_gen::escape::unit_object_path(unit_gen::names::TASK_UNIT_PREFIX));
        let events = Events::default();
        let settings = DaemonSettings {
            exe: PathBuf::from("/usr/bin/containerd-shim-systemd-v1"),
            path_env: dir.join("bin").display().to_string(),
            unit_options: UnitOptions::default(),
            task_defaults: TaskOptions::default(),
            fifo_timeout: Duration::from_secs(1),
            identity: DaemonIdentity::for_containerd("/run/containerd/containerd.sock"),
            cgroup_hierarchy: CgroupHierarchy::Unified,
            runc_deadlines: Default::default(),
        };
        let manager = Arc::new(TaskManager::new(
            client,
            Arc::new(runtimes.clone()),
            EventSender::spawn_forwarding(events.clone()),
            settings,
            StateStore::spawn(dir.join("tasks")),
            MigrationPrimer::writing_to(None),
            SharedInotify::new(),
        ));
        let exits = tokio::spawn(super::exits::watch_exits(Arc::clone(&manager), changes));
        Daemon { dir, systemd, runtimes, manager, events, exits }
    }

    /// The daemon stops, handing its records over; [`Stopped::restart`] starts the next one.
    pub async fn stop(mut self) -> Stopped {
        self.manager.hand_over(Duration::from_secs(5)).await;
        self.exits.abort();
        let dir = std::mem::replace(&mut self.dir, scratch("verbs-handed-over"));
        Stopped { dir, systemd: self.systemd.clone(), runtimes: self.runtimes.clone() }
    }

    /// Task `id`'s key.
    pub fn key(id: &str) -> TaskKey {
        TaskKey { namespace: NAMESPACE.into(), id: id.into() }
    }

    /// Task `id`'s unit.
    pub fn unit(id: &str) -> UnitName {
        UnitName::for_task(NAMESPACE, id)
    }

    /// Exec `exec_id`'s unit.
    pub fn exec_unit(id: &str, exec_id: &str) -> UnitName {
        unit_gen::UnitNaming::Plain.exec(NAMESPACE, id, exec_id)
    }

    /// Task `id`'s bundle, made with a spec (own PID namespace, no hooks).
    pub fn bundle(&self, id: &str) -> PathBuf {
        let bundle = self.dir.join("bundles").join(id);
        if !bundle.exists() {
            std::fs::create_dir_all(bundle.join("rootfs")).expect("a bundle");
            let spec = r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
                "root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}"#;
            std::fs::write(bundle.join("config.json"), spec).expect("a spec");
        }
        bundle
    }

    /// The Create request for task `id`.
    pub fn create_request(&self, id: &str) -> CreateTaskRequest {
        CreateTaskRequest { id: id.into(), bundle: self.bundle(id).display().to_string(), ..Default::default() }
    }

    /// When task `id`'s unit starts, the helper creates the container: its init is [`INIT_PID`].
    pub fn helper_creates(&self, id: &str) {
        let pid_file = self.bundle(id).join(files::INIT_PID);
        self.systemd.on_start(Daemon::unit(id).as_str(), move || {
            std::fs::write(&pid_file, INIT_PID.to_string()).expect("the init's pid file");
            StartAnswer::Job(JobEnd::Result("done"))
        });
    }

    /// Creates task `id`, its helper succeeding.
    pub async fn created(&self, id: &str) -> TaskKey {
        self.helper_creates(id);
        let pid = self.manager.create(Daemon::key(id), self.create_request(id)).await.expect("create");
        assert_eq!(pid, INIT_PID);
        Daemon::key(id)
    }

    /// Creates and starts task `id`.
    pub async fn running(&self, id: &str) -> TaskKey {
        let key = self.created(id).await;
        self.manager.start(&key).await.expect("start");
        key
    }

    /// Task `id`'s init exits with `status`, as systemd announces it.
    pub async fn init_exits(&self, id: &str, status: i32) {
        self.systemd.main_process_exited(Daemon::unit(id).as_str(), INIT_PID, status, false).await;
    }
}

/// What a stopped daemon leaves to the next: its records, systemd and the runtimes.
pub struct Stopped {
    pub dir: ScratchDir,
    pub systemd: FakeSystemd,
    pub runtimes: FakeRuntimes,
}

impl Stopped {
    /// Rewrites task `id`'s record as `change` says (the state a previous daemon left it in).
    pub fn edit_record(&self, id: &str, change: impl FnOnce(&mut TaskRecord)) {
        let path = record_path(&self.dir.join("tasks"), &Daemon::key(id));
        let mut record: TaskRecord = runc_wrap::atomic_file::read_json(&path).expect("the task's record");
        change(&mut record);
        runc_wrap::atomic_file::write_json_atomically(&path, &record).expect("the edited record");
    }

    /// The next daemon: it adopts the recorded tasks and reconciles them with systemd; returns
    /// it with the keys it adopted.
    pub async fn restart(self) -> (Daemon, Vec<TaskKey>) {
        let daemon = Daemon::over(self.dir, self.systemd, self.runtimes).await;
        let adopted = daemon.manager.adopt_recorded_tasks().await;
        let keys = adopted.iter().map(|task| task.key.clone()).collect();
        daemon.manager.reconcile_adopted(adopted).await;
        daemon.manager.state.flush().await;
        (daemon, keys)
    }
}

/// `future`, which must finish within a few seconds (a hang fails the test instead of stalling it).
pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future).await.expect("finished in time")
}

/// Waits until `condition` holds, looking again whenever the runtime has run other tasks.
pub async fn until(mut condition: impl FnMut() -> bool) {
    within(async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}
