//! Bad Exec requests (hostile exec ids, process specs we cannot run, an exec into a task that
//! cannot have one) and exec requests in the wrong step of an exec's lifecycle. See
//! [`crate::harness`] for what every test checks besides the code and message in its name.

use containerd_shim_protos::api::ExecProcessRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use nix::sys::signal::Signal;
use tests::unique_id;
use ttrpc::Code;

use crate::harness::{Call, TaskApi, ADDED, RUNNING};

/// An Exec of process `exec_id` (running `true`) into a running task is INVALID_ARGUMENT with
/// `message`.
async fn exec_refuses_exec_id(exec_id: &str, message: &str) {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::exec(&running, exec_id), Code::INVALID_ARGUMENT, message).await;
}

/// An Exec of process `exec_id` into a running task, with the request then changed by `edit`, is
/// INVALID_ARGUMENT with `message`.
async fn exec_refuses_request(exec_id: &str, edit: impl FnOnce(&mut ExecProcessRequest), message: &str) {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::exec_with(&running, exec_id, edit), Code::INVALID_ARGUMENT, message).await;
}

/// A process spec of containerd's type holding `value`.
fn process_spec(value: Vec<u8>) -> Any {
    Any { type_url: tests::grpc::spec::PROCESS_TYPE_URL.into(), value, ..Default::default() }
}

#[tokio::test]
async fn exec_into_a_stopped_task_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let stopped = api.stopped_task().await;
    api.refuses(Call::exec(&stopped, "e1"), Code::FAILED_PRECONDITION, "cannot exec a process").await;
}

#[tokio::test]
async fn exec_into_an_unknown_task_is_not_found_and_leaves_nothing() {
    let api = TaskApi::connect().await;
    api.refuses(Call::exec(&unique_id("bad"), "e1"), Code::NOT_FOUND, "not found").await;
}

#[tokio::test]
async fn exec_with_an_exec_id_in_use_is_already_exists_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.added_exec(&running).await;
    api.refuses(Call::exec(&running, ADDED), Code::ALREADY_EXISTS, "exec \"e-added\" already exists").await;
}

#[tokio::test]
async fn exec_with_a_slash_in_the_exec_id_is_invalid_argument_and_leaves_nothing() {
    exec_refuses_exec_id("a/b", "invalid exec id").await;
}

#[tokio::test]
async fn exec_with_exec_id_dot_dot_is_invalid_argument_and_leaves_nothing() {
    exec_refuses_exec_id("..", "invalid exec id").await;
}

#[tokio::test]
async fn exec_with_a_nul_in_the_exec_id_is_invalid_argument_and_leaves_nothing() {
    exec_refuses_exec_id("e\0x", "invalid exec id").await;
}

#[tokio::test]
async fn exec_with_an_exec_id_of_300_characters_is_invalid_argument_longer_than_76_and_leaves_nothing() {
    exec_refuses_exec_id(&"a".repeat(300), "longer than 76").await;
}

#[tokio::test]
async fn exec_with_a_unicode_exec_id_is_invalid_argument_and_leaves_nothing() {
    exec_refuses_exec_id("ëxec", "invalid exec id").await;
}

#[tokio::test]
async fn exec_with_an_empty_exec_id_is_invalid_argument_and_leaves_nothing() {
    exec_refuses_exec_id("", "exec needs an exec id").await;
}

#[tokio::test]
async fn exec_without_a_process_spec_is_invalid_argument_and_leaves_nothing() {
    exec_refuses_request("e-nospec", |request| request.spec = None.into(), "has no process spec").await;
}

#[tokio::test]
async fn exec_with_a_process_spec_that_is_not_json_is_invalid_argument_and_leaves_nothing() {
    let not_json = |request: &mut ExecProcessRequest| request.spec = Some(process_spec(b"{".to_vec())).into();
    exec_refuses_request("e-notjson", not_json, "process spec is not valid").await;
}

#[tokio::test]
async fn exec_with_a_process_spec_without_args_is_invalid_argument_and_leaves_nothing() {
    let without_args = |request: &mut ExecProcessRequest| {
        let process = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}});
        request.spec = Some(process_spec(serde_json::to_vec(&process).expect("json"))).into()
    };
    exec_refuses_request("e-noargs", without_args, "process spec has no args").await;
}

#[tokio::test]
async fn start_of_an_exec_twice_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.running_exec(&running).await;
    api.refuses(Call::start(&running, RUNNING), Code::FAILED_PRECONDITION, "exec \"e-running\"").await;
}

#[tokio::test]
async fn delete_of_a_running_exec_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.running_exec(&running).await;
    api.refuses(Call::delete(&running, RUNNING), Code::FAILED_PRECONDITION, "is running: cannot delete").await;
}

#[tokio::test]
async fn start_of_an_unknown_exec_is_not_found_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::start(&running, "e-none"), Code::NOT_FOUND, "exec \"e-none\"").await;
}

#[tokio::test]
async fn kill_of_an_exec_never_started_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.added_exec(&running).await;
    api.refuses(Call::kill(&running, ADDED, Signal::SIGKILL), Code::FAILED_PRECONDITION, "cannot kill").await;
}

#[tokio::test]
async fn resize_of_an_exec_without_a_terminal_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.running_exec(&running).await;
    api.refuses(Call::resize(&running, RUNNING), Code::FAILED_PRECONDITION, "has no terminal").await;
}

#[tokio::test]
async fn state_of_an_unknown_exec_is_not_found_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::state(&running, "e-none"), Code::NOT_FOUND, "exec \"e-none\"").await;
}

#[tokio::test]
async fn state_with_a_hostile_exec_id_is_invalid_argument_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::state(&running, "../e"), Code::INVALID_ARGUMENT, "invalid exec id").await;
}
