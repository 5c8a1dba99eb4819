//! Container stdio through containerd's fifos: stdin piped in and closed, and large output.

use tests::{assert_nothing_left, unique_id, Sandbox, IMAGE, RUNTIME};

#[test]
fn piped_stdin_reaches_the_container_and_its_eof_ends_it() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("stdin");
    let run = sandbox.ctr_with_stdin("default", &["run", "--rm", "--runtime", RUNTIME, IMAGE, &id, "cat"], b"abc\n");
    assert_eq!((run.code, run.stdout.as_str()), (0, "abc\n"), "{run:?}");
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn piped_stdin_reaches_an_exec() {
    let sandbox = Sandbox::get();
    let id = unique_id("exec-stdin");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    let run = sandbox.ctr_with_stdin("default", &["task", "exec", "--exec-id", "in", &id, "wc", "-c"], b"12345");
    assert_eq!((run.code, run.stdout.trim()), (0, "5"), "{run:?}");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn hundred_megabytes_of_output_arrive_whole() {
    let sandbox = Sandbox::get();
    let id = unique_id("bigout");
    let size = 100 * 1024 * 1024;
    let script = format!("yes 0123456789abcdef | head -c {size}");
    let run = sandbox.ctr_run("default", &id, &["sh", "-c", &script]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout.len(), size, "all bytes arrive");
    assert!(run.stdout.lines().all(|line| line == "0123456789abcdef" || "0123456789abcdef".starts_with(line)));
    assert_nothing_left(sandbox, "default", &id);
}
