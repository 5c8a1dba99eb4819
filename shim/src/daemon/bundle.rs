//! What the daemon takes from a task's bundle and from containerd's paths for it, checked the
//! same way wherever they come from (a Create, an Exec, a record read back at adoption): the
//! bundle path, stdio paths and URIs, the OCI spec, and the pid files the helper writes there.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use runc_wrap::atomic_file::{read_regular_file, MAX_CONFIG_LEN};

use crate::blocking::blocking;
use crate::error::Error;

/// A stdio path from the request: empty means none; `file://` is a log file; `binary://` names
/// a logger program the helper starts inside the unit (runc-wrap's `helper::logger`).
pub(super) fn stdio_path(stream: &str, value: &str) -> Result<Option<PathBuf>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    if let Some((scheme, _)) = value.split_once("://") {
        return match scheme {
            "file" => Ok(Some(PathBuf::from(value))),
            "binary" => match runc_wrap::helper::logger::LoggerCommand::parse(value) {
                Ok(_) => Ok(Some(PathBuf::from(value))),
                Err(error) => Err(Error::Runc(error)),
            },
            _ => Err(Error::InvalidRequest(format!("{stream} {value:?} has an unknown URI scheme {scheme:?}"))),
        };
    }
    if !Path::new(value).is_absolute() {
        return Err(Error::InvalidRequest(format!("{stream} path {value:?} is not absolute")));
    }
    Ok(Some(PathBuf::from(value)))
}

/// The bundle path `bundle` names, if it is one a task may have: given, and absolute.
pub(super) fn bundle_path(bundle: &str) -> Result<PathBuf, Error> {
    let path = PathBuf::from(bundle);
    let invalid = |reason| Error::InvalidBundle { path: path.clone(), reason };
    if bundle.is_empty() {
        return Err(invalid("no bundle path given"));
    }
    if !path.is_absolute() {
        return Err(invalid("the path is not absolute"));
    }
    Ok(path)
}

/// The bundle path `bundle` names, if it is an existing directory a task may have.
pub(super) async fn validate_bundle(bundle: &str) -> Result<PathBuf, Error> {
    let path = bundle_path(bundle)?;
    let invalid = |reason| Error::InvalidBundle { path: path.clone(), reason };
    match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err(invalid("is not a directory")),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(invalid("does not exist")),
        Err(source) => Err(Error::UnreadableBundle { path, source }),
    }
}

/// The bundle's OCI spec, `config.json`: a regular file of bounded size that parses and names
/// a process.
pub(super) async fn read_spec(bundle: &Path) -> Result<Spec, Error> {
    let invalid = |reason: String| Error::InvalidSpec { bundle: bundle.to_path_buf(), reason };
    let text = match read_regular_file(&bundle.join("config.json"), MAX_CONFIG_LEN).await {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid("config.json is missing".into()))
        }
        Err(source) => return Err(Error::UnreadableSpec { bundle: bundle.to_path_buf(), source }),
    };
    let spec: Spec = serde_json::from_slice(&text)
        .map_err(|source| Error::MalformedSpec { bundle: bundle.to_path_buf(), source })?;
    if spec.process().is_none() {
        return Err(invalid("it has no process".into()));
    }
    Ok(spec)
}

/// A pid the helper wrote (runc's init pid, an exec's pid).
pub(super) async fn read_pid_file(path: &Path) -> Result<u32, Error> {
    let path = path.to_path_buf();
    blocking("reading a pid file", move || runc_wrap::atomic_file::read_pid_file(&path)).await?.map_err(Error::Runc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_paths_accept_fifos_and_file_uris_only() {
        assert_eq!(stdio_path("stdout", "").unwrap(), None);
        assert_eq!(stdio_path("stdout", "/run/f/out").unwrap(), Some(PathBuf::from("/run/f/out")));
        assert_eq!(stdio_path("stdout", "file:///var/log/x").unwrap(), Some(PathBuf::from("file:///var/log/x")));
        assert_eq!(
            stdio_path("stdout", "binary:///bin/logger?a=b").unwrap(),
            Some(PathBuf::from("binary:///bin/logger?a=b"))
        );
        assert!(matches!(
            stdio_path("stdout", "binary://bin/logger"),
            Err(Error::Runc(runc_wrap::Error::LogUri { uri, .. })) if uri == "binary://bin/logger"
        ));
        assert!(matches!(stdio_path("stdout", "http://x"), Err(Error::InvalidRequest(_))));
        assert!(matches!(stdio_path("stdout", "relative/path"), Err(Error::InvalidRequest(_))));
    }

    #[tokio::test]
    async fn bundle_must_be_an_existing_absolute_directory() {
        assert!(matches!(validate_bundle("").await, Err(Error::InvalidBundle { reason: "no bundle path given", .. })));
        assert!(matches!(
            validate_bundle("relative").await,
            Err(Error::InvalidBundle { reason: "the path is not absolute", .. })
        ));
        assert!(matches!(
            validate_bundle("/nonexistent/bundle").await,
            Err(Error::InvalidBundle { reason: "does not exist", .. })
        ));
        assert!(matches!(
            validate_bundle("/etc/hostname").await,
            Err(Error::InvalidBundle { reason: "is not a directory", .. })
        ));
        assert_eq!(validate_bundle("/").await.unwrap(), PathBuf::from("/"));
    }

    #[tokio::test]
    async fn spec_must_parse_and_have_a_process() {
        let dir = std::env::temp_dir().join(format!("shim-spec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = read_spec(&dir).await.unwrap_err();
        assert!(
            matches!(&missing, Error::InvalidSpec { reason, .. } if reason == "config.json is missing"),
            "{missing}"
        );
        std::fs::write(dir.join("config.json"), "not json").unwrap();
        assert!(matches!(read_spec(&dir).await, Err(Error::MalformedSpec { .. })));
        std::fs::remove_file(dir.join("config.json")).unwrap();
        std::fs::create_dir(dir.join("config.json")).unwrap();
        assert!(matches!(read_spec(&dir).await, Err(Error::UnreadableSpec { .. })));
        std::fs::remove_dir(dir.join("config.json")).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#).unwrap();
        let no_process = read_spec(&dir).await.unwrap_err();
        assert!(
            matches!(&no_process, Error::InvalidSpec { reason, .. } if reason == "it has no process"),
            "{no_process}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
