//! Docker (moby) on our runtime: dockerd 26 (Debian trixie's, `tests/fetch-docker`) on the test
//! containerd, started by `tests/dockerd-in-sandbox` with `deploy/docker-daemon.json` (our
//! runtime registered by `runtimeType`) and, a second one, with `deploy/docker-daemon-default.json`
//! (our runtime as `default-runtime`). Every container uses `--network none`.
//!
//! Each test checks that the container ran as our unit while it ran (active, its main process
//! the container's init as Docker reports it) and that nothing of it is left afterwards. Every
//! test here is named `docker_…`: `tests/run -- docker_` runs them alone.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tests::docker::{Container, Docker, IMAGE, RUNTIME_NAME};
use tests::{finish, unique_id, wait_until, Sandbox, RUNTIME};

/// How long a container may take to appear, or a unit to go, after the test asked.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until stopped: on SIGTERM it says so and exits 5.
const TRAPS_TERM: [&str; 3] =
    ["sh", "-c", "trap 'echo got-term; exit 5' TERM; echo started; while true; do sleep 0.1; done"];
/// Runs until killed: it ignores SIGTERM.
const IGNORES_TERM: [&str; 3] = ["sh", "-c", "trap '' TERM; echo started; while true; do sleep 0.1; done"];

/// `docker run -d --network none --runtime io.containerd.systemd.v1 IMAGE command…`.
fn run_ours<'a>(docker: &'a Docker, command: &[&str]) -> Container<'a> {
    docker.run_detached(&["--runtime", RUNTIME], command)
}

/// Starts `docker run OPTIONS… --name NAME --network none --runtime (ours) IMAGE sh -c SCRIPT` in
/// the background: a foreground `docker run` the test watches.
fn spawn_run(docker: &Docker, options: &[&str], name: &str, script: &str) -> Child {
    let mut args = vec!["run"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["--name", name, "--network", "none", "--runtime", RUNTIME, IMAGE, "sh", "-c", script]);
    docker.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("docker runs")
}

/// Waits until container `name` exists and Docker reports it running.
fn running<'a>(docker: &'a Docker, name: &str) -> Container<'a> {
    let mut found = None;
    let appeared = wait_until(SETTLE_TIMEOUT, || {
        found = docker.container(name).filter(|container| container.state().status == "running");
        found.is_some()
    });
    assert!(appeared, "container {name} never ran");
    found.expect("found when it appeared")
}

/// Asserts that a container run with `--rm` is gone, from Docker and from our runtime.
fn assert_gone(docker: &Docker, container: &Container<'_>) {
    let unlisted = wait_until(SETTLE_TIMEOUT, || !docker.lists(&container.id));
    assert!(unlisted, "docker ps -a still lists {} after --rm", container.id);
    container.assert_task_left_nothing();
}

#[test]
fn docker_run_with_our_runtime_prints_output_and_returns_the_exit_code() {
    let docker = Docker::get();
    let name = unique_id("docker-run");
    // The container runs until the test has seen its unit; SIGUSR1 then ends it with exit 3.
    let script = "trap 'echo to-stderr >&2; exit 3' USR1; echo to-stdout; while true; do sleep 0.1; done";
    let child = spawn_run(docker, &[], &name, script);
    let container = running(docker, &name);
    container.assert_runs_as_our_unit();
    assert_eq!(container.inspect("{{.HostConfig.Runtime}}"), RUNTIME);
    docker.run(&["kill", "-s", "USR1", &name]).success("docker kill -s USR1");
    let run = finish(child);
    assert_eq!(run.code, 3, "docker run returns the container's exit code: {run:?}");
    assert_eq!(run.stdout, "to-stdout\n", "{run:?}");
    assert_eq!(run.stderr, "to-stderr\n", "{run:?}");
    let state = container.wait_for_status("exited");
    assert_eq!(state.exit_code, 3, "{state:?}");
    container.assert_task_left_nothing();
    container.remove();
}

/// `deploy/docker-daemon.json` registers our runtime as `systemd` by `runtimeType`.
#[test]
fn docker_run_with_the_runtime_name_from_daemon_json_uses_our_runtime() {
    let docker = Docker::get();
    let container = docker.run_detached(&["--runtime", RUNTIME_NAME], &["sleep", "1000"]);
    container.assert_runs_as_our_unit();
    assert_eq!(container.inspect("{{.HostConfig.Runtime}}"), RUNTIME_NAME);
    container.remove();
}

#[test]
fn docker_run_rm_leaves_nothing_once_the_container_exits() {
    let docker = Docker::get();
    let name = unique_id("docker-rm");
    let child = spawn_run(docker, &["--rm"], &name, "trap 'echo bye; exit 0' USR1; while true; do sleep 0.1; done");
    let container = running(docker, &name);
    container.assert_runs_as_our_unit();
    docker.run(&["kill", "-s", "USR1", &name]).success("docker kill -s USR1");
    let run = finish(child);
    assert_eq!((run.code, run.stdout.as_str()), (0, "bye\n"), "{run:?}");
    assert_gone(docker, &container);
}

/// Docker sends ResizePty after Start: the container waits until its terminal has the client's
/// size (the test's deadline bounds that), and ends when the test has seen it run (SIGUSR1).
#[test]
fn docker_run_it_gives_a_terminal_sized_like_the_clients() {
    let docker = Docker::get();
    let name = unique_id("docker-tty");
    let on_usr1 = "until [ \"$(stty size)\" = \"33 101\" ]; do sleep 0.1; done; stty size; tty; exit 4";
    let script = format!("trap '{on_usr1}' USR1; while :; do sleep 0.1; done");
    let command = format!(
        "stty rows 33 cols 101; {} run -it --rm --name {name} --network none --runtime {RUNTIME} {IMAGE} \
         sh -c '{}'",
        docker.shell_prefix(),
        script.replace('\'', "'\\''"),
    );
    let mut container = None;
    let run = Sandbox::get().in_terminal(&command, &[], || {
        let running = running(docker, &name);
        running.assert_runs_as_our_unit();
        assert_eq!(running.inspect("{{.Config.Tty}}"), "true");
        docker.run(&["kill", "-s", "USR1", &running.id]).success("docker kill -s USR1");
        container = Some(running);
    });
    assert!(run.stdout.contains("33 101\r\n"), "ResizePty reached the container's terminal: {run:?}");
    assert!(run.stdout.contains("/dev/pts/0\r\n"), "{run:?}");
    assert_eq!(run.code, 4, "{run:?}");
    assert_gone(docker, &container.expect("seen running"));
}

#[test]
fn docker_run_it_runs_an_interactive_shell() {
    let docker = Docker::get();
    let name = unique_id("docker-shell");
    let command =
        format!("{} run -it --rm --name {name} --network none --runtime {RUNTIME} {IMAGE} sh", docker.shell_prefix());
    let mut container = None;
    let run = Sandbox::get().in_terminal(&command, &["echo hi-$((6*7))", "exit 7"], || {
        let running = running(docker, &name);
        running.assert_runs_as_our_unit();
        container = Some(running);
    });
    assert!(run.stdout.contains("hi-42"), "the shell read our input and answered: {run:?}");
    assert_eq!(run.code, 7, "{run:?}");
    assert_gone(docker, &container.expect("seen running"));
}

#[test]
fn docker_exec_runs_in_an_exec_unit_with_its_output_and_exit_code() {
    let docker = Docker::get();
    let container = run_ours(docker, &["sleep", "1000"]);
    container.assert_runs_as_our_unit();

    let run = container.exec(&[], &["sh", "-c", "echo in-exec; echo exec-err >&2; exit 4"]);
    assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (4, "in-exec\n", "exec-err\n"), "{run:?}");

    // A detached exec keeps running: Docker's exec id is containerd's, and so names our unit.
    container.exec(&["-d"], &["sleep", "1000"]).success("docker exec -d");
    let mut exec_ids: Vec<String> = Vec::new();
    let one_left = wait_until(SETTLE_TIMEOUT, || {
        exec_ids = serde_json::from_str(&container.inspect("{{json .ExecIDs}}")).expect("ExecIDs");
        exec_ids.len() == 1
    });
    assert!(one_left, "Docker forgets a finished exec; only the detached one still runs: {exec_ids:?}");
    let exec_unit = container.exec_unit(&exec_ids[0]);
    let sandbox = Sandbox::get();
    assert!(sandbox.unit_loaded(&exec_unit), "exec {} runs, but not as unit {exec_unit}", exec_ids[0]);
    assert_eq!(sandbox.unit_property(&exec_unit, "ActiveState"), "active", "unit {exec_unit}");
    let top = docker.run(&["top", &container.id]).success("docker top");
    assert_eq!(top.stdout.matches("sleep 1000").count(), 2, "init and exec: {top:?}");

    container.remove();
    let exec_gone = wait_until(SETTLE_TIMEOUT, || !sandbox.unit_loaded(&exec_unit));
    assert!(exec_gone, "exec unit {exec_unit} outlived its container");
}

#[test]
fn docker_exec_it_gives_an_interactive_shell_sized_like_the_clients() {
    let docker = Docker::get();
    let container = run_ours(docker, &["sleep", "1000"]);
    container.assert_runs_as_our_unit();
    let sized =
        format!("stty rows 20 cols 70; {} exec -it {} sh -c 'sleep 1; stty size'", docker.shell_prefix(), container.id);
    let run = Sandbox::get().in_terminal(&sized, &[], || {});
    assert!(run.stdout.contains("20 70"), "{run:?}");

    let shell = format!("{} exec -it {} sh", docker.shell_prefix(), container.id);
    let run = Sandbox::get().in_terminal(&shell, &["echo hi-$((6*7))", "exit 7"], || {});
    assert!(run.stdout.contains("hi-42"), "the shell read our input and answered: {run:?}");
    assert_eq!(run.code, 7, "{run:?}");
    container.remove();
}

#[test]
fn docker_stop_delivers_sigterm_to_the_container() {
    let docker = Docker::get();
    let container = run_ours(docker, &TRAPS_TERM);
    container.assert_runs_as_our_unit();
    wait_until(SETTLE_TIMEOUT, || docker.run(&["logs", &container.id]).stdout.contains("started"));
    let began = Instant::now();
    docker.run(&["stop", "-t", "30", &container.id]).success("docker stop");
    let took = began.elapsed();
    assert!(took < Duration::from_secs(10), "the trap ended it at once, not the timeout's SIGKILL: {took:?}");
    let state = container.wait_for_status("exited");
    assert_eq!(state.exit_code, 5, "the trap's exit code: {state:?}");
    let logs = docker.run(&["logs", &container.id]).success("docker logs");
    assert_eq!(logs.stdout, "started\ngot-term\n", "{logs:?}");
    container.assert_task_left_nothing();
    container.remove();
}

#[test]
fn docker_stop_kills_a_container_ignoring_sigterm_after_the_timeout() {
    let docker = Docker::get();
    let container = run_ours(docker, &IGNORES_TERM);
    container.assert_runs_as_our_unit();
    wait_until(SETTLE_TIMEOUT, || docker.run(&["logs", &container.id]).stdout.contains("started"));
    let began = Instant::now();
    docker.run(&["stop", "-t", "1", &container.id]).success("docker stop -t 1");
    let took = began.elapsed();
    assert!(took >= Duration::from_secs(1), "SIGKILL came only after the 1 s timeout: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let state = container.wait_for_status("exited");
    assert_eq!(state.exit_code, 137, "SIGKILL: {state:?}");
    container.assert_task_left_nothing();
    container.remove();
}

#[test]
fn docker_restart_runs_the_container_again_as_the_same_unit() {
    let docker = Docker::get();
    let container = run_ours(docker, &TRAPS_TERM);
    let first_pid = container.assert_runs_as_our_unit();
    let first_start = container.state().started_at;
    docker.run(&["restart", "-t", "10", &container.id]).success("docker restart");
    let second_pid = container.assert_runs_as_our_unit();
    let second_start = container.state().started_at;
    assert_ne!(first_pid, second_pid, "a new init process");
    assert_ne!(first_start, second_start, "a new start");
    let twice =
        wait_until(SETTLE_TIMEOUT, || docker.run(&["logs", &container.id]).stdout == "started\ngot-term\nstarted\n");
    assert!(twice, "{:?}", docker.run(&["logs", &container.id]));
    container.remove();
}

#[test]
fn docker_kill_delivers_the_signal_and_kills_by_default() {
    let docker = Docker::get();
    let container =
        run_ours(docker, &["sh", "-c", "trap 'echo got-usr1' USR1; echo started; while true; do sleep 0.1; done"]);
    let pid = container.assert_runs_as_our_unit();
    wait_until(SETTLE_TIMEOUT, || docker.run(&["logs", &container.id]).stdout.contains("started"));
    docker.run(&["kill", "-s", "USR1", &container.id]).success("docker kill -s USR1");
    let caught = wait_until(SETTLE_TIMEOUT, || docker.run(&["logs", &container.id]).stdout.contains("got-usr1"));
    assert!(caught, "{:?}", docker.run(&["logs", &container.id]));
    assert_eq!(container.assert_runs_as_our_unit(), pid, "a caught signal leaves it running");

    docker.run(&["kill", &container.id]).success("docker kill");
    let state = container.wait_for_status("exited");
    assert_eq!(state.exit_code, 137, "docker kill sends SIGKILL: {state:?}");
    container.assert_task_left_nothing();
    container.remove();
}

#[test]
fn docker_logs_has_the_containers_stdout_and_stderr() {
    let docker = Docker::get();
    let container = run_ours(docker, &["sh", "-c", "echo to-stdout; echo to-stderr >&2; echo more-stdout; sleep 1000"]);
    container.assert_runs_as_our_unit();
    let mut logs = None;
    let complete = wait_until(SETTLE_TIMEOUT, || {
        let run = docker.run(&["logs", &container.id]);
        let done = run.stdout.contains("more-stdout") && run.stderr.contains("to-stderr");
        logs = Some(run);
        done
    });
    let logs = logs.expect("read at least once");
    assert!(complete, "{logs:?}");
    assert_eq!((logs.stdout.as_str(), logs.stderr.as_str()), ("to-stdout\nmore-stdout\n", "to-stderr\n"), "{logs:?}");
    container.remove();
}

#[test]
fn docker_rm_f_removes_a_running_container_and_its_unit() {
    let docker = Docker::get();
    let container = run_ours(docker, &IGNORES_TERM);
    container.assert_runs_as_our_unit();
    // Asserts that Docker forgot it, its root filesystem is unmounted and our unit is gone.
    container.remove();
}

#[test]
fn docker_pause_freezes_the_container_and_unpause_thaws_it() {
    let docker = Docker::get();
    let container = run_ours(docker, &["sleep", "1000"]);
    let pid = container.assert_runs_as_our_unit();
    docker.run(&["pause", &container.id]).success("docker pause");
    container.wait_for_status("paused");
    let sandbox = Sandbox::get();
    assert_eq!(sandbox.unit_property(&container.unit(), "ActiveState"), "active", "a paused container's unit stays");
    docker.run(&["unpause", &container.id]).success("docker unpause");
    assert_eq!(container.assert_runs_as_our_unit(), pid);
    container.remove();
}

#[test]
fn docker_stats_reads_the_containers_cgroup() {
    let docker = Docker::get();
    let container = run_ours(docker, &["sleep", "1000"]);
    container.assert_runs_as_our_unit();
    let stats = docker
        .run(&["stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", &container.id])
        .success("docker stats");
    let fields: Vec<&str> = stats.stdout.split_whitespace().collect();
    // e.g. `508KiB / 23.54GiB 1`: memory in use, its limit, one process.
    assert_eq!(fields.len(), 4, "{stats:?}");
    assert!(!fields[0].starts_with("0B"), "some memory in use: {stats:?}");
    assert_eq!(fields[3], "1", "{stats:?}");
    container.remove();
}

/// Docker's restart manager relies on one exit event per run.
#[test]
fn docker_restart_policy_restarts_a_failing_container_as_our_unit() {
    let docker = Docker::get();
    let container = docker.run_detached(
        &["--runtime", RUNTIME, "--restart", "on-failure:2"],
        &["sh", "-c", "echo run; sleep 0.3; exit 3"],
    );
    let settled = wait_until(SETTLE_TIMEOUT, || {
        let state = container.state();
        state.status == "exited" && container.inspect("{{.RestartCount}}") == "2"
    });
    assert!(settled, "{:?} after {} restarts", container.state(), container.inspect("{{.RestartCount}}"));
    assert_eq!(container.state().exit_code, 3);
    assert_eq!(docker.run(&["logs", &container.id]).stdout, "run\nrun\nrun\n");
    container.assert_task_left_nothing();
    container.remove();
}

/// `deploy/docker-daemon-default.json`: a plain `docker run` runs on our runtime.
#[test]
fn docker_default_runtime_from_daemon_json_runs_plain_docker_run_on_our_runtime() {
    let docker = Docker::with_default_runtime();
    let container = docker.run_detached(&[], &["sleep", "1000"]);
    assert_eq!(container.inspect("{{.HostConfig.Runtime}}"), RUNTIME);
    container.assert_runs_as_our_unit();
    container.remove();

    let run = docker.run(&["run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo hello; exit 6"]);
    assert_eq!((run.code, run.stdout.as_str()), (6, "hello\n"), "{run:?}");

    // runc stays available by name, and is not us.
    let on_runc = docker.run_detached(&["--runtime", "runc"], &["sleep", "1000"]);
    on_runc.wait_for_status("running");
    assert!(!Sandbox::get().unit_loaded(&on_runc.unit()), "--runtime runc ran on our runtime");
    on_runc.remove();
}

/// `docker run --privileged`: the container gets every host device and may mount, exactly as
/// on Docker's default runtime (runc-v2), which the same command runs on too.
#[test]
fn docker_run_privileged_gets_every_device_as_on_runc_v2() {
    let docker = Docker::get();
    let script = "ls /dev | sort | tr '\\n' ' '; mkdir -p /tmp/m && mount -t tmpfs scratch /tmp/m && echo mounted";
    let run_on = |runtime_options: &[&str]| {
        let mut args = vec!["run", "--rm", "--privileged", "--network", "none"];
        args.extend_from_slice(runtime_options);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        docker.run(&args)
    };
    let baseline = run_on(&[]);
    assert_eq!(baseline.code, 0, "runc-v2: {baseline:?}");
    let ours = run_on(&["--runtime", RUNTIME]);
    assert_eq!(ours.code, 0, "ours: {ours:?}");
    assert!(ours.stdout.ends_with("mounted\n"), "ours: {ours:?}");
    assert_eq!(ours.stdout, baseline.stdout, "the same devices as under runc-v2, and the mount");
}
