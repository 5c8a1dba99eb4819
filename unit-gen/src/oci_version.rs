//! Which OCI runtime-spec versions a bundle may declare. `ociVersion` "MUST be in SemVer v2.0.0
//! format" (runtime-spec `config.md`, "Specification version"), and a new major version may change
//! what every field means. We translate 1.x specs (what containerd 1.6 to 2.x, runc and CRI write:
//! `1.0.2-dev`, `1.1.0`, `1.2.0`), so a bundle declaring any other major version, no version, or
//! something that is not SemVer at all is refused before any of it becomes a unit.

use crate::identifiers::shorten;
use crate::Error;

/// The runtime-spec major version this crate translates.
pub const SUPPORTED_MAJOR: &str = "1";

/// Checks a spec's `ociVersion`: SemVer 2.0.0 (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`) with major 1.
pub fn validate_oci_version(version: &str) -> Result<(), Error> {
    match version_problem(version) {
        None => Ok(()),
        Some(reason) => Err(Error::UnsupportedOciVersion { version: shorten(version), reason }),
    }
}

fn version_problem(version: &str) -> Option<&'static str> {
    if version.is_empty() {
        return Some("the spec has none (it is required)");
    }
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre_release) = match rest.split_once('-') {
        Some((core, pre_release)) => (core, Some(pre_release)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let well_formed = numbers.len() == 3
        && numbers.iter().all(|number| is_numeric_identifier(number))
        && pre_release.is_none_or(|pre| pre.split('.').all(is_pre_release_identifier))
        && build.is_none_or(|build| build.split('.').all(is_alphanumeric_identifier));
    if !well_formed {
        return Some("it is not a SemVer 2.0.0 version");
    }
    if numbers[0] != SUPPORTED_MAJOR {
        return Some("only runtime-spec 1.x is supported");
    }
    None
}

/// SemVer's numeric identifier: digits, no leading zero (except `0` itself).
fn is_numeric_identifier(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()) && (part == "0" || !part.starts_with('0'))
}

/// A pre-release identifier: alphanumerics and `-`; when all digits, a numeric identifier.
fn is_pre_release_identifier(part: &str) -> bool {
    is_alphanumeric_identifier(part) && (!part.bytes().all(|byte| byte.is_ascii_digit()) || is_numeric_identifier(part))
}

fn is_alphanumeric_identifier(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_containerd_runc_and_cri_write_are_accepted() {
        for version in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.0.0-rc.1", "1.0.0-rc5+dev.1", "1.10.200"] {
            assert_eq!(validate_oci_version(version), Ok(()), "{version:?}");
        }
    }

    #[test]
    fn other_majors_and_non_semver_versions_are_refused_with_a_reason() {
        struct Case {
            name: &'static str,
            version: &'static str,
            reason: &'static str,
        }
        let not_semver = "it is not a SemVer 2.0.0 version";
        let other_major = "only runtime-spec 1.x is supported";
        let cases = [
            Case { name: "missing", version: "", reason: "the spec has none (it is required)" },
            Case { name: "pre-1.0 spec", version: "0.0.1", reason: other_major },
            Case { name: "future major", version: "2.0.0", reason: other_major },
            Case { name: "word", version: "latest", reason: not_semver },
            Case { name: "two numbers", version: "1.0", reason: not_semver },
            Case { name: "four numbers", version: "1.0.0.0", reason: not_semver },
            Case { name: "leading zero", version: "01.0.0", reason: not_semver },
            Case { name: "v prefix", version: "v1.0.0", reason: not_semver },
            Case { name: "empty pre-release", version: "1.0.0-", reason: not_semver },
            Case { name: "pre-release with leading zero", version: "1.0.0-01", reason: not_semver },
            Case { name: "empty build", version: "1.0.0+", reason: not_semver },
            Case { name: "spaces", version: " 1.0.0", reason: not_semver },
            Case { name: "newline", version: "1.0.0\n[Service]", reason: not_semver },
            Case { name: "unicode digit", version: "1.0.٣", reason: not_semver },
        ];
        for case in cases {
            match validate_oci_version(case.version) {
                Err(Error::UnsupportedOciVersion { reason, .. }) => {
                    assert_eq!(reason, case.reason, "case {:?}", case.name)
                }
                other => panic!("case {:?}: expected UnsupportedOciVersion, got {other:?}", case.name),
            }
        }
    }

    #[test]
    fn the_message_names_the_field_and_the_value_on_one_line() {
        let message = validate_oci_version("0.0.1\nx").unwrap_err().to_string();
        assert!(message.contains("ociVersion") && message.contains("0.0.1\\nx"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}
