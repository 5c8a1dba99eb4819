//! Adoption: a new daemon takes over the tasks in its predecessor's records, in whatever state
//! they were left, and learns from systemd what happened meanwhile.

use runc_wrap::protocol::{exec_dir, files, ExitState};
use runc_wrap::test_support::RuntimeCall;

use super::{within, Daemon, EXEC_PID, INIT_PID};
use crate::daemon::exec_process::ExecLifecycle;
use crate::daemon::state::record_path;
use crate::daemon::task::{Exit, Lifecycle};
use crate::error::Error;

#[tokio::test]
async fn a_created_task_is_adopted_and_can_be_started() {
    let daemon = Daemon::start("adopt-created").await;
    let key = daemon.created("t1").await;
    let (daemon, adopted) = daemon.stop().await.restart().await;

    assert_eq!(adopted, std::slice::from_ref(&key));
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Created { pid: INIT_PID });
    daemon.manager.start(&key).await.expect("the adopted task starts");
    daemon.events.published("/tasks/start", 1).await;
}

#[tokio::test]
async fn a_running_task_whose_unit_is_active_keeps_running_and_its_exit_is_seen() {
    let daemon = Daemon::start("adopt-running").await;
    let key = daemon.running("t1").await;
    let (daemon, _) = daemon.stop().await.restart().await;

    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Running { pid: INIT_PID });
    assert!(daemon.events.topics().is_empty(), "nothing happened meanwhile");
    daemon.init_exits("t1", 9).await;
    assert_eq!(within(daemon.manager.wait(&key)).await.expect("waited").status, 9);
}

#[tokio::test]
async fn a_running_task_that_exited_while_no_daemon_ran_gets_its_task_exit() {
    let daemon = Daemon::start("adopt-exited-meanwhile").await;
    let key = daemon.running("t1").await;
    let stopped = daemon.stop().await;
    // No daemon observes this exit; systemd keeps it in the unit's properties.
    stopped.systemd.main_process_exited(Daemon::unit("t1").as_str(), INIT_PID, 42, false).await;
    let (daemon, _) = stopped.restart().await;

    assert!(matches!(
        *daemon.manager.task(&key).unwrap().lifecycle(),
        Lifecycle::Exited { exit: Exit { status: 42, .. }, .. }
    ));
    daemon.events.published("/tasks/exit", 1).await;
    assert_eq!(daemon.events.exits()[0].exit_status, 42);
}

#[tokio::test]
async fn a_running_task_whose_unit_is_gone_without_a_record_exits_with_an_unknown_status() {
    let daemon = Daemon::start("adopt-unit-gone").await;
    let key = daemon.running("t1").await;
    let stopped = daemon.stop().await;
    stopped.systemd.forget_unit(Daemon::unit("t1").as_str());
    let (daemon, _) = stopped.restart().await;

    daemon.events.published("/tasks/exit", 1).await;
    assert_eq!(within(daemon.manager.wait(&key)).await.expect("waited").status, 255);
}

#[tokio::test]
async fn an_exited_task_answers_wait_at_once_and_publishes_nothing_again() {
    let daemon = Daemon::start("adopt-exited").await;
    let key = daemon.running("t1").await;
    daemon.init_exits("t1", 3).await;
    daemon.events.published("/tasks/exit", 1).await;
    let (daemon, _) = daemon.stop().await.restart().await;

    assert_eq!(within(daemon.manager.wait(&key)).await.expect("waited").status, 3);
    daemon.manager.delete(&key).await.expect("deleted");
    daemon.events.published("/tasks/delete", 1).await;
    assert_eq!(daemon.events.topics(), ["/tasks/delete"]);
}

#[tokio::test]
async fn a_task_left_starting_is_running_once_adopted() {
    let daemon = Daemon::start("adopt-starting").await;
    let key = daemon.created("t1").await;
    let stopped = daemon.stop().await;
    stopped.edit_record("t1", |record| record.lifecycle = Lifecycle::Starting { pid: INIT_PID, pending_exit: None });
    let (daemon, _) = stopped.restart().await;
    assert_eq!(*daemon.manager.task(&key).unwrap().lifecycle(), Lifecycle::Running { pid: INIT_PID });
}

/// A Create or Delete the previous daemon did not finish is finished: everything of the task
/// goes, and it is not served.
#[tokio::test]
async fn an_interrupted_create_or_delete_is_finished_by_removing_the_task() {
    for (name, lifecycle) in [
        ("creating", Lifecycle::Creating { pending_exit: None, pending_exit_pid: 0 }),
        ("deleting", Lifecycle::Deleting { pid: INIT_PID, exit: None }),
    ] {
        let daemon = Daemon::start(&format!("adopt-{name}")).await;
        let key = daemon.created("t1").await;
        let stopped = daemon.stop().await;
        stopped.edit_record("t1", |record| record.lifecycle = lifecycle);
        let (daemon, _) = stopped.restart().await;

        assert!(matches!(daemon.manager.task(&key), Err(Error::TaskNotFound { .. })), "{name}");
        assert!(daemon.runtimes.calls().contains(&RuntimeCall::Delete { id: "t1".into(), force: true }), "{name}");
        assert!(!daemon.systemd.has_unit(Daemon::unit("t1").as_str()), "{name}: the unit is stopped");
        assert!(!record_path(daemon.manager.state.dir(), &key).exists(), "{name}: the record is removed");
        assert!(!daemon.bundle("t1").join(files::CREATE_REQUEST).exists(), "{name}: the bundle is cleaned");
    }
}

#[tokio::test]
async fn execs_are_adopted_in_each_state() {
    let daemon = Daemon::start("adopt-execs").await;
    let key = daemon.running("t1").await;
    let stopped = daemon.stop().await;
    let bundle = stopped.dir.join("bundles").join("t1");
    for exec_id in ["added", "running", "gone", "exited", "deleting"] {
        std::fs::create_dir_all(exec_dir(&bundle, exec_id)).unwrap();
    }
    let exit = Exit { status: 4, at: std::time::UNIX_EPOCH };
    stopped.edit_record("t1", |record| {
        let template = crate::daemon::state::ExecRecord {
            exec_id: String::new(),
            stdio: Default::default(),
            terminal: false,
            lifecycle: ExecLifecycle::Added,
        };
        for (exec_id, lifecycle) in [
            ("added", ExecLifecycle::Added),
            ("running", ExecLifecycle::Running { pid: EXEC_PID }),
            ("gone", ExecLifecycle::Running { pid: EXEC_PID }),
            ("exited", ExecLifecycle::Exited { pid: EXEC_PID, exit }),
            ("deleting", ExecLifecycle::Deleting { pid: EXEC_PID, exit: Some(exit) }),
        ] {
            record.execs.push(crate::daemon::state::ExecRecord {
                exec_id: exec_id.into(),
                lifecycle,
                ..template.clone()
            });
        }
    });
    stopped.systemd.add_unit(Daemon::exec_unit("t1", "running").as_str(), "active");
    stopped.systemd.add_unit(Daemon::exec_unit("t1", "deleting").as_str(), "active");
    // "gone": its unit is gone; its helper recorded its exit in the exec's directory.
    let state = ExitState { status: 6, signal: None, exited_at_unix_ns: 1 };
    runc_wrap::atomic_file::write_json_atomically(&exec_dir(&bundle, "gone").join(files::exec::EXIT_STATE), &state)
        .unwrap();
    let (daemon, _) = stopped.restart().await;

    let lifecycle = |exec_id: &str| *daemon.manager.exec_of(&key, exec_id).expect(exec_id).1.lifecycle();
    assert_eq!(lifecycle("added"), ExecLifecycle::Added);
    assert_eq!(lifecycle("running"), ExecLifecycle::Running { pid: EXEC_PID });
    assert!(matches!(lifecycle("gone"), ExecLifecycle::Exited { exit: Exit { status: 6, .. }, .. }));
    assert_eq!(lifecycle("exited"), ExecLifecycle::Exited { pid: EXEC_PID, exit });
    assert!(
        matches!(daemon.manager.exec_of(&key, "deleting"), Err(Error::ExecNotFound { .. })),
        "its delete is finished"
    );
    assert!(!daemon.systemd.has_unit(Daemon::exec_unit("t1", "deleting").as_str()));
    daemon.events.published("/tasks/exit", 1).await;
    assert_eq!(daemon.events.exits().iter().map(|exit| exit.id.as_str()).collect::<Vec<_>>(), ["gone"]);

    daemon.systemd.main_process_exited(Daemon::exec_unit("t1", "running").as_str(), EXEC_PID, 0, false).await;
    assert_eq!(within(daemon.manager.wait_exec(&key, "running")).await.expect("waited").status, 0);
}
