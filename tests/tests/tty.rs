//! Terminals: `ctr run -t` and `ctr task exec -t` inside a real terminal (`script` gives ctr a
//! pty), window sizes following ResizePty, and an interactive shell.

use containerd_shim_protos::api::ResizePtyRequest;
use tests::calls::code_of;
use tests::direct::{client, context};
use tests::{assert_nothing_left, unique_id, Sandbox, IMAGE, RUNTIME};

/// ctr sends ResizePty only after Start (with runc-v2 too): the container waits until its
/// terminal has the client's size (the test's deadline bounds that).
#[test]
fn ctr_run_t_gives_a_terminal_sized_like_the_clients() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("tty-run");
    let command = format!(
        "stty rows 33 cols 101; {} run -t --rm --runtime {RUNTIME} {IMAGE} {id} sh -c \
         'until [ \"$(stty size)\" = \"33 101\" ]; do sleep 0.1; done; stty size; tty; exit 4'",
        sandbox.ctr
    );
    let run = sandbox.in_terminal(&command, &[], || {});
    assert!(run.stdout.contains("33 101\r"), "ResizePty reached the container's terminal: {run:?}");
    assert!(run.stdout.contains("/dev/pts/0"), "{run:?}");
    assert_eq!(run.code, 4, "{run:?}");
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn exec_t_gives_an_interactive_shell_with_the_clients_size() {
    let sandbox = Sandbox::get();
    let id = unique_id("tty-exec");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    let sized =
        format!("stty rows 20 cols 70; {} task exec -t --exec-id size {id} sh -c 'sleep 1; stty size'", sandbox.ctr);
    let run = sandbox.in_terminal(&sized, &[], || {});
    assert!(run.stdout.contains("20 70"), "{run:?}");

    let shell = format!("{} task exec -t --exec-id shell {id} sh", sandbox.ctr);
    let run = sandbox.in_terminal(&shell, &["echo hi-$((6*7))", "exit 7"], || {});
    assert!(run.stdout.contains("hi-42"), "the shell read our input and answered: {run:?}");
    assert_eq!(run.code, 7, "{run:?}");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

#[tokio::test]
async fn resizing_a_process_without_a_terminal_is_refused() {
    let sandbox = Sandbox::get();
    let namespace = "tty-refuse";
    let id = unique_id("no-tty");
    sandbox.ctr_run_detached(namespace, &id, &["sleep", "1000"]);
    let client = client(sandbox, namespace).await;
    let request = ResizePtyRequest { id: id.clone(), width: 80, height: 24, ..Default::default() };
    assert_eq!(code_of(client.resize_pty(context(), &request).await), ttrpc::Code::FAILED_PRECONDITION);
    let unknown_exec = ResizePtyRequest { exec_id: "nope".into(), ..request };
    assert_eq!(code_of(client.resize_pty(context(), &unknown_exec).await), ttrpc::Code::NOT_FOUND);
    sandbox.remove_task(namespace, &id);
    assert_nothing_left(sandbox, namespace, &id);
}
