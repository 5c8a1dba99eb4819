//! Delete: what it removes, what a failure keeps for the retry, and the exits seen meanwhile.

use runc_wrap::deadlines::RuncOperation;
use runc_wrap::test_support::RuntimeCall;
use ttrpc::Code;

use super::{within, Daemon, INIT_PID};
use crate::daemon::task::Lifecycle;
use crate::error::Error;
use crate::systemd::SystemdError;
use crate::test_support::fake_systemd::JobEnd;

#[tokio::test]
async fn delete_of_an_exited_task_publishes_task_delete_and_stops_its_unit() {
    let daemon = Daemon::start("delete-exited").await;
    let key = daemon.running("t1").await;
    daemon.init_exits("t1", 7).await;
    daemon.events.published("/tasks/exit", 1).await;

    let deleted = daemon.manager.delete(&key).await.expect("deleted");

    assert_eq!((deleted.pid, deleted.exit.status), (INIT_PID, 7));
    daemon.events.published("/tasks/delete", 1).await;
    assert_eq!(daemon.events.topics(), ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    assert!(matches!(daemon.manager.task(&key), Err(Error::TaskNotFound { .. })));
    // The stop of an exited task's unit finishes after the answer.
    within(daemon.systemd.called("ResetFailedUnit", Daemon::unit("t1").as_str())).await;
    assert_eq!(daemon.systemd.targets_of("StopUnit"), [Daemon::unit("t1").to_string()]);
    assert!(
        daemon.runtimes.calls().contains(&RuntimeCall::Delete { id: "t1".into(), force: true }),
        "a program wrapping runc sees its delete: {:?}",
        daemon.runtimes.calls()
    );
}

#[tokio::test]
async fn delete_of_a_created_task_kills_it_with_runc_delete_force() {
    let daemon = Daemon::start("delete-created").await;
    let key = daemon.created("t1").await;

    let deleted = daemon.manager.delete(&key).await.expect("deleted");

    assert_eq!(deleted.exit.status, 137, "killed by runc delete --force");
    assert!(daemon.runtimes.calls().contains(&RuntimeCall::Delete { id: "t1".into(), force: true }));
    assert!(!daemon.systemd.has_unit(Daemon::unit("t1").as_str()), "the unit was stopped before the answer");
}

#[tokio::test]
async fn delete_of_a_running_task_is_refused() {
    let daemon = Daemon::start("delete-running").await;
    let key = daemon.running("t1").await;
    let error = daemon.manager.delete(&key).await.unwrap_err();
    assert!(matches!(error, Error::BadState { state: "running", .. }), "{error}");
    assert_eq!(error.code(), Code::FAILED_PRECONDITION);
    assert!(!daemon.runtimes.calls().iter().any(|call| matches!(call, RuntimeCall::Delete { .. })));
}

#[tokio::test]
async fn a_failed_runc_delete_keeps_the_task_for_the_retry() {
    let daemon = Daemon::start("delete-runc-failed").await;
    let key = daemon.created("t1").await;
    daemon.runtimes.fail_next(RuncOperation::Delete, "container t1 is busy");

    let error = daemon.manager.delete(&key).await.unwrap_err();

    assert!(matches!(error, Error::Runc(runc_wrap::Error::RuncFailed { command: "delete", .. })), "{error}");
    assert_eq!(error.code(), Code::UNKNOWN);
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Created { pid: INIT_PID });
    assert!(!daemon.events.topics().contains(&"/tasks/delete".to_string()));
    daemon.manager.delete(&key).await.expect("the retry deletes it");
}

#[tokio::test]
async fn a_failed_stop_of_the_unit_keeps_the_task_for_the_retry() {
    let daemon = Daemon::start("delete-stop-refused").await;
    let key = daemon.created("t1").await;
    daemon.systemd.fail_next("StopUnit", "org.freedesktop.DBus.Error.AccessDenied");

    let error = daemon.manager.delete(&key).await.unwrap_err();

    assert!(matches!(error, Error::Systemd(SystemdError::Call { method: "StopUnit", .. })), "{error}");
    assert_eq!(error.code(), Code::INTERNAL);
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Created { pid: INIT_PID });
    daemon.manager.delete(&key).await.expect("the retry deletes it");
}

#[tokio::test]
async fn a_stop_that_systemd_times_out_still_deletes_the_task() {
    // systemd's own stop timeout (TimeoutStopSec): it kills the unit's processes, and the job's
    // result is "timeout"; the unit is down all the same.
    let daemon = Daemon::start("delete-stop-timeout").await;
    let key = daemon.created("t1").await;
    daemon.systemd.next_stop_ends(JobEnd::Result("timeout"));

    daemon.manager.delete(&key).await.expect("deleted");

    assert!(matches!(daemon.manager.task(&key), Err(Error::TaskNotFound { .. })));
    assert_eq!(daemon.systemd.targets_of("ResetFailedUnit"), [Daemon::unit("t1").to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_job_that_never_ends_fails_the_delete_at_its_deadline() {
    let daemon = Daemon::start("delete-stop-hangs").await;
    let key = daemon.created("t1").await;
    daemon.systemd.next_stop_ends(JobEnd::Never);

    // The deadline is 100 s; the paused clock jumps there once nothing else can run.
    let error = daemon.manager.delete(&key).await.unwrap_err();

    assert!(matches!(error, Error::Systemd(SystemdError::JobTimeout { .. })), "{error}");
    assert_eq!(error.code(), Code::DEADLINE_EXCEEDED);
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Created { pid: INIT_PID });
}

/// An exit that systemd announces while a Delete runs is held in the deleting state; when the
/// Delete fails, the task must become exited with it, publish its `TaskExit` and answer Wait,
/// not go back to the state before Delete and lose it.
#[tokio::test]
async fn an_exit_seen_while_a_failing_delete_runs_is_published() {
    let daemon = Daemon::start("delete-failed-exit").await;
    let key = daemon.created("t1").await;
    let task = daemon.manager.task(&key).unwrap();
    daemon.runtimes.hold(RuncOperation::Delete);
    daemon.runtimes.fail_next(RuncOperation::Delete, "container t1 is busy");

    let delete = {
        let manager = std::sync::Arc::clone(&daemon.manager);
        let key = key.clone();
        tokio::spawn(async move { manager.delete(&key).await })
    };
    within(daemon.runtimes.called(|call| matches!(call, RuntimeCall::Delete { .. }))).await;
    daemon.init_exits("t1", 137).await;
    super::until(|| task.lifecycle().exit().is_some()).await;
    daemon.runtimes.release();
    let error = within(delete).await.expect("the delete's task").unwrap_err();

    assert!(matches!(error, Error::Runc(_)), "{error}");
    assert!(matches!(*task.lifecycle(), Lifecycle::Exited { pid: INIT_PID, .. }), "{:?}", *task.lifecycle());
    daemon.events.published("/tasks/exit", 1).await;
    assert_eq!(daemon.events.exits()[0].exit_status, 137);
    assert_eq!(within(daemon.manager.wait(&key)).await.expect("wait answers").status, 137);
    daemon.manager.delete(&key).await.expect("the retry deletes the exited task");
    daemon.events.published("/tasks/delete", 1).await;
}
