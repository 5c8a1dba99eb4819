//! A D-Bus-free model of transient unit properties, close to what `StartTransientUnit` takes
//! (`a(sv)`). The shim converts it to D-Bus values; this crate only decides what they are.

use crate::names::UnitName;

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
