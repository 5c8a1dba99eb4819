//! systemd's two escaping schemes: unit-name escaping (`systemd-escape`, `unit_name_escape()` in
//! systemd's `src/basic/unit-name.c`) and D-Bus object-path label escaping (`bus_label_escape()`
//! in `src/basic/bus-label.c`). Both are byte-wise, so multi-byte UTF-8 is escaped byte by byte.

use std::fmt::Write;

/// Escapes `input` so it can stand inside a unit name, exactly as `systemd-escape` does: `/`
/// becomes `-`; every byte outside `[A-Za-z0-9:_.]` (including `-`, `\` and `@`) becomes `\xNN`;
/// a leading `.` becomes `\x2e` so the result never names a hidden file.
///
/// Because a literal `-` never survives, `-` can join escaped parts without ambiguity.
pub fn unit_name_escape(input: &str) -> String {
    let mut escaped = String::with_capacity(input.len());
    for (index, byte) in input.bytes().enumerate() {
        match byte {
            b'/' => escaped.push('-'),
            b'.' if index == 0 => escaped.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => escaped.push(byte as char),
            _ => push_hex(&mut escaped, "\\x", byte),
        }
    }
    escaped
}

/// Undoes [`unit_name_escape`] for a part that holds no `/`: every `\xNN` becomes its byte.
/// `None` for a part no escaping produces (a `-`, a malformed `\x`, bytes that are not UTF-8).
pub fn unit_name_unescape(escaped: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        match byte {
            b'-' => return None,
            b'\\' => {
                let hex = after.strip_prefix(b"x")?.get(..2)?;
                bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                rest = &after[3..];
            }
            _ => {
                bytes.push(byte);
                rest = after;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

/// Escapes `label` as systemd does for the last element of a unit's object path: every byte
/// outside `[A-Za-z0-9]`, and a leading digit, becomes `_xx` (lowercase hex); the empty label is `_`.
pub fn bus_label_escape(label: &str) -> String {
    if label.is_empty() {
        return "_".to_string();
    }
    let mut escaped = String::with_capacity(label.len() * 3);
    for (index, byte) in label.bytes().enumerate() {
        let keep = byte.is_ascii_alphabetic() || (byte.is_ascii_digit() && index > 0);
        if keep {
            escaped.push(byte as char);
        } else {
            push_hex(&mut escaped, "_", byte);
        }
    }
    escaped
}

/// The D-Bus object path systemd gives the unit called `unit_name`.
pub fn unit_object_path(unit_name: &str) -> String {
    format!("/org/freedesktop/systemd1/unit/{}", bus_label_escape(unit_name))
}

fn push_hex(out: &mut String, prefix: &str, byte: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{prefix}{byte:02x}");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        name: &'static str,
        input: &'static str,
        expected: &'static str,
    }

    #[test]
    fn unit_name_escape_matches_systemd_escape() {
        // Expected values are what `systemd-escape` 252 prints for the same input.
        let cases = [
            Case { name: "plain", input: "abc123", expected: "abc123" },
            Case { name: "dash", input: "a-b", expected: "a\\x2db" },
            Case { name: "dot inside", input: "a.b", expected: "a.b" },
            Case { name: "leading dot", input: ".hidden", expected: "\\x2ehidden" },
            Case { name: "backslash", input: "a\\b", expected: "a\\x5cb" },
            Case { name: "slash", input: "a/b", expected: "a-b" },
            Case { name: "at sign", input: "a@b", expected: "a\\x40b" },
            Case { name: "space", input: "a b", expected: "a\\x20b" },
            Case { name: "colon and underscore", input: "a:b_c", expected: "a:b_c" },
            Case { name: "unicode", input: "ü", expected: "\\xc3\\xbc" },
            Case { name: "dollar and percent", input: "$x%n", expected: "\\x24x\\x25n" },
            Case { name: "empty", input: "", expected: "" },
        ];
        for case in cases {
            assert_eq!(unit_name_escape(case.input), case.expected, "case {:?}", case.name);
        }
    }

    #[test]
    fn unescaping_undoes_escaping_and_refuses_what_escaping_never_makes() {
        for input in ["abc123", "a-b", ".hidden", "a\\b", "a@b", "a b", "ü", "$x%n", ""] {
            assert_eq!(unit_name_unescape(&unit_name_escape(input)).as_deref(), Some(input), "{input:?}");
        }
        for escaped in ["a-b", "a\\x2", "a\\xzz", "a\\", "\\xff"] {
            assert_eq!(unit_name_unescape(escaped), None, "{escaped:?}");
        }
    }

    #[test]
    fn bus_label_escape_matches_systemd() {
        let cases = [
            Case { name: "service", input: "dbus.service", expected: "dbus_2eservice" },
            Case { name: "leading digit", input: "1a", expected: "_31a" },
            Case { name: "digit inside", input: "a1", expected: "a1" },
            Case { name: "underscore", input: "a_b", expected: "a_5fb" },
            Case { name: "backslash escape", input: "a\\x2db", expected: "a_5cx2db" },
            Case { name: "empty", input: "", expected: "_" },
        ];
        for case in cases {
            assert_eq!(bus_label_escape(case.input), case.expected, "case {:?}", case.name);
        }
    }

    #[test]
    fn unit_object_path_has_systemd_prefix() {
        assert_eq!(unit_object_path("dbus.service"), "/org/freedesktop/systemd1/unit/dbus_2eservice");
    }
}
