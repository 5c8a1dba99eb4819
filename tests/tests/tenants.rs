//! One daemon serves every tenant of a node: what one namespace's tasks do must not hold back
//! another's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::api::CreateTaskRequest;
use containerd_shim_protos::shim_async::TaskClient;
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use tests::calls::{delete, kill, wait};
use tests::direct::{client, context, runnable_bundle};
use tests::telemetry::SideContainerd;
use tests::{assert_nothing_left, scaled, unique_id, unit_of, wait_until, Sandbox, IMAGE, RUNTIME};

/// How many Creates the daemon parses and submits at once.
const CREATE_SLOTS: usize = 8;

fn create_request(id: &str, bundle: &Path, stdout: &Path) -> CreateTaskRequest {
    CreateTaskRequest {
        id: id.into(),
        bundle: bundle.display().to_string(),
        stdout: stdout.display().to_string(),
        ..Default::default()
    }
}

/// Kills, waits for and deletes task `id`.
async fn remove(client: &TaskClient, id: &str) {
    kill(client, id, 9).await.unwrap_or_else(|error| panic!("kill {id}: {error:?}"));
    wait(client, id).await.unwrap_or_else(|error| panic!("wait {id}: {error:?}"));
    delete(client, id).await.unwrap_or_else(|error| panic!("delete {id}: {error:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_stuck_on_unread_fifos_do_not_hold_back_a_create_in_another_namespace() {
    let sandbox = Sandbox::get();
    let stuck_namespace = "stuck-creates";
    let stuck_client = client(sandbox, stuck_namespace).await;
    let free_client = client(sandbox, "free-creates").await;
    let fifo_dir = sandbox.root.join(unique_id("unread-fifos"));
    std::fs::create_dir_all(&fifo_dir).expect("fifo directory");

    // As many Creates as there are slots, each with a stdout fifo nobody reads yet: their units
    // start, and their helpers wait for a reader.
    let mut stuck = Vec::new();
    for n in 0..CREATE_SLOTS {
        let id = unique_id("stuck");
        let bundle = runnable_bundle(sandbox, &id, &["sleep", "1000"]);
        let fifo = fifo_dir.join(format!("{n}.stdout"));
        mkfifo(&fifo, Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let request = create_request(&id, &bundle, &fifo);
        let client = stuck_client.clone();
        let call = tokio::spawn(async move { client.create(context(), &request).await });
        stuck.push((id, fifo, call));
    }
    let activating = |id: &str| sandbox.unit_property(&unit_of(stuck_namespace, id), "ActiveState") == "activating";
    assert!(
        wait_until(scaled(Duration::from_secs(20)), || stuck.iter().all(|(id, _, _)| activating(id))),
        "the stuck Creates' units did not all start"
    );

    let free_id = unique_id("free");
    let free_bundle = runnable_bundle(sandbox, &free_id, &["sleep", "1000"]);
    let free = free_client
        .create(
            context(),
            &CreateTaskRequest { id: free_id.clone(), bundle: free_bundle.display().to_string(), ..Default::default() },
        )
        .await;
    let still_stuck = stuck.iter().filter(|(_, _, call)| !call.is_finished()).count();
    assert!(free.is_ok(), "the Create in another namespace failed: {free:?}");
    assert_eq!(still_stuck, CREATE_SLOTS, "the free Create waited until a stuck one gave up");

    // Readers for the fifos: the stuck Creates go on and finish.
    let readers: Vec<std::thread::JoinHandle<()>> = stuck
        .iter()
        .map(|(_, fifo, _)| {
            let fifo: PathBuf = fifo.clone();
            std::thread::spawn(move || {
                if let Ok(mut reader) = std::fs::File::open(&fifo) {
                    let _ = std::io::copy(&mut reader, &mut std::io::sink());
                }
            })
        })
        .collect();
    for (id, _, call) in stuck {
        let created = call.await.expect("the Create call's task");
        assert!(created.is_ok(), "stuck Create {id} failed once its fifo was read: {created:?}");
        remove(&stuck_client, &id).await;
    }
    remove(&free_client, &free_id).await;
    for reader in readers {
        let _ = reader.join();
    }
    let _ = std::fs::remove_dir_all(&fifo_dir);
}

#[test]
fn two_containerds_run_the_same_namespace_and_id_and_neither_touches_the_other() {
    let sandbox = Sandbox::get();
    let side = SideContainerd::start(sandbox, &[]);
    let namespace = "two-containerds";
    sandbox.ensure_image(namespace);
    side.import_image(namespace);
    let id = unique_id("twin");
    let run = ["run", "-d", "--runtime", RUNTIME, IMAGE, id.as_str(), "sleep", "1000"];
    sandbox.ctr(namespace, &run).success("the default containerd runs the task");
    side.ctr(namespace, &run).success("the other containerd runs a task of the same namespace and id");

    let (unit, side_unit) = (unit_of(namespace, &id), side.unit_of(namespace, &id));
    assert_ne!(unit, side_unit, "one unit name for two containerds' tasks");
    for unit in [&unit, &side_unit] {
        assert_eq!(sandbox.unit_property(unit, "ActiveState"), "active", "{unit}");
    }
    let (pid, status) = sandbox.task_status(namespace, &id).expect("the default containerd's task");
    let (side_pid, side_status) = side.task_status(namespace, &id).expect("the other's task");
    assert_eq!((status.as_str(), side_status.as_str()), ("RUNNING", "RUNNING"));
    assert_ne!(pid, side_pid);
    assert_eq!(sandbox.unit_property(&unit, "MainPID"), pid.to_string());
    assert_eq!(sandbox.unit_property(&side_unit, "MainPID"), side_pid.to_string());

    // The other containerd's task goes; the default one's is untouched.
    side.ctr(namespace, &["task", "kill", "-s", "KILL", &id]).success("ctr task kill (other)");
    side.ctr(namespace, &["task", "rm", "-f", &id]).success("ctr task rm (other)");
    side.ctr(namespace, &["container", "rm", &id]).success("ctr container rm (other)");
    assert!(
        wait_until(scaled(Duration::from_secs(10)), || !sandbox.unit_loaded(&side_unit)),
        "the other containerd's unit {side_unit} is left"
    );
    assert_eq!(sandbox.task_status(namespace, &id), Some((pid, "RUNNING".to_string())));
    assert_eq!(sandbox.unit_property(&unit, "ActiveState"), "active");
    assert_eq!(sandbox.unit_property(&unit, "MainPID"), pid.to_string());

    sandbox.ctr(namespace, &["task", "kill", "-s", "KILL", &id]).success("ctr task kill");
    sandbox.ctr(namespace, &["task", "rm", "-f", &id]).success("ctr task rm");
    sandbox.ctr(namespace, &["container", "rm", &id]).success("ctr container rm");
    assert_nothing_left(sandbox, namespace, &id);
}

#[test]
fn a_fork_bomb_in_a_container_without_a_pids_limit_stops_at_the_units_backstop() {
    let sandbox = Sandbox::get();
    let config = sandbox.root.join(format!("{}.toml", unique_id("tasks-max")));
    std::fs::write(&config, "[unit]\ntasks_max = 32\n").expect("write config");
    let config_env = format!("CONTAINERD_SHIM_SYSTEMD_CONFIG={}", config.display());
    let side = SideContainerd::start(sandbox, &[&config_env]);
    let namespace = "fork-bomb";
    side.import_image(namespace);
    let id = unique_id("bomb");
    // No pids limit in the spec. A shell that cannot fork gives up with an error.
    let bomb = "i=0; while [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done; echo all 200 started";
    let run = side.ctr_run(namespace, &id, &["sh", "-c", bomb]);
    let _ = std::fs::remove_file(&config);
    assert!(!run.stdout.contains("all 200 started"), "the container forked past its unit's TasksMax: {run:?}");
    assert!(run.stderr.contains("fork"), "the shell stopped for another reason than a failed fork: {run:?}");
    assert!(!sandbox.unit_loaded(&side.unit_of(namespace, &id)), "the unit is left");
}
