//! What can go wrong finding, reading or watching a container's cgroups.

use std::path::PathBuf;

/// An error from the cgroup module. Every variant names the process, file or directory it
/// concerns.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The process has exited (its `/proc/<pid>` entry is gone), so its cgroups are unknown.
    #[error("process {pid} not found while looking up its cgroups")]
    ProcessNotFound {
        /// The process id asked about.
        pid: u32,
    },
    /// The process's cgroups are in no mounted hierarchy (v1 controllers nor v2).
    #[error("no mounted cgroup hierarchy holds the cgroups listed in {cgroup_file}")]
    NoHierarchy {
        /// The `/proc/<pid>/cgroup` file whose entries matched no mount.
        cgroup_file: PathBuf,
    },
    /// The container's cgroup directory does not exist (it was removed, or never created).
    #[error("cgroup {path} does not exist")]
    CgroupNotFound {
        /// The missing directory.
        path: PathBuf,
    },
    /// A controller the operation needs is not mounted (v1) or not enabled (v2) for the cgroup.
    #[error("the {controller} controller is not available for cgroup {cgroup}")]
    ControllerUnavailable {
        /// The controller, e.g. `memory`.
        controller: &'static str,
        /// The container's cgroup path, as in `/proc/<pid>/cgroup`.
        cgroup: String,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents are not in the format the kernel documents.
    #[error("parsing {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, quoting the offending text.
        reason: String,
    },
    /// Setting up or reading an OOM notification failed.
    #[error("{action} for cgroup {path}: {source}")]
    OomNotification {
        /// What was being done, e.g. `registering memory.oom_control with cgroup.event_control`.
        action: &'static str,
        /// The cgroup directory being watched.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding the metrics message failed.
    #[error("encoding {type_url}: {source}")]
    Encode {
        /// The message's type URL.
        type_url: &'static str,
        /// The protobuf error.
        #[source]
        source: containerd_shim_protos::protobuf::Error,
    },
}

impl CgroupError {
    /// Whether the process or its cgroup no longer exists: the task is gone, which callers
    /// report as NOT_FOUND rather than as an internal failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CgroupError::ProcessNotFound { .. } | CgroupError::CgroupNotFound { .. })
    }
}
