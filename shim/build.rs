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

    // Position-independent, as every distribution builds its daemons: the daemon runs as root
    // for every tenant of a node and parses what containerd and D-Bus send it, so its addresses
    // are randomised (ASLR). What the relocations cost at start: docs/benchmarks.md.
    order_daemon_code(&rust_version);
}

/// The daemon executes about a third of the binary's code (1.2 of 3.4 MB, `tests/code-order`);
/// spread through the binary, it touched nearly every 64 KiB window of it, and the kernel maps
/// a whole window on a fault, so all 3.3 MB were resident. Linked first and together, only
/// its own pages are. The list names the functions (symbols) the daemon ran in a recorded
/// workload; a function not in it (one renamed since, or a cold path) is linked after them and
/// works the same. The order is a linker option of LLD, which Rust uses on x86-64 Linux from
/// 1.90 on; other builds link in the default order.
fn order_daemon_code(rust_version: &str) {
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return;
    };
    let order = manifest_dir.join(CODE_ORDER);
    println!("cargo:rerun-if-changed={}", order.display());
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !release || target != "x86_64-unknown-linux-gnu" || !links_with_lld(rust_version) || !order.exists() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// The file listing the daemon's functions, in link order.
const CODE_ORDER: &str = "daemon-code-order.txt";

/// Whether this compiler links x86-64 Linux binaries with its own LLD: 1.90 and later.
fn links_with_lld(rust_version: &str) -> bool {
    let mut numbers = rust_version.split(['.', ' ']).map(|part| part.parse::<u32>().ok());
    matches!((numbers.next(), numbers.next()), (Some(Some(1)), Some(Some(minor))) if minor >= 90)
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
