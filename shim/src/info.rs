//! `containerd-shim-systemd-v1 -info`: containerd 2.x runs it (`ctr plugins inspect-runtime`,
//! the introspection service's `PluginInfo`, CRI's checks of what the runtime supports) with the
//! task's runtime options on stdin, a serialized `google.protobuf.Any` (empty when there are
//! none), and reads a serialized `containerd.types.RuntimeInfo` from stdout.
//!
//! As runc-v2 answers (its manager's `Info`): our runtime name and version, the options echoed,
//! and the output of `runc features` of the runc a task with these options would run, as an
//! `Any` of the type URL under which containerd's typeurl registers the runtime-spec's Go
//! `features.Features` struct, whose value is that struct's JSON. A runc without `features`
//! (older runc, some other OCI runtimes) gives no features, not an error: containerd then has
//! nothing to check specs against and accepts them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
use runc_wrap::runc::resolve_binary;

use crate::blocking::blocking;
use crate::daemon::{decode_options, TaskOptions};
use crate::error::Error;
use crate::paths::RUNTIME_NAME;
use crate::version::{REVISION, VERSION};

/// The type URL of the runtime-spec's features structure, as containerd registers it
/// (`types.containerd.io/opencontainers/runtime-spec/<major>/features/Features`).
pub const FEATURES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// How long `runc features` may take.
const FEATURES_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers `-info`: `stdin` as containerd wrote it, `defaults` from the configuration file,
/// `path_env` to find runc in. Returns the encoded `RuntimeInfo`.
pub async fn info(stdin: &[u8], defaults: &TaskOptions, path_env: &str) -> Result<Vec<u8>, Error> {
    let options = parse_options(stdin)?;
    let task_options = decode_options(options.as_ref(), defaults).await?;
    let runc_name = task_options.runc_binary.unwrap_or_else(|| "runc".to_string());
    let path_env = path_env.to_string();
    let runc = blocking("looking up runc", move || resolve_binary(&runc_name, Some(&path_env)))
        .await?
        .map_err(Error::RuncUnavailable)?;
    let features = match runc_features(&runc).await {
        Ok(features) => Some(features),
        Err(reason) => {
            tracing::debug!("no runtime features from {}: {reason}", runc.display());
            None
        }
    };
    runtime_info(options, features)
        .write_to_bytes()
        .map_err(|error| Error::io("encoding the runtime info", std::io::Error::other(error)))
}

/// The options containerd sent: nothing, or an `Any`.
fn parse_options(stdin: &[u8]) -> Result<Option<Any>, Error> {
    if stdin.is_empty() {
        return Ok(None);
    }
    let any = Any::parse_from_bytes(stdin).map_err(|error| {
        Error::InvalidRequest(format!("the runtime options on stdin are not a protobuf Any: {error}"))
    })?;
    Ok(Some(any).filter(|any| !any.type_url.is_empty()))
}

/// The answer, from the options echoed and `runc features`' JSON, if any.
fn runtime_info(options: Option<Any>, features_json: Option<Vec<u8>>) -> RuntimeInfo {
    RuntimeInfo {
        name: RUNTIME_NAME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: VERSION.to_string(),
            revision: REVISION.to_string(),
            ..Default::default()
        }),
        options: options.into(),
        features: features_json
            .map(|value| Any { type_url: FEATURES_TYPE_URL.to_string(), value, ..Default::default() })
            .into(),
        ..Default::default()
    }
}

/// `runc features`' stdout, once it proved to be JSON.
async fn runc_features(runc: &Path) -> Result<Vec<u8>, String> {
    let runc: PathBuf = runc.to_path_buf();
    let output = tokio::time::timeout(
        FEATURES_TIMEOUT,
        tokio::process::Command::new(&runc).arg("features").kill_on_drop(true).output(),
    )
    .await
    .map_err(|_| format!("`runc features` took longer than {FEATURES_TIMEOUT:?}"))?
    .map_err(|error| format!("running `runc features`: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`runc features` {}: {}", output.status, stderr.trim()));
    }
    serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .map_err(|error| format!("`runc features` printed no JSON: {error}"))?;
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::shim::oci::Options as RuncOptions;

    #[test]
    fn runtime_info_carries_name_version_options_and_features() {
        let options = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![], ..Default::default() };
        let features = br#"{"ociVersionMin":"1.0.0","ociVersionMax":"1.0.2-dev"}"#.to_vec();
        let info = runtime_info(Some(options.clone()), Some(features.clone()));
        let decoded = RuntimeInfo::parse_from_bytes(&info.write_to_bytes().unwrap()).unwrap();
        assert_eq!(decoded.name, "io.containerd.systemd.v1");
        assert_eq!(decoded.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(decoded.version.revision, REVISION);
        assert_eq!(decoded.options.as_ref(), Some(&options));
        assert_eq!(decoded.features.type_url, FEATURES_TYPE_URL);
        assert_eq!(decoded.features.value, features);
    }

    #[test]
    fn without_features_there_is_no_features_field() {
        let info = runtime_info(None, None);
        assert!(info.features.is_none() && info.options.is_none());
    }

    #[test]
    fn options_on_stdin_are_an_any_or_nothing() {
        assert_eq!(parse_options(&[]).unwrap(), None);
        let runc = RuncOptions { binary_name: "/opt/runc".into(), ..Default::default() };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        assert_eq!(parse_options(&any.write_to_bytes().unwrap()).unwrap(), Some(any));
        assert!(matches!(parse_options(&[0xff, 0xff]), Err(Error::InvalidRequest(_))));
    }

    #[tokio::test]
    async fn an_unknown_runc_binary_is_named_in_the_error() {
        let runc = RuncOptions { binary_name: "/nonexistent/runc".into(), ..Default::default() };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let error = info(&any.write_to_bytes().unwrap(), &TaskOptions::default(), "/usr/bin").await.unwrap_err();
        assert!(matches!(error, Error::RuncUnavailable(_)), "{error:?}");
        assert!(error.to_string().contains("/nonexistent/runc"), "{error}");
    }
}
