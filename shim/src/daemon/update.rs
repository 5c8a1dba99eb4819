//! Update: applies new resource limits to a running container with `runc update`, which writes
//! them into the container's cgroup (`<unit cgroup>/container`).

use std::sync::atomic::Ordering;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use oci_spec::runtime::LinuxResources;

use super::manager::TaskManager;
use super::task::TaskKey;
use crate::blocking::blocking;
use crate::error::Error;

/// The type containerd gives the resources of an update (`typeurl` of `specs.LinuxResources`).
const RESOURCES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

impl TaskManager {
    /// Applies `resources` (JSON of an OCI `LinuxResources`) to task `key`.
    pub async fn update(&self, key: &TaskKey, resources: Option<&Any>) -> Result<(), Error> {
        let json = resources_json(resources)?;
        let task = self.task(key)?;
        self.require_state(&task, "update resources", |lifecycle| lifecycle.can_kill())?;
        // Concurrent updates of one task each get their own file.
        let sequence = self.update_sequence.fetch_add(1, Ordering::Relaxed);
        let path = task.bundle.join(format!("shim-update-{sequence}.json"));
        let write_path = path.clone();
        blocking("writing the resources", move || std::fs::write(&write_path, json))
            .await?
            .map_err(|error| Error::io(format!("writing {}", path.display()), error))?;
        let result = task.runc.update(&key.id, &path).await.map_err(Error::Runc);
        let _ = tokio::fs::remove_file(&path).await;
        result
    }
}

/// The resources, checked to be an OCI `LinuxResources`, as JSON for `runc update -r`.
fn resources_json(resources: Option<&Any>) -> Result<Vec<u8>, Error> {
    let Some(resources) = resources else {
        return Err(Error::InvalidRequest("update without resources".into()));
    };
    if !resources.type_url.is_empty() && resources.type_url != RESOURCES_TYPE_URL {
        return Err(Error::InvalidRequest(format!(
            "resources of type {:?} are not supported (expected {RESOURCES_TYPE_URL})",
            resources.type_url
        )));
    }
    serde_json::from_slice::<LinuxResources>(&resources.value).map_err(|source| Error::InvalidResources { source })?;
    Ok(resources.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, value: &str) -> Any {
        Any { type_url: type_url.into(), value: value.as_bytes().to_vec(), ..Default::default() }
    }

    #[test]
    fn resources_must_be_oci_linux_resources() {
        let good = r#"{"memory":{"limit":67108864},"cpu":{"shares":512}}"#;
        assert_eq!(resources_json(Some(&any(RESOURCES_TYPE_URL, good))).unwrap(), good.as_bytes());
        let cases = [
            ("missing", None, "without resources"),
            ("wrong type", Some(any("types.containerd.io/other", good)), "not supported"),
        ];
        // InvalidRequest says what is wrong in words only, and those words are what containerd
        // shows.
        for (name, resources, expected) in cases {
            let error = resources_json(resources.as_ref()).expect_err(name);
            assert!(matches!(error, Error::InvalidRequest(_)), "{name}: {error:?}");
            assert!(error.to_string().contains(expected), "{name}: {error}");
        }
        for (name, value) in [("not json", "{"), ("wrong shape", r#"{"memory":{"limit":"lots"}}"#)] {
            let error = resources_json(Some(&any(RESOURCES_TYPE_URL, value))).expect_err(name);
            assert!(matches!(error, Error::InvalidResources { .. }), "{name}: {error:?}");
        }
    }
}
