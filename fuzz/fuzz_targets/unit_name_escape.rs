//! systemd's escaping as unit-gen implements it (`unit_gen::escape`, `unit_gen::names`):
//! - `unit_name_escape` only produces `[A-Za-z0-9:_.\-]` (the `\xNN` escapes included), never a
//!   leading `.`, and is reversible: `/` is the only source of `-`, `\xNN` the only source of `\`;
//! - `bus_label_escape` only produces `[A-Za-z0-9_]`, never a leading digit, and is reversible;
//! - task and exec unit names of valid identifiers are valid unit names within systemd's limit,
//!   and two different (namespace, id[, exec id]) never share a name, readable or hashed.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use unit_gen::escape::{bus_label_escape, unit_name_escape};
use unit_gen::names::MAX_UNIT_NAME_LEN;
use unit_gen::{validate_identifier, IdentifierKind, UnitName};

#[derive(Arbitrary, Debug)]
struct Input {
    text: String,
    /// Two tasks (namespace, id) and an exec id.
    first: (String, String),
    second: (String, String),
    exec_id: String,
}

fuzz_target!(|input: Input| {
    let escaped = unit_name_escape(&input.text);
    assert!(
        escaped.bytes().all(|byte| byte.is_ascii_alphanumeric() || b":_.\\-".contains(&byte)),
        "{escaped:?} has characters outside systemd's unit-name set"
    );
    assert!(!escaped.starts_with('.'), "{escaped:?} starts with a dot");
    assert_eq!(unescape_unit_name(&escaped).as_deref(), Some(input.text.as_bytes()), "{escaped:?}");

    let label = bus_label_escape(&input.text);
    assert!(label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_'), "{label:?}");
    assert!(!label.starts_with(|c: char| c.is_ascii_digit()), "{label:?} starts with a digit");
    assert_eq!(unescape_bus_label(&label).as_deref(), Some(input.text.as_bytes()), "{label:?}");

    let valid = |kind, value: &str| validate_identifier(kind, value).is_ok();
    let task_ok = |(namespace, id): &(String, String)| {
        valid(IdentifierKind::Namespace, namespace) && valid(IdentifierKind::TaskId, id)
    };
    if !(task_ok(&input.first) && task_ok(&input.second) && valid(IdentifierKind::ExecId, &input.exec_id)) {
        return;
    }
    let task = |(namespace, id): &(String, String)| UnitName::for_task(namespace, id);
    let exec = |(namespace, id): &(String, String)| UnitName::for_exec(namespace, id, &input.exec_id);
    let names = [task(&input.first), task(&input.second), exec(&input.first), exec(&input.second)];
    for name in &names {
        let name = name.as_str();
        assert!(name.len() <= MAX_UNIT_NAME_LEN, "{name:?} is longer than systemd allows");
        assert!(name.starts_with("containerd-") && name.ends_with(".service"), "{name:?}");
        assert!(name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b":_.\\-".contains(&byte)), "{name:?}");
    }
    let same_task = input.first == input.second;
    assert_eq!(names[0] == names[1], same_task, "tasks {:?} and {:?} share {}", input.first, input.second, names[0]);
    assert_eq!(names[2] == names[3], same_task, "execs of {:?} and {:?} share {}", input.first, input.second, names[2]);
    for task_name in &names[..2] {
        for exec_name in &names[2..] {
            assert_ne!(task_name, exec_name, "a task and an exec share a unit name");
        }
    }
});

/// The inverse of `unit_name_escape` (systemd's `unit_name_unescape`): `-` is `/`, `\xNN` a byte.
fn unescape_unit_name(escaped: &str) -> Option<Vec<u8>> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'-' => out.push(b'/'),
            b'\\' => {
                if bytes.get(index + 1) != Some(&b'x') {
                    return None;
                }
                out.push(hex_byte(bytes.get(index + 2..index + 4)?)?);
                index += 3;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    Some(out)
}

/// The inverse of `bus_label_escape` (systemd's `bus_label_unescape`): `_xx` is a byte, `_` alone
/// the empty label.
fn unescape_bus_label(label: &str) -> Option<Vec<u8>> {
    if label == "_" {
        return Some(Vec::new());
    }
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'_' {
            out.push(hex_byte(bytes.get(index + 1..index + 3)?)?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    Some(out)
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    if pair.len() != 2 || !pair.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()
}
