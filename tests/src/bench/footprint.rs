//! What a runtime costs the machine while its tasks run: which processes are its shims, their
//! memory, the growth of the sandbox's systemd, and the CPU time of the processes a task start
//! goes through.
//!
//! Shims are found by what they are, never killed. Other containerds (with their own shims and
//! daemon) may run in the sandbox, so only those given the benchmark containerd's `-address`
//! count: for runc-v2 every `containerd-shim-runc-v2` whose `-namespace` is the benchmark's; for
//! ours the daemon and every process in its unit (`containerd-shim-systemd-v1-<hash>.service`,
//! with any children it has), plus any process of the sandbox's own pid namespace in a task's
//! unit (helpers such as a terminal copier; the container's processes live in a pid namespace
//! of their own and are not counted).

use std::collections::HashMap;
use std::path::PathBuf;

use super::procfs::{listener_of, CpuTime, Memory, Process};
use super::Error;

/// Prefix of our daemon's unit name (unit-gen's `daemon_unit`).
const DAEMON_UNIT_PREFIX: &str = "containerd-shim-systemd-v1-";

/// Which kind of shim a runtime name stands for, so its processes can be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShimKind {
    /// Ours: one daemon for all tasks, each task a systemd unit.
    SystemdDaemon,
    /// containerd's runc shim: one process per task.
    RuncV2,
}

/// The sandbox's systemd as the host sees it.
#[derive(Debug, Clone, Copy)]
pub struct SandboxInit {
    /// Its host pid.
    pub pid: u32,
    /// Its pid namespace: the one containerd, the shims and systemd's services run in.
    pub pid_namespace: u64,
    /// The depth of that namespace (0 is the host's): where a pid containerd reports stands in
    /// a process's `NSpid`.
    pub pid_level: usize,
}

impl SandboxInit {
    /// Reads the sandbox systemd `pid`.
    pub fn read(pid: u32) -> Result<SandboxInit, Error> {
        let process = Process::read(pid).ok_or(Error::SandboxGone { pid })?;
        let pid_level = process.nspid.len().saturating_sub(1);
        Ok(SandboxInit { pid, pid_namespace: process.pid_namespace, pid_level })
    }
}

/// What the census looks for.
#[derive(Debug, Clone)]
pub struct Census {
    /// The sandbox.
    pub sandbox: SandboxInit,
    /// The shim kind measured.
    pub kind: ShimKind,
    /// The benchmark's containerd namespace.
    pub namespace: String,
    /// Our task units (empty for runc-v2).
    pub task_units: Vec<String>,
    /// containerd's address, as it tells its shims (`-address`): other containerds may run in
    /// the sandbox, with shims and a daemon of their own.
    pub address: String,
    /// The host pid of the containerd listening there.
    pub containerd: Option<u32>,
}

/// The parts of the stack a task start goes through, for CPU accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// containerd itself (with the `shim start`/`delete` commands it waits for).
    Containerd,
    /// The sandbox's systemd (with what it waits for: our units' `ExecStart` helpers and runc).
    Systemd,
    /// systemd-journald, which records every unit start.
    Journald,
    /// The system bus.
    DbusDaemon,
    /// The runtime's shims (with the runc commands they wait for).
    Shims,
}

impl Component {
    /// Every component, in report order.
    pub const ALL: [Component; 5] =
        [Component::Containerd, Component::Systemd, Component::Journald, Component::DbusDaemon, Component::Shims];

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Component::Containerd => "containerd",
            Component::Systemd => "systemd (PID 1)",
            Component::Journald => "systemd-journald",
            Component::DbusDaemon => "dbus-daemon",
            Component::Shims => "shims",
        }
    }
}

impl SandboxInit {
    /// The host pid of the process containerd knows as `pid` (a pid in the sandbox), if it runs.
    /// A pid alone could be in another namespace of the same depth, so the process must also
    /// descend from the sandbox's systemd.
    pub fn host_pid_of(&self, pid: u32) -> Result<Option<u32>, Error> {
        let processes = Process::all()?;
        let parents: HashMap<u32, u32> = processes.iter().map(|process| (process.pid, process.ppid)).collect();
        let descends_from_sandbox = |mut pid: u32| {
            while let Some(&parent) = parents.get(&pid) {
                if parent == self.pid {
                    return true;
                }
                if parent == 0 || parent == pid {
                    return false;
                }
                pid = parent;
            }
            false
        };
        Ok(processes
            .iter()
            .find(|process| process.nspid.get(self.pid_level) == Some(&pid) && descends_from_sandbox(process.pid))
            .map(|process| process.pid))
    }
}

impl Census {
    /// A census of `kind` shims for the tasks of `namespace` (with `task_units`, ours only) of
    /// the containerd at `address` in the sandbox whose systemd is `sandbox_pid`.
    pub fn new(
        sandbox_pid: u32,
        kind: ShimKind,
        namespace: &str,
        task_units: Vec<String>,
        address: &str,
    ) -> Result<Census, Error> {
        let sandbox = SandboxInit::read(sandbox_pid)?;
        let containerd = listener_of(address, sandbox.pid_namespace)?;
        Ok(Census { sandbox, kind, namespace: namespace.into(), task_units, address: address.into(), containerd })
    }

    fn in_sandbox(&self, process: &Process) -> bool {
        process.pid_namespace == self.sandbox.pid_namespace
    }

    /// Our daemon serving this containerd, among `processes`.
    pub fn daemon<'p>(&self, processes: &'p [Process]) -> Option<&'p Process> {
        processes.iter().find(|process| {
            self.in_sandbox(process)
                && process.program() == "containerd-shim-systemd-v1"
                && process.cmdline.last().is_some_and(|arg| arg == "daemon")
                && process.flag("-address") == Some(&self.address)
        })
    }

    /// The measured runtime's shims among `processes`.
    pub fn shims<'p>(&self, processes: &'p [Process]) -> Vec<&'p Process> {
        let daemon = match self.kind {
            ShimKind::SystemdDaemon => self.daemon(processes),
            ShimKind::RuncV2 => None,
        };
        // The daemon's unit, if it runs in one (it does unless started by hand).
        let daemon_unit = daemon
            .map(|daemon| daemon.cgroup.as_str())
            .filter(|cgroup| cgroup.rsplit('/').next().is_some_and(|unit| unit.starts_with(DAEMON_UNIT_PREFIX)));
        processes
            .iter()
            .filter(|process| self.in_sandbox(process))
            .filter(|process| match self.kind {
                ShimKind::RuncV2 => {
                    process.program() == "containerd-shim-runc-v2"
                        && process.flag("-namespace") == Some(&self.namespace)
                        && process.flag("-address") == Some(&self.address)
                }
                ShimKind::SystemdDaemon => {
                    let in_daemon_unit = daemon_unit.is_some_and(|unit| {
                        process.cgroup == unit
                            || process.cgroup.strip_prefix(unit).is_some_and(|rest| rest.starts_with('/'))
                    });
                    let in_task_unit =
                        process.cgroup.split('/').any(|part| self.task_units.iter().any(|unit| unit == part));
                    daemon.is_some_and(|daemon| daemon.pid == process.pid) || in_daemon_unit || in_task_unit
                }
            })
            .collect()
    }

    /// The shims and the sandbox systemd's memory now.
    pub fn memory(&self) -> Result<Footprint, Error> {
        let processes = Process::all()?;
        let shims = self.shims(&processes);
        let shim_memory = shims.iter().filter_map(|process| Memory::of(process.pid)).sum();
        let exe = shims.first().and_then(|shim| std::fs::read_link(format!("/proc/{}/exe", shim.pid)).ok());
        let systemd = Memory::of(self.sandbox.pid).ok_or(Error::SandboxGone { pid: self.sandbox.pid })?;
        Ok(Footprint { shims: shims.len(), exe, shim_memory, systemd })
    }

    /// CPU time of every component's processes now.
    pub fn cpu(&self) -> Result<CpuSnapshot, Error> {
        let processes = Process::all()?;
        let shims: Vec<u32> = self.shims(&processes).iter().map(|process| process.pid).collect();
        let mut times = HashMap::new();
        for process in &processes {
            let component = if process.pid == self.sandbox.pid {
                Component::Systemd
            } else if Some(process.pid) == self.containerd {
                Component::Containerd
            } else if shims.contains(&process.pid) {
                Component::Shims
            } else if self.in_sandbox(process) && process.program() == "systemd-journald" {
                Component::Journald
            } else if self.in_sandbox(process) && process.program() == "dbus-daemon" {
                Component::DbusDaemon
            } else {
                continue;
            };
            if let Some(cpu) = CpuTime::of(process.pid) {
                times.insert(process.pid, (component, cpu));
            }
        }
        Ok(CpuSnapshot { times })
    }
}

/// Memory of a runtime's shims and of systemd at one moment.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// How many shim processes there were.
    pub shims: usize,
    /// The executable of the first of them.
    pub exe: Option<PathBuf>,
    /// Their memory, summed.
    pub shim_memory: Memory,
    /// The sandbox systemd's memory.
    pub systemd: Memory,
}

/// CPU time per process at one moment.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    times: HashMap<u32, (Component, CpuTime)>,
}

impl CpuSnapshot {
    /// CPU time each component used between `earlier` and `self`. A process that is new since
    /// then counts in full; one that exited in between counts only through its parent's
    /// children time, if the parent is a component that waited for it.
    pub fn since(&self, earlier: &CpuSnapshot) -> HashMap<Component, CpuTime> {
        let mut used: HashMap<Component, CpuTime> = Component::ALL.iter().map(|&c| (c, CpuTime::default())).collect();
        for (pid, (component, now)) in &self.times {
            let before = earlier.times.get(pid).map(|(_, cpu)| *cpu).unwrap_or_default();
            let sum = used.entry(*component).or_default();
            sum.own += now.own.saturating_sub(before.own);
            sum.children += now.children.saturating_sub(before.children);
        }
        used
    }
}
