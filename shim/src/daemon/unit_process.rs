//! A process the daemon recorded earlier (a container's init, a terminal's copier), trusted only
//! while it is provably the one recorded: a pidfd pins whatever process has the pid now, and its
//! cgroups must lie in the unit it was recorded for. A pid that outlived its process and was
//! reused names a process elsewhere, which the daemon must not signal or take fds from; what is
//! done next goes through the pidfd, so it reaches the process that was checked or none.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::cgroup::in_unit;

/// What a recorded pid names now.
#[derive(Debug)]
pub enum UnitProcess {
    /// A process in the unit, pinned by this pidfd.
    InUnit(OwnedFd),
    /// No process.
    Gone,
    /// A process that cannot be shown to live in the unit (its cgroups are elsewhere, or were
    /// unreadable).
    Elsewhere,
}

/// Pins process `pid` and says whether it lives in unit `unit` (or below it), reading its
/// cgroups from procfs at `proc`. Fails only when the pidfd cannot be opened for another reason
/// than the process being gone. Blocking (reads procfs).
pub fn pin_unit_process(proc: &Path, pid: u32, unit: &str) -> Result<UnitProcess, pty::Error> {
    let pidfd = match pty::pidfd_open(pid) {
        Ok(pidfd) => pidfd,
        Err(pty::Error::NoSuchProcess { .. }) => return Ok(UnitProcess::Gone),
        Err(error) => return Err(error),
    };
    let cgroup_file = proc.join(pid.to_string()).join("cgroup");
    let lives_in_unit = std::fs::read_to_string(&cgroup_file)
        .ok()
        .is_some_and(|membership| matches!(in_unit(&cgroup_file, &membership, unit), Ok(true)));
    Ok(if lives_in_unit { UnitProcess::InUnit(pidfd) } else { UnitProcess::Elsewhere })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_outside_the_unit_is_elsewhere_and_a_reaped_one_is_gone() {
        let unit = "containerd-default-t1.service";
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let pinned = pin_unit_process(Path::new("/proc"), child.id(), unit).expect("pidfd");
        assert!(matches!(pinned, UnitProcess::Elsewhere), "{pinned:?}");
        child.kill().expect("kill");
        child.wait().expect("reap");
        // The pid may be reused by now, by a process in no container unit: never InUnit.
        let pinned = pin_unit_process(Path::new("/proc"), child.id(), unit).expect("pidfd");
        assert!(!matches!(pinned, UnitProcess::InUnit(_)), "{pinned:?}");
    }
}
