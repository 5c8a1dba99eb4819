//! Checkpoint, Stats and ResizePty: the paths that need no real container. What they need of a
//! real one (CRIU's images, the container's cgroup files, a terminal copier's pty) the
//! integration tests cover (`tests/tests/checkpoint.rs`, `stats_oom.rs`, `tty.rs`).

use containerd_shim_protos::api::CheckpointTaskRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::CheckpointOptions;
use containerd_shim_protos::topics::TASK_CHECKPOINTED_EVENT_TOPIC;
use runc_wrap::deadlines::RuncOperation;
use runc_wrap::test_support::RuntimeCall;
use ttrpc::Code;

use super::Daemon;
use crate::daemon::request::ProcessRef;
use crate::daemon::task::Lifecycle;
use crate::error::Error;

fn checkpoint_request(id: &str, path: &str, options: Option<CheckpointOptions>) -> CheckpointTaskRequest {
    let options = options.map(|options| Any {
        type_url: "containerd.runc.v1.CheckpointOptions".into(),
        value: options.write_to_bytes().expect("encode"),
        ..Default::default()
    });
    CheckpointTaskRequest { id: id.into(), path: path.into(), options: options.into(), ..Default::default() }
}

#[tokio::test]
async fn checkpoint_runs_runc_checkpoint_with_containerds_options_and_publishes_task_checkpointed() {
    let daemon = Daemon::start("checkpoint-ok").await;
    let key = daemon.running("t1").await;
    let options = CheckpointOptions { exit: true, open_tcp: true, work_path: "/w".into(), ..Default::default() };

    daemon.manager.checkpoint(&key, &checkpoint_request("t1", "/images", Some(options))).await.expect("checkpointed");

    let calls = daemon.runtimes.calls();
    let [RuntimeCall::Start(_), RuntimeCall::Checkpoint { id, args }] = calls.as_slice() else {
        panic!("runc start, then one runc checkpoint: {calls:?}")
    };
    assert_eq!(id, "t1");
    assert_eq!((args.image_path.to_str(), args.work_path.to_str()), (Some("/images"), Some("/w")));
    assert!(!args.leave_running && args.tcp_established, "{args:?}");
    daemon.events.published(TASK_CHECKPOINTED_EVENT_TOPIC, 1).await;
}

#[tokio::test]
async fn a_failed_runc_checkpoint_is_a_runc_error_and_publishes_nothing() {
    let daemon = Daemon::start("checkpoint-failed").await;
    let key = daemon.running("t1").await;
    daemon.runtimes.fail_next(RuncOperation::Checkpoint, "criu failed: type NOTIFY errno 0");

    let error = daemon.manager.checkpoint(&key, &checkpoint_request("t1", "/images", None)).await.unwrap_err();

    assert!(matches!(error, Error::Runc(runc_wrap::Error::RuncFailed { command: "checkpoint", .. })), "{error}");
    assert_eq!(error.code(), Code::UNKNOWN);
    assert!(!daemon.events.topics().iter().any(|topic| topic == TASK_CHECKPOINTED_EVENT_TOPIC));
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Running { pid: super::INIT_PID });
}

#[tokio::test]
async fn a_checkpoint_without_an_image_path_or_with_foreign_options_is_refused_before_runc() {
    let daemon = Daemon::start("checkpoint-refused").await;
    let key = daemon.running("t1").await;

    let no_path = daemon.manager.checkpoint(&key, &checkpoint_request("t1", "", None)).await.unwrap_err();
    assert!(matches!(no_path, Error::InvalidRequest(_)), "{no_path}");

    let mut foreign = checkpoint_request("t1", "/images", None);
    foreign.options = Some(Any { type_url: "example.Options".into(), ..Default::default() }).into();
    let foreign = daemon.manager.checkpoint(&key, &foreign).await.unwrap_err();
    assert_eq!(foreign.code(), Code::INVALID_ARGUMENT);

    assert_eq!(daemon.runtimes.calls(), [RuntimeCall::Start("t1".into())], "no runc checkpoint");
}

#[tokio::test]
async fn checkpoint_of_a_created_task_is_refused() {
    let daemon = Daemon::start("checkpoint-created").await;
    let key = daemon.created("t1").await;
    let error = daemon.manager.checkpoint(&key, &checkpoint_request("t1", "/images", None)).await.unwrap_err();
    assert_eq!(error.code(), Code::FAILED_PRECONDITION);
    assert_eq!(daemon.runtimes.calls(), []);
}

#[tokio::test]
async fn stats_of_a_task_whose_cgroup_is_unknown_is_a_bad_state() {
    let daemon = Daemon::start("stats-no-cgroup").await;
    // The fake init's pid names no process, so its cgroup was never found.
    let key = daemon.running("t1").await;
    let error = daemon.manager.stats(&key).await.unwrap_err();
    assert!(matches!(error, Error::BadState { action: "read metrics (its cgroup is unknown)", .. }), "{error}");
    assert_eq!(error.code(), Code::FAILED_PRECONDITION);
}

#[tokio::test]
async fn stats_and_resize_of_an_unknown_task_are_not_found() {
    let daemon = Daemon::start("unknown-task").await;
    let key = Daemon::key("nobody");
    assert_eq!(daemon.manager.stats(&key).await.unwrap_err().code(), Code::NOT_FOUND);
    assert_eq!(daemon.manager.resize_pty(&key, ProcessRef::Init, 24, 80).await.unwrap_err().code(), Code::NOT_FOUND);
}

#[tokio::test]
async fn resize_of_a_task_without_a_terminal_or_to_an_impossible_size_is_refused() {
    let daemon = Daemon::start("resize-refused").await;
    let key = daemon.running("t1").await;

    let no_terminal = daemon.manager.resize_pty(&key, ProcessRef::Init, 24, 80).await.unwrap_err();
    assert!(matches!(no_terminal, Error::NoTerminal { .. }), "{no_terminal}");
    assert_eq!(no_terminal.code(), Code::FAILED_PRECONDITION);

    let too_big = daemon.manager.resize_pty(&key, ProcessRef::Init, 70_000, 80).await.unwrap_err();
    assert!(matches!(too_big, Error::InvalidRequest(_)), "{too_big}");
}
