//! Bad requests in the course of a good task's life: after a bad Create a good task still runs,
//! each wrong step of a task is refused in its turn, and concurrent Deletes of one task or exec
//! succeed exactly once.

use containerd_shim_protos::shim_async::TaskClient;
use nix::sys::signal::Signal;
use tests::calls::{self, code_of, create_request, still_serving};
use tests::direct::{client, context, runnable_bundle};
use tests::{assert_nothing_left, exec_unit_of, unique_id, Sandbox};
use ttrpc::Code;

use crate::harness::{exec_request, Call};

#[tokio::test]
async fn a_good_task_runs_through_the_task_api_after_bad_requests() {
    let sandbox = Sandbox::get();
    let namespace = "shimtest-direct";
    let client = client(sandbox, namespace).await;
    let bad = create_request(&unique_id("bad"), std::path::Path::new("/nonexistent/bundle"));
    assert!(client.create(context(), &bad).await.is_err());

    let id = unique_id("good-direct");
    let bundle = runnable_bundle(sandbox, &id, &["sh", "-c", "exit 5"]);
    let created = client.create(context(), &create_request(&id, &bundle)).await.expect("create");
    assert!(created.pid > 0);
    assert_eq!(
        code_of(client.create(context(), &create_request(&id, &bundle)).await),
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

    let created = client.create(context(), &create_request(&id, &bundle)).await.expect("create");
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
        first.create(context(), &create_request(&id, &bundle)).await.expect("create");
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
