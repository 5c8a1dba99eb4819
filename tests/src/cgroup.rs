//! A process's cgroup files as the tests read them, on cgroup v1 (legacy or hybrid hosts: one
//! hierarchy per controller) and on the unified v2 hierarchy (every current distribution), so
//! that one test checks both.

use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use crate::Sandbox;

/// Where cgroup hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup version holds the controllers on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller, under `/sys/fs/cgroup/<controller>`.
    V1,
    /// The unified hierarchy alone, at `/sys/fs/cgroup`.
    V2,
}

/// The host's cgroup version.
pub fn version() -> Version {
    match statfs(ROOT) {
        Ok(stat) if stat.filesystem_type() == CGROUP2_SUPER_MAGIC => Version::V2,
        _ => Version::V1,
    }
}

/// The cgroup directory of process `pid` (a pid as the sandbox sees it) that holds
/// `v1_controller`'s files: on v2 the one unified directory, whatever the controller.
pub fn dir_of(sandbox: &Sandbox, pid: u32, v1_controller: &str) -> PathBuf {
    let cgroup_file = sandbox.host_path(format!("/proc/{pid}/cgroup"));
    let cgroups = std::fs::read_to_string(cgroup_file).expect("cgroup file");
    let entry = |wanted: &dyn Fn(&str) -> bool| {
        cgroups.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            wanted(controllers).then(|| path.to_string())
        })
    };
    if version() == Version::V2 {
        let path = entry(&|controllers| controllers.is_empty())
            .unwrap_or_else(|| panic!("no unified cgroup for {pid}: {cgroups}"));
        return Path::new(ROOT).join(path.trim_start_matches('/'));
    }
    let path = entry(&|controllers| controllers.split(',').any(|name| name == v1_controller))
        .unwrap_or_else(|| panic!("no {v1_controller} cgroup for {pid}: {cgroups}"));
    // Hierarchies are mounted at /sys/fs/cgroup/<controllers>; a plain name may be a symlink to
    // a joined one (`cpu` → `cpu,cpuacct`) on some hosts.
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut after = after.split_whitespace();
            let (fs_type, options) = (after.next()?, after.nth(1)?);
            let mount_point = before.split_whitespace().nth(4)?;
            (fs_type == "cgroup" && options.split(',').any(|option| option == v1_controller))
                .then(|| PathBuf::from(mount_point))
        })
        .next()
        .unwrap_or_else(|| panic!("{v1_controller} hierarchy not mounted"));
    mount.join(path.trim_start_matches('/'))
}

/// Reads file `name` of `dir`, trimmed.
pub fn read(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

/// The directories of cgroup `path` (from the cgroup root, e.g. a unit's `ControlGroup`) that
/// exist: in the unified hierarchy and in every v1 one.
pub fn existing_dirs(path: &str) -> Vec<PathBuf> {
    let relative = path.trim_start_matches('/');
    let mut roots = vec![PathBuf::from(ROOT)];
    if version() == Version::V1 {
        roots =
            std::fs::read_dir(ROOT).map(|entries| entries.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    }
    roots.into_iter().map(|root| root.join(relative)).filter(|dir| dir.is_dir()).collect()
}
