//! What is left of a container once its init has exited.
//!
//! A container with a PID namespace of its own cannot outlive its init: the kernel kills every
//! process in the namespace and waits until each is reaped before the init's own exit completes
//! (`zap_pid_namespace`). A container in the host's PID namespace, or one that joined another
//! container's (a pod's `shareProcessNamespace`), has no such guarantee: its other processes
//! live on, holding its stdio open. runc-v2 kills them before it reports the init's exit, and
//! clients rely on it (containerd's CRI waits for the container's output to close before it
//! calls a container stopped). [`kill_every_process`] is one round of that for the container's
//! cgroup, which holds exactly the container's processes and its exec processes.

use std::io::Write;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::files::read_optional;
use super::{CgroupError, ContainerCgroups};

/// The v1 hierarchies whose container cgroup lists the container's processes, best first: the
/// ones runc always joins.
const V1_PROCESS_HIERARCHIES: [&str; 4] = ["pids", "freezer", "memory", "name=systemd"];

/// What a round of [`kill_every_process`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// No process is left in the cgroup (or the cgroup is gone).
    None,
    /// Processes were there and have been sent SIGKILL; look again.
    Signalled,
}

/// Sends SIGKILL to every process in the container's cgroup (and, on v2, below it): through
/// `cgroup.kill` where the kernel has it (5.14 and later; it also catches processes forked
/// meanwhile), else to each pid `cgroup.procs` lists. Says whether anything was left.
/// Blocking (cgroupfs I/O).
pub fn kill_every_process(cgroups: &ContainerCgroups) -> Result<Leftovers, CgroupError> {
    if let Some(dir) = cgroups.v2_dir() {
        if !is_populated(dir)? {
            return Ok(Leftovers::None);
        }
        let kill_file = dir.join("cgroup.kill");
        // Never created: a kernel without `cgroup.kill` has no such file.
        let written =
            std::fs::OpenOptions::new().write(true).open(&kill_file).and_then(|mut file| file.write_all(b"1"));
        match written {
            Ok(()) => return Ok(Leftovers::Signalled),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(CgroupError::Read { path: kill_file, source }),
        }
        return signal_listed(dir);
    }
    let dir = V1_PROCESS_HIERARCHIES.iter().find_map(|controller| cgroups.v1_dir(controller)).or(cgroups.any_dir());
    match dir {
        Some(dir) => signal_listed(dir),
        None => Ok(Leftovers::None),
    }
}

/// Whether the v2 cgroup at `dir` or any below it holds a process (`cgroup.events`' `populated`);
/// a removed cgroup holds none.
fn is_populated(dir: &Path) -> Result<bool, CgroupError> {
    let events_file = dir.join("cgroup.events");
    let Some(events) = read_optional(&events_file)? else {
        return Ok(false);
    };
    parse_populated(&events_file, &events)
}

/// The `populated` key of a `cgroup.events` file's text.
fn parse_populated(file: &Path, text: &str) -> Result<bool, CgroupError> {
    let value = text.lines().find_map(|line| line.strip_prefix("populated ")).ok_or_else(|| CgroupError::Parse {
        path: file.to_path_buf(),
        reason: format!("no `populated` in {text:?}"),
    })?;
    match value.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(CgroupError::Parse { path: file.to_path_buf(), reason: format!("populated is {other:?}") }),
    }
}

/// SIGKILLs each process `<dir>/cgroup.procs` lists.
fn signal_listed(dir: &Path) -> Result<Leftovers, CgroupError> {
    let procs_file = dir.join("cgroup.procs");
    let Some(text) = read_optional(&procs_file)? else {
        return Ok(Leftovers::None);
    };
    let pids = parse_pids(&procs_file, &text)?;
    if pids.is_empty() {
        return Ok(Leftovers::None);
    }
    for pid in pids {
        // A pid from the list is a process of the cgroup until it has been reaped, and what the
        // cgroup holds is the container's: whatever exited meanwhile is simply not found.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Ok(Leftovers::Signalled)
}

/// The pids of a `cgroup.procs` file's text, one per line.
fn parse_pids(file: &Path, text: &str) -> Result<Vec<i32>, CgroupError> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.trim()
                .parse::<i32>()
                .ok()
                .filter(|pid| *pid > 0)
                .ok_or_else(|| CgroupError::Parse { path: file.to_path_buf(), reason: format!("not a pid: {line:?}") })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::cgroup::test_support::ScratchDir;

    #[test]
    fn populated_is_read_from_cgroup_events() {
        let file = Path::new("/sys/fs/cgroup/x/cgroup.events");
        assert!(parse_populated(file, "populated 1\nfrozen 0\n").unwrap());
        assert!(!parse_populated(file, "populated 0\nfrozen 0\n").unwrap());
        assert!(matches!(parse_populated(file, "frozen 0\n"), Err(CgroupError::Parse { .. })));
        assert!(matches!(parse_populated(file, "populated yes\n"), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn pids_are_read_one_per_line_and_nothing_else_passes() {
        let file = Path::new("/sys/fs/cgroup/pids/x/cgroup.procs");
        assert_eq!(parse_pids(file, "12\n345\n").unwrap(), [12, 345]);
        assert_eq!(parse_pids(file, "").unwrap(), Vec::<i32>::new());
        assert!(matches!(parse_pids(file, "12\nabc\n"), Err(CgroupError::Parse { .. })));
        assert!(matches!(parse_pids(file, "0\n"), Err(CgroupError::Parse { .. })), "never kill(0), the caller's group");
        assert!(matches!(parse_pids(file, "-1\n"), Err(CgroupError::Parse { .. })), "never kill(-1), everyone");
    }

    #[test]
    fn an_empty_or_removed_cgroup_has_no_leftovers() {
        let scratch = ScratchDir::new("leftovers-empty");
        scratch.write("cgroup.events", "populated 0\nfrozen 0\n");
        let v2 = ContainerCgroups::v2("/x", scratch.path().to_path_buf());
        assert_eq!(kill_every_process(&v2).unwrap(), Leftovers::None);

        scratch.write("cgroup.procs", "");
        let v1 = ContainerCgroups::v1("/x", [("pids".to_string(), scratch.path().to_path_buf())]);
        assert_eq!(kill_every_process(&v1).unwrap(), Leftovers::None);

        let gone = ContainerCgroups::v2("/x", PathBuf::from("/nonexistent/cgroup"));
        assert_eq!(kill_every_process(&gone).unwrap(), Leftovers::None);
    }

    #[test]
    fn every_listed_process_is_killed() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let scratch = ScratchDir::new("leftovers-v1");
        scratch.write("cgroup.procs", &format!("{}\n", child.id()));
        let v1 = ContainerCgroups::v1("/x", [("pids".to_string(), scratch.path().to_path_buf())]);
        assert_eq!(kill_every_process(&v1).unwrap(), Leftovers::Signalled);
        let status = child.wait().expect("reap sleep");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    }

    #[test]
    fn a_populated_v2_cgroup_without_cgroup_kill_has_its_listed_processes_killed() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let scratch = ScratchDir::new("leftovers-v2");
        scratch.write("cgroup.events", "populated 1\nfrozen 0\n");
        scratch.write("cgroup.procs", &format!("{}\n", child.id()));
        let v2 = ContainerCgroups::v2("/x", scratch.path().to_path_buf());
        assert_eq!(kill_every_process(&v2).unwrap(), Leftovers::Signalled);
        let status = child.wait().expect("reap sleep");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    }
}
