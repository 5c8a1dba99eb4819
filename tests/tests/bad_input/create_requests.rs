//! Bad Create requests: hostile task ids, bundles that are not there or not bundles, config.json
//! that cannot be read or is no OCI spec we run, and the rest of the request (rootfs, options,
//! terminal, stdio). Each is refused before anything exists; see [`crate::harness`] for what
//! every test checks besides the code and message in its name.

use std::path::PathBuf;

use containerd_shim_protos::api::{CreateTaskRequest, Mount};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use tests::unique_id;
use ttrpc::Code;

use crate::harness::{runc_options, runtime_options_naming, Call, TaskApi};

/// A Create of task `id` from a runnable bundle is INVALID_ARGUMENT with `message`.
async fn create_refuses_task_id(id: &str, message: &str) {
    let mut api = TaskApi::connect().await;
    let bundle = api.runnable_bundle();
    api.refuses(Call::create(id, &bundle), Code::INVALID_ARGUMENT, message).await;
}

/// A Create of a fresh task from the bundle `bundle` sets up is INVALID_ARGUMENT with `message`.
async fn create_refuses_bundle(bundle: impl FnOnce(&mut TaskApi) -> PathBuf, message: &str) {
    let mut api = TaskApi::connect().await;
    let bundle = bundle(&mut api);
    api.refuses(Call::create(&unique_id("bad"), &bundle), Code::INVALID_ARGUMENT, message).await;
}

/// A Create of a fresh task from a runnable bundle, with the request then changed by `edit`, is
/// `code` with `message`.
async fn create_refuses_request(edit: impl FnOnce(&mut CreateTaskRequest), code: Code, message: &str) {
    let mut api = TaskApi::connect().await;
    let bundle = api.runnable_bundle();
    api.refuses(Call::create_with(&unique_id("bad"), &bundle, edit), code, message).await;
}

// Task ids: containerd's identifier rule.

#[tokio::test]
async fn create_with_a_slash_in_the_task_id_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("a/b", "invalid task id").await;
}

#[tokio::test]
async fn create_with_task_id_dot_dot_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("..", "invalid task id").await;
}

#[tokio::test]
async fn create_with_task_id_dot_dot_slash_x_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("../x", "invalid task id").await;
}

#[tokio::test]
async fn create_with_a_task_id_of_300_characters_is_invalid_argument_longer_than_76_and_leaves_nothing() {
    create_refuses_task_id(&"a".repeat(300), "longer than 76").await;
}

#[tokio::test]
async fn create_with_an_empty_task_id_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("", "must not be empty").await;
}

#[tokio::test]
async fn create_with_a_nul_in_the_task_id_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("a\0b", "invalid task id").await;
}

#[tokio::test]
async fn create_with_a_unicode_task_id_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("contäiner", "may only contain letters").await;
}

#[tokio::test]
async fn create_with_a_newline_and_unit_syntax_in_the_task_id_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("a\n[Service]\nExecStartPost=x", "invalid task id").await;
}

#[tokio::test]
async fn create_with_a_systemd_specifier_in_the_task_id_is_invalid_argument_and_leaves_nothing() {
    create_refuses_task_id("a%n", "invalid task id").await;
}

// The bundle.

#[tokio::test]
async fn create_with_a_missing_bundle_is_invalid_argument_and_leaves_nothing() {
    create_refuses_bundle(|_| "/nonexistent/bundle".into(), "does not exist").await;
}

#[tokio::test]
async fn create_with_a_relative_bundle_path_is_invalid_argument_and_leaves_nothing() {
    create_refuses_bundle(|_| "relative/bundle".into(), "not absolute").await;
}

#[tokio::test]
async fn create_with_an_empty_bundle_path_is_invalid_argument_and_leaves_nothing() {
    create_refuses_bundle(|_| "".into(), "no bundle").await;
}

#[tokio::test]
async fn create_with_a_file_as_the_bundle_is_invalid_argument_and_leaves_nothing() {
    let bundle = |api: &mut TaskApi| {
        let file = api.scratch_dir().join("bundle-is-a-file");
        std::fs::write(&file, "").expect("a file where the bundle should be");
        file
    };
    create_refuses_bundle(bundle, "is not a directory").await;
}

#[tokio::test]
async fn create_without_config_json_is_invalid_argument_and_leaves_nothing() {
    create_refuses_bundle(|api| api.bundle("no-config", None), "config.json is missing").await;
}

// "Unreadable" as root, who ignores permission bits: config.json is a directory, a symlink loop,
// or a fifo nobody writes (a plain read would wait for a writer forever).

#[tokio::test]
async fn create_with_config_json_a_directory_is_invalid_argument_and_leaves_nothing() {
    let bundle = |api: &mut TaskApi| {
        let bundle = api.bundle("config-dir", None);
        std::fs::create_dir(bundle.join("config.json")).expect("config.json as a directory");
        bundle
    };
    create_refuses_bundle(bundle, "config.json").await;
}

#[tokio::test]
async fn create_with_config_json_a_symlink_loop_is_invalid_argument_and_leaves_nothing() {
    let bundle = |api: &mut TaskApi| {
        let bundle = api.bundle("config-loop", None);
        std::os::unix::fs::symlink("config.json", bundle.join("config.json")).expect("symlink loop");
        bundle
    };
    create_refuses_bundle(bundle, "symbolic links").await;
}

#[tokio::test]
async fn create_with_config_json_a_fifo_nobody_writes_is_invalid_argument_and_leaves_nothing() {
    let bundle = |api: &mut TaskApi| {
        let bundle = api.bundle("config-fifo", None);
        api.fifo(&bundle.join("config.json"));
        bundle
    };
    create_refuses_bundle(bundle, "not a regular file").await;
}

// The spec.

#[tokio::test]
async fn create_with_config_json_not_json_is_invalid_argument_and_leaves_nothing() {
    create_refuses_bundle(|api| api.bundle("not-json", Some("this is not json")), "not a valid OCI runtime spec").await;
}

#[tokio::test]
async fn create_with_config_json_a_json_array_is_invalid_argument_and_leaves_nothing() {
    create_refuses_bundle(|api| api.bundle("json-array", Some("[]")), "not a valid OCI runtime spec").await;
}

#[tokio::test]
async fn create_with_a_spec_without_process_is_invalid_argument_and_leaves_nothing() {
    let config = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#;
    create_refuses_bundle(|api| api.bundle("no-process", Some(config)), "no process").await;
}

#[tokio::test]
async fn create_with_oci_version_0_0_1_is_invalid_argument_and_leaves_nothing() {
    let bundle = |api: &mut TaskApi| api.edited_bundle("oci-0.0.1", |spec| spec["ociVersion"] = "0.0.1".into());
    create_refuses_bundle(bundle, "unsupported ociVersion \"0.0.1\"").await;
}

#[tokio::test]
async fn create_with_an_oci_version_not_semver_is_invalid_argument_and_leaves_nothing() {
    let bundle = |api: &mut TaskApi| api.edited_bundle("oci-latest", |spec| spec["ociVersion"] = "latest".into());
    create_refuses_bundle(bundle, "unsupported ociVersion \"latest\"").await;
}

#[tokio::test]
async fn create_without_oci_version_is_invalid_argument_and_leaves_nothing() {
    let bundle = |api: &mut TaskApi| {
        api.edited_bundle("oci-none", |spec| {
            spec.as_object_mut().expect("object").remove("ociVersion");
        })
    };
    create_refuses_bundle(bundle, "unsupported ociVersion \"\"").await;
}

// The rest of the request.

#[tokio::test]
async fn create_with_a_rootfs_mount_of_an_unknown_type_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| {
            request.rootfs = vec![Mount { type_: "nosuchfs".into(), source: "none".into(), ..Default::default() }]
        },
        Code::INVALID_ARGUMENT,
        "mounting the rootfs: mounting nosuchfs none",
    )
    .await;
}

#[tokio::test]
async fn create_with_a_rootfs_bind_mount_of_a_missing_source_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| {
            request.rootfs = vec![Mount {
                type_: "bind".into(),
                source: "/nonexistent/lower".into(),
                options: vec!["rbind".into(), "ro".into()],
                ..Default::default()
            }]
        },
        Code::INVALID_ARGUMENT,
        "mounting the rootfs: mounting bind /nonexistent/lower",
    )
    .await;
}

#[tokio::test]
async fn create_with_options_of_an_unknown_type_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| {
            request.options =
                Some(Any { type_url: "type.googleapis.com/example.Unknown".into(), ..Default::default() }).into()
        },
        Code::INVALID_ARGUMENT,
        "example.Unknown",
    )
    .await;
}

#[tokio::test]
async fn create_with_undecodable_runc_options_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| {
            request.options = Some(Any {
                type_url: "containerd.runc.v1.Options".into(),
                value: vec![0xff, 0xff, 0xff],
                ..Default::default()
            })
            .into()
        },
        Code::INVALID_ARGUMENT,
        "undecodable containerd.runc.v1.Options",
    )
    .await;
}

#[tokio::test]
async fn create_with_a_runtime_options_file_that_is_a_fifo_nobody_writes_is_invalid_argument_and_leaves_nothing() {
    let mut api = TaskApi::connect().await;
    let bundle = api.runnable_bundle();
    let options = api.scratch_dir().join("options.toml");
    api.fifo(&options);
    let call = Call::create_with(&unique_id("bad"), &bundle, |request| {
        request.options = Some(runtime_options_naming(&options)).into()
    });
    api.refuses(call, Code::INVALID_ARGUMENT, "not a regular file").await;
}

#[tokio::test]
async fn create_with_a_runc_missing_from_path_is_failed_precondition_and_leaves_nothing() {
    create_refuses_request(
        |request| request.options = Some(runc_options("no-such-runc")).into(),
        Code::FAILED_PRECONDITION,
        "no-such-runc",
    )
    .await;
}

#[tokio::test]
async fn create_asking_for_a_terminal_the_spec_does_not_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| request.terminal = true,
        Code::INVALID_ARGUMENT,
        "process.terminal is false but the request asks for true",
    )
    .await;
}

#[tokio::test]
async fn create_with_a_binary_stdout_naming_no_absolute_path_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| request.stdout = "binary://usr/bin/logger".into(),
        Code::INVALID_ARGUMENT,
        "not absolute",
    )
    .await;
}

#[tokio::test]
async fn create_with_a_stdout_of_an_unknown_uri_scheme_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| request.stdout = "http://example.com/log".into(),
        Code::INVALID_ARGUMENT,
        "unknown URI scheme \"http\"",
    )
    .await;
}

#[tokio::test]
async fn create_with_a_relative_stdin_path_is_invalid_argument_and_leaves_nothing() {
    create_refuses_request(
        |request| request.stdin = "fifo/stdin".into(),
        Code::INVALID_ARGUMENT,
        "stdin path \"fifo/stdin\" is not absolute",
    )
    .await;
}

#[tokio::test]
async fn create_of_a_task_id_that_exists_is_already_exists_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    let bundle = api.runnable_bundle();
    api.refuses(Call::create(&running, &bundle), Code::ALREADY_EXISTS, "already exists").await;
}
