//! The task API through containerd's gRPC services, driven the way containerd's Go integration
//! suite drives a shim: a container on the image's snapshot, then a task created, started,
//! waited on, killed and exec'd into. Each behaviour runs on our runtime and, as the baseline
//! that proves the harness itself, on `io.containerd.runc.v2`. Ids are unique, so the tests
//! run in parallel.

use std::time::Duration;

use nix::sys::signal::Signal;
use tests::grpc::{
    Client, Code, Container, ContainerConfig, ExecTerminal, InputFifo, OutputFifo, OutputFile, ProcessState, Stdio,
    RUNC_V2,
};
use tests::{assert_nothing_left, unique_id, Sandbox, RUNTIME};

/// The containerd namespace of these tests.
const NAMESPACE: &str = "grpc-client";
/// How long a test waits for output after its process is gone.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect() -> (&'static Sandbox, Client) {
    let sandbox = Sandbox::get();
    sandbox.ensure_image(NAMESPACE);
    let client = Client::connect(sandbox, NAMESPACE).await.expect("connect to containerd");
    (sandbox, client)
}

async fn create(client: &Client, id: &str, runtime: &str, args: &[&str]) -> Container {
    let config = ContainerConfig::busybox(id, runtime, args);
    client.create_container(&config).await.expect("create the container")
}

/// Cleans `container` up and checks that neither containerd nor the system holds anything of it.
async fn remove_and_assert_nothing_left(sandbox: &Sandbox, client: &Client, container: Container) {
    let id = container.id().to_string();
    container.cleanup().await.expect("clean up");
    let remains = client.remains_of(&id).await.expect("look for remains");
    assert_eq!(remains, Vec::<&str>::new(), "containerd still holds parts of {id}");
    assert_nothing_left(sandbox, NAMESPACE, &id);
}

/// Exit status 7, and the states CREATED → RUNNING → STOPPED on the way. The init reads a line
/// from stdin before it exits, so RUNNING is seen for certain: a bare `exit 7` could be over
/// before the first `Tasks.Get`. Like containerd's Go client (`cio.NewFIFOSet`), the test gives
/// all three streams: runc-v2 would hang in Create on a stdin without a stdout, since runc's
/// own output pipe then becomes the container's stdout and never reaches end-of-file.
async fn exit_status_and_states(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-exit7");
    let mut stdin = InputFifo::create(sandbox, "exit7-stdin").expect("stdin fifo");
    let stdout = OutputFifo::create(sandbox, "exit7-stdout").expect("stdout fifo");
    let stderr = OutputFifo::create(sandbox, "exit7-stderr").expect("stderr fifo");
    let container = create(&client, &id, runtime, &["sh", "-c", "read line; echo \"got $line\"; exit 7"]).await;

    let stdio = Stdio { stdin: Some(stdin.path()), stdout: Some(stdout.path()), stderr: Some(stderr.path()) };
    let pid = container.create_task(&stdio).await.expect("create task");
    assert_ne!(pid, 0, "Tasks.Create reports the init's pid");
    assert_eq!(container.state().await.expect("state after create"), ProcessState::Created { pid });
    assert_eq!(container.start().await.expect("start"), pid);
    assert_eq!(container.state().await.expect("state after start"), ProcessState::Running { pid });
    stdin.send("go\n").expect("release the init");
    assert_eq!(container.wait().await.expect("wait"), 7);
    assert_eq!(container.state().await.expect("state after exit"), ProcessState::Stopped { pid, exit_status: 7 });
    assert_eq!(container.delete_task().await.expect("delete task"), 7);
    assert_eq!(stdout.collect(OUTPUT_TIMEOUT).expect("stdout"), "got go\n", "the init read the line sent");
    assert_eq!(stderr.collect(OUTPUT_TIMEOUT).expect("stderr"), "");

    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn exit_status_and_created_running_stopped_states_through_grpc() {
    exit_status_and_states(RUNTIME).await;
}

#[tokio::test]
async fn exit_status_and_created_running_stopped_states_through_grpc_on_runc_v2_baseline() {
    exit_status_and_states(RUNC_V2).await;
}

/// `sleep` as a pid namespace's init ignores SIGTERM; SIGKILL ends it with 128 + 9.
async fn sigkill_is_137(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-sigkill");
    let container = create(&client, &id, runtime, &["sleep", "1000"]).await;

    let pid = container.create_task(&Stdio::none()).await.expect("create task");
    container.start().await.expect("start");
    assert_eq!(container.state().await.expect("state"), ProcessState::Running { pid });
    container.kill(Signal::SIGKILL).await.expect("kill");
    assert_eq!(container.wait().await.expect("wait"), 137);
    assert_eq!(container.state().await.expect("state after kill"), ProcessState::Stopped { pid, exit_status: 137 });
    assert_eq!(container.delete_task().await.expect("delete task"), 137);

    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn sigkill_through_grpc_is_exit_status_137() {
    sigkill_is_137(RUNTIME).await;
}

#[tokio::test]
async fn sigkill_through_grpc_is_exit_status_137_on_runc_v2_baseline() {
    sigkill_is_137(RUNC_V2).await;
}

/// An exec's own exit status, through Exec → Start → Wait → DeleteProcess by exec id, while the
/// init keeps running; then the task is killed and deleted.
async fn exec_exit_code(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-exec");
    let container = create(&client, &id, runtime, &["sleep", "1000"]).await;
    let pid = container.create_task(&Stdio::none()).await.expect("create task");
    container.start().await.expect("start");

    let exec = container.exec("exit5", &["sh", "-c", "exit 5"], &Stdio::none()).await.expect("exec");
    assert!(matches!(exec.state().await.expect("exec state"), ProcessState::Created { .. }));
    let exec_pid = exec.start().await.expect("start exec");
    assert_ne!(exec_pid, 0);
    assert_ne!(exec_pid, pid, "the exec is a process of its own");
    assert_eq!(exec.wait().await.expect("wait exec"), 5);
    assert_eq!(
        exec.state().await.expect("exec state after exit"),
        ProcessState::Stopped { pid: exec_pid, exit_status: 5 }
    );
    assert_eq!(exec.delete().await.expect("delete exec"), 5);
    let gone = exec.state().await.expect_err("a deleted exec has no state");
    assert_eq!(gone.code(), Some(Code::NotFound), "{gone:?}");
    assert_eq!(
        container.state().await.expect("init state"),
        ProcessState::Running { pid },
        "the init outlives the exec"
    );

    container.kill(Signal::SIGKILL).await.expect("kill");
    assert_eq!(container.wait().await.expect("wait"), 137);
    container.delete_task().await.expect("delete task");
    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn exec_exit_code_through_grpc() {
    exec_exit_code(RUNTIME).await;
}

#[tokio::test]
async fn exec_exit_code_through_grpc_on_runc_v2_baseline() {
    exec_exit_code(RUNC_V2).await;
}

/// The exec's terminal is the request's `terminal` flag, whatever its process spec says (as
/// runc-v2 does; containerd's client picks it with the IO): many execs in a row with a terminal
/// each while the spec says none, each printing 1 MiB through it, all of it arriving; and once
/// the other way round, a spec asking for a terminal that the request does not give.
async fn exec_terminal_follows_the_request(runtime: &str) {
    const MIB: usize = 1 << 20;
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-exec-tty");
    let container = create(&client, &id, runtime, &["sleep", "1000"]).await;
    container.create_task(&Stdio::none()).await.expect("create task");
    container.start().await.expect("start");

    // Exits 9 unless stdout is a terminal; then 1 MiB of `x` without a newline (which a
    // terminal would turn into CRLF).
    let through_tty = "[ -t 1 ] || exit 9; head -c 1048576 /dev/zero | tr '\\0' x";
    for n in 0..tests::many_tasks(100) {
        let stdout = OutputFifo::create(sandbox, &format!("tty-{n}")).expect("stdout fifo");
        let stdio = Stdio { stdin: None, stdout: Some(stdout.path()), stderr: None };
        let terminal = ExecTerminal { requested: true, in_spec: false };
        let exec_id = format!("tty{n}");
        let exec = container.exec_with_terminal(&exec_id, &["sh", "-c", through_tty], &stdio, terminal).await;
        let exec = exec.unwrap_or_else(|error| panic!("exec {n} with a terminal: {error:?}"));
        exec.start().await.unwrap_or_else(|error| panic!("start exec {n}: {error:?}"));
        assert_eq!(exec.wait().await.expect("wait exec"), 0, "exec {n} had a terminal");
        assert_eq!(exec.delete().await.expect("delete exec"), 0);
        let output = stdout.collect(OUTPUT_TIMEOUT).expect("exec output");
        assert_eq!(output.len(), MIB, "exec {n}: all its output arrived");
        assert!(output.bytes().all(|byte| byte == b'x'), "exec {n}: its output unchanged");
    }

    let stdout = OutputFifo::create(sandbox, "no-tty").expect("stdout fifo");
    let stderr = OutputFifo::create(sandbox, "no-tty-err").expect("stderr fifo");
    let stdio = Stdio { stdin: None, stdout: Some(stdout.path()), stderr: Some(stderr.path()) };
    let terminal = ExecTerminal { requested: false, in_spec: true };
    let no_tty = "[ -t 1 ] && exit 9; echo plain";
    let exec = container.exec_with_terminal("notty", &["sh", "-c", no_tty], &stdio, terminal).await.expect("exec");
    exec.start().await.expect("start exec");
    assert_eq!(exec.wait().await.expect("wait exec"), 0, "no terminal where the request asks for none");
    exec.delete().await.expect("delete exec");
    assert_eq!(stdout.collect(OUTPUT_TIMEOUT).expect("exec output"), "plain\n");
    assert_eq!(stderr.collect(OUTPUT_TIMEOUT).expect("exec errors"), "");

    container.kill(Signal::SIGKILL).await.expect("kill");
    container.wait().await.expect("wait");
    container.delete_task().await.expect("delete task");
    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn exec_terminal_follows_the_request_through_grpc() {
    exec_terminal_follows_the_request(RUNTIME).await;
}

#[tokio::test]
async fn exec_terminal_follows_the_request_through_grpc_on_runc_v2_baseline() {
    exec_terminal_follows_the_request(RUNC_V2).await;
}

/// stdout and stderr reach the fifos given at Tasks.Create, each only its own stream, complete
/// by the time the task is deleted (when containerd's own client stops copying, too).
async fn output_reaches_fifos(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-fifo");
    let stdout = OutputFifo::create(sandbox, "fifo-stdout").expect("stdout fifo");
    let stderr = OutputFifo::create(sandbox, "fifo-stderr").expect("stderr fifo");
    let script = "echo to stdout; echo to stderr >&2; echo more to stdout";
    let container = create(&client, &id, runtime, &["sh", "-c", script]).await;

    let stdio = Stdio { stdin: None, stdout: Some(stdout.path()), stderr: Some(stderr.path()) };
    container.create_task(&stdio).await.expect("create task");
    container.start().await.expect("start");
    assert_eq!(container.wait().await.expect("wait"), 0);
    container.delete_task().await.expect("delete task");
    assert_eq!(stdout.collect(OUTPUT_TIMEOUT).expect("stdout"), "to stdout\nmore to stdout\n");
    assert_eq!(stderr.collect(OUTPUT_TIMEOUT).expect("stderr"), "to stderr\n");

    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn stdout_and_stderr_reach_their_fifos_through_grpc() {
    output_reaches_fifos(RUNTIME).await;
}

#[tokio::test]
async fn stdout_and_stderr_reach_their_fifos_through_grpc_on_runc_v2_baseline() {
    output_reaches_fifos(RUNC_V2).await;
}

/// Where a task's output goes when it is given `file://` URIs.
#[derive(Clone, Copy)]
enum LogFiles {
    /// Both streams have one file, as `cio.LogFile` asks, and the task writes only stdout.
    SharedStdoutOnly,
    /// The task writes both streams into one file, as `cio.LogFile` asks.
    Shared,
    /// The task writes both streams, each into its own file.
    Separate,
}

/// `file://` URIs as stdout and stderr (containerd's file logging) get each stream's lines.
async fn output_reaches_file_uris(runtime: &str, files: LogFiles) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-file");
    let stdout_log = OutputFile::create(sandbox, "file-stdout").expect("stdout log path");
    let stderr_log = OutputFile::create(sandbox, "file-stderr").expect("stderr log path");
    let (script, stderr_uri) = match files {
        LogFiles::SharedStdoutOnly => ("echo to the log", Some(stdout_log.uri())),
        LogFiles::Shared => ("echo to the log; echo also to the log >&2", Some(stdout_log.uri())),
        LogFiles::Separate => ("echo to the log; echo also to the log >&2", Some(stderr_log.uri())),
    };
    let container = create(&client, &id, runtime, &["sh", "-c", script]).await;

    let stdio = Stdio { stdin: None, stdout: Some(stdout_log.uri()), stderr: stderr_uri };
    container.create_task(&stdio).await.expect("create task");
    container.start().await.expect("start");
    assert_eq!(container.wait().await.expect("wait"), 0);
    container.delete_task().await.expect("delete task");
    // The order between two streams in one file is not promised, so lines are compared sorted.
    let lines_of = |log: &OutputFile| {
        let mut lines: Vec<String> = log.read().unwrap_or_default().lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let (expected_stdout, expected_stderr): (&[&str], &[&str]) = match files {
        LogFiles::SharedStdoutOnly => (&["to the log"], &[]),
        LogFiles::Shared => (&["also to the log", "to the log"], &[]),
        LogFiles::Separate => (&["to the log"], &["also to the log"]),
    };
    // runc-v2 copies into the files in the background and may still be at it when Delete returns.
    let expected_lines = expected_stdout.len() + expected_stderr.len();
    tests::wait_until(Duration::from_secs(5), || {
        lines_of(&stdout_log).len() + lines_of(&stderr_log).len() >= expected_lines
    });
    assert_eq!(lines_of(&stdout_log), expected_stdout, "the stdout URI's file");
    assert_eq!(lines_of(&stderr_log), expected_stderr, "the stderr URI's file, if it has its own");

    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn stdout_reaches_a_shared_file_uri_through_grpc() {
    output_reaches_file_uris(RUNTIME, LogFiles::SharedStdoutOnly).await;
}

/// The baseline takes only this one of the three file tests, as runc-v2 (1.6 and 2.1 alike)
/// cannot pass the other two:
/// - it opens only stdout's URI and sends both streams there, so `Separate` fails; with no
///   stderr URI at all, its shim panics in Create;
/// - with both streams written into one file, it loses stderr about one run in six here: its
///   stdout copier closes the shared file outright when stdout ends, and the stderr copier's
///   later writes fail ("error copying stderr" in containerd's log). That is containerd's known
///   race, containerd/containerd#3118.
#[tokio::test]
async fn stdout_reaches_a_shared_file_uri_through_grpc_on_runc_v2_baseline() {
    output_reaches_file_uris(RUNC_V2, LogFiles::SharedStdoutOnly).await;
}

#[tokio::test]
async fn stdout_and_stderr_reach_one_shared_file_uri_through_grpc() {
    output_reaches_file_uris(RUNTIME, LogFiles::Shared).await;
}

#[tokio::test]
async fn stdout_and_stderr_reach_their_own_file_uris_through_grpc() {
    output_reaches_file_uris(RUNTIME, LogFiles::Separate).await;
}

/// More Creates at once than the daemon runs at a time (it admits eight): failed ones give their
/// slot back, and the rest all get their turn. Ten Creates whose process does not exist fail
/// together; then twenty good ones run together, each to its own exit code.
#[tokio::test]
async fn more_creates_at_once_than_the_daemon_admits_all_get_their_turn() {
    let (sandbox, client) = connect().await;
    let mut failing = Vec::new();
    for n in 0..10 {
        failing.push(create(&client, &unique_id(&format!("grpc-burst-bad{n}")), RUNTIME, &["/no/such/binary"]).await);
    }
    let no_stdio = Stdio::none();
    let results = futures::future::join_all(failing.iter().map(|container| container.create_task(&no_stdio))).await;
    for (container, result) in failing.iter().zip(&results) {
        assert!(result.is_err(), "{}: a process that does not exist cannot be created: {result:?}", container.id());
    }

    let mut good = Vec::new();
    for n in 0..20 {
        let script = format!("exit {n}");
        good.push(create(&client, &unique_id(&format!("grpc-burst-{n}")), RUNTIME, &["sh", "-c", &script]).await);
    }
    let create_all = futures::future::join_all(good.iter().map(|container| container.create_task(&no_stdio)));
    let pids = tokio::time::timeout(tests::scaled(Duration::from_secs(120)), create_all)
        .await
        .expect("every Create gets its turn");
    for (container, pid) in good.iter().zip(pids) {
        let pid = pid.unwrap_or_else(|error| panic!("{}: create task: {error}", container.id()));
        assert_ne!(pid, 0, "{}", container.id());
    }
    for container in &good {
        container.start().await.expect("start");
    }
    for (n, container) in (0u32..).zip(&good) {
        assert_eq!(container.wait().await.expect("wait"), n, "{}", container.id());
        container.delete_task().await.expect("delete task");
    }

    for container in failing.into_iter().chain(good) {
        remove_and_assert_nothing_left(sandbox, &client, container).await;
    }
}

/// ListPids, Pause and Resume on a running task: the init is its only process, and the state
/// goes RUNNING → PAUSED → RUNNING.
async fn pids_pause_and_resume(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-pause");
    let container = create(&client, &id, runtime, &["sleep", "1000"]).await;
    let pid = container.create_task(&Stdio::none()).await.expect("create task");
    container.start().await.expect("start");

    assert_eq!(container.pids().await.expect("pids"), vec![pid]);
    container.pause().await.expect("pause");
    assert_eq!(container.state().await.expect("state when paused"), ProcessState::Paused { pid });
    container.resume().await.expect("resume");
    assert_eq!(container.state().await.expect("state when resumed"), ProcessState::Running { pid });

    container.kill(Signal::SIGKILL).await.expect("kill");
    assert_eq!(container.wait().await.expect("wait"), 137);
    container.delete_task().await.expect("delete task");
    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn pids_pause_and_resume_through_grpc() {
    pids_pause_and_resume(RUNTIME).await;
}

#[tokio::test]
async fn pids_pause_and_resume_through_grpc_on_runc_v2_baseline() {
    pids_pause_and_resume(RUNC_V2).await;
}

/// Metrics of one task through containerd's Tasks.Metrics: the shim's Stats, packed as
/// containerd's cgroups metrics type.
async fn metrics_of_one_task(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-metrics");
    let container = create(&client, &id, runtime, &["sleep", "1000"]).await;
    container.create_task(&Stdio::none()).await.expect("create task");
    container.start().await.expect("start");

    let metrics = container.metrics().await.expect("metrics");
    let ids: Vec<&str> = metrics.iter().map(|metric| metric.id.as_str()).collect();
    assert_eq!(ids, [id.as_str()], "the filter selects this task only: {metrics:?}");
    let data = metrics[0].data.as_ref().expect("metrics data");
    assert!(data.type_url.starts_with("io.containerd.cgroups.v"), "{data:?}");
    assert!(!data.value.is_empty(), "{metrics:?}");

    container.kill(Signal::SIGKILL).await.expect("kill");
    assert_eq!(container.wait().await.expect("wait"), 137);
    container.delete_task().await.expect("delete task");
    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn metrics_of_one_task_through_grpc() {
    metrics_of_one_task(RUNTIME).await;
}

#[tokio::test]
async fn metrics_of_one_task_through_grpc_on_runc_v2_baseline() {
    metrics_of_one_task(RUNC_V2).await;
}

/// Update through containerd: the new memory limit shows in the task's metrics.
async fn update_memory_limit(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-update");
    let container = create(&client, &id, runtime, &["sleep", "1000"]).await;
    container.create_task(&Stdio::none()).await.expect("create task");
    container.start().await.expect("start");
    container.update(r#"{"memory":{"limit":50331648}}"#).await.expect("update");

    let metrics = container.metrics().await.expect("metrics");
    let data = metrics[0].data.as_ref().expect("metrics data");
    use containerd_shim_protos::protobuf::Message;
    let limit = match data.type_url.as_str() {
        "io.containerd.cgroups.v1.Metrics" => {
            let decoded = containerd_shim_protos::cgroups::metrics::Metrics::parse_from_bytes(&data.value);
            decoded.expect("v1 metrics").memory.usage.limit
        }
        "io.containerd.cgroups.v2.Metrics" => {
            let decoded = containerd_shim_protos::cgroups_v2::metrics::Metrics::parse_from_bytes(&data.value);
            decoded.expect("v2 metrics").memory.usage_limit
        }
        other => panic!("metrics of an unknown type {other}"),
    };
    assert_eq!(limit, 50331648, "{data:?}");

    container.kill(Signal::SIGKILL).await.expect("kill");
    assert_eq!(container.wait().await.expect("wait"), 137);
    container.delete_task().await.expect("delete task");
    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn update_memory_limit_through_grpc() {
    update_memory_limit(RUNTIME).await;
}

#[tokio::test]
async fn update_memory_limit_through_grpc_on_runc_v2_baseline() {
    update_memory_limit(RUNC_V2).await;
}

/// Stdin through containerd: what the client writes reaches `cat`, and closing stdin (the
/// client's end, then `Tasks.CloseIO`) gives it end-of-file, so it exits.
async fn stdin_and_close_io(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-closeio");
    let mut stdin = InputFifo::create(sandbox, "closeio-stdin").expect("stdin fifo");
    let stdout = OutputFifo::create(sandbox, "closeio-stdout").expect("stdout fifo");
    let stderr = OutputFifo::create(sandbox, "closeio-stderr").expect("stderr fifo");
    let container = create(&client, &id, runtime, &["cat"]).await;
    let stdio = Stdio { stdin: Some(stdin.path()), stdout: Some(stdout.path()), stderr: Some(stderr.path()) };
    container.create_task(&stdio).await.expect("create task");
    container.start().await.expect("start");
    stdin.send("abc\n").expect("send");
    stdin.close();
    container.close_stdin().await.expect("CloseIO");
    assert_eq!(container.wait().await.expect("wait"), 0, "cat ends at end-of-file");
    assert_eq!(stdout.collect(OUTPUT_TIMEOUT).expect("stdout"), "abc\n");
    container.delete_task().await.expect("delete task");
    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn stdin_and_close_io_through_grpc() {
    stdin_and_close_io(RUNTIME).await;
}

#[tokio::test]
async fn stdin_and_close_io_through_grpc_on_runc_v2_baseline() {
    stdin_and_close_io(RUNC_V2).await;
}

/// The same id again at once after Delete, round after round: each new task takes only its own
/// exit, never the one the previous unit of that name reported (a late signal of it must not
/// stop the new task before Start). Half the rounds kill a running init, half let it exit.
async fn same_id_again_right_after_delete(runtime: &str) {
    let (sandbox, client) = connect().await;
    let id = unique_id("grpc-again");
    let container = create(&client, &id, runtime, &["sh", "-c", "sleep 0.$(( $$ % 3 ))"]).await;
    for round in 0..tests::many_tasks(100) {
        container.create_task(&Stdio::none()).await.unwrap_or_else(|error| panic!("round {round}: create: {error:?}"));
        container.start().await.unwrap_or_else(|error| panic!("round {round}: start: {error:?}"));
        if round % 2 == 0 {
            // A kill may find the short init already gone; either way it ends.
            let _ = container.kill(Signal::SIGKILL).await;
        }
        let status = container.wait().await.unwrap_or_else(|error| panic!("round {round}: wait: {error:?}"));
        assert!(status == 0 || status == 137, "round {round}: exit {status}");
        container.delete_task().await.unwrap_or_else(|error| panic!("round {round}: delete: {error:?}"));
    }
    remove_and_assert_nothing_left(sandbox, &client, container).await;
}

#[tokio::test]
async fn the_same_id_again_right_after_delete_takes_only_its_own_exit_through_grpc() {
    same_id_again_right_after_delete(RUNTIME).await;
}

#[tokio::test]
async fn the_same_id_again_right_after_delete_takes_only_its_own_exit_through_grpc_on_runc_v2_baseline() {
    same_id_again_right_after_delete(RUNC_V2).await;
}
