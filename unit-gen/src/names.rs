//! Names of the units we create. A task's unit name carries its namespace and id so that two
//! namespaces never clash and `systemctl list-units 'containerd-*'` finds every container:
//! `containerd-<namespace>-<id>.service`, each part escaped with [`unit_name_escape`]. Escaping
//! turns every `-` inside a part into `\x2d`, so the two separators are unambiguous and no task
//! name can equal another unit of ours (the daemon's own unit has more than two separators).

use sha2::{Digest, Sha256};

use crate::escape::{unit_name_escape, unit_name_unescape, unit_object_path};
use crate::identifiers::{validate_identifier, IdentifierKind};

/// systemd's limit on a unit name, without the terminating NUL (`UNIT_NAME_MAX - 1`).
pub const MAX_UNIT_NAME_LEN: usize = 255;

/// Every task unit name starts with this.
pub const TASK_UNIT_PREFIX: &str = "containerd-";

const SERVICE_SUFFIX: &str = ".service";

/// The tag the daemon of a containerd other than the default one puts in its units' names:
/// eight lowercase hex digits derived from containerd's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DaemonTag(String);

impl DaemonTag {
    /// How many hex digits a tag has.
    pub const LEN: usize = 8;

    /// `text` as a tag, if it is one: [`DaemonTag::LEN`] lowercase hex digits.
    pub fn parse(text: &str) -> Option<DaemonTag> {
        let is_tag = text.len() == Self::LEN && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        is_tag.then(|| DaemonTag(text.to_string()))
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DaemonTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a daemon names its units. Two containerds on one host may both run task `default/web`:
/// their daemons' units must not share a name, or one daemon would find (and clean up) the
/// other's. The default containerd's daemon keeps the plain names (every unit made before
/// tags existed has one); any other daemon appends its tag:
/// `containerd-<namespace>-<id>-<tag>.service`. A plain task name has two literal `-`, an exec
/// name four, a tagged task three and a tagged exec five (`-` inside the parts is escaped), so
/// no name of one form is also a name of another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum UnitNaming {
    /// The names of the default containerd's daemon.
    #[default]
    Plain,
    /// The names of another containerd's daemon.
    Tagged(DaemonTag),
}

impl UnitNaming {
    /// The unit of task `id` in `namespace` (both valid identifiers).
    pub fn task(&self, namespace: &str, id: &str) -> UnitName {
        let readable = format!("{TASK_UNIT_PREFIX}{}-{}", unit_name_escape(namespace), unit_name_escape(id));
        UnitName::with_suffix(self, readable, || {
            format!("{TASK_UNIT_PREFIX}-{}", hex_digest(&format!("{namespace}/{id}")))
        })
    }

    /// The unit of exec process `exec_id` of task `id` in `namespace` (all valid identifiers).
    pub fn exec(&self, namespace: &str, id: &str, exec_id: &str) -> UnitName {
        let readable = format!(
            "{TASK_UNIT_PREFIX}{}-{}-exec-{}",
            unit_name_escape(namespace),
            unit_name_escape(id),
            unit_name_escape(exec_id)
        );
        UnitName::with_suffix(self, readable, || {
            format!("{TASK_UNIT_PREFIX}-exec-{}", hex_digest(&format!("{namespace}/{id}/exec/{exec_id}")))
        })
    }

    /// The task unit called `name`, if this naming makes that name for some valid namespace
    /// and id (see [`UnitName::parse_task`]).
    pub fn parse_task(&self, name: &str) -> Option<UnitName> {
        match self {
            UnitNaming::Plain => UnitName::parse_task(name),
            UnitNaming::Tagged(tag) => {
                let stem = name.strip_suffix(SERVICE_SUFFIX)?.strip_suffix(tag.as_str())?.strip_suffix('-')?;
                UnitName::parse_task(&format!("{stem}{SERVICE_SUFFIX}"))?;
                (name.len() <= MAX_UNIT_NAME_LEN).then(|| UnitName { name: name.to_string() })
            }
        }
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&DaemonTag> {
        match self {
            UnitNaming::Plain => None,
            UnitNaming::Tagged(tag) => Some(tag),
        }
    }
}

/// The SHA-256 of `text` in lowercase hex: how a name that would be too long for systemd (a
/// unit) or for a socket path is shortened, readable names being kept where they fit.
pub fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The name of a container task's unit, and the D-Bus object path systemd gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnitName {
    name: String,
}

impl UnitName {
    /// The unit for task `id` in containerd namespace `namespace`, as the default containerd's
    /// daemon names it ([`UnitNaming::Plain`]). Both must already be valid identifiers. When the
    /// escaped name would exceed systemd's limit, the name becomes
    /// `containerd--<sha256 of namespace/id>.service`: a literal `--` cannot occur in the normal
    /// form, so hashed and readable names never collide.
    pub fn for_task(namespace: &str, id: &str) -> UnitName {
        UnitNaming::Plain.task(namespace, id)
    }

    /// The unit for exec process `exec_id` of task `id`: `containerd-<namespace>-<id>-exec-<exec_id>.service`
    /// (parts escaped, so the separators stay unambiguous), hashed like [`UnitName::for_task`] when too long.
    pub fn for_exec(namespace: &str, id: &str, exec_id: &str) -> UnitName {
        UnitNaming::Plain.exec(namespace, id, exec_id)
    }

    /// `readable_stem` with `naming`'s tag and `.service`; when that is too long for systemd,
    /// `hashed_stem()` in its place.
    fn with_suffix(naming: &UnitNaming, readable_stem: String, hashed_stem: impl FnOnce() -> String) -> UnitName {
        let tag = match naming {
            UnitNaming::Plain => String::new(),
            UnitNaming::Tagged(tag) => format!("-{tag}"),
        };
        let readable = format!("{readable_stem}{tag}{SERVICE_SUFFIX}");
        if readable.len() <= MAX_UNIT_NAME_LEN {
            return UnitName { name: readable };
        }
        UnitName { name: format!("{}{tag}{SERVICE_SUFFIX}", hashed_stem()) }
    }

    /// The task unit called `name`, if [`UnitName::for_task`] makes that name for some valid
    /// namespace and id: for names read back from anywhere but systemd (an exit file's name),
    /// before the daemon acts on the unit. Exec units and every other unit give `None`.
    pub fn parse_task(name: &str) -> Option<UnitName> {
        let parts = name.strip_prefix(TASK_UNIT_PREFIX)?.strip_suffix(SERVICE_SUFFIX)?;
        if let Some(hex) = parts.strip_prefix('-') {
            let is_digest = hex.len() == 64 && hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
            return is_digest.then(|| UnitName { name: name.to_string() });
        }
        let (namespace, id) = parts.split_once('-')?;
        let (namespace, id) = (unit_name_unescape(namespace)?, unit_name_unescape(id)?);
        validate_identifier(IdentifierKind::Namespace, &namespace).ok()?;
        validate_identifier(IdentifierKind::TaskId, &id).ok()?;
        // Only the one spelling `for_task` makes (e.g. not `\x61` for `a`).
        let unit = UnitName::for_task(&namespace, &id);
        (unit.as_str() == name).then_some(unit)
    }

    /// Wraps a unit name read back from systemd.
    pub fn from_raw(name: impl Into<String>) -> UnitName {
        UnitName { name: name.into() }
    }

    /// The unit name, e.g. `containerd-default-t1.service`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The unit's D-Bus object path, e.g. `/org/freedesktop/systemd1/unit/containerd_2ddefault_2dt1_2eservice`.
    pub fn object_path(&self) -> String {
        unit_object_path(&self.name)
    }
}

impl std::fmt::Display for UnitName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_unit_name_carries_namespace_and_id() {
        assert_eq!(UnitName::for_task("default", "t1").as_str(), "containerd-default-t1.service");
    }

    #[test]
    fn dashes_dots_and_backslashes_are_escaped_so_parts_stay_apart() {
        assert_eq!(UnitName::for_task("k8s.io", "a-b").as_str(), "containerd-k8s.io-a\\x2db.service");
        assert_eq!(UnitName::for_task("ns", ".x").as_str(), "containerd-ns-\\x2ex.service");
        assert_eq!(UnitName::for_task("ns", "a\\b").as_str(), "containerd-ns-a\\x5cb.service");
        assert_eq!(UnitName::for_task("ns", "ü").as_str(), "containerd-ns-\\xc3\\xbc.service");
        // "a-b" + "c" and "a" + "b-c" would collide if '-' were kept.
        assert_ne!(UnitName::for_task("a-b", "c"), UnitName::for_task("a", "b-c"));
    }

    #[test]
    fn same_id_in_two_namespaces_gives_two_units() {
        assert_ne!(UnitName::for_task("ns1", "t1"), UnitName::for_task("ns2", "t1"));
    }

    #[test]
    fn overlong_names_are_hashed_within_systemds_limit() {
        // Both parts valid containerd identifiers of 75 characters, 37 of them dashes: escaped,
        // each grows to 223 bytes, far past systemd's 255-byte limit together.
        let id = "a-".repeat(37) + "a";
        let name = UnitName::for_task(&id, &id);
        assert!(name.as_str().len() <= MAX_UNIT_NAME_LEN, "{name}");
        assert!(name.as_str().starts_with("containerd--"), "{name}");
        assert!(name.as_str().ends_with(".service"), "{name}");
        assert_ne!(name, UnitName::for_task("other", &id));
        assert_ne!(name, UnitName::for_task(&id, "other"));
        assert_eq!(name, UnitName::for_task(&id, &id), "hashing must be deterministic");
    }

    #[test]
    fn exec_unit_names_are_distinct_from_task_units_and_each_other() {
        assert_eq!(UnitName::for_exec("default", "t1", "e1").as_str(), "containerd-default-t1-exec-e1.service");
        assert_eq!(UnitName::for_exec("ns", "a-b", "e-1").as_str(), "containerd-ns-a\\x2db-exec-e\\x2d1.service");
        // A task id cannot produce an exec unit's name: its dashes are escaped.
        assert_ne!(UnitName::for_exec("ns", "t", "e").as_str(), UnitName::for_task("ns", "t-exec-e").as_str());
        assert_ne!(UnitName::for_exec("ns", "t", "e1"), UnitName::for_exec("ns", "t", "e2"));
        let long = "a-".repeat(37) + "a";
        let hashed = UnitName::for_exec(&long, &long, &long);
        assert!(hashed.as_str().len() <= MAX_UNIT_NAME_LEN && hashed.as_str().starts_with("containerd--exec-"));
        assert_ne!(hashed, UnitName::for_exec(&long, &long, "other"));
    }

    #[test]
    fn task_unit_names_parse_back_and_nothing_else_does() {
        let long = "a-".repeat(37) + "a";
        for (namespace, id) in [("default", "t1"), ("k8s.io", "a-b.c_d"), (long.as_str(), long.as_str())] {
            let unit = UnitName::for_task(namespace, id);
            assert_eq!(UnitName::parse_task(unit.as_str()), Some(unit.clone()), "{unit}");
        }
        for name in [
            "ssh.service",
            "containerd.service",
            "containerd-shim-systemd-v1-0123456789abcdef.service",
            "containerd-default-t1-exec-e1.service",
            "containerd-default.service",
            "containerd-default-t1.scope",
            "containerd-default-a-b.service",
            "containerd-default-\\x61.service",
            "containerd-default-\\x2e\\x2e.service",
            "containerd-..-t1.service",
            "containerd--0123.service",
            "containerd--exec-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.service",
            "containerd-default-t1.service/../x",
        ] {
            assert_eq!(UnitName::parse_task(name), None, "{name:?}");
        }
    }

    fn tagged() -> UnitNaming {
        UnitNaming::Tagged(DaemonTag::parse("0a1b2c3d").unwrap())
    }

    #[test]
    fn another_containerds_daemon_tags_its_names_and_no_form_meets_another() {
        assert_eq!(tagged().task("default", "web").as_str(), "containerd-default-web-0a1b2c3d.service");
        assert_eq!(tagged().exec("default", "web", "e1").as_str(), "containerd-default-web-exec-e1-0a1b2c3d.service");
        assert_eq!(UnitNaming::Plain.task("default", "web"), UnitName::for_task("default", "web"));
        assert_ne!(tagged().task("default", "web"), UnitName::for_task("default", "web"));
        // A plain exec name and a tagged task name never meet: their dashes differ in number.
        assert_ne!(tagged().task("ns", "t").as_str(), UnitName::for_exec("ns", "t", "0a1b2c3d").as_str());
        let long = "a-".repeat(37) + "a";
        let hashed = tagged().task(&long, &long);
        assert!(hashed.as_str().len() <= MAX_UNIT_NAME_LEN && hashed.as_str().ends_with("-0a1b2c3d.service"));
        assert_ne!(hashed.as_str(), UnitName::for_task(&long, &long).as_str());
    }

    #[test]
    fn tagged_names_parse_back_for_their_own_tag_only() {
        let long = "a-".repeat(37) + "a";
        for (namespace, id) in [("default", "t1"), ("k8s.io", "a-b.c_d"), (long.as_str(), long.as_str())] {
            let unit = tagged().task(namespace, id);
            assert_eq!(tagged().parse_task(unit.as_str()), Some(unit.clone()), "{unit}");
            assert_eq!(UnitName::parse_task(unit.as_str()), None, "{unit} is no plain name");
            let other = UnitNaming::Tagged(DaemonTag::parse("ffffffff").unwrap());
            assert_eq!(other.parse_task(unit.as_str()), None, "{unit} is not the other daemon's");
        }
        assert_eq!(tagged().parse_task("containerd-default-t1.service"), None);
        assert_eq!(tagged().parse_task("containerd-default-t1-exec-e1-0a1b2c3d.service"), None);
        assert_eq!(DaemonTag::parse("0A1B2C3D"), None);
        assert_eq!(DaemonTag::parse("0a1b2c3"), None);
        assert_eq!(DaemonTag::parse("../../x"), None);
    }

    #[test]
    fn object_path_uses_bus_label_escaping() {
        assert_eq!(
            UnitName::for_task("default", "t1").object_path(),
            "/org/freedesktop/systemd1/unit/containerd_2ddefault_2dt1_2eservice"
        );
    }
}
