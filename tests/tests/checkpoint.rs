//! Checkpoint and restore through CRIU: `ctr containers checkpoint --task` and
//! `ctr containers restore --live` of a busybox loop, and a checkpoint that stops the task
//! (containerd's `exit` option) through the task API. Containers to be checkpointed use our
//! `Checkpointable` option (stdio through pipes, which CRIU can dump; it cannot dump
//! containerd's fifos). CRIU 4.x comes from tests/build-criu, on containerd's PATH.

use std::time::Duration;

use containerd_shim_protos::api::CheckpointTaskRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::CheckpointOptions;
use tests::direct::{client, context};
use tests::{assert_nothing_left, unique_id, wait_until, EventWatcher, Sandbox, IMAGE, RUNTIME};

/// A loop that counts in memory and writes the count to a file every 0.1 s.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done";

fn checkpointable_options(sandbox: &Sandbox) -> String {
    let dir = sandbox.root.join("options");
    std::fs::create_dir_all(&dir).expect("options dir");
    let path = dir.join("checkpointable.toml");
    std::fs::write(&path, "Checkpointable = true\n").expect("write options");
    path.to_str().expect("utf-8").to_string()
}

fn count(sandbox: &Sandbox, namespace: &str, id: &str) -> u64 {
    let exec_id = unique_id("count");
    let run = sandbox.ctr(namespace, &["task", "exec", "--exec-id", &exec_id, id, "cat", "/tmp/count"]);
    run.stdout.trim().parse().unwrap_or(0)
}

fn run_counter(sandbox: &Sandbox, namespace: &str, id: &str) {
    sandbox.ensure_image(namespace);
    let options = checkpointable_options(sandbox);
    let args = ["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", &options, IMAGE, id, "sh", "-c", COUNTER];
    sandbox.ctr(namespace, &args).success("ctr run -d");
    sandbox.wait_for_status(namespace, id, "RUNNING");
    assert!(wait_until(Duration::from_secs(20), || count(sandbox, namespace, id) >= 30), "the counter counts");
}

#[test]
fn checkpointed_container_is_restored_with_its_memory_and_keeps_counting() {
    let sandbox = Sandbox::get();
    let namespace = "checkpoint";
    let watcher = EventWatcher::start(sandbox, namespace);
    let id = unique_id("cp");
    let image = format!("localhost/{id}-checkpoint:1");
    run_counter(sandbox, namespace, &id);

    sandbox.ctr(namespace, &["containers", "checkpoint", "--task", "--image", &id, &image]).success("checkpoint");
    let at_checkpoint = count(sandbox, namespace, &id);
    assert_eq!(sandbox.task_status(namespace, &id).map(|(_, status)| status).as_deref(), Some("RUNNING"));
    let checkpointed =
        wait_until(Duration::from_secs(10), || watcher.task_topics(&id).contains(&"/tasks/checkpointed".to_string()));
    assert!(checkpointed, "TaskCheckpointed: {:?}", watcher.task_topics(&id));

    sandbox.remove_task(namespace, &id);
    assert_nothing_left(sandbox, namespace, &id);
    sandbox.ctr(namespace, &["containers", "restore", "--live", &id, &image]).success("restore");
    sandbox.wait_for_status(namespace, &id, "RUNNING");
    // A fresh start would count from 1; the restored process goes on from its memory.
    let resumed = wait_until(Duration::from_secs(10), || count(sandbox, namespace, &id) > at_checkpoint.min(30));
    assert!(resumed, "restored counter resumes from >= {at_checkpoint}, got {}", count(sandbox, namespace, &id));

    sandbox.remove_task(namespace, &id);
    sandbox.ctr(namespace, &["images", "rm", &image]);
    assert_nothing_left(sandbox, namespace, &id);
}

#[tokio::test]
async fn checkpoint_with_exit_stops_the_task_after_dumping_it() {
    let sandbox = Sandbox::get();
    let namespace = "checkpoint-exit";
    let id = unique_id("cp-exit");
    run_counter(sandbox, namespace, &id);
    let images = sandbox.root.join("checkpoints").join(&id);
    std::fs::create_dir_all(&images).expect("image dir");
    let options = CheckpointOptions { exit: true, ..Default::default() };
    let request = CheckpointTaskRequest {
        id: id.clone(),
        path: images.to_str().expect("utf-8").into(),
        options: Some(Any {
            type_url: "containerd.runc.v1.CheckpointOptions".into(),
            value: options.write_to_bytes().expect("encode"),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let client = client(sandbox, namespace).await;
    client.checkpoint(context(), &request).await.expect("Checkpoint");
    sandbox.wait_for_status(namespace, &id, "STOPPED");
    assert!(images.join("inventory.img").exists(), "CRIU wrote its images to {}", images.display());
    sandbox.remove_task(namespace, &id);
    let _ = std::fs::remove_dir_all(&images);
    assert_nothing_left(sandbox, namespace, &id);
}
