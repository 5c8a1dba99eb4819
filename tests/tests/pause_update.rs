//! Pause / Resume (freezer, PAUSED state, events) and Update (new limits in the container's
//! cgroup) of running tasks.

use std::time::Duration;

use containerd_shim_protos::api::UpdateTaskRequest;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use tests::cgroup::{self, Version};
use tests::direct::{client, context};
use tests::{assert_nothing_left, unique_id, wait_until, EventWatcher, Sandbox};

#[test]
fn pause_freezes_the_container_and_resume_thaws_it_with_events() {
    let sandbox = Sandbox::get();
    let namespace = "pause";
    let watcher = EventWatcher::start(sandbox, namespace);
    let id = unique_id("pause");
    let pid = sandbox.ctr_run_detached(namespace, &id, &["sleep", "1000"]);
    let freezer = cgroup::dir_of(sandbox, pid, "freezer");
    // v1's freezer says FROZEN / THAWED; v2's cgroup.freeze is 1 / 0.
    let (file, frozen, thawed) = match cgroup::version() {
        Version::V1 => ("freezer.state", "FROZEN", "THAWED"),
        Version::V2 => ("cgroup.freeze", "1", "0"),
    };

    sandbox.ctr(namespace, &["task", "pause", &id]).success("ctr task pause");
    assert_eq!(sandbox.task_status(namespace, &id).map(|(_, status)| status).as_deref(), Some("PAUSED"));
    assert_eq!(cgroup::read(&freezer, file), frozen);
    let refused = sandbox.ctr(namespace, &["task", "pause", &id]);
    assert_ne!(refused.code, 0, "pausing twice is refused: {refused:?}");

    sandbox.ctr(namespace, &["task", "resume", &id]).success("ctr task resume");
    assert_eq!(sandbox.task_status(namespace, &id).map(|(_, status)| status).as_deref(), Some("RUNNING"));
    assert_eq!(cgroup::read(&freezer, file), thawed);

    let seen = wait_until(Duration::from_secs(10), || watcher.task_topics(&id).contains(&"/tasks/resumed".to_string()));
    assert!(seen, "{:?}", watcher.task_topics(&id));
    assert_eq!(watcher.task_topics(&id), ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed"]);
    sandbox.remove_task(namespace, &id);
    assert_nothing_left(sandbox, namespace, &id);
}

/// SIGKILL reaches a paused container: the daemon leaves it to runc, which thaws the freezer
/// (a frozen process dies only once thawed). Other signals and running containers it signals
/// itself.
#[test]
fn sigkill_ends_a_paused_container() {
    let sandbox = Sandbox::get();
    let namespace = "pause";
    let id = unique_id("paused-kill");
    sandbox.ctr_run_detached(namespace, &id, &["sleep", "1000"]);
    sandbox.ctr(namespace, &["task", "pause", &id]).success("ctr task pause");
    sandbox.ctr(namespace, &["task", "kill", "-s", "SIGKILL", &id]).success("ctr task kill -s SIGKILL");
    let stopped = sandbox.wait_for_status(namespace, &id, "STOPPED");
    assert_ne!(stopped, 0);
    sandbox.ctr(namespace, &["task", "rm", &id]).success("ctr task rm");
    sandbox.ctr(namespace, &["container", "rm", &id]).success("ctr container rm");
    assert_nothing_left(sandbox, namespace, &id);
}

#[tokio::test]
async fn update_applies_new_limits_to_the_containers_cgroup() {
    let sandbox = Sandbox::get();
    let namespace = "update";
    let id = unique_id("update");
    let pid = sandbox.ctr_run_detached(namespace, &id, &["sleep", "1000"]);
    let client = client(sandbox, namespace).await;
    let resources = r#"{"memory":{"limit":67108864},"cpu":{"shares":256},"pids":{"limit":77}}"#;
    let request = UpdateTaskRequest {
        id: id.clone(),
        resources: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: resources.as_bytes().to_vec(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    client.update(context(), &request).await.expect("Update");
    let read = |controller: &str, file: &str| cgroup::read(&cgroup::dir_of(sandbox, pid, controller), file);
    match cgroup::version() {
        Version::V1 => {
            assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
            assert_eq!(read("cpu", "cpu.shares"), "256");
        }
        Version::V2 => {
            assert_eq!(read("memory", "memory.max"), "67108864");
            // runc maps shares to a weight: linearly up to 1.2 (10), by a curve since 1.3 (35).
            let weight = read("cpu", "cpu.weight");
            assert!(["10", "35"].contains(&weight.as_str()), "cpu.weight {weight} for 256 shares");
        }
    }
    assert_eq!(read("pids", "pids.max"), "77");
    assert!(
        cgroup::dir_of(sandbox, pid, "memory").ends_with(format!("{}/container", tests::unit_of(namespace, &id))),
        "the limits apply to the container's cgroup inside its unit"
    );

    let bad = UpdateTaskRequest { id: id.clone(), ..Default::default() };
    let code = tests::calls::code_of(client.update(context(), &bad).await);
    assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT);
    sandbox.remove_task(namespace, &id);
    assert_nothing_left(sandbox, namespace, &id);
}
