//! unit-gen: pure translation of a container's OCI spec and runtime options into the name and
//! properties of the systemd transient unit that runs it. No I/O and no D-Bus here: the shim sends
//! what this crate renders. Also home of the escaping and identifier rules every unit name obeys.

pub mod daemon_unit;
pub mod escape;
pub mod exec_unit;
pub mod identifiers;
pub mod init_unit;
pub mod names;
pub mod oci_version;
pub mod properties;
pub mod slice;

pub use daemon_unit::{render_daemon_unit, DaemonUnitRequest};
pub use exec_unit::{render_exec_unit, ExecHelperPaths, ExecUnitRequest};
pub use identifiers::{validate_identifier, IdentifierKind};
pub use init_unit::{
    render_init_unit, CgroupHierarchy, HelperPaths, InitUnitRequest, SupervisorPlacement, UnitOptions,
    SUPERVISOR_CGROUP,
};
pub use names::{DaemonTag, UnitName, UnitNaming};
pub use oci_version::validate_oci_version;
pub use properties::{ExecCommand, Property, PropertyValue, TransientUnit};

/// What can be wrong with the input to unit generation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A task id, exec id or namespace breaks containerd's identifier rule.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidIdentifier {
        /// What the identifier names.
        kind: IdentifierKind,
        /// The (shortened) offending value.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// The spec's `ociVersion` is missing, not SemVer, or not a runtime-spec version we translate.
    #[error("unsupported ociVersion \"{version}\" in the OCI runtime spec: {reason}")]
    UnsupportedOciVersion {
        /// The (shortened) declared version.
        version: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path for a unit setting has a control character, which systemd would write unescaped
    /// into the unit's file (see [`properties`]).
    #[error("{property} path \"{path}\" has a control character (a newline would start a setting of its own in the unit's file)")]
    ControlCharacterInPath {
        /// The setting, e.g. `PIDFile`.
        property: &'static str,
        /// The (shortened, escaped) path.
        path: String,
    },
    /// A slice named by the spec or the configuration is not a valid slice unit name.
    #[error("invalid slice {slice:?}: {reason}")]
    InvalidSlice {
        /// The offending slice name.
        slice: String,
        /// What rule it breaks.
        reason: &'static str,
    },
}
