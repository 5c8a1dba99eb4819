//! Removing everything a task leaves behind: runc's state and container cgroup, the unit, the
//! rootfs mounts, the unit-level cgroup directories systemd does not manage, and our files in
//! the bundle. Shared by Delete, a failed Create and the `delete` subcommand; every step is
//! idempotent, so a retry after a partial failure finishes the job.
//!
//! What was set up is read back from the helper's create request in the bundle (runc binary and
//! root, whether a rootfs was mounted), so the same code works without the daemon's memory.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{umount2, MntFlags};
use nix::sys::stat::Mode;
use runc_wrap::atomic_file::{read_json, remove_if_present};
use runc_wrap::helper::CONTAINER_CGROUP_LEAF;
use runc_wrap::protocol::{files, CreateRequest, ExecRequest};
use runc_wrap::RuntimeFactory;
use unit_gen::names::TASK_UNIT_PREFIX;
use unit_gen::UnitName;

use crate::blocking::blocking;
use crate::cgroup::hierarchy_mount_points;
use crate::error::Error;
use crate::systemd::{QueuedJob, Systemd};
use crate::unbounded_work::UnboundedWork;

/// How long stopping a unit may take (its TimeoutStopSec is 90 s by default, but a container
/// whose init already exited stops at once).
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(100);

/// What is known of the container when its residue goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEnd {
    /// Its init exited and its spec has no poststop hooks: nothing is left for `runc delete`
    /// to do but what stopping the unit and our own cleanup do anyway (see
    /// [`remove_task_residue`]).
    ExitedWithoutPoststopHooks,
    /// Anything else (never started, still running, unknown, or poststop hooks to run):
    /// `runc delete --force` does it.
    Unknown,
}

/// Removes all residue of the task whose unit is `unit`, whose bundle is `bundle` and whose
/// unit's `ExecStopPost` records the exit in `exit_file`, and waits until the unit is down. The
/// runc the bundle's create request names is driven through `runtimes`. The detached root
/// filesystem is released on one of `rootfs_releases`' threads.
pub async fn remove_task_residue(
    systemd: &Arc<Systemd>,
    runtimes: &dyn RuntimeFactory,
    rootfs_releases: &UnboundedWork,
    unit: &UnitName,
    bundle: &Path,
    exit_file: &Path,
    end: ContainerEnd,
) -> Result<(), Error> {
    begin_task_residue_removal(systemd, runtimes, rootfs_releases, unit, bundle, exit_file, end).await?.finish().await
}

/// Removes the residue of a task up to its unit's stop, which is not waited for:
/// [`PendingStop::finish`] does the rest. Once this returns nothing of the task is left that
/// containerd could trip over (runc state, mounts, our files in the bundle).
///
/// The stop of an exited container's unit whose exit record lies outside the bundle is not
/// even asked for here but by [`PendingStop::finish`]: systemd is then busy spawning the unit's
/// `ExecStopPost` helper, and on a cgroup-v1 host the helper's move into the unit's control
/// group can hold systemd's main loop for an RCU grace period (10 ms and more), which the
/// caller need not wait for. Any other unit's stop is queued first, before the mounts go.
///
/// For a container whose init exited and that has no poststop hooks, `runc delete` is not run:
/// its processes are gone with the init (or die with the unit, which systemd stops as a whole
/// control group), systemd removes the unit's cgroup tree, [`UnitCgroups::prune`] removes the
/// directories runc made elsewhere, and what remains of runc is its state directory, removed
/// here. That saves a runc process (about 10 ms) on every `ctr run --rm`.
pub async fn begin_task_residue_removal(
    systemd: &Arc<Systemd>,
    runtimes: &dyn RuntimeFactory,
    rootfs_releases: &UnboundedWork,
    unit: &UnitName,
    bundle: &Path,
    exit_file: &Path,
    end: ContainerEnd,
) -> Result<PendingStop, Error> {
    let request = read_create_request(bundle).await;

    let mut runc_state_left = None;
    if let Some(request) = &request {
        let runc = runtimes.runtime(request.runc.runc());
        if runc.has_container(&request.container_id).await {
            match end {
                // A program wrapping runc sees its `delete`, as under runc-v2.
                ContainerEnd::ExitedWithoutPoststopHooks if runc.is_plain_runc() => {
                    runc_state_left = Some((runc, request.container_id.clone()))
                }
                // --force kills an init that never started; it also removes the container's cgroup.
                ContainerEnd::ExitedWithoutPoststopHooks | ContainerEnd::Unknown => {
                    runc.delete(&request.container_id, true).await.map_err(Error::Runc)?
                }
            }
        }
    }

    remove_exec_units(systemd, bundle).await?;
    // A unit made by an older daemon records its exit in the bundle: it must be down before
    // our files there go, or its record would outlive the bundle's cleanup.
    let exit_recorded_in_bundle = exit_file.starts_with(bundle);
    let stop = if end == ContainerEnd::ExitedWithoutPoststopHooks && !exit_recorded_in_bundle {
        UnitStop::NotAskedYet
    } else {
        let mut job = systemd.begin_stop_unit(unit.as_str()).await?;
        if exit_recorded_in_bundle {
            if let Some(mut job) = job.take() {
                job.wait(STOP_TIMEOUT).await?;
            }
        }
        UnitStop::Asked(job)
    };
    if let Some((runc, id)) = runc_state_left {
        runc.forget_exited(&id).await.map_err(Error::Runc)?;
    }

    let local_bundle = bundle.to_path_buf();
    let unit_name = unit.as_str().to_string();
    let rootfs_mounted = request.as_ref().is_some_and(|request| !request.rootfs.is_empty());
    let releases = rootfs_releases.clone();
    let cgroups = blocking("removing task residue", move || {
        remove_local_residue(&local_bundle, &unit_name, rootfs_mounted, &releases)
    })
    .await??;
    Ok(PendingStop {
        systemd: Arc::clone(systemd),
        unit: unit.clone(),
        stop,
        cgroups,
        exit_file: exit_file.to_path_buf(),
    })
}

/// The end of a task's removal: its unit's stop job, then what may only go once the unit is
/// down (its failed state, the cgroup directories runc made outside systemd's reach, the exit
/// file its `ExecStopPost` wrote).
pub struct PendingStop {
    systemd: Arc<Systemd>,
    unit: UnitName,
    stop: UnitStop,
    cgroups: Option<UnitCgroups>,
    exit_file: PathBuf,
}

/// Where the stop of a task's unit stands when its residue removal is begun.
enum UnitStop {
    /// Asked for; its job, if systemd had the unit loaded and it is not waited for yet.
    Asked(Option<QueuedJob>),
    /// [`PendingStop::finish`] asks for it.
    NotAskedYet,
}

impl PendingStop {
    /// The unit being stopped.
    pub fn unit(&self) -> &UnitName {
        &self.unit
    }

    /// Waits for the stop job and removes what was left for after it.
    pub async fn finish(self) -> Result<(), Error> {
        let PendingStop { systemd, unit, stop, cgroups, exit_file } = self;
        match stop {
            UnitStop::Asked(Some(mut job)) => {
                job.wait(STOP_TIMEOUT).await?;
            }
            UnitStop::Asked(None) => {}
            UnitStop::NotAskedYet => {
                systemd.stop_unit(unit.as_str(), STOP_TIMEOUT).await?;
            }
        }
        systemd.reset_failed_unit(unit.as_str()).await?;
        blocking("removing a stopped unit's files", move || {
            if let Some(cgroups) = cgroups {
                cgroups.prune();
            }
            remove_if_present(&exit_file).map_err(Error::Runc)
        })
        .await?
    }
}

/// Stops every exec unit of the task (their processes died with the container) and removes
/// their directories. The unit names come from the exec requests in the bundle, so this works
/// without the daemon's memory.
async fn remove_exec_units(systemd: &Systemd, bundle: &Path) -> Result<(), Error> {
    let execs_dir = bundle.join(files::EXEC_DIR);
    let scan_dir = execs_dir.clone();
    let execs = blocking("listing exec processes", move || exec_units_in(&scan_dir)).await?;
    for (unit, dir) in execs {
        remove_exec_residue(systemd, &unit, &dir).await?;
    }
    blocking("removing the exec directory", move || match std::fs::remove_dir_all(&execs_dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", execs_dir.display()), error))
        }
        _ => Ok(()),
    })
    .await?
}

/// `(unit, directory)` of every exec whose request names one of our units.
fn exec_units_in(execs_dir: &Path) -> Vec<(UnitName, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(execs_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter_map(|dir| {
            let unit = match read_json::<ExecRequest>(&dir.join(files::exec::REQUEST)) {
                Ok(request) if request.unit.starts_with(TASK_UNIT_PREFIX) && request.unit.ends_with(".service") => {
                    Some(UnitName::from_raw(request.unit))
                }
                _ => None,
            };
            Some((unit?, dir))
        })
        .collect()
}

/// Stops and forgets the task's unit only (a failed restore, which may be retried).
pub(super) async fn stop_unit_only(systemd: &Systemd, unit: &UnitName) -> Result<(), Error> {
    systemd.stop_unit(unit.as_str(), STOP_TIMEOUT).await?;
    systemd.reset_failed_unit(unit.as_str()).await?;
    Ok(())
}

async fn read_create_request(bundle: &Path) -> Option<CreateRequest> {
    let path = bundle.join(files::CREATE_REQUEST);
    match tokio::task::spawn_blocking(move || read_json::<CreateRequest>(&path)).await {
        Ok(Ok(request)) => Some(request),
        _ => None,
    }
}

/// The blocking part: unmount, remove our files; returns the cgroup directories to prune once
/// the unit is down (read from config.json, which containerd removes with the bundle).
fn remove_local_residue(
    bundle: &Path,
    unit_name: &str,
    rootfs_mounted: bool,
    rootfs_releases: &UnboundedWork,
) -> Result<Option<UnitCgroups>, Error> {
    if rootfs_mounted {
        if let Some(hold) = detach_rootfs(&bundle.join("rootfs"))? {
            release_detached_rootfs(rootfs_releases, move || drop(hold));
        }
    }
    let cgroups = UnitCgroups::of(bundle, unit_name);
    for name in files::ALL {
        remove_if_present(&bundle.join(name)).map_err(Error::Runc)?;
    }
    let notify_dir = bundle.join(files::NOTIFY_DIR);
    match std::fs::remove_dir_all(&notify_dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("removing {}", notify_dir.display()), error))
        }
        _ => {}
    }
    Ok(cgroups)
}

/// Takes the task's root filesystem, and whatever is stacked on or mounted under it, out of the
/// mount tree, and returns a descriptor that still holds the filesystem (`None` when there is
/// no `rootfs` directory). A plain unmount of an overlay syncs its upper filesystem first, about
/// a millisecond on ext4 that Delete need not wait for: once detached, nothing is mounted at
/// the path (containerd can remove the bundle), and the filesystem goes when the descriptor
/// closes.
fn detach_rootfs(rootfs: &Path) -> Result<Option<OwnedFd>, Error> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let hold = match nix::fcntl::open(rootfs, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(errno) => return Err(Error::io(format!("opening {}", rootfs.display()), errno.into())),
    };
    loop {
        match umount2(rootfs, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            // Nothing (more) is mounted there.
            Err(Errno::EINVAL) => return Ok(Some(hold)),
            Err(errno) => return Err(Error::io(format!("unmounting {}", rootfs.display()), errno.into())),
        }
    }
}

/// Runs `release` (the close of the descriptor holding a detached root filesystem) on one of
/// `rootfs_releases`' threads, so whoever detached the filesystem does not wait for its
/// release. Never on tokio's blocking pool: the release may not come back (an overlay layer on
/// a hung NFS or FUSE mount), and a few of those would hold every thread the daemon's record
/// saves and Creates need.
fn release_detached_rootfs(rootfs_releases: &UnboundedWork, release: impl FnOnce() + Send + 'static) {
    rootfs_releases.submit(release);
}

/// runc creates `<unit cgroup>/container` in every hierarchy, including those systemd does not
/// manage for the unit (freezer, cpuset, … on hybrid systems). Neither removes the unit-level
/// directory there, so we do. Only a path that is provably ours is touched: the cgroupsPath our
/// helper wrote into config.json, ending in `<unit name>/container`.
pub struct UnitCgroups {
    container: PathBuf,
    unit: PathBuf,
}

impl UnitCgroups {
    fn of(bundle: &Path, unit_name: &str) -> Option<UnitCgroups> {
        let container = container_cgroup_of(bundle)?;
        let Some(unit) = unit_cgroup_of(&container, unit_name) else {
            tracing::debug!("cgroupsPath {} is not under unit {unit_name}; leaving it", container.display());
            return None;
        };
        Some(UnitCgroups { container, unit })
    }

    /// Removes both directories in every hierarchy where they are left (and empty).
    fn prune(&self) {
        for hierarchy in cgroup_hierarchies() {
            for dir in [&self.container, &self.unit] {
                let path = hierarchy.join(dir.strip_prefix("/").unwrap_or(dir));
                match std::fs::remove_dir(&path) {
                    Ok(()) => tracing::debug!("removed cgroup {}", path.display()),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => tracing::warn!("could not remove cgroup {}: {error}", path.display()),
                }
            }
        }
    }
}

fn container_cgroup_of(bundle: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(bundle.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config.pointer("/linux/cgroupsPath")?.as_str().map(PathBuf::from)
}

/// The unit's cgroup, if `container_cgroup` is `<…>/<unit_name>/container`.
fn unit_cgroup_of(container_cgroup: &Path, unit_name: &str) -> Option<PathBuf> {
    if container_cgroup.file_name()? != CONTAINER_CGROUP_LEAF {
        return None;
    }
    let unit_cgroup = container_cgroup.parent()?;
    (unit_cgroup.file_name()? == unit_name && container_cgroup.is_absolute()).then(|| unit_cgroup.to_path_buf())
}

/// Mount points of cgroup hierarchies (v1 and v2) mounted at their root.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    hierarchy_mount_points(&mountinfo)
}

/// Stops and forgets an exec's unit and removes its directory. Idempotent.
pub async fn remove_exec_residue(systemd: &Systemd, unit: &UnitName, dir: &Path) -> Result<(), Error> {
    systemd.stop_unit(unit.as_str(), STOP_TIMEOUT).await?;
    systemd.reset_failed_unit(unit.as_str()).await?;
    let dir: PathBuf = dir.to_path_buf();
    blocking("removing exec files", move || match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::io(format!("removing {}", dir.display()), error)),
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocking::{daemon_runtime, DAEMON_BLOCKING_THREADS};
    use crate::daemon::state::StateStore;
    use crate::daemon::task::TaskKey;
    use crate::test_support::scratch;
    use std::sync::Mutex;

    /// The daemon's runtime, where every rootfs release hangs (an overlay layer on a dead NFS
    /// server): with more hung releases than the runtime has blocking threads, record saves and
    /// a Create's file writes still go through.
    #[test]
    fn hung_rootfs_releases_leave_the_blocking_threads_to_record_saves() {
        let dir = scratch("hung-rootfs-release");
        let runtime = daemon_runtime().expect("the daemon's runtime");
        let releases = UnboundedWork::new("test-release", 8);
        // Dropped before the runtime: the hung releases then return, and no thread outlives the test.
        let (_unhang, hung) = std::sync::mpsc::channel::<()>();
        let hung = Arc::new(Mutex::new(hung));
        runtime.block_on(async {
            for _ in 0..DAEMON_BLOCKING_THREADS * 2 {
                let (releases, hung) = (releases.clone(), Arc::clone(&hung));
                // As remove_local_residue hands the release over, from a blocking thread.
                let hang_forever = move || drop(hung.lock().map(|receiver| receiver.recv()));
                let removal =
                    blocking("removing task residue", move || release_detached_rootfs(&releases, hang_forever));
                tokio::time::timeout(Duration::from_secs(10), removal)
                    .await
                    .expect("a residue's removal runs while the earlier releases hang")
                    .expect("blocking task");
            }
            let store = StateStore::spawn(dir.join("tasks"));
            let key = TaskKey { namespace: "default".into(), id: "t1".into() };
            tokio::time::timeout(Duration::from_secs(10), store.remove(&key).written())
                .await
                .expect("a record change is written while every release hangs");
            let request = dir.join(files::CREATE_REQUEST);
            let written = blocking("writing the create request", move || std::fs::write(request, b"{}"));
            tokio::time::timeout(Duration::from_secs(10), written)
                .await
                .expect("a Create's file write runs while every release hangs")
                .expect("blocking task")
                .expect("write");
        });
    }

    fn mounted_at(path: &Path) -> bool {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let path = path.to_str().expect("UTF-8 path");
        mountinfo.lines().any(|line| line.split(' ').nth(4) == Some(path))
    }

    /// Needs root, as the daemon does: mounts two tmpfs on top of each other.
    #[test]
    fn a_detached_rootfs_leaves_the_tree_at_once_and_lives_while_held() {
        let dir = std::env::temp_dir().join(format!("shim-detach-test-{}", std::process::id()));
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("rootfs dir");
        assert_eq!(detach_rootfs(&dir.join("missing")).expect("no rootfs is no error").map(drop), None);
        for layer in ["lower", "upper"] {
            nix::mount::mount(Some("tmpfs"), &rootfs, Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>)
                .expect("mount tmpfs (the test needs root)");
            std::fs::write(rootfs.join("layer"), layer).expect("write into the mount");
        }

        let hold = detach_rootfs(&rootfs).expect("detach").expect("a descriptor holding the rootfs");
        assert!(!mounted_at(&rootfs), "both layers are out of the mount tree");
        let file = nix::fcntl::openat(&hold, "layer", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .expect("the held filesystem is still there");
        assert_eq!(std::io::read_to_string(std::fs::File::from(file)).expect("read"), "upper");
        drop(hold);
        std::fs::remove_dir_all(&dir).expect("the directory is an empty directory again");
    }

    #[test]
    fn only_our_unit_cgroup_is_pruned() {
        let unit = "containerd-default-t1.service";
        assert_eq!(
            unit_cgroup_of(Path::new("/system.slice/containerd-default-t1.service/container"), unit),
            Some(PathBuf::from("/system.slice/containerd-default-t1.service"))
        );
        assert_eq!(unit_cgroup_of(Path::new("/default/t1"), unit), None);
        assert_eq!(unit_cgroup_of(Path::new("/system.slice/other.service/container"), unit), None);
        assert_eq!(unit_cgroup_of(Path::new("relative/containerd-default-t1.service/container"), unit), None);
    }

    #[test]
    fn cgroup_mounts_are_found_in_mountinfo() {
        let mountinfo = "\
25 30 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
28 25 0:25 /nested /sys/fs/cgroup/bound rw - cgroup cgroup rw,cpu
29 30 8:1 / / rw - ext4 /dev/vda rw";
        assert_eq!(
            hierarchy_mount_points(mountinfo),
            [PathBuf::from("/sys/fs/cgroup/unified"), PathBuf::from("/sys/fs/cgroup/memory")]
        );
    }
}
