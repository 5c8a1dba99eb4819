//! One container task: its identity, where its files and unit are, and its lifecycle state. The
//! state enum carries its data, so a pid or exit status can never disagree with the status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use containerd_shim_protos::api::Status;
use oci_spec::runtime::{Hook, Hooks, LinuxNamespaceType, Spec};
use runc_wrap::protocol::{StdioOptions, StdioPaths};
use runc_wrap::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use unit_gen::init_unit::container_slice;
use unit_gen::{UnitName, UnitNaming, UnitOptions};

use super::exec_process::ExecProcess;
pub use super::process_exit::{Exit, ExitWatch, Refused};
use crate::cgroup::ContainerCgroups;

/// A task's identity: containerd namespace and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    /// containerd namespace.
    pub namespace: String,
    /// Task (container) id.
    pub id: String,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.id)
    }
}

/// What a task needs of its container's OCI spec after Create. The spec itself stays in the
/// bundle: parsed, it takes about 11 KiB a task. Restoring a checkpoint reads it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFacts {
    /// The slice the container's units go to; its exec units join it.
    pub slice: Option<String>,
    /// The spec has poststart hooks, which `runc start` runs.
    pub poststart_hooks: bool,
    /// The spec has poststop hooks, which `runc delete` runs.
    pub poststop_hooks: bool,
    /// The container gets a PID namespace of its own (a `pid` namespace without a path): its
    /// processes cannot outlive its init. Without one (the host's, or another container's, as
    /// in a pod with `shareProcessNamespace`) what is left is killed when init exits.
    pub own_pid_namespace: bool,
}

impl SpecFacts {
    /// The facts of `spec` for units made with `options`; fails on a slice that is no slice.
    pub fn of(spec: &Spec, options: &UnitOptions) -> Result<SpecFacts, unit_gen::Error> {
        Ok(SpecFacts {
            slice: container_slice(spec, options)?,
            poststart_hooks: has_hooks(spec, Hooks::poststart),
            poststop_hooks: has_hooks(spec, Hooks::poststop),
            own_pid_namespace: has_own_pid_namespace(spec),
        })
    }

    /// What is assumed of a task whose spec cannot be read (an adopted task whose bundle lost
    /// or garbled its `config.json`): the default slice of `options`, and whatever costs a
    /// little more but is right either way — hooks to run (so runc runs them), and processes
    /// that may outlive init (so they are killed when it exits).
    pub fn unknown(options: &UnitOptions) -> SpecFacts {
        SpecFacts {
            slice: options.default_slice.clone(),
            poststart_hooks: true,
            poststop_hooks: true,
            own_pid_namespace: false,
        }
    }
}

/// Whether `spec` asks for a new PID namespace (runc-v2's `ShouldKillAllOnExit` is the opposite).
fn has_own_pid_namespace(spec: &Spec) -> bool {
    spec.linux().as_ref().and_then(|linux| linux.namespaces().as_ref()).is_some_and(|namespaces| {
        namespaces.iter().any(|namespace| namespace.typ() == LinuxNamespaceType::Pid && namespace.path().is_none())
    })
}

/// Whether `spec` names hooks for the stage `stage` picks (e.g. `Hooks::poststop`): stages
/// runc runs in `start` or `delete`, which the daemon otherwise does without runc.
fn has_hooks(spec: &Spec, stage: impl Fn(&Hooks) -> &Option<Vec<Hook>>) -> bool {
    spec.hooks().as_ref().and_then(|hooks| stage(hooks).as_ref()).is_some_and(|hooks| !hooks.is_empty())
}

/// Where a task is in its life. Transitions happen under the task's lock, which is never held
/// across an await.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Lifecycle {
    /// The unit is starting (`runc create` under way). An exit seen meanwhile waits here.
    Creating {
        /// An exit observed before creation finished.
        pending_exit: Option<Exit>,
        /// The process systemd said had exited with it (0 if it named none). Creation keeps
        /// the exit only if that is the init it created: another pid is the end of an earlier
        /// unit of the same name (a container restarted under its id), signalled late.
        #[serde(default)]
        pending_exit_pid: u32,
    },
    /// `runc create` done: init waits to be started.
    Created {
        /// The container init's pid (the unit's main pid).
        pid: u32,
    },
    /// `runc start` under way. An exit seen meanwhile is published after TaskStart.
    Starting {
        /// Init pid.
        pid: u32,
        /// An exit observed before `runc start` returned.
        pending_exit: Option<Exit>,
    },
    /// The container runs.
    Running {
        /// Init pid.
        pid: u32,
    },
    /// The container's processes are frozen (`runc pause`).
    Paused {
        /// Init pid.
        pid: u32,
    },
    /// Init exited.
    Exited {
        /// Init pid.
        pid: u32,
        /// How it ended.
        exit: Exit,
    },
    /// Delete under way.
    Deleting {
        /// Init pid.
        pid: u32,
        /// How it ended, if known.
        exit: Option<Exit>,
    },
}

impl Lifecycle {
    /// The init pid, 0 while unknown.
    pub fn pid(&self) -> u32 {
        match *self {
            Lifecycle::Creating { .. } => 0,
            Lifecycle::Created { pid }
            | Lifecycle::Starting { pid, .. }
            | Lifecycle::Running { pid }
            | Lifecycle::Paused { pid }
            | Lifecycle::Exited { pid, .. }
            | Lifecycle::Deleting { pid, .. } => pid,
        }
    }

    /// The exit, once known.
    pub fn exit(&self) -> Option<Exit> {
        match *self {
            Lifecycle::Exited { exit, .. } => Some(exit),
            Lifecycle::Deleting { exit, .. } => exit,
            _ => None,
        }
    }

    /// The status containerd sees.
    pub fn status(&self) -> Status {
        match self {
            Lifecycle::Creating { .. } | Lifecycle::Created { .. } | Lifecycle::Starting { .. } => Status::CREATED,
            Lifecycle::Running { .. } => Status::RUNNING,
            Lifecycle::Paused { .. } => Status::PAUSED,
            Lifecycle::Exited { .. } | Lifecycle::Deleting { .. } => Status::STOPPED,
        }
    }

    /// A word for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Lifecycle::Creating { .. } => "being created",
            Lifecycle::Created { .. } => "created",
            Lifecycle::Starting { .. } => "starting",
            Lifecycle::Running { .. } => "running",
            Lifecycle::Paused { .. } => "paused",
            Lifecycle::Exited { .. } => "stopped",
            Lifecycle::Deleting { .. } => "being deleted",
        }
    }

    /// Whether signals may be sent to init.
    pub fn can_kill(&self) -> bool {
        matches!(
            self,
            Lifecycle::Created { .. }
                | Lifecycle::Starting { .. }
                | Lifecycle::Running { .. }
                | Lifecycle::Paused { .. }
        )
    }

    /// Whether the container's processes run, so exec, pause, update and pids make sense.
    pub fn is_live(&self) -> bool {
        matches!(self, Lifecycle::Running { .. } | Lifecycle::Paused { .. })
    }
}

/// How a finished `runc start` left the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// Started: publish TaskStart, then TaskExit if `exit` (it died while starting).
    Started {
        /// Init pid.
        pid: u32,
        /// An exit observed while `runc start` ran.
        exit: Option<Exit>,
    },
    /// `runc start` failed: publish TaskExit if `exit`.
    Failed {
        /// Init pid.
        pid: u32,
        /// An exit observed while `runc start` ran.
        exit: Option<Exit>,
    },
}

/// The lifecycle's rules. Each method is one transition; what it returns tells the caller which
/// events to publish, so the order create → start → exit → delete holds by construction.
impl Lifecycle {
    /// The unit's start job finished with init `pid`. Returns an exit that raced creation, to be
    /// published right after TaskCreate.
    pub fn finish_create(&mut self, pid: u32) -> Result<Option<Exit>, Refused> {
        let Lifecycle::Creating { pending_exit, pending_exit_pid } = *self else {
            return Err(Refused { state: self.name() });
        };
        let pending_exit = pending_exit.filter(|_| pending_exit_pid == 0 || pending_exit_pid == pid);
        *self = match pending_exit {
            Some(exit) => Lifecycle::Exited { pid, exit },
            None => Lifecycle::Created { pid },
        };
        Ok(pending_exit)
    }

    /// Before `runc start`: returns the init pid.
    pub fn begin_start(&mut self) -> Result<u32, Refused> {
        let Lifecycle::Created { pid } = *self else {
            return Err(Refused { state: self.name() });
        };
        *self = Lifecycle::Starting { pid, pending_exit: None };
        Ok(pid)
    }

    /// A restore under way learnt the init's pid (a restored task is created with none).
    pub fn adopt_pid(&mut self, new_pid: u32) -> Result<(), Refused> {
        let Lifecycle::Starting { pid, .. } = self else {
            return Err(Refused { state: self.name() });
        };
        *pid = new_pid;
        Ok(())
    }

    /// After `runc start`, which `succeeded` or not.
    pub fn finish_start(&mut self, succeeded: bool) -> Result<StartOutcome, Refused> {
        let Lifecycle::Starting { pid, pending_exit } = *self else {
            return Err(Refused { state: self.name() });
        };
        *self = match (succeeded, pending_exit) {
            (_, Some(exit)) => Lifecycle::Exited { pid, exit },
            (true, None) => Lifecycle::Running { pid },
            (false, None) => Lifecycle::Created { pid },
        };
        Ok(if succeeded {
            StartOutcome::Started { pid, exit: pending_exit }
        } else {
            StartOutcome::Failed { pid, exit: pending_exit }
        })
    }

    /// The unit's main process `exited_pid` ended (0: the source did not say which process,
    /// as the exit file). Returns `(pid, exit)` when TaskExit is to be published now; `None`
    /// when a create or start in progress will publish it, when it is already known, or when
    /// the process is not this task's init (the late signal of an earlier unit of the same
    /// name).
    pub fn observe_exit(&mut self, exited_pid: u32, exit: Exit) -> Option<(u32, Exit)> {
        let init = self.pid();
        if exited_pid != 0 && init != 0 && exited_pid != init {
            return None;
        }
        match self {
            Lifecycle::Creating { pending_exit, pending_exit_pid } => {
                if pending_exit.is_none() {
                    *pending_exit = Some(exit);
                    *pending_exit_pid = exited_pid;
                }
                None
            }
            Lifecycle::Starting { pending_exit, .. } => {
                pending_exit.get_or_insert(exit);
                None
            }
            Lifecycle::Created { pid } | Lifecycle::Running { pid } | Lifecycle::Paused { pid } => {
                let pid = *pid;
                *self = Lifecycle::Exited { pid, exit };
                Some((pid, exit))
            }
            Lifecycle::Deleting { exit: known, .. } => {
                known.get_or_insert(exit);
                None
            }
            Lifecycle::Exited { .. } => None,
        }
    }

    /// `runc pause` succeeded on a running container.
    pub fn finish_pause(&mut self) -> Result<(), Refused> {
        let Lifecycle::Running { pid } = *self else {
            return Err(Refused { state: self.name() });
        };
        *self = Lifecycle::Paused { pid };
        Ok(())
    }

    /// `runc resume` succeeded on a paused container.
    pub fn finish_resume(&mut self) -> Result<(), Refused> {
        let Lifecycle::Paused { pid } = *self else {
            return Err(Refused { state: self.name() });
        };
        *self = Lifecycle::Running { pid };
        Ok(())
    }

    /// Removal failed: back to `previous`, the state [`Lifecycle::begin_delete`] returned, so
    /// containerd may retry, unless init's exit was observed while removal ran. Then the task
    /// is exited with it, and `(pid, exit)` is returned for the caller to publish: going back
    /// to created would lose the exit, its `TaskExit` and every Wait's answer.
    pub fn fail_delete(&mut self, previous: Lifecycle) -> Option<(u32, Exit)> {
        let seen = match (*self, previous) {
            (Lifecycle::Deleting { pid, exit: Some(exit) }, Lifecycle::Created { .. }) => Some((pid, exit)),
            _ => None,
        };
        *self = match seen {
            Some((pid, exit)) => Lifecycle::Exited { pid, exit },
            None => previous,
        };
        seen
    }

    /// Before removing the task: returns the state to go back to if removal fails.
    pub fn begin_delete(&mut self) -> Result<Lifecycle, Refused> {
        let previous = *self;
        *self = match previous {
            Lifecycle::Created { pid } => Lifecycle::Deleting { pid, exit: None },
            Lifecycle::Exited { pid, exit } => Lifecycle::Deleting { pid, exit: Some(exit) },
            _ => return Err(Refused { state: self.name() }),
        };
        Ok(previous)
    }
}

/// Asks a task's OOM watcher (`daemon::stats`) to publish the OOMs so far (see
/// [`OomCounts::publish_so_far`]).
#[derive(Debug, Clone)]
pub struct OomCounts(pub(super) mpsc::Sender<oneshot::Sender<()>>);

/// How long the exit of a task waits for its OOM watcher to count: a cgroupfs read.
const OOM_COUNT_TIMEOUT: Duration = Duration::from_secs(2);

impl OomCounts {
    /// Publishes, before the caller publishes init's exit, every OOM kill the container's cgroup
    /// has counted whose notification has not arrived yet, so `TaskOOM` comes before the
    /// `TaskExit` of an init the OOM killer ended however late the watcher wakes up. Returns
    /// once done, at once if the watcher has stopped, after [`OOM_COUNT_TIMEOUT`] at most.
    pub async fn publish_so_far(&self) {
        let (done, finished) = oneshot::channel();
        let asked = async {
            if self.0.send(done).await.is_ok() {
                let _ = finished.await;
            }
        };
        let _ = tokio::time::timeout(OOM_COUNT_TIMEOUT, asked).await;
    }
}

/// A container task and its unit.
pub struct Task {
    /// Namespace and id.
    pub key: TaskKey,
    /// The OCI bundle directory.
    pub bundle: PathBuf,
    /// The task's unit.
    pub unit: UnitName,
    /// How the task's units (its init's and its execs') are named.
    pub unit_naming: UnitNaming,
    /// Where the unit's `ExecStopPost` records init's exit.
    pub exit_file: PathBuf,
    /// The unit's D-Bus object path.
    pub unit_path: String,
    /// The container's stdio as containerd gave it.
    pub stdio: StdioPaths,
    /// The runtime that drives this task's container: runc with the task's binary and root
    /// (a fake in the daemon's unit tests).
    pub runc: Arc<dyn Runtime>,
    /// What the daemon keeps of the container's OCI spec.
    pub spec_facts: SpecFacts,
    /// Stdio owner and log mode, from the runtime options; execs use them too.
    pub stdio_options: StdioOptions,
    /// Whether init has a terminal.
    pub terminal: bool,
    /// Default CRIU image and work directories (runc options `CriuImagePath`/`CriuWorkPath`).
    pub criu_paths: CriuPaths,
    lifecycle: Mutex<Lifecycle>,
    exit: ExitWatch,
    main_pid_sender: watch::Sender<Option<u32>>,
    cgroups: OnceLock<ContainerCgroups>,
    oom_counts: OnceLock<OomCounts>,
    restore_pending: AtomicBool,
    execs: Mutex<BTreeMap<String, Arc<ExecProcess>>>,
}

/// CRIU directories from the runtime options.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CriuPaths {
    /// Default image directory.
    pub image: Option<PathBuf>,
    /// Default work directory.
    pub work: Option<PathBuf>,
}

/// What a task is made from: everything Create validated.
pub struct TaskSetup {
    /// The OCI bundle directory.
    pub bundle: PathBuf,
    /// The task's unit: `unit_naming`'s name for it.
    pub unit: UnitName,
    /// How the task's units are named.
    pub unit_naming: UnitNaming,
    /// Where the unit's `ExecStopPost` records init's exit.
    pub exit_file: PathBuf,
    /// The container's stdio as containerd gave it.
    pub stdio: StdioPaths,
    /// Stdio owner and log mode.
    pub stdio_options: StdioOptions,
    /// Whether init has a terminal.
    pub terminal: bool,
    /// The runtime for this task's runc binary and root.
    pub runc: Arc<dyn Runtime>,
    /// What the daemon keeps of the container's OCI spec.
    pub spec_facts: SpecFacts,
    /// Default CRIU directories.
    pub criu_paths: CriuPaths,
}

impl Task {
    /// A task whose unit is about to be started.
    pub fn creating(key: TaskKey, setup: TaskSetup) -> Task {
        let TaskSetup {
            bundle,
            unit,
            unit_naming,
            exit_file,
            stdio,
            stdio_options,
            terminal,
            runc,
            spec_facts,
            criu_paths,
        } = setup;
        let unit_path = unit.object_path();
        Task {
            key,
            bundle,
            unit,
            unit_naming,
            exit_file,
            unit_path,
            stdio,
            runc,
            spec_facts,
            stdio_options,
            terminal,
            criu_paths,
            lifecycle: Mutex::new(Lifecycle::Creating { pending_exit: None, pending_exit_pid: 0 }),
            exit: ExitWatch::new(),
            main_pid_sender: watch::channel(None).0,
            cgroups: OnceLock::new(),
            oom_counts: OnceLock::new(),
            restore_pending: AtomicBool::new(false),
            execs: Mutex::new(BTreeMap::new()),
        }
    }

    fn execs(&self) -> MutexGuard<'_, BTreeMap<String, Arc<ExecProcess>>> {
        self.execs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The exec process `exec_id`, if there is one.
    pub fn exec(&self, exec_id: &str) -> Option<Arc<ExecProcess>> {
        self.execs().get(exec_id).cloned()
    }

    /// Adds `exec`; returns it back if one with the same id exists.
    pub fn insert_exec(&self, exec: Arc<ExecProcess>) -> Result<(), Arc<ExecProcess>> {
        let mut execs = self.execs();
        if execs.contains_key(&exec.exec_id) {
            return Err(exec);
        }
        execs.insert(exec.exec_id.clone(), exec);
        Ok(())
    }

    /// Forgets exec `exec_id`.
    pub fn remove_exec(&self, exec_id: &str) {
        self.execs().remove(exec_id);
    }

    /// Every exec process, ordered by id.
    pub fn exec_list(&self) -> Vec<Arc<ExecProcess>> {
        self.execs().values().cloned().collect()
    }

    /// The lifecycle, locked. Never hold the guard across an await.
    pub fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        // Poisoning means a panic while the lock was held; the enum itself is still valid.
        self.lifecycle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets waiters know the exit; call while holding the lifecycle lock, after the transition.
    pub fn announce_exit(&self, exit: Exit) {
        self.exit.announce(exit);
    }

    /// A receiver that sees the exit once it is announced.
    pub fn exit_receiver(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.receiver()
    }

    /// Created from a checkpoint: Start restores it instead of `runc start`.
    pub fn mark_restore_pending(&self) {
        self.restore_pending.store(true, Ordering::SeqCst);
    }

    /// Whether the task waits for Start to restore it.
    pub fn is_restore_pending(&self) -> bool {
        self.restore_pending.load(Ordering::SeqCst)
    }

    /// Whether Start must restore the container (once: the flag clears).
    pub fn take_restore_pending(&self) -> bool {
        self.restore_pending.swap(false, Ordering::SeqCst)
    }

    /// Records the container's cgroup (once, when its init runs).
    pub fn set_cgroups(&self, cgroups: ContainerCgroups) {
        let _ = self.cgroups.set(cgroups);
    }

    /// The container's cgroup, once known.
    pub fn cgroups(&self) -> Option<&ContainerCgroups> {
        self.cgroups.get()
    }

    /// Its OOM watcher's counting, once it watches.
    pub fn set_oom_counts(&self, counts: OomCounts) {
        let _ = self.oom_counts.set(counts);
    }

    /// Its OOM watcher's counting, if it watches for OOMs.
    pub fn oom_counts(&self) -> Option<&OomCounts> {
        self.oom_counts.get()
    }

    /// systemd announced the unit's main pid (with `SdNotify`, the helper's `MAINPID=`).
    pub fn announce_main_pid(&self, pid: u32) {
        self.main_pid_sender.send_replace(Some(pid));
    }

    /// A receiver that sees the unit's main pid once systemd announces it.
    pub fn main_pid_receiver(&self) -> watch::Receiver<Option<u32>> {
        self.main_pid_sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn exit(status: u32) -> Exit {
        Exit { status, at: UNIX_EPOCH + Duration::from_secs(u64::from(status)) }
    }

    fn spec(linux_and_hooks: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
               "root":{{"path":"rootfs"}}{linux_and_hooks}}}"#
        );
        serde_json::from_str(&json).expect("valid spec")
    }

    #[test]
    fn spec_facts_keep_the_slice_and_which_hooks_runc_must_run() {
        let plain = SpecFacts::of(&spec(""), &UnitOptions::default()).expect("facts");
        assert_eq!(
            plain,
            SpecFacts { slice: None, poststart_hooks: false, poststop_hooks: false, own_pid_namespace: false }
        );

        let cri = spec(
            r#","linux":{"cgroupsPath":"kubepods-pod1.slice:cri-containerd:t1"},
               "hooks":{"poststart":[{"path":"/bin/true"}],"poststop":[]}"#,
        );
        let facts = SpecFacts::of(&cri, &UnitOptions::default()).expect("facts");
        assert_eq!(facts.slice.as_deref(), Some("kubepods-pod1.slice"));
        assert!(facts.poststart_hooks);
        assert!(!facts.poststop_hooks, "an empty hook list runs nothing");
    }

    #[test]
    fn only_a_new_pid_namespace_is_the_containers_own() {
        let facts = |linux: &str| SpecFacts::of(&spec(linux), &UnitOptions::default()).expect("facts");
        assert!(facts(r#","linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}"#).own_pid_namespace);
        let joined = r#","linux":{"namespaces":[{"type":"pid","path":"/proc/42/ns/pid"},{"type":"mount"}]}"#;
        assert!(!facts(joined).own_pid_namespace, "a pod's shared PID namespace");
        assert!(!facts(r#","linux":{"namespaces":[{"type":"mount"}]}"#).own_pid_namespace, "the host's");
        assert!(!facts("").own_pid_namespace, "no linux section: the host's");
    }

    #[test]
    fn spec_facts_refuse_a_cgroups_path_that_names_no_slice() {
        let bad = spec(r#","linux":{"cgroupsPath":"kubepods-pod1.service:cri-containerd:t1"}"#);
        assert!(SpecFacts::of(&bad, &UnitOptions::default()).is_err());
    }

    #[test]
    fn exit_before_create_finishes_is_published_after_create() {
        let mut lifecycle = Lifecycle::Creating { pending_exit: None, pending_exit_pid: 0 };
        assert_eq!(lifecycle.observe_exit(0, exit(137)), None, "held back while creating");
        assert_eq!(lifecycle.finish_create(7), Ok(Some(exit(137))));
        assert_eq!(lifecycle, Lifecycle::Exited { pid: 7, exit: exit(137) });
        let mut same_pid = Lifecycle::Creating { pending_exit: None, pending_exit_pid: 0 };
        assert_eq!(same_pid.observe_exit(7, exit(1)), None);
        assert_eq!(same_pid.finish_create(7), Ok(Some(exit(1))));
    }

    #[test]
    fn a_late_exit_of_an_earlier_unit_of_the_same_name_is_not_the_new_inits() {
        let mut lifecycle = Lifecycle::Creating { pending_exit: None, pending_exit_pid: 0 };
        assert_eq!(lifecycle.observe_exit(41, exit(143)), None);
        assert_eq!(lifecycle.finish_create(7), Ok(None), "pid 41 was the previous init");
        assert_eq!(lifecycle, Lifecycle::Created { pid: 7 });
        lifecycle.begin_start().unwrap();
        assert_eq!(lifecycle.observe_exit(41, exit(143)), None, "ignored while starting");
        assert_eq!(lifecycle.finish_start(true), Ok(StartOutcome::Started { pid: 7, exit: None }));
        assert_eq!(lifecycle.observe_exit(41, exit(143)), None, "ignored while running");
        assert_eq!(lifecycle.status(), Status::RUNNING);
        assert_eq!(lifecycle.observe_exit(7, exit(0)), Some((7, exit(0))));
    }

    #[test]
    fn exit_while_starting_follows_task_start() {
        let mut lifecycle = Lifecycle::Created { pid: 7 };
        assert_eq!(lifecycle.begin_start(), Ok(7));
        assert_eq!(lifecycle.observe_exit(0, exit(0)), None, "held back while starting");
        assert_eq!(lifecycle.finish_start(true), Ok(StartOutcome::Started { pid: 7, exit: Some(exit(0)) }));
        assert_eq!(lifecycle.status(), Status::STOPPED);
    }

    #[test]
    fn running_task_exit_is_published_exactly_once() {
        let mut lifecycle = Lifecycle::Created { pid: 7 };
        lifecycle.begin_start().unwrap();
        assert_eq!(lifecycle.finish_start(true), Ok(StartOutcome::Started { pid: 7, exit: None }));
        assert_eq!(lifecycle.status(), Status::RUNNING);
        assert_eq!(lifecycle.observe_exit(0, exit(3)), Some((7, exit(3))));
        assert_eq!(lifecycle.observe_exit(0, exit(3)), None, "a duplicate signal publishes nothing");
        assert_eq!(lifecycle.exit(), Some(exit(3)));
    }

    #[test]
    fn failed_start_goes_back_to_created_unless_init_died() {
        let mut lifecycle = Lifecycle::Created { pid: 7 };
        lifecycle.begin_start().unwrap();
        assert_eq!(lifecycle.finish_start(false), Ok(StartOutcome::Failed { pid: 7, exit: None }));
        assert_eq!(lifecycle, Lifecycle::Created { pid: 7 });
        lifecycle.begin_start().unwrap();
        lifecycle.observe_exit(0, exit(1));
        assert_eq!(lifecycle.finish_start(false), Ok(StartOutcome::Failed { pid: 7, exit: Some(exit(1)) }));
        assert_eq!(lifecycle.exit(), Some(exit(1)));
    }

    #[test]
    fn transitions_refuse_the_wrong_states() {
        let mut running = Lifecycle::Running { pid: 7 };
        assert_eq!(running.begin_start(), Err(Refused { state: "running" }));
        assert_eq!(running.begin_delete(), Err(Refused { state: "running" }));
        assert_eq!(running.finish_create(7), Err(Refused { state: "running" }));
        let mut creating = Lifecycle::Creating { pending_exit: None, pending_exit_pid: 0 };
        assert_eq!(creating.begin_delete(), Err(Refused { state: "being created" }));
        assert!(!creating.can_kill());
    }

    #[test]
    fn pause_and_resume_only_from_the_matching_state() {
        let mut lifecycle = Lifecycle::Running { pid: 7 };
        assert_eq!(lifecycle.finish_resume(), Err(Refused { state: "running" }));
        lifecycle.finish_pause().unwrap();
        assert_eq!(lifecycle.status(), Status::PAUSED);
        assert!(lifecycle.can_kill() && lifecycle.is_live());
        assert_eq!(lifecycle.finish_pause(), Err(Refused { state: "paused" }));
        assert_eq!(lifecycle.begin_delete(), Err(Refused { state: "paused" }));
        lifecycle.finish_resume().unwrap();
        assert_eq!(lifecycle, Lifecycle::Running { pid: 7 });
    }

    #[test]
    fn paused_task_that_dies_reports_its_exit() {
        let mut lifecycle = Lifecycle::Paused { pid: 7 };
        assert_eq!(lifecycle.observe_exit(0, exit(137)), Some((7, exit(137))));
        assert_eq!(lifecycle.finish_resume(), Err(Refused { state: "stopped" }));
    }

    #[test]
    fn delete_remembers_the_previous_state_and_any_late_exit() {
        let mut lifecycle = Lifecycle::Created { pid: 7 };
        assert_eq!(lifecycle.begin_delete(), Ok(Lifecycle::Created { pid: 7 }));
        assert_eq!(lifecycle.observe_exit(0, exit(137)), None, "no TaskExit during delete");
        assert_eq!(lifecycle.exit(), Some(exit(137)));
        let mut exited = Lifecycle::Exited { pid: 7, exit: exit(2) };
        assert_eq!(exited.begin_delete(), Ok(Lifecycle::Exited { pid: 7, exit: exit(2) }));
        assert_eq!(exited.begin_delete(), Err(Refused { state: "being deleted" }));
    }

    #[test]
    fn a_failed_delete_goes_back_but_keeps_an_exit_seen_meanwhile() {
        let mut quiet = Lifecycle::Created { pid: 7 };
        let previous = quiet.begin_delete().unwrap();
        assert_eq!(quiet.fail_delete(previous), None);
        assert_eq!(quiet, Lifecycle::Created { pid: 7 });

        let mut exited_meanwhile = Lifecycle::Created { pid: 7 };
        let previous = exited_meanwhile.begin_delete().unwrap();
        assert_eq!(exited_meanwhile.observe_exit(7, exit(137)), None);
        assert_eq!(exited_meanwhile.fail_delete(previous), Some((7, exit(137))), "to be published now");
        assert_eq!(exited_meanwhile, Lifecycle::Exited { pid: 7, exit: exit(137) });

        let mut exited_before = Lifecycle::Exited { pid: 7, exit: exit(2) };
        let previous = exited_before.begin_delete().unwrap();
        assert_eq!(exited_before.fail_delete(previous), None, "its TaskExit went out before");
        assert_eq!(exited_before, Lifecycle::Exited { pid: 7, exit: exit(2) });
    }
}
