//! Harness for the integration tests: a private systemd booted by `tests/sandbox`, a containerd
//! running in it with our shim on its PATH, and ways to act inside it. `tests/run` sets the
//! `SHIM_TEST_*` variables; without them every integration test fails with a pointer to it.

pub mod bench;
pub mod cgroup;
pub mod cri;
pub mod docker;
pub mod grpc;
pub mod rpc;
pub mod telemetry;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The image `tests/run` imports.
pub const IMAGE: &str = "docker.io/library/busybox:test";
/// Our runtime's name.
pub const RUNTIME: &str = "io.containerd.systemd.v1";

/// The running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// Host pid of the sandbox's systemd.
    pub pid: u32,
    /// The `ctr` of the containerd under test.
    pub ctr: String,
    /// The containerd binary under test.
    pub containerd: String,
    /// Our shim binary, as installed for the sandbox.
    pub shim: String,
    /// The test root (visible inside and outside the sandbox).
    pub root: PathBuf,
    /// The systemd unit the containerd under test runs as.
    pub containerd_unit: String,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with the output unless the command succeeded.
    pub fn success(self, what: &str) -> Run {
        assert_eq!(self.code, 0, "{what} failed: {self:?}");
        self
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: integration tests need the sandbox that `tests/run` boots; run `tests/run`")
    })
}

impl Sandbox {
    /// The sandbox `tests/run` described in the environment.
    pub fn get() -> &'static Sandbox {
        static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
        SANDBOX.get_or_init(|| Sandbox {
            pid: env("SHIM_TEST_SANDBOX_PID").parse().expect("SHIM_TEST_SANDBOX_PID is a pid"),
            ctr: env("SHIM_TEST_CTR"),
            containerd: env("SHIM_TEST_CONTAINERD"),
            shim: env("SHIM_TEST_SHIM"),
            root: PathBuf::from(env("SHIM_TEST_ROOT")),
            containerd_unit: std::env::var("SHIM_TEST_CONTAINERD_UNIT")
                .unwrap_or_else(|_| "test-containerd.service".to_string()),
        })
    }

    /// A command that runs `args` inside the sandbox, bounded to 120 s ([`scaled`]).
    pub fn command(&self, args: &[&str]) -> Command {
        let limit = scaled(Duration::from_secs(120)).as_secs().to_string();
        // `--foreground`: stay in our process group, so a group kill reaches the command too.
        let mut bounded = vec!["timeout", "--foreground", "-s", "KILL", &limit];
        bounded.extend_from_slice(args);
        self.command_unbounded(&bounded)
    }

    /// [`Sandbox::command`] in directory `dir` (a path the sandbox sees): nsenter enters the
    /// sandbox's mount namespace at its root, whatever the caller's directory is.
    pub fn command_in(&self, dir: &Path, args: &[&str]) -> Command {
        let limit = scaled(Duration::from_secs(120)).as_secs().to_string();
        let mut command = Command::new("nsenter");
        let wd = format!("--wd={}", dir.display());
        command
            .args(["-t", &self.pid.to_string(), "-m", "-p", &wd, "--", "timeout", "--foreground", "-s", "KILL", &limit])
            .args(args);
        command.stdin(Stdio::null());
        command
    }

    /// A command that runs `args` inside the sandbox for as long as it takes: for watchers the
    /// test ends itself.
    pub fn command_unbounded(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command.args(["-t", &self.pid.to_string(), "-m", "-p", "--"]).args(args);
        command.stdin(Stdio::null());
        command
    }

    /// Runs `args` inside the sandbox.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().expect("nsenter runs"))
    }

    /// Runs `ctr -n NAMESPACE args…`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Run {
        let mut all = vec![self.ctr.as_str(), "-n", namespace];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Runs `ctr -n NAMESPACE args…` with `input` as its standard input.
    pub fn ctr_with_stdin(&self, namespace: &str, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut all = vec![self.ctr.as_str(), "-n", namespace];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsenter runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input); // dropping stdin closes it: EOF for ctr
        });
        let run = finish(child);
        writer.join().expect("stdin writer");
        run
    }

    /// `ctr run -d` of `command` in `namespace`: a task left running for the test to drive.
    pub fn ctr_run_detached(&self, namespace: &str, id: &str, command: &[&str]) -> u32 {
        self.ensure_image(namespace);
        let mut args = vec!["run", "-d", "--runtime", RUNTIME, IMAGE, id];
        args.extend_from_slice(command);
        self.ctr(namespace, &args).success("ctr run -d");
        self.wait_for_status(namespace, id, "RUNNING")
    }

    /// Runs `shell_command` under `script`, so it has a terminal of its own. While it runs,
    /// `watch` is called once (in this thread), e.g. to check the container it started; the
    /// `input` lines are typed after it returned, each once the terminal shows one more shell
    /// prompt (`# `) than before it, so a line never arrives before the shell reads it, however
    /// slow the host. The terminal's input stays open until the command has exited.
    pub fn in_terminal(&self, shell_command: &str, input: &[&str], watch: impl FnOnce()) -> Run {
        use std::io::{Read, Write};
        let mut child = self
            .command(&["script", "-qec", shell_command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let shown = std::sync::Arc::new((Mutex::new(Vec::<u8>::new()), std::sync::Condvar::new()));
        let screen = std::sync::Arc::clone(&shown);
        let out_reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                let (text, arrived) = &*screen;
                text.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(&chunk[..n]);
                arrived.notify_all();
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let (exited, exit_seen) = std::sync::mpsc::channel::<()>();
        let (watched, watch_done) = std::sync::mpsc::channel::<()>();
        let lines: Vec<String> = input.iter().map(|line| format!("{line}\n")).collect();
        let screen = std::sync::Arc::clone(&shown);
        let typist = std::thread::spawn(move || {
            let prompts = |text: &[u8]| text.windows(2).filter(|pair| pair == b"# ").count();
            let _ = watch_done.recv();
            for (typed, line) in lines.iter().enumerate() {
                let (text, arrived) = &*screen;
                let guard = text.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                // A prompt that never comes ends the wait: the line goes anyway, and the test's
                // own assertions say what the terminal showed.
                let _ =
                    arrived.wait_timeout_while(guard, scaled(Duration::from_secs(60)), |text| prompts(text) <= typed);
                let _ = stdin.write_all(line.as_bytes());
            }
            let _ = exit_seen.recv();
        });
        watch();
        let _ = watched.send(());
        let status = child.wait().expect("script finishes");
        let _ = exited.send(());
        typist.join().expect("typist");
        out_reader.join().expect("stdout reader");
        let stderr = err_reader.join().expect("stderr reader");
        let stdout = shown.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Starts `ctr -n NAMESPACE args…` in the background, its output captured.
    pub fn spawn_ctr(&self, namespace: &str, args: &[&str]) -> Child {
        let mut all = vec![self.ctr.as_str(), "-n", namespace];
        all.extend_from_slice(args);
        self.command(&all).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("nsenter runs")
    }

    /// The unit and main pid of the daemon serving the test containerd (other containerds in
    /// the sandbox have daemons of their own).
    pub fn daemon(&self) -> (String, u32) {
        let unit = self.daemon_unit().unwrap_or_else(|| panic!("no daemon unit for the sandbox's containerd"));
        let pid = self.unit_property(&unit, "MainPID").parse().unwrap_or(0);
        (unit, pid)
    }

    /// The unit of the daemon serving the sandbox's containerd, if one is loaded.
    pub fn daemon_unit(&self) -> Option<String> {
        let units = self.run(&["systemctl", "list-units", "--plain", "--no-legend", "containerd-shim-systemd-v1-*"]);
        units
            .stdout
            .lines()
            .find(|line| line.ends_with("containerd at /run/containerd/containerd.sock"))
            .and_then(|line| line.split_whitespace().next())
            .map(str::to_string)
    }

    /// The state directory (task records, noted Waits) of the daemon serving the test
    /// containerd, as seen in the sandbox.
    pub fn daemon_state_dir(&self) -> String {
        let identity = shim::paths::DaemonIdentity::for_containerd("/run/containerd/containerd.sock");
        identity.state_dir().display().to_string()
    }

    /// Kills (SIGKILL) and removes task and container `id`, whatever state they are in.
    pub fn remove_task(&self, namespace: &str, id: &str) {
        self.ctr(namespace, &["task", "kill", "-s", "SIGKILL", id]);
        wait_until(Duration::from_secs(10), || self.task_status(namespace, id).is_none_or(|(_, s)| s == "STOPPED"));
        self.ctr(namespace, &["task", "rm", "-f", id]);
        self.ctr(namespace, &["container", "rm", id]);
    }

    /// Imports the test image into `namespace` once (images are per namespace in containerd).
    pub fn ensure_image(&self, namespace: &str) {
        static IMPORTED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
        let mut imported = IMPORTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let imported = imported.get_or_insert_with(HashSet::new);
        if imported.contains(namespace) {
            return;
        }
        let archive = self.root.join("busybox-oci.tar");
        let archive = archive.to_str().expect("utf-8 path");
        self.ctr(namespace, &["images", "import", archive]).success("ctr images import");
        imported.insert(namespace.to_string());
    }

    /// `ctr run --rm --runtime io.containerd.systemd.v1 IMAGE ID command…` in `namespace`.
    pub fn ctr_run(&self, namespace: &str, id: &str, command: &[&str]) -> Run {
        self.ensure_image(namespace);
        let mut args = vec!["run", "--rm", "--runtime", RUNTIME, IMAGE, id];
        args.extend_from_slice(command);
        self.ctr(namespace, &args)
    }

    /// Starts `ctr run --rm …` in the background.
    pub fn spawn_ctr_run(&self, namespace: &str, id: &str, command: &[&str]) -> Child {
        self.ensure_image(namespace);
        let mut args = vec![self.ctr.as_str(), "-n", namespace, "run", "--rm", "--runtime", RUNTIME, IMAGE, id];
        args.extend_from_slice(command);
        self.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("nsenter runs")
    }

    /// The host path of `inside` (a path as seen in the sandbox), through `/proc/PID/root`.
    pub fn host_path(&self, inside: impl AsRef<Path>) -> PathBuf {
        let inside = inside.as_ref();
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// Whether systemd in the sandbox has `unit` loaded (in any state).
    pub fn unit_loaded(&self, unit: &str) -> bool {
        let run = self.run(&["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager", unit]);
        run.stdout.lines().any(|line| line.split_whitespace().next() == Some(unit))
    }

    /// Where the daemon has the `ExecStopPost` of task unit `unit` record its exit (each daemon
    /// has its own directory; the unit name tells whose).
    pub fn exit_files_of(&self, unit: &str) -> Vec<PathBuf> {
        let daemons = self.host_path("/run/containerd/io.containerd.systemd.v1/daemons");
        let Ok(entries) = std::fs::read_dir(daemons) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|daemon| daemon.path().join("exits").join(format!("{unit}.json")))
            .filter(|file| file.exists())
            .collect()
    }

    /// A unit property, e.g. `MainPID`.
    pub fn unit_property(&self, unit: &str, property: &str) -> String {
        self.run(&["systemctl", "show", "-p", property, "--value", unit]).stdout.trim().to_string()
    }

    /// Mount points in the sandbox whose path contains `needle`.
    pub fn mounts_containing(&self, needle: &str) -> Vec<String> {
        let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).expect("mountinfo");
        mountinfo
            .lines()
            .filter_map(|line| line.split_whitespace().nth(4))
            .filter(|mount_point| mount_point.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Loaded units (in any state) of the tasks and execs of `namespaces`, of any daemon, by their
    /// name prefix: units a bad request should never have made show up here whatever their name.
    pub fn units_of_namespaces(&self, namespaces: &[&str]) -> Vec<String> {
        // A namespace is escaped (a `-` in it becomes `\x2d`), so the `-` after it ends it.
        let prefixes: Vec<String> = namespaces
            .iter()
            .map(|namespace| format!("containerd-{}-", unit_gen::escape::unit_name_escape(namespace)))
            .collect();
        let run = self.run(&["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager"]);
        run.stdout
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|unit| prefixes.iter().any(|prefix| unit.starts_with(prefix)))
            .map(str::to_string)
            .collect()
    }

    /// Cgroup directories (in any hierarchy) of `unit` in the default slice.
    pub fn cgroups_of(&self, unit: &str) -> Vec<PathBuf> {
        cgroup::existing_dirs(&format!("/system.slice/{unit}"))
    }

    /// The directories of cgroup `path` (a path from the cgroup root, e.g. a unit's
    /// `ControlGroup`) that exist, in any hierarchy.
    pub fn cgroups_at(&self, path: &str) -> Vec<PathBuf> {
        cgroup::existing_dirs(path)
    }

    /// The status `ctr task ls` shows for `id`, if it lists it.
    pub fn task_status(&self, namespace: &str, id: &str) -> Option<(u32, String)> {
        listed_task(&self.ctr(namespace, &["task", "ls"]).stdout, id)
    }

    /// Waits until `ctr task ls` shows `id` with `status`; returns its pid.
    pub fn wait_for_status(&self, namespace: &str, id: &str, status: &str) -> u32 {
        let mut last = None;
        let found = wait_until(Duration::from_secs(30), || {
            last = self.task_status(namespace, id);
            last.as_ref().is_some_and(|(_, current)| current == status)
        });
        assert!(found, "task {namespace}/{id} never became {status}; last seen {last:?}");
        last.map(|(pid, _)| pid).unwrap_or(0)
    }
}

/// Task `id`'s pid and status in the output of `ctr task ls`.
pub fn listed_task(listing: &str, id: &str) -> Option<(u32, String)> {
    listing.lines().find_map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
        [task, pid, status, ..] if task == id => Some((pid.parse().unwrap_or(0), status.to_string())),
        _ => None,
    })
}

/// The unit our shim gives task `id` of `namespace` under the host's default containerd.
pub fn unit_of(namespace: &str, id: &str) -> String {
    unit_gen::UnitName::for_task(namespace, id).to_string()
}

/// The unit the daemon of the containerd at `containerd_address` gives task `id` of
/// `namespace`: [`unit_of`] for the host's default containerd, tagged for any other.
pub fn unit_of_containerd(containerd_address: &str, namespace: &str, id: &str) -> String {
    shim::paths::DaemonIdentity::for_containerd(containerd_address).unit_naming.task(namespace, id).to_string()
}

/// The unit our shim gives exec `exec_id` of task `id` in `namespace`.
pub fn exec_unit_of(namespace: &str, id: &str, exec_id: &str) -> String {
    unit_gen::UnitName::for_exec(namespace, id, exec_id).to_string()
}

/// The repository's `deploy/` directory: `SHIM_TEST_DEPLOY` where the tests run away from the
/// checkout (in a VM lane), else beside this crate.
pub fn deploy_dir() -> PathBuf {
    std::env::var_os("SHIM_TEST_DEPLOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy"))
}

/// An id unique to this test process and call, starting with `prefix`.
pub fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// How many times slower than our development machines this host runs the tests:
/// `SHIM_TEST_TIME_SCALE` (a VM under software emulation sets it), else 1. Every deadline of the
/// harness is multiplied by it; what a test measures is not.
pub fn time_scale() -> u32 {
    static SCALE: OnceLock<u32> = OnceLock::new();
    *SCALE.get_or_init(|| {
        std::env::var("SHIM_TEST_TIME_SCALE").ok().and_then(|value| value.parse().ok()).filter(|&n| n > 0).unwrap_or(1)
    })
}

/// `timeout` for this host: [`time_scale`] times it.
pub fn scaled(timeout: Duration) -> Duration {
    timeout * time_scale()
}

/// containerd's version in the sandbox, as (major, minor).
pub fn containerd_major_minor(sandbox: &Sandbox) -> (u32, u32) {
    let output = std::process::Command::new(&sandbox.containerd).arg("--version").output().expect("containerd runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().nth(2).unwrap_or_default().trim_start_matches('v');
    let mut numbers = version.split(['.', '~', '+', '-']).map(|part| part.parse().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// How many tasks a test of many tasks at once runs: `wanted`, or fewer where
/// `SHIM_TEST_MANY_TASKS` caps it (the VM lanes under software emulation, where each container
/// start takes seconds; the sandbox lanes run the full number).
pub fn many_tasks(wanted: usize) -> usize {
    let cap = std::env::var("SHIM_TEST_MANY_TASKS").ok().and_then(|value| value.parse().ok()).filter(|&n| n > 0);
    cap.map_or(wanted, |cap: usize| wanted.min(cap))
}

/// Polls `condition` every 50 ms ([`scaled`]) until it holds or `timeout` ([`scaled`]) passes; says whether
/// it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + scaled(timeout);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Polls often spawn a process (ctr, systemctl): on a slow host, less often.
        std::thread::sleep(scaled(Duration::from_millis(50)));
    }
}

/// The pids of live processes (zombies do not count) whose whole command line is `argv`, in
/// every PID namespace: this process sees the sandbox's and the VM's from outside or at the top.
pub fn live_processes_with_argv(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|arg| arg.bytes().chain([0])).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| cmdline == wanted))
        .filter(|pid| {
            // The state is the first field after the command name's closing parenthesis.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|state| state != "Z")
            })
        })
        .collect()
}

/// Waits for a background `ctr` and returns what it printed.
pub fn finish(child: Child) -> Run {
    Run::from_output(child.wait_with_output().expect("ctr finishes"))
}

/// Runs `check`, turning its panic (a failed assertion) into the panic's message: for a test that
/// gathers every problem before it cleans up and fails.
pub fn caught(check: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|message| message.to_string()))
            .unwrap_or_else(|| "a check panicked".into())
    })
}

/// Asserts that task `id` of `namespace` left nothing behind: no unit, no mounts, no runc state,
/// no cgroup directories, no bundle.
pub fn assert_nothing_left(sandbox: &Sandbox, namespace: &str, id: &str) {
    let unit = unit_of(namespace, id);
    let bundle = format!("/run/containerd/io.containerd.runtime.v2.task/{namespace}/{id}");
    let runc_state = format!("/run/containerd/io.containerd.systemd.v1/runc/{namespace}/{id}");
    // Delete returns before systemd has collected the unit (an exited container's unit stops
    // after the answer, and the daemon then removes its cgroups and exit file); give it a moment.
    // (The asserts below say what was left if the wait ran out.)
    let _ = wait_until(Duration::from_secs(10), || {
        !sandbox.unit_loaded(&unit) && sandbox.cgroups_of(&unit).is_empty() && sandbox.exit_files_of(&unit).is_empty()
    });
    assert!(!sandbox.unit_loaded(&unit), "unit {unit} is still loaded");
    assert_eq!(sandbox.exit_files_of(&unit), Vec::<PathBuf>::new(), "exit file left for {unit}");
    assert_eq!(sandbox.mounts_containing(&format!("/{namespace}/{id}/")), Vec::<String>::new(), "mounts left for {id}");
    assert!(!sandbox.host_path(&runc_state).exists(), "runc state {runc_state} left");
    assert!(!sandbox.host_path(&bundle).exists(), "bundle {bundle} left");
    assert_eq!(sandbox.cgroups_of(&unit), Vec::<PathBuf>::new(), "cgroups left for {unit}");
}

/// A direct ttrpc client for one namespace of the daemon, the way containerd talks to it.
pub mod direct {
    use std::path::PathBuf;
    use std::time::Duration;

    use containerd_shim_protos::shim_async::TaskClient;

    use super::{Run, Sandbox};

    /// Asks our shim's `start` (as containerd would) to serve `namespace`; returns what it printed
    /// and, on success, the address.
    pub fn start_shim(sandbox: &Sandbox, namespace: &str, id: &str) -> (Run, Option<String>) {
        let path = containerd_path(sandbox);
        let env = [path.as_str(), "TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc"];
        run_start(sandbox, &daemon_address(), &env, namespace, id)
    }

    /// Runs our shim's `start` for the containerd at `containerd_address` (which need not run),
    /// with `env` (`NAME=value`) added to its environment; returns what it printed and, on
    /// success, the address.
    pub fn start_shim_at(
        sandbox: &Sandbox,
        containerd_address: &str,
        env: &[&str],
        namespace: &str,
        id: &str,
    ) -> (Run, Option<String>) {
        let ttrpc = format!("TTRPC_ADDRESS={containerd_address}.ttrpc");
        let mut all = vec![ttrpc.as_str()];
        all.extend_from_slice(env);
        run_start(sandbox, containerd_address, &all, namespace, id)
    }

    /// Runs [`start_command`] in a bundle directory of its own, removed afterwards; returns what
    /// it printed and, on success, the address.
    fn run_start(
        sandbox: &Sandbox,
        containerd_address: &str,
        env: &[&str],
        namespace: &str,
        id: &str,
    ) -> (Run, Option<String>) {
        // Hostile names may be long or contain '/': the directory is named by a counter instead.
        let bundle = sandbox.root.join("bundles").join(super::unique_id("start"));
        let _ = std::fs::create_dir_all(&bundle);
        let mut command = start_command(sandbox, &bundle, containerd_address, env, namespace, id);
        let run = Run::from_output(command.output().expect("nsenter runs"));
        let _ = std::fs::remove_dir_all(&bundle);
        let address = (run.code == 0).then(|| parse_start_output(&run.stdout));
        (run, address)
    }

    /// containerd's `PATH`, as test-containerd.service has it (`PATH=…`): if a `start` is the
    /// one that launches the daemon, the daemon inherits it (and finds runc and criu by it).
    pub fn containerd_path(sandbox: &Sandbox) -> String {
        format!(
            "PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            sandbox.root.join("bin").display()
        )
    }

    /// Our shim's `start`, as containerd runs it in `bundle` for task `id` of `namespace` and the
    /// containerd at `containerd_address`, with `env` (`NAME=value`) added to its environment.
    pub fn start_command(
        sandbox: &Sandbox,
        bundle: &std::path::Path,
        containerd_address: &str,
        env: &[&str],
        namespace: &str,
        id: &str,
    ) -> std::process::Command {
        let mut args = vec!["env"];
        args.extend_from_slice(env);
        args.extend([
            sandbox.shim.as_str(),
            "-namespace",
            namespace,
            "-id",
            id,
            "-address",
            containerd_address,
            "-publish-binary",
            &sandbox.containerd,
            "start",
        ]);
        sandbox.command_in(bundle, &args)
    }

    /// The containerd address the direct tests give our `start`: containerd's own, unless
    /// `SHIM_TEST_DAEMON_ADDRESS` names another. `start` then launches a daemon of its own for that
    /// address (from `SHIM_TEST_SHIM`), so a shim built from a branch can be driven through the
    /// task API beside the one containerd uses; stop it with `systemctl stop` afterwards.
    pub fn daemon_address() -> String {
        std::env::var("SHIM_TEST_DAEMON_ADDRESS").unwrap_or_else(|_| "/run/containerd/containerd.sock".to_string())
    }

    /// The address in `start`'s output: bare (containerd 1.x) or in version-3 JSON (2.x).
    pub fn parse_start_output(stdout: &str) -> String {
        match serde_json::from_str::<serde_json::Value>(stdout) {
            Ok(json) => {
                assert_eq!(json["version"], 3, "{stdout}");
                assert_eq!(json["protocol"], "ttrpc", "{stdout}");
                json["address"].as_str().expect("address").to_string()
            }
            Err(_) => stdout.trim().to_string(),
        }
    }

    /// A task client for `namespace`, connected through the sandbox's root.
    pub async fn client(sandbox: &Sandbox, namespace: &str) -> TaskClient {
        let (run, address) = start_shim(sandbox, namespace, "probe");
        connect(sandbox, address.unwrap_or_else(|| panic!("start failed: {run:?}"))).await
    }

    /// [`client`] for the daemon of the containerd at `containerd_address`, launched (when it
    /// does not run yet) by a `start` with `env` (`NAME=value`) added to its environment.
    pub async fn client_for(sandbox: &Sandbox, containerd_address: &str, env: &[&str], namespace: &str) -> TaskClient {
        let (run, address) = start_shim_at(sandbox, containerd_address, env, namespace, "probe");
        connect(sandbox, address.unwrap_or_else(|| panic!("start failed: {run:?}"))).await
    }

    async fn connect(sandbox: &Sandbox, address: String) -> TaskClient {
        let socket = address.strip_prefix("unix://").expect("unix address");
        let through_root = sandbox.host_path(socket);
        let client = ttrpc::asynchronous::Client::connect(&format!("unix://{}", through_root.display()))
            .await
            .expect("connect to the daemon");
        TaskClient::new(client)
    }

    /// A call context with a deadline.
    pub fn context() -> ttrpc::context::Context {
        ttrpc::context::with_duration(super::scaled(Duration::from_secs(60)))
    }

    /// A fresh bundle directory (visible in the sandbox) with `config` as config.json, if given.
    pub fn bundle_with(sandbox: &Sandbox, name: &str, config: Option<&str>) -> PathBuf {
        let bundle = sandbox.root.join("bundles").join(name);
        let _ = std::fs::remove_dir_all(&bundle);
        std::fs::create_dir_all(&bundle).expect("create bundle");
        if let Some(config) = config {
            std::fs::write(bundle.join("config.json"), config).expect("write config.json");
        }
        bundle
    }

    /// A runnable bundle: `runc spec` adjusted to run `args` on the extracted busybox rootfs.
    pub fn runnable_bundle(sandbox: &Sandbox, name: &str, args: &[&str]) -> PathBuf {
        let bundle = bundle_with(sandbox, name, None);
        let bundle_text = bundle.to_str().expect("utf-8");
        sandbox.run(&["runc", "spec", "--bundle", bundle_text]).success("runc spec");
        edit_spec(&bundle, |spec| {
            spec["process"]["terminal"] = false.into();
            spec["process"]["args"] = args.iter().map(|arg| serde_json::Value::from(*arg)).collect();
            spec["root"]["path"] = sandbox.root.join("busybox-rootfs").to_str().expect("utf-8").into();
        });
        bundle
    }

    /// Rewrites `bundle`'s config.json as `edit` changes it.
    pub fn edit_spec(bundle: &std::path::Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = bundle.join("config.json");
        let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("spec")).expect("json");
        edit(&mut spec);
        std::fs::write(&path, serde_json::to_vec(&spec).expect("json")).expect("write spec");
    }
}

/// `ctr events`, running in the background, collecting what containerd publishes.
pub struct EventWatcher {
    child: Child,
    lines: std::sync::Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl EventWatcher {
    /// Subscribes, and returns once the subscription provably receives events (a marker
    /// container created and removed in `namespace` shows up).
    pub fn start(sandbox: &Sandbox, namespace: &str) -> EventWatcher {
        use std::io::BufRead;
        sandbox.ensure_image(namespace);
        // Its own process group: nsenter forks to enter the pid namespace, so killing nsenter
        // alone would leave `ctr events` holding our pipe open.
        use std::os::unix::process::CommandExt;
        let mut child = sandbox
            .command_unbounded(&[&sandbox.ctr, "-n", namespace, "events"])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ctr events runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line);
            }
        });
        let watcher = EventWatcher { child, lines, reader: Some(reader) };
        let marker = unique_id("events-marker");
        let subscribed = wait_until(Duration::from_secs(30), || {
            sandbox.ctr(namespace, &["container", "create", IMAGE, &marker]);
            sandbox.ctr(namespace, &["container", "rm", &marker]);
            watcher.lines().iter().any(|line| line.contains(&marker))
        });
        assert!(subscribed, "ctr events never saw the marker container");
        watcher
    }

    /// Everything seen so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The `/tasks/…` topics seen for container `id`, in order.
    pub fn task_topics(&self, id: &str) -> Vec<String> {
        let needle = format!("\"container_id\":\"{id}\"");
        self.lines()
            .iter()
            .filter(|line| line.contains(&needle))
            .filter_map(|line| line.split_whitespace().find(|word| word.starts_with("/tasks/")).map(str::to_string))
            .collect()
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// One-line task API calls by task id, for the direct tests.
pub mod calls {
    use containerd_shim_protos::api::{
        CreateTaskRequest, DeleteRequest, DeleteResponse, ExecProcessRequest, KillRequest, StartRequest, StartResponse,
        StateRequest, StateResponse, WaitRequest, WaitResponse,
    };
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
    use containerd_shim_protos::shim_async::TaskClient;

    use super::direct::context;

    /// A `Create` of task `id` from `bundle`, with nothing else set.
    pub fn create_request(id: &str, bundle: &std::path::Path) -> CreateTaskRequest {
        CreateTaskRequest { id: id.into(), bundle: bundle.display().to_string(), ..Default::default() }
    }

    /// `Start` of task `id`.
    pub async fn start(client: &TaskClient, id: &str) -> ttrpc::Result<StartResponse> {
        client.start(context(), &StartRequest { id: id.into(), ..Default::default() }).await
    }

    /// `State` of task `id`.
    pub async fn state(client: &TaskClient, id: &str) -> ttrpc::Result<StateResponse> {
        client.state(context(), &StateRequest { id: id.into(), ..Default::default() }).await
    }

    /// `Kill` of task `id` with `signal`.
    pub async fn kill(client: &TaskClient, id: &str, signal: u32) -> ttrpc::Result<Empty> {
        client.kill(context(), &KillRequest { id: id.into(), signal, ..Default::default() }).await
    }

    /// `Wait` for task `id`.
    pub async fn wait(client: &TaskClient, id: &str) -> ttrpc::Result<WaitResponse> {
        client.wait(context(), &WaitRequest { id: id.into(), ..Default::default() }).await
    }

    /// `Delete` of task `id`.
    pub async fn delete(client: &TaskClient, id: &str) -> ttrpc::Result<DeleteResponse> {
        client.delete(context(), &DeleteRequest { id: id.into(), ..Default::default() }).await
    }

    /// An `Exec` request for process `exec_id` of task `id`, running `process` (an OCI process,
    /// as JSON, e.g. from [`crate::grpc::spec::process`]) with no stdio.
    pub fn exec_request(id: &str, exec_id: &str, process: &serde_json::Value) -> ExecProcessRequest {
        ExecProcessRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            spec: Some(Any {
                type_url: crate::grpc::spec::PROCESS_TYPE_URL.into(),
                value: serde_json::to_vec(process).expect("a JSON value serializes"),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    /// Whether the daemon still answers on `client`: a `State` of an unknown task is NOT_FOUND.
    pub async fn still_serving(client: &TaskClient) -> Result<(), String> {
        match state(client, "no-such-task").await {
            Err(ttrpc::Error::RpcStatus(status)) if status.code() == ttrpc::Code::NOT_FOUND => Ok(()),
            other => Err(format!("the daemon no longer answers: {other:?}")),
        }
    }

    /// The ttrpc status code of a failed call (panics on success or a transport error).
    pub fn code_of<T: std::fmt::Debug>(result: ttrpc::Result<T>) -> ttrpc::Code {
        match result {
            Err(ttrpc::Error::RpcStatus(status)) => status.code(),
            other => panic!("expected an error status, got {other:?}"),
        }
    }
}
