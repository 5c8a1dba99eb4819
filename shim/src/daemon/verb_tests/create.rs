//! Create: the unit's start job, what the helper reports, and what a failed Create leaves.

use runc_wrap::protocol::{files, HelperFailure, HelperStage};
use runc_wrap::test_support::RuntimeCall;
use ttrpc::Code;

use super::{Daemon, INIT_PID};
use crate::daemon::task::Lifecycle;
use crate::error::Error;
use crate::systemd::{error_names, SystemdError};
use crate::test_support::fake_systemd::{JobEnd, StartAnswer};

/// What a failed Create must leave: no task, no record, no unit, none of our files in the bundle.
async fn nothing_left(daemon: &Daemon, id: &str) {
    assert!(matches!(daemon.manager.task(&Daemon::key(id)), Err(Error::TaskNotFound { .. })));
    daemon.manager.state.flush().await;
    let record = crate::daemon::state::record_path(daemon.manager.state.dir(), &Daemon::key(id));
    assert!(!record.exists(), "no record at {}", record.display());
    assert!(!daemon.systemd.has_unit(Daemon::unit(id).as_str()), "the unit is gone");
    let bundle = daemon.bundle(id);
    for name in files::ALL {
        assert!(!bundle.join(name).exists(), "{name} was removed from the bundle");
    }
    assert!(daemon.events.topics().is_empty(), "nothing published: {:?}", daemon.events.topics());
}

#[tokio::test]
async fn create_publishes_task_create_and_starts_the_unit_rendered_for_the_spec() {
    let daemon = Daemon::start("create-ok").await;
    let key = daemon.created("t1").await;

    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Created { pid: INIT_PID });
    daemon.events.published("/tasks/create", 1).await;
    let start = daemon.systemd.called("StartTransientUnit", Daemon::unit("t1").as_str()).await;
    for property in ["ExecStart", "ExecStopPost", "PIDFile", "Delegate", "KillMode"] {
        assert!(start.properties.contains_key(property), "{property} in {:?}", start.properties.keys());
    }
    assert!(start.properties["PIDFile"].contains(&daemon.bundle("t1").join(files::INIT_PID).display().to_string()));
    daemon.manager.state.flush().await;
    assert!(crate::daemon::state::record_path(daemon.manager.state.dir(), &key).exists(), "the task is recorded");
    assert!(daemon.runtimes.calls().is_empty(), "runc create runs in the unit, not in the daemon");
}

#[tokio::test]
async fn create_whose_start_job_fails_cleans_everything_up() {
    let daemon = Daemon::start("create-job-failed").await;
    daemon.systemd.on_start(Daemon::unit("t1").as_str(), || StartAnswer::Job(JobEnd::Result("failed")));

    let error = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.unwrap_err();

    assert!(matches!(&error, Error::CreateFailed { stage, .. } if stage == "starting the unit"), "{error}");
    assert_eq!(error.code(), Code::UNKNOWN);
    assert_eq!(daemon.runtimes.calls().last(), Some(&RuntimeCall::Delete { id: "t1".into(), force: true }));
    assert_eq!(daemon.systemd.targets_of("StopUnit"), [Daemon::unit("t1").to_string()]);
    nothing_left(&daemon, "t1").await;
}

#[tokio::test]
async fn create_whose_start_job_times_out_in_systemd_cleans_everything_up() {
    let daemon = Daemon::start("create-job-timeout").await;
    daemon.systemd.on_start(Daemon::unit("t1").as_str(), || StartAnswer::Job(JobEnd::Result("timeout")));

    let error = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.unwrap_err();

    assert!(matches!(error, Error::CreateFailed { .. }), "{error}");
    nothing_left(&daemon, "t1").await;
}

#[tokio::test]
async fn create_refused_by_systemd_is_a_systemd_error_and_leaves_nothing() {
    let daemon = Daemon::start("create-refused").await;
    daemon.systemd.fail_next("StartTransientUnit", "org.freedesktop.DBus.Error.AccessDenied");

    let error = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.unwrap_err();

    assert!(
        matches!(&error, Error::Systemd(SystemdError::Call { name, .. }) if name == "org.freedesktop.DBus.Error.AccessDenied"),
        "{error}"
    );
    assert_eq!(error.code(), Code::INTERNAL);
    nothing_left(&daemon, "t1").await;
}

#[tokio::test]
async fn create_when_the_unit_exists_is_already_exists_and_touches_nothing() {
    let daemon = Daemon::start("create-unit-exists").await;
    daemon.systemd.add_unit(Daemon::unit("t1").as_str(), "active");

    let error = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.unwrap_err();

    assert!(matches!(error, Error::UnitExists { .. }), "{error}");
    assert_eq!(error.code(), Code::ALREADY_EXISTS);
    assert!(daemon.systemd.has_unit(Daemon::unit("t1").as_str()), "someone else's unit is left running");
    assert!(
        daemon.systemd.targets_of("StopUnit").is_empty() && daemon.systemd.targets_of("ResetFailedUnit").is_empty()
    );
    assert!(daemon.runtimes.calls().is_empty(), "its container is not ours to delete");
    assert!(matches!(daemon.manager.task(&Daemon::key("t1")), Err(Error::TaskNotFound { .. })));
    assert!(error_names::UNIT_EXISTS.ends_with("UnitExists"));
}

#[tokio::test]
async fn create_failing_in_runc_create_reports_runcs_logged_error() {
    let daemon = Daemon::start("create-runc-failed").await;
    let log = daemon.bundle("t1").join(files::RUNC_LOG);
    daemon.systemd.on_start(Daemon::unit("t1").as_str(), move || {
        let lines = concat!(
            r#"{"level":"info","msg":"starting"}"#,
            "\n",
            r#"{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"}"#,
            "\n"
        );
        std::fs::write(&log, lines).expect("runc's log");
        StartAnswer::Job(JobEnd::Result("failed"))
    });

    let error = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.unwrap_err();

    let Error::CreateFailed { stage, message, caused_by_input, .. } = &error else { panic!("{error}") };
    assert_eq!(stage, "running runc create");
    // runc's words are the contract here: they are what the user reads.
    assert!(message.contains("executable file not found"), "{message}");
    assert!(!caused_by_input);
    nothing_left(&daemon, "t1").await;
}

#[tokio::test]
async fn create_failing_in_the_helper_reports_its_stage_and_a_mount_failure_is_bad_input() {
    let daemon = Daemon::start("create-helper-failed").await;
    let report = daemon.bundle("t1").join(files::HELPER_FAILURE);
    daemon.systemd.on_start(Daemon::unit("t1").as_str(), move || {
        let failure = HelperFailure { stage: HelperStage::Mount, message: "mounting overlay: no such device".into() };
        runc_wrap::atomic_file::write_json_atomically(&report, &failure).expect("the helper's report");
        StartAnswer::Job(JobEnd::Result("failed"))
    });

    let error = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.unwrap_err();

    assert!(matches!(&error, Error::CreateFailed { caused_by_input: true, .. }), "{error}");
    assert_eq!(error.code(), Code::INVALID_ARGUMENT);
    nothing_left(&daemon, "t1").await;
}

#[tokio::test]
async fn an_init_that_exits_at_create_makes_a_created_task_that_exited() {
    let daemon = Daemon::start("create-init-exited").await;
    let record = daemon.bundle("t1").join(files::INIT_EXITED_AT_CREATE);
    daemon.systemd.on_start(Daemon::unit("t1").as_str(), move || {
        let ended = serde_json::json!({"pid": INIT_PID, "exit": {"status": 3, "signal": null, "exited_at_unix_ns": 1}});
        std::fs::write(&record, ended.to_string()).expect("the early exit record");
        StartAnswer::Job(JobEnd::Result("failed"))
    });

    let pid = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.expect("created");

    assert_eq!(pid, INIT_PID);
    daemon.events.published("/tasks/exit", 1).await;
    assert_eq!(daemon.events.topics(), ["/tasks/create", "/tasks/exit"]);
    assert_eq!(daemon.events.exits()[0].exit_status, 3);
    assert_eq!(super::within(daemon.manager.wait(&Daemon::key("t1"))).await.unwrap().status, 3);
}

#[tokio::test]
async fn a_second_create_of_the_same_task_is_already_exists() {
    let daemon = Daemon::start("create-twice").await;
    daemon.created("t1").await;
    let error = daemon.manager.create(Daemon::key("t1"), daemon.create_request("t1")).await.unwrap_err();
    assert!(matches!(error, Error::TaskExists { .. }), "{error}");
    assert_eq!(daemon.systemd.targets_of("StartTransientUnit").len(), 1);
}
