//! A container's cgroups, read straight from cgroupfs: where they are ([`paths`]), what they
//! measure for containerd's `Stats` call ([`metrics`]), when the kernel OOM-kills inside them
//! ([`oom`], on cgroup v2 through the daemon's one inotify instance, [`inotify`]) and what is left in them once the container's init is gone ([`leftovers`]). Both cgroup v1 (legacy or hybrid: one hierarchy per controller) and the v2 unified
//! hierarchy are handled; which one applies is found from the process's membership and the
//! mount table, never from a hardcoded `/sys/fs/cgroup`.
//!
//! Reading cgroupfs is file I/O, so everything here except [`OomWatcher::wait_oom`] is a plain
//! synchronous function: async callers run it through [`crate::blocking::blocking`].
//!
//! Why not cgroups-rs, which containerd-shim already compiles in (0.5.1). Its getters turn
//! every read error into zero (`memory_stat()` is `.unwrap_or(0)` field by field), so a removed
//! cgroup reads as an idle one, where Stats must answer NotFound; on v2 it exposes no
//! `memory.events`, reads an unlimited `memory.swap.max` as 0 and gives `cpu.stat` as raw text
//! (containerd-shim's own `collect_metrics_v2` lists these gaps and reads those files by hand);
//! it finds the v2 hierarchy at a hardcoded `/sys/fs/cgroup`. Its OOM watch
//! (`events::notify_on_oom_v2`) registers through `cgroup.event_control`, which cgroup v2 does
//! not have, and every registration starts an OS thread blocked on its eventfd that panics
//! (`send(..).unwrap()`) once the receiver is gone, which our release profile's
//! `panic = "abort"` would turn into the daemon's death; we need the v1 eventfd polled on the
//! runtime and v2 through one shared inotify instance. Using it ourselves would also tie us to
//! its zbus 5 and nix 0.25, the duplicates we want gone.
//!
//! Why not libcgroups (youki, 0.7): its `Stats` is runc's shape, one struct for v1 and v2, so
//! the mapping to containerd's two `Metrics` messages would stay; on v2 it keeps only the
//! `oom` count of `memory.events` (not `oom_kill`, `high`, `max`), fails the whole read when a
//! file such as `memory.swap.current` is absent (a kernel without swap accounting) instead of
//! leaving that field zero, and has no OOM notification at all. With only its v1 and v2
//! features it adds fifteen crates besides itself, among them nix 0.29 (a fourth nix), procfs
//! with flate2 and chrono, and pathrs.
//!
//! The read deadline is the caller's ([`crate::blocking::blocking_within`]), which no crate
//! would change.

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
