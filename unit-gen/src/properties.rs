//! A D-Bus-free model of transient unit properties, close to what `StartTransientUnit` takes
//! (`a(sv)`). The shim converts it to D-Bus values; this crate only decides what they are.
//!
//! systemd also writes every transient unit to a file under `/run/systemd/transient/`, which a
//! `daemon-reload` parses again. It quotes and escapes command lines and `Environment=` there,
//! but writes plain string settings (`Description=`, `PIDFile=`, …) as they are, escaping only
//! `%` (systemd 252, `unit_write_setting()`): a newline in such a value starts a line of its own,
//! which the next reload reads as a setting, `ExecStartPost=` included. So free text goes
//! through [`single_line`], and paths with control characters are refused
//! ([`check_single_line_path`]).

use crate::identifiers::shorten;
use crate::names::UnitName;
use crate::Error;

/// `text` with every control character (newline, carriage return, tab, …) escaped as Rust
/// escapes it (`\n`), so it stays one line of a unit file and reads the same to a human.
pub fn single_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_control() {
            line.extend(character.escape_default());
        } else {
            line.push(character);
        }
    }
    line
}

/// Refuses a path for string setting `property` that has a control character: a path must stay
/// exact, so it cannot be escaped like free text.
pub fn check_single_line_path(property: &'static str, path: &str) -> Result<(), Error> {
    if path.chars().any(char::is_control) {
        return Err(Error::ControlCharacterInPath { property, path: shorten(path) });
    }
    Ok(())
}

/// One command line for `ExecStart=`-like properties: an argv array handed to systemd as is, no
/// shell, every argument meant literally. [`exec_property`] writes it in the syntax the running
/// systemd keeps intact across `daemon-reload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// Absolute path of the program.
    pub path: String,
    /// Full argv, including argv\[0\], as the program must receive it.
    pub argv: Vec<String>,
    /// Whether a non-zero exit of this command is ignored (the `-` prefix in unit files).
    pub ignore_failure: bool,
}

/// The value of one property, typed the way systemd expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// `s`
    Str(String),
    /// `b`
    Bool(bool),
    /// `u`
    U32(u32),
    /// `t`
    U64(u64),
    /// `as`
    StrList(Vec<String>),
    /// `a(ss)`: device rules (path or class, access), as `DeviceAllow=` takes them.
    DeviceRules(Vec<(String, String)>),
    /// `a(sasb)`: command lines for `ExecStart=` and friends, `$` already written `$$`.
    Exec(Vec<ExecCommand>),
    /// `a(sasas)`: command lines for `ExecStartEx=` and friends, taken literally
    /// (`no-env-expand`, and `ignore-failure` where the command says so).
    ExecEx(Vec<ExecCommand>),
    /// `(aiai)`: exit codes and signal numbers, as `SuccessExitStatus=` takes them.
    ExitStatusSet {
        /// Exit codes.
        codes: Vec<i32>,
        /// Signal numbers.
        signals: Vec<i32>,
    },
}

impl ExecCommand {
    /// `path` run with `args` (argv\[0\] is `path`), each taken literally.
    pub fn literal(path: &str, args: &[&str]) -> ExecCommand {
        let mut argv = vec![path.to_string()];
        argv.extend(args.iter().map(|arg| arg.to_string()));
        ExecCommand { path: path.to_string(), argv, ignore_failure: false }
    }

    /// The same command for a plain `ExecStart=`, which expands `$VAR` in the arguments when it
    /// runs them: `$` written `$$`, which it turns back into `$`.
    fn with_dollars_escaped(&self) -> ExecCommand {
        let mut argv = vec![self.argv.first().cloned().unwrap_or_default()];
        argv.extend(self.argv.iter().skip(1).map(|arg| arg.replace('$', "$$")));
        ExecCommand { argv, ..self.clone() }
    }
}

/// The first systemd whose transient unit files keep an `ExecStartEx=` command with
/// `no-env-expand` through `daemon-reload` (it writes them as `ExecStart=:…`, and 254 is where
/// `systemd-run --expand-environment=no` relies on that). 252 writes them under a name its own
/// parser rejects, and the unit is `bad-setting` after a reload.
const FIRST_SYSTEMD_THAT_RELOADS_EXEC_EX: u32 = 254;

/// Property `name` (`ExecStart`, `ExecStopPost`, …) running `command`, in the syntax a systemd of
/// major version `systemd_version` keeps intact across `daemon-reload`: from 254 on, the `…Ex`
/// form with `no-env-expand` (those systemds write a plain command's `$$` back as `$$$$`, so a
/// `$` would come back doubled); before, the plain form with `$` written `$$`, which they store
/// as they got it.
pub fn exec_property(name: &str, command: ExecCommand, systemd_version: u32) -> Property {
    if systemd_version >= FIRST_SYSTEMD_THAT_RELOADS_EXEC_EX {
        Property::new(format!("{name}Ex"), PropertyValue::ExecEx(vec![command]))
    } else {
        Property::new(name, PropertyValue::Exec(vec![command.with_dollars_escaped()]))
    }
}

/// One `(name, value)` pair of a transient unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The property name as systemd's D-Bus API spells it, e.g. `ExecStart`.
    pub name: String,
    /// Its value.
    pub value: PropertyValue,
}

impl Property {
    /// A property called `name` with `value`.
    pub fn new(name: impl Into<String>, value: PropertyValue) -> Property {
        Property { name: name.into(), value }
    }
}

/// A transient unit ready to be started: its name and properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransientUnit {
    /// The unit's name.
    pub name: UnitName,
    /// Its properties, in the order they are sent.
    pub properties: Vec<Property>,
}

impl TransientUnit {
    /// The value of property `name`, if set.
    pub fn property(&self, name: &str) -> Option<&PropertyValue> {
        self.properties.iter().find(|property| property.name == name).map(|property| &property.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_kept_on_one_line() {
        assert_eq!(single_line("containerd task ns/t1"), "containerd task ns/t1");
        assert_eq!(single_line("a\n[Service]\nExecStartPost=/bin/x"), "a\\n[Service]\\nExecStartPost=/bin/x");
        assert_eq!(single_line("cr\r tab\t nul\0 del\u{7f} c1\u{85}"), "cr\\r tab\\t nul\\u{0} del\\u{7f} c1\\u{85}");
        assert_eq!(single_line("%n $HOME ü \\ \""), "%n $HOME ü \\ \"", "only control characters change");
    }

    #[test]
    fn paths_with_control_characters_are_refused() {
        assert_eq!(check_single_line_path("PIDFile", "/run/b %n $X ü/init.pid"), Ok(()));
        for path in ["/b/x\n[Service]\nExecStartPost=/bin/touch /tmp/p /init.pid", "/b\r/init.pid", "/b\t/x"] {
            let error = check_single_line_path("PIDFile", path).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with("PIDFile path ") && !message.contains('\n'), "{message}");
        }
    }
}
