//! Bad input gets a clear error naming what was wrong, the daemon keeps serving, and nothing is
//! left behind. Three layers: through `ctr` (containerd validates first), through our `start`
//! subcommand, and straight at the daemon's task API, the way containerd itself talks to it.

use containerd_shim_protos::api::{CreateTaskRequest, StateRequest};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use tests::calls::{self, code_of};
use tests::direct::{bundle_with, client, context, runnable_bundle, start_shim};
use tests::{assert_nothing_left, unique_id, unit_of, Sandbox};
use ttrpc::Code;

/// The daemon still answers: a State for an unknown task is NOT_FOUND, not a dead connection.
async fn assert_still_serving(client: &containerd_shim_protos::shim_async::TaskClient) {
    let request = StateRequest { id: "no-such-task".into(), ..Default::default() };
    match client.state(context(), &request).await {
        Err(ttrpc::Error::RpcStatus(status)) => assert_eq!(status.code(), Code::NOT_FOUND, "{status:?}"),
        other => panic!("expected NOT_FOUND from a live daemon, got {other:?}"),
    }
}

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

#[test]
fn missing_runc_is_a_clear_error_through_ctr_and_leaves_nothing() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("no-runc");
    // ctr passes runtime options for runtimes other than runc as CRI's runtimeoptions.v1.Options,
    // naming a TOML file with runc's options.
    let config = sandbox.root.join(format!("{id}.toml"));
    std::fs::write(&config, "BinaryName = \"no-such-runc\"\n").expect("write runtime options");
    let config_path = config.to_str().expect("utf-8");
    let args =
        ["run", "--rm", "--runtime-config-path", config_path, "--runtime", tests::RUNTIME, tests::IMAGE, &id, "true"];
    let run = sandbox.ctr("default", &args);
    std::fs::remove_file(&config).expect("remove runtime options");
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("no-such-runc") && run.stderr.contains("not found"), "{run:?}");
    sandbox.ctr("default", &["container", "rm", &id]);
    assert_nothing_left(sandbox, "default", &id);
    let good = unique_id("after-no-runc");
    assert_eq!(sandbox.ctr_run("default", &good, &["true"]).code, 0);
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

struct Case {
    name: &'static str,
    request: CreateTaskRequest,
    code: Code,
    message: &'static str,
}

fn create(id: &str, bundle: &std::path::Path) -> CreateTaskRequest {
    CreateTaskRequest { id: id.into(), bundle: bundle.display().to_string(), ..Default::default() }
}

fn runc_options(binary: &str) -> Any {
    let options = RuncOptions { binary_name: binary.into(), ..Default::default() };
    Any {
        type_url: "type.googleapis.com/containerd.runc.v1.Options".into(),
        value: options.write_to_bytes().expect("encode"),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_create_requests_get_clear_errors_with_the_right_codes() {
    let sandbox = Sandbox::get();
    let namespace = "shimtest-direct";
    let client = client(sandbox, namespace).await;
    let good = runnable_bundle(sandbox, &unique_id("good"), &["true"]);
    let not_json = bundle_with(sandbox, &unique_id("not-json"), Some("this is not json"));
    let no_config = bundle_with(sandbox, &unique_id("no-config"), None);
    let no_process =
        bundle_with(sandbox, &unique_id("no-process"), Some(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#));

    let mut cases = vec![
        Case {
            name: "id with slash",
            request: create("a/b", &good),
            code: Code::INVALID_ARGUMENT,
            message: "invalid task id",
        },
        Case {
            name: "id dot dot",
            request: create("..", &good),
            code: Code::INVALID_ARGUMENT,
            message: "invalid task id",
        },
        Case {
            name: "id of 300 chars",
            request: create(&"a".repeat(300), &good),
            code: Code::INVALID_ARGUMENT,
            message: "longer than 76",
        },
        Case {
            name: "empty id",
            request: create("", &good),
            code: Code::INVALID_ARGUMENT,
            message: "must not be empty",
        },
        Case {
            name: "id with NUL",
            request: create("a\0b", &good),
            code: Code::INVALID_ARGUMENT,
            message: "invalid task id",
        },
        Case {
            name: "missing bundle",
            request: create(&unique_id("nb"), std::path::Path::new("/nonexistent/bundle")),
            code: Code::INVALID_ARGUMENT,
            message: "does not exist",
        },
        Case {
            name: "relative bundle",
            request: create(&unique_id("rb"), std::path::Path::new("relative/bundle")),
            code: Code::INVALID_ARGUMENT,
            message: "not absolute",
        },
        Case {
            name: "config.json not JSON",
            request: create(&unique_id("nj"), &not_json),
            code: Code::INVALID_ARGUMENT,
            message: "not a valid OCI runtime spec",
        },
        Case {
            name: "config.json missing",
            request: create(&unique_id("nc"), &no_config),
            code: Code::INVALID_ARGUMENT,
            message: "config.json is missing",
        },
        Case {
            name: "spec without process",
            request: create(&unique_id("np"), &no_process),
            code: Code::INVALID_ARGUMENT,
            message: "no process",
        },
    ];
    let mut no_runc = create(&unique_id("no-runc"), &good);
    no_runc.options = Some(runc_options("no-such-runc")).into();
    cases.push(Case {
        name: "runc missing from PATH",
        request: no_runc,
        code: Code::FAILED_PRECONDITION,
        message: "no-such-runc",
    });
    let mut unknown_options = create(&unique_id("unknown-options"), &good);
    unknown_options.options =
        Some(Any { type_url: "type.googleapis.com/example.Unknown".into(), ..Default::default() }).into();
    cases.push(Case {
        name: "unknown options type",
        request: unknown_options,
        code: Code::INVALID_ARGUMENT,
        message: "example.Unknown",
    });
    let mut terminal = create(&unique_id("tty"), &good);
    terminal.terminal = true;
    cases.push(Case {
        name: "terminal the spec does not ask for",
        request: terminal,
        code: Code::INVALID_ARGUMENT,
        message: "process.terminal is false but the request asks for true",
    });
    let mut binary_log = create(&unique_id("binlog"), &good);
    binary_log.stdout = "binary:///usr/bin/logger".into();
    cases.push(Case { name: "binary:// stdout", request: binary_log, code: Code::UNIMPLEMENTED, message: "binary://" });

    for case in cases {
        let id = case.request.id.clone();
        match client.create(context(), &case.request).await {
            Err(ttrpc::Error::RpcStatus(status)) => {
                assert_eq!(status.code(), case.code, "case {:?}: {status:?}", case.name);
                assert!(
                    status.message().contains(case.message),
                    "case {:?}: message {:?}",
                    case.name,
                    status.message()
                );
            }
            other => panic!("case {:?}: expected an error, got {other:?}", case.name),
        }
        assert_still_serving(&client).await;
        if unit_gen::validate_identifier(unit_gen::IdentifierKind::TaskId, &id).is_ok() {
            assert!(!sandbox.unit_loaded(&unit_of(namespace, &id)), "case {:?}: a unit was left", case.name);
        }
    }
    for bundle in [&good, &not_json, &no_config, &no_process] {
        let leftovers: Vec<_> = std::fs::read_dir(bundle)
            .expect("bundle")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("shim-") || name == "init.pid" || name == "exit-state.json")
            .collect();
        assert!(leftovers.is_empty(), "our files left in {}: {leftovers:?}", bundle.display());
        let _ = std::fs::remove_dir_all(bundle);
    }
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
