//! Another namespace's tasks do not exist through this namespace's socket: requests for them
//! are NOT_FOUND there and change nothing. See [`crate::harness`] for what every test checks
//! besides the code and message in its name.

use nix::sys::signal::Signal;
use ttrpc::Code;

use crate::harness::{Call, TaskApi, RUNNING};

#[tokio::test]
async fn state_of_another_namespaces_task_is_not_found_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses_through_the_other_namespace(Call::state(&running, ""), Code::NOT_FOUND, "not found").await;
}

#[tokio::test]
async fn kill_of_another_namespaces_task_is_not_found_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    let call = Call::kill(&running, "", Signal::SIGKILL);
    api.refuses_through_the_other_namespace(call, Code::NOT_FOUND, "not found").await;
}

#[tokio::test]
async fn delete_of_another_namespaces_task_is_not_found_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let stopped = api.stopped_task().await;
    api.refuses_through_the_other_namespace(Call::delete(&stopped, ""), Code::NOT_FOUND, "not found").await;
}

#[tokio::test]
async fn exec_into_another_namespaces_task_is_not_found_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.refuses_through_the_other_namespace(Call::exec(&running, "e-other"), Code::NOT_FOUND, "not found").await;
}

#[tokio::test]
async fn kill_of_another_namespaces_exec_is_not_found_and_changes_nothing() {
    let mut api = TaskApi::connect().await;
    let running = api.running_task().await;
    api.running_exec(&running).await;
    let call = Call::kill(&running, RUNNING, Signal::SIGKILL);
    api.refuses_through_the_other_namespace(call, Code::NOT_FOUND, "not found").await;
}
