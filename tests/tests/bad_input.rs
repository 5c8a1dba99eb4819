//! Bad input gets a clear error naming what was wrong, the daemon keeps serving, and nothing is
//! left behind. Three layers: through `ctr` (containerd validates first), through our `start`
//! subcommand, and straight at the daemon's task API, the way containerd itself talks to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, ExecProcessRequest, KillRequest, Mount, ResizePtyRequest, StartRequest,
    StateRequest, StateResponse, Status, WaitRequest,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::shim_async::TaskClient;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use tests::calls::{self, code_of};
use tests::direct::{bundle_with, client, context, runnable_bundle, start_shim};
use tests::{assert_nothing_left, exec_unit_of, unique_id, unit_of, Run, Sandbox};
use ttrpc::Code;

#[test]
fn ctr_refuses_hostile_ids_and_namespaces_and_good_tasks_still_run() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let long = "a".repeat(300);
    let cases: [(&str, &str, &str); 6] = [
        ("id with slash", "default", "a/b"),
        ("id dot dot", "default", ".."),
        ("id of 300 chars", "default", &long),
        ("namespace with slash", "a/b", "t"),
        ("namespace dot dot", "..", "t"),
        ("namespace of 300 chars", &long, "t"),
    ];
    for (name, namespace, id) in cases {
        let run = sandbox.ctr(namespace, &["run", "--rm", "--runtime", tests::RUNTIME, tests::IMAGE, id, "true"]);
        assert_ne!(run.code, 0, "case {name}: {run:?}");
        assert!(run.stderr.contains("invalid"), "case {name}: the error says what is invalid: {run:?}");
    }
    let id = unique_id("after-bad-ids");
    let run = sandbox.ctr_run("default", &id, &["echo", "still serving"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "still serving\n"), "{run:?}");
}

/// `ctr run --rm` of task `id` (running `true`) with runc's runtime options `options` (TOML).
/// ctr passes runtime options for runtimes other than runc as CRI's runtimeoptions.v1.Options,
/// naming a TOML file with runc's options.
fn ctr_run_with_runtime_options(sandbox: &Sandbox, id: &str, options: &str) -> Run {
    let config = sandbox.root.join(format!("{id}.toml"));
    std::fs::write(&config, options).expect("write runtime options");
    let config_path = config.to_str().expect("utf-8");
    let args =
        ["run", "--rm", "--runtime-config-path", config_path, "--runtime", tests::RUNTIME, tests::IMAGE, id, "true"];
    let run = sandbox.ctr("default", &args);
    std::fs::remove_file(&config).expect("remove runtime options");
    run
}

#[test]
fn missing_runc_is_a_clear_error_through_ctr_and_leaves_nothing() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("no-runc");
    let run = ctr_run_with_runtime_options(sandbox, &id, "BinaryName = \"no-such-runc\"\n");
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("no-such-runc") && run.stderr.contains("not found"), "{run:?}");
    sandbox.ctr("default", &["container", "rm", &id]);
    assert_nothing_left(sandbox, "default", &id);
    let good = unique_id("after-no-runc");
    assert_eq!(sandbox.ctr_run("default", &good, &["true"]).code, 0);
}

/// runc-v2 moves its per-task shim into `ShimCgroup`; there is no such process here, and the
/// Create that asks for it is refused by name, leaving nothing.
#[test]
fn shim_cgroup_is_refused_by_name_through_ctr_and_leaves_nothing() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("shim-cgroup");
    let run = ctr_run_with_runtime_options(sandbox, &id, "ShimCgroup = \"/containerd-shims\"\n");
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("ShimCgroup") && run.stderr.contains("/containerd-shims"), "{run:?}");
    sandbox.ctr("default", &["container", "rm", &id]);
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn start_refuses_hostile_namespaces_and_ids() {
    let sandbox = Sandbox::get();
    let long = "n".repeat(300);
    for (name, namespace, id) in [
        ("namespace with slash", "a/b", "t"),
        ("namespace dot dot", "..", "t"),
        ("namespace of 300 chars", long.as_str(), "t"),
        ("id with slash", "default", "x/y"),
        ("id with NUL-like escape", "default", "a\\x00b"),
    ] {
        let (run, address) = start_shim(sandbox, namespace, id);
        assert_eq!(address, None, "case {name}");
        assert_eq!(run.code, 1, "case {name}: {run:?}");
        assert!(run.stderr.contains("invalid"), "case {name}: {run:?}");
        assert!(run.stdout.is_empty(), "case {name}: nothing on stdout for containerd to misread: {run:?}");
    }
}

/// One task API request, by what it asks.
enum Call {
    Create(CreateTaskRequest),
    Start { id: String, exec_id: String },
    Exec(ExecProcessRequest),
    Kill { id: String, exec_id: String, signal: u32 },
    ResizePty { id: String, exec_id: String },
    Delete { id: String, exec_id: String },
    State { id: String, exec_id: String },
    Wait { id: String, exec_id: String },
}

impl Call {
    fn start(id: &str, exec_id: &str) -> Call {
        Call::Start { id: id.into(), exec_id: exec_id.into() }
    }

    fn kill(id: &str, exec_id: &str, signal: Signal) -> Call {
        Call::Kill { id: id.into(), exec_id: exec_id.into(), signal: signal as u32 }
    }

    fn resize(id: &str, exec_id: &str) -> Call {
        Call::ResizePty { id: id.into(), exec_id: exec_id.into() }
    }

    fn delete(id: &str, exec_id: &str) -> Call {
        Call::Delete { id: id.into(), exec_id: exec_id.into() }
    }

    fn state(id: &str, exec_id: &str) -> Call {
        Call::State { id: id.into(), exec_id: exec_id.into() }
    }

    fn wait(id: &str, exec_id: &str) -> Call {
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
    async fn send(&self, client: &TaskClient, context: ttrpc::context::Context) -> ttrpc::Result<()> {
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

/// Which socket a case's request goes through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The socket of the namespace the fixtures live in.
    Own,
    /// Another namespace's socket: the fixtures do not exist there.
    OtherNamespace,
}

struct Case {
    name: &'static str,
    via: Via,
    call: Call,
    code: Code,
    message: &'static str,
}

impl Case {
    fn new(name: &'static str, call: Call, code: Code, message: &'static str) -> Case {
        Case { name, via: Via::Own, call, code, message }
    }

    fn through_other_namespace(mut self) -> Case {
        self.via = Via::OtherNamespace;
        self
    }
}

fn create(id: &str, bundle: &Path) -> CreateTaskRequest {
    CreateTaskRequest { id: id.into(), bundle: bundle.display().to_string(), ..Default::default() }
}

fn create_with(id: &str, bundle: &Path, edit: impl FnOnce(&mut CreateTaskRequest)) -> Call {
    let mut request = create(id, bundle);
    edit(&mut request);
    Call::Create(request)
}

fn runc_options(binary: &str) -> Any {
    let options = RuncOptions { binary_name: binary.into(), ..Default::default() };
    Any {
        type_url: "type.googleapis.com/containerd.runc.v1.Options".into(),
        value: options.write_to_bytes().expect("encode"),
        ..Default::default()
    }
}

/// CRI's `runtimeoptions.v1.Options { string type_url = 1; string config_path = 2; }`, encoded by
/// hand (the message is not among containerd-shim-protos' types); paths under 128 bytes.
fn runtime_options_naming(config_path: &Path) -> Any {
    let path = config_path.to_str().expect("utf-8 path").as_bytes();
    let mut value = vec![0x12, u8::try_from(path.len()).expect("a short path")];
    value.extend_from_slice(path);
    Any { type_url: "runtimeoptions.v1.Options".into(), value, ..Default::default() }
}

/// The type containerd gives an exec's process spec.
fn exec_request(id: &str, exec_id: &str, args: &[&str]) -> ExecProcessRequest {
    tests::calls::exec_request(id, exec_id, &tests::grpc::spec::process(args, &[]))
}

fn exec_with(id: &str, exec_id: &str, edit: impl FnOnce(&mut ExecProcessRequest)) -> Call {
    let mut request = exec_request(id, exec_id, &["true"]);
    edit(&mut request);
    Call::Exec(request)
}

/// A runnable bundle running `args` whose config.json `edit` then changes.
fn edited_bundle(sandbox: &Sandbox, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let bundle = runnable_bundle(sandbox, name, &["true"]);
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("spec")).expect("json");
    edit(&mut spec);
    std::fs::write(&path, serde_json::to_vec(&spec).expect("json")).expect("write spec");
    bundle
}

/// Tasks the state-machine cases act on, set up through the task API.
struct Fixtures {
    /// Running `sleep`, no terminal; has exec [`ADDED`] (not started) and exec [`RUNNING`].
    running: String,
    /// Ran `true` and exited; not deleted.
    stopped: String,
    bundles: Vec<PathBuf>,
}

/// An exec of the running fixture that was added but not started.
const ADDED: &str = "e-added";
/// An exec of the running fixture that runs `sleep`.
const RUNNING: &str = "e-running";

impl Fixtures {
    async fn set_up(sandbox: &Sandbox, client: &TaskClient) -> Fixtures {
        let running = unique_id("running");
        let running_bundle = runnable_bundle(sandbox, &running, &["sleep", "1000"]);
        client.create(context(), &create(&running, &running_bundle)).await.expect("create the running fixture");
        calls::start(client, &running).await.expect("start the running fixture");
        client.exec(context(), &exec_request(&running, ADDED, &["true"])).await.expect("add exec");
        client.exec(context(), &exec_request(&running, RUNNING, &["sleep", "1000"])).await.expect("add exec");
        Call::start(&running, RUNNING).send(client, context()).await.expect("start exec");

        let stopped = unique_id("stopped");
        let stopped_bundle = runnable_bundle(sandbox, &stopped, &["true"]);
        client.create(context(), &create(&stopped, &stopped_bundle)).await.expect("create the stopped fixture");
        calls::start(client, &stopped).await.expect("start the stopped fixture");
        assert_eq!(calls::wait(client, &stopped).await.expect("wait").exit_status, 0);
        Fixtures { running, stopped, bundles: vec![running_bundle, stopped_bundle] }
    }

    fn ids(&self) -> [&str; 2] {
        [&self.running, &self.stopped]
    }

    /// The units the fixtures may have loaded.
    fn units(&self) -> Vec<String> {
        vec![
            unit_of(TABLE_NAMESPACE, &self.running),
            unit_of(TABLE_NAMESPACE, &self.stopped),
            exec_unit_of(TABLE_NAMESPACE, &self.running, RUNNING),
            exec_unit_of(TABLE_NAMESPACE, &self.running, ADDED),
        ]
    }

    /// What differs from how the cases found the fixtures (bad requests must change nothing).
    async fn changes(&self, client: &TaskClient) -> Vec<String> {
        let expected = [
            (&self.running, "", Status::RUNNING),
            (&self.running, RUNNING, Status::RUNNING),
            (&self.running, ADDED, Status::CREATED),
            (&self.stopped, "", Status::STOPPED),
        ];
        let mut changes = Vec::new();
        for (id, exec_id, status) in expected {
            let seen = Call::state_status(client, id, exec_id).await;
            if seen.as_ref().ok() != Some(&status) {
                changes.push(format!("fixture {id} {exec_id:?} is {seen:?}, expected {status:?}"));
            }
        }
        changes
    }

    async fn tear_down(self, sandbox: &Sandbox, client: &TaskClient) {
        let _ = Call::kill(&self.running, RUNNING, Signal::SIGKILL).send(client, context()).await;
        let _ = Call::wait(&self.running, RUNNING).send(client, context()).await;
        let _ = Call::delete(&self.running, RUNNING).send(client, context()).await;
        let _ = Call::delete(&self.running, ADDED).send(client, context()).await;
        let _ = calls::kill(client, &self.running, Signal::SIGKILL as u32).await;
        let _ = calls::wait(client, &self.running).await;
        for id in self.ids() {
            let _ = calls::delete(client, id).await;
            assert_nothing_left(sandbox, TABLE_NAMESPACE, id);
        }
        for bundle in &self.bundles {
            let _ = std::fs::remove_dir_all(bundle);
        }
    }
}

const TABLE_NAMESPACE: &str = "bad-table";
const OTHER_NAMESPACE: &str = "bad-table-other";

/// The daemon still answers on `client`: a State for an unknown task is NOT_FOUND.
async fn still_serving(client: &TaskClient) -> Result<(), String> {
    let request = StateRequest { id: "no-such-task".into(), ..Default::default() };
    match client.state(context(), &request).await {
        Err(ttrpc::Error::RpcStatus(status)) if status.code() == Code::NOT_FOUND => Ok(()),
        other => Err(format!("the daemon no longer answers: {other:?}")),
    }
}

/// Loaded units of `namespace`'s tasks (of any daemon), by their name prefix.
fn units_of_namespace(sandbox: &Sandbox, namespace: &str) -> Vec<String> {
    let prefix = format!("containerd-{}-", unit_gen::escape::unit_name_escape(namespace));
    let run = sandbox.run(&["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager"]);
    run.stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|unit| unit.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Runs `check`, turning its panic (a failed assertion) into the panic's message.
fn caught(check: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|message| message.to_string()))
            .unwrap_or_else(|| "a check panicked".into())
    })
}

/// Unblocks a daemon thread stuck opening or reading `fifo` (a reader waits for a writer): opens
/// the write end, which succeeds only while a reader is there, and closes it (EOF).
fn release_fifo_reader(fifo: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(fifo);
}

#[tokio::test]
async fn bad_task_api_requests_get_clear_errors_with_the_right_codes_and_leave_nothing() {
    let sandbox = Sandbox::get();
    let other = client(sandbox, OTHER_NAMESPACE).await;
    let client = client(sandbox, TABLE_NAMESPACE).await;
    let fixtures = Fixtures::set_up(sandbox, &client).await;
    let (running, stopped) = (fixtures.running.clone(), fixtures.stopped.clone());

    // Bundles the create cases point at.
    let good = runnable_bundle(sandbox, &unique_id("good"), &["true"]);
    let not_json = bundle_with(sandbox, &unique_id("not-json"), Some("this is not json"));
    let json_array = bundle_with(sandbox, &unique_id("json-array"), Some("[]"));
    let no_config = bundle_with(sandbox, &unique_id("no-config"), None);
    let no_process =
        bundle_with(sandbox, &unique_id("no-process"), Some(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#));
    let old_version = edited_bundle(sandbox, &unique_id("oci-0.0.1"), |spec| spec["ociVersion"] = "0.0.1".into());
    let word_version = edited_bundle(sandbox, &unique_id("oci-latest"), |spec| spec["ociVersion"] = "latest".into());
    let no_version = edited_bundle(sandbox, &unique_id("oci-none"), |spec| {
        spec.as_object_mut().expect("object").remove("ociVersion");
    });
    // "Unreadable" as root, who ignores permission bits: config.json is a directory, a symlink
    // loop, or a fifo nobody writes (a plain read would wait for a writer forever).
    let config_dir = bundle_with(sandbox, &unique_id("config-dir"), None);
    std::fs::create_dir(config_dir.join("config.json")).expect("config.json as a directory");
    let config_loop = bundle_with(sandbox, &unique_id("config-loop"), None);
    std::os::unix::fs::symlink("config.json", config_loop.join("config.json")).expect("symlink loop");
    let config_fifo = bundle_with(sandbox, &unique_id("config-fifo"), None);
    mkfifo(&config_fifo.join("config.json"), Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let scratch = bundle_with(sandbox, &unique_id("scratch"), None);
    let bundle_file = scratch.join("bundle-is-a-file");
    std::fs::write(&bundle_file, "").expect("a file where the bundle should be");
    let options_fifo = scratch.join("options.toml");
    mkfifo(&options_fifo, Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let fifos = [config_fifo.join("config.json"), options_fifo.clone()];

    let long = "a".repeat(300);
    let new = || unique_id("bad");
    let cases = vec![
        // Task ids: containerd's identifier rule.
        Case::new("task id with slash", Call::Create(create("a/b", &good)), Code::INVALID_ARGUMENT, "invalid task id"),
        Case::new("task id dot dot", Call::Create(create("..", &good)), Code::INVALID_ARGUMENT, "invalid task id"),
        Case::new("task id ../x", Call::Create(create("../x", &good)), Code::INVALID_ARGUMENT, "invalid task id"),
        Case::new("task id of 300 chars", Call::Create(create(&long, &good)), Code::INVALID_ARGUMENT, "longer than 76"),
        Case::new("empty task id", Call::Create(create("", &good)), Code::INVALID_ARGUMENT, "must not be empty"),
        Case::new("task id with NUL", Call::Create(create("a\0b", &good)), Code::INVALID_ARGUMENT, "invalid task id"),
        Case::new(
            "unicode task id",
            Call::Create(create("contäiner", &good)),
            Code::INVALID_ARGUMENT,
            "may only contain letters",
        ),
        Case::new(
            "task id with a newline and unit syntax",
            Call::Create(create("a\n[Service]\nExecStartPost=x", &good)),
            Code::INVALID_ARGUMENT,
            "invalid task id",
        ),
        Case::new(
            "task id with a systemd specifier",
            Call::Create(create("a%n", &good)),
            Code::INVALID_ARGUMENT,
            "invalid task id",
        ),
        Case::new("unicode id in start", Call::start("ü", ""), Code::INVALID_ARGUMENT, "may only contain letters"),
        // The bundle.
        Case::new(
            "missing bundle",
            Call::Create(create(&new(), Path::new("/nonexistent/bundle"))),
            Code::INVALID_ARGUMENT,
            "does not exist",
        ),
        Case::new(
            "relative bundle",
            Call::Create(create(&new(), Path::new("relative/bundle"))),
            Code::INVALID_ARGUMENT,
            "not absolute",
        ),
        Case::new("empty bundle", Call::Create(create(&new(), Path::new(""))), Code::INVALID_ARGUMENT, "no bundle"),
        Case::new(
            "bundle is a file",
            Call::Create(create(&new(), &bundle_file)),
            Code::INVALID_ARGUMENT,
            "is not a directory",
        ),
        Case::new(
            "config.json missing",
            Call::Create(create(&new(), &no_config)),
            Code::INVALID_ARGUMENT,
            "config.json is missing",
        ),
        Case::new(
            "config.json is a directory",
            Call::Create(create(&new(), &config_dir)),
            Code::INVALID_ARGUMENT,
            "config.json",
        ),
        Case::new(
            "config.json is a symlink loop",
            Call::Create(create(&new(), &config_loop)),
            Code::INVALID_ARGUMENT,
            "symbolic links",
        ),
        Case::new(
            "config.json is a fifo nobody writes",
            Call::Create(create(&new(), &config_fifo)),
            Code::INVALID_ARGUMENT,
            "not a regular file",
        ),
        // The spec.
        Case::new(
            "config.json not JSON",
            Call::Create(create(&new(), &not_json)),
            Code::INVALID_ARGUMENT,
            "not a valid OCI runtime spec",
        ),
        Case::new(
            "config.json a JSON array",
            Call::Create(create(&new(), &json_array)),
            Code::INVALID_ARGUMENT,
            "not a valid OCI runtime spec",
        ),
        Case::new(
            "spec without process",
            Call::Create(create(&new(), &no_process)),
            Code::INVALID_ARGUMENT,
            "no process",
        ),
        Case::new(
            "ociVersion 0.0.1",
            Call::Create(create(&new(), &old_version)),
            Code::INVALID_ARGUMENT,
            "unsupported ociVersion \"0.0.1\"",
        ),
        Case::new(
            "ociVersion not SemVer",
            Call::Create(create(&new(), &word_version)),
            Code::INVALID_ARGUMENT,
            "unsupported ociVersion \"latest\"",
        ),
        Case::new(
            "ociVersion missing",
            Call::Create(create(&new(), &no_version)),
            Code::INVALID_ARGUMENT,
            "unsupported ociVersion \"\"",
        ),
        // The rest of the create request.
        Case::new(
            "rootfs mount of unknown type",
            create_with(&new(), &good, |request| {
                request.rootfs = vec![Mount { type_: "nosuchfs".into(), source: "none".into(), ..Default::default() }]
            }),
            Code::INVALID_ARGUMENT,
            "mounting the rootfs: mounting nosuchfs none",
        ),
        Case::new(
            "rootfs bind mount of a missing source",
            create_with(&new(), &good, |request| {
                request.rootfs = vec![Mount {
                    type_: "bind".into(),
                    source: "/nonexistent/lower".into(),
                    options: vec!["rbind".into(), "ro".into()],
                    ..Default::default()
                }]
            }),
            Code::INVALID_ARGUMENT,
            "mounting the rootfs: mounting bind /nonexistent/lower",
        ),
        Case::new(
            "unknown options type",
            create_with(&new(), &good, |request| {
                request.options =
                    Some(Any { type_url: "type.googleapis.com/example.Unknown".into(), ..Default::default() }).into()
            }),
            Code::INVALID_ARGUMENT,
            "example.Unknown",
        ),
        Case::new(
            "undecodable runc options",
            create_with(&new(), &good, |request| {
                request.options = Some(Any {
                    type_url: "containerd.runc.v1.Options".into(),
                    value: vec![0xff, 0xff, 0xff],
                    ..Default::default()
                })
                .into()
            }),
            Code::INVALID_ARGUMENT,
            "undecodable containerd.runc.v1.Options",
        ),
        Case::new(
            "runtime options file is a fifo nobody writes",
            create_with(&new(), &good, |request| request.options = Some(runtime_options_naming(&options_fifo)).into()),
            Code::INVALID_ARGUMENT,
            "not a regular file",
        ),
        Case::new(
            "runc missing from PATH",
            create_with(&new(), &good, |request| request.options = Some(runc_options("no-such-runc")).into()),
            Code::FAILED_PRECONDITION,
            "no-such-runc",
        ),
        Case::new(
            "terminal the spec does not ask for",
            create_with(&new(), &good, |request| request.terminal = true),
            Code::INVALID_ARGUMENT,
            "process.terminal is false but the request asks for true",
        ),
        Case::new(
            "binary:// stdout naming no absolute path",
            create_with(&new(), &good, |request| request.stdout = "binary://usr/bin/logger".into()),
            Code::INVALID_ARGUMENT,
            "not absolute",
        ),
        Case::new(
            "stdout of an unknown URI scheme",
            create_with(&new(), &good, |request| request.stdout = "http://example.com/log".into()),
            Code::INVALID_ARGUMENT,
            "unknown URI scheme \"http\"",
        ),
        Case::new(
            "relative stdin path",
            create_with(&new(), &good, |request| request.stdin = "fifo/stdin".into()),
            Code::INVALID_ARGUMENT,
            "stdin path \"fifo/stdin\" is not absolute",
        ),
        Case::new("duplicate create", Call::Create(create(&running, &good)), Code::ALREADY_EXISTS, "already exists"),
        // Task lifecycle.
        Case::new("start before create", Call::start(&new(), ""), Code::NOT_FOUND, "not found"),
        Case::new("start of a running task", Call::start(&running, ""), Code::FAILED_PRECONDITION, "cannot start"),
        Case::new("start of a stopped task", Call::start(&stopped, ""), Code::FAILED_PRECONDITION, "cannot start"),
        Case::new(
            "kill of an exited task",
            Call::kill(&stopped, "", Signal::SIGKILL),
            Code::NOT_FOUND,
            "already finished",
        ),
        Case::new(
            "kill with a signal that is none",
            Call::Kill { id: running.clone(), exec_id: String::new(), signal: 12345 },
            Code::INVALID_ARGUMENT,
            "invalid signal 12345",
        ),
        Case::new("kill of an unknown task", Call::kill(&new(), "", Signal::SIGTERM), Code::NOT_FOUND, "not found"),
        Case::new(
            "delete of a running task",
            Call::delete(&running, ""),
            Code::FAILED_PRECONDITION,
            "is running: cannot delete",
        ),
        Case::new("wait for an unknown task", Call::wait(&new(), ""), Code::NOT_FOUND, "not found"),
        Case::new("resize of a non-tty", Call::resize(&running, ""), Code::FAILED_PRECONDITION, "has no terminal"),
        // Execs.
        Case::new(
            "exec into a stopped task",
            Call::Exec(exec_request(&stopped, "e1", &["true"])),
            Code::FAILED_PRECONDITION,
            "cannot exec a process",
        ),
        Case::new(
            "exec into an unknown task",
            Call::Exec(exec_request(&new(), "e1", &["true"])),
            Code::NOT_FOUND,
            "not found",
        ),
        Case::new(
            "exec with a duplicate exec id",
            Call::Exec(exec_request(&running, ADDED, &["true"])),
            Code::ALREADY_EXISTS,
            "exec \"e-added\" already exists",
        ),
        Case::new(
            "exec id with slash",
            Call::Exec(exec_request(&running, "a/b", &["true"])),
            Code::INVALID_ARGUMENT,
            "invalid exec id",
        ),
        Case::new(
            "exec id dot dot",
            Call::Exec(exec_request(&running, "..", &["true"])),
            Code::INVALID_ARGUMENT,
            "invalid exec id",
        ),
        Case::new(
            "exec id with NUL",
            Call::Exec(exec_request(&running, "e\0x", &["true"])),
            Code::INVALID_ARGUMENT,
            "invalid exec id",
        ),
        Case::new(
            "exec id of 300 chars",
            Call::Exec(exec_request(&running, &long, &["true"])),
            Code::INVALID_ARGUMENT,
            "longer than 76",
        ),
        Case::new(
            "unicode exec id",
            Call::Exec(exec_request(&running, "ëxec", &["true"])),
            Code::INVALID_ARGUMENT,
            "invalid exec id",
        ),
        Case::new(
            "empty exec id",
            Call::Exec(exec_request(&running, "", &["true"])),
            Code::INVALID_ARGUMENT,
            "exec needs an exec id",
        ),
        Case::new(
            "exec without a process spec",
            exec_with(&running, "e-nospec", |request| request.spec = None.into()),
            Code::INVALID_ARGUMENT,
            "has no process spec",
        ),
        Case::new(
            "exec process spec not JSON",
            exec_with(&running, "e-notjson", |request| {
                request.spec = Some(Any {
                    type_url: tests::grpc::spec::PROCESS_TYPE_URL.into(),
                    value: b"{".to_vec(),
                    ..Default::default()
                })
                .into()
            }),
            Code::INVALID_ARGUMENT,
            "process spec is not valid",
        ),
        Case::new(
            "exec process spec without args",
            exec_with(&running, "e-noargs", |request| {
                let process = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}});
                request.spec = Some(Any {
                    type_url: tests::grpc::spec::PROCESS_TYPE_URL.into(),
                    value: serde_json::to_vec(&process).expect("json"),
                    ..Default::default()
                })
                .into()
            }),
            Code::INVALID_ARGUMENT,
            "process spec has no args",
        ),
        Case::new(
            "start of an exec twice",
            Call::start(&running, RUNNING),
            Code::FAILED_PRECONDITION,
            "exec \"e-running\"",
        ),
        Case::new(
            "delete of a running exec",
            Call::delete(&running, RUNNING),
            Code::FAILED_PRECONDITION,
            "is running: cannot delete",
        ),
        Case::new("start of an unknown exec", Call::start(&running, "e-none"), Code::NOT_FOUND, "exec \"e-none\""),
        Case::new(
            "kill of an exec never started",
            Call::kill(&running, ADDED, Signal::SIGKILL),
            Code::FAILED_PRECONDITION,
            "cannot kill",
        ),
        Case::new(
            "resize of a non-tty exec",
            Call::resize(&running, RUNNING),
            Code::FAILED_PRECONDITION,
            "has no terminal",
        ),
        Case::new("state of an unknown exec", Call::state(&running, "e-none"), Code::NOT_FOUND, "exec \"e-none\""),
        Case::new(
            "state with a hostile exec id",
            Call::state(&running, "../e"),
            Code::INVALID_ARGUMENT,
            "invalid exec id",
        ),
        // Another namespace's tasks do not exist through this namespace's socket.
        Case::new("state of another namespace's task", Call::state(&running, ""), Code::NOT_FOUND, "not found")
            .through_other_namespace(),
        Case::new(
            "kill of another namespace's task",
            Call::kill(&running, "", Signal::SIGKILL),
            Code::NOT_FOUND,
            "not found",
        )
        .through_other_namespace(),
        Case::new("delete of another namespace's task", Call::delete(&stopped, ""), Code::NOT_FOUND, "not found")
            .through_other_namespace(),
        Case::new(
            "exec into another namespace's task",
            Call::Exec(exec_request(&running, "e-other", &["true"])),
            Code::NOT_FOUND,
            "not found",
        )
        .through_other_namespace(),
        Case::new(
            "kill of another namespace's exec",
            Call::kill(&running, RUNNING, Signal::SIGKILL),
            Code::NOT_FOUND,
            "not found",
        )
        .through_other_namespace(),
    ];

    let fixture_units = fixtures.units();
    // Units of this test process (ids from `unique_id` carry its pid), not of earlier runs.
    let this_run = format!("\\x2d{}\\x2d", std::process::id());
    let mut failures = Vec::new();
    for case in &cases {
        let through = match case.via {
            Via::Own => &client,
            Via::OtherNamespace => &other,
        };
        let context = ttrpc::context::with_duration(Duration::from_secs(20));
        let outcome = case.call.send(through, context).await;
        for fifo in &fifos {
            release_fifo_reader(fifo);
        }
        let id = case.call.task_id().to_string();
        let mut problems = Vec::new();
        match outcome {
            Err(ttrpc::Error::RpcStatus(status)) => {
                if status.code() != case.code || !status.message().contains(case.message) {
                    problems.push(format!(
                        "expected {:?} with {:?}, got {:?}: {:?}",
                        case.code,
                        case.message,
                        status.code(),
                        status.message()
                    ));
                }
            }
            other => {
                problems.push(format!("expected {:?} with {:?}, got {other:?}", case.code, case.message));
                if other.is_ok() && matches!(case.call, Call::Create(_)) {
                    // Do not leave a task the daemon should never have created.
                    let _ = calls::delete(&client, &id).await;
                }
            }
        }
        problems.extend(still_serving(&client).await.err());
        problems.extend(still_serving(&other).await.err());
        let valid = unit_gen::validate_identifier(unit_gen::IdentifierKind::TaskId, &id).is_ok();
        if valid && !fixtures.ids().contains(&id.as_str()) {
            problems.extend(caught(|| assert_nothing_left(sandbox, TABLE_NAMESPACE, &id)).err());
        }
        let strays: Vec<String> = units_of_namespace(sandbox, TABLE_NAMESPACE)
            .into_iter()
            .chain(units_of_namespace(sandbox, OTHER_NAMESPACE))
            .filter(|unit| unit.contains(&this_run) && !fixture_units.contains(unit))
            .collect();
        if !strays.is_empty() {
            problems.push(format!("units left: {strays:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("case {:?}: {}", case.name, problems.join("; ")));
        }
    }
    eprintln!("{} bad-input cases, {} failed", cases.len(), failures.len());

    failures.extend(fixtures.changes(&client).await);
    fixtures.tear_down(sandbox, &client).await;
    let bundles = [
        &good,
        &not_json,
        &json_array,
        &no_config,
        &no_process,
        &old_version,
        &word_version,
        &no_version,
        &config_dir,
        &config_loop,
        &config_fifo,
    ];
    for bundle in bundles {
        let leftovers: Vec<_> = std::fs::read_dir(bundle)
            .expect("bundle")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("shim-") || name == "init.pid" || name == "exit-state.json")
            .collect();
        if !leftovers.is_empty() {
            failures.push(format!("our files left in {}: {leftovers:?}", bundle.display()));
        }
        let _ = std::fs::remove_dir_all(bundle);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(cases.len() >= 30, "the table has {} cases", cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
async fn a_good_task_runs_through_the_task_api_after_bad_requests() {
    let sandbox = Sandbox::get();
    let namespace = "shimtest-direct";
    let client = client(sandbox, namespace).await;
    let bad = create(&unique_id("bad"), std::path::Path::new("/nonexistent/bundle"));
    assert!(client.create(context(), &bad).await.is_err());

    let id = unique_id("good-direct");
    let bundle = runnable_bundle(sandbox, &id, &["sh", "-c", "exit 5"]);
    let created = client.create(context(), &create(&id, &bundle)).await.expect("create");
    assert!(created.pid > 0);
    assert_eq!(
        code_of(client.create(context(), &create(&id, &bundle)).await),
        Code::ALREADY_EXISTS,
        "duplicate create"
    );
    calls::start(&client, &id).await.expect("start");
    assert_eq!(calls::wait(&client, &id).await.expect("wait").exit_status, 5);
    let deleted = calls::delete(&client, &id).await.expect("delete");
    assert_eq!((deleted.pid, deleted.exit_status), (created.pid, 5));
    assert_eq!(code_of(calls::delete(&client, &id).await), Code::NOT_FOUND, "second delete");
    std::fs::remove_dir_all(&bundle).expect("remove bundle");
    assert_nothing_left(sandbox, namespace, &id);
}

#[tokio::test]
async fn state_connect_kill_and_wait_report_each_step_of_a_task() {
    use containerd_shim_protos::api::{ConnectRequest, Status};
    let sandbox = Sandbox::get();
    let namespace = "shimtest-direct";
    let client = client(sandbox, namespace).await;
    let id = unique_id("steps");
    let bundle = runnable_bundle(sandbox, &id, &["sleep", "1000"]);

    let created = client.create(context(), &create(&id, &bundle)).await.expect("create");
    let after_create = calls::state(&client, &id).await.expect("state");
    assert_eq!((after_create.status.enum_value(), after_create.pid), (Ok(Status::CREATED), created.pid));
    assert_eq!(after_create.bundle, bundle.display().to_string());

    calls::start(&client, &id).await.expect("start");
    assert_eq!(calls::state(&client, &id).await.expect("state").status.enum_value(), Ok(Status::RUNNING));
    let connect = ConnectRequest { id: id.clone(), ..Default::default() };
    let connected = client.connect(context(), &connect).await.expect("connect");
    assert_eq!(connected.task_pid, created.pid);
    assert!(connected.shim_pid > 0 && connected.version.starts_with("containerd-shim-systemd-v1"));

    assert_eq!(code_of(calls::delete(&client, &id).await), Code::FAILED_PRECONDITION, "deleting a running task");
    calls::kill(&client, &id, 9).await.expect("kill");
    assert_eq!(calls::wait(&client, &id).await.expect("wait").exit_status, 137);
    let stopped = calls::state(&client, &id).await.expect("state");
    assert_eq!((stopped.status.enum_value(), stopped.exit_status), (Ok(Status::STOPPED), 137));
    assert!(stopped.exited_at.is_some());
    assert_eq!(code_of(calls::kill(&client, &id, 9).await), Code::NOT_FOUND, "killing an exited task");
    assert_eq!(code_of(calls::kill(&client, &id, 12345).await), Code::INVALID_ARGUMENT, "a bogus signal");
    calls::delete(&client, &id).await.expect("delete");
    std::fs::remove_dir_all(&bundle).expect("remove bundle");
    assert_nothing_left(sandbox, namespace, &id);
}

/// Sends `deletes` concurrent Deletes of task `id` (of exec `exec_id` when not empty), half on
/// `first`'s connection and half on `second`'s; returns how each ended.
async fn concurrent_deletes(
    first: &TaskClient,
    second: &TaskClient,
    id: &str,
    exec_id: &str,
    deletes: usize,
) -> Vec<ttrpc::Result<()>> {
    let handles: Vec<_> = (0..deletes)
        .map(|index| {
            let client = if index % 2 == 0 { first.clone() } else { second.clone() };
            let call = Call::delete(id, exec_id);
            tokio::spawn(async move { call.send(&client, context()).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("the delete task does not panic"));
    }
    outcomes
}

/// Exactly one of `outcomes` succeeded; every other is NOT_FOUND or FAILED_PRECONDITION.
fn assert_exactly_one_delete(what: &str, outcomes: &[ttrpc::Result<()>]) {
    let succeeded = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(succeeded, 1, "{what}: exactly one delete succeeds: {outcomes:?}");
    for outcome in outcomes.iter().filter(|outcome| outcome.is_err()) {
        let code = match outcome {
            Err(ttrpc::Error::RpcStatus(status)) => status.code(),
            other => panic!("{what}: a losing delete got {other:?}"),
        };
        assert!(
            code == Code::NOT_FOUND || code == Code::FAILED_PRECONDITION,
            "{what}: a losing delete is NOT_FOUND or FAILED_PRECONDITION: {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_deletes_of_one_task_or_exec_succeed_exactly_once() {
    const NAMESPACE: &str = "bad-concurrent";
    const DELETES: usize = 6;
    let sandbox = Sandbox::get();
    // Two connections, as when containerd retries on a fresh one.
    let first = client(sandbox, NAMESPACE).await;
    let second = client(sandbox, NAMESPACE).await;
    for round in 0..3 {
        let id = unique_id("concurrent");
        let bundle = runnable_bundle(sandbox, &id, &["sleep", "1000"]);
        first.create(context(), &create(&id, &bundle)).await.expect("create");
        calls::start(&first, &id).await.expect("start");

        first.exec(context(), &exec_request(&id, "e1", &["true"])).await.expect("exec");
        Call::start(&id, "e1").send(&first, context()).await.expect("start exec");
        Call::wait(&id, "e1").send(&first, context()).await.expect("wait exec");
        let outcomes = concurrent_deletes(&first, &second, &id, "e1", DELETES).await;
        assert_exactly_one_delete(&format!("round {round}, exec"), &outcomes);
        assert!(!sandbox.unit_loaded(&exec_unit_of(NAMESPACE, &id, "e1")), "round {round}: exec unit left");

        calls::kill(&first, &id, Signal::SIGKILL as u32).await.expect("kill");
        calls::wait(&first, &id).await.expect("wait");
        let outcomes = concurrent_deletes(&first, &second, &id, "", DELETES).await;
        assert_exactly_one_delete(&format!("round {round}, task"), &outcomes);
        still_serving(&first).await.expect("the daemon serves the first connection");
        still_serving(&second).await.expect("the daemon serves the second connection");
        assert_eq!(code_of(calls::state(&second, &id).await), Code::NOT_FOUND, "round {round}: the task is gone");
        std::fs::remove_dir_all(&bundle).expect("remove bundle");
        assert_nothing_left(sandbox, NAMESPACE, &id);
    }
}
