//! Bad input through our `start` subcommand, as containerd runs it: a hostile namespace or id
//! fails it, with nothing on stdout for containerd to take for an address.

use tests::direct::start_shim;
use tests::Sandbox;

/// `start` for task `id` of `namespace` fails (exit 1) with an error saying what is invalid,
/// and prints no address.
fn start_refuses(namespace: &str, id: &str) {
    let (run, address) = start_shim(Sandbox::get(), namespace, id);
    assert_eq!(address, None);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("invalid"), "{run:?}");
    assert!(run.stdout.is_empty(), "nothing on stdout for containerd to misread: {run:?}");
}

#[test]
fn start_with_a_slash_in_the_namespace_is_invalid_and_prints_no_address() {
    start_refuses("a/b", "t");
}

#[test]
fn start_with_namespace_dot_dot_is_invalid_and_prints_no_address() {
    start_refuses("..", "t");
}

#[test]
fn start_with_a_namespace_of_300_characters_is_invalid_and_prints_no_address() {
    start_refuses(&"n".repeat(300), "t");
}

#[test]
fn start_with_a_slash_in_the_id_is_invalid_and_prints_no_address() {
    start_refuses("default", "x/y");
}

#[test]
fn start_with_a_nul_like_escape_in_the_id_is_invalid_and_prints_no_address() {
    start_refuses("default", "a\\x00b");
}
