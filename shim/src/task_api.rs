//! Which task API version to announce to the containerd that runs `start`. containerd 1.6 reads
//! `start`'s output as a bare address (task API v2); 1.7 also accepts JSON but refuses version 3;
//! 2.x takes `{"version":3,…}` JSON and then speaks task API v3. Versions 1.7 and 2.x invoke a
//! shim identically, so we ask the containerd binary (`-publish-binary`) its version, once per
//! binary: the answer is cached under our state root, keyed by the binary's inode, size and mtime.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runc_wrap::atomic_file::{read_json, write_json_atomically};
use serde::{Deserialize, Serialize};

use crate::paths::STATE_ROOT;

/// The task API a containerd speaks to its shims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskApi {
    /// `containerd.task.v2.Task` (containerd 1.6, 1.7).
    V2,
    /// `containerd.task.v3.Task` (containerd 2.x).
    V3,
}

/// How long `containerd --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The task API of the containerd binary at `containerd_binary`; V2 when it cannot be told (a
/// bare address works with every containerd).
pub async fn detect_task_api(containerd_binary: &Path) -> TaskApi {
    let Ok(metadata) = tokio::fs::metadata(containerd_binary).await else {
        return TaskApi::V2;
    };
    let key = format!(
        "{}:{}:{}:{}",
        containerd_binary.display(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime_nsec() + metadata.mtime() * 1_000_000_000
    );
    let cache_path = PathBuf::from(STATE_ROOT).join("containerd-task-api.json");
    let cache = {
        let path = cache_path.clone();
        tokio::task::spawn_blocking(move || read_json::<HashMap<String, TaskApi>>(&path).unwrap_or_default())
            .await
            .unwrap_or_default()
    };
    if let Some(api) = cache.get(&key) {
        return *api;
    }
    let api = ask_version(containerd_binary).await;
    let mut cache = cache;
    cache.insert(key, api);
    let _ = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(STATE_ROOT).ok();
        write_json_atomically(&cache_path, &cache)
    })
    .await;
    api
}

async fn ask_version(containerd_binary: &Path) -> TaskApi {
    let output = tokio::time::timeout(
        VERSION_TIMEOUT,
        tokio::process::Command::new(containerd_binary).arg("--version").kill_on_drop(true).output(),
    )
    .await;
    match output {
        Ok(Ok(output)) if output.status.success() => task_api_of_version_line(&String::from_utf8_lossy(&output.stdout)),
        _ => TaskApi::V2,
    }
}

/// From `containerd github.com/containerd/containerd/v2 2.1.9 …`: major version ≥ 2 → V3.
pub fn task_api_of_version_line(line: &str) -> TaskApi {
    let version = line.split_whitespace().nth(2).unwrap_or_default();
    let major: u32 =
        version.trim_start_matches('v').split('.').next().and_then(|major| major.parse().ok()).unwrap_or(1);
    if major >= 2 {
        TaskApi::V3
    } else {
        TaskApi::V2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_versions_map_to_task_apis() {
        let cases = [
            ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", TaskApi::V2),
            ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1", TaskApi::V2),
            ("containerd github.com/containerd/containerd/v2 2.1.9+unknown ", TaskApi::V3),
            ("containerd github.com/containerd/containerd/v2 v2.2.0 abc", TaskApi::V3),
            ("garbage", TaskApi::V2),
        ];
        for (line, expected) in cases {
            assert_eq!(task_api_of_version_line(line), expected, "{line}");
        }
    }
}
