//! Renders init and exec units from arbitrary input and checks what unit-gen promises: it never
//! panics, the helper's command lines are exactly the argv it was given, every string setting
//! stays on one line (systemd writes them into the unit file unescaped), a slice is a valid
//! slice, and the name is a valid unit name when the ids are valid identifiers.
//!
//! The input is JSON, so seeds are readable and libFuzzer's mutations stay near real specs:
//! `{"namespace", "id", "exec_id", "exe", "create_request", "pid_file", "exit_state",
//! "default_slice", "systemd_version", "sd_notify", "spec": <an OCI runtime spec>}`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::Spec;
use serde::Deserialize;
use unit_gen::properties::single_line;
use unit_gen::{
    render_exec_unit, render_init_unit, validate_identifier, ExecHelperPaths, ExecUnitRequest, HelperPaths,
    IdentifierKind, InitUnitRequest, PropertyValue, TransientUnit, UnitOptions,
};

#[derive(Deserialize)]
struct Input {
    namespace: String,
    id: String,
    exec_id: String,
    exe: String,
    create_request: String,
    pid_file: String,
    exit_state: String,
    default_slice: Option<String>,
    #[serde(default)]
    default_tasks_max: Option<u64>,
    systemd_version: u32,
    sd_notify: bool,
    spec: serde_json::Value,
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Input>(data) else { return };
    let Ok(spec) = serde_json::from_value::<Spec>(input.spec.clone()) else { return };
    let helper = HelperPaths {
        exe: input.exe.clone(),
        create_request: input.create_request.clone(),
        pid_file: input.pid_file.clone(),
        exit_state: input.exit_state.clone(),
    };
    let options = UnitOptions { default_slice: input.default_slice.clone(), default_tasks_max: input.default_tasks_max };
    let unit = unit_gen::UnitName::for_task(&input.namespace, &input.id);
    let request = InitUnitRequest {
        unit: &unit,
        namespace: &input.namespace,
        id: &input.id,
        spec: &spec,
        helper: &helper,
        options: &options,
        systemd_version: input.systemd_version,
        hierarchy: if input.sd_notify { unit_gen::CgroupHierarchy::Legacy } else { unit_gen::CgroupHierarchy::Unified },
        sd_notify: input.sd_notify,
    };
    match render_init_unit(&request) {
        Ok(unit) => {
            check_unit(&unit, &input, "create", &input.create_request);
            assert!(
                unit_gen::validate_oci_version(spec.version()).is_ok(),
                "rendered a spec of version {:?}",
                spec.version()
            );
            let description = format!("containerd task {}/{}", input.namespace, input.id);
            assert_eq!(unit.property("Description"), Some(&PropertyValue::Str(single_line(&description))));
            match unit.property("PIDFile") {
                Some(PropertyValue::Str(pid_file)) => assert_eq!(pid_file, &input.pid_file),
                None => assert!(input.sd_notify, "a forking unit without PIDFile"),
                other => panic!("PIDFile is {other:?}"),
            }
        }
        Err(
            unit_gen::Error::UnsupportedOciVersion { .. }
            | unit_gen::Error::InvalidSlice { .. }
            | unit_gen::Error::ControlCharacterInPath { .. },
        ) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }

    let exec_helper = ExecHelperPaths {
        exe: input.exe.clone(),
        exec_request: input.create_request.clone(),
        exit_state: input.exit_state.clone(),
    };
    // An exec joins its container's slice; a spec whose slice is invalid has no container.
    let Ok(slice) = unit_gen::init_unit::container_slice(&spec, &options) else { return };
    let exec_unit = unit_gen::UnitName::for_exec(&input.namespace, &input.id, &input.exec_id);
    let exec = ExecUnitRequest {
        unit: &exec_unit,
        namespace: &input.namespace,
        id: &input.id,
        exec_id: &input.exec_id,
        slice: slice.as_deref(),
        helper: &exec_helper,
        systemd_version: input.systemd_version,
    };
    match render_exec_unit(&exec) {
        Ok(unit) => check_unit(&unit, &input, "exec", &input.create_request),
        Err(unit_gen::Error::InvalidSlice { .. }) => {}
        Err(other) => panic!("unexpected exec error {other:?}"),
    }
});

fn check_unit(unit: &TransientUnit, input: &Input, subcommand: &str, request: &str) {
    // Arguments are handed over literally: as `…Ex` commands with `no-env-expand` (systemd 254
    // and later), or plainly with `$` written `$$`, which systemd's `$VAR` expansion turns back
    // into `$` when it runs the command (see unit_gen::properties::exec_property).
    let commands = |name: &str| match (unit.property(name), unit.property(&format!("{name}Ex"))) {
        (Some(PropertyValue::Exec(commands)), None) => {
            assert!(input.systemd_version < 254, "plain {name} for systemd {}", input.systemd_version);
            (commands.clone(), true)
        }
        (None, Some(PropertyValue::ExecEx(commands))) => {
            assert!(input.systemd_version >= 254, "{name}Ex for systemd {}", input.systemd_version);
            (commands.clone(), false)
        }
        other => panic!("{name} is not one command list: {other:?}"),
    };
    let (start, escaped) = commands("ExecStart");
    let literal = |arg: &str| if escaped { arg.replace('$', "$$") } else { arg.to_string() };
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].path, input.exe);
    assert_eq!(start[0].argv, [input.exe.clone(), "helper".into(), subcommand.into(), literal(request)]);
    let (stop_post, _) = commands("ExecStopPost");
    assert_eq!(stop_post.len(), 1);
    assert_eq!(stop_post[0].argv, [input.exe.clone(), "helper".into(), "exited".into(), literal(&input.exit_state)]);

    // systemd writes string settings into the unit's file unescaped (see unit_gen::properties).
    for property in &unit.properties {
        if let PropertyValue::Str(value) = &property.value {
            assert!(!value.chars().any(char::is_control), "{} is not one line: {value:?}", property.name);
        }
    }
    if let Some(PropertyValue::Str(slice)) = unit.property("Slice") {
        assert!(unit_gen::slice::validate_slice_name(slice).is_ok(), "invalid slice {slice:?}");
    }

    let valid = |kind, value: &str| validate_identifier(kind, value).is_ok();
    let exec_valid = subcommand != "exec" || valid(IdentifierKind::ExecId, &input.exec_id);
    if valid(IdentifierKind::Namespace, &input.namespace) && valid(IdentifierKind::TaskId, &input.id) && exec_valid {
        let name = unit.name.as_str();
        assert!(name.len() <= unit_gen::names::MAX_UNIT_NAME_LEN, "{name:?} is too long");
        assert!(name.starts_with("containerd-") && name.ends_with(".service"), "{name:?}");
        assert!(
            name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b":_.\\-".contains(&byte)),
            "{name:?} has characters systemd refuses in unit names"
        );
    }
}
