//! The long leak test (run with `tests/run --long`): 1000 create/start/exec/delete cycles through
//! containerd's API, with fast and slow exits, then zero leftovers (units, mounts, state files,
//! runc state, noted Waits) and the daemon's fd count and RSS compared with the start. Figures
//! are printed; flat means fds equal and RSS growth within a bound that fragmentation explains.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tests::grpc::{Client, ContainerConfig, Stdio};
use tests::{unique_id, Sandbox, RUNTIME};

const NAMESPACE: &str = "leak";
const CYCLES: usize = 1000;
const PARALLEL: usize = 4;

/// The daemon serving the test containerd: pid, open fds, RSS in kB.
fn daemon_figures(sandbox: &Sandbox) -> (u32, usize, u64) {
    let (_, pid) = sandbox.daemon();
    let fds = std::fs::read_dir(sandbox.host_path(format!("/proc/{pid}/fd"))).expect("fd dir").count();
    let status = std::fs::read_to_string(sandbox.host_path(format!("/proc/{pid}/status"))).expect("status");
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0);
    (pid, fds, rss)
}

fn entries(sandbox: &Sandbox, dir: &str) -> Vec<String> {
    std::fs::read_dir(sandbox.host_path(dir))
        .map(|entries| entries.flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

async fn one_cycle(client: &Client, n: usize) {
    let id = unique_id(&format!("leak{n}"));
    // A mix: immediate exits, short sleeps, and tasks that are killed.
    let (args, killed): (Vec<&str>, bool) = match n % 3 {
        0 => (vec!["true"], false),
        1 => (vec!["sh", "-c", "sleep 0.2; exit 3"], false),
        _ => (vec!["sleep", "1000"], true),
    };
    let container = client.create_container(&ContainerConfig::busybox(&id, RUNTIME, &args)).await.expect("container");
    container.create_task(&Stdio::none()).await.expect("create task");
    container.start().await.expect("start");
    if killed {
        let exec = container.exec("probe", &["sh", "-c", "exit 4"], &Stdio::none()).await.expect("exec");
        exec.start().await.expect("start exec");
        assert_eq!(exec.wait().await.expect("wait exec"), 4);
        exec.delete().await.expect("delete exec");
        container.kill(Signal::SIGKILL).await.expect("kill");
    }
    let status = container.wait().await.expect("wait");
    let expected = match n % 3 {
        0 => 0,
        1 => 3,
        _ => 137,
    };
    assert_eq!(status, expected, "cycle {n}");
    container.delete_task().await.expect("delete task");
    container.cleanup().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 1000 cycles; run with tests/run --long"]
async fn thousand_cycles_leave_nothing_and_the_daemon_stays_flat() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image(NAMESPACE);
    let client = Client::connect(sandbox, NAMESPACE).await.expect("connect");
    // Warm up: the namespace's socket and the daemon's first allocations.
    for n in 0..20 {
        one_cycle(&client, n).await;
    }
    let (pid, fds_before, rss_before) = daemon_figures(sandbox);
    let started = Instant::now();
    let mut next = 20;
    while next < CYCLES + 20 {
        let batch: Vec<usize> = (next..(next + PARALLEL).min(CYCLES + 20)).collect();
        next += batch.len();
        futures::future::join_all(batch.into_iter().map(|n| one_cycle(&client, n))).await;
        if next % 200 < PARALLEL {
            let (_, fds, rss) = daemon_figures(sandbox);
            println!("after {:>4} cycles: daemon fds {fds}, RSS {rss} kB", next - 20);
        }
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (pid_after, fds_after, rss_after) = daemon_figures(sandbox);
    println!(
        "{CYCLES} cycles in {:.1} s: daemon fds {fds_before} -> {fds_after}, RSS {rss_before} kB -> {rss_after} kB",
        elapsed.as_secs_f64()
    );
    assert_eq!(pid, pid_after, "the daemon did not restart");

    let units = sandbox.run(&["systemctl", "list-units", "--all", "--plain", "--no-legend", "containerd-leak-*"]);
    assert_eq!(units.stdout.trim(), "", "no unit of the namespace is left");
    assert_eq!(sandbox.mounts_containing("/leak/"), Vec::<String>::new(), "no mount is left");
    assert_eq!(entries(sandbox, "/run/containerd/io.containerd.runtime.v2.task/leak"), Vec::<String>::new());
    assert_eq!(entries(sandbox, "/run/containerd/io.containerd.systemd.v1/runc/leak"), Vec::<String>::new());
    let state = sandbox.daemon_state_dir();
    assert_eq!(entries(sandbox, &format!("{state}/tasks/leak")), Vec::<String>::new(), "no task record is left");
    let noted = entries(sandbox, &format!("{state}/pending-waits"));
    let noted_waits: usize =
        noted.iter().map(|dir| entries(sandbox, &format!("{state}/pending-waits/{dir}")).len()).sum();
    assert_eq!(noted_waits, 0, "no Wait is left noted");
    // containerd's connections to the daemon (one per task it talks to, closed after delete)
    // come and go with other clients' work; leaks would grow with the cycles.
    assert!(fds_after <= fds_before + 2, "the daemon's fd count is flat: {fds_before} -> {fds_after}");
    assert!(rss_after < rss_before + 4096, "RSS grew by {} kB", rss_after.saturating_sub(rss_before));
}
