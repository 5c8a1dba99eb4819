//! Edits of the bundle's config.json that only the helper can make, because they depend on
//! where systemd put it (its cgroup, its `$NOTIFY_SOCKET`). Every other field stays as
//! containerd wrote it; the file is replaced atomically.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::atomic_file::write_atomically;
use crate::Error;

/// Applies `edit` to the top-level object of `<bundle>/config.json` and writes it back.
pub fn patch_config(
    bundle: &Path,
    edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), Error>,
) -> Result<(), Error> {
    let config_path = bundle.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|source| Error::StateFile { path: config_path.clone(), source })?;
    let mut config: Value =
        serde_json::from_str(&text).map_err(|source| Error::Decode { path: config_path.clone(), source })?;
    let root = config.as_object_mut().ok_or_else(|| Error::NotAnObject { path: config_path.clone() })?;
    edit(root)?;
    let json = serde_json::to_vec(&config).map_err(|source| Error::Encode { path: config_path.clone(), source })?;
    write_atomically(&config_path, &json)
}

/// The object under `key` of `parent`, created empty if missing.
pub fn object_entry<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    config_path: &Path,
) -> Result<&'a mut Map<String, Value>, Error> {
    parent
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| Error::NotAnObject { path: config_path.to_path_buf() })
}

/// Gives the container the notify relay's socket (`host_socket`, see
/// [`crate::helper::notify_relay`]) bind-mounted at `container_socket`, and `NOTIFY_SOCKET`
/// naming it in the process environment. systemd's own socket never enters the container.
pub fn expose_notify_socket(bundle: &Path, host_socket: &Path, container_socket: &str) -> Result<(), Error> {
    let config_path = bundle.join("config.json");
    patch_config(bundle, |root| {
        let mounts = root.entry("mounts").or_insert_with(|| Value::Array(Vec::new()));
        let mounts = mounts.as_array_mut().ok_or_else(|| Error::NotAnObject { path: config_path.clone() })?;
        mounts
            .push(json!({"destination": container_socket, "type": "bind", "source": host_socket, "options": ["bind"]}));
        let process = object_entry(root, "process", &config_path)?;
        let env = process.entry("env").or_insert_with(|| Value::Array(Vec::new()));
        let env = env.as_array_mut().ok_or_else(|| Error::NotAnObject { path: config_path.clone() })?;
        env.retain(|entry| !entry.as_str().is_some_and(|entry| entry.starts_with("NOTIFY_SOCKET=")));
        env.push(Value::String(format!("NOTIFY_SOCKET={container_socket}")));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_is_mounted_and_named_in_the_environment() {
        let dir = std::env::temp_dir().join(format!("runc-wrap-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = r#"{"process":{"env":["PATH=/bin","NOTIFY_SOCKET=/old"]},"mounts":[{"destination":"/proc"}]}"#;
        std::fs::write(dir.join("config.json"), config).unwrap();
        expose_notify_socket(&dir, Path::new("/run/b/notify/notify.sock"), "/run/notify/notify.sock").unwrap();
        let patched: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(patched["process"]["env"], json!(["PATH=/bin", "NOTIFY_SOCKET=/run/notify/notify.sock"]));
        assert_eq!(patched["mounts"][1]["source"], "/run/b/notify/notify.sock", "the relay's socket, not systemd's");
        assert_eq!(patched["mounts"][1]["destination"], "/run/notify/notify.sock");
        assert_eq!(patched["mounts"][0]["destination"], "/proc", "existing mounts are kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
