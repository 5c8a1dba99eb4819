//! A containerd gRPC client for the integration tests. It drives a runtime through containerd's
//! public API the way containerd's Go integration suite does (`client.NewContainer`,
//! `container.NewTask`, `task.Start`/`Wait`/`Exec`/`Delete`): image → snapshot → container
//! record → task, so a shim is tested as containerd's clients use it, not only through `ctr`.
//!
//! Only the services' v1 API is used, which containerd 1.6 and 2.x both serve. The runtime is a
//! parameter, so one test body runs against `io.containerd.runc.v2` as a baseline and against
//! ours. The client connects from the host through `/proc/PID/root` of the sandbox.

pub mod image;
pub mod spec;
pub mod stdio;

use std::path::PathBuf;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    containers_client::ContainersClient, content_client::ContentClient, images_client::ImagesClient,
    leases_client::LeasesClient, tasks_client::TasksClient, Container as ContainerRecord, CreateContainerRequest,
    CreateRequest as CreateLeaseRequest, CreateTaskRequest, DeleteContainerRequest, DeleteProcessRequest,
    DeleteRequest as DeleteLeaseRequest, DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetImageRequest,
    GetRequest, KillRequest, ListPidsRequest, MetricsRequest, PauseTaskRequest, ReadContentRequest, ResumeTaskRequest,
    StartRequest, WaitRequest,
};
use containerd_client::services::v1::{CloseIoRequest, UpdateTaskRequest};
use containerd_client::tonic::metadata::AsciiMetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{self, Request, Status};
use containerd_client::types::v1::{Process, Status as ProcessStatus};
use containerd_client::types::Metric;
use nix::sys::signal::Signal;

/// gRPC status codes, as [`Error::code`] returns them.
pub use containerd_client::tonic::Code;
pub use stdio::{InputFifo, OutputFifo, OutputFile, Stdio};

use crate::rpc::{call_timeout, with_deadline, CallError};
use crate::{Sandbox, IMAGE};

/// containerd's own runc runtime, the baseline our runtime is compared with.
pub const RUNC_V2: &str = "io.containerd.runc.v2";
/// The snapshotter `ctr images import` unpacks into unless told otherwise.
pub const SNAPSHOTTER: &str = "overlayfs";
/// containerd's gRPC socket, as the sandbox sees it.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

/// The header containerd reads a request's namespace from (`pkg/namespaces/grpc.go`).
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// The header that puts what a request creates under a lease (`leases/grpc.go`).
const LEASE_HEADER: &str = "containerd-lease";

/// What went wrong talking to containerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached.
    #[error("failed to connect to containerd at {path}")]
    Connect {
        /// The socket's path as the host sees it.
        path: PathBuf,
        /// What the transport said.
        #[source]
        source: tonic::transport::Error,
    },
    /// A namespace or lease id cannot be sent as a gRPC header.
    #[error("{header} {value:?} is not a valid header value")]
    InvalidHeader {
        /// The header it was meant for.
        header: &'static str,
        /// The value.
        value: String,
    },
    /// A call failed or got no answer.
    #[error(transparent)]
    Call(#[from] CallError),
    /// An image's manifest or config is not what the OCI image spec describes.
    #[error("image {image} is malformed: {reason}")]
    BadImage {
        /// The image name.
        image: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// The image's layers are not unpacked into the snapshotter.
    #[error("image {image} is not unpacked into {snapshotter}: no snapshot {chain_id}")]
    NotUnpacked {
        /// The image name.
        image: String,
        /// The snapshotter looked in.
        snapshotter: String,
        /// The snapshot key the top layer would have.
        chain_id: String,
    },
    /// A stdio fifo or log could not be made or read.
    #[error("failed to use stdio path {path}")]
    Stdio {
        /// The fifo or log.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// No writer closed an output fifo in time.
    #[error("output fifo {path} was not closed within {timeout:?}")]
    OutputTimeout {
        /// The fifo.
        path: PathBuf,
        /// How long the test waited.
        timeout: Duration,
    },
}

impl Error {
    /// The gRPC status code, if containerd answered with an error.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Call(error) => error.code(),
            _ => None,
        }
    }

    fn is_not_found(&self) -> bool {
        self.code() == Some(Code::NotFound)
    }
}

/// The state containerd reports for a task's init or exec process (`Tasks.Get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Created and not started.
    Created {
        /// Its pid.
        pid: u32,
    },
    /// Started and not exited.
    Running {
        /// Its pid.
        pid: u32,
    },
    /// Frozen.
    Paused {
        /// Its pid.
        pid: u32,
    },
    /// Being frozen.
    Pausing {
        /// Its pid.
        pid: u32,
    },
    /// Exited.
    Stopped {
        /// The pid it had.
        pid: u32,
        /// Its exit status (128 + signal number if a signal ended it).
        exit_status: u32,
    },
    /// The runtime could not tell.
    Unknown {
        /// Its pid.
        pid: u32,
    },
}

impl ProcessState {
    fn from_process(process: &Process) -> ProcessState {
        let pid = process.pid;
        match process.status() {
            ProcessStatus::Created => ProcessState::Created { pid },
            ProcessStatus::Running => ProcessState::Running { pid },
            ProcessStatus::Paused => ProcessState::Paused { pid },
            ProcessStatus::Pausing => ProcessState::Pausing { pid },
            ProcessStatus::Stopped => ProcessState::Stopped { pid, exit_status: process.exit_status },
            ProcessStatus::Unknown => ProcessState::Unknown { pid },
        }
    }

    /// Whether the process is gone (or never ran), so its task may be deleted without a kill.
    pub fn is_done(&self) -> bool {
        matches!(self, ProcessState::Created { .. } | ProcessState::Stopped { .. })
    }
}

/// [`crate::rpc::call`], answering in this module's [`Error`].
async fn call<T>(
    call: &'static str,
    id: &str,
    response: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Error> {
    Ok(crate::rpc::call(call, id, response).await?)
}

/// Treats NotFound as done: cleanup removes what is there.
fn ignore_not_found(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(error) if error.is_not_found() => Ok(()),
        other => other,
    }
}

/// A connection to containerd, bound to one namespace.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    socket: PathBuf,
    namespace: String,
    namespace_header: AsciiMetadataValue,
}

impl Client {
    /// Connects to the sandbox's containerd through the sandbox's root.
    pub async fn connect(sandbox: &Sandbox, namespace: &str) -> Result<Client, Error> {
        Client::connect_to(sandbox.host_path(CONTAINERD_SOCKET), namespace).await
    }

    /// Connects to the containerd socket at `socket` (a host path).
    pub async fn connect_to(socket: PathBuf, namespace: &str) -> Result<Client, Error> {
        let namespace_header = namespace
            .parse::<AsciiMetadataValue>()
            .map_err(|_| Error::InvalidHeader { header: NAMESPACE_HEADER, value: namespace.to_string() })?;
        let channel = containerd_client::connect(&socket)
            .await
            .map_err(|source| Error::Connect { path: socket.clone(), source })?;
        Ok(Client { channel, socket, namespace: namespace.to_string(), namespace_header })
    }

    /// The namespace every request is made in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `message` as a request in our namespace, with a deadline containerd sees too.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = with_deadline(message);
        request.metadata_mut().insert(NAMESPACE_HEADER, self.namespace_header.clone());
        request
    }

    /// `message` as a request whose creations `lease` holds against garbage collection.
    fn leased_request<T>(&self, message: T, lease: &AsciiMetadataValue) -> Request<T> {
        let mut request = self.request(message);
        request.metadata_mut().insert(LEASE_HEADER, lease.clone());
        request
    }

    fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }

    /// A blob from the content store, parsed as JSON.
    async fn read_json(&self, image: &str, digest: &str) -> Result<serde_json::Value, Error> {
        let request = self.request(ReadContentRequest { digest: digest.to_string(), offset: 0, size: 0 });
        let mut stream = call("Content.Read", digest, ContentClient::new(self.channel.clone()).read(request)).await?;
        let mut bytes = Vec::new();
        loop {
            match tokio::time::timeout(call_timeout(), stream.message()).await {
                Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk.data),
                Ok(Ok(None)) => break,
                Ok(Err(source)) => {
                    return Err(CallError::Failed { call: "Content.Read", id: digest.to_string(), source }.into())
                }
                Err(_) => {
                    return Err(CallError::Timeout {
                        call: "Content.Read",
                        id: digest.to_string(),
                        timeout: call_timeout(),
                    }
                    .into())
                }
            }
        }
        serde_json::from_slice(&bytes)
            .map_err(|error| Error::BadImage { image: image.to_string(), reason: format!("blob {digest}: {error}") })
    }

    /// The chain id of `image`'s layers: the key of the snapshot its top layer is unpacked under.
    pub async fn image_chain_id(&self, image: &str) -> Result<String, Error> {
        let bad = |reason: String| Error::BadImage { image: image.to_string(), reason };
        let request = self.request(GetImageRequest { name: image.to_string() });
        let found = call("Images.Get", image, ImagesClient::new(self.channel.clone()).get(request)).await?;
        let target = found.image.and_then(|image| image.target).ok_or_else(|| bad("no target".into()))?;
        let mut manifest = self.read_json(image, &target.digest).await?;
        if image::is_index(&target.media_type) {
            let architecture = image::host_architecture();
            let digest = image::manifest_for_platform(&manifest, architecture)
                .ok_or_else(|| bad(format!("no manifest for linux/{architecture}")))?;
            manifest = self.read_json(image, &digest).await?;
        }
        let config = image::config_digest(&manifest).ok_or_else(|| bad("manifest names no config".into()))?;
        let config = self.read_json(image, &config).await?;
        let diff_ids = image::diff_ids(&config).ok_or_else(|| bad("config has no rootfs.diff_ids".into()))?;
        image::chain_id(&diff_ids).ok_or_else(|| bad("image has no layers".into()))
    }

    /// Does what `ctr run` does before it creates the task: finds the snapshot `config.image`
    /// is unpacked under, prepares a writable snapshot on it keyed by the container id, and
    /// creates the container record. Both happen under a lease, as the Go client's
    /// `NewContainer` does, so containerd's garbage collector cannot take the snapshot before
    /// the record refers to it. The returned [`Container`] removes all of it when cleaned up or
    /// dropped, also after a failure half-way.
    pub async fn create_container(&self, config: &ContainerConfig) -> Result<Container, Error> {
        let chain_id = self.image_chain_id(&config.image).await?;
        let stat = StatSnapshotRequest { snapshotter: config.snapshotter.clone(), key: chain_id.clone() };
        match call("Snapshots.Stat", &chain_id, self.snapshots().stat(self.request(stat))).await {
            Err(error) if error.is_not_found() => {
                return Err(Error::NotUnpacked {
                    image: config.image.clone(),
                    snapshotter: config.snapshotter.clone(),
                    chain_id,
                })
            }
            other => other?,
        };

        let container = Container {
            client: self.clone(),
            id: config.id.clone(),
            snapshotter: config.snapshotter.clone(),
            cleaned_up: false,
        };
        let lease_id = format!("grpc-create-{}", config.id);
        let lease = CreateLeaseRequest { id: lease_id.clone(), labels: Default::default() };
        call("Leases.Create", &lease_id, LeasesClient::new(self.channel.clone()).create(self.request(lease))).await?;
        let created = self.create_under_lease(config, &chain_id, &lease_id).await;
        let delete = DeleteLeaseRequest { id: lease_id.clone(), sync: false };
        let released =
            call("Leases.Delete", &lease_id, LeasesClient::new(self.channel.clone()).delete(self.request(delete)))
                .await;
        created?;
        released?;
        Ok(container)
    }

    async fn create_under_lease(&self, config: &ContainerConfig, parent: &str, lease_id: &str) -> Result<(), Error> {
        let lease = lease_id
            .parse::<AsciiMetadataValue>()
            .map_err(|_| Error::InvalidHeader { header: LEASE_HEADER, value: lease_id.to_string() })?;
        let prepare = PrepareSnapshotRequest {
            snapshotter: config.snapshotter.clone(),
            key: config.id.clone(),
            parent: parent.to_string(),
            labels: Default::default(),
        };
        call("Snapshots.Prepare", &config.id, self.snapshots().prepare(self.leased_request(prepare, &lease))).await?;

        let args: Vec<&str> = config.args.iter().map(String::as_str).collect();
        let env: Vec<&str> = config.env.iter().map(String::as_str).collect();
        let spec = spec::container(&self.namespace, &config.id, &args, &env);
        let record = ContainerRecord {
            id: config.id.clone(),
            image: config.image.clone(),
            runtime: Some(Runtime { name: config.runtime.clone(), options: None }),
            spec: Some(prost_types::Any {
                type_url: spec::SPEC_TYPE_URL.to_string(),
                value: serde_json::to_vec(&spec).expect("a JSON value serializes"),
            }),
            snapshotter: config.snapshotter.clone(),
            snapshot_key: config.id.clone(),
            ..Default::default()
        };
        let create = CreateContainerRequest { container: Some(record) };
        call("Containers.Create", &config.id, self.containers().create(self.leased_request(create, &lease))).await?;
        Ok(())
    }

    /// `Tasks.Get` of container `id`'s init process (`exec_id` empty) or of an exec.
    async fn process_state(&self, id: &str, exec_id: &str) -> Result<ProcessState, Error> {
        let request = self.request(GetRequest { container_id: id.to_string(), exec_id: exec_id.to_string() });
        let found = call("Tasks.Get", id, self.tasks().get(request)).await?;
        let process = found.process.ok_or_else(|| CallError::Failed {
            call: "Tasks.Get",
            id: id.to_string(),
            source: Status::internal("the answer holds no process"),
        })?;
        Ok(ProcessState::from_process(&process))
    }

    async fn start_process(&self, id: &str, exec_id: &str) -> Result<u32, Error> {
        let request = self.request(StartRequest { container_id: id.to_string(), exec_id: exec_id.to_string() });
        Ok(call("Tasks.Start", id, self.tasks().start(request)).await?.pid)
    }

    /// `Tasks.Wait` for process `exec_id` (empty: the init) of task `id`, a task made by any
    /// client (e.g. `ctr run -d`); returns its exit status.
    pub async fn wait_process(&self, id: &str, exec_id: &str) -> Result<u32, Error> {
        let request = self.request(WaitRequest { container_id: id.to_string(), exec_id: exec_id.to_string() });
        Ok(call("Tasks.Wait", id, self.tasks().wait(request)).await?.exit_status)
    }

    async fn kill_process(&self, id: &str, exec_id: &str, signal: Signal) -> Result<(), Error> {
        let request = self.request(KillRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            signal: signal as i32 as u32,
            all: false,
        });
        call("Tasks.Kill", id, self.tasks().kill(request)).await.map(drop)
    }

    async fn delete_task(&self, id: &str) -> Result<u32, Error> {
        let request = self.request(DeleteTaskRequest { container_id: id.to_string() });
        Ok(call("Tasks.Delete", id, self.tasks().delete(request)).await?.exit_status)
    }

    /// Removes container `id` with its task and snapshot, whatever of them exists: kills a live
    /// task first (resuming a paused one, whose frozen processes would not die), as the Go
    /// client's `WithProcessKill` delete option does. Every step runs; the first error is
    /// returned.
    async fn remove_container(&self, id: &str, snapshotter: &str) -> Result<(), Error> {
        let task = self.remove_task(id).await;
        let request = self.request(DeleteContainerRequest { id: id.to_string() });
        let record = ignore_not_found(call("Containers.Delete", id, self.containers().delete(request)).await.map(drop));
        let request = self.request(RemoveSnapshotRequest { snapshotter: snapshotter.to_string(), key: id.to_string() });
        let snapshot = ignore_not_found(call("Snapshots.Remove", id, self.snapshots().remove(request)).await.map(drop));
        task.and(record).and(snapshot)
    }

    async fn remove_task(&self, id: &str) -> Result<(), Error> {
        let state = match self.process_state(id, "").await {
            Err(error) if error.is_not_found() => return Ok(()),
            other => other?,
        };
        if !state.is_done() {
            if matches!(state, ProcessState::Paused { .. } | ProcessState::Pausing { .. }) {
                let request = self.request(ResumeTaskRequest { container_id: id.to_string() });
                let _ = call("Tasks.Resume", id, self.tasks().resume(request)).await;
            }
            ignore_not_found(self.kill_process(id, "", Signal::SIGKILL).await)?;
            match self.wait_process(id, "").await {
                Err(error) if error.is_not_found() => {}
                other => drop(other?),
            }
        }
        ignore_not_found(self.delete_task(id).await.map(drop))
    }

    /// What containerd still holds for container `id`: any of "task", "container" and
    /// "snapshot" (in the default snapshotter).
    pub async fn remains_of(&self, id: &str) -> Result<Vec<&'static str>, Error> {
        let mut remains = Vec::new();
        let exists = |result: Result<(), Error>| match result {
            Ok(()) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        };
        if exists(self.process_state(id, "").await.map(drop))? {
            remains.push("task");
        }
        let request = self.request(GetContainerRequest { id: id.to_string() });
        if exists(call("Containers.Get", id, self.containers().get(request)).await.map(drop))? {
            remains.push("container");
        }
        let request = self.request(StatSnapshotRequest { snapshotter: SNAPSHOTTER.to_string(), key: id.to_string() });
        if exists(call("Snapshots.Stat", id, self.snapshots().stat(request)).await.map(drop))? {
            remains.push("snapshot");
        }
        Ok(remains)
    }
}

/// What container to create: the options of `ctr run` the tests vary.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// The container id, also the key of its snapshot.
    pub id: String,
    /// The runtime containerd starts the task with, e.g. [`RUNC_V2`] or [`crate::RUNTIME`].
    pub runtime: String,
    /// The image whose unpacked layers are the rootfs.
    pub image: String,
    /// The snapshotter the image is unpacked in.
    pub snapshotter: String,
    /// The init process's argv.
    pub args: Vec<String>,
    /// Extra environment (`NAME=value`); a default `PATH` is added unless this sets one.
    pub env: Vec<String>,
}

impl ContainerConfig {
    /// Container `id` of the test image, running `args` under `runtime`.
    pub fn busybox(id: &str, runtime: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            id: id.to_string(),
            runtime: runtime.to_string(),
            image: IMAGE.to_string(),
            snapshotter: SNAPSHOTTER.to_string(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            env: Vec::new(),
        }
    }

    /// The same with `env` added.
    pub fn with_env(mut self, env: &[&str]) -> ContainerConfig {
        self.env.extend(env.iter().map(|variable| variable.to_string()));
        self
    }
}

/// A container record with its snapshot, and the task API on it. [`Container::cleanup`]
/// removes the task, the record and the snapshot; if a test panics before that, dropping it
/// does the same on a thread of its own (with a fresh connection, since the test's runtime may
/// be the one blocked in the drop).
pub struct Container {
    client: Client,
    id: String,
    snapshotter: String,
    cleaned_up: bool,
}

impl Container {
    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `Tasks.Create` with the snapshot's mounts as rootfs (what the Go client's `NewTask` does)
    /// and `stdio`; returns the init's pid.
    pub async fn create_task(&self, stdio: &Stdio) -> Result<u32, Error> {
        let client = &self.client;
        let request = client.request(MountsRequest { snapshotter: self.snapshotter.clone(), key: self.id.clone() });
        let mounts = call("Snapshots.Mounts", &self.id, client.snapshots().mounts(request)).await?.mounts;
        let (stdin, stdout, stderr) = stdio.as_api();
        let request = client.request(CreateTaskRequest {
            container_id: self.id.clone(),
            rootfs: mounts,
            stdin,
            stdout,
            stderr,
            terminal: false,
            ..Default::default()
        });
        Ok(call("Tasks.Create", &self.id, client.tasks().create(request)).await?.pid)
    }

    /// `Tasks.Start` of the init; returns its pid.
    pub async fn start(&self) -> Result<u32, Error> {
        self.client.start_process(&self.id, "").await
    }

    /// `Tasks.Wait` for the init; returns its exit status.
    pub async fn wait(&self) -> Result<u32, Error> {
        self.client.wait_process(&self.id, "").await
    }

    /// `Tasks.Kill` of the init with `signal`.
    pub async fn kill(&self, signal: Signal) -> Result<(), Error> {
        self.client.kill_process(&self.id, "", signal).await
    }

    /// `Tasks.Get` of the init.
    pub async fn state(&self) -> Result<ProcessState, Error> {
        self.client.process_state(&self.id, "").await
    }

    /// `Tasks.ListPids`: the pids of every process in the task.
    pub async fn pids(&self) -> Result<Vec<u32>, Error> {
        let request = self.client.request(ListPidsRequest { container_id: self.id.clone() });
        let listed = call("Tasks.ListPids", &self.id, self.client.tasks().list_pids(request)).await?;
        Ok(listed.processes.iter().map(|process| process.pid).collect())
    }

    /// `Tasks.Pause`.
    pub async fn pause(&self) -> Result<(), Error> {
        let request = self.client.request(PauseTaskRequest { container_id: self.id.clone() });
        call("Tasks.Pause", &self.id, self.client.tasks().pause(request)).await.map(drop)
    }

    /// `Tasks.Resume`.
    pub async fn resume(&self) -> Result<(), Error> {
        let request = self.client.request(ResumeTaskRequest { container_id: self.id.clone() });
        call("Tasks.Resume", &self.id, self.client.tasks().resume(request)).await.map(drop)
    }

    /// `Tasks.Metrics` filtered to this task (containerd's filter syntax, `id==ID`).
    pub async fn metrics(&self) -> Result<Vec<Metric>, Error> {
        let request = self.client.request(MetricsRequest { filters: vec![format!("id=={}", self.id)] });
        Ok(call("Tasks.Metrics", &self.id, self.client.tasks().metrics(request)).await?.metrics)
    }

    /// `Tasks.Update` with `resources`, the JSON of an OCI `LinuxResources`.
    pub async fn update(&self, resources: &str) -> Result<(), Error> {
        let request = self.client.request(UpdateTaskRequest {
            container_id: self.id.clone(),
            resources: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: resources.as_bytes().to_vec(),
            }),
            ..Default::default()
        });
        call("Tasks.Update", &self.id, self.client.tasks().update(request)).await.map(drop)
    }

    /// `Tasks.CloseIO` of the init's stdin.
    pub async fn close_stdin(&self) -> Result<(), Error> {
        let request =
            self.client.request(CloseIoRequest { container_id: self.id.clone(), stdin: true, ..Default::default() });
        call("Tasks.CloseIO", &self.id, self.client.tasks().close_io(request)).await.map(drop)
    }

    /// `Tasks.Delete`; returns the init's exit status.
    pub async fn delete_task(&self) -> Result<u32, Error> {
        self.client.delete_task(&self.id).await
    }

    /// `Tasks.Exec`: adds process `exec_id` running `args` (with the init's user, capabilities
    /// and default `PATH`) to the task; it is created, not started.
    pub async fn exec(&self, exec_id: &str, args: &[&str], stdio: &Stdio) -> Result<Exec<'_>, Error> {
        self.exec_with_terminal(exec_id, args, stdio, ExecTerminal { requested: false, in_spec: false }).await
    }

    /// [`Container::exec`] with `terminal` as the request's flag and the process spec's, which
    /// containerd's clients set independently (`cio.WithTerminal` decides the request's).
    pub async fn exec_with_terminal(
        &self,
        exec_id: &str,
        args: &[&str],
        stdio: &Stdio,
        terminal: ExecTerminal,
    ) -> Result<Exec<'_>, Error> {
        let (stdin, stdout, stderr) = stdio.as_api();
        let mut process = spec::process(args, &[]);
        process["terminal"] = serde_json::Value::Bool(terminal.in_spec);
        let request = self.client.request(ExecProcessRequest {
            container_id: self.id.clone(),
            exec_id: exec_id.to_string(),
            stdin,
            stdout,
            stderr,
            terminal: terminal.requested,
            spec: Some(prost_types::Any {
                type_url: spec::PROCESS_TYPE_URL.to_string(),
                value: serde_json::to_vec(&process).expect("a JSON value serializes"),
            }),
        });
        call("Tasks.Exec", &self.id, self.client.tasks().exec(request)).await?;
        Ok(Exec { container: self, id: exec_id.to_string() })
    }

    /// Removes the task (killing it if it runs), the container record and the snapshot.
    pub async fn cleanup(mut self) -> Result<(), Error> {
        self.cleaned_up = true;
        self.client.remove_container(&self.id, &self.snapshotter).await
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.cleaned_up {
            return;
        }
        let socket = self.client.socket.clone();
        let namespace = self.client.namespace.clone();
        let id = self.id.clone();
        let snapshotter = self.snapshotter.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for cleanup");
            runtime.block_on(async {
                let client = Client::connect_to(socket, &namespace).await?;
                client.remove_container(&id, &snapshotter).await
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("cleanup of container {} failed: {error:?}", self.id),
            Err(_) => eprintln!("cleanup of container {} panicked", self.id),
        }
    }
}

/// An exec's terminal flags: the `Tasks.Exec` request's and its process spec's.
#[derive(Debug, Clone, Copy)]
pub struct ExecTerminal {
    /// `ExecProcessRequest.terminal`.
    pub requested: bool,
    /// The process spec's `terminal`.
    pub in_spec: bool,
}

/// An exec process of a [`Container`]'s task.
pub struct Exec<'a> {
    container: &'a Container,
    id: String,
}

impl Exec<'_> {
    /// The exec id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `Tasks.Start` with the exec id; returns its pid.
    pub async fn start(&self) -> Result<u32, Error> {
        self.container.client.start_process(&self.container.id, &self.id).await
    }

    /// `Tasks.Wait` with the exec id; returns its exit status.
    pub async fn wait(&self) -> Result<u32, Error> {
        self.container.client.wait_process(&self.container.id, &self.id).await
    }

    /// `Tasks.Kill` of the exec with `signal`.
    pub async fn kill(&self, signal: Signal) -> Result<(), Error> {
        self.container.client.kill_process(&self.container.id, &self.id, signal).await
    }

    /// `Tasks.Get` with the exec id.
    pub async fn state(&self) -> Result<ProcessState, Error> {
        self.container.client.process_state(&self.container.id, &self.id).await
    }

    /// `Tasks.DeleteProcess`; returns the exec's exit status.
    pub async fn delete(&self) -> Result<u32, Error> {
        let client = &self.container.client;
        let request =
            client.request(DeleteProcessRequest { container_id: self.container.id.clone(), exec_id: self.id.clone() });
        Ok(call("Tasks.DeleteProcess", &self.container.id, client.tasks().delete_process(request)).await?.exit_status)
    }
}
