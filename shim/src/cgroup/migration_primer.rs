//! Starting the kernel's grace period for a cgroup move before systemd needs it.
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`) takes the kernel's
//! `cgroup_threadgroup_rwsem` for writing. Unless the hierarchy is mounted with `favordynmods`,
//! the first such move after a quiet spell first waits for an RCU grace period, holding the
//! global `cgroup_mutex` meanwhile; moves that follow within a grace period do not wait. On
//! our 2-vCPU test VMs that wait is 5 to 30 ms, and every Create pays it: systemd moves the
//! unit's first process into the unit's cgroup (its main loop blocked in the write), and runc
//! moves the container's init right after.
//!
//! A [`MigrationPrimer`] writes this daemon's own pid into the cgroup the daemon is already in,
//! which moves nothing but starts that wait on a blocking thread as soon as a new unit is
//! known to be coming (containerd's `start` asking for a namespace, a Create, an exec's
//! Start). The grace period then runs while `start` finishes, we write the helper's request
//! and talk to systemd, and systemd's own move finds it over. The write holds `cgroup_mutex`
//! for the grace period just as systemd's would; it only happens earlier.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::paths::ContainerCgroups;

/// The `cgroup.procs` file of this process's own cgroup, written to prime.
pub struct MigrationPrimer {
    procs_file: Option<PathBuf>,
    priming: Arc<AtomicBool>,
}

impl MigrationPrimer {
    /// The primer for the calling process, which writes into the cgroup it is in now; one that
    /// does nothing when that cgroup cannot be found. Blocking (reads procfs).
    pub fn for_current_process() -> MigrationPrimer {
        let procs_file = match ContainerCgroups::of_pid(std::process::id()) {
            Ok(own) => own.any_dir().map(|dir| dir.join("cgroup.procs")),
            Err(error) => {
                tracing::debug!("not priming cgroup moves: {error}");
                None
            }
        };
        MigrationPrimer::writing_to(procs_file)
    }

    /// A primer writing into `procs_file` (`None`: one that does nothing).
    pub fn writing_to(procs_file: Option<PathBuf>) -> MigrationPrimer {
        MigrationPrimer { procs_file, priming: Arc::new(AtomicBool::new(false)) }
    }

    /// Starts a no-op move on tokio's blocking pool, unless one is under way. Never waits, and
    /// a failed write only costs the head start.
    pub fn prime(&self) {
        let Some(procs_file) = self.procs_file.clone() else {
            return;
        };
        if self.priming.swap(true, Ordering::AcqRel) {
            return;
        }
        let priming = Arc::clone(&self.priming);
        drop(tokio::task::spawn_blocking(move || {
            if let Err(error) = move_self_into(&procs_file) {
                tracing::debug!("priming a cgroup move through {}: {error}", procs_file.display());
            }
            priming.store(false, Ordering::Release);
        }));
    }
}

/// Writes `0` (the calling process) into `procs_file`.
fn move_self_into(procs_file: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(procs_file)?.write_all(b"0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::test_support::ScratchDir;

    #[tokio::test]
    async fn priming_writes_the_calling_process_on_a_blocking_thread() {
        let scratch = ScratchDir::new("primer");
        scratch.write("cgroup.procs", "");
        let primer = MigrationPrimer::writing_to(Some(scratch.path().join("cgroup.procs")));
        primer.prime();
        for _ in 0..200 {
            if !primer.priming.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(!primer.priming.load(Ordering::Acquire), "the priming write never finished");
        assert_eq!(std::fs::read_to_string(scratch.path().join("cgroup.procs")).expect("read"), "0");
    }

    #[tokio::test]
    async fn a_primer_without_a_file_does_nothing() {
        let primer = MigrationPrimer::writing_to(None);
        primer.prime();
        assert!(!primer.priming.load(Ordering::Acquire));
    }
}
