//! Start, Kill, Pause, Resume, Update and Pids: runc's answers become the task's state, events
//! and error codes.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use nix::sys::signal::Signal;
use runc_wrap::deadlines::RuncOperation;
use runc_wrap::test_support::RuntimeCall;
use ttrpc::Code;

use super::{until, within, Daemon, INIT_PID};
use crate::daemon::task::Lifecycle;
use crate::error::Error;

#[tokio::test]
async fn start_runs_runc_start_and_publishes_task_start() {
    let daemon = Daemon::start("start-ok").await;
    let key = daemon.created("t1").await;

    assert_eq!(daemon.manager.start(&key).await.expect("started"), INIT_PID);

    assert_eq!(daemon.runtimes.calls(), [RuntimeCall::Start("t1".into())]);
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Running { pid: INIT_PID });
    daemon.events.published("/tasks/start", 1).await;
}

#[tokio::test]
async fn a_failed_start_leaves_the_task_created_and_may_be_retried() {
    let daemon = Daemon::start("start-failed").await;
    let key = daemon.created("t1").await;
    daemon.runtimes.fail_next(RuncOperation::Start, "cannot start a container that has stopped");

    let error = daemon.manager.start(&key).await.unwrap_err();

    assert!(matches!(error, Error::Runc(runc_wrap::Error::RuncFailed { command: "start", .. })), "{error}");
    assert_eq!(error.code(), Code::UNKNOWN);
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Created { pid: INIT_PID });
    daemon.manager.start(&key).await.expect("the retry starts it");
}

#[tokio::test]
async fn a_start_that_times_out_is_a_runc_timeout() {
    let daemon = Daemon::start("start-timeout").await;
    let key = daemon.created("t1").await;
    daemon.runtimes.time_out_next(RuncOperation::Start);
    let error = daemon.manager.start(&key).await.unwrap_err();
    assert!(matches!(error, Error::Runc(runc_wrap::Error::RuncTimeout { .. })), "{error}");
}

#[tokio::test]
async fn an_exit_while_runc_start_runs_is_published_after_task_start() {
    let daemon = Daemon::start("start-exit-races").await;
    let key = daemon.created("t1").await;
    let task = daemon.manager.task(&key).unwrap();
    daemon.runtimes.hold(RuncOperation::Start);
    let start = {
        let (manager, key) = (std::sync::Arc::clone(&daemon.manager), key.clone());
        tokio::spawn(async move { manager.start(&key).await })
    };
    within(daemon.runtimes.called(|call| matches!(call, RuntimeCall::Start(_)))).await;
    daemon.init_exits("t1", 1).await;
    until(|| matches!(*task.lifecycle(), Lifecycle::Starting { pending_exit: Some(_), .. })).await;
    daemon.runtimes.release();
    within(start).await.expect("the start's task").expect("started");

    daemon.events.published("/tasks/exit", 1).await;
    assert_eq!(daemon.events.topics(), ["/tasks/create", "/tasks/start", "/tasks/exit"]);
}

#[tokio::test]
async fn start_of_a_running_task_is_refused() {
    let daemon = Daemon::start("start-twice").await;
    let key = daemon.running("t1").await;
    let error = daemon.manager.start(&key).await.unwrap_err();
    assert_eq!(error.code(), Code::FAILED_PRECONDITION);
}

#[tokio::test]
async fn kill_goes_through_runc_for_a_program_wrapping_it() {
    let daemon = Daemon::start("kill-ok").await;
    let key = daemon.running("t1").await;
    daemon.manager.kill(&key, Signal::SIGTERM as u32, false).await.expect("killed");
    daemon.manager.kill(&key, Signal::SIGKILL as u32, true).await.expect("killed all");
    assert_eq!(
        daemon.runtimes.calls()[1..],
        [
            RuntimeCall::Kill { id: "t1".into(), signal: Signal::SIGTERM, all: false },
            RuntimeCall::Kill { id: "t1".into(), signal: Signal::SIGKILL, all: true },
        ]
    );
}

#[tokio::test]
async fn a_failed_kill_of_an_init_that_is_gone_is_not_found() {
    let daemon = Daemon::start("kill-gone").await;
    let key = daemon.running("t1").await;
    daemon.runtimes.fail_next(RuncOperation::Kill, "container not running");
    let error = daemon.manager.kill(&key, Signal::SIGTERM as u32, false).await.unwrap_err();
    assert!(matches!(error, Error::ProcessFinished { .. }), "{error}");
    assert_eq!(error.code(), Code::NOT_FOUND);
}

#[tokio::test]
async fn a_failed_kill_of_an_exited_task_and_a_bad_signal_are_refused_before_runc() {
    let daemon = Daemon::start("kill-refused").await;
    let key = daemon.running("t1").await;
    let error = daemon.manager.kill(&key, 1000, false).await.unwrap_err();
    assert_eq!(error.code(), Code::INVALID_ARGUMENT);
    daemon.init_exits("t1", 0).await;
    daemon.events.published("/tasks/exit", 1).await;
    let error = daemon.manager.kill(&key, Signal::SIGTERM as u32, false).await.unwrap_err();
    assert_eq!(error.code(), Code::NOT_FOUND);
    assert_eq!(daemon.runtimes.calls(), [RuntimeCall::Start("t1".into())], "runc was never asked");
}

#[tokio::test]
async fn pause_and_resume_publish_their_events_and_their_failures_change_nothing() {
    let daemon = Daemon::start("pause").await;
    let key = daemon.running("t1").await;
    let task = daemon.manager.task(&key).unwrap();

    daemon.runtimes.fail_next(RuncOperation::Pause, "freezer: device or resource busy");
    let error = daemon.manager.pause(&key).await.unwrap_err();
    assert!(matches!(error, Error::Runc(runc_wrap::Error::RuncFailed { command: "pause", .. })), "{error}");
    assert_eq!(*task.lifecycle(), Lifecycle::Running { pid: INIT_PID });

    daemon.manager.pause(&key).await.expect("paused");
    assert_eq!(*task.lifecycle(), Lifecycle::Paused { pid: INIT_PID });
    daemon.events.published("/tasks/paused", 1).await;

    daemon.runtimes.fail_next(RuncOperation::Resume, "freezer: device or resource busy");
    let error = daemon.manager.resume(&key).await.unwrap_err();
    assert!(matches!(error, Error::Runc(runc_wrap::Error::RuncFailed { command: "resume", .. })), "{error}");
    assert_eq!(*task.lifecycle(), Lifecycle::Paused { pid: INIT_PID });

    daemon.manager.resume(&key).await.expect("resumed");
    assert_eq!(*task.lifecycle(), Lifecycle::Running { pid: INIT_PID });
    daemon.events.published("/tasks/resumed", 1).await;
}

#[tokio::test]
async fn update_hands_runc_the_resources_and_reports_its_failure() {
    let daemon = Daemon::start("update").await;
    let key = daemon.running("t1").await;
    let resources = r#"{"memory":{"limit":67108864}}"#;
    let any = Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: resources.as_bytes().to_vec(),
        ..Default::default()
    };

    daemon.manager.update(&key, Some(&any)).await.expect("updated");
    assert_eq!(
        daemon.runtimes.calls().last(),
        Some(&RuntimeCall::Update { id: "t1".into(), resources: resources.into() })
    );

    daemon.runtimes.fail_next(RuncOperation::Update, "invalid memory limit");
    let error = daemon.manager.update(&key, Some(&any)).await.unwrap_err();
    assert!(matches!(error, Error::Runc(runc_wrap::Error::RuncFailed { command: "update", .. })), "{error}");
    let left: Vec<_> = std::fs::read_dir(daemon.bundle("t1"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("shim-update-"))
        .collect();
    assert!(left.is_empty(), "the resources files are removed either way");
}

#[tokio::test]
async fn pids_are_runcs_and_a_failure_is_a_runc_error() {
    let daemon = Daemon::start("pids").await;
    let key = daemon.running("t1").await;
    daemon.runtimes.set_pids(vec![INIT_PID, 4_200_100]);
    let pids: Vec<u32> = daemon.manager.pids(&key).await.expect("pids").iter().map(|info| info.pid).collect();
    assert_eq!(pids, [INIT_PID, 4_200_100]);
    daemon.runtimes.fail_next(RuncOperation::Ps, "container does not exist");
    let error = daemon.manager.pids(&key).await.unwrap_err();
    assert!(matches!(error, Error::Runc(_)), "{error}");
}
