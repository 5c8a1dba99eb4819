//! Build-time facts for `--version` and `-info`: the git commit the binary is built from and the
//! Rust compiler that built it. A build outside a git checkout (a release tarball) can name its
//! commit through `CONTAINERD_SHIM_SYSTEMD_REVISION`; without either the revision is empty.

use std::path::{Path, PathBuf};
use std::process::Command;

const REVISION_ENV: &str = "CONTAINERD_SHIM_SYSTEMD_REVISION";

fn main() {
    println!("cargo:rerun-if-env-changed={REVISION_ENV}");
    let revision = std::env::var(REVISION_ENV).ok().filter(|revision| !revision.is_empty()).or_else(git_revision);
    println!("cargo:rustc-env=SHIM_GIT_REVISION={}", revision.unwrap_or_default());

    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rust_version = run(Command::new(rustc).arg("--version")).unwrap_or_default();
    // "rustc 1.89.0 (29483883e 2025-08-04)" → "1.89.0 (29483883e 2025-08-04)"
    let rust_version = rust_version.strip_prefix("rustc ").unwrap_or(&rust_version).to_string();
    println!("cargo:rustc-env=SHIM_RUST_VERSION={rust_version}");

    // Rust's own link, with no options added: position-independent, as every distribution builds
    // its daemons (the daemon runs as root for every tenant of a node and parses what containerd
    // and D-Bus send it, so its addresses are randomised), and the compiler's code order.
    // docs/benchmarks.md has what the relocations cost and what a recorded code order saved.
}

/// `git rev-parse HEAD`, and the files whose change means HEAD moved (so that this script runs
/// again after a commit or checkout, and only then).
fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "HEAD"])?;
    let mut watched = vec![git_path("HEAD"), git_path("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git_path(&branch));
    }
    for path in watched.into_iter().flatten().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(revision)
}

/// Where git keeps `name` (a worktree's HEAD is its own, its refs are the repository's).
fn git_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(&["rev-parse", "--git-path", name])?);
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)?;
    Some(if path.is_absolute() { path } else { Path::new(&manifest_dir).join(path) })
}

fn git(args: &[&str]) -> Option<String> {
    run(Command::new("git").args(args))
}

fn run(command: &mut Command) -> Option<String> {
    let output = command.output().ok().filter(|output| output.status.success())?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
