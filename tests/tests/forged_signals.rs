//! A stranger on the host cannot end a container by forging systemd's signals. On the system
//! bus anyone may send the daemon a unicast signal, whatever its match rules say; a forged
//! `PropertiesChanged` telling that a container's init exited would otherwise become a false
//! `TaskExit`, and the orchestrator's Delete would then kill the real container.
//!
//! The daemon here serves a containerd of its own and is configured to reach systemd over the
//! bus (its fallback when the private socket does not answer). The forger is `nobody`, through
//! `setpriv` and `busctl` inside the sandbox.

use tests::telemetry::SideContainerd;
use tests::{unique_id, Sandbox, IMAGE, RUNTIME};

const NAMESPACE: &str = "forged-signals";
const NOBODY: &str = "65534";

/// `unit`'s object path under systemd's unit tree (sd-bus's escaping: every byte that is not
/// alphanumeric becomes `_xx`).
fn unit_object_path(unit: &str) -> String {
    let escaped: String = unit
        .bytes()
        .map(|byte| if byte.is_ascii_alphanumeric() { char::from(byte).to_string() } else { format!("_{byte:02x}") })
        .collect();
    format!("/org/freedesktop/systemd1/unit/{escaped}")
}

/// The unique name on the system bus of the connection process `pid` holds, if any.
fn unique_bus_name_of(sandbox: &Sandbox, pid: &str) -> Option<String> {
    let run = sandbox.run(&["busctl", "--system", "list", "--unique", "--no-legend", "--no-pager"]);
    run.stdout.lines().find_map(|line| {
        let mut columns = line.split_whitespace();
        let name = columns.next()?;
        (columns.next()? == pid).then(|| name.to_string())
    })
}

#[test]
fn a_forged_exit_signal_from_another_bus_connection_changes_nothing() {
    let sandbox = Sandbox::get();
    let config = sandbox.root.join(format!("{}.toml", unique_id("bus-config")));
    std::fs::write(&config, "[systemd]\nconnection = \"bus\"\n").expect("write config");
    let config_env = format!("CONTAINERD_SHIM_SYSTEMD_CONFIG={}", config.display());
    let containerd = SideContainerd::start(sandbox, &[&config_env]);
    containerd.import_image(NAMESPACE);
    let id = unique_id("forged");
    containerd.ctr(NAMESPACE, &["run", "-d", "--runtime", RUNTIME, IMAGE, &id, "sleep", "1000"]).success("ctr run -d");
    let (init_pid, status) = containerd.task_status(NAMESPACE, &id).expect("the task is listed");
    assert_eq!(status, "RUNNING");

    let daemon_unit = containerd.daemon_unit().expect("a daemon serves the side containerd");
    let daemon_pid = sandbox.unit_property(&daemon_unit, "MainPID");
    let daemon_name = unique_bus_name_of(sandbox, &daemon_pid)
        .unwrap_or_else(|| panic!("the daemon (pid {daemon_pid}) is not on the system bus; the test proves nothing"));

    // What systemd would send when the init exits with status 0, naming the real init.
    let unit = containerd.unit_of(NAMESPACE, &id);
    let destination = format!("--destination={daemon_name}");
    let forged = sandbox.run(&[
        "setpriv",
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "busctl",
        "--system",
        &destination,
        "emit",
        &unit_object_path(&unit),
        "org.freedesktop.DBus.Properties",
        "PropertiesChanged",
        "sa{sv}as",
        "org.freedesktop.systemd1.Service",
        "4",
        "ExecMainCode",
        "i",
        "1",
        "ExecMainStatus",
        "i",
        "0",
        "ExecMainPID",
        "u",
        &init_pid.to_string(),
        "ExecMainExitTimestamp",
        "t",
        "1",
        "0",
    ]);
    forged.success("nobody sends the forged signal");

    // The daemon reads its connection in order: once a task run after the forgery has come and
    // gone (its exit came the same way), the forged signal has been read too.
    let after = unique_id("after-forgery");
    containerd.ctr_run(NAMESPACE, &after, &["true"]).success("a task after the forgery");

    assert_eq!(
        containerd.task_status(NAMESPACE, &id),
        Some((init_pid, "RUNNING".to_string())),
        "the forged exit was taken for the container's"
    );
    assert_eq!(sandbox.unit_property(&unit, "ActiveState"), "active");

    containerd.ctr(NAMESPACE, &["task", "kill", "-s", "KILL", &id]).success("ctr task kill");
    containerd.ctr(NAMESPACE, &["task", "rm", "-f", &id]).success("ctr task rm");
    containerd.ctr(NAMESPACE, &["container", "rm", &id]).success("ctr container rm");
    drop(containerd);
    let _ = std::fs::remove_file(&config);
}
