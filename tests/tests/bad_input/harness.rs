//! What the task API tests of bad input share. Each test gets a [`TaskApi`]: two namespaces of
//! its own on the daemon (so nothing another test does, or leaves behind after failing, can
//! make it fail), the tasks, execs and bundles its one bad request needs, and
//! [`TaskApi::refuses`], which sends that request and checks everything a refusal promises:
//! containerd's code, a message naming what was wrong, a daemon still serving both namespaces,
//! no unit, mount, runc state, cgroup or file of ours left, and its tasks as they were.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, ExecProcessRequest, KillRequest, ResizePtyRequest, StartRequest, StateRequest,
    StateResponse, Status, WaitRequest,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::shim_async::TaskClient;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use tests::calls::{self, create_request, still_serving};
use tests::direct::{bundle_with, client, context, edit_spec, runnable_bundle};
use tests::{assert_nothing_left, caught, exec_unit_of, unique_id, unit_of, Sandbox};
use ttrpc::Code;

/// The exec id of an exec that was added but not started ([`TaskApi::added_exec`]).
pub const ADDED: &str = "e-added";
/// The exec id of an exec that runs `sleep` ([`TaskApi::running_exec`]).
pub const RUNNING: &str = "e-running";

/// How long a bad request may take to be refused.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(20);

/// One task API request, by what it asks.
#[derive(Debug)]
pub enum Call {
    /// Create a task.
    Create(CreateTaskRequest),
    /// Start a task (`exec_id` empty) or an exec.
    Start { id: String, exec_id: String },
    /// Add an exec.
    Exec(ExecProcessRequest),
    /// Signal a task's init or an exec; `signal` is a number, which may be no signal at all.
    Kill { id: String, exec_id: String, signal: u32 },
    /// Resize a process's terminal (to 80x24).
    ResizePty { id: String, exec_id: String },
    /// Delete a task or an exec.
    Delete { id: String, exec_id: String },
    /// Ask how a task or an exec is.
    State { id: String, exec_id: String },
    /// Wait for a task or an exec to exit.
    Wait { id: String, exec_id: String },
}

impl Call {
    /// Create of task `id` from `bundle`, nothing else set.
    pub fn create(id: &str, bundle: &Path) -> Call {
        Call::Create(create_request(id, bundle))
    }

    /// [`Call::create`] with the request then changed by `edit`.
    pub fn create_with(id: &str, bundle: &Path, edit: impl FnOnce(&mut CreateTaskRequest)) -> Call {
        let mut request = create_request(id, bundle);
        edit(&mut request);
        Call::Create(request)
    }

    /// Exec of process `exec_id` of task `id`, running `true`.
    pub fn exec(id: &str, exec_id: &str) -> Call {
        Call::Exec(exec_request(id, exec_id, &["true"]))
    }

    /// [`Call::exec`] with the request then changed by `edit`.
    pub fn exec_with(id: &str, exec_id: &str, edit: impl FnOnce(&mut ExecProcessRequest)) -> Call {
        let mut request = exec_request(id, exec_id, &["true"]);
        edit(&mut request);
        Call::Exec(request)
    }

    /// Start of task `id`, or of its exec `exec_id` when not empty.
    pub fn start(id: &str, exec_id: &str) -> Call {
        Call::Start { id: id.into(), exec_id: exec_id.into() }
    }

    /// Kill of task `id` (or its exec `exec_id`) with `signal`.
    pub fn kill(id: &str, exec_id: &str, signal: Signal) -> Call {
        Call::Kill { id: id.into(), exec_id: exec_id.into(), signal: signal as u32 }
    }

    /// ResizePty of task `id` (or its exec `exec_id`).
    pub fn resize(id: &str, exec_id: &str) -> Call {
        Call::ResizePty { id: id.into(), exec_id: exec_id.into() }
    }

    /// Delete of task `id` (or its exec `exec_id`).
    pub fn delete(id: &str, exec_id: &str) -> Call {
        Call::Delete { id: id.into(), exec_id: exec_id.into() }
    }

    /// State of task `id` (or its exec `exec_id`).
    pub fn state(id: &str, exec_id: &str) -> Call {
        Call::State { id: id.into(), exec_id: exec_id.into() }
    }

    /// Wait for task `id` (or its exec `exec_id`).
    pub fn wait(id: &str, exec_id: &str) -> Call {
        Call::Wait { id: id.into(), exec_id: exec_id.into() }
    }

    /// The status State reports for a process.
    async fn state_status(client: &TaskClient, id: &str, exec_id: &str) -> ttrpc::Result<Status> {
        let request = StateRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        let state: StateResponse = client.state(context(), &request).await?;
        Ok(state.status.enum_value().unwrap_or(Status::UNKNOWN))
    }

    /// The task the request names.
    fn task_id(&self) -> &str {
        match self {
            Call::Create(request) => &request.id,
            Call::Exec(request) => &request.id,
            Call::Start { id, .. }
            | Call::Kill { id, .. }
            | Call::ResizePty { id, .. }
            | Call::Delete { id, .. }
            | Call::State { id, .. }
            | Call::Wait { id, .. } => id,
        }
    }

    /// Sends the request with `context`; only whether it failed, and how, matters here.
    pub async fn send(&self, client: &TaskClient, context: ttrpc::context::Context) -> ttrpc::Result<()> {
        match self {
            Call::Create(request) => client.create(context, request).await.map(drop),
            Call::Start { id, exec_id } => {
                let request = StartRequest { id: id.clone(), exec_id: exec_id.clone(), ..Default::default() };
                client.start(context, &request).await.map(drop)
            }
            Call::Exec(request) => client.exec(context, request).await.map(drop),
            Call::Kill { id, exec_id, signal } => {
                let request =
                    KillRequest { id: id.clone(), exec_id: exec_id.clone(), signal: *signal, ..Default::default() };
                client.kill(context, &request).await.map(drop)
            }
            Call::ResizePty { id, exec_id } => {
                let request = ResizePtyRequest {
                    id: id.clone(),
                    exec_id: exec_id.clone(),
                    width: 80,
                    height: 24,
                    ..Default::default()
                };
                client.resize_pty(context, &request).await.map(drop)
            }
            Call::Delete { id, exec_id } => {
                let request = DeleteRequest { id: id.clone(), exec_id: exec_id.clone(), ..Default::default() };
                client.delete(context, &request).await.map(drop)
            }
            Call::State { id, exec_id } => {
                let request = StateRequest { id: id.clone(), exec_id: exec_id.clone(), ..Default::default() };
                client.state(context, &request).await.map(drop)
            }
            Call::Wait { id, exec_id } => {
                let request = WaitRequest { id: id.clone(), exec_id: exec_id.clone(), ..Default::default() };
                client.wait(context, &request).await.map(drop)
            }
        }
    }
}

/// An Exec request for process `exec_id` of task `id` running `args`, with the type containerd
/// gives an exec's process spec.
pub fn exec_request(id: &str, exec_id: &str, args: &[&str]) -> ExecProcessRequest {
    calls::exec_request(id, exec_id, &tests::grpc::spec::process(args, &[]))
}

/// containerd's `runc.v1.Options` naming `binary` as runc.
pub fn runc_options(binary: &str) -> Any {
    let options = RuncOptions { binary_name: binary.into(), ..Default::default() };
    Any {
        type_url: "type.googleapis.com/containerd.runc.v1.Options".into(),
        value: options.write_to_bytes().expect("encode"),
        ..Default::default()
    }
}

/// CRI's `runtimeoptions.v1.Options { string type_url = 1; string config_path = 2; }`, encoded by
/// hand (the message is not among containerd-shim-protos' types); paths under 128 bytes.
pub fn runtime_options_naming(config_path: &Path) -> Any {
    let path = config_path.to_str().expect("utf-8 path").as_bytes();
    let mut value = vec![0x12, u8::try_from(path.len()).expect("a short path")];
    value.extend_from_slice(path);
    Any { type_url: "runtimeoptions.v1.Options".into(), value, ..Default::default() }
}

/// Which socket the bad request goes through.
#[derive(Clone, Copy)]
enum Via {
    /// The socket of the namespace the test's tasks live in.
    Own,
    /// The other namespace's socket: the test's tasks do not exist there.
    OtherNamespace,
}

/// A process set up for the bad request to act on, and the status it must keep.
struct Fixture {
    /// The task.
    id: String,
    /// The exec, or empty for the task's init.
    exec_id: String,
    /// What State must still report for it after the request.
    status: Status,
}

/// The daemon's task API as one bad-input test sees it: see the module's doc.
pub struct TaskApi {
    sandbox: &'static Sandbox,
    /// Where the test's tasks live.
    namespace: String,
    /// A namespace where they do not.
    other_namespace: String,
    client: TaskClient,
    other: TaskClient,
    fixtures: Vec<Fixture>,
    /// Bundles the bad request names: none may keep a file of ours.
    bundles: Vec<PathBuf>,
    /// Directories removed at the end: the fixtures' bundles, scratch space.
    scratch: Vec<PathBuf>,
    /// Fifos a daemon thread may be stuck opening or reading.
    fifos: Vec<PathBuf>,
}

impl TaskApi {
    /// Clients for two fresh namespaces.
    pub async fn connect() -> TaskApi {
        let sandbox = Sandbox::get();
        let namespace = unique_id("bad");
        let other_namespace = unique_id("bad-other");
        TaskApi {
            sandbox,
            client: client(sandbox, &namespace).await,
            other: client(sandbox, &other_namespace).await,
            namespace,
            other_namespace,
            fixtures: Vec::new(),
            bundles: Vec::new(),
            scratch: Vec::new(),
            fifos: Vec::new(),
        }
    }

    /// A fresh bundle directory for the request, with `config` as config.json if given.
    pub fn bundle(&mut self, name: &str, config: Option<&str>) -> PathBuf {
        let bundle = bundle_with(self.sandbox, &unique_id(name), config);
        self.bundles.push(bundle.clone());
        bundle
    }

    /// A bundle for the request that would run `true`.
    pub fn runnable_bundle(&mut self) -> PathBuf {
        let bundle = runnable_bundle(self.sandbox, &unique_id("good"), &["true"]);
        self.bundles.push(bundle.clone());
        bundle
    }

    /// [`TaskApi::runnable_bundle`] with its config.json then changed by `edit`.
    pub fn edited_bundle(&mut self, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
        let bundle = runnable_bundle(self.sandbox, &unique_id(name), &["true"]);
        edit_spec(&bundle, edit);
        self.bundles.push(bundle.clone());
        bundle
    }

    /// A directory (visible in the sandbox) for files the request names, removed at the end.
    pub fn scratch_dir(&mut self) -> PathBuf {
        let dir = bundle_with(self.sandbox, &unique_id("scratch"), None);
        self.scratch.push(dir.clone());
        dir
    }

    /// Makes `path` a fifo nobody writes; a reader the daemon left waiting on it is released
    /// after the request.
    pub fn fifo(&mut self, path: &Path) {
        mkfifo(path, Mode::from_bits_truncate(0o600)).expect("mkfifo");
        self.fifos.push(path.to_path_buf());
    }

    /// A task running `sleep`, without a terminal; returns its id.
    pub async fn running_task(&mut self) -> String {
        let id = unique_id("running");
        let bundle = runnable_bundle(self.sandbox, &id, &["sleep", "1000"]);
        self.scratch.push(bundle.clone());
        self.client.create(context(), &create_request(&id, &bundle)).await.expect("create the running task");
        self.fixtures.push(Fixture { id: id.clone(), exec_id: String::new(), status: Status::RUNNING });
        calls::start(&self.client, &id).await.expect("start the running task");
        id
    }

    /// A task that ran `true` and exited, not deleted; returns its id.
    pub async fn stopped_task(&mut self) -> String {
        let id = unique_id("stopped");
        let bundle = runnable_bundle(self.sandbox, &id, &["true"]);
        self.scratch.push(bundle.clone());
        self.client.create(context(), &create_request(&id, &bundle)).await.expect("create the stopped task");
        self.fixtures.push(Fixture { id: id.clone(), exec_id: String::new(), status: Status::STOPPED });
        calls::start(&self.client, &id).await.expect("start the stopped task");
        assert_eq!(calls::wait(&self.client, &id).await.expect("wait").exit_status, 0);
        id
    }

    /// Adds exec [`ADDED`] (running `true`, never started) to running task `id`.
    pub async fn added_exec(&mut self, id: &str) {
        self.client.exec(context(), &exec_request(id, ADDED, &["true"])).await.expect("add exec");
        self.fixtures.push(Fixture { id: id.into(), exec_id: ADDED.into(), status: Status::CREATED });
    }

    /// Adds and starts exec [`RUNNING`] (running `sleep`) in running task `id`.
    pub async fn running_exec(&mut self, id: &str) {
        self.client.exec(context(), &exec_request(id, RUNNING, &["sleep", "1000"])).await.expect("add exec");
        self.fixtures.push(Fixture { id: id.into(), exec_id: RUNNING.into(), status: Status::RUNNING });
        Call::start(id, RUNNING).send(&self.client, context()).await.expect("start exec");
    }

    /// Sends `call` through the test's namespace: it must be refused with `code` and a message
    /// containing `message`, and leave everything as it was (see the module's doc).
    pub async fn refuses(self, call: Call, code: Code, message: &str) {
        self.check_refusal(Via::Own, call, code, message).await;
    }

    /// [`TaskApi::refuses`], through the other namespace's socket.
    pub async fn refuses_through_the_other_namespace(self, call: Call, code: Code, message: &str) {
        self.check_refusal(Via::OtherNamespace, call, code, message).await;
    }

    /// Sends `call` via `via` and gathers every way its refusal falls short; cleans up; fails
    /// the test with all of them.
    async fn check_refusal(self, via: Via, call: Call, code: Code, message: &str) {
        let through = match via {
            Via::Own => &self.client,
            Via::OtherNamespace => &self.other,
        };
        let outcome = call.send(through, ttrpc::context::with_duration(REFUSAL_TIMEOUT)).await;
        for fifo in &self.fifos {
            release_fifo_reader(fifo);
        }
        let id = call.task_id();
        let mut problems = Vec::new();
        match outcome {
            Err(ttrpc::Error::RpcStatus(status)) => {
                if status.code() != code || !status.message().contains(message) {
                    problems.push(format!(
                        "expected {code:?} with {message:?}, got {:?}: {:?}",
                        status.code(),
                        status.message()
                    ));
                }
            }
            other => {
                problems.push(format!("expected {code:?} with {message:?}, got {other:?}"));
                if other.is_ok() && matches!(call, Call::Create(_)) {
                    // Do not leave a task the daemon should never have created.
                    let _ = calls::delete(&self.client, id).await;
                }
            }
        }
        problems.extend(still_serving(&self.client).await.err());
        problems.extend(still_serving(&self.other).await.err());
        let valid = unit_gen::validate_identifier(unit_gen::IdentifierKind::TaskId, id).is_ok();
        if valid && !self.fixtures.iter().any(|fixture| fixture.id == id) {
            problems.extend(caught(|| assert_nothing_left(self.sandbox, &self.namespace, id)).err());
        }
        let fixture_units = self.fixture_units();
        let strays: Vec<String> = self
            .sandbox
            .units_of_namespaces(&[&self.namespace, &self.other_namespace])
            .into_iter()
            .filter(|unit| !fixture_units.contains(unit))
            .collect();
        if !strays.is_empty() {
            problems.push(format!("units left: {strays:?}"));
        }
        problems.extend(self.fixture_changes().await);
        self.tear_down(&mut problems).await;
        assert!(problems.is_empty(), "{call:?} was not refused cleanly:\n{}", problems.join("\n"));
    }

    /// The units the fixtures may have loaded.
    fn fixture_units(&self) -> Vec<String> {
        self.fixtures
            .iter()
            .map(|fixture| match fixture.exec_id.as_str() {
                "" => unit_of(&self.namespace, &fixture.id),
                exec_id => exec_unit_of(&self.namespace, &fixture.id, exec_id),
            })
            .collect()
    }

    /// What differs from how the request found the fixtures (a bad request changes nothing).
    async fn fixture_changes(&self) -> Vec<String> {
        let mut changes = Vec::new();
        for Fixture { id, exec_id, status } in &self.fixtures {
            let seen = Call::state_status(&self.client, id, exec_id).await;
            if seen.as_ref().ok() != Some(status) {
                changes.push(format!("fixture {id} {exec_id:?} is {seen:?}, expected {status:?}"));
            }
        }
        changes
    }

    /// Ends and deletes the fixtures (which must leave nothing), checks that the request's
    /// bundles hold no file of ours, and removes every directory the test made.
    async fn tear_down(self, problems: &mut Vec<String>) {
        let client = &self.client;
        // A Wait of an exec never started would wait for the deadline: only what runs is waited for.
        for Fixture { id, exec_id, status } in self.fixtures.iter().filter(|fixture| !fixture.exec_id.is_empty()) {
            if *status == Status::RUNNING {
                let _ = Call::kill(id, exec_id, Signal::SIGKILL).send(client, context()).await;
                let _ = Call::wait(id, exec_id).send(client, context()).await;
            }
            let _ = Call::delete(id, exec_id).send(client, context()).await;
        }
        for Fixture { id, status, .. } in self.fixtures.iter().filter(|fixture| fixture.exec_id.is_empty()) {
            if *status == Status::RUNNING {
                let _ = calls::kill(client, id, Signal::SIGKILL as u32).await;
                let _ = calls::wait(client, id).await;
            }
            let _ = calls::delete(client, id).await;
            problems.extend(caught(|| assert_nothing_left(self.sandbox, &self.namespace, id)).err());
        }
        for bundle in &self.bundles {
            let leftovers: Vec<_> = std::fs::read_dir(bundle)
                .expect("bundle")
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("shim-") || name == "init.pid" || name == "exit-state.json")
                .collect();
            if !leftovers.is_empty() {
                problems.push(format!("our files left in {}: {leftovers:?}", bundle.display()));
            }
        }
        for dir in self.bundles.iter().chain(&self.scratch) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Unblocks a daemon thread stuck opening or reading `fifo` (a reader waits for a writer): opens
/// the write end, which succeeds only while a reader is there, and closes it (EOF).
fn release_fifo_reader(fifo: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(fifo);
}
