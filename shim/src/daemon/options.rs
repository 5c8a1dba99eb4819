//! Runtime options from containerd (`CreateTaskRequest.options`). Two forms are accepted, as
//! runc-v2 accepts them:
//! - `containerd.runc.v1.Options`, runc's options message (containerd's runtime config, or
//!   `ctr --runc-binary` for runc runtimes);
//! - `runtimeoptions.v1.Options`, CRI's generic form naming a TOML file (`ConfigPath`) with the
//!   same fields (`ctr --runtime-config-path`, CRI's `options.ConfigPath`).
//!
//! Any other type, and any unknown key in the TOML file, is refused by name rather than ignored.
//! What the options leave unset comes from the daemon's configuration file (`crate::config`).
//!
//! `ShimCgroup`, which each form can carry, is refused when set ([`refuse_shim_cgroup`]): runc-v2
//! moves its per-task shim process there, and this runtime has no such process.

use std::path::Path;

use containerd_shim_protos::protobuf::rt::WireType;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedInputStream, Message};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use runc_wrap::atomic_file::{read_regular_file, MAX_CONFIG_LEN};
use serde::Deserialize;

use crate::error::Error;

/// The type name of runc's options message.
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
/// The type name of CRI's generic runtime options message.
const RUNTIME_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";

/// Where a container's stdout and stderr go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogMode {
    /// containerd's fifos (or log file), as with every shim: `ctr`, CRI logs, `docker logs`.
    #[default]
    Fifo,
    /// The unit's journal (`journalctl -u <unit>`), the systemd-native mode; containerd's
    /// stdout/stderr get nothing.
    Journal,
}

/// The options this shim honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// `BinaryName`: runc binary name or path (default `runc`, looked up in `PATH`).
    pub runc_binary: Option<String>,
    /// `Root`: runc state root; the namespace is appended, as runc-v2 does.
    pub runc_root: Option<String>,
    /// `NoPivotRoot`: `runc create --no-pivot`.
    pub no_pivot_root: bool,
    /// `NoNewKeyring`: `runc create --no-new-keyring`.
    pub no_new_keyring: bool,
    /// `IoUid`/`IoGid`: owner given to the container's stdio (for user-namespaced containers
    /// whose root must reopen `/proc/self/fd/N`); `None` leaves them as containerd made them.
    pub io_owner: Option<(u32, u32)>,
    /// `CriuImagePath`: default checkpoint image directory.
    pub criu_image_path: Option<String>,
    /// `CriuWorkPath`: default CRIU work directory (logs).
    pub criu_work_path: Option<String>,
    /// `LogMode` (ours): where stdout/stderr go.
    pub log_mode: LogMode,
    /// `SdNotify` (ours): the unit is `Type=notify` and becomes active when the container says
    /// `READY=1` on `$NOTIFY_SOCKET`.
    pub sd_notify: bool,
    /// `Checkpointable` (ours): stdio through pipes and a copier in the unit, so CRIU can
    /// checkpoint the container (it cannot dump containerd's fifos opened outside it).
    pub checkpointable: bool,
}

/// runc's options as TOML (Go field names), the content of a `ConfigPath` file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TomlRuncOptions {
    binary_name: Option<String>,
    root: Option<String>,
    no_pivot_root: Option<bool>,
    no_new_keyring: Option<bool>,
    /// Accepted for compatibility: the container's cgroup always lives in its unit, and the
    /// unit's slice follows the spec's cgroupsPath either way.
    systemd_cgroup: Option<bool>,
    /// Refused unless empty ([`refuse_shim_cgroup`]).
    shim_cgroup: Option<String>,
    io_uid: Option<u32>,
    io_gid: Option<u32>,
    criu_image_path: Option<String>,
    criu_work_path: Option<String>,
    log_mode: Option<LogMode>,
    sd_notify: Option<bool>,
    checkpointable: Option<bool>,
}

/// Decodes `options` over `defaults` (the daemon's configuration); an absent or empty Any
/// means the defaults.
pub async fn decode_options(options: Option<&Any>, defaults: &TaskOptions) -> Result<TaskOptions, Error> {
    let Some(any) = options.filter(|any| !any.type_url.is_empty()) else {
        return Ok(defaults.clone());
    };
    match any.type_url.rsplit('/').next().unwrap_or_default() {
        RUNC_OPTIONS_TYPE => {
            let runc = RuncOptions::parse_from_bytes(&any.value)
                .map_err(|error| Error::InvalidRequest(format!("undecodable {RUNC_OPTIONS_TYPE}: {error}")))?;
            refuse_shim_cgroup(&runc.shim_cgroup, RUNC_OPTIONS_TYPE)?;
            let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_string());
            Ok(TaskOptions {
                runc_binary: non_empty(&runc.binary_name).or_else(|| defaults.runc_binary.clone()),
                runc_root: non_empty(&runc.root).or_else(|| defaults.runc_root.clone()),
                no_pivot_root: runc.no_pivot_root,
                no_new_keyring: runc.no_new_keyring,
                io_owner: io_owner(Some(runc.io_uid), Some(runc.io_gid)),
                criu_image_path: non_empty(&runc.criu_image_path),
                criu_work_path: non_empty(&runc.criu_work_path),
                log_mode: defaults.log_mode,
                sd_notify: defaults.sd_notify,
                checkpointable: defaults.checkpointable,
            })
        }
        RUNTIME_OPTIONS_TYPE => {
            let config_path = config_path_of(&any.value)?;
            if config_path.is_empty() {
                return Ok(defaults.clone());
            }
            let text = read_regular_file(Path::new(&config_path), MAX_CONFIG_LEN)
                .await
                .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
                .map_err(|error| {
                    Error::InvalidRequest(format!("reading runtime options file {config_path}: {error}"))
                })?;
            parse_toml_options(Path::new(&config_path), &text, defaults)
        }
        _ => Err(Error::UnknownOptions { type_url: any.type_url.clone() }),
    }
}

/// Refuses a non-empty `ShimCgroup`. runc-v2 moves its per-task shim process into that cgroup;
/// this runtime runs no shim process per task. What supervises a task (its helper and stdio
/// copiers) already runs inside the task's own unit, in the slice the spec's cgroupsPath names,
/// so its cost is accounted with the container; the one daemon is a service of its own. Ignoring
/// the option would leave a caller believing something was placed where nothing was; an empty
/// one asks for nothing. `given_in` says which options carried it.
fn refuse_shim_cgroup(value: &str, given_in: &str) -> Result<(), Error> {
    if value.is_empty() {
        Ok(())
    } else {
        Err(Error::ShimCgroup { value: value.to_string(), given_in: given_in.to_string() })
    }
}

/// `config_path` (field 2) of a `runtimeoptions.v1.Options { string type_url = 1; string
/// config_path = 2; }`, decoded by hand: the message is not among containerd-shim-protos' types.
fn config_path_of(bytes: &[u8]) -> Result<String, Error> {
    let invalid = |error: String| Error::InvalidRequest(format!("undecodable {RUNTIME_OPTIONS_TYPE}: {error}"));
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut config_path = String::new();
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(|error| invalid(error.to_string()))? {
        match tag {
            // field 2, wire type 2 (length-delimited)
            0x12 => config_path = input.read_string().map_err(|error| invalid(error.to_string()))?,
            _ => {
                let wire_type = WireType::new(tag & 7).ok_or_else(|| invalid(format!("bad wire type in tag {tag}")))?;
                input.skip_field(wire_type).map_err(|error| invalid(error.to_string()))?
            }
        }
    }
    Ok(config_path)
}

/// The options of the TOML file at `path` (`text`), over `defaults`.
fn parse_toml_options(path: &Path, text: &str, defaults: &TaskOptions) -> Result<TaskOptions, Error> {
    let parsed: TomlRuncOptions = toml::from_str(text).map_err(|error| {
        Error::InvalidRequest(format!("runtime options file {}: {}", path.display(), error.message()))
    })?;
    // SystemdCgroup means nothing here: the container's cgroup is always inside its unit, whose
    // slice follows the spec's cgroupsPath either way.
    let _ = parsed.systemd_cgroup;
    let given_in = format!("runtime options file {}", path.display());
    refuse_shim_cgroup(parsed.shim_cgroup.as_deref().unwrap_or_default(), &given_in)?;
    Ok(TaskOptions {
        runc_binary: parsed.binary_name.filter(|value| !value.is_empty()).or_else(|| defaults.runc_binary.clone()),
        runc_root: parsed.root.filter(|value| !value.is_empty()).or_else(|| defaults.runc_root.clone()),
        no_pivot_root: parsed.no_pivot_root.unwrap_or(false),
        no_new_keyring: parsed.no_new_keyring.unwrap_or(false),
        io_owner: io_owner(parsed.io_uid, parsed.io_gid),
        criu_image_path: parsed.criu_image_path.filter(|value| !value.is_empty()),
        criu_work_path: parsed.criu_work_path.filter(|value| !value.is_empty()),
        log_mode: parsed.log_mode.unwrap_or(defaults.log_mode),
        sd_notify: parsed.sd_notify.unwrap_or(defaults.sd_notify),
        checkpointable: parsed.checkpointable.unwrap_or(defaults.checkpointable),
    })
}

/// runc-v2 chowns the stdio only when an owner other than root is set.
fn io_owner(uid: Option<u32>, gid: Option<u32>) -> Option<(u32, u32)> {
    let (uid, gid) = (uid.unwrap_or(0), gid.unwrap_or(0));
    (uid != 0 || gid != 0).then_some((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_of(type_url: &str, value: Vec<u8>) -> Any {
        Any { type_url: type_url.into(), value, ..Default::default() }
    }

    /// Encodes a runtimeoptions.v1.Options by hand (field 1 type_url, field 2 config_path).
    fn runtime_options(type_url: &str, config_path: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (tag, value) in [(0x0a_u8, type_url), (0x12, config_path)] {
            bytes.push(tag);
            bytes.push(value.len() as u8);
            bytes.extend_from_slice(value.as_bytes());
        }
        bytes
    }

    #[tokio::test]
    async fn no_options_means_defaults() {
        assert_eq!(decode_options(None, &TaskOptions::default()).await.unwrap(), TaskOptions::default());
        assert_eq!(
            decode_options(Some(&Any::default()), &TaskOptions::default()).await.unwrap(),
            TaskOptions::default()
        );
    }

    #[tokio::test]
    async fn runc_options_are_decoded() {
        let runc = RuncOptions {
            binary_name: "/usr/local/sbin/runc".into(),
            root: "/run/r".into(),
            no_pivot_root: true,
            ..Default::default()
        };
        let any = any_of("type.googleapis.com/containerd.runc.v1.Options", runc.write_to_bytes().unwrap());
        let options = decode_options(Some(&any), &TaskOptions::default()).await.unwrap();
        assert_eq!(options.runc_binary.as_deref(), Some("/usr/local/sbin/runc"));
        assert_eq!(options.runc_root.as_deref(), Some("/run/r"));
        assert!(options.no_pivot_root && !options.no_new_keyring);
    }

    #[tokio::test]
    async fn runtime_options_read_the_toml_file_they_name() {
        let dir = std::env::temp_dir().join(format!("shim-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("runc.toml");
        std::fs::write(&path, "BinaryName = \"/opt/runc\"\nNoNewKeyring = true\nSystemdCgroup = true\n").unwrap();
        let any = any_of("runtimeoptions.v1.Options", runtime_options("x", path.to_str().unwrap()));
        let options = decode_options(Some(&any), &TaskOptions::default()).await.unwrap();
        assert_eq!(options.runc_binary.as_deref(), Some("/opt/runc"));
        assert!(options.no_new_keyring);

        std::fs::write(&path, "BinaryName = \"/opt/runc\"\nNoSuchKey = 1\n").unwrap();
        let error = decode_options(Some(&any), &TaskOptions::default()).await.unwrap_err();
        assert!(error.to_string().contains("NoSuchKey"), "unknown keys are named: {error}");
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = any_of("runtimeoptions.v1.Options", runtime_options("x", "/nonexistent/runc.toml"));
        let error = decode_options(Some(&missing), &TaskOptions::default()).await.unwrap_err();
        assert!(error.to_string().contains("/nonexistent/runc.toml"), "{error}");
    }

    #[tokio::test]
    async fn our_own_keys_and_the_remaining_runc_keys_are_read_from_toml() {
        let text = "IoUid = 1000\nIoGid = 1001\nCriuImagePath = \"/var/lib/cp\"\nShimCgroup = \"\"\n\
                    LogMode = \"journal\"\nSdNotify = true\n";
        let options = parse_toml_options(Path::new("x.toml"), text, &TaskOptions::default()).unwrap();
        assert_eq!(options.io_owner, Some((1000, 1001)));
        assert_eq!(options.criu_image_path.as_deref(), Some("/var/lib/cp"));
        assert_eq!(options.log_mode, LogMode::Journal);
        assert!(options.sd_notify);
        let error =
            parse_toml_options(Path::new("x.toml"), "LogMode = \"syslog\"\n", &TaskOptions::default()).unwrap_err();
        assert!(error.to_string().contains("syslog"), "{error}");
        assert_eq!(
            parse_toml_options(Path::new("x.toml"), "", &TaskOptions::default()).unwrap(),
            TaskOptions::default()
        );
    }

    #[tokio::test]
    async fn options_override_the_configured_defaults_field_by_field() {
        let defaults = TaskOptions {
            runc_binary: Some("/opt/runc".into()),
            runc_root: Some("/run/configured".into()),
            log_mode: LogMode::Journal,
            ..TaskOptions::default()
        };
        assert_eq!(decode_options(None, &defaults).await.unwrap(), defaults, "no options: the defaults");

        let runc = RuncOptions { root: "/run/r".into(), ..Default::default() };
        let any = any_of("containerd.runc.v1.Options", runc.write_to_bytes().unwrap());
        let options = decode_options(Some(&any), &defaults).await.unwrap();
        assert_eq!(options.runc_root.as_deref(), Some("/run/r"), "set by the task");
        assert_eq!(options.runc_binary.as_deref(), Some("/opt/runc"), "left to the configuration");
        assert_eq!(options.log_mode, LogMode::Journal, "runc's options cannot say, the configuration does");

        let toml = parse_toml_options(Path::new("x.toml"), "LogMode = \"fifo\"\n", &defaults).unwrap();
        assert_eq!((toml.log_mode, toml.runc_binary.as_deref()), (LogMode::Fifo, Some("/opt/runc")));
    }

    #[tokio::test]
    async fn unknown_option_types_are_refused_by_name() {
        let any = any_of("type.googleapis.com/example.Unknown", vec![]);
        let error = decode_options(Some(&any), &TaskOptions::default()).await.unwrap_err();
        assert!(matches!(error, Error::UnknownOptions { .. }));
        assert!(error.to_string().contains("example.Unknown"), "{error}");
    }

    #[tokio::test]
    async fn a_shim_cgroup_is_refused_in_every_form_and_an_empty_one_is_nothing() {
        let runc = |shim_cgroup: &str| {
            let options = RuncOptions { shim_cgroup: shim_cgroup.into(), systemd_cgroup: true, ..Default::default() };
            any_of("containerd.runc.v1.Options", options.write_to_bytes().unwrap())
        };
        let error = decode_options(Some(&runc("/pods/shim")), &TaskOptions::default()).await.unwrap_err();
        assert!(matches!(&error, Error::ShimCgroup { value, .. } if value == "/pods/shim"), "{error:?}");
        assert_eq!(error.code(), ttrpc::Code::INVALID_ARGUMENT);
        let message = error.to_string();
        assert!(message.contains("ShimCgroup \"/pods/shim\"") && message.contains("cgroupsPath"), "{message}");
        let toml =
            parse_toml_options(Path::new("/etc/r.toml"), "ShimCgroup = \"/pods/shim\"\n", &TaskOptions::default());
        let error = toml.unwrap_err();
        assert!(matches!(&error, Error::ShimCgroup { value, .. } if value == "/pods/shim"), "TOML: {error:?}");
        assert!(error.to_string().starts_with("runtime options file /etc/r.toml: ShimCgroup"), "{error}");

        assert!(decode_options(Some(&runc("")), &TaskOptions::default()).await.is_ok());
        let empty = "ShimCgroup = \"\"\nSystemdCgroup = true\n";
        assert_eq!(
            parse_toml_options(Path::new("r.toml"), empty, &TaskOptions::default()).unwrap(),
            TaskOptions::default()
        );
    }

    #[tokio::test]
    async fn garbage_options_are_invalid() {
        let runc = any_of("containerd.runc.v1.Options", vec![0xff, 0xff, 0xff]);
        assert!(matches!(decode_options(Some(&runc), &TaskOptions::default()).await, Err(Error::InvalidRequest(_))));
        let generic = any_of("runtimeoptions.v1.Options", vec![0x12, 0x50, b'x']);
        assert!(matches!(decode_options(Some(&generic), &TaskOptions::default()).await, Err(Error::InvalidRequest(_))));
    }
}
