//! OOM kills in a container's cgroup, for containerd's `TaskOOM` event.
//!
//! - cgroup v1: an eventfd registered through `cgroup.event_control` for `memory.oom_control`
//!   (Documentation/admin-guide/cgroup-v1/memory.rst, "OOM Control"). The kernel signals it once
//!   per OOM of the cgroup or an ancestor, and once more when the cgroup is removed. Like
//!   containerd's runc shim, each OOM notification is one OOM event.
//! - cgroup v2: inotify on `memory.events`, whose modification the kernel announces
//!   (cgroup-v2.rst, "memory.events … a value change in this file generates a file modified
//!   event"); an OOM event is an increase of its `oom_kill` counter. The cgroup's removal is seen
//!   through an `IN_DELETE` watch on its parent, which rmdir(2) always reports. The watches go
//!   through the daemon's one [`SharedInotify`], never an instance per container.
//!
//! [`OomWatcher::new`] and [`oom_kill_count`] are blocking (cgroupfs I/O); only
//! [`OomWatcher::wait_oom`] is async.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::files::{ensure_dir, is_absent, parse_keyed, read_optional};
use super::inotify::{FileWatch, SharedInotify};
use super::{CgroupError, CgroupMode, ContainerCgroups};

/// How long to wait, after finding a v1 cgroup removed with one unexplained notification, for
/// the kernel's removal notice. That notice comes from work scheduled when the cgroup goes
/// offline, shortly *after* its directory disappears; an OOM notice always comes before.
const REMOVAL_NOTICE_GRACE: Duration = Duration::from_secs(1);

/// What [`OomWatcher::wait_oom`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomOutcome {
    /// The cgroup hit an OOM (v1: an OOM notification; v2: `oom_kill` went up). Publish
    /// `TaskOOM`; several OOMs seen at once are reported one call each.
    Oom,
    /// The cgroup was removed: no OOM can follow, stop watching. Every later call says so too.
    CgroupGone,
}

/// Watches one container's cgroup for OOMs. Create it (blocking) once the task's cgroup
/// exists, then call [`OomWatcher::wait_oom`] in a loop from a task of its own until it
/// returns [`OomOutcome::CgroupGone`] or the task is deleted; dropping it unregisters.
#[derive(Debug)]
pub struct OomWatcher {
    /// The directory with the memory controller's files.
    dir: PathBuf,
    source: Source,
    /// Notifications read but not yet attributed to OOMs or to the cgroup's removal (kept
    /// across a cancelled `wait_oom`).
    unclassified: u64,
    /// OOMs seen and not yet returned.
    pending: u64,
    gone: bool,
    /// How long an exit waits for the kill of an OOM counted without it ([`KILL_CATCH_UP`]).
    kill_catch_up: Duration,
}

/// Where the notifications come from.
#[derive(Debug)]
enum Source {
    /// An eventfd of the watcher's own.
    V1(Registration),
    V2 {
        /// `memory.events`, watched through the daemon's inotify instance.
        watch: FileWatch,
        /// Its `oom_kill` counter when last read.
        last_oom_kill: u64,
        /// Its `oom` counter (the cgroup hit its limit and the OOM killer ran) when last read.
        last_oom: u64,
        /// The watch reported the file or the cgroup removed: after one last read of the
        /// counter, nothing more can come.
        removed: bool,
    },
}

/// The v1 eventfd, registered with tokio's reactor on the first wait (so that creating a
/// watcher needs no runtime and can run on the blocking pool).
#[derive(Debug)]
enum Registration {
    Pending(OomEventFd),
    Active(AsyncFd<OomEventFd>),
    /// Only while [`activate`] moves the fd from `Pending` to `Active`.
    Moving,
}

/// The eventfd the kernel signals v1 OOMs on (nix's `EventFd` offers only `AsFd`).
#[derive(Debug)]
struct OomEventFd(EventFd);

impl AsRawFd for OomEventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl OomEventFd {
    /// How many notifications are waiting (the eventfd's counter, reset by the read).
    /// `WouldBlock` if none.
    fn drain(&self) -> std::io::Result<u64> {
        self.0.read().map_err(std::io::Error::from)
    }
}

fn unavailable(cgroups: &ContainerCgroups) -> CgroupError {
    CgroupError::ControllerUnavailable { controller: "memory", cgroup: cgroups.path().to_string() }
}

fn notification_error(action: &'static str, dir: &Path, source: impl Into<std::io::Error>) -> CgroupError {
    CgroupError::OomNotification { action, path: dir.to_path_buf(), source: source.into() }
}

/// How many times the kernel OOM-killed a process in the cgroup (v1: `oom_kill` of
/// `memory.oom_control`, 0 on kernels before 4.13 which lack it; v2: `oom_kill` of
/// `memory.events`, which includes descendant cgroups). Check it after the task exits and
/// before its unit is stopped (which removes the cgroup) to tell whether it was OOM-killed.
/// Blocking.
pub fn oom_kill_count(cgroups: &ContainerCgroups) -> Result<u64, CgroupError> {
    let dir = cgroups.memory_dir().ok_or_else(|| unavailable(cgroups))?;
    ensure_dir(dir)?;
    let path = match cgroups.mode() {
        CgroupMode::V1 => dir.join("memory.oom_control"),
        CgroupMode::V2 => dir.join("memory.events"),
    };
    let text = read_optional(&path)?.ok_or_else(|| unavailable(cgroups))?;
    Ok(parse_keyed(&path, &text)?.get("oom_kill"))
}

impl OomWatcher {
    /// Starts watching the cgroup's memory controller (v2: through `inotify`). Errors if the
    /// cgroup does not exist or has no memory controller ([`CgroupError::ControllerUnavailable`]:
    /// nothing to watch), or if the watch cannot be set up. Blocking; a v2 watch must run
    /// inside a tokio runtime or on its blocking pool (see [`SharedInotify::watch`]).
    pub fn new(cgroups: &ContainerCgroups, inotify: &SharedInotify) -> Result<OomWatcher, CgroupError> {
        let dir = cgroups.memory_dir().ok_or_else(|| unavailable(cgroups))?.to_path_buf();
        ensure_dir(&dir)?;
        let source = match cgroups.mode() {
            CgroupMode::V1 => Source::V1(Registration::Pending(register_v1(cgroups, &dir)?)),
            CgroupMode::V2 => {
                let events = dir.join("memory.events");
                if read_optional(&events)?.is_none() {
                    return Err(unavailable(cgroups));
                }
                // Watch first, then read where counting starts: an OOM between the two is in
                // the count, one after it is announced.
                let watch = inotify.watch(&events)?;
                let text = read_optional(&events)?.ok_or_else(|| unavailable(cgroups))?;
                let counters = parse_keyed(&events, &text)?;
                Source::V2 {
                    watch,
                    last_oom_kill: counters.get("oom_kill"),
                    last_oom: counters.get("oom"),
                    removed: false,
                }
            }
        };
        Ok(OomWatcher { dir, source, unclassified: 0, pending: 0, gone: false, kill_catch_up: KILL_CATCH_UP })
    }

    /// The directory being watched.
    pub fn cgroup_dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the next OOM or for the cgroup's removal. Cancel-safe: a notification read
    /// before a cancellation is reported by the next call. Must run inside a tokio runtime.
    pub async fn wait_oom(&mut self) -> Result<OomOutcome, CgroupError> {
        loop {
            if self.pending > 0 {
                self.pending -= 1;
                return Ok(OomOutcome::Oom);
            }
            if self.gone {
                return Ok(OomOutcome::CgroupGone);
            }
            if self.unclassified == 0 {
                self.unclassified = self.read_notifications().await?;
                continue;
            }
            match self.source {
                Source::V1(_) => self.classify_v1().await?,
                Source::V2 { .. } => self.classify_v2(KillCatchUp::No).await?,
            }
        }
    }

    /// Counts OOMs up to now without waiting for a notification (v2: reads `memory.events`;
    /// v1: takes the notifications already signalled), and returns how many were not yet
    /// returned; they are returned here and never again by [`OomWatcher::wait_oom`]. For
    /// whoever is about to publish the container's exit: the notification of an OOM that
    /// killed init may still be on its way, but its count is already in the cgroup.
    pub async fn take_ooms_so_far(&mut self) -> Result<u64, CgroupError> {
        if !self.gone {
            match &mut self.source {
                Source::V1(registration) => {
                    let fd = activate(registration, &self.dir)?;
                    match fd.get_ref().drain() {
                        Ok(count) => self.unclassified += count,
                        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                        Err(source) => return Err(notification_error("reading OOM notifications", &self.dir, source)),
                    }
                    if self.unclassified > 0 {
                        self.classify_v1().await?;
                    }
                }
                Source::V2 { watch, removed, .. } => {
                    if watch.take().is_some_and(|changes| changes.removed) {
                        *removed = true;
                    }
                    self.classify_v2(KillCatchUp::Await).await?
                }
            }
        }
        Ok(std::mem::take(&mut self.pending))
    }

    /// Waits for notifications and takes them: how many.
    async fn read_notifications(&mut self) -> Result<u64, CgroupError> {
        match &mut self.source {
            Source::V1(registration) => {
                let fd = activate(registration, &self.dir)?;
                loop {
                    let mut guard = fd
                        .readable()
                        .await
                        .map_err(|source| notification_error("waiting for OOM notifications", &self.dir, source))?;
                    match guard.try_io(|fd| fd.get_ref().drain()) {
                        Ok(Ok(count)) => return Ok(count),
                        Ok(Err(source)) => {
                            return Err(notification_error("reading OOM notifications", &self.dir, source))
                        }
                        // Readiness was stale; try_io cleared it.
                        Err(_would_block) => continue,
                    }
                }
            }
            Source::V2 { watch, removed, .. } => {
                let changes = watch.changes().await;
                *removed |= changes.removed;
                // A removal whose modification notices were taken earlier still needs a read.
                Ok(changes.count.max(1))
            }
        }
    }

    /// While the cgroup exists every notification is an OOM. Once it is gone, one of them is
    /// (or is about to be) the kernel's removal notice, and the rest are OOMs that came before.
    async fn classify_v1(&mut self) -> Result<(), CgroupError> {
        match tokio::fs::metadata(&self.dir).await {
            Ok(_) => {
                self.pending += std::mem::take(&mut self.unclassified);
                Ok(())
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {
                if self.unclassified == 1 {
                    // Either this was the removal notice, or an OOM read late with the notice
                    // still to come: wait briefly for a second one to tell which.
                    if let Ok(more) = tokio::time::timeout(REMOVAL_NOTICE_GRACE, self.read_notifications()).await {
                        self.unclassified += more?;
                    }
                }
                self.pending += std::mem::take(&mut self.unclassified).saturating_sub(1);
                self.gone = true;
                Ok(())
            }
            Err(source) => Err(CgroupError::Read { path: self.dir.clone(), source }),
        }
    }

    /// Re-reads `memory.events`: an `oom_kill` increase is that many OOMs; a file that is gone,
    /// or a watch told of its removal, means the cgroup (or its memory controller) is gone. The
    /// notifications count as classified only once the file was read, so a cancelled or failed
    /// read is retried. With [`KillCatchUp::Await`], an OOM the cgroup counts (`oom` went up)
    /// whose kill it does not count yet is waited for, up to [`KILL_CATCH_UP`]: the kernel
    /// sends the victim its SIGKILL before it counts the kill, so the victim's exit can be
    /// seen first.
    async fn classify_v2(&mut self, catch_up: KillCatchUp) -> Result<(), CgroupError> {
        let deadline = tokio::time::Instant::now() + self.kill_catch_up;
        loop {
            let Source::V2 { watch, last_oom_kill, last_oom, removed } = &mut self.source else {
                self.unclassified = 0;
                return Ok(());
            };
            let events = watch.file();
            match tokio::fs::read_to_string(events).await {
                Ok(text) => {
                    let counters = parse_keyed(events, &text)?;
                    let (kills, ooms) = (counters.get("oom_kill"), counters.get("oom"));
                    let new_kills = kills.saturating_sub(*last_oom_kill);
                    let new_ooms = ooms.saturating_sub(*last_oom);
                    let kills_to_come = new_ooms > new_kills;
                    if kills_to_come && catch_up == KillCatchUp::Await && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(KILL_CATCH_UP_POLL).await;
                        continue;
                    }
                    self.pending += new_kills;
                    *last_oom_kill = kills.max(*last_oom_kill);
                    // OOMs whose kill is not counted yet stay outstanding for the exit to wait
                    // for, once; an OOM that ended without a kill is then given up.
                    *last_oom = match catch_up {
                        KillCatchUp::Await => ooms.max(*last_oom),
                        KillCatchUp::No => *last_oom + new_ooms.min(new_kills),
                    };
                    // Removed yet readable: the watch is gone, so nothing more would be announced.
                    self.gone = *removed;
                }
                // ENODEV: the file was opened just before the cgroup went away.
                Err(error) if is_absent(&error) || error.raw_os_error() == Some(Errno::ENODEV as i32) => {
                    self.gone = true
                }
                Err(source) => return Err(CgroupError::Read { path: events.to_path_buf(), source }),
            }
            self.unclassified = 0;
            return Ok(());
        }
    }
}

/// Whether a read of `memory.events` waits for the kill of an OOM it sees counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillCatchUp {
    /// For whoever publishes the exit next: wait, so the kill is counted before it.
    Await,
    /// A notification's read: the kill's own notification follows.
    No,
}

/// How long an exit waits for the kernel to count the kill of an OOM it has counted.
const KILL_CATCH_UP: Duration = Duration::from_millis(500);
/// How often `memory.events` is read again meanwhile.
const KILL_CATCH_UP_POLL: Duration = Duration::from_millis(10);

/// Registers a new eventfd for `memory.oom_control` OOM notifications of the v1 cgroup `dir`.
fn register_v1(cgroups: &ContainerCgroups, dir: &Path) -> Result<OomEventFd, CgroupError> {
    let control_path = dir.join("memory.oom_control");
    let control = File::open(&control_path).map_err(|source| {
        if is_absent(&source) {
            unavailable(cgroups)
        } else {
            CgroupError::Read { path: control_path.clone(), source }
        }
    })?;
    let eventfd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|errno| notification_error("creating an eventfd", dir, errno))?;
    // "<event_fd> <fd of memory.oom_control>". The kernel takes its own reference to the
    // eventfd; the control file is only checked while registering, so it may be closed after.
    let line = format!("{} {}", eventfd.as_fd().as_raw_fd(), control.as_raw_fd());
    OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.event_control"))
        .and_then(|mut event_control| event_control.write_all(line.as_bytes()))
        .map_err(|source| {
            notification_error("registering memory.oom_control with cgroup.event_control", dir, source)
        })?;
    Ok(OomEventFd(eventfd))
}

/// Registers the fd with tokio's reactor on first use; after a failure it stays pending, so a
/// later call may try again.
fn activate<'a>(registration: &'a mut Registration, dir: &Path) -> Result<&'a AsyncFd<OomEventFd>, CgroupError> {
    let lost =
        || notification_error("registering the notification fd with tokio", dir, std::io::Error::other("fd lost"));
    if let Registration::Pending(_) = registration {
        let Registration::Pending(fd) = std::mem::replace(registration, Registration::Moving) else {
            return Err(lost());
        };
        // SAFETY: `OomEventFd` owns its fd (an `EventFd`, an `OwnedFd`) and never closes or
        // replaces it, so the fd stays open and the same for as long as the `AsyncFd` owns it.
        match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(fd) => *registration = Registration::Active(fd),
            Err(error) => {
                let (fd, source) = error.into_parts();
                *registration = Registration::Pending(fd);
                return Err(notification_error("registering the notification fd with tokio", dir, source));
            }
        }
    }
    match registration {
        Registration::Active(fd) => Ok(fd),
        Registration::Pending(_) | Registration::Moving => Err(lost()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::time::SystemTime;

    use nix::sys::signal::Signal;
    use tokio::time::timeout;

    use super::*;
    use crate::cgroup::metrics::read_metrics;
    use crate::cgroup::test_support::ScratchDir;
    use crate::cgroup::V1_METRICS_TYPE_URL;

    const OOM_TIMEOUT: Duration = Duration::from_secs(60);
    const QUIET: Duration = Duration::from_millis(300);

    #[test]
    fn oom_kill_count_reads_the_v1_and_v2_counters() {
        let root = ScratchDir::new("oom-count");
        root.write("memory/c/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n");
        root.write("unified/c/memory.events", "low 0\nhigh 0\nmax 9\noom 6\noom_kill 5\noom_group_kill 0\n");
        root.write("old-kernel/c/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
        let v1 = |tree: &str| ContainerCgroups::v1("/c", [("memory".to_string(), root.path().join(tree).join("c"))]);
        assert_eq!(oom_kill_count(&v1("memory")).expect("v1 count"), 4);
        assert_eq!(oom_kill_count(&v1("old-kernel")).expect("count without oom_kill line"), 0);
        let v2 = ContainerCgroups::v2("/c", root.path().join("unified/c"));
        assert_eq!(oom_kill_count(&v2).expect("v2 count"), 5);
    }

    #[test]
    fn oom_kill_count_errors_name_what_is_missing() {
        let root = ScratchDir::new("oom-count-errors");
        std::fs::create_dir_all(root.path().join("unified/no-memory")).expect("mkdir");
        let no_memory_hierarchy = ContainerCgroups::v1("/c", [("pids".to_string(), root.path().join("pids/c"))]);
        assert!(matches!(
            oom_kill_count(&no_memory_hierarchy),
            Err(CgroupError::ControllerUnavailable { controller: "memory", .. })
        ));
        let not_enabled = ContainerCgroups::v2("/no-memory", root.path().join("unified/no-memory"));
        assert!(matches!(oom_kill_count(&not_enabled), Err(CgroupError::ControllerUnavailable { .. })));
        let removed = ContainerCgroups::v2("/removed", root.path().join("unified/removed"));
        match oom_kill_count(&removed) {
            Err(CgroupError::CgroupNotFound { path }) => assert_eq!(path, root.path().join("unified/removed")),
            other => panic!("expected CgroupNotFound, got {other:?}"),
        }
        assert!(matches!(
            OomWatcher::new(&not_enabled, &SharedInotify::new()),
            Err(CgroupError::ControllerUnavailable { .. })
        ));
    }

    #[tokio::test]
    async fn v2_watcher_reports_each_oom_kill_increase_and_then_the_removal() {
        // A fake v2 cgroup on the temp filesystem: writes raise IN_MODIFY as the kernel's
        // notifications on memory.events do, and rmdir raises IN_DELETE on the parent.
        let root = ScratchDir::new("oom-v2");
        let events = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\noom_group_kill 0\n";
        root.write("c/memory.events", events);
        let dir = root.path().join("c");
        let mut watcher =
            OomWatcher::new(&ContainerCgroups::v2("/c", dir.clone()), &SharedInotify::new()).expect("watch");
        assert_eq!(watcher.cgroup_dir(), dir);

        // A change that is not an OOM kill (the count it starts from is not one either).
        root.write("c/memory.events", "low 0\nhigh 0\nmax 3\noom 0\noom_kill 1\noom_group_kill 0\n");
        assert!(timeout(QUIET, watcher.wait_oom()).await.is_err(), "no OOM reported for a max-only change");

        root.write("c/memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 3\noom_group_kill 0\n");
        for n in 1..=2 {
            let outcome = timeout(OOM_TIMEOUT, watcher.wait_oom()).await.expect("OOM in time").expect("wait");
            assert_eq!(outcome, OomOutcome::Oom, "OOM {n} of 2");
        }
        assert!(timeout(QUIET, watcher.wait_oom()).await.is_err(), "two kills are two OOMs, not more");

        std::fs::remove_file(dir.join("memory.events")).expect("remove memory.events");
        std::fs::remove_dir(&dir).expect("rmdir");
        let outcome = timeout(OOM_TIMEOUT, watcher.wait_oom()).await.expect("removal in time").expect("wait");
        assert_eq!(outcome, OomOutcome::CgroupGone);
        let again = timeout(QUIET, watcher.wait_oom()).await.expect("immediate").expect("wait");
        assert_eq!(again, OomOutcome::CgroupGone, "gone stays gone");
    }

    #[tokio::test]
    async fn an_exit_waits_for_the_kill_of_an_oom_the_kernel_counted_first() {
        // The kernel counts `oom`, sends the victim SIGKILL, and only then counts `oom_kill`:
        // the victim's exit can be seen between the two.
        let root = ScratchDir::new("oom-v2-catch-up");
        root.write("c/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
        let dir = root.path().join("c");
        let mut watcher =
            OomWatcher::new(&ContainerCgroups::v2("/c", dir.clone()), &SharedInotify::new()).expect("watch");
        // Long enough that the kill written below always lands inside the wait, however loaded
        // the machine: the test orders the write after the wait began, not by a deadline.
        watcher.kill_catch_up = Duration::from_secs(60);
        root.write("c/memory.events", "low 0\nhigh 0\nmax 1\noom 1\noom_kill 0\noom_group_kill 0\n");
        // The notification of the `oom` count is read before the kill is counted.
        assert!(timeout(QUIET, watcher.wait_oom()).await.is_err(), "an OOM without a kill yet is no kill");
        let kill_counted = {
            let root_dir = root.path().to_path_buf();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // In place and in one write, as the kernel's file changes: truncating first
                // would let the waiting watcher read an empty file.
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(root_dir.join("c/memory.events"))
                    .and_then(|mut file| file.write_all(b"low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n"))
                    .expect("count the kill");
            })
        };
        assert_eq!(watcher.take_ooms_so_far().await.expect("count at exit"), 1, "the kill counted after the wait");
        kill_counted.await.expect("writer");
        // An OOM that ends without a kill is waited for once, then given up: a second read
        // would wait the whole (long) deadline again if it were not.
        root.write("c/memory.events", "low 0\nhigh 0\nmax 2\noom 2\noom_kill 1\noom_group_kill 0\n");
        watcher.kill_catch_up = Duration::from_millis(200);
        assert_eq!(watcher.take_ooms_so_far().await.expect("count at exit"), 0);
        watcher.kill_catch_up = Duration::from_secs(60);
        let started = std::time::Instant::now();
        assert_eq!(watcher.take_ooms_so_far().await.expect("count again"), 0);
        assert!(started.elapsed() < Duration::from_secs(30), "an OOM given up is not waited for again");
    }

    /// How many inotify instances this process has open (`anon_inode:inotify` fds).
    fn inotify_instances() -> usize {
        let fds = std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd");
        fds.filter_map(Result::ok)
            .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == "anon_inode:inotify"))
            .count()
    }

    #[tokio::test]
    async fn two_hundred_v2_watchers_share_one_inotify_instance_and_each_hears_only_its_cgroup() {
        const TASKS: usize = 200;
        // Tests running beside this one may open an instance or two of their own meanwhile.
        const OTHER_TESTS_SLACK: usize = 8;
        let root = ScratchDir::new("oom-v2-many");
        let inotify = SharedInotify::new();
        let before = inotify_instances();
        let mut watchers = Vec::new();
        for task in 0..TASKS {
            root.write(&format!("c{task}/memory.events"), "oom 0\noom_kill 0\n");
            let cgroups = ContainerCgroups::v2(format!("/c{task}"), root.path().join(format!("c{task}")));
            watchers.push(OomWatcher::new(&cgroups, &inotify).unwrap_or_else(|error| panic!("watch c{task}: {error}")));
        }
        let opened = inotify_instances().saturating_sub(before);
        assert!(opened <= 1 + OTHER_TESTS_SLACK, "{TASKS} watchers opened {opened} inotify instances");
        let fd = inotify.raw_fd().expect("the shared instance exists");
        // One watch per memory.events, plus the parent they share.
        assert_eq!(super::super::inotify::tests::watch_count(fd), TASKS + 1);

        // Stats still answers for every one of them.
        for task in 0..TASKS {
            let cgroups = ContainerCgroups::v2(format!("/c{task}"), root.path().join(format!("c{task}")));
            read_metrics(&cgroups).unwrap_or_else(|error| panic!("metrics of c{task}: {error}"));
        }

        // An OOM in one cgroup reaches its watcher and no other.
        root.write("c7/memory.events", "oom 1\noom_kill 1\n");
        assert_eq!(next(&mut watchers[7]).await, OomOutcome::Oom);
        assert!(timeout(QUIET, watchers[8].wait_oom()).await.is_err(), "c8 had no OOM");

        // Dropping a watcher removes its watch.
        watchers.truncate(TASKS - 1);
        assert_eq!(super::super::inotify::tests::watch_count(fd), TASKS);
    }

    #[tokio::test]
    async fn a_v2_watch_that_fails_leaves_stats_and_other_watches_working() {
        let root = ScratchDir::new("oom-v2-failed");
        root.write("no-events/memory.current", "4096\n");
        root.write("c/memory.events", "oom 0\noom_kill 0\n");
        let inotify = SharedInotify::new();
        let without_events = ContainerCgroups::v2("/no-events", root.path().join("no-events"));
        assert!(matches!(OomWatcher::new(&without_events, &inotify), Err(CgroupError::ControllerUnavailable { .. })));
        read_metrics(&without_events).expect("metrics without an OOM watch");
        let mut watcher =
            OomWatcher::new(&ContainerCgroups::v2("/c", root.path().join("c")), &inotify).expect("a later watch");
        root.write("c/memory.events", "oom 1\noom_kill 1\n");
        assert_eq!(next(&mut watcher).await, OomOutcome::Oom);
    }

    #[tokio::test]
    async fn ooms_counted_before_their_notification_is_read_are_taken_once() {
        let root = ScratchDir::new("oom-v2-take");
        root.write("c/memory.events", "oom 0\noom_kill 0\n");
        let dir = root.path().join("c");
        let mut watcher =
            OomWatcher::new(&ContainerCgroups::v2("/c", dir.clone()), &SharedInotify::new()).expect("watch");
        assert_eq!(watcher.take_ooms_so_far().await.expect("take"), 0);

        // The kill is counted; its notification is not read yet.
        root.write("c/memory.events", "oom 1\noom_kill 1\n");
        assert_eq!(watcher.take_ooms_so_far().await.expect("take"), 1, "counted from the file");
        assert_eq!(watcher.take_ooms_so_far().await.expect("take"), 0, "taken once");
        assert!(timeout(QUIET, watcher.wait_oom()).await.is_err(), "its late notification is no second OOM");

        std::fs::remove_file(dir.join("memory.events")).expect("remove memory.events");
        std::fs::remove_dir(&dir).expect("rmdir");
        assert_eq!(watcher.take_ooms_so_far().await.expect("take after removal"), 0);
        assert_eq!(next(&mut watcher).await, OomOutcome::CgroupGone);
    }

    #[tokio::test]
    async fn v1_notifications_already_signalled_are_taken_without_waiting() {
        let root = ScratchDir::new("v1-take");
        let (mut watcher, kernel) = fake_v1_watcher(root.path().to_path_buf());
        assert_eq!(watcher.take_ooms_so_far().await.expect("take"), 0, "nothing signalled");
        signal(&kernel, 1);
        assert_eq!(watcher.take_ooms_so_far().await.expect("take"), 1);
        assert!(timeout(QUIET, watcher.wait_oom()).await.is_err(), "taken once");
    }

    /// A v1 watcher on an eventfd of our own for a cgroup directory that may or may not
    /// exist, and a second handle on that eventfd to play the kernel's side (OOM and removal
    /// notices) with [`signal`].
    fn fake_v1_watcher(dir: PathBuf) -> (OomWatcher, File) {
        let eventfd =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).expect("eventfd");
        let kernel_side = File::from(eventfd.as_fd().try_clone_to_owned().expect("dup eventfd"));
        let watcher = OomWatcher {
            dir,
            source: Source::V1(Registration::Pending(OomEventFd(eventfd))),
            unclassified: 0,
            pending: 0,
            gone: false,
            kill_catch_up: KILL_CATCH_UP,
        };
        (watcher, kernel_side)
    }

    /// Adds `count` notifications to the eventfd, as the kernel's eventfd_signal does.
    fn signal(mut kernel_side: &File, count: u64) {
        kernel_side.write_all(&count.to_ne_bytes()).expect("signal eventfd");
    }

    async fn next(watcher: &mut OomWatcher) -> OomOutcome {
        timeout(OOM_TIMEOUT, watcher.wait_oom()).await.expect("outcome in time").expect("wait")
    }

    #[tokio::test]
    async fn v1_notifications_while_the_cgroup_exists_are_each_an_oom() {
        let root = ScratchDir::new("v1-live");
        let (mut watcher, kernel) = fake_v1_watcher(root.path().to_path_buf());
        signal(&kernel, 2);
        assert_eq!(next(&mut watcher).await, OomOutcome::Oom);
        assert_eq!(next(&mut watcher).await, OomOutcome::Oom);
        assert!(timeout(QUIET, watcher.wait_oom()).await.is_err(), "two notifications are two OOMs");
        signal(&kernel, 1);
        assert_eq!(next(&mut watcher).await, OomOutcome::Oom);
    }

    #[tokio::test]
    async fn v1_notifications_read_after_removal_count_one_as_the_removal_notice() {
        let root = ScratchDir::new("v1-removed");
        let (mut watcher, kernel) = fake_v1_watcher(root.path().join("removed"));
        signal(&kernel, 3);
        assert_eq!(next(&mut watcher).await, OomOutcome::Oom);
        assert_eq!(next(&mut watcher).await, OomOutcome::Oom);
        assert_eq!(next(&mut watcher).await, OomOutcome::CgroupGone);
        assert_eq!(next(&mut watcher).await, OomOutcome::CgroupGone, "gone stays gone");
    }

    #[tokio::test]
    async fn v1_lone_notification_after_removal_is_an_oom_only_if_the_removal_notice_follows() {
        let root = ScratchDir::new("v1-lone");
        let (mut removal_only, kernel) = fake_v1_watcher(root.path().join("removed"));
        signal(&kernel, 1);
        assert_eq!(next(&mut removal_only).await, OomOutcome::CgroupGone);

        let (mut late_oom, kernel) = fake_v1_watcher(root.path().join("removed"));
        signal(&kernel, 1);
        let (outcomes, ()) = tokio::join!(
            async {
                let first = next(&mut late_oom).await;
                (first, next(&mut late_oom).await)
            },
            async {
                // The removal notice, arriving while the watcher waits for it.
                tokio::time::sleep(REMOVAL_NOTICE_GRACE / 4).await;
                signal(&kernel, 1);
            }
        );
        assert_eq!(outcomes, (OomOutcome::Oom, OomOutcome::CgroupGone));
    }

    /// A real v1 memory cgroup at the memory hierarchy's root, removed when dropped.
    struct TestMemoryCgroup {
        dir: PathBuf,
    }

    impl TestMemoryCgroup {
        /// Creates it with a 32 MiB limit, or says why this host cannot.
        fn create(test: &str) -> Result<TestMemoryCgroup, String> {
            if !nix::unistd::geteuid().is_root() {
                return Err("creating a memory cgroup needs root".into());
            }
            let mountinfo = std::fs::read_to_string(super::super::paths::MOUNTINFO)
                .map_err(|error| format!("cannot read mountinfo: {error}"))?;
            // Resolve a membership at the root of the memory hierarchy to find where it is mounted.
            let root = ContainerCgroups::resolve(Path::new("/proc/self/cgroup"), "1:memory:/\n", &mountinfo)
                .ok()
                .and_then(|cgroups| cgroups.v1_dir("memory").map(Path::to_path_buf))
                .ok_or("no cgroup v1 memory hierarchy is mounted (a pure cgroup v2 host?)")?;
            let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            let dir = root.join(format!("shim-{test}-{}-{nanos}", std::process::id()));
            std::fs::create_dir(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
            let cgroup = TestMemoryCgroup { dir };
            let limit = (32u64 << 20).to_string();
            std::fs::write(cgroup.dir.join("memory.limit_in_bytes"), &limit).expect("set memory.limit_in_bytes");
            // Without this a host with swap would swap instead of OOM-killing.
            let memsw = cgroup.dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                std::fs::write(&memsw, &limit).expect("set memory.memsw.limit_in_bytes");
            }
            Ok(cgroup)
        }

        /// rmdir, retried while the killed task's exit is still being torn down (EBUSY).
        fn remove(&self) -> std::io::Result<()> {
            let mut attempts = 0;
            loop {
                match std::fs::remove_dir(&self.dir) {
                    Ok(()) => return Ok(()),
                    Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
                    Err(error) if attempts < 50 && error.raw_os_error() == Some(Errno::EBUSY as i32) => {
                        attempts += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(error) => return Err(error),
                }
            }
        }
    }

    impl Drop for TestMemoryCgroup {
        fn drop(&mut self) {
            if let Err(error) = self.remove() {
                eprintln!("could not remove test cgroup {}: {error}", self.dir.display());
            }
        }
    }

    #[tokio::test]
    #[ignore = "needs root and the cgroup v1 memory controller (tests/run runs it where the host has them)"]
    async fn v1_watcher_reports_a_real_oom_kill_and_then_the_cgroup_removal() {
        let cgroup =
            TestMemoryCgroup::create("oom-v1").unwrap_or_else(|reason| panic!("no v1 memory cgroup: {reason}"));
        let name = cgroup.dir.file_name().map(|name| format!("/{}", name.to_string_lossy())).expect("name");
        let cgroups = ContainerCgroups::v1(name, [("memory".to_string(), cgroup.dir.clone())]);
        let mut watcher = OomWatcher::new(&cgroups, &SharedInotify::new()).expect("register for OOM notifications");
        assert_eq!(oom_kill_count(&cgroups).expect("count before"), 0);

        // The child joins the cgroup, then becomes `tail`, which buffers /dev/zero (no newline
        // ever) until the 32 MiB limit gets it OOM-killed.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", r#"echo $$ > "$1/cgroup.procs" && exec tail /dev/zero"#, "sh"])
            .arg(&cgroup.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sh");

        let outcome = timeout(OOM_TIMEOUT, watcher.wait_oom()).await.expect("OOM within a minute").expect("wait");
        assert_eq!(outcome, OomOutcome::Oom);
        let status = timeout(OOM_TIMEOUT, child.wait()).await.expect("child exits").expect("wait child");
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "the OOM killer's signal");
        assert!(oom_kill_count(&cgroups).expect("count after") >= 1);

        let metrics = read_metrics(&cgroups).expect("metrics of the real cgroup");
        assert_eq!(metrics.type_url, V1_METRICS_TYPE_URL);
        let metrics = <containerd_shim_protos::cgroups::metrics::Metrics as containerd_shim_protos::protobuf::Message>::parse_from_bytes(&metrics.value)
            .expect("decode");
        assert_eq!(metrics.memory.usage.limit, 32 << 20);
        // Whether failcnt moves depends on which counter (memory or memsw) refused the charge
        // and on the kernel; the peak reaching the limit does not.
        assert!(
            metrics.memory.usage.max >= (32 << 20) * 9 / 10,
            "peak usage {} is not near the limit",
            metrics.memory.usage.max
        );
        assert!(metrics.memory_oom_control.oom_kill >= 1);

        cgroup.remove().expect("rmdir the test cgroup");
        // The kill may have raised more than one notification; what must follow is the removal.
        let gone = timeout(OOM_TIMEOUT, async {
            loop {
                match watcher.wait_oom().await {
                    Ok(OomOutcome::Oom) => continue,
                    other => return other,
                }
            }
        })
        .await
        .expect("removal noticed in time")
        .expect("wait");
        assert_eq!(gone, OomOutcome::CgroupGone);
    }
}
