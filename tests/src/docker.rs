//! Docker (moby) for the integration tests (`tests/tests/docker.rs`): the two dockerds that
//! `tests/dockerd-in-sandbox` starts in the sandbox on the test containerd, a `docker` client for
//! each, and the containers they run, with the checks the tests share: that a container runs as
//! our unit, and that nothing of it is left afterwards.
//!
//! dockerd talks to containerd in a namespace of its own (`moby` by default) and names each
//! containerd container and task after the Docker container's full id, so a container of ours is
//! the unit `containerd-<namespace>-<full id>.service`, and an exec the unit of its Docker exec id.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{exec_unit_of, unit_of, wait_until, Run, Sandbox};

/// The image `tests/dockerd-in-sandbox` gives each daemon: `docker import` of the busybox rootfs.
pub const IMAGE: &str = "busybox:latest";
/// The name `deploy/docker-daemon.json` registers our runtime under, by `runtimeType`.
pub const RUNTIME_NAME: &str = "systemd";
/// How long a container may take to reach a state the test waits for.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A dockerd in the sandbox and the client that talks to it.
#[derive(Debug)]
pub struct Docker {
    /// The `docker` client binary (visible inside and outside the sandbox).
    pub cli: String,
    /// The daemon's API address, `unix://…` as the sandbox sees it.
    pub host: String,
    /// The containerd namespace the daemon keeps its containers in.
    pub namespace: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the Docker tests need the dockerds that `tests/dockerd-in-sandbox` starts; run `tests/run`")
    })
}

impl Docker {
    /// The dockerd with our runtime registered by `runtimeType` (`deploy/docker-daemon.json`):
    /// containers run on it with `--runtime`.
    pub fn get() -> &'static Docker {
        static DOCKER: OnceLock<Docker> = OnceLock::new();
        DOCKER.get_or_init(|| Docker {
            cli: env("SHIM_TEST_DOCKER"),
            host: env("SHIM_TEST_DOCKER_HOST"),
            namespace: env("SHIM_TEST_DOCKER_NAMESPACE"),
        })
    }

    /// The dockerd with our runtime as its `default-runtime` (`deploy/docker-daemon-default.json`).
    pub fn with_default_runtime() -> &'static Docker {
        static DOCKER: OnceLock<Docker> = OnceLock::new();
        DOCKER.get_or_init(|| Docker {
            cli: env("SHIM_TEST_DOCKER"),
            host: env("SHIM_TEST_DOCKER_DEFAULT_HOST"),
            namespace: env("SHIM_TEST_DOCKER_DEFAULT_NAMESPACE"),
        })
    }

    /// `docker -H HOST`, as words for a shell command line inside the sandbox (e.g. under
    /// `script -qec`, which gives it a terminal).
    pub fn shell_prefix(&self) -> String {
        format!("{} -H {}", self.cli, self.host)
    }

    /// A command that runs `docker -H HOST args…` inside the sandbox.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut all = vec![self.cli.as_str(), "-H", self.host.as_str()];
        all.extend_from_slice(args);
        Sandbox::get().command(&all)
    }

    /// Runs `docker -H HOST args…` inside the sandbox.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec![self.cli.as_str(), "-H", self.host.as_str()];
        all.extend_from_slice(args);
        Sandbox::get().run(&all)
    }

    /// `docker run -d --network none OPTIONS… IMAGE COMMAND…`: a container left running (or
    /// exiting on its own) for the test to drive. OPTIONS choose the runtime, if any.
    pub fn run_detached(&self, options: &[&str], command: &[&str]) -> Container<'_> {
        let mut args = vec!["run", "-d", "--network", "none"];
        args.extend_from_slice(options);
        args.push(IMAGE);
        args.extend_from_slice(command);
        let run = self.run(&args).success("docker run -d");
        let id = run.stdout.trim().to_string();
        assert_eq!(id.len(), 64, "docker run -d prints the full container id: {run:?}");
        Container { docker: self, id, removed: false }
    }

    /// The container `name_or_id` names, by its full id.
    pub fn container(&self, name_or_id: &str) -> Option<Container<'_>> {
        let run = self.run(&["inspect", "-f", "{{.Id}}", name_or_id]);
        (run.code == 0).then(|| Container { docker: self, id: run.stdout.trim().to_string(), removed: false })
    }

    /// Whether `docker ps -a` still lists container `id`.
    pub fn lists(&self, id: &str) -> bool {
        let run = self.run(&["ps", "-a", "-q", "--no-trunc"]).success("docker ps -a");
        run.stdout.lines().any(|line| line.trim() == id)
    }
}

/// What `docker inspect` says of a container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `created`, `running`, `paused`, `restarting`, `exited`, …
    pub status: String,
    /// The container's init process (0 when it does not run).
    pub pid: u32,
    /// Its exit code (Docker gives 128 + signal for a signal death).
    pub exit_code: i32,
    /// When it last started (RFC 3339, as Docker prints it).
    pub started_at: String,
}

/// A Docker container of a test. Dropping it removes it (`docker rm -f`) unless the test already
/// did, so a failing test leaves nothing running behind.
#[derive(Debug)]
pub struct Container<'a> {
    docker: &'a Docker,
    /// Its full id: containerd's container and task id, and so part of its unit's name.
    pub id: String,
    removed: bool,
}

impl Container<'_> {
    /// The unit our runtime runs its init process as.
    pub fn unit(&self) -> String {
        unit_of(&self.docker.namespace, &self.id)
    }

    /// The unit our runtime runs its exec `exec_id` (Docker's exec id) as.
    pub fn exec_unit(&self, exec_id: &str) -> String {
        exec_unit_of(&self.docker.namespace, &self.id, exec_id)
    }

    /// `docker inspect -f FORMAT`, trimmed.
    pub fn inspect(&self, format: &str) -> String {
        self.docker.run(&["inspect", "-f", format, &self.id]).success("docker inspect").stdout.trim().to_string()
    }

    /// Its state, as `docker inspect` reports it.
    pub fn state(&self) -> State {
        let json = self.inspect("{{json .State}}");
        let state: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}: {json}"));
        State {
            status: state["Status"].as_str().unwrap_or_default().to_string(),
            pid: state["Pid"].as_u64().and_then(|pid| u32::try_from(pid).ok()).unwrap_or(0),
            exit_code: state["ExitCode"].as_i64().and_then(|code| i32::try_from(code).ok()).unwrap_or(-1),
            started_at: state["StartedAt"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Waits until Docker reports `status`; returns the state it reported.
    pub fn wait_for_status(&self, status: &str) -> State {
        let mut last = None;
        let reached = wait_until(STATE_TIMEOUT, || {
            let state = self.state();
            let done = state.status == status;
            last = Some(state);
            done
        });
        assert!(reached, "container {} never became {status}; last seen {last:?}", self.id);
        last.expect("state read at least once")
    }

    /// `docker exec OPTIONS… ID COMMAND…`.
    pub fn exec(&self, options: &[&str], command: &[&str]) -> Run {
        let mut args = vec!["exec"];
        args.extend_from_slice(options);
        args.push(&self.id);
        args.extend_from_slice(command);
        self.docker.run(&args)
    }

    /// Asserts that it runs as our unit: the unit is active and its main process is the
    /// container's init process as Docker reports it. Returns that pid.
    pub fn assert_runs_as_our_unit(&self) -> u32 {
        let sandbox = Sandbox::get();
        let state = self.wait_for_status("running");
        let unit = self.unit();
        // Docker reports the start once containerd's Start returned; the unit is active by then.
        assert!(sandbox.unit_loaded(&unit), "container {} runs, but not as unit {unit}", self.id);
        assert_eq!(sandbox.unit_property(&unit, "ActiveState"), "active", "unit {unit}");
        assert_eq!(
            sandbox.unit_property(&unit, "MainPID"),
            state.pid.to_string(),
            "unit {unit}'s main process is the container's init"
        );
        state.pid
    }

    /// Asserts that its task left nothing: no unit, mounts, runc state or bundle of ours (after
    /// it exited or was removed; Docker deletes the containerd task and container on exit).
    pub fn assert_task_left_nothing(&self) {
        crate::assert_nothing_left(Sandbox::get(), &self.docker.namespace, &self.id);
    }

    /// `docker rm -f`, then asserts that nothing is left of it: not in `docker ps -a`, its root
    /// filesystem unmounted, and nothing of our runtime's (see
    /// [`Container::assert_task_left_nothing`]).
    pub fn remove(mut self) {
        let merged = self.inspect("{{.GraphDriver.Data.MergedDir}}");
        self.docker.run(&["rm", "-f", &self.id]).success("docker rm -f");
        self.removed = true;
        assert!(!self.docker.lists(&self.id), "docker ps -a still lists {}", self.id);
        if !merged.is_empty() && merged != "<no value>" {
            assert_eq!(
                Sandbox::get().mounts_containing(&merged),
                Vec::<String>::new(),
                "root filesystem still mounted"
            );
        }
        self.assert_task_left_nothing();
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.docker.run(&["rm", "-f", &self.id]);
        }
    }
}
