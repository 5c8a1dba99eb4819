//! A container's cgroup metrics as the `Any` containerd's `Stats` call returns: the message
//! containerd's own runc shim sends (`typeurl.MarshalAny` of the containerd/cgroups stats), so
//! containerd's CRI plugin and `ctr task metrics` decode it unchanged.
//!
//! Interface files that are absent (controller not mounted or not enabled, older kernel) leave
//! their fields zero, as containerd's `IgnoreNotExist` does; a cgroup directory that does not
//! exist is [`CgroupError::CgroupNotFound`].

mod v1;
mod v2;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;

use super::{CgroupError, ContainerCgroups};

/// Type URL of cgroup v1 metrics. containerd's `typeurl` names a protobuf message by its full
/// name alone (`proto.MessageName`, no `type.googleapis.com/` prefix); the message is
/// `Metrics` in package `io.containerd.cgroups.v1` (containerd/cgroups `stats/v1/metrics.proto`).
pub const V1_METRICS_TYPE_URL: &str = "io.containerd.cgroups.v1.Metrics";

/// Type URL of cgroup v2 metrics (package `io.containerd.cgroups.v2`,
/// containerd/cgroups `cgroup2/stats/metrics.proto`).
pub const V2_METRICS_TYPE_URL: &str = "io.containerd.cgroups.v2.Metrics";

/// Reads the container's metrics and packs them for a `StatsResponse`: v1 `Metrics` on v1 and
/// hybrid hosts, v2 `Metrics` on unified ones. Blocking (reads cgroupfs).
pub fn read_metrics(cgroups: &ContainerCgroups) -> Result<Any, CgroupError> {
    match cgroups.v2_dir() {
        Some(dir) => pack(V2_METRICS_TYPE_URL, &v2::read(dir)?),
        None => pack(V1_METRICS_TYPE_URL, &v1::read(cgroups)?),
    }
}

/// Packs by hand: protobuf's `Any::pack` would prefix `type.googleapis.com/`, which containerd's
/// `typeurl` does not recognise.
fn pack(type_url: &'static str, message: &impl Message) -> Result<Any, CgroupError> {
    let value = message.write_to_bytes().map_err(|source| CgroupError::Encode { type_url, source })?;
    Ok(Any { type_url: type_url.to_string(), value, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use containerd_shim_protos::cgroups::metrics as v1_proto;
    use containerd_shim_protos::cgroups_v2::metrics as v2_proto;
    use containerd_shim_protos::protobuf::MessageFull;

    use super::*;
    use crate::cgroup::test_support::ScratchDir;

    #[test]
    fn type_urls_are_the_full_names_of_the_generated_messages() {
        assert_eq!(v1_proto::Metrics::descriptor().full_name(), V1_METRICS_TYPE_URL);
        assert_eq!(v2_proto::Metrics::descriptor().full_name(), V2_METRICS_TYPE_URL);
    }

    #[test]
    fn read_metrics_packs_v1_metrics_on_v1_and_v2_metrics_on_v2() {
        let root = ScratchDir::new("pack");
        root.write("memory/c/memory.usage_in_bytes", "4096\n");
        root.write("unified/c/memory.current", "8192\n");

        let v1 = ContainerCgroups::v1("/c", [("memory".to_string(), root.path().join("memory/c"))]);
        let any = read_metrics(&v1).expect("v1 metrics");
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let decoded = v1_proto::Metrics::parse_from_bytes(&any.value).expect("decode v1");
        assert_eq!(decoded.memory.usage.usage, 4096);

        let v2 = ContainerCgroups::v2("/c", root.path().join("unified/c"));
        let any = read_metrics(&v2).expect("v2 metrics");
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
        let decoded = v2_proto::Metrics::parse_from_bytes(&any.value).expect("decode v2");
        assert_eq!(decoded.memory.usage, 8192);
    }

    #[test]
    fn a_cgroup_directory_that_does_not_exist_is_an_error_naming_it() {
        let root = ScratchDir::new("gone");
        let missing = root.path().join("memory/removed");
        let v1 = ContainerCgroups::v1("/removed", [("memory".to_string(), missing.clone())]);
        match read_metrics(&v1) {
            Err(CgroupError::CgroupNotFound { path }) => assert_eq!(path, missing),
            other => panic!("expected CgroupNotFound, got {other:?}"),
        }
        let v2 = ContainerCgroups::v2("/removed", missing.clone());
        match read_metrics(&v2) {
            Err(error @ CgroupError::CgroupNotFound { .. }) => {
                assert!(error.is_not_found());
                assert_eq!(error.to_string(), format!("cgroup {} does not exist", missing.display()));
            }
            other => panic!("expected CgroupNotFound, got {other:?}"),
        }
    }
}
