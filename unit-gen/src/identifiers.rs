//! Validation of containerd identifiers (task ids, exec ids, namespaces) before they become unit
//! names, paths or command arguments. The rule is containerd's own (`pkg/identifiers`): at most 76
//! characters, alphanumeric runs joined by single `.`, `_` or `-`. Anything else is refused, which
//! also keeps `/`, `..`, NUL, whitespace, `$` and `%` out of everything we derive from an id.

use crate::Error;

/// containerd's maximum identifier length.
pub const MAX_IDENTIFIER_LEN: usize = 76;

/// Which kind of identifier is being validated, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// A container / task id.
    TaskId,
    /// An exec process id.
    ExecId,
    /// A containerd namespace.
    Namespace,
}

impl std::fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdentifierKind::TaskId => "task id",
            IdentifierKind::ExecId => "exec id",
            IdentifierKind::Namespace => "namespace",
        })
    }
}

/// Checks `value` against containerd's identifier rule.
pub fn validate_identifier(kind: IdentifierKind, value: &str) -> Result<(), Error> {
    let reason = identifier_problem(value);
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidIdentifier { kind, value: shorten(value), reason }),
    }
}

fn identifier_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return Some("must not be empty");
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Some("is longer than 76 characters");
    }
    let mut previous_was_separator = true; // an identifier may not start with a separator
    for byte in value.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => previous_was_separator = false,
            b'.' | b'_' | b'-' => {
                if previous_was_separator {
                    return Some("must start with a letter or digit and not repeat '.', '_' or '-'");
                }
                previous_was_separator = true;
            }
            _ => return Some("may only contain letters, digits, '.', '_' and '-'"),
        }
    }
    if previous_was_separator {
        return Some("must end with a letter or digit");
    }
    None
}

/// Long hostile values would flood logs and error messages: keep the first 80 characters,
/// escaping control characters so the message stays on one line.
pub(crate) fn shorten(value: &str) -> String {
    let mut shown: String = value.chars().take(80).flat_map(char::escape_debug).collect();
    if value.chars().count() > 80 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_containerd_style_identifiers() {
        for ok in ["a", "t1", "my-container", "a.b_c-d", "k8s.io", &"x".repeat(76)] {
            assert!(validate_identifier(IdentifierKind::TaskId, ok).is_ok(), "{ok:?} should be valid");
        }
    }

    #[test]
    fn refuses_hostile_identifiers_with_a_reason() {
        struct Case {
            name: &'static str,
            value: String,
        }
        let cases = [
            Case { name: "empty", value: String::new() },
            Case { name: "slash", value: "a/b".into() },
            Case { name: "dot dot", value: "..".into() },
            Case { name: "parent path", value: "../etc".into() },
            Case { name: "nul", value: "a\0b".into() },
            Case { name: "300 chars", value: "a".repeat(300) },
            Case { name: "unicode", value: "contäiner".into() },
            Case { name: "space", value: "a b".into() },
            Case { name: "dollar", value: "$HOME".into() },
            Case { name: "percent", value: "a%n".into() },
            Case { name: "newline", value: "a\nExecStart=/bin/sh".into() },
            Case { name: "leading dash", value: "-a".into() },
            Case { name: "trailing dot", value: "a.".into() },
            Case { name: "double separator", value: "a--b".into() },
            Case { name: "backslash", value: "a\\x2db".into() },
        ];
        for case in cases {
            match validate_identifier(IdentifierKind::Namespace, &case.value) {
                Err(Error::InvalidIdentifier { kind: IdentifierKind::Namespace, .. }) => {}
                other => panic!("case {:?}: expected InvalidIdentifier, got {other:?}", case.name),
            }
        }
    }

    #[test]
    fn error_message_is_short_and_single_line() {
        let error = validate_identifier(IdentifierKind::TaskId, &format!("a\n{}", "b".repeat(300)))
            .expect_err("must be refused");
        let message = error.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.len() < 200, "{message}");
        assert!(message.starts_with("invalid task id"), "{message}");
    }
}
