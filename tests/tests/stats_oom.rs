//! Stats (`ctr task metrics`: cgroup metrics of the container) and OOM (`TaskOOM` and exit 137
//! for a container that exceeds its memory limit).

use std::time::Duration;

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
    assert_eq!(value("memory.limit_in_bytes").as_deref(), Some("67108864"), "{metrics:?}");
    assert!(value("memory.usage_in_bytes").and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 0), "{metrics:?}");
    assert!(value("cpuacct.usage").and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 0), "{metrics:?}");
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
