//! Where a container's cgroups are: from a process's membership (`/proc/<pid>/cgroup`,
//! proc(5)) and the mount table (`/proc/self/mountinfo`), the absolute directory of each v1
//! controller, or the one v2 directory.
//!
//! On a hybrid host (v1 controllers plus a controller-less v2 hierarchy at
//! `/sys/fs/cgroup/unified`) the cgroups are v1: that is where the controllers, and so the
//! metrics and OOM notifications, are. The parsers are pure functions of the two files' text.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::CgroupError;

/// The mount table of the calling process, where its cgroup hierarchies are mounted.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The host's cgroup hierarchy: the unified one alone when `/sys/fs/cgroup` is a cgroup2 mount,
/// one per controller otherwise. Blocking (one `statfs`).
pub fn host_hierarchy() -> unit_gen::CgroupHierarchy {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    match statfs("/sys/fs/cgroup") {
        Ok(stat) if stat.filesystem_type() == CGROUP2_SUPER_MAGIC => unit_gen::CgroupHierarchy::Unified,
        _ => unit_gen::CgroupHierarchy::Legacy,
    }
}

/// Which cgroup version the container's controllers live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup v1: one hierarchy per controller (legacy or hybrid hosts).
    V1,
    /// cgroup v2: the unified hierarchy with its controllers.
    V2,
}

/// The cgroup directories of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroups {
    /// The cgroup path as the kernel lists it in `/proc/<pid>/cgroup` (for messages).
    path: String,
    layout: Layout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// Controller name (`memory`, `cpuacct`, `name=systemd`, …) → absolute directory.
    V1(BTreeMap<String, PathBuf>),
    /// The absolute directory in the unified hierarchy.
    V2(PathBuf),
}

impl ContainerCgroups {
    /// The cgroups of process `pid`, resolved against this process's mount table. Call it while
    /// the process is alive (e.g. right after the task starts) and keep the result: the
    /// directories outlive the process until the cgroup is removed. Blocking (reads procfs).
    pub fn of_pid(pid: u32) -> Result<ContainerCgroups, CgroupError> {
        ContainerCgroups::of_pid_in(Path::new("/proc"), pid)
    }

    /// [`ContainerCgroups::of_pid`] with procfs mounted at `proc` (tests use a fake one): reads
    /// `<proc>/<pid>/cgroup` and `<proc>/self/mountinfo`.
    pub fn of_pid_in(proc: &Path, pid: u32) -> Result<ContainerCgroups, CgroupError> {
        let cgroup_file = proc.join(pid.to_string()).join("cgroup");
        let membership = match std::fs::read_to_string(&cgroup_file) {
            Ok(text) => text,
            // ESRCH: the process exited between the open and the read.
            Err(error) if error.kind() == ErrorKind::NotFound || error.raw_os_error() == Some(Errno::ESRCH as i32) => {
                return Err(CgroupError::ProcessNotFound { pid })
            }
            Err(source) => return Err(CgroupError::Read { path: cgroup_file, source }),
        };
        let mountinfo_file = proc.join("self").join("mountinfo");
        let mountinfo = std::fs::read_to_string(&mountinfo_file)
            .map_err(|source| CgroupError::Read { path: mountinfo_file, source })?;
        ContainerCgroups::resolve(&cgroup_file, &membership, &mountinfo)
    }

    /// Resolves a process's membership (the text of `cgroup_file`, `/proc/<pid>/cgroup`)
    /// against a mount table (the text of `/proc/self/mountinfo`). Pure.
    pub fn resolve(cgroup_file: &Path, membership: &str, mountinfo: &str) -> Result<ContainerCgroups, CgroupError> {
        let entries = parse_membership(cgroup_file, membership)?;
        let mounts = parse_mountinfo(Path::new(MOUNTINFO), mountinfo)?;

        let mut controllers = BTreeMap::new();
        let mut v1_path: Option<&str> = None;
        for entry in entries.iter().filter(|entry| entry.hierarchy_id != 0 && !entry.controllers.is_empty()) {
            // The hierarchy is mounted where a v1 mount's super options name all its
            // controllers (`cpu,cpuacct` are often co-mounted, and listed together).
            let dir = mounts
                .iter()
                .filter(|mount| mount.fs_type == "cgroup")
                .filter(|mount| entry.controllers.iter().all(|c| mount.super_options.contains(c)))
                .find_map(|mount| mount.dir_of(&entry.path));
            let Some(dir) = dir else { continue };
            for controller in &entry.controllers {
                controllers.insert(controller.clone(), dir.clone());
            }
            let is_real_controller = entry.controllers.iter().any(|c| !c.starts_with("name="));
            if is_real_controller && (v1_path.is_none() || entry.controllers.iter().any(|c| c == "memory")) {
                v1_path = Some(&entry.path);
            }
        }
        if let Some(path) = v1_path {
            return Ok(ContainerCgroups { path: path.to_string(), layout: Layout::V1(controllers) });
        }

        let unified = entries.iter().find(|entry| entry.hierarchy_id == 0 && entry.controllers.is_empty());
        if let Some(entry) = unified {
            let dir =
                mounts.iter().filter(|mount| mount.fs_type == "cgroup2").find_map(|mount| mount.dir_of(&entry.path));
            if let Some(dir) = dir {
                return Ok(ContainerCgroups { path: entry.path.clone(), layout: Layout::V2(dir) });
            }
        }
        Err(CgroupError::NoHierarchy { cgroup_file: cgroup_file.to_path_buf() })
    }

    /// v1 cgroups at known directories (controller name → absolute directory), for callers
    /// that already know them and for tests with fake cgroupfs trees.
    pub fn v1(path: impl Into<String>, controllers: impl IntoIterator<Item = (String, PathBuf)>) -> ContainerCgroups {
        ContainerCgroups { path: path.into(), layout: Layout::V1(controllers.into_iter().collect()) }
    }

    /// A v2 cgroup at a known directory.
    pub fn v2(path: impl Into<String>, dir: PathBuf) -> ContainerCgroups {
        ContainerCgroups { path: path.into(), layout: Layout::V2(dir) }
    }

    /// Whether the controllers are v1 (legacy or hybrid host) or v2.
    pub fn mode(&self) -> CgroupMode {
        match self.layout {
            Layout::V1(_) => CgroupMode::V1,
            Layout::V2(_) => CgroupMode::V2,
        }
    }

    /// The cgroup path as listed in `/proc/<pid>/cgroup`, e.g.
    /// `/system.slice/containerd-default-foo.service/container`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The directory of a v1 controller (`memory`, `cpuacct`, …); `None` on v2 or when that
    /// controller's hierarchy is not mounted.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        match &self.layout {
            Layout::V1(controllers) => controllers.get(controller).map(PathBuf::as_path),
            Layout::V2(_) => None,
        }
    }

    /// The v2 directory; `None` on v1.
    pub fn v2_dir(&self) -> Option<&Path> {
        match &self.layout {
            Layout::V1(_) => None,
            Layout::V2(dir) => Some(dir),
        }
    }

    /// A directory of the cgroup in one of its hierarchies (the v2 one, or any v1 one).
    pub fn any_dir(&self) -> Option<&Path> {
        match &self.layout {
            Layout::V1(controllers) => controllers.values().next().map(PathBuf::as_path),
            Layout::V2(dir) => Some(dir),
        }
    }

    /// The directory holding the memory controller's files: the v1 `memory` hierarchy's, or
    /// the v2 directory (whose `memory.*` files exist only if the controller is enabled).
    pub fn memory_dir(&self) -> Option<&Path> {
        match &self.layout {
            Layout::V1(controllers) => controllers.get("memory").map(PathBuf::as_path),
            Layout::V2(dir) => Some(dir),
        }
    }
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    /// 0 for the v2 hierarchy.
    hierarchy_id: u32,
    /// Empty for v2; `name=systemd` for a named v1 hierarchy.
    controllers: Vec<String>,
    /// Relative to the hierarchy's root (as seen from the reader's cgroup namespace).
    path: String,
}

/// Whether a process whose membership is `membership` (the text of `cgroup_file`,
/// `/proc/<pid>/cgroup`) lives in systemd unit `unit` or below it (runc puts the container in
/// `<unit>/container`), in any hierarchy.
pub fn in_unit(cgroup_file: &Path, membership: &str, unit: &str) -> Result<bool, CgroupError> {
    let entries = parse_membership(cgroup_file, membership)?;
    Ok(entries.iter().any(|entry| entry.path.split('/').any(|component| component == unit)))
}

fn parse_membership(file: &Path, text: &str) -> Result<Vec<Membership>, CgroupError> {
    let malformed =
        |line: &str, why: &str| CgroupError::Parse { path: file.to_path_buf(), reason: format!("line {line:?} {why}") };
    let mut entries = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(malformed(line, "is not `id:controllers:path`"));
        };
        let hierarchy_id = id.parse().map_err(|_| malformed(line, "has a hierarchy id that is not a number"))?;
        if !path.starts_with('/') {
            return Err(malformed(line, "has a cgroup path that is not absolute"));
        }
        let controllers =
            controllers.split(',').filter(|controller| !controller.is_empty()).map(str::to_string).collect();
        entries.push(Membership { hierarchy_id, controllers, path: path.to_string() });
    }
    Ok(entries)
}

/// A cgroup filesystem mount from mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The directory of the filesystem that is mounted (not `/` for a bind mount of a subtree
    /// or inside a cgroup namespace).
    root: PathBuf,
    mount_point: PathBuf,
    fs_type: String,
    /// For v1 these name the hierarchy's controllers, among flags like `rw`.
    super_options: Vec<String>,
}

impl Mount {
    /// Where `cgroup_path` (relative to the hierarchy root) is under this mount, if the mount
    /// shows that part of the hierarchy.
    fn dir_of(&self, cgroup_path: &str) -> Option<PathBuf> {
        let relative = Path::new(cgroup_path).strip_prefix(&self.root).ok()?;
        if relative.as_os_str().is_empty() {
            Some(self.mount_point.clone())
        } else {
            Some(self.mount_point.join(relative))
        }
    }
}

/// Mount points of the cgroup hierarchies (v1 and v2) that `mountinfo` shows mounted at their
/// root, in file order. A malformed mount table gives none.
pub fn hierarchy_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    match parse_mountinfo(Path::new("/proc/self/mountinfo"), mountinfo) {
        Ok(mounts) => {
            mounts.into_iter().filter(|mount| mount.root == Path::new("/")).map(|mount| mount.mount_point).collect()
        }
        Err(error) => {
            tracing::warn!("{error}");
            Vec::new()
        }
    }
}

/// The cgroup and cgroup2 mounts of a mountinfo file:
/// `id parent major:minor root mount-point options [optional…] - fstype source super-options`.
fn parse_mountinfo(file: &Path, text: &str) -> Result<Vec<Mount>, CgroupError> {
    let mut mounts = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let malformed =
            || CgroupError::Parse { path: file.to_path_buf(), reason: format!("line {line:?} is malformed") };
        let (before, after) = line.split_once(" - ").ok_or_else(malformed)?;
        let before: Vec<&str> = before.split(' ').collect();
        let after: Vec<&str> = after.split(' ').collect();
        if before.len() < 6 || after.len() < 3 {
            return Err(malformed());
        }
        let fs_type = after[0];
        if fs_type != "cgroup" && fs_type != "cgroup2" {
            continue;
        }
        mounts.push(Mount {
            root: PathBuf::from(unescape(before[3])),
            mount_point: PathBuf::from(unescape(before[4])),
            fs_type: fs_type.to_string(),
            super_options: after[2].split(',').map(str::to_string).collect(),
        });
    }
    Ok(mounts)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash, …).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::test_support::ScratchDir;

    const UNIT: &str = "containerd-default-killed\\x2d7.service";

    fn in_unit_of(membership: &str) -> bool {
        in_unit(Path::new("/proc/42/cgroup"), membership, UNIT).expect("a valid membership")
    }

    #[test]
    fn a_process_in_the_unit_or_below_it_is_in_the_unit() {
        let hybrid = "12:pids:/system.slice/containerd-default-killed\\x2d7.service/container\n\
                      1:name=systemd:/system.slice/containerd-default-killed\\x2d7.service\n0::/\n";
        assert!(in_unit_of(hybrid));
        let unified = "0::/kubepods.slice/kubepods-pod1.slice/containerd-default-killed\\x2d7.service/container\n";
        assert!(in_unit_of(unified));
    }

    #[test]
    fn a_process_elsewhere_or_in_a_unit_with_a_longer_name_is_not() {
        assert!(!in_unit_of("0::/system.slice/containerd-default-killed\\x2d77.service/container\n"));
        assert!(!in_unit_of("0::/user.slice/user-0.slice/session-1.scope\n"));
        assert!(!in_unit_of(""));
    }

    /// This machine's layout: v1 controllers (cpu and cpuacct mounted separately, a named
    /// systemd hierarchy) plus a controller-less v2 hierarchy at /sys/fs/cgroup/unified.
    const HYBRID_MOUNTINFO: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,size=4096k,nr_inodes=1024,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    const HYBRID_MEMBERSHIP: &str = "\
13:net_cls,net_prio:/
10:hugetlb:/system.slice/containerd-default-foo.service/container
9:name=systemd:/system.slice/containerd-default-foo.service/container
8:pids:/system.slice/containerd-default-foo.service/container
4:memory:/system.slice/containerd-default-foo.service/container
2:cpuacct:/system.slice/containerd-default-foo.service/container
1:cpu:/system.slice/containerd-default-foo.service/container
0::/system.slice/containerd-default-foo.service/container
";

    const CONTAINER: &str = "/system.slice/containerd-default-foo.service/container";

    fn proc_file() -> &'static Path {
        Path::new("/proc/42/cgroup")
    }

    #[test]
    fn hybrid_host_resolves_each_mounted_v1_controller_and_skips_unmounted_ones() {
        let cgroups = ContainerCgroups::resolve(proc_file(), HYBRID_MEMBERSHIP, HYBRID_MOUNTINFO).expect("resolve");
        assert_eq!(cgroups.mode(), CgroupMode::V1);
        assert_eq!(cgroups.path(), CONTAINER);
        let dir = |controller| cgroups.v1_dir(controller).map(Path::to_path_buf);
        let expected = |mount: &str| Some(PathBuf::from(format!("/sys/fs/cgroup/{mount}{CONTAINER}")));
        assert_eq!(dir("memory"), expected("memory"));
        assert_eq!(dir("cpu"), expected("cpu"));
        assert_eq!(dir("cpuacct"), expected("cpuacct"));
        assert_eq!(dir("pids"), expected("pids"));
        assert_eq!(dir("name=systemd"), expected("systemd"));
        // Listed in the membership but mounted nowhere.
        assert_eq!(dir("hugetlb"), None);
        assert_eq!(dir("net_cls"), None);
        assert_eq!(cgroups.memory_dir(), expected("memory").as_deref());
        assert_eq!(cgroups.v2_dir(), None);
    }

    #[test]
    fn comounted_v1_controllers_share_one_directory() {
        let mountinfo = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
";
        let membership = "4:memory:/a\n2:cpu,cpuacct:/a\n0::/a\n";
        let cgroups = ContainerCgroups::resolve(proc_file(), membership, mountinfo).expect("resolve");
        let expected = Path::new("/sys/fs/cgroup/cpu,cpuacct/a");
        assert_eq!(cgroups.v1_dir("cpu"), Some(expected));
        assert_eq!(cgroups.v1_dir("cpuacct"), Some(expected));
    }

    #[test]
    fn unified_host_resolves_the_one_v2_directory() {
        let mountinfo = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        let membership = format!("0::{CONTAINER}\n");
        let cgroups = ContainerCgroups::resolve(proc_file(), &membership, mountinfo).expect("resolve");
        assert_eq!(cgroups.mode(), CgroupMode::V2);
        let expected = PathBuf::from(format!("/sys/fs/cgroup{CONTAINER}"));
        assert_eq!(cgroups.v2_dir(), Some(expected.as_path()));
        assert_eq!(cgroups.memory_dir(), Some(expected.as_path()));
        assert_eq!(cgroups.v1_dir("memory"), None);
    }

    #[test]
    fn mount_roots_other_than_slash_are_stripped_from_the_cgroup_path() {
        // A cgroup namespace or bind mount showing only /system.slice of the hierarchy.
        let mountinfo = "30 23 0:26 /system.slice /mnt/cg\\040v2 rw - cgroup2 cgroup2 rw\n";
        let membership = "0::/system.slice/foo.service\n";
        let cgroups = ContainerCgroups::resolve(proc_file(), membership, mountinfo).expect("resolve");
        assert_eq!(cgroups.v2_dir(), Some(Path::new("/mnt/cg v2/foo.service")));
    }

    #[test]
    fn a_cgroup_at_the_hierarchy_root_is_the_mount_point_itself() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let cgroups = ContainerCgroups::resolve(proc_file(), "0::/\n", mountinfo).expect("resolve");
        assert_eq!(cgroups.v2_dir(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn only_a_named_v1_hierarchy_and_v2_means_v2() {
        // systemd's "hybrid" with every controller on v2: only name=systemd stays on v1.
        let mountinfo = "\
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let cgroups = ContainerCgroups::resolve(proc_file(), "1:name=systemd:/a\n0::/a\n", mountinfo).expect("resolve");
        assert_eq!(cgroups.mode(), CgroupMode::V2);
        assert_eq!(cgroups.v2_dir(), Some(Path::new("/sys/fs/cgroup/unified/a")));
    }

    #[test]
    fn bad_inputs_are_reported_with_the_file_they_came_from() {
        struct Case {
            name: &'static str,
            membership: &'static str,
            mountinfo: &'static str,
            expect: fn(&CgroupError) -> bool,
        }
        let cases = [
            Case {
                name: "membership line without path",
                membership: "4:memory\n",
                mountinfo: HYBRID_MOUNTINFO,
                expect: |e| matches!(e, CgroupError::Parse { path, .. } if path == Path::new("/proc/42/cgroup")),
            },
            Case {
                name: "hierarchy id not a number",
                membership: "x:memory:/a\n",
                mountinfo: HYBRID_MOUNTINFO,
                expect: |e| matches!(e, CgroupError::Parse { path, .. } if path == Path::new("/proc/42/cgroup")),
            },
            Case {
                name: "relative cgroup path",
                membership: "0::a\n",
                mountinfo: HYBRID_MOUNTINFO,
                expect: |e| matches!(e, CgroupError::Parse { path, .. } if path == Path::new("/proc/42/cgroup")),
            },
            Case {
                name: "mountinfo line without separator",
                membership: "0::/a\n",
                mountinfo: "30 23 0:26 / /sys/fs/cgroup rw cgroup2 cgroup2 rw\n",
                expect: |e| matches!(e, CgroupError::Parse { path, .. } if path == Path::new(MOUNTINFO)),
            },
            Case {
                name: "no hierarchy mounted",
                membership: "4:memory:/a\n0::/a\n",
                mountinfo: "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n",
                expect: |e| matches!(e, CgroupError::NoHierarchy { cgroup_file } if cgroup_file == Path::new("/proc/42/cgroup")),
            },
            Case {
                name: "mount shows another subtree",
                membership: "0::/other/a\n",
                mountinfo: "30 23 0:26 /system.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                expect: |e| matches!(e, CgroupError::NoHierarchy { .. }),
            },
        ];
        for case in cases {
            match ContainerCgroups::resolve(proc_file(), case.membership, case.mountinfo) {
                Err(error) => assert!((case.expect)(&error), "case {}: unexpected error {error:?}", case.name),
                Ok(cgroups) => panic!("case {}: expected an error, resolved {cgroups:?}", case.name),
            }
        }
    }

    #[test]
    fn of_pid_in_reads_the_membership_and_mountinfo_under_the_given_proc() {
        let proc = ScratchDir::new("fake-proc");
        proc.write("77/cgroup", HYBRID_MEMBERSHIP);
        proc.write("self/mountinfo", HYBRID_MOUNTINFO);
        let cgroups = ContainerCgroups::of_pid_in(proc.path(), 77).expect("resolve");
        assert_eq!(
            cgroups.v1_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/system.slice/containerd-default-foo.service/container"))
        );

        match ContainerCgroups::of_pid_in(proc.path(), 78) {
            Err(CgroupError::ProcessNotFound { pid: 78 }) => {}
            other => panic!("expected ProcessNotFound for pid 78, got {other:?}"),
        }
    }

    #[test]
    fn of_pid_finds_existing_directories_for_this_test_process() {
        let cgroups = ContainerCgroups::of_pid(std::process::id()).expect("resolve our own cgroups");
        match cgroups.mode() {
            CgroupMode::V1 => {
                let memory = cgroups.memory_dir().expect("hybrid hosts here mount the memory controller");
                assert!(memory.is_dir(), "{} is not a directory", memory.display());
            }
            CgroupMode::V2 => {
                let dir = cgroups.v2_dir().expect("v2 dir");
                assert!(dir.is_dir(), "{} is not a directory", dir.display());
            }
        }
    }
}
