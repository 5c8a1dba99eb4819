//! `containerd-shim-systemd-v1 -info`: containerd 2.x runs it (`ctr plugins inspect-runtime`,
//! the introspection service's `PluginInfo`, CRI's checks of what the runtime supports) with the
//! task's runtime options on stdin, a serialized `google.protobuf.Any` (empty when there are
//! none), and reads a serialized `containerd.types.RuntimeInfo` from stdout.
//!
//! As runc-v2 answers (its manager's `Info`): our runtime name and version, the options echoed,
//! and the output of `features` of the OCI runtime binary a task with these options would run
//! (`BinaryName` of the options on stdin, else `runc_binary` of the configuration file, else
//! `runc` in `PATH`), as an `Any` of the type URL under which containerd's typeurl registers the
//! runtime-spec's Go `features.Features` struct, whose value is that struct's JSON.
//!
//! Unlike runc-v2, which then leaves the features out and logs at debug level, `-info` fails
//! when that binary cannot give its features, and says why: not found ([`Error::Runc`] with
//! runc-wrap's `BinaryNotFound`), no working `features` command (it ran and failed: older runc,
//! some other OCI runtimes, a wrapper that does not pass the command on), or output that is not
//! JSON (both [`Error::RuntimeFeatures`]). An answer without features would hide a wrong
//! `BinaryName` from whoever asked; containerd's CRI plugin treats a failed `-info` as it treats
//! missing features (it checks specs against nothing), so nothing is lost there.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
use runc_wrap::features::runtime_features;
use runc_wrap::runc::resolve_binary;

use crate::blocking::blocking;
use crate::error::Error;
use crate::paths::RUNTIME_NAME;
use crate::runtime_options::{decode_options, TaskOptions};
use crate::version::{REVISION, VERSION};

/// The type URL of the runtime-spec's features structure, as containerd registers it
/// (`types.containerd.io/opencontainers/runtime-spec/<major>/features/Features`).
pub const FEATURES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// Answers `-info`: `stdin` as containerd wrote it, `defaults` from the configuration file,
/// `path_env` to find the runtime binary in. Returns the encoded `RuntimeInfo`.
pub async fn info(stdin: &[u8], defaults: &TaskOptions, path_env: &str) -> Result<Vec<u8>, Error> {
    let options = parse_options(stdin)?;
    let task_options = decode_options(options.as_ref(), defaults).await?;
    let binary_name = task_options.runc_binary.unwrap_or_else(|| "runc".to_string());
    let path_env = path_env.to_string();
    let binary = blocking("looking up runc", move || resolve_binary(&binary_name, Some(&path_env)))
        .await?
        .map_err(Error::Runc)?;
    let features = runtime_features(&binary)
        .await
        .map_err(|failure| Error::RuntimeFeatures { binary: binary.clone(), failure })?;
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

/// The answer, from the options echoed and the runtime's features (JSON).
fn runtime_info(options: Option<Any>, features_json: Vec<u8>) -> RuntimeInfo {
    RuntimeInfo {
        name: RUNTIME_NAME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: VERSION.to_string(),
            revision: REVISION.to_string(),
            ..Default::default()
        }),
        options: options.into(),
        features: MessageField::some(Any {
            type_url: FEATURES_TYPE_URL.to_string(),
            value: features_json,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::shim::oci::Options as RuncOptions;
    use runc_wrap::features::FeaturesFailure;

    #[test]
    fn runtime_info_carries_name_version_options_and_features() {
        let options = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![], ..Default::default() };
        let features = br#"{"ociVersionMin":"1.0.0","ociVersionMax":"1.0.2-dev"}"#.to_vec();
        let info = runtime_info(Some(options.clone()), features.clone());
        let decoded = RuntimeInfo::parse_from_bytes(&info.write_to_bytes().unwrap()).unwrap();
        assert_eq!(decoded.name, "io.containerd.systemd.v1");
        assert_eq!(decoded.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(decoded.version.revision, REVISION);
        assert_eq!(decoded.options.as_ref(), Some(&options));
        assert_eq!(decoded.features.type_url, FEATURES_TYPE_URL);
        assert_eq!(decoded.features.value, features);
    }

    #[test]
    fn a_features_failure_names_the_binary_and_the_command() {
        let failure = FeaturesFailure::NoFeaturesCommand {
            status: "exit status: 1".into(),
            stderr_line: "No help topic for 'features'".into(),
        };
        let error = Error::RuntimeFeatures { binary: "/usr/local/bin/my-runtime".into(), failure };
        assert_eq!(
            error.to_string(),
            "runtime features of /usr/local/bin/my-runtime: it has no working `features` command: `features` ended \
             with exit status: 1, saying \"No help topic for 'features'\""
        );
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
        assert!(
            matches!(&error, Error::Runc(runc_wrap::Error::BinaryNotFound { name, .. }) if name == "/nonexistent/runc"),
            "{error:?}"
        );
        assert_eq!(error.code(), ttrpc::Code::FAILED_PRECONDITION);
    }
}
