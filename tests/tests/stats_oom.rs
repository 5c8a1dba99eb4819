//! Stats (`ctr task metrics`: cgroup metrics of the container) and OOM (`TaskOOM` and exit 137
//! for a container that exceeds its memory limit).

use std::time::Duration;

use tests::cgroup::{self, Version};
use tests::{assert_nothing_left, unique_id, wait_until, EventWatcher, Sandbox, IMAGE, RUNTIME};

#[test]
fn metrics_show_the_containers_memory_cpu_and_pids() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("metrics");
    let args = ["run", "-d", "--runtime", RUNTIME, "--memory-limit", "67108864", IMAGE, &id, "sleep", "1000"];
    sandbox.ctr("default", &args).success("ctr run -d");
    sandbox.wait_for_status("default", &id, "RUNNING");
    let metrics = sandbox.ctr("default", &["task", "metrics", &id]).success("ctr task metrics");
    let value = |name: &str| {
        metrics.stdout.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some(name)).then(|| fields.next().unwrap_or_default().to_string())
        })
    };
    // `io.containerd.cgroups.v1.Metrics` or `v2.Metrics`, as ctr prints each.
    let (limit, usage, cpu) = match cgroup::version() {
        Version::V1 => ("memory.limit_in_bytes", "memory.usage_in_bytes", "cpuacct.usage"),
        Version::V2 => ("memory.usage_limit", "memory.usage", "cpu.usage_usec"),
    };
    assert_eq!(value(limit).as_deref(), Some("67108864"), "{metrics:?}");
    assert!(value(usage).and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 0), "{metrics:?}");
    assert!(value(cpu).and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 0), "{metrics:?}");
    assert_eq!(value("pids.current").as_deref(), Some("1"), "{metrics:?}");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn exceeding_the_memory_limit_publishes_task_oom_and_exits_137() {
    let sandbox = Sandbox::get();
    let namespace = "oom";
    let watcher = EventWatcher::start(sandbox, namespace);
    let id = unique_id("oom");
    let hog = "x=a; while true; do x=$x$x; done";
    let args = ["run", "--rm", "--runtime", RUNTIME, "--memory-limit", "33554432", IMAGE, &id, "sh", "-c", hog];
    let run = sandbox.ctr(namespace, &args);
    assert_eq!(run.code, 137, "{run:?}");
    let seen = wait_until(Duration::from_secs(10), || watcher.task_topics(&id).contains(&"/tasks/delete".to_string()));
    assert!(seen, "{:?}", watcher.task_topics(&id));
    let topics = watcher.task_topics(&id);
    let oom = topics.iter().position(|topic| topic == "/tasks/oom").unwrap_or_else(|| panic!("no TaskOOM: {topics:?}"));
    let exit =
        topics.iter().position(|topic| topic == "/tasks/exit").unwrap_or_else(|| panic!("no TaskExit: {topics:?}"));
    assert!(oom < exit, "TaskOOM comes before the exit it causes: {topics:?}");
    assert_nothing_left(sandbox, namespace, &id);
}

/// The spec's memory, CPU and pids limits are the container's own cgroup's, inside its unit's:
/// `<unit cgroup>/container`, where `systemctl status` shows the container's processes; the
/// unit's own processes (the helper) had their own leaf beside it and are gone.
#[tokio::test]
async fn the_specs_limits_are_in_the_containers_own_cgroup_inside_its_unit() {
    use containerd_shim_protos::api::CreateTaskRequest;
    use tests::direct::{client, context, runnable_bundle};

    let sandbox = Sandbox::get();
    let namespace = "limits";
    let client = client(sandbox, namespace).await;
    let id = unique_id("limits");
    let bundle = runnable_bundle(sandbox, &id, &["sleep", "1000"]);
    let config = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).expect("spec")).expect("json");
    spec["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 33554432 });
    spec["linux"]["resources"]["cpu"] = serde_json::json!({ "quota": 50000, "period": 100000, "shares": 512 });
    spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 77 });
    std::fs::write(&config, serde_json::to_vec(&spec).expect("json")).expect("write spec");

    let request = CreateTaskRequest { id: id.clone(), bundle: bundle.display().to_string(), ..Default::default() };
    let pid = client.create(context(), &request).await.expect("create").pid;
    tests::calls::start(&client, &id).await.expect("start");
    let unit = tests::unit_of(namespace, &id);
    let read = |controller: &str, file: &str| cgroup::read(&cgroup::dir_of(sandbox, pid, controller), file);
    match cgroup::version() {
        Version::V1 => {
            assert_eq!(read("memory", "memory.limit_in_bytes"), "33554432");
            assert_eq!(
                (read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")),
                ("50000".into(), "100000".into())
            );
        }
        Version::V2 => {
            assert_eq!(read("memory", "memory.max"), "33554432");
            assert_eq!(read("cpu", "cpu.max"), "50000 100000");
        }
    }
    assert_eq!(read("pids", "pids.max"), "77");
    // The unit's own backstop: the spec's limit and room for the unit's own processes.
    assert_eq!(sandbox.unit_property(&unit, "TasksMax"), (77 + 64).to_string());
    let control_group = sandbox.unit_property(&unit, "ControlGroup");
    assert!(
        cgroup::dir_of(sandbox, pid, "memory")
            .ends_with(format!("{}/container", control_group.trim_start_matches('/'))),
        "the container's cgroup is {control_group}/container"
    );
    let status = sandbox.run(&["systemctl", "status", "--no-pager", "--lines=0", &unit]);
    let tree: Vec<&str> = status.stdout.lines().skip_while(|line| !line.contains("CGroup:")).collect();
    assert!(
        tree.iter().any(|line| line.ends_with("─container")),
        "systemctl status shows the container cgroup: {status:?}"
    );
    assert!(tree.iter().any(|line| line.contains(&format!("{pid} sleep 1000"))), "and its process in it: {status:?}");
    if cgroup::version() == Version::V2 {
        // The unit's cgroup holds no process of its own: it enables controllers for the container's.
        let unit_dir = std::path::Path::new(cgroup::ROOT).join(control_group.trim_start_matches('/'));
        assert_eq!(cgroup::read(&unit_dir, "cgroup.procs"), "", "no process in the unit's own cgroup");
        for controller in ["memory", "cpu", "pids"] {
            let enabled = cgroup::read(&unit_dir, "cgroup.subtree_control");
            assert!(
                enabled.split(' ').any(|name| name == controller),
                "{controller} enabled below the unit: {enabled}"
            );
        }
    }

    tests::calls::kill(&client, &id, 9).await.expect("kill");
    assert_eq!(tests::calls::wait(&client, &id).await.expect("wait").exit_status, 137);
    tests::calls::delete(&client, &id).await.expect("delete");
    std::fs::remove_dir_all(&bundle).expect("remove bundle");
    assert_nothing_left(sandbox, namespace, &id);
}

/// A container whose spec sets no pids limit still has systemd's backstop against a fork bomb:
/// its unit's `TasksMax=` is systemd's `DefaultTasksMax=`, never infinity.
#[test]
fn a_container_without_a_pids_limit_gets_systemds_default_tasks_max() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("tasksmax");
    sandbox.ctr_run_detached("default", &id, &["sleep", "1000"]);
    let unit = tests::unit_of("default", &id);
    let default = sandbox.run(&["systemctl", "show", "-P", "DefaultTasksMax"]).success("systemctl show");
    let tasks_max = sandbox.unit_property(&unit, "TasksMax");
    assert_ne!(tasks_max, "infinity");
    assert_eq!(tasks_max, default.stdout.trim(), "the unit has systemd's DefaultTasksMax");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}
