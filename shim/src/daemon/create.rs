//! Create: validate the request, write the helper's create request into the bundle, start the
//! task's transient unit and wait for its start job. When the job is done, `runc create` has
//! exited, systemd has read the pid file, and the container init is the unit's main process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::api::CreateTaskRequest;
use oci_spec::runtime::Spec;
use runc_wrap::atomic_file::{read_json, write_json_atomically};
use runc_wrap::protocol::{
    files, ConsolePaths, CreateRequest, HelperFailure, HelperStage, InitExitedAtCreate, RestoreFrom, RootfsMount,
    RuncInvocation, StdioOptions, StdioPaths, SupervisorCgroup,
};
use runc_wrap::runc::{last_error_in_log, resolve_binary, RuncSettings};
use runc_wrap::Runc;
use tokio::sync::SemaphorePermit;
use unit_gen::{render_init_unit, HelperPaths, InitUnitRequest, SupervisorPlacement, UnitName, SUPERVISOR_CGROUP};

use super::bundle::{read_pid_file, read_spec, stdio_path, validate_bundle};
use super::cleanup::{remove_task_residue, ContainerEnd};
use super::manager::TaskManager;
use super::state::Saved;
use super::task::{CriuPaths, Exit, SpecFacts, Task, TaskKey, TaskSetup};
use crate::blocking::blocking;
use crate::error::Error;
use crate::paths::exit_file_of;
use crate::runtime_options::{decode_options, LogMode};
use crate::systemd::{error_names, JobResult, SystemdError};

/// How long we wait for the unit's start job: systemd's own TimeoutStartSec plus a margin.
const START_JOB_TIMEOUT: Duration = Duration::from_micros(unit_gen::init_unit::START_TIMEOUT_USEC + 10_000_000);

/// A request that passed validation.
struct ValidCreate {
    bundle: PathBuf,
    stdio_pipes: bool,
    criu_paths: CriuPaths,
    sd_notify: bool,
    stdio_options: StdioOptions,
    spec: Spec,
    stdio: StdioPaths,
    runc: Runc,
    rootfs: Vec<RootfsMount>,
}

impl TaskManager {
    /// Creates task `key` from `request`; returns the init pid.
    ///
    /// A Create holds one of the [`CREATE_SLOTS`](super::manager) only while it parses and
    /// submits: not while a deleted task's unit of the same name goes down, nor while its start
    /// job runs (a fifo nobody reads, slow hooks), so stuck Creates never hold back others.
    pub async fn create(&self, key: TaskKey, request: CreateTaskRequest) -> Result<u32, Error> {
        self.heap_trimmer.note_work();
        let unit = self.settings.identity.unit_naming.task(&key.namespace, &key.id);
        self.unit_stops.settled(&unit).await;
        // The semaphore is never closed, so there is always a permit to wait for. A waiting
        // Create's future stays small: the work's own future is allocated once admitted.
        let slot = self.create_slots.acquire().await.ok();
        Box::pin(self.create_admitted(key, unit, request, slot)).await
    }

    /// [`TaskManager::create`] once it holds `slot`, which [`TaskManager::start_init_unit`]
    /// gives back once the unit is submitted.
    async fn create_admitted(
        &self,
        key: TaskKey,
        unit: UnitName,
        request: CreateTaskRequest,
        slot: Option<SemaphorePermit<'_>>,
    ) -> Result<u32, Error> {
        self.prime_cgroup_move();
        let valid = self.validate_create(&key, &request).await?;
        let setup = TaskSetup {
            bundle: valid.bundle.clone(),
            exit_file: exit_file_of(&self.settings.identity.exits_dir(), unit.as_str()),
            unit,
            unit_naming: self.settings.identity.unit_naming.clone(),
            stdio: valid.stdio.clone(),
            stdio_options: valid.stdio_options,
            terminal: request.terminal,
            runc: self.runtimes.runtime(valid.runc.clone()),
            spec_facts: SpecFacts::of(&valid.spec, &self.settings.unit_options)?,
            criu_paths: valid.criu_paths.clone(),
        };
        let task = Arc::new(Task::creating(key.clone(), setup));
        if self.tasks.insert_new(Arc::clone(&task)).is_err() {
            return Err(Error::TaskExists { namespace: key.namespace, id: key.id });
        }
        if !request.checkpoint.is_empty() {
            drop(slot);
            return self.create_for_restore(&task, &valid, &request).await;
        }
        match self.launch(&task, &valid, slot).await {
            Ok(pid) => {
                self.watch_cgroup(&task, pid).await;
                self.finish_create(&task, pid, request.rootfs).written().await;
                Ok(pid)
            }
            Err(error @ Error::UnitExists { .. }) => {
                // The unit is not this Create's (another containerd's task of the same name, or
                // one left running): stopping it, or `runc delete` of its container, would end
                // someone else's container.
                tracing::warn!(task = %key, "create failed: {error}; the unit is left as it is");
                self.tasks.remove(&key);
                Err(error)
            }
            Err(error) => {
                tracing::warn!(task = %key, "create failed: {error}; cleaning up");
                let cleanup = remove_task_residue(
                    &self.systemd,
                    &*self.runtimes,
                    &self.rootfs_releases,
                    &task.unit,
                    &task.bundle,
                    &task.exit_file,
                    ContainerEnd::Unknown,
                );
                if let Err(cleanup_error) = cleanup.await {
                    tracing::error!(task = %key, "cleaning up after a failed create: {cleanup_error}");
                }
                self.tasks.remove(&key);
                Err(error)
            }
        }
    }

    async fn validate_create(&self, key: &TaskKey, request: &CreateTaskRequest) -> Result<ValidCreate, Error> {
        if !request.checkpoint.is_empty() && request.terminal {
            return Err(Error::Unsupported("restoring a task with a terminal".into()));
        }
        let stdio = StdioPaths {
            stdin: stdio_path("stdin", &request.stdin)?,
            stdout: stdio_path("stdout", &request.stdout)?,
            stderr: stdio_path("stderr", &request.stderr)?,
        };
        let options = decode_options(request.options.as_ref(), &self.settings.task_defaults).await?;
        if !request.checkpoint.is_empty() {
            options.refuse_unhonoured_restore_settings()?;
        }
        let bundle = validate_bundle(&request.bundle).await?;
        let spec = read_spec(&bundle).await?;
        let spec_terminal = spec.process().as_ref().and_then(|process| process.terminal()).unwrap_or(false);
        if spec_terminal != request.terminal {
            return Err(Error::InvalidSpec {
                bundle: bundle.clone(),
                reason: format!("process.terminal is {spec_terminal} but the request asks for {}", request.terminal),
            });
        }

        let runc_name = options.runc_binary.unwrap_or_else(|| "runc".to_string());
        let path_env = self.settings.path_env.clone();
        let runc_binary = blocking("looking up runc", move || resolve_binary(&runc_name, Some(&path_env)))
            .await?
            .map_err(Error::Runc)?;
        // Optional: only checkpoint and restore need it.
        let path_env = self.settings.path_env.clone();
        let criu = blocking("looking up criu", move || resolve_binary("criu", Some(&path_env)).ok()).await?;
        let root = match options.runc_root {
            Some(root) => PathBuf::from(root).join(&key.namespace),
            None => self.settings.identity.default_runc_root(&key.namespace),
        };
        let rootfs = request
            .rootfs
            .iter()
            .map(|mount| RootfsMount {
                fs_type: mount.type_.clone(),
                source: mount.source.clone(),
                options: mount.options.clone(),
            })
            .collect();
        let stdio_options =
            StdioOptions { owner: options.io_owner, output_to_journal: options.log_mode == LogMode::Journal };
        let criu_paths = CriuPaths {
            image: options.criu_image_path.map(PathBuf::from),
            work: options.criu_work_path.map(PathBuf::from),
        };
        Ok(ValidCreate {
            bundle,
            stdio_pipes: options.checkpointable,
            criu_paths,
            sd_notify: options.sd_notify,
            stdio_options,
            spec,
            stdio,
            runc: Runc::with_settings(RuncSettings {
                binary: runc_binary,
                root,
                criu,
                no_pivot_root: options.no_pivot_root,
                no_new_keyring: options.no_new_keyring,
            })
            .with_deadlines(self.settings.runc_deadlines),
            rootfs,
        })
    }

    /// Writes the helper's request, starts the unit, and returns the init pid. An init that a
    /// program wrapping runc ended right after create (the unit's start then fails, as systemd
    /// has nothing to adopt) is a created task that has exited, as under runc-v2: its exit is
    /// held for [`TaskManager::finish_create`] to publish after TaskCreate.
    async fn launch(&self, task: &Task, valid: &ValidCreate, slot: Option<SemaphorePermit<'_>>) -> Result<u32, Error> {
        self.write_create_request(task, valid, None).await?;
        match self.start_init_unit(task, &valid.spec, valid.sd_notify, slot).await {
            Ok(pid) => Ok(pid),
            Err(error) => match init_exited_at_create(&task.bundle).await {
                Some(ended) => {
                    let exit = Exit { status: ended.exit.status, at: ended.exit.exited_at() };
                    task.lifecycle().observe_exit(ended.pid, exit);
                    tracing::info!(task = %task.key, "init {} ended right after create: {exit:?}", ended.pid);
                    Ok(ended.pid)
                }
                None => Err(error),
            },
        }
    }

    /// Writes the helper's create request into the bundle.
    async fn write_create_request(
        &self,
        task: &Task,
        valid: &ValidCreate,
        restore: Option<RestoreFrom>,
    ) -> Result<(), Error> {
        let bundle = &valid.bundle;
        let create_request = CreateRequest {
            namespace: task.key.namespace.clone(),
            container_id: task.key.id.clone(),
            bundle: bundle.clone(),
            rootfs: valid.rootfs.clone(),
            stdio: valid.stdio.clone(),
            stdio_options: valid.stdio_options,
            console: task.terminal.then(|| ConsolePaths {
                socket: self.settings.identity.console_socket(&task.key.to_string()),
                record: bundle.join(files::CONSOLE_RECORD),
            }),
            runc: RuncInvocation { settings: valid.runc.settings.clone(), log: bundle.join(files::RUNC_LOG) },
            pid_file: bundle.join(files::INIT_PID),
            failure_report: bundle.join(files::HELPER_FAILURE),
            fifo_timeout_ms: u64::try_from(self.settings.fifo_timeout.as_millis()).unwrap_or(u64::MAX),
            sd_notify: valid.sd_notify,
            stdio_pipes: valid.stdio_pipes,
            restore,
            supervisor: supervisor_cgroup(self.systemd.version()),
        };
        let request_path = bundle.join(files::CREATE_REQUEST);
        blocking("writing the create request", move || write_json_atomically(&request_path, &create_request))
            .await?
            .map_err(Error::Runc)
    }

    /// Starts the init unit for the create request in the bundle; returns the init pid once
    /// `runc create` (or `runc restore`) is done. A Create's `slot` is given back as soon as
    /// systemd has the unit.
    pub(super) async fn start_init_unit(
        &self,
        task: &Task,
        spec: &Spec,
        sd_notify: bool,
        slot: Option<SemaphorePermit<'_>>,
    ) -> Result<u32, Error> {
        let bundle = &task.bundle;
        let helper = HelperPaths {
            exe: self.settings.exe.display().to_string(),
            create_request: bundle.join(files::CREATE_REQUEST).display().to_string(),
            pid_file: bundle.join(files::INIT_PID).display().to_string(),
            exit_state: task.exit_file.display().to_string(),
        };
        let unit = render_init_unit(&InitUnitRequest {
            unit: &task.unit,
            namespace: &task.key.namespace,
            id: &task.key.id,
            spec,
            helper: &helper,
            options: &self.settings.unit_options,
            systemd_version: self.systemd.version(),
            hierarchy: self.settings.cgroup_hierarchy,
            sd_notify,
        })?;
        // A deleted task of the same name may still have its unit going down.
        self.unit_stops.settled(&task.unit).await;
        let mut job = match self.systemd.begin_transient_unit(&unit).await {
            Ok(job) => job,
            Err(error) if error.is(error_names::UNIT_EXISTS) => {
                return Err(Error::UnitExists {
                    namespace: task.key.namespace.clone(),
                    id: task.key.id.clone(),
                    unit: task.unit.to_string(),
                })
            }
            Err(error) => return Err(Error::Systemd(error)),
        };
        drop(slot);
        let result = if sd_notify {
            // The start job ends only when the container says READY=1, after Start; created
            // means the helper has named the container init as the unit's main process.
            let pid_file = bundle.join(files::INIT_PID);
            let created = tokio::time::timeout(START_JOB_TIMEOUT, async {
                tokio::select! {
                    result = job.wait(START_JOB_TIMEOUT) => Err(result),
                    pid = init_became_main_pid(task, &pid_file) => Ok(pid),
                }
            })
            .await
            .map_err(|_| {
                Error::Systemd(SystemdError::JobTimeout { unit: task.unit.to_string(), timeout: START_JOB_TIMEOUT })
            })?;
            match created {
                Ok(Some(pid)) => return Ok(pid),
                Ok(None) => Err(SystemdError::ConnectionLost { unit: task.unit.to_string() }),
                Err(result) => result,
            }
        } else {
            job.wait(START_JOB_TIMEOUT).await
        };
        match result.map_err(Error::Systemd)? {
            JobResult::Done => read_pid_file(&bundle.join(files::INIT_PID)).await,
            result => Err(self.create_failure(task, &result).await),
        }
    }

    /// A task created from a checkpoint: as with runc-v2, nothing runs until Start, which
    /// starts the unit whose helper runs `runc restore`. Create reports pid 0.
    async fn create_for_restore(
        &self,
        task: &Arc<Task>,
        valid: &ValidCreate,
        request: &CreateTaskRequest,
    ) -> Result<u32, Error> {
        if valid.sd_notify {
            self.tasks.remove(&task.key);
            return Err(Error::Unsupported("SdNotify for a task restored from a checkpoint".into()));
        }
        let restore = RestoreFrom {
            image_path: PathBuf::from(&request.checkpoint),
            work_path: task.criu_paths.work.clone().unwrap_or_else(|| task.bundle.join("criu-work")),
        };
        if let Err(error) = self.write_create_request(task, valid, Some(restore)).await {
            self.tasks.remove(&task.key);
            return Err(error);
        }
        task.mark_restore_pending();
        self.finish_create(task, 0, request.rootfs.clone()).written().await;
        Ok(0)
    }

    /// Why the start job failed: the helper's report, else runc's last logged error, else the
    /// job result with a pointer to the journal.
    async fn create_failure(&self, task: &Task, result: &JobResult) -> Error {
        let namespace = task.key.namespace.clone();
        let id = task.key.id.clone();
        let report_path = task.bundle.join(files::HELPER_FAILURE);
        if let Ok(Ok(report)) = tokio::task::spawn_blocking(move || read_json::<HelperFailure>(&report_path)).await {
            let caused_by_input = report.stage == HelperStage::Mount;
            return Error::CreateFailed {
                namespace,
                id,
                stage: report.stage.to_string(),
                message: report.message,
                caused_by_input,
            };
        }
        if let Ok(log) = tokio::fs::read_to_string(task.bundle.join(files::RUNC_LOG)).await {
            if let Some(message) = last_error_in_log(&log) {
                return Error::CreateFailed {
                    namespace,
                    id,
                    stage: "running runc create".into(),
                    message,
                    caused_by_input: false,
                };
            }
        }
        Error::CreateFailed {
            namespace,
            id,
            stage: "starting the unit".into(),
            message: format!("start job {result}; see `journalctl -u {}`", task.unit),
            caused_by_input: false,
        }
    }

    /// Records the created state (or an exit that raced creation) and publishes events in order.
    fn finish_create(&self, task: &Task, pid: u32, rootfs: Vec<containerd_shim_protos::api::Mount>) -> Saved {
        {
            let mut lifecycle = task.lifecycle();
            match lifecycle.finish_create(pid) {
                Ok(raced_exit) => {
                    self.events.task_created(task, pid, rootfs);
                    if let Some(exit) = raced_exit {
                        self.events.task_exited(task, pid, exit);
                        task.announce_exit(exit);
                        super::exits::log_init_exit(task, pid, exit);
                    }
                }
                Err(refused) => tracing::error!(task = %task.key, "task is {} at the end of create", refused.state),
            }
        }
        self.state.save(task)
    }
}

/// With `SdNotify`: waits until systemd's main pid for the unit is the container init the pid
/// file names (at first it is the helper). `None` if the task went away meanwhile.
async fn init_became_main_pid(task: &Task, pid_file: &Path) -> Option<u32> {
    let mut announced = task.main_pid_receiver();
    loop {
        let main_pid = *announced.borrow_and_update();
        if let (Some(main_pid), Ok(init_pid)) = (main_pid, read_pid_file(pid_file).await) {
            if main_pid == init_pid {
                return Some(init_pid);
            }
        }
        announced.changed().await.ok()?;
    }
}

/// The helper's record of an init that was gone when `runc create` returned, if there is one.
async fn init_exited_at_create(bundle: &Path) -> Option<InitExitedAtCreate> {
    let record = bundle.join(files::INIT_EXITED_AT_CREATE);
    blocking("reading the early exit record", move || read_json::<InitExitedAtCreate>(&record).ok())
        .await
        .ok()
        .flatten()
}

/// Where the init unit's helper runs, as the unit [`render_init_unit`] makes for this systemd
/// places it.
fn supervisor_cgroup(systemd_version: u32) -> SupervisorCgroup {
    let name = SUPERVISOR_CGROUP.to_string();
    match SupervisorPlacement::for_systemd(systemd_version) {
        SupervisorPlacement::BySystemd => SupervisorCgroup::StartedIn { name },
        SupervisorPlacement::ByHelper => SupervisorCgroup::MoveTo { name },
    }
}
