//! Checkpoint: `runc checkpoint` (CRIU) of a running container into the directory containerd
//! names, with containerd's `CheckpointOptions`; `TaskCheckpointed` on success. Without
//! `leave-running` (containerd's `exit`), the container stops and its unit with it.

use std::path::PathBuf;

use containerd_shim_protos::api::CheckpointTaskRequest;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::CheckpointOptions;
use runc_wrap::runc::CheckpointArgs;

use super::manager::TaskManager;
use super::task::TaskKey;
use crate::error::Error;

/// The type name of containerd's checkpoint options for runc shims.
const CHECKPOINT_OPTIONS_TYPE: &str = "containerd.runc.v1.CheckpointOptions";

impl TaskManager {
    /// Checkpoints task `key` as `request` asks.
    pub async fn checkpoint(&self, key: &TaskKey, request: &CheckpointTaskRequest) -> Result<(), Error> {
        let options = checkpoint_options(request)?;
        let task = self.task(key)?;
        self.require_state(&task, "checkpoint", |lifecycle| lifecycle.is_live())?;
        let image_path = [request.path.as_str(), options.image_path.as_str()]
            .into_iter()
            .find(|path| !path.is_empty())
            .map(PathBuf::from)
            .or_else(|| task.criu_paths.image.clone())
            .ok_or_else(|| Error::InvalidRequest("checkpoint without an image path".into()))?;
        let work_path = (!options.work_path.is_empty())
            .then(|| PathBuf::from(&options.work_path))
            .or_else(|| task.criu_paths.work.clone())
            .unwrap_or_else(|| task.bundle.join("criu-work"));
        let args = CheckpointArgs {
            image_path,
            work_path,
            leave_running: !options.exit,
            tcp_established: options.open_tcp,
            external_unix_sockets: options.external_unix_sockets,
            shell_job: options.terminal || task.terminal,
            file_locks: options.file_locks,
            empty_namespaces: options.empty_namespaces.clone(),
            cgroups_mode: (!options.cgroups_mode.is_empty()).then(|| options.cgroups_mode.clone()),
        };
        task.runc.checkpoint(&key.id, &args).await.map_err(Error::Runc)?;
        self.events.task_checkpointed(&task, &args.image_path.display().to_string());
        Ok(())
    }
}

/// containerd's options, or defaults when none were sent.
fn checkpoint_options(request: &CheckpointTaskRequest) -> Result<CheckpointOptions, Error> {
    let Some(any) = request.options.as_ref().filter(|any| !any.type_url.is_empty()) else {
        return Ok(CheckpointOptions::default());
    };
    if any.type_url.rsplit('/').next() != Some(CHECKPOINT_OPTIONS_TYPE) {
        return Err(Error::InvalidRequest(format!(
            "checkpoint options of type {:?} are not supported (expected {CHECKPOINT_OPTIONS_TYPE})",
            any.type_url
        )));
    }
    CheckpointOptions::parse_from_bytes(&any.value)
        .map_err(|error| Error::InvalidRequest(format!("undecodable {CHECKPOINT_OPTIONS_TYPE}: {error}")))
}
