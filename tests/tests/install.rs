//! `install` / `uninstall` against the sandbox's systemd, `--version`, `-info`, `start` speaking
//! containerd 2.3's bootstrap protocol, and the configuration file. Each test installs for a
//! containerd address of its own (no containerd needs to listen there: the daemon only publishes
//! events to it) and with `--runtime`, so the unit files go to the sandbox's private
//! `/run/systemd/system`, never to the `/etc` it shares with the host.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use containerd_shim_protos::api::{CreateTaskRequest, PauseRequest, ResumeRequest};
use containerd_shim_protos::bootstrap_api::{BootstrapParams, BootstrapResult, Extension, LogLevel};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::shim_async::TaskClient;
use containerd_shim_protos::types::introspection::RuntimeInfo;
use sha2::{Digest, Sha256};
use tests::calls;
use tests::direct::{context, runnable_bundle, start_shim_at};
use tests::{unique_id, unit_of_containerd, wait_until, Run, Sandbox};

const CONFIG_ENV: &str = "CONTAINERD_SHIM_SYSTEMD_CONFIG";

/// The namespace the tests here serve.
const NAMESPACE: &str = "install";

/// The daemon for one made-up containerd address: its control socket, unit names and files.
struct Daemon {
    address: String,
    control_socket: String,
    service: String,
    socket: String,
    /// Its task records.
    state_dir: String,
    /// The task API socket of [`NAMESPACE`].
    namespace_socket: String,
}

fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Daemon {
    fn new(name: &str) -> Daemon {
        let address = format!("/run/containerd-{}/containerd.sock", unique_id(name));
        let hex = hex_digest(&format!("io.containerd.systemd.v1\0{address}"));
        let namespace_hex = hex_digest(&format!("io.containerd.systemd.v1\0{address}\0{NAMESPACE}"));
        Daemon {
            control_socket: format!("/run/containerd/s/{hex}"),
            service: format!("containerd-shim-systemd-v1-{}.service", &hex[..16]),
            socket: format!("containerd-shim-systemd-v1-{}.socket", &hex[..16]),
            state_dir: format!("/run/containerd/io.containerd.systemd.v1/daemons/{hex}"),
            namespace_socket: format!("/run/containerd/s/{namespace_hex}"),
            address,
        }
    }
}

/// Runs our shim with `args`, `env` (`NAME=value`) added.
fn shim(sandbox: &Sandbox, env: &[&str], args: &[&str]) -> Run {
    let mut all = vec!["env"];
    all.extend_from_slice(env);
    all.push(&sandbox.shim);
    all.extend_from_slice(args);
    sandbox.run(&all)
}

/// Uninstalls (and stops whatever is left) when the test ends, passed or not.
struct Installed<'a> {
    sandbox: &'a Sandbox,
    daemon: &'a Daemon,
    /// Units to stop first (a slice stops the tasks in it).
    also_stop: Vec<String>,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let daemon = self.daemon;
        for unit in &self.also_stop {
            self.sandbox.run(&["systemctl", "stop", unit]);
        }
        shim(self.sandbox, &[], &["uninstall", "--address", &daemon.address]);
        for unit in [&daemon.socket, &daemon.service] {
            self.sandbox.run(&["systemctl", "stop", unit]);
            self.sandbox.run(&["systemctl", "reset-failed", unit]);
        }
        // What a stopped daemon keeps for its next start: its records and its task API socket.
        let _ = std::fs::remove_dir_all(self.sandbox.host_path(&daemon.state_dir));
        let _ = std::fs::remove_file(self.sandbox.host_path(&daemon.namespace_socket));
    }
}

fn install<'a>(sandbox: &'a Sandbox, daemon: &'a Daemon, env: &[&str]) -> (Installed<'a>, Run) {
    let run = shim(sandbox, env, &["install", "--runtime", "--address", &daemon.address]);
    (Installed { sandbox, daemon, also_stop: Vec::new() }, run)
}

/// A file (inside the sandbox's view) under `/run/systemd/system`, and the same name in the
/// `/etc/systemd/system` the sandbox shares with the host.
fn unit_files(sandbox: &Sandbox, unit: &str) -> (PathBuf, PathBuf) {
    (sandbox.host_path(format!("/run/systemd/system/{unit}")), PathBuf::from("/etc/systemd/system").join(unit))
}

/// Sends one control request (the daemon's JSON-line protocol) for `namespace`; returns the
/// answer line.
fn serve_namespace(sandbox: &Sandbox, control_socket: &str, namespace: &str) -> String {
    let mut stream = UnixStream::connect(sandbox.host_path(control_socket)).expect("connect to the control socket");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    writeln!(stream, r#"{{"serve_namespace":{{"namespace":"{namespace}"}}}}"#).expect("send the request");
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).expect("read the answer");
    answer
}

/// A configuration file visible in the sandbox.
fn config_file(sandbox: &Sandbox, name: &str, text: &str) -> String {
    let dir = sandbox.root.join("install-test");
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join(format!("{}.toml", unique_id(name)));
    std::fs::write(&path, text).expect("write config");
    path.to_str().expect("utf-8").to_string()
}

#[test]
fn dry_run_prints_both_units_and_changes_nothing() {
    let sandbox = Sandbox::get();
    let daemon = Daemon::new("install-dry");
    for (args, dir) in [
        (vec!["install", "--dry-run", "--runtime", "--address", &daemon.address], "/run/systemd/system"),
        (vec!["install", "--dry-run", "--address", &daemon.address], "/etc/systemd/system"),
    ] {
        let run = shim(sandbox, &[], &args).success("install --dry-run");
        assert!(run.stdout.contains(&format!("# {dir}/{}\n", daemon.socket)), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("# {dir}/{}\n", daemon.service)), "{}", run.stdout);
        for line in [
            format!("ListenStream={}", daemon.control_socket),
            "FileDescriptorName=control".into(),
            "WantedBy=sockets.target".into(),
            "Type=notify".into(),
            "Restart=always".into(),
            "FileDescriptorStoreMax=4096".into(),
            "KillMode=process".into(),
            format!("Environment=\"TTRPC_ADDRESS={}.ttrpc\"", daemon.address),
            format!("ExecStart={} -address {}", sandbox.shim, daemon.address),
        ] {
            assert!(run.stdout.lines().any(|printed| printed.starts_with(&line)), "no {line:?} in {}", run.stdout);
        }
    }
    for unit in [&daemon.socket, &daemon.service] {
        let (runtime, etc) = unit_files(sandbox, unit);
        assert!(!runtime.exists() && !etc.exists(), "--dry-run wrote {unit}");
        assert!(!sandbox.unit_loaded(unit), "--dry-run loaded {unit}");
    }
}

#[test]
fn installed_socket_activates_the_daemon_and_uninstall_removes_everything() {
    let sandbox = Sandbox::get();
    let daemon = Daemon::new("install");
    let (installed, run) = install(sandbox, &daemon, &[]);
    run.success("install");
    for unit in [&daemon.socket, &daemon.service] {
        let (runtime, etc) = unit_files(sandbox, unit);
        assert!(runtime.exists(), "{unit} is in the sandbox's /run/systemd/system");
        assert!(!etc.exists(), "{unit} must not reach the host's /etc");
    }
    assert_eq!(sandbox.unit_property(&daemon.socket, "UnitFileState"), "enabled-runtime");
    assert_eq!(sandbox.unit_property(&daemon.socket, "SubState"), "listening");
    assert_eq!(sandbox.unit_property(&daemon.service, "ActiveState"), "inactive", "nothing connected yet");

    // The first connection starts the service, which answers on the socket it was handed.
    let answer = serve_namespace(sandbox, &daemon.control_socket, NAMESPACE);
    assert!(answer.starts_with(r#"{"serving":{"address":"unix:///run/containerd/s/"#), "{answer}");
    assert_eq!(sandbox.unit_property(&daemon.service, "ActiveState"), "active");
    assert_eq!(sandbox.unit_property(&daemon.service, "Transient"), "no");
    assert_eq!(sandbox.unit_property(&daemon.service, "KillMode"), "process");
    assert_eq!(sandbox.unit_property(&daemon.service, "LimitNOFILE"), "1048576");
    let pid = sandbox.unit_property(&daemon.service, "MainPID");

    // Installing again changes nothing, and does not restart the daemon.
    let again = shim(sandbox, &[], &["install", "--runtime", "--address", &daemon.address]).success("install again");
    assert_eq!(again.stdout.matches("is up to date").count(), 2, "{}", again.stdout);
    assert_eq!(sandbox.unit_property(&daemon.service, "MainPID"), pid);

    // `start`, as containerd runs it, uses the installed daemon.
    let (run, address) = start_shim_at(sandbox, &daemon.address, &[], NAMESPACE, "probe");
    assert!(address.is_some_and(|address| answer.contains(&address)), "{run:?} vs {answer}");
    assert_eq!(sandbox.unit_property(&daemon.service, "MainPID"), pid);

    // With both stopped, `start` starts the socket again rather than a transient daemon.
    sandbox.run(&["systemctl", "stop", &daemon.socket, &daemon.service]).success("systemctl stop");
    let (run, address) = start_shim_at(sandbox, &daemon.address, &[], NAMESPACE, "probe");
    assert!(address.is_some(), "{run:?}");
    assert_eq!(sandbox.unit_property(&daemon.socket, "ActiveState"), "active");
    assert_eq!(sandbox.unit_property(&daemon.service, "ActiveState"), "active");
    assert_eq!(sandbox.unit_property(&daemon.service, "Transient"), "no");

    let run = shim(sandbox, &[], &["uninstall", "--address", &daemon.address]).success("uninstall");
    // Stopping the socket stops the service that requires it.
    assert!(run.stdout.contains(&format!("stopped {}", daemon.socket)), "{}", run.stdout);
    for unit in [&daemon.socket, &daemon.service] {
        assert!(!unit_files(sandbox, unit).0.exists(), "{unit} removed");
        assert!(wait_until(Duration::from_secs(10), || !sandbox.unit_loaded(unit)), "{unit} still loaded");
    }
    assert!(!sandbox.host_path("/run/systemd/system/sockets.target.wants").join(&daemon.socket).exists());
    assert!(!sandbox.host_path(&daemon.control_socket).exists(), "the stopped socket unit removed its file");
    let twice = shim(sandbox, &[], &["uninstall", "--address", &daemon.address]).success("uninstall twice");
    assert!(twice.stdout.contains("nothing installed"), "{}", twice.stdout);
    drop(installed);
}

/// Without installed units `start` launches the daemon as a transient unit, passing on the
/// configuration file; `install` refuses to take its name while systemd holds it, and goes
/// ahead once it is gone.
#[test]
fn install_waits_for_a_transient_daemon_to_be_gone() {
    let sandbox = Sandbox::get();
    let daemon = Daemon::new("install-transient");
    let config = config_file(sandbox, "transient", "log_mode = \"fifo\"\n");
    let env = format!("{CONFIG_ENV}={config}");
    let guard = Installed { sandbox, daemon: &daemon, also_stop: Vec::new() };

    let (run, address) = start_shim_at(sandbox, &daemon.address, &[&env], NAMESPACE, "probe");
    assert!(address.is_some(), "{run:?}");
    assert_eq!(sandbox.unit_property(&daemon.service, "Transient"), "yes");
    assert!(sandbox.unit_property(&daemon.service, "Environment").contains(&env), "the config file is passed on");
    let pid = sandbox.unit_property(&daemon.service, "MainPID");

    let run = shim(sandbox, &[], &["install", "--runtime", "--address", &daemon.address]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains(&format!("{} is a transient unit", daemon.service)), "{run:?}");
    for unit in [&daemon.socket, &daemon.service] {
        assert!(!unit_files(sandbox, unit).0.exists(), "{unit} written");
    }
    assert!(serve_namespace(sandbox, &daemon.control_socket, NAMESPACE).starts_with(r#"{"serving""#));
    assert_eq!(sandbox.unit_property(&daemon.service, "MainPID"), pid, "the transient daemon runs on");

    sandbox.run(&["systemctl", "stop", &daemon.service]).success("systemctl stop");
    let gone = wait_until(Duration::from_secs(10), || !sandbox.unit_loaded(&daemon.service));
    assert!(gone, "systemd let go of the stopped transient unit");
    shim(sandbox, &[], &["install", "--runtime", "--address", &daemon.address]).success("install");
    let (run, address) = start_shim_at(sandbox, &daemon.address, &[], NAMESPACE, "probe");
    assert!(address.is_some(), "{run:?}");
    assert_eq!(sandbox.unit_property(&daemon.service, "Transient"), "no", "the installed service runs");
    drop(guard);
    let _ = std::fs::remove_file(&config);
}

/// The installed daemon (KillMode=process, its hardening) runs a container through the whole
/// task API, in the slice and with the runc root the configuration file names.
#[tokio::test]
async fn installed_daemon_runs_tasks_in_the_configured_default_slice() {
    let sandbox = Sandbox::get();
    let daemon = Daemon::new("install-task");
    let slice = format!("shimtest_{}.slice", unique_id("install").replace('-', "_"));
    let runc_root = format!("/run/shimtest-runc-{}", unique_id("install"));
    let config = config_file(sandbox, "slice", &format!("runc_root = \"{runc_root}\"\n[unit]\nslice = \"{slice}\"\n"));
    let env = format!("{CONFIG_ENV}={config}");
    let (mut installed, run) = install(sandbox, &daemon, &[&env]);
    installed.also_stop.push(slice.clone());
    run.success("install");
    let environment = sandbox.unit_property(&daemon.service, "Environment");
    assert!(environment.contains(&env), "the unit passes the configuration file on: {environment}");

    let (run, address) = start_shim_at(sandbox, &daemon.address, &[], NAMESPACE, "probe");
    let address = address.unwrap_or_else(|| panic!("start failed: {run:?}"));
    let socket = sandbox.host_path(address.strip_prefix("unix://").expect("unix address"));
    let connection =
        ttrpc::asynchronous::Client::connect(&format!("unix://{}", socket.display())).await.expect("connect");
    let client = TaskClient::new(connection);

    let id = unique_id("installed");
    let bundle = runnable_bundle(sandbox, &id, &["sleep", "1000"]);
    let create = CreateTaskRequest { id: id.clone(), bundle: bundle.display().to_string(), ..Default::default() };
    let created = client.create(context(), &create).await.expect("create");
    calls::start(&client, &id).await.expect("start");
    let unit = unit_of_containerd(&daemon.address, NAMESPACE, &id);
    assert_eq!(sandbox.unit_property(&unit, "Slice"), slice, "the configured default slice");
    let runc_state = sandbox.host_path(format!("{runc_root}/{NAMESPACE}/{id}/state.json"));
    assert!(runc_state.exists(), "runc keeps its state under the configured root: {}", runc_state.display());
    assert_eq!(sandbox.unit_property(&unit, "MainPID"), created.pid.to_string());

    // runc run by the daemon itself: pause and resume.
    client.pause(context(), &PauseRequest { id: id.clone(), ..Default::default() }).await.expect("pause");
    client.resume(context(), &ResumeRequest { id: id.clone(), ..Default::default() }).await.expect("resume");
    calls::kill(&client, &id, 9).await.expect("kill");
    assert_eq!(calls::wait(&client, &id).await.expect("wait").exit_status, 137);
    calls::delete(&client, &id).await.expect("delete");
    assert!(wait_until(Duration::from_secs(10), || !sandbox.unit_loaded(&unit)), "{unit} still loaded");
    drop(installed);
    let _ = std::fs::remove_dir_all(&bundle);
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_dir_all(sandbox.host_path(&runc_root));
}

#[test]
fn an_unknown_configuration_key_stops_the_daemon_with_the_file_and_key_named() {
    let sandbox = Sandbox::get();
    let daemon = Daemon::new("install-badconfig");
    let config = config_file(sandbox, "bad", "log_mode = \"fifo\"\n[unit]\nslcie = \"x.slice\"\n");
    let env = format!("{CONFIG_ENV}={config}");
    let ttrpc = format!("TTRPC_ADDRESS={}.ttrpc", daemon.address);
    let socket = format!("unix://{}", daemon.control_socket);
    let assert_names_the_key = |what: &str, run: &Run| {
        assert_ne!(run.code, 0, "{what} accepted a bad configuration: {run:?}");
        for mention in [config.as_str(), "line 3", "slcie"] {
            assert!(run.stderr.contains(mention), "{what}: {mention:?} not in {:?}", run.stderr);
        }
    };

    // The daemon itself, as systemd would run it.
    let run = shim(sandbox, &[&env, &ttrpc], &["-address", &daemon.address, "-socket", &socket, "daemon"]);
    assert_names_the_key("the daemon", &run);
    assert!(!sandbox.host_path(&daemon.control_socket).exists(), "it bound nothing");

    // `start` refuses before launching a daemon, so containerd shows the message.
    let (run, _) = start_shim_at(sandbox, &daemon.address, &[&env], NAMESPACE, "probe");
    assert_names_the_key("start", &run);
    assert!(!sandbox.unit_loaded(&daemon.service), "no daemon was launched");

    // `install` refuses to install a daemon that could not start.
    let (installed, run) = install(sandbox, &daemon, &[&env]);
    assert_names_the_key("install", &run);
    assert!(!unit_files(sandbox, &daemon.service).0.exists());
    drop(installed);
    let _ = std::fs::remove_file(&config);
}

#[test]
fn version_names_the_binary_commit_and_compiler() {
    let sandbox = Sandbox::get();
    for flag in ["--version", "-v", "-version"] {
        let run = shim(sandbox, &[], &[flag]).success(flag);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.first(), Some(&"containerd-shim-systemd-v1:"), "{flag}: {}", run.stdout);
        assert!(lines.iter().any(|line| line.starts_with("  Version:  0.")), "{flag}: {}", run.stdout);
        let revision = lines.iter().find_map(|line| line.strip_prefix("  Revision: ")).unwrap_or_default();
        assert!(revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()), "{flag}: {}", run.stdout);
        assert!(lines.iter().any(|line| line.starts_with("  Rust version: 1.")), "{flag}: {}", run.stdout);
    }
}

fn runc_options(binary: &str) -> Any {
    let options = RuncOptions { binary_name: binary.into(), ..Default::default() };
    Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: options.write_to_bytes().expect("encode"),
        ..Default::default()
    }
}

/// Runs `command` with `input` on its stdin, as containerd feeds the shim; returns what it did.
fn output_with_stdin(mut command: std::process::Command, input: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nsenter runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("the command finishes")
}

/// Runs `-info` with `input` on stdin, as containerd does.
fn info(sandbox: &Sandbox, input: &[u8]) -> std::process::Output {
    output_with_stdin(sandbox.command(&[&sandbox.shim, "-info"]), input)
}

#[test]
fn info_reports_the_runtime_and_runc_features() {
    let sandbox = Sandbox::get();
    let runc_features: serde_json::Value =
        serde_json::from_str(&sandbox.run(&["runc", "features"]).success("runc features").stdout).expect("json");

    let output = info(sandbox, &[]);
    assert!(output.status.success(), "{output:?}");
    let info_of = |stdout: &[u8]| RuntimeInfo::parse_from_bytes(stdout).expect("a RuntimeInfo on stdout");
    let plain = info_of(&output.stdout);
    assert_eq!(plain.name, "io.containerd.systemd.v1");
    assert!(plain.version.version.starts_with("0."), "{plain:?}");
    assert_eq!(plain.version.revision.len(), 40, "{plain:?}");
    assert!(plain.options.is_none(), "no options given");
    assert_eq!(plain.features.type_url, "types.containerd.io/opencontainers/runtime-spec/1/features/Features");
    let features: serde_json::Value = serde_json::from_slice(&plain.features.value).expect("features are JSON");
    assert_eq!(features, runc_features, "runc's own features");

    let options = runc_options("/usr/sbin/runc");
    let output = info(sandbox, &options.write_to_bytes().expect("encode"));
    assert!(output.status.success(), "{output:?}");
    let with_options = info_of(&output.stdout);
    assert_eq!(with_options.options.as_ref(), Some(&options), "the options are echoed");
    assert_eq!(with_options.features, plain.features);

    let output = info(sandbox, &runc_options("/nonexistent/runc").write_to_bytes().expect("encode"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("/nonexistent/runc"), "{output:?}");
}

/// Writes an executable shell script with `body` into a directory of its own under the test root
/// (the same path inside the sandbox); returns the directory (removed by the caller) and the
/// script's path.
fn script(sandbox: &Sandbox, name: &str, body: &str) -> (PathBuf, String) {
    let dir = sandbox.root.join("wrappers").join(unique_id(name));
    std::fs::create_dir_all(&dir).expect("script directory");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("script");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let path = path.to_str().expect("utf-8 path").to_string();
    (dir, path)
}

/// A `BinaryName` without a `features` command (an older runc, a wrapper that passes on only
/// the lifecycle commands): `-info` fails, naming the binary, the command and what it said,
/// instead of answering without features.
#[test]
fn info_fails_naming_a_binary_that_has_no_features_command() {
    let sandbox = Sandbox::get();
    let (dir, binary) = script(sandbox, "no-features", "echo \"unknown command: $1\" >&2\nexit 1\n");
    let output = info(sandbox, &runc_options(&binary).write_to_bytes().expect("encode"));
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "no RuntimeInfo: {output:?}");
    assert!(stderr.contains(&binary), "names the binary: {stderr}");
    assert!(stderr.contains("has no working `features` command"), "{stderr}");
    assert!(stderr.contains("unknown command: features"), "with the first line of its stderr: {stderr}");
}

/// `-info` reports the features of the binary the options name, not runc's: exactly the JSON
/// its `features` printed.
#[test]
fn info_reports_the_features_of_the_configured_binary() {
    let sandbox = Sandbox::get();
    let features = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": format!("1.0.2-{}", unique_id("info")),
        "hooks": ["prestart"],
    });
    let body = format!("[ \"$1\" = features ] || exit 1\necho '{features}'\n");
    let (dir, binary) = script(sandbox, "own-features", &body);
    let output = info(sandbox, &runc_options(&binary).write_to_bytes().expect("encode"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{output:?}");
    let info = RuntimeInfo::parse_from_bytes(&output.stdout).expect("a RuntimeInfo on stdout");
    assert_eq!(info.features.type_url, "types.containerd.io/opencontainers/runtime-spec/1/features/Features");
    let reported: serde_json::Value = serde_json::from_slice(&info.features.value).expect("features are JSON");
    assert_eq!(reported, features, "the configured binary's own features");
}

/// Runs our `start` for task `id` of namespace `default` as containerd 2.3 does: its flags, its
/// environment, and `params` (a serialized `BootstrapParams`) on stdin, in a bundle of its own;
/// returns what it printed and the address file it wrote.
fn start_with_bootstrap_params(
    sandbox: &Sandbox,
    id: &str,
    params: &BootstrapParams,
) -> (std::process::Output, Option<String>) {
    let bundle = sandbox.root.join("bundles").join(unique_id("bootstrap"));
    std::fs::create_dir_all(&bundle).expect("bundle");
    // containerd's environment, as tests::direct::start_shim gives it, in case this `start`
    // launches the daemon.
    let path = tests::direct::containerd_path(sandbox);
    let env = [path.as_str(), "TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc"];
    let address = tests::direct::daemon_address();
    let command = tests::direct::start_command(sandbox, &bundle, &address, &env, "default", id);
    let output = output_with_stdin(command, &params.write_to_bytes().expect("encode"));
    let address_file = std::fs::read_to_string(bundle.join("address")).ok();
    let _ = std::fs::remove_dir_all(&bundle);
    (output, address_file)
}

/// containerd 2.3's bootstrap protocol, driven by hand (no lane has a containerd 2.3, and the
/// reply does not depend on the `-publish-binary`'s version): `BootstrapParams` naming the task
/// get a protobuf `BootstrapResult` with the namespace's socket; params naming another
/// containerd than the flags do are refused.
#[test]
fn start_answers_bootstrap_params_with_a_protobuf_bootstrap_result() {
    let sandbox = Sandbox::get();
    let id = unique_id("bootstrap");
    let options = Any { type_url: "type.googleapis.com/containerd.runc.v1.Options".into(), ..Default::default() };
    let params = BootstrapParams {
        instance_id: id.clone(),
        namespace: "default".into(),
        log_level: LogLevel::LOG_LEVEL_INFO.into(),
        containerd_version: "v2.3.0".into(),
        containerd_ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
        containerd_grpc_address: tests::direct::daemon_address(),
        containerd_binary: sandbox.containerd.clone(),
        extensions: vec![Extension { value: MessageField::some(options), ..Default::default() }],
        socket_dir: Some("/run/containerd/s".into()),
        ..Default::default()
    };
    let (output, address_file) = start_with_bootstrap_params(sandbox, &id, &params);
    assert!(output.status.success(), "{output:?}");
    let result = BootstrapResult::parse_from_bytes(&output.stdout).expect("a protobuf BootstrapResult on stdout");
    assert_eq!((result.version, result.protocol.as_str()), (3, "ttrpc"), "{result:?}");
    assert!(result.address.starts_with("unix:///run/containerd/s/"), "{result:?}");
    assert_eq!(address_file.as_deref(), Some(result.address.as_str()), "the address file says the same");
    assert_eq!(result.metadata.get("runtime").map(String::as_str), Some(tests::RUNTIME), "{result:?}");
    let unit = result.metadata.get("daemon_unit").cloned().unwrap_or_default();
    assert!(unit.starts_with("containerd-shim-systemd-v1-") && unit.ends_with(".service"), "{result:?}");
    assert!(result.capabilities.is_empty(), "{result:?}");

    let elsewhere = BootstrapParams { containerd_grpc_address: "/run/elsewhere/containerd.sock".into(), ..params };
    let (output, _) = start_with_bootstrap_params(sandbox, &id, &elsewhere);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && output.stdout.is_empty(), "{output:?}");
    assert!(
        stderr.contains("containerd_grpc_address") && stderr.contains("/run/elsewhere/containerd.sock"),
        "{stderr}"
    );
}

/// containerd 2.x asks `-info` for `ctr plugins inspect-runtime`; 1.x has no such command.
#[test]
fn containerd_2_inspects_the_runtime_through_info() {
    let sandbox = Sandbox::get();
    let help = sandbox.run(&[&sandbox.ctr, "plugins", "inspect-runtime", "--help"]);
    if help.code != 0 {
        eprintln!("SKIPPED containerd_2_inspects_the_runtime_through_info: this ctr has no `plugins inspect-runtime` (containerd 1.x)");
        return;
    }
    let run = sandbox.run(&[&sandbox.ctr, "plugins", "inspect-runtime", "--runtime", &sandbox.shim]);
    let run = run.success("ctr plugins inspect-runtime");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(json["Name"], "io.containerd.systemd.v1", "{json}");
    assert!(json["Features"]["ociVersionMin"].is_string(), "{json}");
}
