//! Finding the snapshot an image is unpacked under: image → manifest (through an index if the
//! image is multi-platform) → config → `rootfs.diff_ids` → chain id, the way containerd's Go
//! client does before `Snapshots.Prepare` (`image.RootFS` + `identity.ChainID`).

use sha2::{Digest, Sha256};

/// Media types of a multi-platform index (OCI image spec `image-index.md`, and Docker's
/// manifest list that containerd accepts alike).
const INDEX_MEDIA_TYPES: &[&str] =
    &["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

/// Whether a descriptor of `media_type` points at an index rather than a manifest.
pub fn is_index(media_type: &str) -> bool {
    INDEX_MEDIA_TYPES.contains(&media_type)
}

/// The GOARCH name of the machine we run on, as image platforms spell it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// The digest of the manifest in `index` for linux on `architecture`, if it lists one.
pub fn manifest_for_platform(index: &serde_json::Value, architecture: &str) -> Option<String> {
    index["manifests"].as_array()?.iter().find_map(|manifest| {
        let platform = &manifest["platform"];
        (platform["os"] == "linux" && platform["architecture"] == architecture)
            .then(|| manifest["digest"].as_str().map(str::to_string))
            .flatten()
    })
}

/// The config blob's digest named by `manifest`.
pub fn config_digest(manifest: &serde_json::Value) -> Option<String> {
    manifest["config"]["digest"].as_str().map(str::to_string)
}

/// The uncompressed layer digests listed by an image config.
pub fn diff_ids(config: &serde_json::Value) -> Option<Vec<String>> {
    config["rootfs"]["diff_ids"].as_array()?.iter().map(|id| id.as_str().map(str::to_string)).collect()
}

/// The chain id of a stack of layers, as the OCI image spec (`config.md`, "Layer ChainID")
/// defines it: `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
/// `None` for an image without layers.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    let (first, rest) = diff_ids.split_first()?;
    Some(rest.iter().fold(first.clone(), |parent, diff_id| {
        let hash = Sha256::digest(format!("{parent} {diff_id}").as_bytes());
        format!("sha256:{}", hash.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    #[test]
    fn chain_id_of_one_layer_is_its_diff_id() {
        assert_eq!(chain_id(&[digest('a')]), Some(digest('a')));
    }

    #[test]
    fn chain_id_hashes_each_parent_with_the_next_diff_id() {
        // Expected values computed independently with Python's hashlib.
        let ab = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c";
        let abc = "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588";
        assert_eq!(chain_id(&[digest('a'), digest('b')]).as_deref(), Some(ab));
        assert_eq!(chain_id(&[digest('a'), digest('b'), digest('c')]).as_deref(), Some(abc));
    }

    #[test]
    fn chain_id_of_no_layers_is_none() {
        assert_eq!(chain_id(&[]), None);
    }

    #[test]
    fn index_entry_is_chosen_by_os_and_architecture() {
        let index = serde_json::json!({"manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:win", "platform": {"os": "windows", "architecture": "amd64"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
        ]});
        assert_eq!(manifest_for_platform(&index, "amd64").as_deref(), Some("sha256:amd"));
        assert_eq!(manifest_for_platform(&index, "s390x"), None);
    }

    #[test]
    fn config_and_diff_ids_are_read_from_their_fields() {
        let manifest = serde_json::json!({"config": {"digest": "sha256:cfg"}, "layers": []});
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": ["sha256:l0", "sha256:l1"]}});
        assert_eq!(config_digest(&manifest).as_deref(), Some("sha256:cfg"));
        assert_eq!(diff_ids(&config), Some(vec!["sha256:l0".to_string(), "sha256:l1".to_string()]));
        assert_eq!(diff_ids(&serde_json::json!({})), None);
    }
}
