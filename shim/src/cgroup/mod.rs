//! A container's cgroups, read straight from cgroupfs: where they are ([`paths`]), what they
//! measure for containerd's `Stats` call ([`metrics`]), when the kernel OOM-kills inside them
//! ([`oom`], on cgroup v2 through the daemon's one inotify instance, [`inotify`]) and what is left in them once the container's init is gone ([`leftovers`]). Both cgroup v1 (legacy or hybrid: one hierarchy per controller) and the v2 unified
//! hierarchy are handled; which one applies is found from the process's membership and the
//! mount table, never from a hardcoded `/sys/fs/cgroup`.
//!
//! Reading cgroupfs is file I/O, so everything here except [`OomWatcher::wait_oom`] is a plain
//! synchronous function: async callers run it through [`crate::blocking::blocking`].

mod error;
mod files;
pub mod inotify;
pub mod leftovers;
pub mod metrics;
pub mod migration_primer;
pub mod oom;
pub mod paths;

pub use error::CgroupError;
pub use inotify::SharedInotify;
pub use leftovers::{kill_every_process, Leftovers};
pub use metrics::{read_metrics, V1_METRICS_TYPE_URL, V2_METRICS_TYPE_URL};
pub use migration_primer::MigrationPrimer;
pub use oom::{oom_kill_count, OomOutcome, OomWatcher};
pub use paths::{hierarchy_mount_points, host_hierarchy, in_unit, CgroupMode, ContainerCgroups};

#[cfg(test)]
pub(crate) mod test_support {
    //! A unique scratch directory per test, removed when dropped.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static NEXT: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system temp dir, named after the test, the process and a
    /// counter so that parallel tests and concurrent runs never share it.
    pub struct ScratchDir(PathBuf);

    impl ScratchDir {
        pub fn new(test: &str) -> ScratchDir {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            let unique =
                format!("shim-cgroup-{test}-{}-{}-{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let path = std::env::temp_dir().join(unique);
            std::fs::create_dir(&path).expect("create scratch dir");
            ScratchDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        /// Creates `dir/name` (and its parents) holding `contents`.
        pub fn write(&self, name: &str, contents: &str) {
            let path = self.0.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create parent dir");
            }
            std::fs::write(&path, contents).expect("write fake cgroup file");
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
