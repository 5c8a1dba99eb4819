//! A Kubernetes CRI client (`runtime.v1`, the API the kubelet speaks) for the integration tests.
//! It talks to the sandbox's second containerd, the one with the CRI plugin that
//! `tests/cri-containerd-in-sandbox` starts, and drives pods the way the kubelet does:
//! `RunPodSandbox` with a runtime handler, then `CreateContainer`/`StartContainer`/`ExecSync`/
//! `ContainerStatus`/`StopContainer`/`RemoveContainer`, then `StopPodSandbox`/`RemovePodSandbox`.
//!
//! Pods use the host's network namespace (`NamespaceMode::Node`): no CNI plugin, no pod
//! addresses. The client connects from the host through `/proc/PID/root` of the sandbox, on the
//! same unix-socket channel as [`crate::grpc`].

pub mod log;
pub mod stream;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use containerd_client::tonic::transport::Channel;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerFilter, ContainerMetadata, ContainerState as CriContainerState, ContainerStatusRequest,
    CreateContainerRequest, ExecRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListContainersRequest,
    ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxFilter, PodSandboxMetadata,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};

use crate::rpc::{call, with_deadline as request, CallError};
use crate::Sandbox;

/// The containerd namespace CRI keeps its pods, containers and images in.
pub const NAMESPACE: &str = "k8s.io";
/// The runtime handler our runtime is configured as (`deploy/runtimeclass.yaml`).
pub const SYSTEMD_HANDLER: &str = "systemd";
/// The handler of runc-v2 with runc's systemd cgroup driver: the baseline.
pub const RUNC_HANDLER: &str = "runc";
/// How long a streamed exec may stay silent.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Client::wait_ready`] waits for the CRI plugin and its images.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The CRI containerd `tests/cri-containerd-in-sandbox` described in the environment.
#[derive(Debug)]
pub struct CriContainerd {
    /// Its gRPC socket, as the sandbox sees it.
    pub socket: PathBuf,
    /// Its state directory (task bundles live below it), as the sandbox sees it.
    pub state: PathBuf,
    /// The pause image its CRI plugin runs pod sandboxes from.
    pub pause_image: String,
    /// The runc state root (`Root`) in the runtime options file the handler `systemd` names.
    pub runc_root: PathBuf,
}

impl CriContainerd {
    /// The unit our daemon serving this containerd gives task `id` of `namespace`: tagged when
    /// it is not the host's default containerd (as in the sandbox lanes).
    pub fn unit_of(&self, namespace: &str, id: &str) -> String {
        crate::unit_of_containerd(&self.socket.to_string_lossy(), namespace, id)
    }

    /// The CRI containerd of this test run.
    pub fn get() -> &'static CriContainerd {
        static CRI: OnceLock<CriContainerd> = OnceLock::new();
        CRI.get_or_init(|| {
            let env = |name: &str| {
                std::env::var(name).unwrap_or_else(|_| {
                    panic!(
                        "{name} is not set: the CRI tests need the containerd with the CRI plugin that \
                         `tests/cri-containerd-in-sandbox` starts; run `tests/run`"
                    )
                })
            };
            CriContainerd {
                socket: PathBuf::from(env("SHIM_TEST_CRI_SOCKET")),
                state: PathBuf::from(env("SHIM_TEST_CRI_STATE")),
                pause_image: env("SHIM_TEST_CRI_PAUSE_IMAGE"),
                runc_root: PathBuf::from(env("SHIM_TEST_CRI_RUNC_ROOT")),
            }
        })
    }

    /// The bundle directory containerd makes for task `id` (of a pod or a container).
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.state.join("io.containerd.runtime.v2.task").join(NAMESPACE).join(id)
    }

    /// Where our runtime keeps runc's state of task `id`: the options' `Root`, then the
    /// namespace, as runc-v2 does.
    pub fn runc_state(&self, id: &str) -> PathBuf {
        self.runc_root.join(NAMESPACE).join(id)
    }
}

/// What went wrong talking to the CRI plugin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached.
    #[error("failed to connect to the CRI plugin at {path}")]
    Connect {
        /// The socket's path as the host sees it.
        path: PathBuf,
        /// What the transport said.
        #[source]
        source: containerd_client::tonic::transport::Error,
    },
    /// A call failed or got no answer.
    #[error(transparent)]
    Call(#[from] CallError),
    /// An answer lacked what the CRI API says it carries.
    #[error("{call} of {id} answered without {missing}")]
    Incomplete {
        /// The CRI method.
        call: &'static str,
        /// The pod, container or image the call concerned.
        id: String,
        /// The missing field.
        missing: &'static str,
    },
    /// A streamed call (`Exec`) failed on its stream.
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    /// The CRI plugin did not serve, or did not know an image, in time.
    #[error("the CRI plugin was not ready within {timeout:?}: {what}")]
    NotReady {
        /// What was still missing.
        what: String,
        /// How long the client waited.
        timeout: Duration,
    },
}

/// The state CRI reports for a container (`ContainerStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Started and not exited.
    Running,
    /// Exited.
    Exited {
        /// Its exit code (CRI reports 128 + signal for a signal death, as runc-v2 does).
        exit_code: i32,
        /// CRI's reason, e.g. `Completed` or `Error`.
        reason: String,
    },
    /// The runtime could not tell.
    Unknown,
}

/// What `ExecSync` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Where the kubelet's systemd cgroup driver puts a BestEffort pod: its cgroup parent (what the
/// kubelet passes in `LinuxPodSandboxConfig.cgroup_parent`) and the pod's slice unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSlice {
    /// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice`.
    pub cgroup_parent: String,
    /// `kubepods-besteffort-pod<uid>.slice`.
    pub slice: String,
}

impl PodSlice {
    /// The slice of the BestEffort pod with `uid`. The kubelet writes the uid's dashes as `_`,
    /// since a dash in a slice name means nesting (`cgroup_manager_linux.go`, `escapeSystemdCgroupName`).
    pub fn best_effort(uid: &str) -> PodSlice {
        let slice = format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_"));
        PodSlice { cgroup_parent: format!("/kubepods.slice/kubepods-besteffort.slice/{slice}"), slice }
    }
}

/// Namespace options for a pod on the host's network (no CNI), with pid and IPC as the
/// kubelet's defaults (a pid namespace per container, one IPC namespace per pod).
fn host_network() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The sandbox config the kubelet would send for pod `name` (with `uid`, in Kubernetes
/// namespace `default`) on the host network, logging to `log_directory` (a path in the
/// sandbox), in cgroup `cgroup_parent`.
pub fn pod_config(name: &str, uid: &str, log_directory: &str, cgroup_parent: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        // No hostname: a host-network pod shares the host's UTS namespace, where runc refuses to
        // set one; the kubelet sends one only for pods with a network of their own.
        log_directory: log_directory.to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(host_network()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container config the kubelet would send for container `name` of `image` running
/// `command`, logging to `log_path` (relative to the pod's log directory).
pub fn container_config(name: &str, image: &str, command: &[&str], log_path: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata { name: name.to_string(), attempt: 0 }),
        image: Some(ImageSpec { image: image.to_string(), ..Default::default() }),
        command: command.iter().map(|arg| arg.to_string()).collect(),
        log_path: log_path.to_string(),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(host_network()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A connection to the CRI plugin.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    socket: PathBuf,
}

impl Client {
    /// Connects to the sandbox's CRI containerd through the sandbox's root.
    pub async fn connect(sandbox: &Sandbox) -> Result<Client, Error> {
        Client::connect_to(sandbox.host_path(&CriContainerd::get().socket)).await
    }

    /// Connects to the CRI socket at `socket` (a host path).
    async fn connect_to(socket: PathBuf) -> Result<Client, Error> {
        let channel = containerd_client::connect(&socket)
            .await
            .map_err(|source| Error::Connect { path: socket.clone(), source })?;
        Ok(Client { channel, socket })
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    /// Waits until the plugin answers `Version` (it refuses calls until it has loaded its
    /// state) and knows each of `images` (imported by `ctr`, it learns of them from events).
    pub async fn wait_ready(&self, images: &[&str]) -> Result<(), Error> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut missing = "an answer to Version".to_string();
        while Instant::now() < deadline {
            let version = request(VersionRequest { version: "v1".to_string() });
            if call("Version", "the plugin", self.runtime().version(version)).await.is_ok() {
                let mut known = true;
                for image in images {
                    let status = request(ImageStatusRequest {
                        image: Some(ImageSpec { image: image.to_string(), ..Default::default() }),
                        verbose: false,
                    });
                    if call("ImageStatus", image, self.images().image_status(status)).await?.image.is_none() {
                        missing = format!("image {image}");
                        known = false;
                        break;
                    }
                }
                if known {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::NotReady { what: missing, timeout: READY_TIMEOUT })
    }

    /// `RunPodSandbox` of `config` with runtime handler `handler`. The returned [`Pod`] stops and
    /// removes the pod (and so its containers) when cleaned up or dropped.
    pub async fn run_pod(&self, config: PodSandboxConfig, handler: &str) -> Result<Pod, Error> {
        let name = config.metadata.as_ref().map(|metadata| metadata.name.clone()).unwrap_or_default();
        let run = request(RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.to_string() });
        let id = call("RunPodSandbox", &name, self.runtime().run_pod_sandbox(run)).await?.pod_sandbox_id;
        Ok(Pod { client: self.clone(), id, config, cleaned_up: false })
    }

    /// Whether `ListPodSandbox` still lists pod `id`.
    pub async fn lists_pod(&self, id: &str) -> Result<bool, Error> {
        let list = request(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter { id: id.to_string(), ..Default::default() }),
        });
        Ok(call("ListPodSandbox", id, self.runtime().list_pod_sandbox(list))
            .await?
            .items
            .iter()
            .any(|pod| pod.id == id))
    }

    /// Whether `ListContainers` still lists container `id`.
    pub async fn lists_container(&self, id: &str) -> Result<bool, Error> {
        let list = request(ListContainersRequest {
            filter: Some(ContainerFilter { id: id.to_string(), ..Default::default() }),
        });
        let listed = call("ListContainers", id, self.runtime().list_containers(list)).await?;
        Ok(listed.containers.iter().any(|container| container.id == id))
    }

    async fn stop_and_remove_pod(&self, id: &str) -> Result<(), Error> {
        let stop = request(StopPodSandboxRequest { pod_sandbox_id: id.to_string() });
        call("StopPodSandbox", id, self.runtime().stop_pod_sandbox(stop)).await?;
        let remove = request(RemovePodSandboxRequest { pod_sandbox_id: id.to_string() });
        call("RemovePodSandbox", id, self.runtime().remove_pod_sandbox(remove)).await?;
        Ok(())
    }
}

/// A running pod sandbox and the container calls on it. [`Pod::cleanup`] stops and removes it;
/// if a test panics before that, dropping it does the same on a thread of its own (with a
/// fresh connection, since the test's runtime may be the one blocked in the drop).
pub struct Pod {
    client: Client,
    id: String,
    config: PodSandboxConfig,
    cleaned_up: bool,
}

impl Pod {
    /// The pod sandbox id (also the id of its pause container's task).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `CreateContainer` of `config` in this pod; returns the container id.
    pub async fn create_container(&self, config: ContainerConfig) -> Result<String, Error> {
        let name = config.metadata.as_ref().map(|metadata| metadata.name.clone()).unwrap_or_default();
        let create = request(CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        });
        Ok(call("CreateContainer", &name, self.client.runtime().create_container(create)).await?.container_id)
    }

    /// `StartContainer`.
    pub async fn start_container(&self, id: &str) -> Result<(), Error> {
        let start = request(StartContainerRequest { container_id: id.to_string() });
        call("StartContainer", id, self.client.runtime().start_container(start)).await?;
        Ok(())
    }

    /// `ExecSync` of `cmd` in container `id`, bounded to `timeout` by the plugin.
    pub async fn exec_sync(&self, id: &str, cmd: &[&str], timeout: Duration) -> Result<ExecOutput, Error> {
        let exec = request(ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|arg| arg.to_string()).collect(),
            timeout: timeout.as_secs() as i64,
        });
        let output = call("ExecSync", id, self.client.runtime().exec_sync(exec)).await?;
        Ok(ExecOutput {
            exit_code: output.exit_code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// `Exec` of `cmd` in container `id` through CRI's streaming server, with a terminal or with
    /// stdout and stderr apart (as `kubectl exec [-t]` without stdin), run to its end.
    pub async fn exec(&self, id: &str, cmd: &[&str], tty: bool) -> Result<stream::StreamedExec, Error> {
        let exec = request(ExecRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|arg| arg.to_string()).collect(),
            tty,
            stdin: false,
            stdout: true,
            // A terminal has one output stream; CRI refuses stderr beside it.
            stderr: !tty,
        });
        let url = call("Exec", id, self.client.runtime().exec(exec)).await?.url;
        match tokio::task::spawn_blocking(move || stream::run_exec(&url, STREAM_READ_TIMEOUT)).await {
            Ok(streamed) => Ok(streamed?),
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        }
    }

    /// `ContainerStatus` of container `id`, as a [`ContainerState`] and the log path CRI writes to.
    pub async fn container_status(&self, id: &str) -> Result<(ContainerState, String), Error> {
        let status = request(ContainerStatusRequest { container_id: id.to_string(), verbose: false });
        let status = call("ContainerStatus", id, self.client.runtime().container_status(status))
            .await?
            .status
            .ok_or_else(|| Error::Incomplete { call: "ContainerStatus", id: id.to_string(), missing: "a status" })?;
        let state = match status.state() {
            CriContainerState::ContainerCreated => ContainerState::Created,
            CriContainerState::ContainerRunning => ContainerState::Running,
            CriContainerState::ContainerExited => {
                ContainerState::Exited { exit_code: status.exit_code, reason: status.reason.clone() }
            }
            CriContainerState::ContainerUnknown => ContainerState::Unknown,
        };
        Ok((state, status.log_path))
    }

    /// `StopContainer`: the stop signal, then SIGKILL after `grace`.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), Error> {
        let stop = request(StopContainerRequest { container_id: id.to_string(), timeout: grace.as_secs() as i64 });
        call("StopContainer", id, self.client.runtime().stop_container(stop)).await?;
        Ok(())
    }

    /// `RemoveContainer`.
    pub async fn remove_container(&self, id: &str) -> Result<(), Error> {
        let remove = request(RemoveContainerRequest { container_id: id.to_string() });
        call("RemoveContainer", id, self.client.runtime().remove_container(remove)).await?;
        Ok(())
    }

    /// `StopPodSandbox` then `RemovePodSandbox`, which take the pod's containers with them.
    pub async fn cleanup(mut self) -> Result<(), Error> {
        self.cleaned_up = true;
        self.client.stop_and_remove_pod(&self.id).await
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if self.cleaned_up {
            return;
        }
        let socket = self.client.socket.clone();
        let id = self.id.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for cleanup");
            runtime.block_on(async { Client::connect_to(socket).await?.stop_and_remove_pod(&id).await })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("cleanup of pod {} failed: {error:?}", self.id),
            Err(_) => eprintln!("cleanup of pod {} panicked", self.id),
        }
    }
}
