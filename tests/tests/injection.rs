//! Values from the user cannot become unit properties or commands. Ids are validated (see
//! `bad_input`), but a spec's args and env, the bundle path and containerd's addresses reach
//! systemd or the container as they are. Each test plants payloads that would run `touch` if
//! anything on the way interpreted them — a shell, systemd's `$VAR` expansion or `%` specifiers,
//! or a newline that starts a new line in the transient unit file systemd writes — and checks
//! that the container sees the bytes it was given, the units have only our properties, and
//! nothing was touched.

use std::path::Path;
use std::time::Duration;

use containerd_shim_protos::api::{CreateTaskRequest, ExecProcessRequest, StartRequest};
use containerd_shim_protos::shim_async::TaskClient;
use nix::sys::signal::Signal;
use tests::calls;
use tests::direct::{client, context, runnable_bundle};
use tests::{assert_nothing_left, exec_unit_of, unique_id, unit_of, wait_until, Sandbox};

/// A hostile value for each way of getting a command run: `marker` names the file it would create.
fn payloads(marker: &str) -> Vec<String> {
    let touch = format!("/bin/touch /tmp/{marker}");
    vec![
        format!("line one\nline two\n[Service]\nExecStartPost={touch}\n"),
        format!("a; {touch}"),
        format!("$({touch})"),
        format!("`{touch}`"),
        format!("${{HOME}} $PATH $$ ${{{marker}:-x}}"),
        "%n %i %u %h %% %".to_string(),
        "back\\slash \\n \\x2d \\".to_string(),
        "quotes ' \" '\"' \"'\"".to_string(),
        format!("\r\n[Unit]\r\nDescription=%n\r\nExecStartPre={touch}"),
        "tab\tand unicode ü ✓".to_string(),
        "-leading-dash".to_string(),
        String::new(),
        "=".to_string(),
    ]
}

/// A shell script that prints its arguments, then `$INJECT_0`…, each ending in NUL, then `END`,
/// then, if `keep_running`, keeps running (so its unit can be inspected). The payloads are never
/// part of the script.
fn echo_script(payload_count: usize, keep_running: bool) -> String {
    let variables: Vec<String> = (0..payload_count).map(|index| format!("\"$INJECT_{index}\"")).collect();
    let then = if keep_running { "; exec sleep 1000" } else { "" };
    format!("printf '%s\\0' \"$@\"; printf 'ENV\\0'; printf '%s\\0' {}; printf 'END\\0'{then}", variables.join(" "))
}

/// What [`echo_script`] prints for `payloads` given as both arguments and environment.
fn expected_output(payloads: &[String]) -> Vec<u8> {
    expected_output_with_env(payloads, payloads)
}

fn expected_output_with_env(payloads: &[String], env_payloads: &[String]) -> Vec<u8> {
    let mut expected = Vec::new();
    for payload in payloads.iter().chain(std::iter::once(&"ENV".to_string())).chain(env_payloads) {
        expected.extend_from_slice(payload.as_bytes());
        expected.push(0);
    }
    expected.extend_from_slice(b"END\0");
    expected
}

fn argv_and_env(payloads: &[String]) -> (Vec<String>, Vec<String>) {
    let mut args = vec!["sh".to_string(), "-c".to_string(), echo_script(payloads.len(), true), "sh".to_string()];
    args.extend(payloads.iter().cloned());
    let mut env = vec![tests::grpc::spec::DEFAULT_PATH.to_string()];
    env.extend(payloads.iter().enumerate().map(|(index, payload)| format!("INJECT_{index}={payload}")));
    (args, env)
}

/// A bundle directory whose path itself is a payload: joined, its components read
/// `…/x\n[Service]\nExecStartPost=/bin/touch /tmp/MARKER %n %i $HOME `, so a file inside it,
/// `…/init.pid`, makes a valid `ExecStartPost=` line if the path ever starts a line of its own.
fn newline_bundle_name(base: &str, marker: &str) -> String {
    format!("{base}/x\n[Service]\nExecStartPost=/bin/touch /tmp/{marker} %n %i $HOME ")
}

/// A bundle path with everything but control characters a shell, `$VAR` expansion or systemd's
/// specifiers would act on: `…/y %n %i $HOME $(touch) ;'"\ [Service] ExecStartPost=/bin/touch …`.
fn single_line_bundle_name(base: &str, marker: &str) -> String {
    format!("{base}/y %n %i $HOME $(touch /tmp/{marker}) ;'\"\\ [Service] ExecStartPost=/bin/touch /tmp/{marker} ")
}

/// Waits until `path` holds `expected` (or stops growing toward it) and returns what it holds.
fn wait_for_output(path: &Path, expected: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(30), || {
        seen = std::fs::read(path).unwrap_or_default();
        seen.ends_with(b"END\0") || seen.len() >= expected.len()
    });
    seen
}

/// Shows the first difference of two byte strings, for a readable failure.
fn assert_same_bytes(what: &str, seen: &[u8], expected: &[u8]) {
    if seen != expected {
        let at = seen.iter().zip(expected).take_while(|(a, b)| a == b).count();
        panic!(
            "{what}: the container saw other bytes than it was given, from byte {at}:\n seen     {:?}\n expected {:?}",
            String::from_utf8_lossy(&seen[at.min(seen.len())..]),
            String::from_utf8_lossy(&expected[at.min(expected.len())..])
        );
    }
}

/// The unit has only the commands we gave it, and systemd's own file for it (what a
/// `daemon-reload` would parse) has no line a payload started.
fn assert_no_injected_properties(sandbox: &Sandbox, unit: &str, marker: &str) {
    for property in ["ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop", "ExecCondition", "Environment"] {
        let value = sandbox.unit_property(unit, property);
        assert_eq!(value, "", "{unit}: {property} was set: {value:?}");
    }
    let description = sandbox.unit_property(unit, "Description");
    assert!(description.starts_with("containerd ") && !description.contains(marker), "{unit}: {description:?}");
    let transient = sandbox.host_path(format!("/run/systemd/transient/{unit}"));
    let file = std::fs::read_to_string(&transient).unwrap_or_else(|error| panic!("{}: {error}", transient.display()));
    for line in file.lines() {
        let key = line.split('=').next().unwrap_or_default();
        assert!(
            !matches!(key, "ExecStartPre" | "ExecStartPost" | "ExecStop" | "ExecCondition" | "Environment"),
            "{unit}: an injected line in {}: {line:?}\n{file}",
            transient.display()
        );
        if line.contains(marker) {
            // Only our own settings carry the bundle path, on one line each.
            assert!(
                ["ExecStart=", "ExecStartEx=", "ExecStopPost=", "ExecStopPostEx=", "PIDFile="]
                    .iter()
                    .any(|setting| line.starts_with(setting)),
                "{unit}: the hostile path started a line of its own in {}: {line:?}\n{file}",
                transient.display()
            );
        }
    }
}

/// The argv of `unit`'s `ExecStart` as `systemctl show` prints it (arguments space-separated).
fn exec_start_argv(sandbox: &Sandbox, unit: &str) -> String {
    let exec_start = sandbox.unit_property(unit, "ExecStart");
    exec_start
        .split(" ; ")
        .find_map(|field| field.strip_prefix("argv[]="))
        .unwrap_or_else(|| panic!("{unit}: no argv in ExecStart {exec_start:?}"))
        .to_string()
}

/// `ExecStart` runs our helper with one argument besides its subcommand: the request path.
fn assert_exec_start_is_our_helper(sandbox: &Sandbox, unit: &str, subcommand: &str, request: &Path) {
    let argv = exec_start_argv(sandbox, unit);
    // The daemon names its own binary, the one `start` launched it from.
    let expected = format!("{} helper {subcommand} {}", sandbox.shim, request.display());
    // systemd keeps `no-env-expand` commands as `$`-escaped argv (`$` shown as `$$`), which its
    // expansion at exec time turns back into what we gave it.
    assert_eq!(argv.replace("$$", "$"), expected, "{unit}: ExecStart");
}

/// [`assert_exec_start_is_our_helper`] after `systemctl daemon-reload`. systemd 254 and later
/// read our commands back exactly as we gave them. 252 and 253 read a plain command back with a
/// backslash before each `$` and `;` of its arguments (their own quoting, which neither command
/// form avoids there; nothing runs the command again, but `systemctl show` says so).
fn assert_exec_start_is_our_helper_after_a_reload(sandbox: &Sandbox, unit: &str, subcommand: &str, request: &Path) {
    let version = sandbox.run(&["systemctl", "--version"]).stdout;
    let version: u32 = version.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("systemd's version");
    if version >= 254 {
        return assert_exec_start_is_our_helper(sandbox, unit, subcommand, request);
    }
    let argv = exec_start_argv(sandbox, unit);
    let expected = format!("{} helper {subcommand} {}", sandbox.shim, request.display());
    let unquoted = argv.replace("\\$", "$").replace("\\;", ";").replace("$$", "$");
    assert_eq!(unquoted, expected, "{unit}: ExecStart after a reload of systemd {version}");
}

/// No payload ran: neither in the sandbox's /tmp nor in the container's.
fn assert_nothing_touched(sandbox: &Sandbox, marker: &str) {
    for tmp in [sandbox.host_path("/tmp"), sandbox.root.join("busybox-rootfs/tmp")] {
        let touched = tmp.join(marker);
        assert!(!touched.exists(), "a payload ran: {} exists", touched.display());
    }
}

fn exec_of(id: &str, exec_id: &str, args: &[String], env: &[String], stdout: &str) -> ExecProcessRequest {
    let mut process = tests::grpc::spec::process(&[], &[]);
    process["args"] = args.iter().map(|arg| serde_json::Value::from(arg.as_str())).collect();
    process["env"] = env.iter().map(|variable| serde_json::Value::from(variable.as_str())).collect();
    ExecProcessRequest { stdout: stdout.into(), ..tests::calls::exec_request(id, exec_id, &process) }
}

async fn remove(client: &TaskClient, id: &str) {
    let _ = calls::kill(client, id, Signal::SIGKILL as u32).await;
    let _ = calls::wait(client, id).await;
    let _ = calls::delete(client, id).await;
}

#[tokio::test]
async fn a_bundle_path_with_a_newline_is_refused_before_it_reaches_a_unit_file() {
    const NAMESPACE: &str = "inject-direct";
    let sandbox = Sandbox::get();
    let client = client(sandbox, NAMESPACE).await;
    let id = unique_id("inject-newline");
    let marker = unique_id("pwned");
    let base = unique_id("inject");
    let bundle = runnable_bundle(sandbox, &newline_bundle_name(&base, &marker), &["true"]);
    let request = CreateTaskRequest { id: id.clone(), bundle: bundle.display().to_string(), ..Default::default() };
    let created = client.create(context(), &request).await;
    // The path would reach the unit's PIDFile=, which systemd writes into the unit's file as it
    // is: had the task been created, its unit file would have gained a line of the payload's.
    let injected = match &created {
        Ok(_) => {
            let injected =
                std::panic::catch_unwind(|| assert_no_injected_properties(sandbox, &unit_of(NAMESPACE, &id), &marker));
            remove(&client, &id).await;
            injected.err().map(|_| "and its unit file gained a line of the payload's")
        }
        Err(_) => None,
    };
    let ours: Vec<_> = std::fs::read_dir(&bundle)
        .expect("bundle")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("shim-") || name == "init.pid")
        .collect();
    std::fs::remove_dir_all(sandbox.root.join("bundles").join(&base)).expect("remove the bundle");
    assert_nothing_left(sandbox, NAMESPACE, &id);
    assert_nothing_touched(sandbox, &marker);
    match created {
        Err(ttrpc::Error::RpcStatus(status)) => {
            assert_eq!(status.code(), ttrpc::Code::INVALID_ARGUMENT, "{status:?}");
            let message = status.message();
            assert!(message.contains("PIDFile path") && message.contains("control character"), "{message}");
        }
        other => panic!("a bundle path with a newline must be refused, got {other:?} {}", injected.unwrap_or_default()),
    }
    assert!(ours.is_empty(), "files left in the refused bundle: {ours:?}");
}

#[tokio::test]
async fn hostile_args_env_and_bundle_path_reach_the_container_as_given_and_inject_nothing() {
    const NAMESPACE: &str = "inject-direct";
    let sandbox = Sandbox::get();
    let client = client(sandbox, NAMESPACE).await;
    let id = unique_id("inject");
    let marker = unique_id("pwned");
    let payloads = payloads(&marker);
    let (args, env) = argv_and_env(&payloads);

    let base = unique_id("inject");
    let base_dir = sandbox.root.join("bundles").join(&base);

    let bundle = runnable_bundle(sandbox, &single_line_bundle_name(&base, &marker), &["true"]);
    let config = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).expect("spec")).expect("json");
    spec["process"]["args"] = args.iter().map(|arg| serde_json::Value::from(arg.as_str())).collect();
    spec["process"]["env"] = env.iter().map(|variable| serde_json::Value::from(variable.as_str())).collect();
    std::fs::write(&config, serde_json::to_vec(&spec).expect("json")).expect("write spec");
    let init_out = base_dir.join("init.out");
    let exec_out = base_dir.join("exec.out");

    let request = CreateTaskRequest {
        id: id.clone(),
        bundle: bundle.display().to_string(),
        stdout: format!("file://{}", init_out.display()),
        ..Default::default()
    };
    // The checks run in a task of their own so that cleanup runs even when one fails.
    let checks = tokio::spawn({
        let (client, id, marker, bundle) = (client.clone(), id.clone(), marker.clone(), bundle.clone());
        async move {
            client.create(context(), &request).await.expect("create with a hostile bundle path, args and env");
            calls::start(&client, &id).await.expect("start");
            let expected = expected_output(&payloads);
            assert_same_bytes("init", &wait_for_output(&init_out, &expected), &expected);
            let unit = unit_of(NAMESPACE, &id);
            assert_exec_start_is_our_helper(sandbox, &unit, "create", &bundle.join("shim-create.json"));
            assert_no_injected_properties(sandbox, &unit, &marker);
            // systemd parses the transient unit file it wrote back in: the `$`, `%`, `\` and
            // quotes of the path must survive that unchanged (not doubled, not bad-setting),
            // whatever the systemd version's way of writing it.
            sandbox.run(&["systemctl", "daemon-reload"]).success("systemctl daemon-reload");
            assert_eq!(sandbox.unit_property(&unit, "LoadState"), "loaded", "{unit} after daemon-reload");
            assert_exec_start_is_our_helper_after_a_reload(sandbox, &unit, "create", &bundle.join("shim-create.json"));
            assert_no_injected_properties(sandbox, &unit, &marker);

            let exec = exec_of(&id, "e1", &args, &env, &format!("file://{}", exec_out.display()));
            client.exec(context(), &exec).await.expect("exec with hostile args and env");
            let start = StartRequest { id: id.clone(), exec_id: "e1".into(), ..Default::default() };
            client.start(context(), &start).await.expect("start exec");
            assert_same_bytes("exec", &wait_for_output(&exec_out, &expected), &expected);
            let exec_unit = exec_unit_of(NAMESPACE, &id, "e1");
            assert_exec_start_is_our_helper(sandbox, &exec_unit, "exec", &bundle.join("shim-exec/e1/request.json"));
            assert_no_injected_properties(sandbox, &exec_unit, &marker);
            assert_nothing_touched(sandbox, &marker);
        }
    });
    let outcome = checks.await;
    remove(&client, &id).await;
    assert_nothing_left(sandbox, NAMESPACE, &id);
    assert_nothing_touched(sandbox, &marker);
    std::fs::remove_dir_all(&base_dir).expect("remove the bundle");
    if let Err(failed) = outcome {
        std::panic::resume_unwind(failed.into_panic());
    }
}

/// The daemon's unit for the containerd at `address` (as `paths::DaemonIdentity` names it).
fn daemon_unit_of(address: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\0{address}", tests::RUNTIME).as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("containerd-shim-systemd-v1-{}.service", &hex[..16])
}

#[test]
fn hostile_containerd_addresses_cannot_inject_into_the_daemon_unit() {
    let sandbox = Sandbox::get();
    let marker = unique_id("pwned");
    // containerd's address names the daemon and appears in its Description and argv; the ttrpc
    // address goes to its Environment.
    let address =
        format!("/run/containerd/{}\n[Service]\nExecStartPost=/bin/touch /tmp/{marker} %n $HOME ", unique_id("inject"));
    let ttrpc_address =
        format!("/run/containerd/containerd.sock.ttrpc\n[Service]\nExecStartPre=/bin/touch /tmp/{marker}");
    let unit = daemon_unit_of(&address);
    let bundle = sandbox.root.join("bundles").join(unique_id("inject-start"));
    std::fs::create_dir_all(&bundle).expect("bundle");
    let mut command = sandbox.command_in(
        &bundle,
        &[
            "env",
            &format!("TTRPC_ADDRESS={ttrpc_address}"),
            &sandbox.shim,
            "-namespace",
            "inject-daemon",
            "-id",
            "probe",
            "-address",
            &address,
            "-publish-binary",
            &sandbox.containerd,
            "start",
        ],
    );
    let started = command.output().expect("nsenter runs");

    let checks = std::panic::catch_unwind(|| {
        assert!(started.status.success(), "start: {started:?}");
        assert_eq!(
            sandbox.unit_property(&unit, "Description"),
            format!("containerd-shim-systemd-v1 daemon for containerd at {}", address.replace('\n', "\\n")).trim_end(),
            "the Description is the address on one line, no specifier expanded"
        );
        let environment = sandbox.unit_property(&unit, "Environment");
        // One entry for the ttrpc address, its newlines escaped, and PATH: nothing else.
        let escaped = format!("\"TTRPC_ADDRESS={}\" PATH=", ttrpc_address.replace('\n', "\\n"));
        assert!(environment.starts_with(&escaped), "{environment:?}");
        // `TTRPC_ADDRESS=`, the payload's `ExecStartPre=` inside its value, `PATH=`.
        assert_eq!(environment.matches('=').count(), 3, "{environment:?}");
        for property in ["ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop", "ExecCondition"] {
            let value = sandbox.unit_property(&unit, property);
            assert_eq!(value, "", "{unit}: {property} was set: {value:?}");
        }
        let transient = sandbox.host_path(format!("/run/systemd/transient/{unit}"));
        let file = std::fs::read_to_string(&transient).expect("the daemon's transient unit file");
        for line in file.lines() {
            let key = line.split('=').next().unwrap_or_default();
            assert!(
                !matches!(key, "ExecStartPre" | "ExecStartPost" | "ExecStop" | "ExecCondition"),
                "{unit}: an injected line in {}: {line:?}\n{file}",
                transient.display()
            );
            if line.contains(&marker) {
                assert!(
                    ["Description=", "Environment=", "ExecStart=", "ExecStartEx="]
                        .iter()
                        .any(|setting| line.starts_with(setting)),
                    "{unit}: a hostile address started a line of its own in {}: {line:?}\n{file}",
                    transient.display()
                );
            }
        }
        assert_nothing_touched(sandbox, &marker);
    });
    sandbox.run(&["systemctl", "stop", &unit]);
    sandbox.run(&["systemctl", "reset-failed", &unit]);
    if started.status.success() {
        let served = tests::direct::parse_start_output(&String::from_utf8_lossy(&started.stdout));
        let _ = std::fs::remove_file(sandbox.host_path(served.trim_start_matches("unix://")));
    }
    let _ = std::fs::remove_dir_all(&bundle);
    assert!(!sandbox.unit_loaded(&unit), "{unit} is still loaded");
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn hostile_args_and_env_through_ctr_run_reach_the_container_as_given() {
    let sandbox = Sandbox::get();
    let namespace = "inject-ctr";
    sandbox.ensure_image(namespace);
    let id = unique_id("inject-ctr");
    let marker = unique_id("pwned");
    let payloads = payloads(&marker);
    // ctr 2.x drops a trailing newline from `--env` values (the client, before any request
    // reaches containerd); the API test passes such values whole.
    let env_payloads: Vec<String> = payloads.iter().map(|payload| payload.trim_end_matches('\n').to_string()).collect();
    let environment: Vec<String> =
        env_payloads.iter().enumerate().map(|(index, payload)| format!("INJECT_{index}={payload}")).collect();
    let script = echo_script(payloads.len(), false);
    let mut args = vec!["run", "--rm", "--runtime", tests::RUNTIME];
    for variable in &environment {
        args.extend(["--env", variable.as_str()]);
    }
    args.extend([tests::IMAGE, id.as_str(), "sh", "-c", script.as_str(), "sh"]);
    args.extend(payloads.iter().map(String::as_str));
    let run = sandbox.ctr(namespace, &args);
    assert_eq!(run.code, 0, "{run:?}");
    assert_same_bytes("ctr run", run.stdout.as_bytes(), &expected_output_with_env(&payloads, &env_payloads));
    assert_nothing_touched(sandbox, &marker);
    assert_nothing_left(sandbox, namespace, &id);
}
