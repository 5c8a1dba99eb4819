//! Task requests in the wrong step of a task's lifecycle, or naming no task there is: refused
//! with containerd's code, and the task stays as it was. See [`crate::harness`] for what every
//! test checks besides the code and message in its name.

use nix::sys::signal::Signal;
use tests::unique_id;
use ttrpc::Code;

use crate::harness::{Call, TaskApi};

/// `call` (made from the test's namespace's unknown task id `bad-…`) is NOT_FOUND.
async fn refused_for_an_unknown_task(call: impl FnOnce(&str) -> Call) {
    let api = TaskApi::connect().await;
    api.refuses(call(&unique_id("bad")), Code::NOT_FOUND, "not found").await;
}

#[tokio::test]
async fn start_with_a_unicode_task_id_is_invalid_argument_and_leaves_nothing() {
    let api = TaskApi::connect().await;
    api.refuses(Call::start("ü", ""), Code::INVALID_ARGUMENT, "may only contain letters").await;
}

#[tokio::test]
async fn start_before_create_is_not_found_and_leaves_nothing() {
    refused_for_an_unknown_task(|id| Call::start(id, "")).await;
}

#[tokio::test]
async fn start_of_a_running_task_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::start(&running, ""), Code::FAILED_PRECONDITION, "cannot start").await;
}

#[tokio::test]
async fn start_of_a_stopped_task_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let stopped = api.stopped_task().await;
    api.refuses(Call::start(&stopped, ""), Code::FAILED_PRECONDITION, "cannot start").await;
}

#[tokio::test]
async fn kill_of_an_exited_task_is_not_found_already_finished_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let stopped = api.stopped_task().await;
    api.refuses(Call::kill(&stopped, "", Signal::SIGKILL), Code::NOT_FOUND, "already finished").await;
}

#[tokio::test]
async fn kill_with_a_signal_that_is_none_is_invalid_argument_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    let call = Call::Kill { id: running, exec_id: String::new(), signal: 12345 };
    api.refuses(call, Code::INVALID_ARGUMENT, "invalid signal 12345").await;
}

#[tokio::test]
async fn kill_of_an_unknown_task_is_not_found_and_leaves_nothing() {
    refused_for_an_unknown_task(|id| Call::kill(id, "", Signal::SIGTERM)).await;
}

#[tokio::test]
async fn delete_of_a_running_task_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::delete(&running, ""), Code::FAILED_PRECONDITION, "is running: cannot delete").await;
}

#[tokio::test]
async fn wait_for_an_unknown_task_is_not_found_and_leaves_nothing() {
    refused_for_an_unknown_task(|id| Call::wait(id, "")).await;
}

#[tokio::test]
async fn resize_of_a_task_without_a_terminal_is_failed_precondition_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses(Call::resize(&running, ""), Code::FAILED_PRECONDITION, "has no terminal").await;
}
