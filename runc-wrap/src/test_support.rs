//! What the unit tests share.

use std::path::PathBuf;

/// A fresh, empty directory under the temporary directory, named for the test (`prefix`,
/// `name`) and this process.
pub fn scratch_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}
