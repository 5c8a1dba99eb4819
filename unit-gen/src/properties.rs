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

/// One command line for `ExecStart=`-like properties. It is an argv array handed to systemd as
/// is: no shell. Build it with [`ExecCommand::literal`], which keeps systemd from expanding
/// `$VAR` in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// Absolute path of the program.
    pub path: String,
    /// Full argv, including argv\[0\].
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
    /// `a(sasb)`: command lines for `ExecStart=` and friends.
    Exec(Vec<ExecCommand>),
    /// `(aiai)`: exit codes and signal numbers, as `SuccessExitStatus=` takes them.
    ExitStatusSet {
        /// Exit codes.
        codes: Vec<i32>,
        /// Signal numbers.
        signals: Vec<i32>,
    },
}

impl ExecCommand {
    /// `path` run with `args` (argv\[0\] is `path`), each taken literally: systemd expands
    /// `$VAR` in the arguments of `ExecStart=` when it runs the command, so `$` is written
    /// `$$`, which it turns back into `$`.
    ///
    /// Why not `ExecStartEx` with `no-env-expand`: systemd 252 writes a transient unit's
    /// `ExecStartEx` to its unit file under that name, which its own parser does not know, so
    /// after `systemctl daemon-reload` every such unit is `bad-setting` and can no longer be
    /// restarted or stopped cleanly. The plain properties survive a reload.
    pub fn literal(path: &str, args: &[&str]) -> ExecCommand {
        let mut argv = vec![path.to_string()];
        argv.extend(args.iter().map(|arg| arg.replace('$', "$$")));
        ExecCommand { path: path.to_string(), argv, ignore_failure: false }
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
