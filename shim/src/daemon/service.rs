//! The containerd task API (`containerd.task.v2.Task` / `v3.Task`) on top of the task manager.
//! Requests are validated here (namespace, ids) and errors become ttrpc statuses here.

use std::future::Future;
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
use tracing::{Instrument, Span};
use ttrpc::r#async::TtrpcContext;

use super::events::timestamp;
use super::kill::parse_signal;
use super::manager::TaskManager;
use super::request::{process_ref, task_key, ProcessRef};
use crate::error::Error;
use crate::task_span;
use crate::telemetry::record_failure;

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

/// Runs a call in its span (from `task_span!`); a failure is logged in the span and marks it
/// failed, then goes to ttrpc.
async fn reply<T>(span: Span, call: impl Future<Output = Result<T, Error>>) -> ttrpc::Result<T> {
    call.instrument(span.clone()).await.map_err(|error| {
        record_failure(&span, &error);
        span.in_scope(|| tracing::warn!("{}: {error}", span.metadata().map_or("task API call", |meta| meta.name())));
        error.into()
    })
}

#[async_trait]
impl TaskApi for TaskService {
    async fn create(&self, ctx: &TtrpcContext, request: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        let span = task_span!("Create", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let pid = self.manager.create(key, request).await?;
            Ok(CreateTaskResponse { pid, ..Default::default() })
        };
        reply(span, result).await
    }

    async fn start(&self, ctx: &TtrpcContext, request: StartRequest) -> ttrpc::Result<StartResponse> {
        let span = task_span!("Start", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let pid = match process_ref(&request.exec_id)? {
                ProcessRef::Init => self.manager.start(&key).await?,
                ProcessRef::Exec(exec_id) => self.manager.start_exec(&key, &exec_id).await?,
            };
            Ok(StartResponse { pid, ..Default::default() })
        };
        reply(span, result).await
    }

    async fn state(&self, ctx: &TtrpcContext, request: StateRequest) -> ttrpc::Result<StateResponse> {
        let span = task_span!("State", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let path =
                |path: &Option<std::path::PathBuf>| path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            match process_ref(&request.exec_id)? {
                ProcessRef::Init => {
                    let task = self.manager.task(&key)?;
                    let lifecycle = *task.lifecycle();
                    Ok(StateResponse {
                        id: key.id.clone(),
                        bundle: task.bundle.display().to_string(),
                        pid: lifecycle.pid(),
                        status: lifecycle.status().into(),
                        stdin: path(&task.stdio.stdin),
                        stdout: path(&task.stdio.stdout),
                        stderr: path(&task.stdio.stderr),
                        terminal: task.terminal,
                        exit_status: lifecycle.exit().map(|exit| exit.status).unwrap_or_default(),
                        exited_at: lifecycle.exit().map(|exit| timestamp(exit.at)).into(),
                        ..Default::default()
                    })
                }
                ProcessRef::Exec(exec_id) => {
                    let (task, exec) = self.manager.exec_of(&key, &exec_id)?;
                    let lifecycle = *exec.lifecycle();
                    Ok(StateResponse {
                        id: exec_id.clone(),
                        exec_id,
                        bundle: task.bundle.display().to_string(),
                        pid: lifecycle.pid(),
                        status: lifecycle.status().into(),
                        stdin: path(&exec.stdio.stdin),
                        stdout: path(&exec.stdio.stdout),
                        stderr: path(&exec.stdio.stderr),
                        terminal: exec.terminal,
                        exit_status: lifecycle.exit().map(|exit| exit.status).unwrap_or_default(),
                        exited_at: lifecycle.exit().map(|exit| timestamp(exit.at)).into(),
                        ..Default::default()
                    })
                }
            }
        };
        reply(span, result).await
    }

    async fn kill(&self, ctx: &TtrpcContext, request: KillRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("Kill", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            match process_ref(&request.exec_id)? {
                ProcessRef::Init => self.manager.kill(&key, request.signal, request.all).await?,
                ProcessRef::Exec(exec_id) => self.manager.kill_exec(&key, &exec_id, parse_signal(request.signal)?)?,
            }
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn wait(&self, ctx: &TtrpcContext, request: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let span = task_span!("Wait", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let exit = match process_ref(&request.exec_id)? {
                ProcessRef::Init => self.manager.wait(&key).await?,
                ProcessRef::Exec(exec_id) => self.manager.wait_exec(&key, &exec_id).await?,
            };
            Ok(WaitResponse {
                exit_status: exit.status,
                exited_at: Some(timestamp(exit.at)).into(),
                ..Default::default()
            })
        };
        reply(span, result).await
    }

    async fn delete(&self, ctx: &TtrpcContext, request: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let span = task_span!("Delete", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let deleted = match process_ref(&request.exec_id)? {
                ProcessRef::Init => self.manager.delete(&key).await?,
                ProcessRef::Exec(exec_id) => self.manager.delete_exec(&key, &exec_id).await?,
            };
            Ok(DeleteResponse {
                pid: deleted.pid,
                exit_status: deleted.exit.status,
                exited_at: Some(timestamp(deleted.exit.at)).into(),
                ..Default::default()
            })
        };
        reply(span, result).await
    }

    async fn connect(&self, ctx: &TtrpcContext, request: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let span = task_span!("Connect", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let task_pid = self.manager.task(&key)?.lifecycle().pid();
            Ok(ConnectResponse {
                shim_pid: std::process::id(),
                task_pid,
                version: concat!("containerd-shim-systemd-v1 ", env!("CARGO_PKG_VERSION")).to_string(),
                ..Default::default()
            })
        };
        reply(span, result).await
    }

    /// containerd asks each task's shim to shut down after deleting the task. Our daemon serves
    /// every task of this containerd and its tasks are systemd units, so it stays up (a later
    /// `start` would only have to launch it again); stop it with `systemctl stop`.
    async fn shutdown(&self, ctx: &TtrpcContext, request: ShutdownRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("Shutdown", ctx, self.namespace, request.id);
        let result = async {
            tracing::debug!(
                "shutdown requested; the shared daemon keeps serving {} task(s)",
                self.manager.task_count()
            );
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn pids(&self, ctx: &TtrpcContext, request: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let span = task_span!("Pids", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let processes = self.manager.pids(&key).await?;
            Ok(PidsResponse { processes, ..Default::default() })
        };
        reply(span, result).await
    }

    async fn pause(&self, ctx: &TtrpcContext, request: PauseRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("Pause", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            self.manager.pause(&key).await?;
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn resume(&self, ctx: &TtrpcContext, request: ResumeRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("Resume", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            self.manager.resume(&key).await?;
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn checkpoint(&self, ctx: &TtrpcContext, request: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("Checkpoint", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            self.manager.checkpoint(&key, &request).await?;
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn exec(&self, ctx: &TtrpcContext, request: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("Exec", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            if process_ref(&request.exec_id)? == ProcessRef::Init {
                return Err(Error::InvalidRequest("exec needs an exec id".into()));
            }
            self.manager.add_exec(&key, request).await?;
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn resize_pty(&self, ctx: &TtrpcContext, request: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("ResizePty", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let process = process_ref(&request.exec_id)?;
            self.manager.resize_pty(&key, process, request.height, request.width).await?;
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    /// The container (or exec) holds its stdin fifo's read end itself and sees EOF once
    /// containerd closes its write end, which containerd does before calling CloseIO; there is
    /// no copy of ours to close. The call still names a process that must exist.
    async fn close_io(&self, ctx: &TtrpcContext, request: CloseIORequest) -> ttrpc::Result<Empty> {
        let span = task_span!("CloseIO", ctx, self.namespace, request.id, request.exec_id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            match process_ref(&request.exec_id)? {
                ProcessRef::Init => drop(self.manager.task(&key)?),
                ProcessRef::Exec(exec_id) => drop(self.manager.exec_of(&key, &exec_id)?),
            }
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn update(&self, ctx: &TtrpcContext, request: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let span = task_span!("Update", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            self.manager.update(&key, request.resources.as_ref()).await?;
            Ok(Empty::new())
        };
        reply(span, result).await
    }

    async fn stats(&self, ctx: &TtrpcContext, request: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let span = task_span!("Stats", ctx, self.namespace, request.id);
        let result = async {
            let key = task_key(&self.namespace, &request.id)?;
            let stats = self.manager.stats(&key).await?;
            Ok(StatsResponse { stats: Some(stats).into(), ..Default::default() })
        };
        reply(span, result).await
    }
}
