//! One inotify instance for the whole daemon, shared by the cgroup v2 OOM watches of every
//! task: a watch descriptor per watched file, and one reader task that hands each event to the
//! watch it belongs to.
//!
//! Each inotify instance counts against its owner's `fs.inotify.max_user_instances` (128 by
//! default), which the daemon shares with every other root process of the node (PID 1, udev,
//! journald); an instance per task would run out after a hundred containers and starve them too
//! (inotify(7), "/proc interfaces"). Watches count against `max_user_watches`, which is far
//! larger, and a watch that cannot be added fails only that task's OOM watch.
//!
//! Watching is blocking (path lookups in cgroupfs): call [`SharedInotify::watch`] from the
//! blocking pool. The instance and its reader are made on the first watch, so a host that never
//! watches (cgroup v1) has none.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::CgroupError;

/// How long the reader pauses after a failed read before it reads again.
const READ_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The daemon's inotify instance. Cheap to clone: clones share the instance.
#[derive(Clone, Default)]
pub struct SharedInotify {
    hub: Arc<Hub>,
}

#[derive(Default)]
struct Hub {
    /// Held while a watch is added or removed, so that a watch descriptor the kernel shares
    /// between two watches of one directory is never removed under the one being added; the
    /// reader takes it only to hand out the events it read.
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    /// Made on the first watch.
    instance: Option<Arc<AsyncFd<InotifyFd>>>,
    /// Who listens on each watch descriptor. The kernel gives one descriptor per inode and
    /// instance, so sibling cgroups share the watch on their parent directory.
    listeners: HashMap<WatchDescriptor, Vec<Listener>>,
    /// Tells listeners apart.
    next_listener: u64,
}

/// One watch's interest in a watch descriptor.
struct Listener {
    id: u64,
    interest: Interest,
    signal: Arc<WatchSignal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Interest {
    /// Modifications of the watched file.
    Modified,
    /// The removal of the subdirectory of this name.
    Removed { name: OsString },
}

/// What the reader tells one watch.
#[derive(Default)]
struct WatchSignal {
    /// Changes not yet taken by [`FileWatch::changes`].
    changes: AtomicU64,
    /// The file or its directory is gone: nothing more will come.
    removed: AtomicBool,
    woken: Notify,
}

impl WatchSignal {
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.woken.notify_one();
    }

    fn removed(&self) {
        self.removed.store(true, Ordering::SeqCst);
        self.changed();
    }
}

/// The inotify fd, for tokio's reactor (nix's `Inotify` offers only `AsFd`).
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// What a [`FileWatch`] saw since it was last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// Notifications of a modification (or of lost events, which may have been some).
    pub count: u64,
    /// The file or its directory was removed; no more notifications will come.
    pub removed: bool,
}

/// One file watched through the [`SharedInotify`]: its modifications, and the removal of the
/// directory holding it. Dropping it removes its watch descriptors (`inotify_rm_watch`) unless
/// another watch shares them.
pub struct FileWatch {
    hub: Arc<Hub>,
    id: u64,
    descriptors: Vec<WatchDescriptor>,
    signal: Arc<WatchSignal>,
    file: PathBuf,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("FileWatch").field("file", &self.file).field("descriptors", &self.descriptors).finish()
    }
}

fn watch_error(action: &'static str, path: &Path, errno: Errno) -> CgroupError {
    CgroupError::OomNotification { action, path: path.to_path_buf(), source: errno.into() }
}

impl SharedInotify {
    /// A hub with no instance yet.
    pub fn new() -> SharedInotify {
        SharedInotify::default()
    }

    /// Watches `file` for modifications and its directory for removal (an `IN_DELETE` on the
    /// directory's parent naming it, which rmdir(2) always reports). Blocking; must run inside
    /// a tokio runtime or on its blocking pool (the first watch starts the reader there). An
    /// error (e.g. `ENOSPC` once `max_user_watches` is reached) concerns this watch only.
    pub fn watch(&self, file: &Path) -> Result<FileWatch, CgroupError> {
        let dir = file.parent().unwrap_or(file);
        let mut state = self.lock();
        let instance = match &state.instance {
            Some(instance) => Arc::clone(instance),
            None => {
                let instance = start_instance(&self.hub, dir)?;
                state.instance = Some(Arc::clone(&instance));
                instance
            }
        };
        let inotify = &instance.get_ref().0;
        let signal = Arc::new(WatchSignal::default());
        let id = state.next_listener;
        state.next_listener += 1;
        let mut watch =
            FileWatch { hub: Arc::clone(&self.hub), id, descriptors: Vec::new(), signal, file: file.to_path_buf() };

        let file_descriptor = inotify
            .add_watch(file, AddWatchFlags::IN_MODIFY)
            .map_err(|errno| watch_error("watching memory.events", dir, errno))?;
        state.listen(file_descriptor, id, Interest::Modified, &watch.signal);
        watch.descriptors.push(file_descriptor);

        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
            // Every watch of a parent asks for the same events, so re-adding one that exists
            // (which replaces its mask) changes nothing for the others.
            match inotify.add_watch(parent, AddWatchFlags::IN_DELETE | AddWatchFlags::IN_ONLYDIR) {
                Ok(parent_descriptor) => {
                    state.listen(parent_descriptor, id, Interest::Removed { name: name.to_os_string() }, &watch.signal);
                    watch.descriptors.push(parent_descriptor);
                }
                Err(errno) => {
                    state.forget(inotify, id, &watch.descriptors);
                    watch.descriptors.clear();
                    return Err(watch_error("watching the parent cgroup for removals", dir, errno));
                }
            }
        }
        Ok(watch)
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.hub.lock()
    }

    /// The instance's fd, once made; for tests that look at it in `/proc/self/fdinfo`.
    #[cfg(test)]
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.lock().instance.as_ref().map(|instance| instance.get_ref().as_raw_fd())
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves the map consistent (every change to it is one
        // call), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HubState {
    fn listen(&mut self, descriptor: WatchDescriptor, id: u64, interest: Interest, signal: &Arc<WatchSignal>) {
        self.listeners.entry(descriptor).or_default().push(Listener { id, interest, signal: Arc::clone(signal) });
    }

    /// Drops listener `id` from `descriptors`, removing each descriptor nobody listens on any
    /// more. One the kernel already removed (`IN_IGNORED` not yet read) is `EINVAL`: fine.
    fn forget(&mut self, inotify: &Inotify, id: u64, descriptors: &[WatchDescriptor]) {
        for descriptor in descriptors {
            let Some(listeners) = self.listeners.get_mut(descriptor) else { continue };
            listeners.retain(|listener| listener.id != id);
            if listeners.is_empty() {
                self.listeners.remove(descriptor);
                if let Err(errno) = inotify.rm_watch(*descriptor) {
                    if errno != Errno::EINVAL {
                        tracing::debug!("removing inotify watch {descriptor:?}: {errno}");
                    }
                }
            }
        }
    }

    /// Hands one event to whoever listens on its descriptor.
    fn dispatch(&mut self, event: &InotifyEvent) {
        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Events were lost: every watch re-reads what it watches.
            for listener in self.listeners.values().flatten() {
                listener.signal.changed();
            }
            return;
        }
        if event.mask.contains(AddWatchFlags::IN_IGNORED) {
            // The kernel removed the watch: the file (or directory) is gone, or was unmounted.
            if let Some(listeners) = self.listeners.remove(&event.wd) {
                for listener in listeners {
                    listener.signal.removed();
                }
            }
            return;
        }
        let Some(listeners) = self.listeners.get(&event.wd) else { return };
        for listener in listeners {
            match &listener.interest {
                Interest::Modified if event.mask.contains(AddWatchFlags::IN_MODIFY) => listener.signal.changed(),
                Interest::Removed { name }
                    if event.mask.contains(AddWatchFlags::IN_DELETE) && event.name.as_ref() == Some(name) =>
                {
                    listener.signal.removed()
                }
                _ => {}
            }
        }
    }
}

/// Makes the inotify instance and starts its reader on the current runtime.
fn start_instance(hub: &Arc<Hub>, dir: &Path) -> Result<Arc<AsyncFd<InotifyFd>>, CgroupError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|error| CgroupError::OomNotification {
        action: "starting the inotify reader",
        path: dir.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|errno| watch_error("creating the daemon's inotify instance", dir, errno))?;
    let _entered = runtime.enter();
    // SAFETY: `InotifyFd` owns its fd (nix's `Inotify` holds an `OwnedFd`) and never closes or
    // replaces it, so the fd stays open and the same for as long as the `AsyncFd` owns it.
    let registered = unsafe { AsyncFd::register(InotifyFd(inotify)) };
    let instance = registered.map(Arc::new).map_err(|error| CgroupError::OomNotification {
        action: "registering the inotify instance with tokio",
        path: dir.to_path_buf(),
        source: error.into_parts().1,
    })?;
    runtime.spawn(read_events(Arc::downgrade(hub), Arc::clone(&instance)));
    Ok(instance)
}

/// Reads the instance's events and hands them out, until the hub is gone.
async fn read_events(hub: Weak<Hub>, instance: Arc<AsyncFd<InotifyFd>>) {
    loop {
        let read = match instance.readable().await {
            Ok(mut guard) => match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(read) => read,
                // Readiness was stale; try_io cleared it.
                Err(_would_block) => continue,
            },
            Err(error) => Err(error),
        };
        let Some(hub) = hub.upgrade() else { return };
        match read {
            Ok(events) => {
                let mut state = hub.lock();
                for event in &events {
                    state.dispatch(event);
                }
            }
            Err(error) => {
                tracing::error!("reading the daemon's inotify events: {error}; retrying");
                drop(hub);
                tokio::time::sleep(READ_RETRY_PAUSE).await;
            }
        }
    }
}

impl FileWatch {
    /// The watched file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Waits until something happened to the file, then says what. Cancel-safe: what a
    /// cancelled call did not return, the next one does.
    pub async fn changes(&self) -> Changes {
        loop {
            let woken = self.signal.woken.notified();
            if let Some(changes) = self.take() {
                return changes;
            }
            woken.await;
        }
    }

    /// What happened since the last call, if anything, without waiting.
    pub fn take(&self) -> Option<Changes> {
        let count = self.signal.changes.swap(0, Ordering::SeqCst);
        let removed = self.signal.removed.load(Ordering::SeqCst);
        (count > 0 || removed).then_some(Changes { count, removed })
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        if self.descriptors.is_empty() {
            return;
        }
        let mut state = self.hub.lock();
        // inotify_rm_watch does no I/O: a quick syscall even from async code.
        if let Some(instance) = state.instance.clone() {
            state.forget(&instance.get_ref().0, self.id, &self.descriptors);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use tokio::time::timeout;

    use super::*;
    use crate::cgroup::test_support::ScratchDir;

    const IN_TIME: Duration = Duration::from_secs(20);
    const QUIET: Duration = Duration::from_millis(300);

    /// The `inotify wd:` lines of fd `fd`'s fdinfo: the instance's watches.
    pub(crate) fn watch_count(fd: RawFd) -> usize {
        let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).expect("read fdinfo");
        fdinfo.lines().filter(|line| line.starts_with("inotify wd:")).count()
    }

    #[tokio::test]
    async fn removing_a_watch_removes_its_descriptor_but_keeps_a_shared_parent() {
        let root = ScratchDir::new("inotify-remove");
        root.write("a/memory.events", "oom_kill 0\n");
        root.write("b/memory.events", "oom_kill 0\n");
        let inotify = SharedInotify::new();
        let a = inotify.watch(&root.path().join("a/memory.events")).expect("watch a");
        let b = inotify.watch(&root.path().join("b/memory.events")).expect("watch b");
        let fd = inotify.raw_fd().expect("instance made");
        // Two files and their one shared parent.
        assert_eq!(watch_count(fd), 3);
        drop(a);
        assert_eq!(watch_count(fd), 2, "a's file watch is gone, the parent b needs stays");

        root.write("b/memory.events", "oom_kill 1\n");
        let changes = timeout(IN_TIME, b.changes()).await.expect("b still hears its file");
        assert!(changes.count >= 1 && !changes.removed);
        drop(b);
        assert_eq!(watch_count(fd), 0);
    }

    #[tokio::test]
    async fn removal_of_the_file_or_its_directory_is_reported() {
        let root = ScratchDir::new("inotify-removed");
        root.write("file-removed/memory.events", "oom_kill 0\n");
        root.write("dir-removed/memory.events", "oom_kill 0\n");
        let inotify = SharedInotify::new();
        let file_removed = inotify.watch(&root.path().join("file-removed/memory.events")).expect("watch");
        let dir_removed = inotify.watch(&root.path().join("dir-removed/memory.events")).expect("watch");

        // The file's own watch ends with IN_IGNORED.
        std::fs::remove_file(root.path().join("file-removed/memory.events")).expect("rm");
        assert!(timeout(IN_TIME, file_removed.changes()).await.expect("in time").removed);
        assert!(timeout(QUIET, dir_removed.changes()).await.is_err(), "the sibling heard nothing");

        // IN_DELETE on the parent names the removed directory.
        std::fs::remove_file(root.path().join("dir-removed/memory.events")).expect("rm");
        std::fs::remove_dir(root.path().join("dir-removed")).expect("rmdir");
        assert!(timeout(IN_TIME, dir_removed.changes()).await.expect("in time").removed);
    }

    #[tokio::test]
    async fn a_watch_of_a_missing_file_fails_alone() {
        let root = ScratchDir::new("inotify-missing");
        root.write("c/memory.events", "oom_kill 0\n");
        let inotify = SharedInotify::new();
        let missing = inotify.watch(&root.path().join("gone/memory.events"));
        assert!(matches!(missing, Err(CgroupError::OomNotification { action: "watching memory.events", .. })));
        let watch = inotify.watch(&root.path().join("c/memory.events")).expect("a later watch still works");
        root.write("c/memory.events", "oom_kill 1\n");
        assert!(timeout(IN_TIME, watch.changes()).await.expect("in time").count >= 1);
    }
}
