//! Kubernetes pods through containerd's CRI plugin with the runtime handler `systemd` (our
//! runtime), driven through the CRI gRPC API the way the kubelet drives them: RunPodSandbox →
//! CreateContainer → StartContainer → ExecSync → ContainerStatus → StopContainer →
//! RemoveContainer → StopPodSandbox → RemovePodSandbox. The same body runs on the handler `runc`
//! (runc-v2 with runc's systemd cgroup driver) as the baseline that proves the harness.
//!
//! Pods get the cgroup parent the kubelet's systemd cgroup driver gives a BestEffort pod, so CRI
//! writes `<pod slice>:cri-containerd:<id>` as each container's cgroupsPath: with our runtime
//! the pause container and the app container each run as a unit of ours in the pod's slice.
//! Pods use the host network; no CNI plugin is involved. Every test here is named `cri_…`:
//! `tests/run -- cri_` runs them alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tests::cri::log::{self, Stream};
use tests::cri::stream::StreamedExec;
use tests::cri::{
    container_config, pod_config, Client, ContainerState, CriContainerd, ExecOutput, PodSlice, NAMESPACE, RUNC_HANDLER,
    SYSTEMD_HANDLER,
};
use tests::{unique_id, wait_until, Sandbox, IMAGE};

/// How long StopContainer waits after SIGTERM before SIGKILL; the app exits at once on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The deadline ExecSync gives the plugin.
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the test waits for CRI to write a line to the log, or for systemd to drop a unit.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The app: writes to both streams, then waits; on SIGTERM it says so and exits 7.
const APP_COMMAND: [&str; 3] =
    ["sh", "-c", "trap 'echo stopping; exit 7' TERM; echo hello from app; echo oops >&2; sleep 3600 & wait"];

/// The runtime handler a pod is run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// Ours: every container is a `containerd-k8s.io-<id>.service`.
    Systemd,
    /// runc-v2 with runc's systemd cgroup driver: every container is a `cri-containerd-<id>.scope`.
    Runc,
}

impl Handler {
    fn name(self) -> &'static str {
        match self {
            Handler::Systemd => SYSTEMD_HANDLER,
            Handler::Runc => RUNC_HANDLER,
        }
    }

    /// The systemd unit the task `id` (a pod's pause container or an app container) runs as.
    fn unit_of(self, id: &str) -> String {
        match self {
            Handler::Systemd => CriContainerd::get().unit_of(NAMESPACE, id),
            Handler::Runc => format!("cri-containerd-{id}.scope"),
        }
    }
}

/// Asserts that `unit` runs in the pod's slice; returns its cgroup.
fn assert_running_in_pod_slice(sandbox: &Sandbox, unit: &str, slice: &PodSlice) -> String {
    assert_eq!(sandbox.unit_property(unit, "ActiveState"), "active", "{unit} is active");
    assert_eq!(sandbox.unit_property(unit, "SubState"), "running", "{unit} is running");
    assert_eq!(sandbox.unit_property(unit, "Slice"), slice.slice, "{unit} is in the pod's slice");
    let control_group = sandbox.unit_property(unit, "ControlGroup");
    assert_eq!(
        control_group,
        format!("{}/{unit}", slice.cgroup_parent),
        "{unit}'s cgroup is below the pod's cgroup parent"
    );
    control_group
}

/// The CRI log at `path` (a host path), once it holds at least `stdout_lines` lines of stdout and
/// `stderr_lines` of stderr. Every record must be well-formed.
fn read_log(path: &Path, stdout_lines: usize, stderr_lines: usize) -> (Vec<String>, Vec<String>) {
    let mut last = (Vec::new(), Vec::new());
    let complete = wait_until(SETTLE_TIMEOUT, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // A record may be half written when read: parse only the whole lines.
        let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        let records =
            log::parse(whole).unwrap_or_else(|error| panic!("{} is not in CRI log format: {error}", path.display()));
        last = (log::lines_of(&records, Stream::Stdout), log::lines_of(&records, Stream::Stderr));
        last.0.len() >= stdout_lines && last.1.len() >= stderr_lines
    });
    assert!(complete, "{} never got {stdout_lines} stdout and {stderr_lines} stderr lines: {last:?}", path.display());
    last
}

/// Asserts that systemd, the mount table, containerd's bundles and the cgroup tree hold nothing
/// of task `id` any more.
fn assert_nothing_left(sandbox: &Sandbox, handler: Handler, id: &str, control_group: &str) {
    let unit = handler.unit_of(id);
    let unit_gone = wait_until(SETTLE_TIMEOUT, || !sandbox.unit_loaded(&unit));
    assert!(unit_gone, "unit {unit} is still loaded");
    assert_eq!(sandbox.mounts_containing(id), Vec::<String>::new(), "mounts left for {id}");
    let bundle = CriContainerd::get().bundle(id);
    assert!(!sandbox.host_path(&bundle).exists(), "bundle {} left", bundle.display());
    assert_eq!(sandbox.cgroups_at(control_group), Vec::<PathBuf>::new(), "cgroups left for {unit}");
    if handler == Handler::Systemd {
        let runc_state = CriContainerd::get().runc_state(id);
        assert!(!sandbox.host_path(&runc_state).exists(), "runc state {} left", runc_state.display());
        let exec_units = format!("containerd-{NAMESPACE}-{id}-exec-*");
        let listed = sandbox.run(&["systemctl", "list-units", "--all", "--plain", "--no-legend", &exec_units]);
        assert_eq!(listed.stdout.trim(), "", "exec units left for {id}");
    }
}

/// While `ExecSync` of a slow command runs in container `id`, finds the unit our runtime runs
/// the exec process as and returns it with its slice.
async fn exec_unit_during_exec_sync(sandbox: &'static Sandbox, pod: &tests::cri::Pod, id: &str) -> (String, String) {
    let pattern = format!("containerd-{NAMESPACE}-{id}-exec-*");
    // systemctl blocks: it runs on a thread of its own while the exec is awaited here.
    let watcher = std::thread::spawn(move || {
        let mut found = None;
        wait_until(SETTLE_TIMEOUT, || {
            let listed =
                sandbox.run(&["systemctl", "list-units", "--state=active", "--plain", "--no-legend", &pattern]);
            found = listed.stdout.split_whitespace().next().map(str::to_string);
            found.is_some()
        });
        found.map(|unit| {
            let slice = sandbox.unit_property(&unit, "Slice");
            (unit, slice)
        })
    });
    let slow = pod.exec_sync(id, &["sh", "-c", "sleep 3; echo slow"], EXEC_TIMEOUT).await.expect("ExecSync of sleep");
    assert_eq!(slow, ExecOutput { exit_code: 0, stdout: "slow\n".into(), stderr: String::new() });
    watcher.join().expect("exec unit watcher").expect("the exec ran as a unit of ours")
}

/// What the kubelet would tidy up once a pod is gone, and a test must without one: the pod's
/// slice (stopped), the slice's cgroup directories that neither systemd nor the runtime removes
/// (runc creates them in the hierarchies systemd does not manage for the slice, freezer and
/// cpuset on our hybrid hierarchy, with either runtime), and the pod's log directory. Done on
/// drop, so a failed test leaves nothing behind either.
struct PodLeftovers {
    sandbox: &'static Sandbox,
    slice: PodSlice,
    log_directory: PathBuf,
}

impl Drop for PodLeftovers {
    fn drop(&mut self) {
        let stop = self.sandbox.run(&["systemctl", "stop", &self.slice.slice]);
        if stop.code != 0 {
            eprintln!("stopping {} failed: {stop:?}", self.slice.slice);
        }
        for dir in self.sandbox.cgroups_at(&self.slice.cgroup_parent) {
            match std::fs::remove_dir(&dir) {
                // A hierarchy mounted under two names (cpu, cpuacct) lists a directory twice.
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    eprintln!("removing cgroup {} failed: {error}", dir.display())
                }
                _ => {}
            }
        }
        if let Err(error) = std::fs::remove_dir_all(&self.log_directory) {
            eprintln!("removing {} failed: {error}", self.log_directory.display());
        }
    }
}

async fn pod_lifecycle(handler: Handler) {
    let sandbox = Sandbox::get();
    let cri = CriContainerd::get();
    let client = Client::connect(sandbox).await.expect("connect to the CRI plugin");
    client.wait_ready(&[IMAGE, &cri.pause_image]).await.expect("CRI plugin ready with the test images");

    let uid = unique_id(&format!("cri-{}", handler.name()));
    let slice = PodSlice::best_effort(&uid);
    let log_directory = sandbox.root.join("cri-logs").join(&uid);
    std::fs::create_dir_all(&log_directory).expect("pod log directory");
    // Declared before the pod, so it is dropped after the pod's own cleanup.
    let _leftovers = PodLeftovers { sandbox, slice: slice.clone(), log_directory: log_directory.clone() };
    let log_directory_text = log_directory.to_str().expect("utf-8 path");

    // RunPodSandbox: the pause container runs as a unit in the pod's slice.
    let config = pod_config("cri-test", &uid, log_directory_text, &slice.cgroup_parent);
    let pod = client.run_pod(config, handler.name()).await.expect("RunPodSandbox");
    let pause_unit = handler.unit_of(pod.id());
    let pause_cgroup = assert_running_in_pod_slice(sandbox, &pause_unit, &slice);
    if handler == Handler::Systemd {
        // The handler's options file (CRI's runtimeoptions.v1.Options) reached our runtime.
        let runc_state = cri.runc_state(pod.id());
        assert!(sandbox.host_path(&runc_state).is_dir(), "runc state in {}, the options' Root", runc_state.display());
    }

    // CreateContainer, StartContainer: so does the app container, beside it.
    let id =
        pod.create_container(container_config("app", IMAGE, &APP_COMMAND, "app/0.log")).await.expect("CreateContainer");
    let (state, log_path) = pod.container_status(&id).await.expect("ContainerStatus after create");
    assert_eq!(state, ContainerState::Created);
    assert_eq!(Path::new(&log_path), log_directory.join("app/0.log"), "the log path CRI reports");
    pod.start_container(&id).await.expect("StartContainer");
    assert_eq!(pod.container_status(&id).await.expect("ContainerStatus after start").0, ContainerState::Running);
    let app_unit = handler.unit_of(&id);
    let app_cgroup = assert_running_in_pod_slice(sandbox, &app_unit, &slice);
    let slice_status = sandbox.run(&["systemctl", "status", "--no-pager", "--lines=0", &slice.slice]);
    for unit in [&pause_unit, &app_unit] {
        assert!(
            slice_status.stdout.contains(unit.as_str()),
            "systemctl status {} lists {unit}: {slice_status:?}",
            slice.slice
        );
    }

    // The container's output reaches CRI's log in CRI's format.
    let log_file = log_directory.join("app/0.log");
    let (stdout, stderr) = read_log(&log_file, 1, 1);
    assert_eq!((stdout, stderr), (vec!["hello from app".to_string()], vec!["oops".to_string()]));

    // ExecSync: output and exit codes.
    let hi = pod.exec_sync(&id, &["echo", "hi"], EXEC_TIMEOUT).await.expect("ExecSync of echo");
    assert_eq!(hi, ExecOutput { exit_code: 0, stdout: "hi\n".into(), stderr: String::new() });
    let failing =
        pod.exec_sync(&id, &["sh", "-c", "echo bad >&2; exit 3"], EXEC_TIMEOUT).await.expect("ExecSync of exit 3");
    assert_eq!(failing, ExecOutput { exit_code: 3, stdout: String::new(), stderr: "bad\n".into() });
    // Exec through the streaming server, without and with a terminal.
    let script = ["sh", "-c", "tty; echo out; echo err >&2; exit 3"];
    let apart = pod.exec(&id, &script, false).await.expect("Exec without a terminal");
    assert_eq!(apart, StreamedExec { stdout: "not a tty\nout\n".into(), stderr: "err\n".into(), exit_code: 3 });
    let terminal = pod.exec(&id, &script, true).await.expect("Exec with a terminal");
    assert_eq!((terminal.stderr.as_str(), terminal.exit_code), ("", 3), "{terminal:?}");
    // CRI may drop the whole output of a terminal exec that exits at once with no stdin
    // attached, whichever runtime runs it (seen on containerd 2.1 with runc-v2 and with ours:
    // only the exit code arrives). What arrives must be right.
    if !terminal.stdout.is_empty() {
        let lines: Vec<&str> = terminal.stdout.split("\r\n").collect();
        assert!(lines[0].starts_with("/dev/pts/"), "the exec's stdin is a terminal: {terminal:?}");
        assert_eq!(lines[1..], ["out", "err", ""], "both streams through the terminal, with its line endings");
    }
    if handler == Handler::Systemd {
        let (exec_unit, exec_slice) = exec_unit_during_exec_sync(sandbox, &pod, &id).await;
        assert_eq!(exec_slice, slice.slice, "exec unit {exec_unit} is in the pod's slice");
    }

    // StopContainer: SIGTERM, the trap's exit code, and the last line in the log.
    pod.stop_container(&id, STOP_GRACE).await.expect("StopContainer");
    let (state, _) = pod.container_status(&id).await.expect("ContainerStatus after stop");
    assert_eq!(state, ContainerState::Exited { exit_code: 7, reason: "Error".into() });
    let (stdout, _) = read_log(&log_file, 2, 1);
    assert_eq!(stdout, ["hello from app", "stopping"]);
    let unit_gone = wait_until(SETTLE_TIMEOUT, || !sandbox.unit_loaded(&app_unit));
    assert!(unit_gone, "{app_unit} is gone once CRI has deleted the exited task");

    // RemoveContainer, StopPodSandbox, RemovePodSandbox: nothing is left.
    pod.remove_container(&id).await.expect("RemoveContainer");
    assert!(!client.lists_container(&id).await.expect("ListContainers"), "container {id} is still listed");
    let pod_id = pod.id().to_string();
    pod.cleanup().await.expect("StopPodSandbox and RemovePodSandbox");
    assert!(!client.lists_pod(&pod_id).await.expect("ListPodSandbox"), "pod {pod_id} is still listed");
    assert_nothing_left(sandbox, handler, &id, &app_cgroup);
    assert_nothing_left(sandbox, handler, &pod_id, &pause_cgroup);
}

#[tokio::test]
async fn cri_pod_runs_each_container_as_a_unit_in_the_pod_slice() {
    pod_lifecycle(Handler::Systemd).await;
}

#[tokio::test]
async fn cri_pod_runs_each_container_in_the_pod_slice_on_runc_v2_baseline() {
    pod_lifecycle(Handler::Runc).await;
}

/// The `runtime_type` of the CRI runtime handler `systemd` in `containerd config dump` output
/// (containerd 1.x quotes with `"`, 2.x with `'`).
fn dumped_systemd_runtime_type(dump: &str) -> Option<String> {
    let mut in_handler_table = false;
    for line in dump.lines().map(str::trim) {
        if line.starts_with('[') {
            in_handler_table = line.ends_with(".containerd.runtimes.systemd]");
        } else if let Some(value) = line.strip_prefix("runtime_type = ").filter(|_| in_handler_table) {
            return Some(value.trim_matches(['"', '\'']).to_string());
        }
    }
    None
}

#[test]
fn cri_deploy_snippet_for_this_containerd_defines_the_handler_the_runtime_class_names() {
    let sandbox = Sandbox::get();
    let deploy = tests::deploy_dir();
    let version = std::process::Command::new(&sandbox.containerd).arg("--version").output().expect("containerd runs");
    let version = String::from_utf8_lossy(&version.stdout).split_whitespace().nth(2).unwrap_or_default().to_string();
    // Config version 2 is read by every containerd (2.x migrates it); version 3 only by 2.x.
    let config_versions: &[u32] = match version.split('.').next() {
        Some("1") => &[2],
        Some("2") => &[2, 3],
        _ => panic!("which config versions does containerd {version:?} read?"),
    };
    for config_version in config_versions {
        let snippet = deploy.join(format!("containerd-config-v{config_version}.toml"));
        let text = std::fs::read_to_string(&snippet).unwrap_or_else(|e| panic!("{}: {e}", snippet.display()));
        // What the snippet tells users to do: append it to a config.toml of that version.
        let config = sandbox.root.join(format!("cri-deploy-check-v{config_version}.toml"));
        std::fs::write(&config, format!("version = {config_version}\n\n{text}")).expect("write the config");
        // `config dump` parses the file as containerd does at start, and runs nothing.
        let dump = std::process::Command::new(&sandbox.containerd)
            .arg("--config")
            .arg(&config)
            .args(["config", "dump"])
            .output()
            .expect("containerd config dump runs");
        let _ = std::fs::remove_file(&config);
        assert!(dump.status.success(), "containerd {version} refuses {} appended: {dump:?}", snippet.display());
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert_eq!(
            dumped_systemd_runtime_type(&dump).as_deref(),
            Some(tests::RUNTIME),
            "{} defines the handler {SYSTEMD_HANDLER} with our runtime type for containerd {version}",
            snippet.display()
        );
    }

    let runtime_class = std::fs::read_to_string(deploy.join("runtimeclass.yaml")).expect("deploy/runtimeclass.yaml");
    let field = |name: &str| {
        runtime_class.lines().find_map(|line| line.strip_prefix(name).map(|value| value.trim().to_string()))
    };
    assert_eq!(field("apiVersion:").as_deref(), Some("node.k8s.io/v1"));
    assert_eq!(field("kind:").as_deref(), Some("RuntimeClass"));
    assert_eq!(field("handler:").as_deref(), Some(SYSTEMD_HANDLER), "the RuntimeClass names the handler");
}

/// A volume of the privileged pod: its host directory, where it appears in the container, and
/// the propagation the pod asks for.
struct Volume {
    name: &'static str,
    propagation: k8s_cri::v1::MountPropagation,
    /// Whether a mount made on the host below it appears in the container.
    host_to_container: bool,
    /// Whether a mount made in the container below it appears on the host.
    container_to_host: bool,
}

const VOLUMES: [Volume; 3] = [
    Volume {
        name: "private",
        propagation: k8s_cri::v1::MountPropagation::PropagationPrivate,
        host_to_container: false,
        container_to_host: false,
    },
    Volume {
        name: "rslave",
        propagation: k8s_cri::v1::MountPropagation::PropagationHostToContainer,
        host_to_container: true,
        container_to_host: false,
    },
    Volume {
        name: "rshared",
        propagation: k8s_cri::v1::MountPropagation::PropagationBidirectional,
        host_to_container: true,
        container_to_host: true,
    },
];

/// Unmounts, on drop, what the propagation test mounted on the host (in the sandbox's mount
/// namespace), deepest first, and removes its directories.
struct HostMounts {
    sandbox: &'static Sandbox,
    base: PathBuf,
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        let base = self.base.to_str().unwrap_or_default().to_string();
        let mut mounts = self.sandbox.mounts_containing(&base);
        mounts.sort_by_key(|mount_point| std::cmp::Reverse(mount_point.len()));
        for mount_point in mounts {
            let umount = self.sandbox.run(&["umount", "-l", &mount_point]);
            if umount.code != 0 {
                eprintln!("umount {mount_point}: {umount:?}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// What a privileged pod on `handler` sees: `(volume name, host mount seen in the container,
/// container mount seen on the host)` per volume, and whether `sethostname` works in a
/// privileged container whose seccomp profile forbids it.
async fn privileged_pod(handler: Handler) -> (Vec<(&'static str, bool, bool)>, ExecOutput) {
    let sandbox = Sandbox::get();
    let cri = CriContainerd::get();
    let client = Client::connect(sandbox).await.expect("connect to the CRI plugin");
    client.wait_ready(&[IMAGE, &cri.pause_image]).await.expect("CRI plugin ready with the test images");

    let uid = unique_id(&format!("cri-priv-{}", handler.name()));
    let slice = PodSlice::best_effort(&uid);
    let log_directory = sandbox.root.join("cri-logs").join(&uid);
    std::fs::create_dir_all(&log_directory).expect("pod log directory");
    let _leftovers = PodLeftovers { sandbox, slice: slice.clone(), log_directory: log_directory.clone() };

    // The volumes' host directories, on a mount of their own that is shared (as the kubelet's
    // pods directory is on a systemd host; CRI refuses rshared and rslave volumes otherwise).
    let base = sandbox.root.join("cri-volumes").join(&uid);
    for volume in &VOLUMES {
        std::fs::create_dir_all(base.join(volume.name)).expect("volume directory");
    }
    let host_mounts = HostMounts { sandbox, base: base.clone() };
    let base_text = base.to_str().expect("utf-8 path");
    sandbox.run(&["mount", "--bind", base_text, base_text]).success("bind the volumes' base");
    sandbox.run(&["mount", "--make-rshared", base_text]).success("make it shared");
    let profile = base.join("no-sethostname.json");
    let rules =
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}"#;
    std::fs::write(&profile, rules).expect("seccomp profile");

    let mut config = pod_config("cri-privileged", &uid, log_directory.to_str().expect("utf-8"), &slice.cgroup_parent);
    if let Some(context) = config.linux.as_mut().and_then(|linux| linux.security_context.as_mut()) {
        context.privileged = true;
    }
    let pod = client.run_pod(config, handler.name()).await.expect("RunPodSandbox of a privileged pod");

    let mut app = container_config("app", IMAGE, &["sleep", "3600"], "app/0.log");
    app.mounts = VOLUMES
        .iter()
        .map(|volume| k8s_cri::v1::Mount {
            container_path: format!("/vol-{}", volume.name),
            host_path: base.join(volume.name).to_str().expect("utf-8").to_string(),
            propagation: volume.propagation as i32,
            ..Default::default()
        })
        .collect();
    if let Some(context) = app.linux.as_mut().and_then(|linux| linux.security_context.as_mut()) {
        context.privileged = true;
        context.seccomp = Some(k8s_cri::v1::SecurityProfile {
            profile_type: k8s_cri::v1::security_profile::ProfileType::Localhost as i32,
            localhost_ref: profile.to_str().expect("utf-8").to_string(),
        });
    }
    let id = pod.create_container(app).await.expect("CreateContainer of a privileged container");
    pod.start_container(&id).await.expect("StartContainer of a privileged container");

    // A mount on the host below each volume, and one in the container below each.
    for volume in &VOLUMES {
        let below = base.join(volume.name).join("from-host");
        std::fs::create_dir_all(&below).expect("mount point");
        let below = below.to_str().expect("utf-8");
        sandbox.run(&["mount", "-t", "tmpfs", "from-host", below]).success("mount on the host");
        let in_container =
            format!("mkdir -p /vol-{0}/from-ctr && mount -t tmpfs from-ctr /vol-{0}/from-ctr", volume.name);
        let mounted = pod.exec_sync(&id, &["sh", "-c", &in_container], EXEC_TIMEOUT).await.expect("ExecSync of mount");
        assert_eq!(mounted.exit_code, 0, "a privileged container mounts below /vol-{}: {mounted:?}", volume.name);
    }
    let container_mounts =
        pod.exec_sync(&id, &["cat", "/proc/self/mountinfo"], EXEC_TIMEOUT).await.expect("ExecSync of mountinfo");
    let seen = VOLUMES
        .iter()
        .map(|volume| {
            let in_container = format!(" /vol-{}/from-host ", volume.name);
            let on_host = base.join(volume.name).join("from-ctr");
            let host_sees = !sandbox.mounts_containing(on_host.to_str().expect("utf-8")).is_empty();
            (volume.name, container_mounts.stdout.contains(&in_container), host_sees)
        })
        .collect();
    // Privileged ignores the seccomp profile: the hostname can be set (to what it is).
    let hostname = pod
        .exec_sync(&id, &["sh", "-c", "hostname \"$(hostname)\" && echo set"], EXEC_TIMEOUT)
        .await
        .expect("ExecSync of hostname");

    pod.stop_container(&id, STOP_GRACE).await.expect("StopContainer");
    pod.remove_container(&id).await.expect("RemoveContainer");
    pod.cleanup().await.expect("StopPodSandbox and RemovePodSandbox");
    drop(host_mounts);
    (seen, hostname)
}

#[tokio::test]
async fn cri_privileged_pod_propagates_mounts_and_ignores_seccomp_as_under_runc_v2() {
    let ours = privileged_pod(Handler::Systemd).await;
    let baseline = privileged_pod(Handler::Runc).await;
    let expected: Vec<_> =
        VOLUMES.iter().map(|volume| (volume.name, volume.host_to_container, volume.container_to_host)).collect();
    assert_eq!(baseline.0, expected, "runc-v2: (volume, host mount in the container, container mount on the host)");
    assert_eq!(ours.0, expected, "ours: (volume, host mount in the container, container mount on the host)");
    let set = ExecOutput { exit_code: 0, stdout: "set\n".into(), stderr: String::new() };
    assert_eq!(baseline.1, set, "runc-v2: sethostname under a profile that forbids it, privileged");
    assert_eq!(ours.1, set, "ours: sethostname under a profile that forbids it, privileged");
}

/// What a pod whose containers share a PID namespace shows of its app container's stop.
#[derive(Debug, PartialEq, Eq)]
struct SharedPidStop {
    /// The app's state once StopContainer has returned.
    state: ContainerState,
    /// Live processes of the app (its background `sleep`) right after StopContainer returned.
    left_after_stop: Vec<u32>,
    /// Live processes of the app once the pod is stopped and removed.
    left_after_removal: Vec<u32>,
}

/// How long StopContainer and StopPodSandbox may take here: the app exits on SIGTERM at once,
/// and a hang (the runtime answering Kill with "already finished" while the process runs) would
/// otherwise last until CRI's own deadlines, minutes later.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// Runs a pod on `handler` whose containers use PID namespace `mode` (`Pod`: the pod's
/// `shareProcessNamespace`, joining the pause container's; `Node`: `hostPID`), with an app that
/// leaves a `sleep` behind when SIGTERM ends its shell; stops and removes the app and the pod.
async fn shared_pid_pod(handler: Handler, mode: k8s_cri::v1::NamespaceMode) -> SharedPidStop {
    let sandbox = Sandbox::get();
    let cri = CriContainerd::get();
    let client = Client::connect(sandbox).await.expect("connect to the CRI plugin");
    client.wait_ready(&[IMAGE, &cri.pause_image]).await.expect("CRI plugin ready with the test images");

    let uid = unique_id(&format!("cri-pid-{}", handler.name()));
    let slice = PodSlice::best_effort(&uid);
    let log_directory = sandbox.root.join("cri-logs").join(&uid);
    std::fs::create_dir_all(&log_directory).expect("pod log directory");
    let _leftovers = PodLeftovers { sandbox, slice: slice.clone(), log_directory: log_directory.clone() };

    let mut config = pod_config("cri-pid", &uid, log_directory.to_str().expect("utf-8"), &slice.cgroup_parent);
    if let Some(options) = config
        .linux
        .as_mut()
        .and_then(|linux| linux.security_context.as_mut())
        .and_then(|context| context.namespace_options.as_mut())
    {
        options.pid = mode as i32;
    }
    let pod = client.run_pod(config, handler.name()).await.expect("RunPodSandbox");

    // A sleep whose arguments no other process has: this test's way to find the app's processes.
    let marker = format!("{}", 900_000_000 + std::process::id() * 10 + handler as u32 * 2 + mode as u32);
    let script = format!("trap 'exit 7' TERM; sleep {marker} & wait");
    let mut app = container_config("app", IMAGE, &["sh", "-c", &script], "app/0.log");
    if let Some(options) = app
        .linux
        .as_mut()
        .and_then(|linux| linux.security_context.as_mut())
        .and_then(|context| context.namespace_options.as_mut())
    {
        options.pid = mode as i32;
    }
    let id = pod.create_container(app).await.expect("CreateContainer");
    pod.start_container(&id).await.expect("StartContainer");
    let sleep_argv = ["sleep", marker.as_str()];
    assert!(
        wait_until(SETTLE_TIMEOUT, || !tests::live_processes_with_argv(&sleep_argv).is_empty()),
        "{handler:?}, pid {mode:?}: the app's sleep never ran"
    );
    let hi = pod.exec_sync(&id, &["echo", "hi"], EXEC_TIMEOUT).await.expect("ExecSync in a shared PID namespace");
    assert_eq!(hi, ExecOutput { exit_code: 0, stdout: "hi\n".into(), stderr: String::new() });

    tokio::time::timeout(tests::scaled(STOP_DEADLINE), pod.stop_container(&id, STOP_GRACE))
        .await
        .unwrap_or_else(|_| panic!("{handler:?}, pid {mode:?}: StopContainer hangs"))
        .expect("StopContainer");
    let left_after_stop = tests::live_processes_with_argv(&sleep_argv);
    let (state, _) = pod.container_status(&id).await.expect("ContainerStatus after stop");
    pod.remove_container(&id).await.expect("RemoveContainer");
    tokio::time::timeout(tests::scaled(STOP_DEADLINE), pod.cleanup())
        .await
        .unwrap_or_else(|_| panic!("{handler:?}, pid {mode:?}: StopPodSandbox hangs"))
        .expect("StopPodSandbox and RemovePodSandbox");
    let left_after_removal = tests::live_processes_with_argv(&sleep_argv);
    // Whatever the assertions find, nothing of the test outlives it.
    for pid in left_after_stop.iter().chain(&left_after_removal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
    SharedPidStop { state, left_after_stop, left_after_removal }
}

/// The outcome every runtime must show: the shell's trap status, and no process of the app left
/// once StopContainer has returned (runc-v2 kills what is left of a container without a PID
/// namespace of its own before it reports the exit).
fn stopped_cleanly() -> SharedPidStop {
    SharedPidStop {
        state: ContainerState::Exited { exit_code: 7, reason: "Error".into() },
        left_after_stop: Vec::new(),
        left_after_removal: Vec::new(),
    }
}

#[tokio::test]
async fn cri_pod_sharing_its_pid_namespace_stops_and_leaves_nothing_as_under_runc_v2() {
    let baseline = shared_pid_pod(Handler::Runc, k8s_cri::v1::NamespaceMode::Pod).await;
    let ours = shared_pid_pod(Handler::Systemd, k8s_cri::v1::NamespaceMode::Pod).await;
    assert_eq!(baseline, stopped_cleanly(), "runc-v2, shareProcessNamespace");
    assert_eq!(ours, stopped_cleanly(), "ours, shareProcessNamespace");
}

#[tokio::test]
async fn cri_host_pid_pod_stops_and_leaves_nothing_as_under_runc_v2() {
    let baseline = shared_pid_pod(Handler::Runc, k8s_cri::v1::NamespaceMode::Node).await;
    let ours = shared_pid_pod(Handler::Systemd, k8s_cri::v1::NamespaceMode::Node).await;
    assert_eq!(baseline, stopped_cleanly(), "runc-v2, hostPID");
    assert_eq!(ours, stopped_cleanly(), "ours, hostPID");
}
