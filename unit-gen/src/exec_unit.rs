//! The transient unit that runs one exec process of a container (`ctr task exec`, CRI ExecSync).
//!
//! `Type=notify`: `ExecStart` is our helper, which opens the exec's stdio, runs
//! `runc exec --detach`, says `READY=1` once the process runs, and then stays as the unit's main
//! process: a child subreaper that waits for the exec process and exits the way it did. runc puts
//! the exec process in the container's cgroup (it shares the container's namespaces and limits),
//! so the helper is what systemd supervises; the helper module explains why not `PIDFile=`.
//! `ExecStopPost` records the exit durably, as for init.

use crate::init_unit::{
    every_exit_is_success, exec_property, helper_command, levels_come_from_the_stream, only_shutdown_dependencies,
    START_TIMEOUT_USEC,
};
use crate::names::UnitName;
use crate::properties::{single_line, Property, PropertyValue, TransientUnit};
use crate::slice::validate_slice_name;
use crate::Error;

/// Where the exec's helper and its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecHelperPaths {
    /// Absolute path of the `containerd-shim-systemd-v1` binary.
    pub exe: String,
    /// The exec request the daemon wrote for the helper.
    pub exec_request: String,
    /// Where `ExecStopPost` records the exit.
    pub exit_state: String,
}

/// Everything an exec unit is derived from.
#[derive(Debug, Clone, Copy)]
pub struct ExecUnitRequest<'a> {
    /// The unit's name ([`crate::names::UnitNaming::exec`]).
    pub unit: &'a UnitName,
    /// containerd namespace (validated).
    pub namespace: &'a str,
    /// Task id (validated).
    pub id: &'a str,
    /// Exec id (validated).
    pub exec_id: &'a str,
    /// The container's slice, which the exec unit joins ([`crate::init_unit::container_slice`]).
    pub slice: Option<&'a str>,
    /// The helper's binary and files.
    pub helper: &'a ExecHelperPaths,
    /// Major version of the systemd we talk to.
    pub systemd_version: u32,
}

/// Renders the transient unit for an exec process.
pub fn render_exec_unit(request: &ExecUnitRequest<'_>) -> Result<TransientUnit, Error> {
    let ExecUnitRequest { unit, namespace, id, exec_id, slice, helper, systemd_version } = *request;
    let name = unit.clone();
    let mut properties = vec![
        Property::new(
            "Description",
            PropertyValue::Str(single_line(&format!("containerd exec {exec_id} in task {namespace}/{id}"))),
        ),
        Property::new("Type", PropertyValue::Str("notify".into())),
        Property::new("KillMode", PropertyValue::Str("control-group".into())),
        // As for init: the exit is signalled at once and kept until the exec is deleted.
        Property::new("RemainAfterExit", PropertyValue::Bool(true)),
        every_exit_is_success(),
        levels_come_from_the_stream(),
        Property::new("TimeoutStartUSec", PropertyValue::U64(START_TIMEOUT_USEC)),
    ];
    properties.extend(only_shutdown_dependencies());
    if let Some(slice) = slice {
        validate_slice_name(slice)?;
        properties.push(Property::new("Slice", PropertyValue::Str(slice.to_string())));
    }
    let exec = helper_command(&helper.exe, &["helper", "exec", &helper.exec_request]);
    let exited = helper_command(&helper.exe, &["helper", "exited", &helper.exit_state]);
    properties.push(exec_property("ExecStart", exec, systemd_version));
    properties.push(exec_property("ExecStopPost", exited, systemd_version));
    Ok(TransientUnit { name, properties })
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::Spec;

    use super::*;
    use crate::init_unit::container_slice;
    use crate::UnitOptions;

    fn spec(cgroups_path: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
               "root":{{"path":"rootfs"}},"linux":{{"cgroupsPath":"{cgroups_path}"}}}}"#
        );
        serde_json::from_str(&json).expect("valid spec")
    }

    fn helper() -> ExecHelperPaths {
        ExecHelperPaths {
            exe: "/usr/bin/containerd-shim-systemd-v1".into(),
            exec_request: "/b/shim-exec/e1/request.json".into(),
            exit_state: "/b/shim-exec/e1/exit-state.json".into(),
        }
    }

    fn request<'a>(unit: &'a UnitName, slice: Option<&'a str>, helper: &'a ExecHelperPaths) -> ExecUnitRequest<'a> {
        ExecUnitRequest { unit, namespace: "default", id: "t1", exec_id: "e1", slice, helper, systemd_version: 252 }
    }

    /// The exec unit of a container made from `spec` with the default options.
    fn render(spec: &Spec) -> TransientUnit {
        let helper = helper();
        let slice = container_slice(spec, &UnitOptions::default()).expect("a valid slice");
        render_exec_unit(&request(&UnitName::for_exec("default", "t1", "e1"), slice.as_deref(), &helper))
            .expect("renders")
    }

    #[test]
    fn exec_unit_is_a_notify_unit_around_the_exec_helper() {
        let unit = render(&spec(""));
        assert_eq!(unit.name.as_str(), "containerd-default-t1-exec-e1.service");
        assert_eq!(unit.property("Type"), Some(&PropertyValue::Str("notify".into())));
        assert_eq!(unit.property("PIDFile"), None, "the helper is the main process, not the exec process");
        assert_eq!(unit.property("Delegate"), None, "runc puts the exec in the container's cgroup");
        assert_eq!(unit.property("SyslogLevelPrefix"), Some(&PropertyValue::Bool(false)), "no <N> levels from output");
        let Some(PropertyValue::Exec(start)) = unit.property("ExecStart") else {
            panic!("ExecStart missing: {unit:?}");
        };
        assert_eq!(
            start[0].argv,
            ["/usr/bin/containerd-shim-systemd-v1", "helper", "exec", "/b/shim-exec/e1/request.json"]
        );
        let Some(PropertyValue::Exec(stop_post)) = unit.property("ExecStopPost") else {
            panic!("ExecStopPost missing: {unit:?}");
        };
        assert_eq!(stop_post[0].argv[1..], ["helper", "exited", "/b/shim-exec/e1/exit-state.json"]);
    }

    #[test]
    fn exec_unit_depends_on_shutdown_only() {
        let unit = render(&spec(""));
        assert_eq!(unit.property("DefaultDependencies"), Some(&PropertyValue::Bool(false)));
        let shutdown = PropertyValue::StrList(vec!["shutdown.target".into()]);
        assert_eq!(unit.property("Conflicts"), Some(&shutdown));
        assert_eq!(unit.property("Before"), Some(&shutdown));
    }

    #[test]
    fn exec_unit_joins_the_containers_slice() {
        let unit = render(&spec("kubepods-pod1.slice:cri-containerd:t1"));
        assert_eq!(unit.property("Slice"), Some(&PropertyValue::Str("kubepods-pod1.slice".into())));
    }

    #[test]
    fn exec_unit_refuses_a_slice_that_is_not_a_slice_unit_name() {
        let helper = helper();
        let refused = render_exec_unit(&request(
            &UnitName::for_exec("default", "t1", "e1"),
            Some("kubepods-pod1.service"),
            &helper,
        ))
        .unwrap_err();
        assert!(refused.to_string().contains("kubepods-pod1.service"), "{refused}");
    }
}
