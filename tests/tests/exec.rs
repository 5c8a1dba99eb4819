//! Exec processes through `ctr task exec`: output, exit codes, events, kill, concurrency, pids,
//! and that each exec's unit is gone once the exec is deleted.

use std::time::Duration;

use tests::{assert_nothing_left, exec_unit_of, finish, unique_id, wait_until, EventWatcher, Sandbox};

#[test]
fn exec_output_and_exit_code_reach_ctr_and_its_unit_is_removed() {
    let sandbox = Sandbox::get();
    let id = unique_id("exec");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    let run =
        sandbox.ctr("default", &["task", "exec", "--exec-id", "e1", &id, "sh", "-c", "echo out; echo err >&2; exit 5"]);
    assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (5, "out\n", "err\n"), "{run:?}");
    let unit = exec_unit_of("default", &id, "e1");
    assert!(wait_until(Duration::from_secs(10), || !sandbox.unit_loaded(&unit)), "{unit} left behind");
    // The same exec id can be used again once the first is deleted.
    let again = sandbox.ctr("default", &["task", "exec", "--exec-id", "e1", &id, "true"]);
    assert_eq!(again.code, 0, "{again:?}");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn exec_events_arrive_added_started_exit_in_order() {
    let sandbox = Sandbox::get();
    let namespace = "exec-events";
    let watcher = EventWatcher::start(sandbox, namespace);
    let id = unique_id("exec-events");
    sandbox.ctr_run_detached(namespace, &id, &["sleep", "1000"]);
    sandbox.ctr(namespace, &["task", "exec", "--exec-id", "ev1", &id, "sh", "-c", "exit 4"]);
    let exec_exit = |line: &String| line.contains("/tasks/exit") && line.contains("\"id\":\"ev1\"");
    assert!(wait_until(Duration::from_secs(10), || watcher.lines().iter().any(exec_exit)), "{:?}", watcher.lines());
    let topics = watcher.task_topics(&id);
    assert_eq!(topics, ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"]);
    let exit_line = watcher.lines().into_iter().find(exec_exit).unwrap_or_default();
    assert!(exit_line.contains("\"exit_status\":4"), "{exit_line}");
    sandbox.remove_task(namespace, &id);
    assert_nothing_left(sandbox, namespace, &id);
}

#[test]
fn many_concurrent_execs_each_report_their_own_exit_code() {
    let sandbox = Sandbox::get();
    let id = unique_id("execs");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    let children: Vec<_> = (0..8)
        .map(|n| {
            let exec_id = format!("c{n}");
            let script = format!("sleep 0.{n}; echo {exec_id}; exit {}", 10 + n);
            let args = [&sandbox.ctr, "-n", "default", "task", "exec", "--exec-id", &exec_id, &id, "sh", "-c", &script];
            (
                n,
                sandbox
                    .command(&args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn"),
            )
        })
        .collect();
    for (n, child) in children {
        let run = finish(child);
        assert_eq!((run.code, run.stdout.trim()), (10 + n, format!("c{n}").as_str()), "exec c{n}: {run:?}");
    }
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn killing_an_exec_ends_it_with_the_signal_and_pids_name_it() {
    let sandbox = Sandbox::get();
    let id = unique_id("exec-kill");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    let args = [&sandbox.ctr, "-n", "default", "task", "exec", "--exec-id", "sleeper", &id, "sleep", "1000"];
    let child = sandbox
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let unit = exec_unit_of("default", &id, "sleeper");
    assert!(wait_until(Duration::from_secs(10), || sandbox.unit_property(&unit, "ActiveState") == "active"));

    let ps = sandbox.ctr("default", &["task", "ps", &id]).success("ctr task ps");
    let exec_line = ps.stdout.lines().find(|line| line.contains("sleeper")).unwrap_or_else(|| panic!("{ps:?}"));
    let exec_pid = exec_line.split_whitespace().next().unwrap_or_default().to_string();
    assert_eq!(ps.stdout.lines().count(), 3, "header, init and the exec: {ps:?}");
    assert!(sandbox.unit_property(&unit, "StatusText").contains(&exec_pid), "the unit names its process");

    sandbox.ctr("default", &["task", "kill", "--exec-id", "sleeper", "-s", "SIGKILL", &id]).success("kill exec");
    let run = finish(child);
    assert_eq!(run.code, 137, "{run:?}");
    assert_eq!(sandbox.task_status("default", &id).map(|(_, status)| status).as_deref(), Some("RUNNING"));
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn deleting_a_task_with_a_running_exec_removes_the_exec_unit() {
    let sandbox = Sandbox::get();
    let id = unique_id("exec-orphan");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    sandbox.ctr("default", &["task", "exec", "-d", "--exec-id", "bg", &id, "sleep", "1000"]).success("exec -d");
    let unit = exec_unit_of("default", &id, "bg");
    assert!(wait_until(Duration::from_secs(10), || sandbox.unit_property(&unit, "ActiveState") == "active"));
    sandbox.remove_task("default", &id);
    assert!(wait_until(Duration::from_secs(10), || !sandbox.unit_loaded(&unit)), "{unit} left behind");
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn exec_into_a_stopped_task_is_refused() {
    let sandbox = Sandbox::get();
    let id = unique_id("exec-stopped");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    sandbox.ctr("default", &["task", "kill", "-s", "SIGKILL", &id]).success("kill");
    sandbox.wait_for_status("default", &id, "STOPPED");
    let run = sandbox.ctr("default", &["task", "exec", "--exec-id", "late", &id, "true"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("stopped: cannot exec"), "{run:?}");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}
