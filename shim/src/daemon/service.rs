//! The containerd task API (`containerd.task.v2.Task` / `v3.Task`) on top of the task manager.
//! Requests are validated here (namespace, ids) and errors become ttrpc statuses here.

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::{
    CheckpointTaskRequest, CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, ExecProcessRequest, KillRequest, PauseRequest, PidsRequest, PidsResponse,
    ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest, StartResponse, StateRequest, StateResponse,
    StatsRequest, StatsResponse, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::shim_async::Task as TaskApi;
use ttrpc::r#async::TtrpcContext;

use super::events::timestamp;
use super::manager::TaskManager;
use super::request::{require_init, task_key};
use crate::error::Error;

/// The ttrpc task service for one containerd namespace.
pub struct TaskService {
    manager: Arc<TaskManager>,
    namespace: String,
}

impl TaskService {
    /// The service for `namespace`, backed by `manager`.
    pub fn new(manager: Arc<TaskManager>, namespace: String) -> TaskService {
        TaskService { manager, namespace }
    }
}

/// Logs a failed call with its method and task, then hands the error to ttrpc.
fn reply<T>(method: &str, id: &str, result: Result<T, Error>) -> ttrpc::Result<T> {
    result.map_err(|error| {
        tracing::warn!(method, id, "{error}");
        error.into()
    })
}

fn unsupported<T>(what: &str) -> ttrpc::Result<T> {
    Err(Error::Unsupported(what.to_string()).into())
}

#[async_trait]
impl TaskApi for TaskService {
    async fn create(&self, _ctx: &TtrpcContext, request: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        let id = request.id.clone();
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let pid = self.manager.create(key, request).await?;
            Ok(CreateTaskResponse { pid, ..Default::default() })
        };
        reply("Create", &id, result.await)
    }

    async fn start(&self, _ctx: &TtrpcContext, request: StartRequest) -> ttrpc::Result<StartResponse> {
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            require_init(&key, &request.exec_id)?;
            let pid = self.manager.start(&key).await?;
            Ok(StartResponse { pid, ..Default::default() })
        };
        reply("Start", &request.id, result.await)
    }

    async fn state(&self, _ctx: &TtrpcContext, request: StateRequest) -> ttrpc::Result<StateResponse> {
        let result = (|| {
            let key = task_key(&self.namespace, &request.id)?;
            require_init(&key, &request.exec_id)?;
            let task = self.manager.task(&key)?;
            let lifecycle = *task.lifecycle();
            let path =
                |path: &Option<std::path::PathBuf>| path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            Ok(StateResponse {
                id: key.id.clone(),
                bundle: task.bundle.display().to_string(),
                pid: lifecycle.pid(),
                status: lifecycle.status().into(),
                stdin: path(&task.stdio.stdin),
                stdout: path(&task.stdio.stdout),
                stderr: path(&task.stdio.stderr),
                terminal: false,
                exit_status: lifecycle.exit().map(|exit| exit.status).unwrap_or_default(),
                exited_at: lifecycle.exit().map(|exit| timestamp(exit.at)).into(),
                ..Default::default()
            })
        })();
        reply("State", &request.id, result)
    }

    async fn kill(&self, _ctx: &TtrpcContext, request: KillRequest) -> ttrpc::Result<Empty> {
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            require_init(&key, &request.exec_id)?;
            self.manager.kill(&key, request.signal, request.all).await?;
            Ok(Empty::new())
        };
        reply("Kill", &request.id, result.await)
    }

    async fn wait(&self, _ctx: &TtrpcContext, request: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            require_init(&key, &request.exec_id)?;
            let exit = self.manager.wait(&key).await?;
            Ok(WaitResponse {
                exit_status: exit.status,
                exited_at: Some(timestamp(exit.at)).into(),
                ..Default::default()
            })
        };
        reply("Wait", &request.id, result.await)
    }

    async fn delete(&self, _ctx: &TtrpcContext, request: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            require_init(&key, &request.exec_id)?;
            let deleted = self.manager.delete(&key).await?;
            Ok(DeleteResponse {
                pid: deleted.pid,
                exit_status: deleted.exit.status,
                exited_at: Some(timestamp(deleted.exit.at)).into(),
                ..Default::default()
            })
        };
        reply("Delete", &request.id, result.await)
    }

    async fn connect(&self, _ctx: &TtrpcContext, request: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let result = (|| {
            let key = task_key(&self.namespace, &request.id)?;
            let task_pid = self.manager.task(&key)?.lifecycle().pid();
            Ok(ConnectResponse {
                shim_pid: std::process::id(),
                task_pid,
                version: concat!("containerd-shim-systemd-v1 ", env!("CARGO_PKG_VERSION")).to_string(),
                ..Default::default()
            })
        })();
        reply("Connect", &request.id, result)
    }

    /// containerd asks each task's shim to shut down after deleting the task. Our daemon serves
    /// every task of this containerd and its tasks are systemd units, so it stays up (a later
    /// `start` would only have to launch it again); stop it with `systemctl stop`.
    async fn shutdown(&self, _ctx: &TtrpcContext, _request: ShutdownRequest) -> ttrpc::Result<Empty> {
        tracing::debug!("shutdown requested; the shared daemon keeps serving {} task(s)", self.manager.task_count());
        Ok(Empty::new())
    }

    async fn pids(&self, _ctx: &TtrpcContext, _request: PidsRequest) -> ttrpc::Result<PidsResponse> {
        unsupported("listing a task's pids")
    }

    async fn pause(&self, _ctx: &TtrpcContext, _request: PauseRequest) -> ttrpc::Result<Empty> {
        unsupported("pausing a task")
    }

    async fn resume(&self, _ctx: &TtrpcContext, _request: ResumeRequest) -> ttrpc::Result<Empty> {
        unsupported("resuming a task")
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _request: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        unsupported("checkpointing a task")
    }

    async fn exec(&self, _ctx: &TtrpcContext, _request: ExecProcessRequest) -> ttrpc::Result<Empty> {
        unsupported("exec into a task")
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, _request: ResizePtyRequest) -> ttrpc::Result<Empty> {
        unsupported("resizing a terminal")
    }

    async fn close_io(&self, _ctx: &TtrpcContext, _request: CloseIORequest) -> ttrpc::Result<Empty> {
        unsupported("closing a task's stdin")
    }

    async fn update(&self, _ctx: &TtrpcContext, _request: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        unsupported("updating a task's resources")
    }

    async fn stats(&self, _ctx: &TtrpcContext, _request: StatsRequest) -> ttrpc::Result<StatsResponse> {
        unsupported("task statistics")
    }
}
