//! Runtime options given through a runtime config file (`ctr --runtime-config-path`, the way
//! CRI passes `ConfigPath`): our `SdNotify` and `LogMode`, and runc's `IoUid`/`IoGid`; and the
//! `containerd.linux.runc.CreateOptions` containerd 1.x clients send (`ctr run --no-pivot`).

use std::time::Duration;

use tests::{assert_nothing_left, unique_id, unit_of, wait_until, Sandbox, IMAGE, RUNTIME};

/// Writes a runtime options file visible in the sandbox; returns its path.
fn options_file(sandbox: &Sandbox, name: &str, toml: &str) -> String {
    let dir = sandbox.root.join("options");
    std::fs::create_dir_all(&dir).expect("options dir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).expect("write options");
    path.to_str().expect("utf-8").to_string()
}

/// The host's systemd-notify and the libraries it needs, mounted read-only into a busybox
/// container (which has neither).
const SYSTEMD_NOTIFY_MOUNTS: [&str; 8] = [
    "--mount",
    "type=bind,src=/usr/lib,dst=/usr/lib,options=rbind:ro",
    "--mount",
    "type=bind,src=/usr/lib,dst=/lib,options=rbind:ro",
    "--mount",
    "type=bind,src=/usr/lib64,dst=/lib64,options=rbind:ro",
    "--mount",
    "type=bind,src=/usr/bin/systemd-notify,dst=/bin/systemd-notify,options=bind:ro",
];

#[test]
fn sd_notify_unit_is_active_only_once_the_container_says_ready() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("sdnotify");
    let unit = unit_of("default", &id);
    let options = options_file(sandbox, "sdnotify", "SdNotify = true\n");
    let mut args = vec!["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", &options];
    args.extend(SYSTEMD_NOTIFY_MOUNTS);
    let script = "while [ ! -e /tmp/go ]; do sleep 0.1; done; systemd-notify --ready --status=serving; sleep 1000";
    args.extend([IMAGE, &id, "sh", "-c", script]);
    sandbox.ctr("default", &args).success("ctr run -d");
    let pid = sandbox.wait_for_status("default", &id, "RUNNING");

    assert_eq!(sandbox.unit_property(&unit, "ActiveState"), "activating", "running, but not ready yet");
    assert_eq!(sandbox.unit_property(&unit, "MainPID"), pid.to_string(), "the container init is the main process");
    sandbox.ctr("default", &["task", "exec", "--exec-id", "go", &id, "touch", "/tmp/go"]).success("exec");
    let active = wait_until(Duration::from_secs(10), || sandbox.unit_property(&unit, "ActiveState") == "active");
    assert!(active, "READY=1 from the container activates the unit");
    assert_eq!(sandbox.unit_property(&unit, "StatusText"), "serving");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

/// A container with `SdNotify` can say it is ready, and nothing more: `MAINPID=` naming a
/// process outside it and `STOPPING=1` change nothing (systemd would otherwise make that
/// process the unit's main process, and kill it when the unit stops).
#[test]
fn sd_notify_container_cannot_name_another_main_process_or_stop_its_unit() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("sdnotify-hostile");
    let unit = unit_of("default", &id);
    let victim = format!("victim-{id}.service");
    sandbox.run(&["systemd-run", "--unit", &victim, "sleep", "1000"]).success("a process outside the container");
    let victim_pid = sandbox.unit_property(&victim, "MainPID");
    let options = options_file(sandbox, "sdnotify", "SdNotify = true\n");
    let victim_env = format!("VICTIM={victim_pid}");
    let mut args = vec!["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", &options, "--env", &victim_env];
    args.extend(SYSTEMD_NOTIFY_MOUNTS);
    let script = "systemd-notify MAINPID=$VICTIM; systemd-notify STOPPING=1; systemd-notify EXTEND_TIMEOUT_USEC=1; \
                  while [ ! -e /tmp/go ]; do sleep 0.1; done; systemd-notify --ready; sleep 1000";
    args.extend([IMAGE, &id, "sh", "-c", script]);
    sandbox.ctr("default", &args).success("ctr run -d");
    let pid = sandbox.wait_for_status("default", &id, "RUNNING");
    sandbox.ctr("default", &["task", "exec", "--exec-id", "go", &id, "touch", "/tmp/go"]).success("exec");
    let active = wait_until(Duration::from_secs(10), || sandbox.unit_property(&unit, "ActiveState") == "active");
    assert!(active, "READY=1 still activates the unit");
    assert_eq!(sandbox.unit_property(&unit, "MainPID"), pid.to_string(), "the container init stays the main process");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
    assert_eq!(sandbox.unit_property(&victim, "ActiveState"), "active", "the outside process was not touched");
    assert_eq!(sandbox.unit_property(&victim, "MainPID"), victim_pid);
    sandbox.run(&["systemctl", "stop", &victim]).success("stop the outside process");
}

#[test]
fn journal_log_mode_sends_output_to_the_units_journal() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("journal");
    let unit = unit_of("default", &id);
    let options = options_file(sandbox, "journal", "LogMode = \"journal\"\n");
    let marker = format!("journal-marker-{id}");
    let script = format!("echo {marker}-out; echo {marker}-err >&2");
    let run = sandbox.ctr(
        "default",
        &["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", &options, IMAGE, &id, "sh", "-c", &script],
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "containerd's stdout gets nothing: {run:?}");
    let journal = || sandbox.run(&["journalctl", "--no-pager", "-o", "cat", "-u", &unit]).stdout;
    let logged = wait_until(Duration::from_secs(10), || {
        let text = journal();
        text.contains(&format!("{marker}-out")) && text.contains(&format!("{marker}-err"))
    });
    assert!(logged, "journalctl -u {unit} shows the container's output: {}", journal());
    assert_nothing_left(sandbox, "default", &id);
}

/// In journal mode a container cannot pick its lines' level: `<0>` (emerg, which journald
/// would broadcast to every terminal) stays text, and the line has its stream's level.
#[test]
fn journal_log_mode_keeps_a_level_prefix_as_text_at_the_streams_level() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("journal-level");
    let unit = unit_of("default", &id);
    let options = options_file(sandbox, "journal", "LogMode = \"journal\"\n");
    let marker = format!("level-marker-{id}");
    let script = format!("echo '<0>{marker}'");
    let run = sandbox.ctr(
        "default",
        &["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", &options, IMAGE, &id, "sh", "-c", &script],
    );
    assert_eq!(run.code, 0, "{run:?}");
    // `-o verbose`-like fields: PRIORITY and MESSAGE of the container's line.
    let line = || {
        let journal = sandbox.run(&["journalctl", "--no-pager", "-o", "json", "-u", &unit]).stdout;
        journal.lines().find(|line| line.contains(&marker)).map(str::to_string)
    };
    let mut found = None;
    assert!(wait_until(Duration::from_secs(10), || {
        found = line();
        found.is_some()
    }));
    let entry: serde_json::Value = serde_json::from_str(&found.unwrap_or_default()).expect("journal JSON");
    assert_eq!(entry["MESSAGE"], format!("<0>{marker}"), "the prefix is kept as text: {entry}");
    assert_eq!(entry["PRIORITY"], "6", "stdout's level (info), not emerg: {entry}");
    assert_nothing_left(sandbox, "default", &id);
}

#[test]
fn io_uid_and_gid_own_the_containers_stdio() {
    let sandbox = Sandbox::get();
    let id = unique_id("iouid");
    let options = options_file(sandbox, "iouid", "IoUid = 4242\nIoGid = 4343\n");
    sandbox.ensure_image("default");
    sandbox
        .ctr(
            "default",
            &["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", &options, IMAGE, &id, "sleep", "1000"],
        )
        .success("ctr run -d");
    let pid = sandbox.wait_for_status("default", &id, "RUNNING");
    let owner = sandbox.run(&["stat", "-L", "-c", "%u:%g", &format!("/proc/{pid}/fd/1")]);
    let default_owner = sandbox.run(&["stat", "-L", "-c", "%g", "/run/containerd"]);
    assert_ne!(default_owner.stdout.trim(), "4343");
    // We chown to IoUid:IoGid; runc then gives the uid (only) to the process's user, root here,
    // as it does under runc-v2 (`fixStdioPermissions`). The group shows our chown.
    assert_eq!(owner.stdout.trim(), "0:4343", "{owner:?}");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);
}

/// containerd 1.x clients give a runtime not named `io.containerd.runc.*` its options as
/// `containerd.linux.runc.CreateOptions` (`ctr run --no-pivot`): the container runs, and the
/// helper is told to run `runc create --no-pivot`. The same `ctr run --no-pivot` on runc-v2 (to
/// which ctr sends runc's options) is the baseline. containerd 2.x clients send runc's options to
/// every runtime, so there is no CreateOptions to test there.
#[test]
fn ctr_run_no_pivot_sends_create_options_on_containerd_1_and_runc_is_told_no_pivot() {
    let sandbox = Sandbox::get();
    let (major, minor) = tests::containerd_major_minor(sandbox);
    if major >= 2 {
        eprintln!(
            "SKIPPED ctr_run_no_pivot_sends_create_options_on_containerd_1_and_runc_is_told_no_pivot: containerd \
             {major}.{minor} clients send containerd.runc.v1.Options to every runtime, never CreateOptions"
        );
        return;
    }
    sandbox.ensure_image("default");
    let id = unique_id("no-pivot");
    sandbox
        .ctr("default", &["run", "-d", "--no-pivot", "--runtime", RUNTIME, IMAGE, &id, "sleep", "1000"])
        .success("ctr run -d --no-pivot");
    sandbox.wait_for_status("default", &id, "RUNNING");
    // What the daemon asked of the helper, which runs runc inside the unit (runc-wrap's
    // `CreateRequest`): read while the task runs, before Delete removes it.
    let bundle = sandbox.host_path(format!("/run/containerd/io.containerd.runtime.v2.task/default/{id}"));
    let request = std::fs::read_to_string(bundle.join("shim-create.json")).expect("the helper's create request");
    let request: serde_json::Value = serde_json::from_str(&request).expect("JSON");
    assert_eq!(request["runc"]["no_pivot_root"], true, "runc create --no-pivot: {request}");
    let exec = sandbox.ctr("default", &["task", "exec", "--exec-id", "probe", &id, "echo", "runs"]);
    assert_eq!((exec.code, exec.stdout.as_str()), (0, "runs\n"), "{exec:?}");
    sandbox.remove_task("default", &id);
    assert_nothing_left(sandbox, "default", &id);

    // runc-v2 the same way (a quickly exiting `ctr run --rm` may lose its output to ctr's race
    // with the exit, under either runtime).
    let baseline = unique_id("no-pivot-runc-v2");
    sandbox
        .ctr(
            "default",
            &["run", "-d", "--no-pivot", "--runtime", tests::grpc::RUNC_V2, IMAGE, &baseline, "sleep", "1000"],
        )
        .success("ctr run -d --no-pivot (runc-v2)");
    sandbox.wait_for_status("default", &baseline, "RUNNING");
    let exec = sandbox.ctr("default", &["task", "exec", "--exec-id", "probe", &baseline, "echo", "runs"]);
    sandbox.remove_task("default", &baseline);
    assert_eq!((exec.code, exec.stdout.as_str()), (0, "runs\n"), "runc-v2 with --no-pivot: {exec:?}");
}
