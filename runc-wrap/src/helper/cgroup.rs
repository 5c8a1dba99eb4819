//! Puts the container's cgroup inside the unit's: `<unit cgroup>/container`. The unit is
//! `Delegate=yes`, so systemd leaves that subtree to runc. The path is absolute because a relative
//! cgroupsPath would land in `/container` of every controller systemd does not realize for the
//! unit (freezer, cpuset, … on hybrid hierarchies), shared by all containers.

use std::path::Path;

use serde_json::Value;

use crate::helper::config_patch::{object_entry, patch_config};
use crate::Error;

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

/// Rewrites `linux.cgroupsPath` in the bundle's config.json to `<unit cgroup>/container`,
/// keeping every other field as containerd wrote it.
pub fn place_container_cgroup(bundle: &Path) -> Result<String, Error> {
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|source| Error::StateFile { path: "/proc/self/cgroup".into(), source })?;
    let unit_cgroup = unit_cgroup_from_proc(&proc_cgroup).ok_or(Error::NoUnitCgroup)?;
    let container_cgroup = format!("{}/{CONTAINER_CGROUP_LEAF}", unit_cgroup.trim_end_matches('/'));

    let config_path = bundle.join("config.json");
    patch_config(bundle, |root| {
        let linux = object_entry(root, "linux", &config_path)?;
        linux.insert("cgroupsPath".into(), Value::String(container_cgroup.clone()));
        Ok(())
    })?;
    Ok(container_cgroup)
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
    fn no_systemd_cgroup_gives_none() {
        assert_eq!(unit_cgroup_from_proc("4:memory:/\n"), None);
        assert_eq!(unit_cgroup_from_proc(""), None);
    }
}
