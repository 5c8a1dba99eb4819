//! Exec processes: add, start (the exec unit and its helper), exit, delete, and their failures.

use containerd_shim_protos::api::ExecProcessRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use runc_wrap::protocol::{exec_dir, files, HelperFailure, HelperStage};
use ttrpc::Code;

use super::{within, Daemon, EXEC_PID};
use crate::daemon::exec_process::ExecLifecycle;
use crate::error::Error;
use crate::systemd::SystemdError;
use crate::test_support::fake_systemd::{JobEnd, StartAnswer};

fn exec_request(exec_id: &str) -> ExecProcessRequest {
    let spec = r#"{"args":["sh","-c","exit 5"],"cwd":"/","user":{"uid":0,"gid":0}}"#;
    ExecProcessRequest {
        exec_id: exec_id.into(),
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: spec.as_bytes().to_vec(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// When exec `exec_id`'s unit starts, its helper runs `runc exec`: the process is [`EXEC_PID`].
fn helper_execs(daemon: &Daemon, id: &str, exec_id: &str) {
    let pid_file = exec_dir(&daemon.bundle(id), exec_id).join(files::exec::PID);
    daemon.systemd.on_start(Daemon::exec_unit(id, exec_id).as_str(), move || {
        std::fs::write(&pid_file, EXEC_PID.to_string()).expect("the exec's pid file");
        StartAnswer::Job(JobEnd::Result("done"))
    });
}

#[tokio::test]
async fn an_exec_is_added_started_exits_and_is_deleted() {
    let daemon = Daemon::start("exec-ok").await;
    let key = daemon.running("t1").await;
    let unit = Daemon::exec_unit("t1", "e1");

    daemon.manager.add_exec(&key, exec_request("e1")).await.expect("added");
    assert!(exec_dir(&daemon.bundle("t1"), "e1").join(files::exec::REQUEST).exists());
    helper_execs(&daemon, "t1", "e1");
    assert_eq!(daemon.manager.start_exec(&key, "e1").await.expect("started"), EXEC_PID);
    let start = daemon.systemd.called("StartTransientUnit", unit.as_str()).await;
    assert!(start.properties.contains_key("ExecStart"));

    daemon.systemd.main_process_exited(unit.as_str(), EXEC_PID, 5, false).await;
    assert_eq!(within(daemon.manager.wait_exec(&key, "e1")).await.expect("waited").status, 5);
    daemon.events.published("/tasks/exit", 1).await;
    assert_eq!(daemon.events.exits()[0].id, "e1");

    let deleted = daemon.manager.delete_exec(&key, "e1").await.expect("deleted");
    assert_eq!((deleted.pid, deleted.exit.status), (EXEC_PID, 5));
    assert_eq!(daemon.systemd.targets_of("StopUnit"), [unit.to_string()]);
    assert!(!exec_dir(&daemon.bundle("t1"), "e1").exists());
    assert!(matches!(daemon.manager.exec_of(&key, "e1"), Err(Error::ExecNotFound { .. })));
    assert_eq!(
        daemon.events.topics(),
        ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"]
    );
}

#[tokio::test]
async fn an_exec_of_a_task_that_is_not_running_or_twice_is_refused() {
    let daemon = Daemon::start("exec-refused").await;
    let key = daemon.created("t1").await;
    let error = daemon.manager.add_exec(&key, exec_request("e1")).await.unwrap_err();
    assert_eq!(error.code(), Code::FAILED_PRECONDITION);
    daemon.manager.start(&key).await.expect("started");
    daemon.manager.add_exec(&key, exec_request("e1")).await.expect("added");
    let error = daemon.manager.add_exec(&key, exec_request("e1")).await.unwrap_err();
    assert!(matches!(error, Error::ExecExists { .. }), "{error}");
    assert_eq!(error.code(), Code::ALREADY_EXISTS);
}

#[tokio::test]
async fn a_failed_exec_start_reports_the_helper_and_resets_the_unit() {
    let daemon = Daemon::start("exec-start-failed").await;
    let key = daemon.running("t1").await;
    daemon.manager.add_exec(&key, exec_request("e1")).await.expect("added");
    let report = exec_dir(&daemon.bundle("t1"), "e1").join(files::exec::HELPER_FAILURE);
    let unit = Daemon::exec_unit("t1", "e1");
    daemon.systemd.on_start(unit.as_str(), move || {
        let failure = HelperFailure { stage: HelperStage::ExecRunc, message: "runc exec failed: no such file".into() };
        runc_wrap::atomic_file::write_json_atomically(&report, &failure).expect("the helper's report");
        StartAnswer::Job(JobEnd::Result("failed"))
    });

    let error = daemon.manager.start_exec(&key, "e1").await.unwrap_err();

    let Error::ExecStartFailed { message, .. } = &error else { panic!("{error}") };
    assert_eq!(message, "runc exec failed: no such file");
    assert_eq!(error.code(), Code::UNKNOWN);
    assert_eq!(daemon.systemd.targets_of("ResetFailedUnit"), [unit.to_string()]);
    let (_task, exec) = daemon.manager.exec_of(&key, "e1").unwrap();
    assert_eq!(*exec.lifecycle(), ExecLifecycle::Added);
    daemon.manager.delete_exec(&key, "e1").await.expect("a failed exec can be deleted");
}

#[tokio::test]
async fn an_exec_whose_unit_exists_is_already_exists() {
    let daemon = Daemon::start("exec-unit-exists").await;
    let key = daemon.running("t1").await;
    daemon.manager.add_exec(&key, exec_request("e1")).await.expect("added");
    daemon.systemd.add_unit(Daemon::exec_unit("t1", "e1").as_str(), "active");
    let error = daemon.manager.start_exec(&key, "e1").await.unwrap_err();
    assert!(matches!(error, Error::UnitExists { .. }), "{error}");
    assert_eq!(error.code(), Code::ALREADY_EXISTS);
}

#[tokio::test]
async fn a_failed_exec_delete_keeps_the_exec_for_the_retry() {
    let daemon = Daemon::start("exec-delete-failed").await;
    let key = daemon.running("t1").await;
    daemon.manager.add_exec(&key, exec_request("e1")).await.expect("added");
    helper_execs(&daemon, "t1", "e1");
    daemon.manager.start_exec(&key, "e1").await.expect("started");
    daemon.systemd.main_process_exited(Daemon::exec_unit("t1", "e1").as_str(), EXEC_PID, 0, false).await;
    within(daemon.manager.wait_exec(&key, "e1")).await.expect("exited");
    daemon.systemd.fail_next("StopUnit", "org.freedesktop.DBus.Error.AccessDenied");

    let error = daemon.manager.delete_exec(&key, "e1").await.unwrap_err();

    assert!(matches!(error, Error::Systemd(SystemdError::Call { method: "StopUnit", .. })), "{error}");
    let (_task, exec) = daemon.manager.exec_of(&key, "e1").unwrap();
    assert!(matches!(*exec.lifecycle(), ExecLifecycle::Exited { pid: EXEC_PID, .. }));
    daemon.manager.delete_exec(&key, "e1").await.expect("the retry deletes it");
}
