//! Re-adoption after a restart: the task table comes back from the records on disk, and each
//! task is reconciled with what systemd and the `ExecStopPost` files say happened while the
//! daemon was down. A process that exited meanwhile gets its exit status and its `TaskExit`;
//! a running one is served again as if nothing happened (its unit never depended on us).
//! Only records that pass the checks of `record_check` are adopted; no record is deleted
//! because it could not be adopted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use runc_wrap::atomic_file::{read_json, remove_if_present};
use runc_wrap::protocol::{exec_dir, files, ExitState};
use unit_gen::{UnitName, UnitNaming, UnitOptions};

use super::bundle::read_spec;
use super::cleanup::{remove_exec_residue, remove_task_residue, ContainerEnd};
use super::exec_process::{ExecLifecycle, ExecProcess};
use super::manager::TaskManager;
use super::record_check::{trusted_records, unit_naming_of};
use super::state::{load_all, TaskRecord};
use super::task::{Exit, Lifecycle, SpecFacts, Task, TaskKey, TaskSetup};
use crate::blocking::blocking;
use crate::error::Error;
use crate::systemd::ServiceExit;

/// An exit whose status nobody recorded (the unit is gone and left no exit state).
const UNKNOWN_EXIT_STATUS: u32 = 255;

/// Where a process is, according to systemd and the exit-state file.
enum Found {
    Alive,
    Exited(Exit),
}

impl TaskManager {
    /// Loads the recorded tasks into the table. Call before watching exits starts routing, then
    /// [`TaskManager::reconcile_adopted`] once it does.
    pub async fn adopt_recorded_tasks(&self) -> Vec<Arc<Task>> {
        let dir = self.state.dir().to_path_buf();
        let exits_dir = self.settings.identity.exits_dir();
        let naming = self.settings.identity.unit_naming.clone();
        let records =
            blocking("reading the task records", move || trusted_records(load_all(&dir), &dir, &exits_dir, &naming))
                .await
                .unwrap_or_default();
        let mut adopted = Vec::new();
        for record in records {
            let key = record.key();
            match self.rebuild(record).await {
                Ok(task) => adopted.push(task),
                // The record stays: it may be the only trace of a running container, and a
                // later daemon may well adopt it.
                Err(error) => tracing::error!(
                    namespace = %key.namespace,
                    container_id = %key.id,
                    "cannot adopt the recorded task: {error}; its record is left in place",
                ),
            }
        }
        if !adopted.is_empty() {
            tracing::info!("adopted {} task(s) from their records", adopted.len());
        }
        adopted
    }

    async fn rebuild(&self, record: TaskRecord) -> Result<Arc<Task>, Error> {
        let key = record.key();
        let unit_naming = unit_naming_of(&record, &self.settings.identity.unit_naming)?;
        let setup = TaskSetup {
            bundle: record.bundle.clone(),
            exit_file: record.exit_file(),
            unit: unit_naming.task(&key.namespace, &key.id),
            unit_naming,
            stdio: record.stdio.clone(),
            stdio_options: record.stdio_options,
            terminal: record.terminal,
            runc: self.runtimes.runtime(
                runc_wrap::Runc::with_settings(record.runc_settings()).with_deadlines(self.settings.runc_deadlines),
            ),
            spec_facts: adopted_spec_facts(&key, &record.bundle, &self.settings.unit_options).await,
            criu_paths: record.criu_paths.clone(),
        };
        let task = Arc::new(Task::creating(key.clone(), setup));
        *task.lifecycle() = record.lifecycle;
        // A process that exited before the restart: its Waits (new ones and replayed ones)
        // answer at once.
        if let Some(exit) = record.lifecycle.exit() {
            task.announce_exit(exit);
        }
        if record.restore_pending {
            task.mark_restore_pending();
        }
        for exec in &record.execs {
            let unit = task.unit_naming.exec(&key.namespace, &key.id, &exec.exec_id);
            let dir = exec_dir(&record.bundle, &exec.exec_id);
            let process =
                Arc::new(ExecProcess::added(exec.exec_id.clone(), unit, dir, exec.stdio.clone(), exec.terminal));
            *process.lifecycle() = exec.lifecycle;
            if let Some(exit) = exec.lifecycle.exit() {
                process.announce_exit(exit);
            }
            self.tasks.add_exec_unit(process.unit_path.clone(), key.clone(), exec.exec_id.clone());
            let _ = task.insert_exec(process);
        }
        if self.tasks.insert_new(Arc::clone(&task)).is_err() {
            return Err(Error::TaskExists { namespace: key.namespace, id: key.id });
        }
        Ok(task)
    }

    /// Brings each adopted task up to date with what happened while the daemon was down.
    pub async fn reconcile_adopted(&self, tasks: Vec<Arc<Task>>) {
        for task in tasks {
            if let Err(error) = self.reconcile(&task).await {
                tracing::error!(
                    namespace = %task.key.namespace,
                    container_id = %task.key.id,
                    "reconciling the adopted task: {error}",
                );
            }
            if self.tasks.get(&task.key).is_some() {
                drop(self.state.save(&task));
            }
        }
    }

    async fn reconcile(&self, task: &Arc<Task>) -> Result<(), Error> {
        let lifecycle = *task.lifecycle();
        match lifecycle {
            // The call that was under way is lost with the old daemon: finish what it began.
            Lifecycle::Creating { .. } | Lifecycle::Deleting { .. } => {
                tracing::info!(
                    namespace = %task.key.namespace,
                    container_id = %task.key.id,
                    "finishing an interrupted {}",
                    lifecycle.name(),
                );
                remove_task_residue(
                    &self.systemd,
                    &*self.runtimes,
                    &self.rootfs_releases,
                    &task.unit,
                    &task.bundle,
                    &task.exit_file,
                    ContainerEnd::Unknown,
                )
                .await?;
                self.tasks.remove(&task.key);
                drop(self.state.remove(&task.key));
                return Ok(());
            }
            Lifecycle::Starting { pid, .. } => *task.lifecycle() = Lifecycle::Running { pid },
            Lifecycle::Created { .. } | Lifecycle::Running { .. } | Lifecycle::Paused { .. } => {}
            Lifecycle::Exited { .. } => {}
        }
        let pid = task.lifecycle().pid();
        if task.lifecycle().exit().is_none() && !task.is_restore_pending() {
            match self.find_process(&task.unit, &task.unit_path, &task.exit_file).await? {
                Found::Exited(exit) => {
                    tracing::info!(
                        namespace = %task.key.namespace,
                        container_id = %task.key.id,
                        "init exited with status {} while the daemon was down",
                        exit.status,
                    );
                    self.record_exit(task, 0, exit);
                }
                Found::Alive if pid != 0 => self.watch_cgroup(task, pid).await,
                Found::Alive => {}
            }
        }
        for exec in task.exec_list() {
            self.reconcile_exec(task, &exec).await?;
        }
        Ok(())
    }

    async fn reconcile_exec(&self, task: &Task, exec: &ExecProcess) -> Result<(), Error> {
        let lifecycle = *exec.lifecycle();
        match lifecycle {
            ExecLifecycle::Deleting { .. } => {
                remove_exec_residue(&self.systemd, &exec.unit, &exec.dir).await?;
                task.remove_exec(&exec.exec_id);
                self.tasks.remove_unit_path(&exec.unit_path);
            }
            ExecLifecycle::Starting { .. } | ExecLifecycle::Running { .. } => {
                if let ExecLifecycle::Starting { .. } = lifecycle {
                    // The start was lost with the old daemon; its unit decides.
                    *exec.lifecycle() = ExecLifecycle::Running { pid: 0 };
                }
                let exit_state = exec.dir.join(files::exec::EXIT_STATE);
                if let Found::Exited(exit) = self.find_process(&exec.unit, &exec.unit_path, &exit_state).await? {
                    self.record_exec_exit(task, exec, exit);
                }
            }
            ExecLifecycle::Added | ExecLifecycle::Exited { .. } => {}
        }
        Ok(())
    }

    /// Whether the main process of `unit` still runs: systemd's word while the unit is loaded,
    /// the `ExecStopPost` record once it is gone.
    async fn find_process(&self, unit: &UnitName, unit_path: &str, exit_state: &Path) -> Result<Found, Error> {
        if let Some(state) = self.systemd.unit_active_state(unit.as_str()).await? {
            if let Some(ServiceExit { status, exited_at_usec, .. }) = self.systemd.service_exit(unit_path).await? {
                return Ok(Found::Exited(Exit { status, at: super::exits::exit_time(exited_at_usec) }));
            }
            if matches!(state.as_str(), "active" | "activating" | "reloading") {
                return Ok(Found::Alive);
            }
        }
        let path = exit_state.to_path_buf();
        let recorded = blocking("reading an exit state", move || read_json::<ExitState>(&path)).await?;
        Ok(Found::Exited(match recorded {
            Ok(state) => Exit { status: state.status, at: state.exited_at() },
            Err(_) => Exit { status: UNKNOWN_EXIT_STATUS, at: SystemTime::now() },
        }))
    }
}

/// The facts of the spec in `bundle`, or, when it cannot be read or used, what is safe to assume
/// ([`SpecFacts::unknown`]): the task's container may still run, and its record is all the
/// daemon has of it, so an unreadable `config.json` must not cost the task its adoption.
async fn adopted_spec_facts(key: &TaskKey, bundle: &Path, options: &UnitOptions) -> SpecFacts {
    let facts = match read_spec(bundle).await {
        Ok(spec) => SpecFacts::of(&spec, options).map_err(Error::from),
        Err(error) => Err(error),
    };
    facts.unwrap_or_else(|error| {
        tracing::warn!(
            namespace = %key.namespace,
            container_id = %key.id,
            "adopting the task without its spec ({error}): assuming hooks to run and processes that may outlive init",
        );
        SpecFacts::unknown(options)
    })
}

impl TaskManager {
    /// Makes the directory task units record their exits in, and removes the exit files no
    /// adopted task owns: those of units whose Delete answered but whose stop the previous
    /// daemon did not see end. Such a unit is left stopped and reset, but only if the file's
    /// name is a task unit's ([`UnitName::parse_task`]) and that unit may be the one whose stop
    /// wrote the file ([`stop_may_be_ours`]); any other file goes alone.
    pub async fn sweep_exit_files(&self) -> Result<(), Error> {
        let dir = self.settings.identity.exits_dir();
        let files = blocking("listing exit files", move || -> Result<Vec<PathBuf>, Error> {
            std::fs::create_dir_all(&dir).map_err(|error| Error::io(format!("creating {}", dir.display()), error))?;
            let entries =
                std::fs::read_dir(&dir).map_err(|error| Error::io(format!("listing {}", dir.display()), error))?;
            Ok(entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
        })
        .await??;
        for file in files {
            match exit_file_unit(&file, &self.settings.identity.unit_naming) {
                None => tracing::warn!("removing {}: not the exit file of a task unit", file.display()),
                Some(unit) if self.tasks.by_unit_path(&unit.object_path()).is_some() => continue,
                Some(unit) => {
                    let state = self.systemd.unit_active_state(unit.as_str()).await?;
                    if stop_may_be_ours(state.as_deref()) {
                        tracing::info!(unit = %unit, "removing the exit file of a deleted task's unit");
                        super::cleanup::stop_unit_only(&self.systemd, &unit).await?;
                    } else {
                        tracing::warn!(
                            unit = %unit,
                            "removing a stale exit file; its unit runs again, as another task's, and is left alone",
                        );
                    }
                }
            }
            blocking("removing an exit file", move || remove_if_present(&file)).await?.map_err(Error::Runc)?;
        }
        Ok(())
    }
}

/// The task unit whose exit file `file` is by its name (`<unit>.json`, see
/// [`crate::paths::exit_file_of`]), if it is one: named as this daemon (`naming`) names units,
/// or plainly, as it named them before it tagged its names.
fn exit_file_unit(file: &Path, naming: &UnitNaming) -> Option<UnitName> {
    let name = file.file_name()?.to_str()?.strip_suffix(".json")?;
    naming.parse_task(name).or_else(|| UnitName::parse_task(name))
}

/// Whether a unit in the active state `state` (`None`: not loaded) may be the one whose stop
/// wrote an exit file. A task unit writes its exit file only when stopped (`RemainAfterExit`
/// keeps it active past its main process's exit, see `unit_gen::init_unit`), so a unit of that
/// name that is active again is a later unit: a new task of the same name, perhaps of another
/// containerd's daemon, which this daemon must not stop.
fn stop_may_be_ours(state: Option<&str>) -> bool {
    !matches!(state, Some("active" | "activating" | "reloading"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exit_files_named_after_a_task_unit_name_a_unit_to_stop() {
        let dir = Path::new("/state/exits");
        let unit = UnitName::for_task("default", "t1");
        let file = crate::paths::exit_file_of(dir, unit.as_str());
        assert_eq!(exit_file_unit(&file, &UnitNaming::Plain), Some(unit.clone()));
        let tagged = UnitNaming::Tagged(unit_gen::DaemonTag::parse("0a1b2c3d").unwrap());
        assert_eq!(exit_file_unit(&file, &tagged), Some(unit), "a plain unit of before the tags");
        let own = tagged.task("default", "t1");
        assert_eq!(exit_file_unit(&crate::paths::exit_file_of(dir, own.as_str()), &tagged), Some(own.clone()));
        assert_eq!(exit_file_unit(&crate::paths::exit_file_of(dir, own.as_str()), &UnitNaming::Plain), None);
        for name in [
            "ssh.service.json",
            "containerd.service.json",
            "containerd-default-t1-exec-e1.service.json",
            "containerd-default-t1.service",
            "containerd-default-t1.service.json.tmp",
            "containerd-..-t1.service.json",
            ".containerd-default-t1.service.json.1.2.tmp",
        ] {
            assert_eq!(exit_file_unit(&dir.join(name), &UnitNaming::Plain), None, "{name:?}");
        }
    }

    #[test]
    fn a_unit_running_again_is_not_stopped_for_an_old_exit_file() {
        for state in ["active", "activating", "reloading"] {
            assert!(!stop_may_be_ours(Some(state)), "{state}");
        }
        for state in [Some("deactivating"), Some("failed"), Some("inactive"), None] {
            assert!(stop_may_be_ours(state), "{state:?}");
        }
    }

    #[tokio::test]
    async fn a_task_whose_config_json_is_unreadable_is_adopted_with_safe_assumptions() {
        let bundle = std::env::temp_dir().join(format!("shim-adopt-spec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&bundle);
        std::fs::create_dir_all(&bundle).unwrap();
        let key = TaskKey { namespace: "default".into(), id: "t1".into() };
        let options = UnitOptions { default_slice: Some("tenants.slice".into()), ..UnitOptions::default() };
        let assumed = SpecFacts::unknown(&options);
        assert_eq!(
            assumed,
            SpecFacts {
                slice: Some("tenants.slice".into()),
                poststart_hooks: true,
                poststop_hooks: true,
                own_pid_namespace: false
            }
        );
        assert_eq!(adopted_spec_facts(&key, &bundle, &options).await, assumed, "config.json missing");
        std::fs::write(bundle.join("config.json"), "{ garbled").unwrap();
        assert_eq!(adopted_spec_facts(&key, &bundle, &options).await, assumed, "config.json garbled");
        let spec = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},
            "linux":{"namespaces":[{"type":"pid"}]}}"#;
        std::fs::write(bundle.join("config.json"), spec).unwrap();
        let read = adopted_spec_facts(&key, &bundle, &options).await;
        assert!(read.own_pid_namespace && !read.poststop_hooks, "a readable spec is used: {read:?}");
        std::fs::remove_dir_all(&bundle).unwrap();
    }
}
