//! Ids of containerd's connections to the daemon. An id names the connection in systemd's fd
//! store (`FDNAME`) and its directory of pending `Wait` notes, which a closed connection's relay
//! removes whole: so an id read back from the fd store is checked before it becomes a path, and
//! a fresh id never repeats one an earlier daemon left behind, even one whose pid was the same.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// The longest id accepted: far above the ones [`ConnectionIds`] makes (48 characters), far
/// below systemd's 255-character `FDNAME` limit.
pub const MAX_CONNECTION_ID_LEN: usize = 64;

/// A connection id that is safe as one path component: ASCII letters, digits and `-` only, so
/// never empty, `.`, `..` or anything with a `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// Checks an id read back from the fd store (or anywhere outside this process).
    pub fn parse(id: &str) -> Result<ConnectionId, Error> {
        let refuse = |reason| Err(Error::InvalidConnectionId { id: id.chars().take(80).collect(), reason });
        if id.is_empty() {
            return refuse("must not be empty");
        }
        if id.len() > MAX_CONNECTION_ID_LEN {
            return refuse("is longer than 64 characters");
        }
        if !id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
            return refuse("may only contain ASCII letters, digits and '-'");
        }
        Ok(ConnectionId(id.to_string()))
    }

    /// The id, e.g. `4242-9f3c0e1d2b4a6c8e-7`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes this daemon's connection ids: `<pid>-<instance>-<counter>`. The pid alone repeats
/// once the kernel reuses it, and a later daemon with an earlier one's pid would then take
/// that daemon's leftover notes for its own; the instance tag, 64 random bits drawn once per
/// daemon, tells the two apart.
pub struct ConnectionIds {
    prefix: String,
    next: AtomicU64,
}

impl ConnectionIds {
    /// The ids of the daemon process `pid`, tagged with `instance` (random, see the type's doc).
    pub fn new(pid: u32, instance: u64) -> ConnectionIds {
        ConnectionIds { prefix: format!("{pid}-{instance:016x}"), next: AtomicU64::new(0) }
    }

    /// A fresh id.
    pub fn next(&self) -> ConnectionId {
        ConnectionId(format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_no_single_safe_path_component_are_refused() {
        struct Case {
            name: &'static str,
            id: String,
        }
        let cases = [
            Case { name: "empty", id: String::new() },
            Case { name: "dot", id: ".".into() },
            Case { name: "dot dot", id: "..".into() },
            Case { name: "slash", id: "a/b".into() },
            Case { name: "parent path", id: "../x".into() },
            Case { name: "absolute", id: "/etc".into() },
            Case { name: "nul", id: "a\0b".into() },
            Case { name: "colon (FDNAME separator)", id: "a:b".into() },
            Case { name: "too long", id: "a".repeat(MAX_CONNECTION_ID_LEN + 1) },
            Case { name: "unicode", id: "ä".into() },
        ];
        for case in cases {
            match ConnectionId::parse(&case.id) {
                Err(Error::InvalidConnectionId { .. }) => {}
                other => panic!("case {:?}: expected InvalidConnectionId, got {other:?}", case.name),
            }
        }
    }

    #[test]
    fn ids_of_this_and_earlier_daemons_are_accepted() {
        for id in ["123-4", "4242-9f3c0e1d2b4a6c8e-7", &"a".repeat(MAX_CONNECTION_ID_LEN)] {
            assert_eq!(ConnectionId::parse(id).expect(id).as_str(), id);
        }
    }

    #[test]
    fn fresh_ids_parse_back_and_do_not_repeat_when_a_pid_does() {
        let earlier = ConnectionIds::new(4242, 1);
        let later = ConnectionIds::new(4242, 2);
        let (first, second, reused_pid) = (earlier.next(), earlier.next(), later.next());
        assert_ne!(first, second);
        assert_ne!(first, reused_pid, "same pid, same counter, another daemon");
        let longest = ConnectionIds::new(u32::MAX, u64::MAX);
        longest.next.store(u64::MAX, Ordering::Relaxed);
        for id in [first, second, reused_pid, longest.next()] {
            assert_eq!(ConnectionId::parse(id.as_str()).expect("a fresh id is valid"), id);
        }
    }
}
