//! What the unit tests share.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A fresh, empty directory under the temporary directory, named for the test and this
/// process, and removed with everything in it when dropped.
pub struct ScratchDir(PathBuf);

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A [`ScratchDir`] named `<prefix>-<name>-<pid>`.
pub fn scratch_dir(prefix: &str, name: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    ScratchDir(dir)
}

mod fake_runtime;

pub use fake_runtime::{FakeRuntimes, RuntimeCall};
