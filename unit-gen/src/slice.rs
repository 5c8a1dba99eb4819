//! Which slice a container's unit goes into. containerd's CRI plugin with runc's systemd cgroup
//! driver writes `linux.cgroupsPath` as `slice:prefix:name` (e.g.
//! `kubepods-besteffort-pod12.slice:cri-containerd:abc`); we honour the slice part so Kubernetes'
//! pod slices still hold the container's resources. Any other cgroupsPath (ctr's `/default/t1`, a
//! cgroupfs path) says nothing about slices, and the configured default applies.

use crate::Error;

/// The slice named by an OCI `cgroupsPath` in systemd form, if it has that form.
pub fn slice_from_cgroups_path(cgroups_path: &str) -> Result<Option<String>, Error> {
    let mut parts = cgroups_path.split(':');
    let (Some(slice), Some(_prefix), Some(_name), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    if slice.is_empty() {
        return Ok(None); // runc's systemd driver then uses its default slice; so do we
    }
    validate_slice_name(slice)?;
    Ok(Some(slice.to_string()))
}

/// Checks that `slice` is a valid slice unit name: `[A-Za-z0-9:_.\\-]`, ending in `.slice`,
/// no empty dash-separated component (systemd's `slice_name_is_valid()` rules).
pub fn validate_slice_name(slice: &str) -> Result<(), Error> {
    let invalid = |reason: &'static str| Error::InvalidSlice { slice: slice.to_string(), reason };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(invalid("does not end in .slice"));
    };
    if slice.len() > crate::names::MAX_UNIT_NAME_LEN {
        return Err(invalid("is longer than 255 characters"));
    }
    if stem == "-" {
        return Ok(()); // the root slice
    }
    if stem.is_empty() {
        return Err(invalid("has an empty name"));
    }
    if !stem.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'\\' | b'-')) {
        return Err(invalid("contains characters not allowed in unit names"));
    }
    if stem.split('-').any(str::is_empty) {
        return Err(invalid("has an empty component between dashes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_systemd_cgroups_path_names_the_pod_slice() {
        let path = "kubepods-besteffort-pod1234.slice:cri-containerd:abcdef";
        assert_eq!(slice_from_cgroups_path(path).unwrap().as_deref(), Some("kubepods-besteffort-pod1234.slice"));
    }

    #[test]
    fn cgroupfs_paths_name_no_slice() {
        for path in ["/default/t1", "", "/kubepods/burstable/pod1/abc", "a:b"] {
            assert_eq!(slice_from_cgroups_path(path).unwrap(), None, "{path:?}");
        }
    }

    #[test]
    fn empty_slice_part_means_default() {
        assert_eq!(slice_from_cgroups_path(":cri-containerd:abc").unwrap(), None);
    }

    #[test]
    fn hostile_slices_are_refused() {
        for slice in ["evil.service", "a--b.slice", "-a.slice", "a b.slice", "a\nb.slice", ".slice"] {
            let path = format!("{slice}:p:n");
            assert!(
                matches!(slice_from_cgroups_path(&path), Err(Error::InvalidSlice { .. })),
                "{slice:?} should be refused"
            );
        }
    }

    #[test]
    fn root_and_nested_slices_are_accepted() {
        for slice in ["-.slice", "system.slice", "a-b-c.slice", "kubepods.slice"] {
            assert!(validate_slice_name(slice).is_ok(), "{slice:?}");
        }
    }
}
