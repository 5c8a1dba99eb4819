//! Puts the container's cgroup inside the unit's: `<unit cgroup>/container`. The unit is
//! `Delegate=yes`, so systemd leaves that subtree to runc. The path is absolute because a relative
//! cgroupsPath would land in `/container` of every controller systemd does not realize for the
//! unit (freezer, cpuset, … on hybrid hierarchies), shared by all containers.
//!
//! The unit's own processes (this helper, then `runc create`) sit beside it, in
//! `<unit cgroup>/supervisor`: on the unified hierarchy a cgroup that has processes cannot enable
//! controllers for its children, and runc could not give the container its limits. systemd 254
//! and later start the helper there (`DelegateSubgroup=`); on older ones the helper moves itself.
//! On v1 the helper widens the unit's device rules to "a" first (see [`allow_every_device`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use serde_json::Value;

use crate::helper::config_patch::{object_entry, patch_config};
use crate::protocol::SupervisorCgroup;
use crate::Error;

/// Where the cgroup hierarchies are mounted.
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// Name of the container's cgroup below its unit's.
pub const CONTAINER_CGROUP_LEAF: &str = "container";

/// The cgroup systemd placed this process in, from `/proc/self/cgroup` contents: the
/// `name=systemd` hierarchy on v1 and hybrid systems, the unified (`0::`) one on pure v2.
pub fn unit_cgroup_from_proc(proc_cgroup: &str) -> Option<String> {
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if controllers == "name=systemd" {
            return Some(path.to_string());
        }
        if controllers.is_empty() {
            unified = Some(path.to_string());
        }
    }
    unified
}

/// The unit's cgroup, given the cgroup this process is in and where systemd started it.
/// Pure; `None` when `own` is not in the subgroup systemd was asked to start it in.
pub fn unit_cgroup_of(own: &str, supervisor: &SupervisorCgroup) -> Option<String> {
    let own = own.trim_end_matches('/');
    match supervisor {
        SupervisorCgroup::StartedIn { name } => {
            own.strip_suffix(name.as_str())?.strip_suffix('/').filter(|unit| !unit.is_empty()).map(str::to_string)
        }
        SupervisorCgroup::MoveTo { .. } => Some(own.to_string()),
    }
}

/// Leaves the unit's cgroup for its supervisor subgroup where the unified hierarchy requires it
/// (see the module doc), then rewrites `linux.cgroupsPath` in the bundle's config.json to
/// `<unit cgroup>/container`, keeping every other field as containerd wrote it.
pub fn place_container_cgroup(bundle: &Path, supervisor: &SupervisorCgroup) -> Result<String, Error> {
    let proc_cgroup =
        std::fs::read_to_string("/proc/self/cgroup").map_err(|source| Error::OwnCgroupUnreadable { source })?;
    let own = unit_cgroup_from_proc(&proc_cgroup).ok_or(Error::NoUnitCgroup)?;
    let unit_cgroup = unit_cgroup_of(&own, supervisor)
        .ok_or_else(|| Error::NotInSupervisorCgroup { cgroup: own.clone(), supervisor: supervisor.clone() })?;
    let unit_dir = Path::new(CGROUP_MOUNT).join(unit_cgroup.trim_start_matches('/'));
    if is_unified_hierarchy()? {
        if let SupervisorCgroup::MoveTo { name } = supervisor {
            enter_cgroup(&unit_dir.join(name))?;
        }
    } else {
        allow_every_device(&unit_cgroup);
    }
    let container_cgroup = format!("{}/{CONTAINER_CGROUP_LEAF}", unit_cgroup.trim_end_matches('/'));

    let config_path = bundle.join("config.json");
    patch_config(bundle, |root| {
        let linux = object_entry(root, "linux", &config_path)?;
        linux.insert("cgroupsPath".into(), Value::String(container_cgroup.clone()));
        Ok(())
    })?;
    Ok(container_cgroup)
}

/// Whether the host uses the unified hierarchy alone (pure cgroup v2), not v1 or hybrid.
fn is_unified_hierarchy() -> Result<bool, Error> {
    let stat = statfs(CGROUP_MOUNT).map_err(|errno| Error::Cgroup {
        path: PathBuf::from(CGROUP_MOUNT),
        action: "reading the filesystem type of",
        source: errno.into(),
    })?;
    Ok(stat.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// On v1, lets the unit's devices cgroup allow every device outright ("a"), where systemd could
/// only allow every character and every block device (the same devices, but the kernel lets a
/// child cgroup write "a", as runc does for a privileged container, only below an "a"). Best
/// effort: where it fails, a plain container still runs, and a privileged one fails in runc with
/// the kernel's refusal.
fn allow_every_device(unit_cgroup: &str) {
    let allow = Path::new(CGROUP_MOUNT).join("devices").join(unit_cgroup.trim_start_matches('/')).join("devices.allow");
    match std::fs::write(&allow, "a") {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => tracing::warn!("allowing every device in {}: {error}", allow.display()),
    }
}

/// Moves this process into the v2 cgroup at `dir`, creating it if needed.
fn enter_cgroup(dir: &Path) -> Result<(), Error> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
        Err(source) => return Err(Error::Cgroup { path: dir.to_path_buf(), action: "creating", source }),
    }
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string()).map_err(|source| Error::Cgroup {
        path: dir.to_path_buf(),
        action: "moving the helper into",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_hierarchy_uses_name_systemd() {
        let proc = "13:net_cls,net_prio:/\n9:name=systemd:/system.slice/x.service\n4:memory:/system.slice/x.service\n0::/system.slice/x.service\n";
        assert_eq!(unit_cgroup_from_proc(proc).as_deref(), Some("/system.slice/x.service"));
    }

    #[test]
    fn pure_v2_uses_the_unified_line() {
        assert_eq!(unit_cgroup_from_proc("0::/system.slice/y.service\n").as_deref(), Some("/system.slice/y.service"));
    }

    #[test]
    fn the_unit_cgroup_is_the_parent_of_the_subgroup_systemd_started_the_helper_in() {
        let started_in = SupervisorCgroup::StartedIn { name: "supervisor".into() };
        let unit = "/kubepods.slice/containerd-k8s.io-abc.service";
        assert_eq!(unit_cgroup_of(&format!("{unit}/supervisor"), &started_in).as_deref(), Some(unit));
        assert_eq!(unit_cgroup_of(unit, &started_in), None, "not in the subgroup");
        assert_eq!(unit_cgroup_of("/x.service/notsupervisor", &started_in), None, "a suffix is not the subgroup");
        assert_eq!(unit_cgroup_of("/supervisor", &started_in), None, "the root is no unit");
        let move_to = SupervisorCgroup::MoveTo { name: "supervisor".into() };
        assert_eq!(unit_cgroup_of(unit, &move_to).as_deref(), Some(unit));
    }

    #[test]
    fn no_systemd_cgroup_gives_none() {
        assert_eq!(unit_cgroup_from_proc("4:memory:/\n"), None);
        assert_eq!(unit_cgroup_from_proc(""), None);
    }
}
