//! Who this binary is: name, version, and (from `build.rs`) the git commit and Rust compiler it
//! was built with. `--version` prints them in the layout containerd's own shims use.

/// The binary's name.
pub const NAME: &str = "containerd-shim-systemd-v1";

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built from; empty when unknown.
pub const REVISION: &str = env!("SHIM_GIT_REVISION");

/// The Rust compiler's version, e.g. `1.89.0 (29483883e 2025-08-04)`; empty when unknown.
pub const RUST_VERSION: &str = env!("SHIM_RUST_VERSION");

/// What `--version` prints (containerd's shims print `Version:`, `Revision:`, `Go version:`).
pub fn version_text() -> String {
    format!(
        "{NAME}:\n  Version:  {VERSION}\n  Revision: {}\n  Rust version: {}\n",
        or_unknown(REVISION),
        or_unknown(RUST_VERSION)
    )
}

fn or_unknown(value: &str) -> &str {
    if value.is_empty() {
        "unknown"
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_names_the_binary_version_commit_and_compiler() {
        let text = version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "containerd-shim-systemd-v1:");
        assert_eq!(lines[1], format!("  Version:  {}", env!("CARGO_PKG_VERSION")));
        assert!(lines[2].starts_with("  Revision: ") && lines[2].len() > "  Revision: ".len(), "{text}");
        assert!(lines[3].starts_with("  Rust version: 1."), "built by rustc, whose version is known: {text}");
    }
}
