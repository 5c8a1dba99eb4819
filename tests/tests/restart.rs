//! Survival: containers are units, so they outlive the daemon. A daemon killed with SIGKILL (or
//! restarted, or systemd reloaded) comes back with containerd's connections from systemd's fd
//! store and every task from its records; exits that happened while it was down are reported
//! with the right status. containerd itself may restart too.
//!
//! These tests restart shared things (the daemon, containerd), so they take a lock that keeps
//! them from overlapping each other.

use std::sync::Mutex;
use std::time::Duration;

use tests::{assert_nothing_left, finish, unique_id, wait_until, EventWatcher, Sandbox};

static RESTARTS: Mutex<()> = Mutex::new(());

/// Lines containerd logged about dead shims between `since` and `until` (`journalctl` times).
/// (containerd also logs "shim disconnected" when it closes a deleted task's connection itself,
/// so the window must end before the tasks are deleted.)
fn dead_shim_reports(sandbox: &Sandbox, since: &str, until: &str, ids: &[String]) -> Vec<String> {
    let log = sandbox.run(&[
        "journalctl",
        "--no-pager",
        "-o",
        "cat",
        "-u",
        &sandbox.containerd_unit,
        "--since",
        since,
        "--until",
        until,
    ]);
    log.stdout
        .lines()
        .filter(|line| line.contains("shim disconnected") || line.contains("dead shim"))
        .filter(|line| ids.iter().any(|id| line.contains(&format!("id={id}"))))
        .map(str::to_string)
        .collect()
}

/// The lifecycle events of a task whose init ran and exited, in order, once each.
const LIFECYCLE: [&str; 4] = ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"];

/// Asserts that containerd got exactly the events `expected(id)` for each task, in that order:
/// no exit lost or repeated across the restart.
fn assert_events_once_each_in_order(
    watcher: &EventWatcher,
    ids: &[String],
    expected: impl Fn(&str) -> Vec<&'static str>,
) {
    let arrived = || ids.iter().all(|id| watcher.task_topics(id).len() >= expected(id).len());
    wait_until(Duration::from_secs(10), arrived);
    std::thread::sleep(Duration::from_secs(1)); // room for a repeat to show up
    let wrong: Vec<(String, Vec<String>)> = ids
        .iter()
        .map(|id| (id.clone(), watcher.task_topics(id)))
        .filter(|(id, topics)| *topics != expected(id))
        .collect();
    assert_eq!(wrong, Vec::new(), "tasks whose events are not {:?} (or as expected for them)", expected(&ids[0]));
}

fn now(sandbox: &Sandbox) -> String {
    sandbox.run(&["date", "+%Y-%m-%d %H:%M:%S"]).stdout.trim().to_string()
}

/// A container that exits with `code` when it gets SIGUSR1 (init ignores signals it has no
/// handler for).
const EXIT_ON_USR1: &str = "trap 'exit $CODE' USR1; while :; do sleep 0.1; done";

/// Runs `count` containers in `namespace`, all started at once, that exit with
/// `first_code + n` on SIGUSR1 ([`EXIT_ON_USR1`]); returns their ids and init pids once each runs.
fn run_containers_exiting_on_usr1(
    sandbox: &Sandbox,
    namespace: &str,
    prefix: &str,
    count: usize,
    first_code: usize,
) -> (Vec<String>, Vec<u32>) {
    let ids: Vec<String> = (0..count).map(|n| unique_id(&format!("{prefix}{n}"))).collect();
    let runs: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let code = format!("CODE={}", first_code + n);
            let args =
                ["run", "-d", "--runtime", tests::RUNTIME, "--env", &code, tests::IMAGE, id, "sh", "-c", EXIT_ON_USR1];
            sandbox.spawn_ctr(namespace, &args)
        })
        .collect();
    for run in runs {
        finish(run).success("ctr run -d");
    }
    let pids = ids.iter().map(|id| sandbox.wait_for_status(namespace, id, "RUNNING")).collect();
    (ids, pids)
}

/// How many `Wait` requests the daemon serving the sandbox's containerd has noted for replay
/// after a restart (a file each under its state directory's `pending-waits/<connection>/`).
fn noted_waits(sandbox: &Sandbox) -> usize {
    let pending = sandbox.host_path(format!("{}/pending-waits", sandbox.daemon_state_dir()));
    let connections = std::fs::read_dir(pending).into_iter().flatten().flatten();
    connections.map(|connection| std::fs::read_dir(connection.path()).into_iter().flatten().count()).sum()
}

/// Kills the daemon whose pid is `daemon_pid` with SIGKILL and waits until systemd has started
/// the next one and that one has said it is ready (its unit is active again).
fn kill_daemon_and_await_the_next(sandbox: &Sandbox, daemon_pid: u32) {
    sandbox.run(&["kill", "-KILL", &daemon_pid.to_string()]).success("kill the daemon");
    let restarted = wait_until(tests::scaled(Duration::from_secs(20)), || {
        let (unit, pid) = sandbox.daemon();
        pid != 0 && pid != daemon_pid && sandbox.unit_property(&unit, "ActiveState") == "active"
    });
    assert!(restarted, "systemd restarts the daemon, and the new one becomes ready");
}

#[test]
fn daemon_killed_with_many_tasks_adopts_them_all_and_reports_exits_from_while_it_was_down() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-kill";
    sandbox.ensure_image(namespace);
    let watcher = EventWatcher::start(sandbox, namespace);
    let count = tests::many_tasks(20);
    let (exit_while_down, exec_in) = (count / 4, count / 2);
    let (ids, pids) = run_containers_exiting_on_usr1(sandbox, namespace, "survivor", count, 40);
    let since = now(sandbox);
    let (unit, daemon_pid) = sandbox.daemon();

    // The daemon stops answering (SIGSTOP); a quarter of the containers exit meanwhile; then
    // it dies.
    sandbox.run(&["kill", "-STOP", &daemon_pid.to_string()]).success("stop the daemon");
    for (n, pid) in pids.iter().enumerate().take(exit_while_down) {
        sandbox.run(&["kill", "-USR1", &pid.to_string()]).success("signal a container");
        let unit = tests::unit_of(namespace, &ids[n]);
        // The unit keeps the exit ("exited") until the task is deleted.
        assert!(wait_until(Duration::from_secs(10), || sandbox.unit_property(&unit, "SubState") == "exited"));
    }
    kill_daemon_and_await_the_next(sandbox, daemon_pid);
    assert_eq!(sandbox.unit_property(&unit, "ActiveState"), "active");

    for (n, id) in ids.iter().enumerate() {
        let expected = if n < exit_while_down { "STOPPED" } else { "RUNNING" };
        sandbox.wait_for_status(namespace, id, expected);
    }
    // The others are still manageable: exec, then exit with their own codes.
    let exec = sandbox.ctr(namespace, &["task", "exec", "--exec-id", "after", &ids[exec_in], "echo", "alive"]);
    assert_eq!(exec.stdout.trim(), "alive", "{exec:?}");
    for pid in pids.iter().skip(exit_while_down) {
        sandbox.run(&["kill", "-USR1", &pid.to_string()]).success("signal a container");
    }
    std::thread::sleep(Duration::from_secs(1)); // journal times have one-second steps
    let until = now(sandbox);
    for (n, id) in ids.iter().enumerate() {
        sandbox.wait_for_status(namespace, id, "STOPPED");
        let rm = sandbox.ctr(namespace, &["task", "rm", id]);
        assert!(rm.stderr.contains(&format!("exit code {}", 40 + n)), "task {id} exited {}: {rm:?}", 40 + n);
        sandbox.ctr(namespace, &["container", "rm", id]).success("container rm");
        assert_nothing_left(sandbox, namespace, id);
    }
    let reports = dead_shim_reports(sandbox, &since, &until, &ids);
    assert_eq!(reports, Vec::<String>::new(), "containerd never saw a dead shim");
    let with_exec = ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"];
    assert_events_once_each_in_order(&watcher, &ids, |id| {
        if id == ids[exec_in] {
            [&with_exec[..], &LIFECYCLE[2..]].concat()
        } else {
            LIFECYCLE.to_vec()
        }
    });
}

#[test]
fn containerd_restart_keeps_every_task_listed_and_manageable() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-containerd";
    let ids: Vec<String> = (0..3).map(|n| unique_id(&format!("through{n}"))).collect();
    for id in &ids {
        sandbox.ctr_run_detached(namespace, id, &["sleep", "1000"]);
    }
    sandbox.run(&["systemctl", "restart", &sandbox.containerd_unit]).success("restart containerd");
    let back = wait_until(Duration::from_secs(30), || sandbox.ctr(namespace, &["task", "ls"]).code == 0);
    assert!(back, "containerd answers again");
    for id in &ids {
        sandbox.wait_for_status(namespace, id, "RUNNING");
    }
    // The daemon's events reach the new containerd (its old connection died with the old one).
    let watcher = EventWatcher::start(sandbox, namespace);
    let exec = sandbox.ctr(namespace, &["task", "exec", "--exec-id", "after", &ids[0], "echo", "still-here"]);
    assert_eq!(exec.stdout.trim(), "still-here", "{exec:?}");
    for id in &ids {
        sandbox.remove_task(namespace, id);
        assert_nothing_left(sandbox, namespace, id);
    }
    let exec_events = ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"];
    assert_events_once_each_in_order(&watcher, &ids, |id| {
        if id == ids[0] {
            [&exec_events[..], &LIFECYCLE[2..]].concat()
        } else {
            LIFECYCLE[2..].to_vec()
        }
    });
}

#[test]
fn restarting_the_daemon_and_reloading_systemd_under_load_lose_nothing() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-load";
    sandbox.ensure_image(namespace);
    let watcher = EventWatcher::start(sandbox, namespace);

    let runs: Vec<(String, std::process::Child)> = (0..tests::many_tasks(20))
        .map(|n| {
            let id = unique_id(&format!("load{n}"));
            let script = format!("sleep 0.{}; exit {}", n % 10, n + 1);
            let child = sandbox.spawn_ctr(
                namespace,
                &["run", "--rm", "--runtime", tests::RUNTIME, tests::IMAGE, &id, "sh", "-c", &script],
            );
            (id, child)
        })
        .collect();
    // The runs launch the daemon, if none ran before.
    assert!(wait_until(tests::scaled(Duration::from_secs(10)), || sandbox.daemon_unit().is_some()), "no daemon runs");
    let (unit, _) = sandbox.daemon();
    sandbox.run(&["systemctl", "daemon-reload"]).success("daemon-reload");
    sandbox.run(&["systemctl", "restart", &unit]).success("restart the daemon");
    let mut ids = Vec::new();
    for (n, (id, child)) in runs.into_iter().enumerate() {
        let run = finish(child);
        assert_eq!(run.code, n as i32 + 1, "ctr run {id}: {run:?}");
        assert_nothing_left(sandbox, namespace, &id);
        ids.push(id);
    }
    assert_events_once_each_in_order(&watcher, &ids, |_| LIFECYCLE.to_vec());
}

#[test]
fn a_client_waiting_through_a_daemon_crash_still_gets_the_exit_code() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-wait";
    sandbox.ensure_image(namespace);
    let id = unique_id("waiter");
    let args = ["run", "--rm", "--runtime", tests::RUNTIME, tests::IMAGE, &id, "sh", "-c", "sleep 3; exit 9"];
    let noted_before = noted_waits(sandbox);
    let child = sandbox.spawn_ctr(namespace, &args);
    sandbox.wait_for_status(namespace, &id, "RUNNING");
    assert!(
        wait_until(tests::scaled(Duration::from_secs(10)), || noted_waits(sandbox) > noted_before),
        "the daemon never noted ctr's Wait: the crash below would not test the replay"
    );
    let (_, daemon_pid) = sandbox.daemon();
    sandbox.run(&["kill", "-KILL", &daemon_pid.to_string()]).success("kill the daemon");
    let run = finish(child);
    assert_eq!(run.code, 9, "the Wait noted before the crash is answered by the next daemon: {run:?}");
    assert_nothing_left(sandbox, namespace, &id);
}

#[test]
fn a_task_that_exited_before_a_restart_answers_wait_at_once_after_it() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-exited";
    sandbox.ensure_image(namespace);
    let id = unique_id("exited");
    let run =
        sandbox.ctr(namespace, &["run", "-d", "--runtime", tests::RUNTIME, tests::IMAGE, &id, "sh", "-c", "exit 5"]);
    assert_eq!(run.code, 0, "ctr run -d: {run:?}");
    sandbox.wait_for_status(namespace, &id, "STOPPED");
    let (unit, _) = sandbox.daemon();
    sandbox.run(&["systemctl", "restart", &unit]).success("restart the daemon");

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let waited = runtime.block_on(async {
        let client = tests::direct::client(sandbox, namespace).await;
        tokio::time::timeout(Duration::from_secs(10), tests::calls::wait(&client, &id)).await
    });
    let deleted = sandbox.ctr(namespace, &["task", "delete", &id]);
    let removed = sandbox.ctr(namespace, &["container", "delete", &id]);
    let response = waited.expect("Wait on the adopted, exited task answers at once").expect("Wait succeeds");
    assert_eq!(response.exit_status, 5, "{response:?}");
    assert_eq!((deleted.code, removed.code), (0, 0), "{deleted:?} {removed:?}");
    assert_nothing_left(sandbox, namespace, &id);
}

#[test]
fn a_unit_stopped_while_the_daemon_is_down_reports_its_exit_from_the_exit_file() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-stopped";
    sandbox.ensure_image(namespace);
    let id = unique_id("stopped");
    let args =
        ["run", "-d", "--runtime", tests::RUNTIME, "--env", "CODE=23", tests::IMAGE, &id, "sh", "-c", EXIT_ON_USR1];
    sandbox.ctr(namespace, &args).success("ctr run -d");
    let pid = sandbox.wait_for_status(namespace, &id, "RUNNING");
    let task_unit = tests::unit_of(namespace, &id);
    let (_, daemon_pid) = sandbox.daemon();

    // With the daemon frozen, the container exits and an operator stops its unit: systemd
    // forgets the unit (it ended cleanly), so only the ExecStopPost record keeps the status.
    sandbox.run(&["kill", "-STOP", &daemon_pid.to_string()]).success("stop the daemon");
    sandbox.run(&["kill", "-USR1", &pid.to_string()]).success("signal the container");
    assert!(wait_until(Duration::from_secs(10), || sandbox.unit_property(&task_unit, "SubState") == "exited"));
    sandbox.run(&["systemctl", "stop", &task_unit]).success("systemctl stop");
    assert!(!sandbox.unit_loaded(&task_unit), "a cleanly stopped unit is collected");
    assert_eq!(sandbox.exit_files_of(&task_unit).len(), 1, "ExecStopPost recorded the exit");
    kill_daemon_and_await_the_next(sandbox, daemon_pid);

    sandbox.wait_for_status(namespace, &id, "STOPPED");
    let rm = sandbox.ctr(namespace, &["task", "rm", &id]);
    assert!(rm.stderr.contains("exit code 23"), "the recorded status is reported: {rm:?}");
    sandbox.ctr(namespace, &["container", "rm", &id]).success("container rm");
    assert_nothing_left(sandbox, namespace, &id);
}

#[test]
fn a_restarted_daemon_removes_exit_files_no_task_owns() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-sweep";
    sandbox.ensure_image(namespace);
    // A task whose exit file is left: as if the daemon died right after Delete answered,
    // before its unit's stop ended.
    let id = unique_id("swept");
    let run = sandbox.ctr(namespace, &["run", "--rm", "--runtime", tests::RUNTIME, tests::IMAGE, &id, "true"]);
    assert_eq!(run.code, 0, "ctr run --rm: {run:?}");
    let task_unit = tests::unit_of(namespace, &id);
    assert!(wait_until(Duration::from_secs(10), || sandbox.exit_files_of(&task_unit).is_empty()));
    let (_, daemon_pid) = sandbox.daemon();
    let left = sandbox.host_path(sandbox.daemon_state_dir()).join("exits").join(format!("{task_unit}.json"));
    std::fs::write(&left, br#"{"status":0,"signal":null,"exited_at_unix_ns":1800000000000000000}"#)
        .expect("write an exit file");

    kill_daemon_and_await_the_next(sandbox, daemon_pid);
    let swept = wait_until(Duration::from_secs(10), || !left.exists());
    assert!(swept, "an exit file with no task is removed at adoption: {}", left.display());
    assert_nothing_left(sandbox, namespace, &id);
}

#[test]
fn systemd_reexecuting_itself_while_tasks_run_loses_nothing() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let namespace = "restart-reexec";
    sandbox.ensure_image(namespace);
    let watcher = EventWatcher::start(sandbox, namespace);
    let (ids, pids) = run_containers_exiting_on_usr1(sandbox, namespace, "reexec", 5, 60);
    let (daemon_unit, _) = sandbox.daemon();

    // systemd serializes its state, execs itself and reads it back: every connection to it
    // closes, units and their processes stay. Two containers exit right after.
    sandbox.run(&["systemctl", "daemon-reexec"]).success("systemctl daemon-reexec");
    for pid in pids.iter().take(2) {
        sandbox.run(&["kill", "-USR1", &pid.to_string()]).success("signal a container");
    }
    for (n, id) in ids.iter().enumerate() {
        sandbox.wait_for_status(namespace, id, if n < 2 { "STOPPED" } else { "RUNNING" });
        assert_eq!(sandbox.unit_property(&tests::unit_of(namespace, id), "LoadState"), "loaded", "{id}");
    }
    assert!(
        wait_until(Duration::from_secs(30), || sandbox.unit_property(&daemon_unit, "ActiveState") == "active"),
        "the daemon's unit is active again"
    );
    let exec = sandbox.ctr(namespace, &["task", "exec", "--exec-id", "after", &ids[3], "echo", "alive"]);
    assert_eq!(exec.stdout.trim(), "alive", "{exec:?}");
    for pid in pids.iter().skip(2) {
        sandbox.run(&["kill", "-USR1", &pid.to_string()]).success("signal a container");
    }
    for (n, id) in ids.iter().enumerate() {
        sandbox.wait_for_status(namespace, id, "STOPPED");
        let rm = sandbox.ctr(namespace, &["task", "rm", id]);
        assert!(rm.stderr.contains(&format!("exit code {}", 60 + n)), "task {id} exited {}: {rm:?}", 60 + n);
        sandbox.ctr(namespace, &["container", "rm", id]).success("container rm");
        assert_nothing_left(sandbox, namespace, id);
    }
    let with_exec = ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"];
    assert_events_once_each_in_order(&watcher, &ids, |id| {
        if id == ids[3] {
            [&with_exec[..], &LIFECYCLE[2..]].concat()
        } else {
            LIFECYCLE.to_vec()
        }
    });
}

/// What a `binary://` logger saw of a container run with `runtime`: its first line of args and
/// identity, stdout, stderr, and whether it was gone once the task was deleted. With ours, the daemon restarts while the container and its logger run.
fn binary_logger_run(sandbox: &Sandbox, runtime: &str, restart_daemon: bool) -> (String, String, String, bool) {
    let namespace = "log-uri";
    sandbox.ensure_image(namespace);
    let id = unique_id("binlog");
    let dir = sandbox.root.join("loggers").join(&id);
    std::fs::create_dir_all(&dir).expect("logger directory");
    let logger = dir.join("logger.sh");
    // containerd's contract: the streams on fds 3 and 4, readiness by closing fd 5 (before the
    // readers start, or they would hold it open), CONTAINER_ID and CONTAINER_NAMESPACE set.
    let script = r#"#!/bin/sh
dir=$2
echo "$CONTAINER_NAMESPACE/$CONTAINER_ID $1" > "$dir/who"
echo $$ > "$dir/pid"
exec 5>&-
/bin/cat <&3 > "$dir/stdout" &
/bin/cat <&4 > "$dir/stderr" &
wait
"#;
    std::fs::write(&logger, script).expect("logger script");
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let uri = format!("binary://{}?dir={}", logger.display(), dir.display());
    let command = "echo out1; echo err1 >&2; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo out2";
    let args = ["run", "-d", "--runtime", runtime, "--log-uri", &uri, tests::IMAGE, &id, "sh", "-c", command];
    sandbox.ctr(namespace, &args).success("ctr run -d --log-uri binary://");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let first = wait_until(Duration::from_secs(10), || read("stdout") == "out1\n" && read("stderr") == "err1\n");
    assert!(first, "{runtime}: the logger got the first lines: {:?} {:?}", read("stdout"), read("stderr"));
    if restart_daemon {
        let (unit, _) = sandbox.daemon();
        sandbox.run(&["systemctl", "restart", &unit]).success("restart the daemon");
        let logger_pid = read("pid").trim().to_string();
        sandbox.run(&["kill", "-0", &logger_pid]).success("the logger outlived the daemon's restart");
    }
    sandbox.ctr(namespace, &["task", "exec", "--exec-id", "go", &id, "touch", "/tmp/go"]).success("exec");
    sandbox.wait_for_status(namespace, &id, "STOPPED");
    let last = wait_until(Duration::from_secs(10), || read("stdout") == "out1\nout2\n");
    assert!(last, "{runtime}: the logger got the line after the restart: {:?}", read("stdout"));
    let logger_pid = read("pid").trim().to_string();
    sandbox.remove_task(namespace, &id);
    let finished = wait_until(Duration::from_secs(20), || sandbox.run(&["kill", "-0", &logger_pid]).code != 0);
    assert_nothing_left(sandbox, namespace, &id);
    let seen = (read("who").replace(&id, "ID"), read("stdout"), read("stderr"), finished);
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

/// `binary://` log URIs (nerdctl's default logging) work as under runc-v2, and the logger
/// lives in the container's unit: a daemon restart does not touch it.
#[test]
fn a_binary_log_uri_logger_gets_the_output_and_outlives_a_daemon_restart_as_under_runc_v2() {
    let _lock = RESTARTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sandbox = Sandbox::get();
    let expected = ("log-uri/ID dir\n".to_string(), "out1\nout2\n".to_string(), "err1\n".to_string(), true);
    let ours = binary_logger_run(sandbox, tests::RUNTIME, true);
    assert_eq!(ours, expected, "ours: (identity and args, stdout, stderr, logger gone after Delete)");
    let baseline = binary_logger_run(sandbox, tests::grpc::RUNC_V2, false);
    assert_eq!(baseline, expected, "runc-v2: (identity and args, stdout, stderr, logger gone after Delete)");
}
