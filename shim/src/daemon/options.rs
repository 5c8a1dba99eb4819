//! Runtime options from containerd (`CreateTaskRequest.options`). We take runc's options
//! message, `containerd.runc.v1.Options`, as containerd's config and `ctr --runc-binary` produce
//! it. Any other type is refused with its name, rather than silently ignored.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;

use crate::error::Error;

/// The type name of runc's options message.
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

/// The options this shim honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// `BinaryName`: runc binary name or path (default `runc`, looked up in `PATH`).
    pub runc_binary: Option<String>,
    /// `Root`: runc state root; the namespace is appended, as runc-v2 does.
    pub runc_root: Option<String>,
}

/// Decodes `options`; an absent or empty Any means defaults.
pub fn decode_options(options: Option<&Any>) -> Result<TaskOptions, Error> {
    let Some(any) = options.filter(|any| !any.type_url.is_empty()) else {
        return Ok(TaskOptions::default());
    };
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    if type_name != RUNC_OPTIONS_TYPE {
        return Err(Error::UnknownOptions {
            type_url: any.type_url.clone(),
        });
    }
    let runc = RuncOptions::parse_from_bytes(&any.value)
        .map_err(|error| Error::InvalidRequest(format!("undecodable {RUNC_OPTIONS_TYPE}: {error}")))?;
    let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_string());
    Ok(TaskOptions {
        runc_binary: non_empty(&runc.binary_name),
        runc_root: non_empty(&runc.root),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_of(type_url: &str, value: Vec<u8>) -> Any {
        Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn no_options_means_defaults() {
        assert_eq!(decode_options(None).unwrap(), TaskOptions::default());
        assert_eq!(decode_options(Some(&Any::default())).unwrap(), TaskOptions::default());
    }

    #[test]
    fn runc_options_are_decoded() {
        let runc = RuncOptions {
            binary_name: "/usr/local/sbin/runc".into(),
            root: "/run/r".into(),
            ..Default::default()
        };
        let any = any_of(
            "type.googleapis.com/containerd.runc.v1.Options",
            runc.write_to_bytes().unwrap(),
        );
        let options = decode_options(Some(&any)).unwrap();
        assert_eq!(options.runc_binary.as_deref(), Some("/usr/local/sbin/runc"));
        assert_eq!(options.runc_root.as_deref(), Some("/run/r"));
    }

    #[test]
    fn unknown_option_types_are_refused_by_name() {
        let any = any_of("type.googleapis.com/example.Unknown", vec![]);
        let error = decode_options(Some(&any)).unwrap_err();
        assert!(matches!(error, Error::UnknownOptions { .. }));
        assert!(error.to_string().contains("example.Unknown"), "{error}");
    }

    #[test]
    fn garbage_runc_options_are_invalid() {
        let any = any_of("containerd.runc.v1.Options", vec![0xff, 0xff, 0xff]);
        assert!(matches!(decode_options(Some(&any)), Err(Error::InvalidRequest(_))));
    }
}
