//! The transient unit that runs a container's init process.
//!
//! Design (see docs/architecture.md, "Step by step"): `Type=forking` with `PIDFile=`; `ExecStart`
//! is our helper, which opens the stdio fifos, mounts the rootfs and execs `runc create --pid-file`.
//! When `runc create` exits, systemd reads the pid file and the container's init becomes the unit's
//! main process: the unit runs while the container runs, then stays active ("exited", holding the
//! exit status) until Delete stops it. `Delegate=yes` hands the
//! unit's cgroup subtree to runc, which puts the container in a `container` child cgroup: systemd
//! never rewrites runc's limits there, `systemctl status` shows the container's processes, and the
//! unit's own resource settings bound it. `ExecStopPost` runs the helper again when the unit
//! stops, to record the exit durably.

use oci_spec::runtime::Spec;

use crate::names::UnitName;
use crate::oci_version::validate_oci_version;
use crate::properties::{check_single_line_path, single_line, ExecCommand, Property, PropertyValue, TransientUnit};
use crate::slice::{slice_from_cgroups_path, validate_slice_name};
use crate::Error;

/// How long systemd waits for the helper and `runc create` before failing the start job.
pub const START_TIMEOUT_USEC: u64 = 120 * 1_000_000;

/// What the unit's `TasksMax=` adds to the spec's pids limit: the unit's own processes and
/// threads beside the container's (the helper while it runs `runc create`, the stdio copiers).
pub const SUPERVISOR_TASKS: u64 = 64;

/// The cgroup below the unit's where the unit's own processes (our helper, and `runc create`
/// while it runs) live, beside the container's. On the unified hierarchy a cgroup that enables
/// controllers for its children may hold no processes itself (cgroups(7), "no internal
/// processes"), so the unit's cgroup must be left empty for the container's limits to apply.
pub const SUPERVISOR_CGROUP: &str = "supervisor";

/// The first systemd with `DelegateSubgroup=` (systemd.resource-control(5)).
const FIRST_SYSTEMD_WITH_DELEGATE_SUBGROUP: u32 = 254;

/// Who puts the unit's processes into [`SUPERVISOR_CGROUP`]: systemd itself where it has
/// `DelegateSubgroup=` (254 and later), the helper otherwise (it moves itself there first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorPlacement {
    /// The unit says `DelegateSubgroup=supervisor`: the helper starts there.
    BySystemd,
    /// systemd starts the helper in the unit's own cgroup.
    ByHelper,
}

impl SupervisorPlacement {
    /// The placement a systemd of major version `systemd_version` allows.
    pub fn for_systemd(systemd_version: u32) -> SupervisorPlacement {
        if systemd_version >= FIRST_SYSTEMD_WITH_DELEGATE_SUBGROUP {
            SupervisorPlacement::BySystemd
        } else {
            SupervisorPlacement::ByHelper
        }
    }
}

/// Where the helper and its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperPaths {
    /// Absolute path of the `containerd-shim-systemd-v1` binary (it carries the helper).
    pub exe: String,
    /// The create request the daemon wrote for the helper.
    pub create_request: String,
    /// Where `runc create` writes the init pid, and systemd reads it.
    pub pid_file: String,
    /// Where `ExecStopPost` records the exit.
    pub exit_state: String,
}

/// Which cgroup hierarchy the host runs: it decides how the unit leaves device control to runc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupHierarchy {
    /// The unified (v2) hierarchy alone: every current distribution.
    Unified,
    /// One hierarchy per controller (v1 "legacy", or "hybrid" with a controller-less v2 one).
    Legacy,
}

/// Daemon-level choices that shape every unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitOptions {
    /// The slice for containers whose spec names none (`None`: systemd's default, `system.slice`).
    pub default_slice: Option<String>,
    /// `TasksMax=` of containers whose spec sets no pids limit (`None`: systemd's
    /// `DefaultTasksMax=`). Never infinity: the unit is the backstop against a fork bomb.
    pub default_tasks_max: Option<u64>,
}

/// Everything the init unit is derived from.
#[derive(Debug, Clone, Copy)]
pub struct InitUnitRequest<'a> {
    /// The unit's name ([`crate::names::UnitNaming::task`]).
    pub unit: &'a UnitName,
    /// containerd namespace (already validated).
    pub namespace: &'a str,
    /// Task id (already validated).
    pub id: &'a str,
    /// The container's OCI spec.
    pub spec: &'a Spec,
    /// The helper's binary and files.
    pub helper: &'a HelperPaths,
    /// Daemon options.
    pub options: &'a UnitOptions,
    /// Major version of the systemd we talk to.
    pub systemd_version: u32,
    /// The host's cgroup hierarchy.
    pub hierarchy: CgroupHierarchy,
    /// `SdNotify`: `Type=notify` with `NotifyAccess=all`; the helper names the container init
    /// as main process (`MAINPID=`) and the unit becomes active when the container says `READY=1`
    /// through the helper's relay, which passes on only `READY=1` and `STATUS=`: the container
    /// never reaches systemd's socket itself (runc-wrap's `helper::notify_relay`).
    pub sd_notify: bool,
}

/// Renders the transient unit for a container's init process. A spec of a runtime-spec version
/// we do not translate is refused here, before anything of it reaches systemd.
pub fn render_init_unit(request: &InitUnitRequest<'_>) -> Result<TransientUnit, Error> {
    let InitUnitRequest { unit, namespace, id, spec, helper, options, systemd_version, hierarchy, sd_notify } =
        *request;
    validate_oci_version(spec.version())?;
    let name = unit.clone();

    let description = single_line(&format!("containerd task {namespace}/{id}"));
    let mut properties = vec![Property::new("Description", PropertyValue::Str(description))];
    if sd_notify {
        properties.push(Property::new("Type", PropertyValue::Str("notify".into())));
        properties.push(Property::new("NotifyAccess", PropertyValue::Str("all".into())));
    } else {
        properties.push(Property::new("Type", PropertyValue::Str("forking".into())));
        check_single_line_path("PIDFile", &helper.pid_file)?;
        properties.push(Property::new("PIDFile", PropertyValue::Str(helper.pid_file.clone())));
    }
    properties.push(Property::new("Delegate", PropertyValue::Bool(true)));
    if SupervisorPlacement::for_systemd(systemd_version) == SupervisorPlacement::BySystemd {
        properties.push(Property::new("DelegateSubgroup", PropertyValue::Str(SUPERVISOR_CGROUP.into())));
    }
    properties.extend([
        Property::new("KillMode", PropertyValue::Str("control-group".into())),
        // The exit stays with the unit (active, "exited", with ExecMainStatus) until Delete
        // stops it: systemd signals the exit at once, with no process to spawn first (an
        // `ExecStopPost` on the exit path costs a fork and a cgroup move, 5–8 ms on hybrid
        // hosts, before systemd says anything), and the status outlives a daemon restart.
        // `ExecStopPost` still records it durably when the unit is stopped.
        Property::new("RemainAfterExit", PropertyValue::Bool(true)),
        // Every exit counts as success for the unit, or a non-zero one would take the failure
        // path, which runs `ExecStopPost` before systemd says anything. The container's own
        // status stays in `ExecMainCode`/`ExecMainStatus` (and in State, and in `TaskExit`).
        every_exit_is_success(),
        levels_come_from_the_stream(),
        // The container's device rules are runc's, from its spec, in its cgroup below; the unit
        // must allow every device, since a cgroup can never allow more than its parent.
        Property::new("DevicePolicy", PropertyValue::Str("auto".into())),
        Property::new("TimeoutStartUSec", PropertyValue::U64(START_TIMEOUT_USEC)),
    ]);
    if let Some(tasks_max) = tasks_max(spec, options) {
        properties.push(Property::new("TasksMax", PropertyValue::U64(tasks_max)));
    }
    // Every controller realized for the unit (and its slices) from the start: when another unit
    // in the same slice later asks systemd for a controller we had not (runc's systemd driver
    // does, for CRI pods of other runtimes), systemd re-realizes the slice's children and would
    // take the container's cgroup in that hierarchy from under it. Also what `systemctl status`
    // needs to show the container's memory, CPU and tasks.
    properties.extend(
        crate::daemon_unit::accounting(systemd_version).map(|name| Property::new(name, PropertyValue::Bool(true))),
    );
    if hierarchy == CgroupHierarchy::Legacy {
        // On v1 every device rule of the unit would have to allow "a", which `DeviceAllow=`
        // cannot say (systemd writes `char-*` as `c *:* rwm`: every device all the same, the
        // helper widens it to "a" so runc may write "a" for a privileged container below). Yet
        // the rules must be there: they put the devices controller in the unit's own mask, so
        // systemd realizes it along the unit's slices from the start. Realized later (because a
        // sibling slice needs it, as runc's systemd driver's scopes do), systemd would move the
        // container's processes out of their devices cgroup into the slice's, which allows all.
        // On v2, with `auto` and no rules, systemd attaches no device program at all.
        properties.push(Property::new(
            "DeviceAllow",
            PropertyValue::DeviceRules(vec![("char-*".into(), "rwm".into()), ("block-*".into(), "rwm".into())]),
        ));
    }
    properties.extend(only_shutdown_dependencies());
    // No `AddRef` (it needs a bus name to track, which systemd's private socket lacks) and the
    // default `CollectMode=inactive`: a container that exited cleanly is collected at once, one
    // that failed stays visible (`systemctl --failed`, `systemctl status`) until Delete resets it.

    if let Some(slice) = container_slice(spec, options)? {
        properties.push(Property::new("Slice", PropertyValue::Str(slice)));
    }

    let create = helper_command(&helper.exe, &["helper", "create", &helper.create_request]);
    let exited = helper_command(&helper.exe, &["helper", "exited", &helper.exit_state]);
    properties.push(exec_property("ExecStart", create, systemd_version));
    properties.push(exec_property("ExecStopPost", exited, systemd_version));

    Ok(TransientUnit { name, properties })
}

/// A container's unit depends on nothing but shutdown: it conflicts with `shutdown.target` and
/// stops before it, as the default dependencies would have it. The rest of those (requiring
/// `sysinit.target`, ordered after `basic.target`) only matter at boot, which is over when
/// containerd asks for a container, yet systemd would walk both targets' dependency trees into
/// every start job's transaction.
pub(crate) fn only_shutdown_dependencies() -> [Property; 3] {
    let shutdown = || PropertyValue::StrList(vec!["shutdown.target".into()]);
    [
        Property::new("DefaultDependencies", PropertyValue::Bool(false)),
        Property::new("Conflicts", shutdown()),
        Property::new("Before", shutdown()),
    ]
}

/// The unit's `TasksMax=`: the spec's pids limit (which runc also sets on the container's own
/// cgroup) plus [`SUPERVISOR_TASKS`]; without one, the configured default, else none (systemd's
/// `DefaultTasksMax=`). Never infinity, which would take away systemd's backstop against a
/// fork bomb in a container that sets no limit of its own.
fn tasks_max(spec: &Spec, options: &UnitOptions) -> Option<u64> {
    let spec_limit = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.resources().as_ref())
        .and_then(|resources| resources.pids().as_ref())
        .map(|pids| pids.limit())
        .and_then(|limit| u64::try_from(limit).ok())
        .filter(|&limit| limit > 0);
    match spec_limit {
        Some(limit) => Some(limit.saturating_add(SUPERVISOR_TASKS)),
        None => options.default_tasks_max,
    }
}

/// `SyslogLevelPrefix=no`: a container's line in the journal gets its stream's level (stdout
/// info, stderr as systemd gives it), never one it claims with a `<N>` prefix, which would let
/// any container log at `emerg` and so write to every terminal of the host (wall). The prefix
/// stays in the message as text.
pub(crate) fn levels_come_from_the_stream() -> Property {
    Property::new("SyslogLevelPrefix", PropertyValue::Bool(false))
}

/// `SuccessExitStatus=` with every exit code and signal.
pub(crate) fn every_exit_is_success() -> Property {
    Property::new(
        "SuccessExitStatus",
        PropertyValue::ExitStatusSet { codes: (1..=255).collect(), signals: (1..=64).collect() },
    )
}

/// The slice a container's units go to: the one its spec's `cgroupsPath` names (CRI with the
/// systemd driver), else the configured default, else systemd's default.
pub fn container_slice(spec: &Spec, options: &UnitOptions) -> Result<Option<String>, Error> {
    let from_spec = match spec.linux().as_ref().and_then(|linux| linux.cgroups_path().as_ref()) {
        Some(path) => slice_from_cgroups_path(&path.to_string_lossy())?,
        None => None,
    };
    match from_spec.or_else(|| options.default_slice.clone()) {
        Some(slice) => {
            validate_slice_name(&slice)?;
            Ok(Some(slice))
        }
        None => Ok(None),
    }
}

pub(crate) fn helper_command(exe: &str, args: &[&str]) -> ExecCommand {
    ExecCommand::literal(exe, args)
}

/// `ExecStart=`-like property `name` running `command`, as this systemd keeps it
/// ([`crate::properties::exec_property`]).
pub(crate) fn exec_property(name: &str, command: ExecCommand, systemd_version: u32) -> Property {
    crate::properties::exec_property(name, command, systemd_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typical_spec(cgroups_path: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
               "root":{{"path":"rootfs"}},"linux":{{"cgroupsPath":"{cgroups_path}","namespaces":[{{"type":"pid"}}]}}}}"#
        );
        serde_json::from_str(&json).expect("valid spec")
    }

    fn helper() -> HelperPaths {
        HelperPaths {
            exe: "/usr/local/bin/containerd-shim-systemd-v1".into(),
            create_request: "/run/b/shim-create.json".into(),
            pid_file: "/run/b/init.pid".into(),
            exit_state: "/run/b/exit-state.json".into(),
        }
    }

    fn render(spec: &Spec, options: &UnitOptions, systemd_version: u32) -> Result<TransientUnit, Error> {
        let helper = helper();
        render_init_unit(&InitUnitRequest {
            unit: &UnitName::for_task("default", "t1"),
            namespace: "default",
            id: "t1",
            spec,
            helper: &helper,
            options,
            systemd_version,
            hierarchy: CgroupHierarchy::Unified,
            sd_notify: false,
        })
    }

    #[test]
    fn tasks_max_is_the_specs_pids_limit_plus_the_supervisor_else_the_default_never_infinity() {
        let tasks_max = |pids: &str, default_tasks_max: Option<u64>| {
            let json = format!(
                r#"{{"ociVersion":"1.0.2","process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
                   "root":{{"path":"rootfs"}},"linux":{{"resources":{{{pids}}}}}}}"#
            );
            let spec: Spec = serde_json::from_str(&json).expect("valid spec");
            let options = UnitOptions { default_tasks_max, ..UnitOptions::default() };
            render(&spec, &options, 257).expect("renders").property("TasksMax").cloned()
        };
        assert_eq!(tasks_max(r#""pids":{"limit":77}"#, None), Some(PropertyValue::U64(77 + SUPERVISOR_TASKS)));
        assert_eq!(tasks_max(r#""pids":{"limit":77}"#, Some(10)), Some(PropertyValue::U64(77 + SUPERVISOR_TASKS)));
        assert_eq!(tasks_max("", None), None, "systemd's DefaultTasksMax");
        assert_eq!(tasks_max(r#""pids":{"limit":-1}"#, None), None, "-1 is no limit: systemd's DefaultTasksMax");
        assert_eq!(tasks_max(r#""pids":{"limit":0}"#, Some(500)), Some(PropertyValue::U64(500)), "the configured one");
    }

    #[test]
    fn typical_spec_renders_a_forking_delegated_unit() {
        let unit = render(&typical_spec("/default/t1"), &UnitOptions::default(), 252).unwrap();
        assert_eq!(unit.name.as_str(), "containerd-default-t1.service");
        let str_prop = |name| match unit.property(name) {
            Some(PropertyValue::Str(value)) => value.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(str_prop("Type"), "forking");
        assert_eq!(str_prop("PIDFile"), "/run/b/init.pid");
        assert_eq!(str_prop("Description"), "containerd task default/t1");
        assert_eq!(unit.property("Delegate"), Some(&PropertyValue::Bool(true)));
        assert_eq!(unit.property("TasksMax"), None, "systemd's DefaultTasksMax: the spec sets no pids limit");
        assert_eq!(unit.property("SyslogLevelPrefix"), Some(&PropertyValue::Bool(false)), "no <N> levels from output");
        assert_eq!(unit.property("RemainAfterExit"), Some(&PropertyValue::Bool(true)));
        for accounting in ["MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"] {
            assert_eq!(unit.property(accounting), Some(&PropertyValue::Bool(true)), "{accounting}");
        }
        assert_eq!(unit.property("DevicePolicy"), Some(&PropertyValue::Str("auto".into())));
        assert_eq!(unit.property("DeviceAllow"), None, "v2: no device program of the unit's own");
        let Some(PropertyValue::ExitStatusSet { codes, signals }) = unit.property("SuccessExitStatus") else {
            panic!("SuccessExitStatus missing: {unit:?}");
        };
        assert_eq!((codes.len(), signals.len()), (255, 64), "no exit takes the failure path");
        assert_eq!(unit.property("Slice"), None, "a cgroupfs path names no slice");
    }

    #[test]
    fn systemd_254_and_later_start_the_helper_in_the_supervisor_subgroup() {
        let subgroup = |version| render(&typical_spec(""), &UnitOptions::default(), version).unwrap();
        for version in [252, 253] {
            assert_eq!(subgroup(version).property("DelegateSubgroup"), None, "systemd {version} lacks it");
            assert_eq!(SupervisorPlacement::for_systemd(version), SupervisorPlacement::ByHelper);
        }
        for version in [254, 257, 262] {
            assert_eq!(
                subgroup(version).property("DelegateSubgroup"),
                Some(&PropertyValue::Str("supervisor".into())),
                "systemd {version}"
            );
            assert_eq!(SupervisorPlacement::for_systemd(version), SupervisorPlacement::BySystemd);
        }
    }

    #[test]
    fn cpu_accounting_is_asked_of_systemd_257_and_older_only() {
        for (version, expected) in [(252, true), (257, true), (258, false), (262, false)] {
            let unit = render(&typical_spec(""), &UnitOptions::default(), version).unwrap();
            assert_eq!(unit.property("CPUAccounting").is_some(), expected, "systemd {version}");
            assert_eq!(unit.property("MemoryAccounting"), Some(&PropertyValue::Bool(true)), "systemd {version}");
        }
    }

    #[test]
    fn on_v1_the_unit_allows_every_device_by_rules_that_realize_the_devices_controller() {
        let helper = helper();
        let spec = typical_spec("");
        let options = UnitOptions::default();
        let unit = UnitName::for_task("default", "t1");
        let request = InitUnitRequest {
            unit: &unit,
            namespace: "default",
            id: "t1",
            spec: &spec,
            helper: &helper,
            options: &options,
            systemd_version: 252,
            hierarchy: CgroupHierarchy::Legacy,
            sd_notify: false,
        };
        let unit = render_init_unit(&request).unwrap();
        assert_eq!(unit.property("DevicePolicy"), Some(&PropertyValue::Str("auto".into())));
        let all = vec![("char-*".to_string(), "rwm".to_string()), ("block-*".to_string(), "rwm".to_string())];
        assert_eq!(unit.property("DeviceAllow"), Some(&PropertyValue::DeviceRules(all)));
    }

    #[test]
    fn a_container_unit_depends_on_shutdown_only() {
        let unit = render(&typical_spec(""), &UnitOptions::default(), 252).unwrap();
        assert_eq!(unit.property("DefaultDependencies"), Some(&PropertyValue::Bool(false)));
        let shutdown = PropertyValue::StrList(vec!["shutdown.target".into()]);
        assert_eq!(unit.property("Conflicts"), Some(&shutdown), "stopped at shutdown");
        assert_eq!(unit.property("Before"), Some(&shutdown), "and before it completes");
        assert_eq!(unit.property("Requires"), None);
        assert_eq!(unit.property("After"), None);
    }

    #[test]
    fn exec_commands_are_plain_argv_arrays_that_survive_a_reload() {
        let unit = render(&typical_spec(""), &UnitOptions::default(), 252).unwrap();
        let Some(PropertyValue::Exec(start)) = unit.property("ExecStart") else {
            panic!("ExecStart missing: {unit:?}");
        };
        assert_eq!(
            start[0].argv,
            ["/usr/local/bin/containerd-shim-systemd-v1", "helper", "create", "/run/b/shim-create.json"]
        );
        let Some(PropertyValue::Exec(stop_post)) = unit.property("ExecStopPost") else {
            panic!("ExecStopPost missing: {unit:?}");
        };
        assert_eq!(stop_post[0].argv[1..], ["helper", "exited", "/run/b/exit-state.json"]);
        assert!(unit.property("ExecStartEx").is_none(), "systemd 252 cannot reload ExecStartEx");
    }

    #[test]
    fn systemd_254_and_later_get_literal_ex_commands_the_older_ones_plain_ones_with_dollars_escaped() {
        let command = || ExecCommand::literal("/bin/x", &["$HOME", "a$$b", "plain"]);
        let plain = crate::properties::exec_property("ExecStart", command(), 253);
        assert_eq!(plain.name, "ExecStart");
        let PropertyValue::Exec(commands) = &plain.value else { panic!("{plain:?}") };
        assert_eq!(commands[0].argv, ["/bin/x", "$$HOME", "a$$$$b", "plain"]);
        for version in [254, 257, 262] {
            let ex = crate::properties::exec_property("ExecStart", command(), version);
            assert_eq!(ex.name, "ExecStartEx", "systemd {version}");
            assert_eq!(ex.value, PropertyValue::ExecEx(vec![command()]), "systemd {version}: taken literally");
        }
    }

    #[test]
    fn cri_systemd_cgroups_path_sets_the_slice() {
        let spec = typical_spec("kubepods-pod1.slice:cri-containerd:t1");
        let unit = render(&spec, &UnitOptions::default(), 252).unwrap();
        assert_eq!(unit.property("Slice"), Some(&PropertyValue::Str("kubepods-pod1.slice".into())));
    }

    #[test]
    fn default_slice_applies_when_spec_names_none() {
        let options = UnitOptions { default_slice: Some("containers.slice".into()), ..UnitOptions::default() };
        let unit = render(&typical_spec("/default/t1"), &options, 252).unwrap();
        assert_eq!(unit.property("Slice"), Some(&PropertyValue::Str("containers.slice".into())));
    }

    #[test]
    fn a_spec_of_another_runtime_spec_version_is_refused() {
        let mut spec = typical_spec("");
        spec.set_version("0.0.1".into());
        let error = render(&spec, &UnitOptions::default(), 252).unwrap_err();
        assert!(matches!(error, Error::UnsupportedOciVersion { .. }), "{error:?}");
        spec.set_version("1.0.2-dev".into());
        assert!(render(&spec, &UnitOptions::default(), 252).is_ok());
    }

    #[test]
    fn a_pid_file_path_with_a_newline_is_refused_rather_than_written_into_the_unit_file() {
        let spec = typical_spec("");
        let mut helper = helper();
        helper.pid_file = "/run/x\n[Service]\nExecStartPost=/bin/touch /tmp/p /init.pid".into();
        let unit = UnitName::for_task("default", "t1");
        let request = InitUnitRequest {
            unit: &unit,
            namespace: "default",
            id: "t1",
            spec: &spec,
            helper: &helper,
            options: &UnitOptions::default(),
            systemd_version: 252,
            hierarchy: CgroupHierarchy::Unified,
            sd_notify: false,
        };
        let error = render_init_unit(&request).unwrap_err();
        assert!(matches!(error, Error::ControlCharacterInPath { property: "PIDFile", .. }), "{error:?}");
        // A notify unit has no PIDFile: the path only reaches escaped command lines.
        assert!(render_init_unit(&InitUnitRequest { sd_notify: true, ..request }).is_ok());
    }

    #[test]
    fn invalid_default_slice_is_an_error() {
        let options = UnitOptions { default_slice: Some("containers.service".into()), ..UnitOptions::default() };
        assert!(matches!(render(&typical_spec(""), &options, 252), Err(Error::InvalidSlice { .. })));
    }
}
