//! Conversion of unit-gen's D-Bus-free property model into the `a(sv)` systemd takes.

use unit_gen::{Property, PropertyValue};
use zbus::Variant;

/// The `(name, value)` pairs for `StartTransientUnit`.
pub(crate) fn to_dbus_properties(properties: &[Property]) -> Vec<(String, Variant<'static>)> {
    properties.iter().map(|property| (property.name.clone(), to_variant(&property.value))).collect()
}

fn to_variant(value: &PropertyValue) -> Variant<'static> {
    match value {
        PropertyValue::Str(text) => Variant::from(text.clone()),
        PropertyValue::Bool(flag) => Variant::from(*flag),
        PropertyValue::U32(number) => Variant::from(*number),
        PropertyValue::U64(number) => Variant::from(*number),
        PropertyValue::StrList(items) => Variant::from(items.clone()),
        // a(ss)
        PropertyValue::DeviceRules(rules) => Variant::from(rules.clone()),
        PropertyValue::ExitStatusSet { codes, signals } => Variant::from((codes.clone(), signals.clone())),
        PropertyValue::Exec(commands) => Variant::from(
            commands
                .iter()
                .map(|command| (command.path.clone(), command.argv.clone(), command.ignore_failure))
                .collect::<Vec<_>>(),
        ),
        // a(sasas): the flags are systemd's `ExecStartEx=` prefixes by name.
        PropertyValue::ExecEx(commands) => Variant::from(
            commands
                .iter()
                .map(|command| {
                    let mut flags = vec!["no-env-expand".to_string()];
                    if command.ignore_failure {
                        flags.push("ignore-failure".to_string());
                    }
                    (command.path.clone(), command.argv.clone(), flags)
                })
                .collect::<Vec<_>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unit_gen::ExecCommand;

    #[test]
    fn exec_commands_have_the_systemd_signature() {
        let property = Property::new(
            "ExecStart",
            PropertyValue::Exec(vec![ExecCommand {
                path: "/bin/x".into(),
                argv: vec!["x".into()],
                ignore_failure: true,
            }]),
        );
        assert_eq!(to_dbus_properties(&[property])[0].1.value_signature().to_string(), "a(sasb)");
        let command =
            ExecCommand { path: "/bin/x".into(), argv: vec!["x".into(), "$HOME".into()], ignore_failure: false };
        let ex = Property::new("ExecStartEx", PropertyValue::ExecEx(vec![command]));
        let (_, value) = &to_dbus_properties(&[ex])[0];
        assert_eq!(value.value_signature().to_string(), "a(sasas)");
        let expected =
            vec![("/bin/x".to_string(), vec!["x".to_string(), "$HOME".to_string()], vec!["no-env-expand".to_string()])];
        assert_eq!(*value, Variant::from(expected), "the argument as given, and no expansion");
    }

    #[test]
    fn scalar_signatures() {
        let properties = [
            Property::new("Type", PropertyValue::Str("forking".into())),
            Property::new("Delegate", PropertyValue::Bool(true)),
            Property::new("TasksMax", PropertyValue::U64(u64::MAX)),
            Property::new("Environment", PropertyValue::StrList(vec!["A=1".into()])),
        ];
        let signatures: Vec<String> =
            to_dbus_properties(&properties).iter().map(|(_, value)| value.value_signature().to_string()).collect();
        assert_eq!(signatures, ["s", "b", "t", "as"]);
        let statuses =
            Property::new("SuccessExitStatus", PropertyValue::ExitStatusSet { codes: vec![1], signals: vec![9] });
        assert_eq!(to_dbus_properties(&[statuses])[0].1.value_signature().to_string(), "(aiai)");
        let devices = Property::new("DeviceAllow", PropertyValue::DeviceRules(vec![("char-*".into(), "rwm".into())]));
        assert_eq!(to_dbus_properties(&[devices])[0].1.value_signature().to_string(), "a(ss)");
    }
}
