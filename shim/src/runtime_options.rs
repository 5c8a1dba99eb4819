//! Runtime options from containerd (`CreateTaskRequest.options`). Three forms are accepted:
//! - `containerd.runc.v1.Options`, runc's options message (containerd's runtime config, or
//!   `ctr --runc-binary` for runc runtimes);
//! - `runtimeoptions.v1.Options`, CRI's generic form naming a TOML file (`ConfigPath`) with the
//!   same fields (`ctr --runtime-config-path`, CRI's `options.ConfigPath`);
//! - `containerd.linux.runc.CreateOptions`, what containerd 1.x clients build for a runtime
//!   whose name does not start with `io.containerd.runc` (`ctr run --no-pivot`, a user-namespaced
//!   container's `WithUIDOwner`/`WithGIDOwner`): the options of containerd's v1 linux runtime.
//!
//! Any other type, and any unknown key in the TOML file, is refused by name rather than ignored.
//! What the options leave unset comes from the daemon's configuration file (`crate::config`). Pure: it reads at most the file `ConfigPath` names, so the fuzz target
//! drives it through this crate's public API.
//!
//! `ShimCgroup`, which each form can carry, is refused when set ([`refuse_shim_cgroup`]): runc-v2
//! moves its per-task shim process there, and this runtime has no such process.

use std::path::{Path, PathBuf};

use containerd_shim_protos::protobuf::rt::WireType;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedInputStream, Message};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use runc_wrap::atomic_file::{read_regular_file, MAX_CONFIG_LEN};
use serde::Deserialize;

/// The type name of runc's options message.
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
/// The type name of CRI's generic runtime options message.
const RUNTIME_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";
/// The type name of containerd 1.x's options for its v1 linux runtime, which its clients send to
/// every runtime not named `io.containerd.runc.*`.
const LINUX_CREATE_OPTIONS_TYPE: &str = "containerd.linux.runc.CreateOptions";

/// Why runtime options were refused. Every case is the caller's: containerd answers the Create
/// with INVALID_ARGUMENT.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// A protobuf message that does not decode.
    #[error("undecodable {type_name}: {reason}")]
    Undecodable {
        /// The message type.
        type_name: &'static str,
        /// What the decoder found.
        reason: String,
    },
    /// The runtime options file cannot be read (missing, not a regular file, too big, not UTF-8).
    #[error("reading runtime options file {path}: {source}")]
    UnreadableFile {
        /// The file `ConfigPath` names.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The runtime options file is not runc's options as TOML.
    #[error("runtime options file {path}: {reason}", path = path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (an unknown key is named).
        reason: String,
    },
    /// Options of a type this runtime does not know.
    #[error(
        "runtime options of type {type_url:?} are not supported (expected containerd.runc.v1.Options, \
         runtimeoptions.v1.Options or containerd.linux.runc.CreateOptions)"
    )]
    UnknownType {
        /// The options' type URL.
        type_url: String,
    },
    /// A non-empty `ShimCgroup`: there is no per-task shim process to place.
    #[error(
        "{given_in}: ShimCgroup {value:?} is refused: this runtime runs no shim process per task to move into a \
         cgroup (a task's helper and stdio copiers run inside the task's own unit, in the slice of its cgroupsPath, \
         and the one daemon is a service of its own); leave ShimCgroup empty and place containers through the \
         spec's cgroupsPath (CRI: the pod's cgroup parent) or `[unit] slice` in the configuration file"
    )]
    ShimCgroup {
        /// The cgroup the option named.
        value: String,
        /// Which options carried it (a type name, or the runtime options file).
        given_in: String,
    },
    /// A restore from a checkpoint with CRIU restore settings that `runc restore` is not given here.
    #[error(
        "{type_name} sets {fields} for a restore from a checkpoint, but this runtime does not pass these CRIU \
         settings to `runc restore`; restore without them"
    )]
    UnhonouredRestoreSettings {
        /// The options' type name.
        type_name: &'static str,
        /// The settings, by proto field name.
        fields: String,
    },
}

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
    /// The CRIU restore settings of `containerd.linux.runc.CreateOptions` that were set, by their
    /// proto field names (`open_tcp`, …). They mean nothing without a checkpoint; a restore is
    /// refused with them ([`TaskOptions::refuse_unhonoured_restore_settings`]), since `runc
    /// restore` is not given them here.
    pub criu_restore_settings: Vec<&'static str>,
}

impl TaskOptions {
    /// Refuses a restore whose options set CRIU restore settings that our restore does not pass
    /// to `runc restore` (neither did containerd's own v1 and v2 shims): the caller asked for
    /// something that would silently not happen.
    pub fn refuse_unhonoured_restore_settings(&self) -> Result<(), OptionsError> {
        if self.criu_restore_settings.is_empty() {
            return Ok(());
        }
        Err(OptionsError::UnhonouredRestoreSettings {
            type_name: LINUX_CREATE_OPTIONS_TYPE,
            fields: self.criu_restore_settings.join(", "),
        })
    }
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
pub async fn decode_options(options: Option<&Any>, defaults: &TaskOptions) -> Result<TaskOptions, OptionsError> {
    let Some(any) = options.filter(|any| !any.type_url.is_empty()) else {
        return Ok(defaults.clone());
    };
    match any.type_url.rsplit('/').next().unwrap_or_default() {
        RUNC_OPTIONS_TYPE => {
            let runc = RuncOptions::parse_from_bytes(&any.value).map_err(|error| OptionsError::Undecodable {
                type_name: RUNC_OPTIONS_TYPE,
                reason: error.to_string(),
            })?;
            refuse_shim_cgroup(&runc.shim_cgroup, RUNC_OPTIONS_TYPE)?;
            Ok(TaskOptions {
                runc_binary: non_empty(&runc.binary_name).or_else(|| defaults.runc_binary.clone()),
                runc_root: non_empty(&runc.root).or_else(|| defaults.runc_root.clone()),
                no_pivot_root: runc.no_pivot_root,
                no_new_keyring: runc.no_new_keyring,
                io_owner: io_owner(Some(runc.io_uid), Some(runc.io_gid)),
                criu_image_path: non_empty(&runc.criu_image_path),
                criu_work_path: non_empty(&runc.criu_work_path),
                criu_restore_settings: Vec::new(),
                // The message has none of our keys: the configuration's.
                ..defaults.clone()
            })
        }
        LINUX_CREATE_OPTIONS_TYPE => {
            let create = LinuxCreateOptions::decode(&any.value)?;
            refuse_shim_cgroup(&create.shim_cgroup, LINUX_CREATE_OPTIONS_TYPE)?;
            Ok(TaskOptions {
                no_pivot_root: create.no_pivot_root,
                no_new_keyring: create.no_new_keyring,
                io_owner: io_owner(Some(create.io_uid), Some(create.io_gid)),
                criu_image_path: non_empty(&create.criu_image_path),
                criu_work_path: non_empty(&create.criu_work_path),
                criu_restore_settings: create.criu_restore_settings(),
                // The message has no binary, root or keys of ours: the configuration's.
                ..defaults.clone()
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
                .map_err(|source| OptionsError::UnreadableFile { path: config_path.clone(), source })?;
            parse_toml_options(Path::new(&config_path), &text, defaults)
        }
        _ => Err(OptionsError::UnknownType { type_url: any.type_url.clone() }),
    }
}

/// `value`, unless it is empty.
fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// Refuses a non-empty `ShimCgroup`. runc-v2 moves its per-task shim process into that cgroup;
/// this runtime runs no shim process per task. What supervises a task (its helper and stdio
/// copiers) already runs inside the task's own unit, in the slice the spec's cgroupsPath names,
/// so its cost is accounted with the container; the one daemon is a service of its own. Ignoring
/// the option would leave a caller believing something was placed where nothing was; an empty
/// one asks for nothing. `given_in` says which options carried it.
fn refuse_shim_cgroup(value: &str, given_in: &str) -> Result<(), OptionsError> {
    if value.is_empty() {
        Ok(())
    } else {
        Err(OptionsError::ShimCgroup { value: value.to_string(), given_in: given_in.to_string() })
    }
}

/// `containerd.linux.runc.CreateOptions`, decoded by hand as [`config_path_of`] decodes CRI's
/// options: the message is not among containerd-shim-protos' types. Its proto (package
/// `containerd.linux.runc`, containerd 1.x's `runtime/linux/runctypes/runc.proto`) numbers the
/// fields as declared here.
#[derive(Debug, Default, PartialEq, Eq)]
struct LinuxCreateOptions {
    /// 1: `runc create --no-pivot`.
    no_pivot_root: bool,
    /// 2: CRIU restore setting (`--tcp-established`).
    open_tcp: bool,
    /// 3: CRIU restore setting (`--ext-unix-sk`).
    external_unix_sockets: bool,
    /// 4: CRIU restore setting (`--shell-job`).
    terminal: bool,
    /// 5: CRIU restore setting (`--file-locks`).
    file_locks: bool,
    /// 6: CRIU restore setting (`--empty-ns`, repeated).
    empty_namespaces: Vec<String>,
    /// 7: CRIU restore setting (`--manage-cgroups-mode`).
    cgroups_mode: String,
    /// 8: `runc create --no-new-keyring`.
    no_new_keyring: bool,
    /// 9: the per-task shim's cgroup ([`refuse_shim_cgroup`]).
    shim_cgroup: String,
    /// 10: owner uid of the container's stdio.
    io_uid: u32,
    /// 11: owner gid of the container's stdio.
    io_gid: u32,
    /// 12: CRIU work directory.
    criu_work_path: String,
    /// 13: CRIU image directory.
    criu_image_path: String,
}

impl LinuxCreateOptions {
    /// Decodes the message; unknown fields are skipped by their wire type, as protobuf decoders
    /// do, and a known field of the wrong wire type or a message cut short is refused, naming
    /// the type and the field.
    fn decode(bytes: &[u8]) -> Result<LinuxCreateOptions, OptionsError> {
        let invalid = |reason: String| OptionsError::Undecodable { type_name: LINUX_CREATE_OPTIONS_TYPE, reason };
        let mut input = CodedInputStream::from_bytes(bytes);
        let mut options = LinuxCreateOptions::default();
        while let Some(tag) = input.read_raw_tag_or_eof().map_err(|error| invalid(error.to_string()))? {
            let number = tag >> 3;
            let wire_type =
                WireType::new(tag & 7).ok_or_else(|| invalid(format!("field {number}: bad wire type {}", tag & 7)))?;
            let Some((name, expected)) = Self::field(number) else {
                if number == 0 {
                    return Err(invalid("field number 0".to_string()));
                }
                input.skip_field(wire_type).map_err(|error| invalid(format!("unknown field {number}: {error}")))?;
                continue;
            };
            let field = |error: String| invalid(format!("field {number} ({name}): {error}"));
            if wire_type != expected {
                return Err(field(format!("wire type {wire_type:?}, expected {expected:?}")));
            }
            let read_bool = |input: &mut CodedInputStream| input.read_bool().map_err(|error| field(error.to_string()));
            let read_u32 = |input: &mut CodedInputStream| input.read_uint32().map_err(|error| field(error.to_string()));
            let read_string =
                |input: &mut CodedInputStream| input.read_string().map_err(|error| field(error.to_string()));
            match number {
                1 => options.no_pivot_root = read_bool(&mut input)?,
                2 => options.open_tcp = read_bool(&mut input)?,
                3 => options.external_unix_sockets = read_bool(&mut input)?,
                4 => options.terminal = read_bool(&mut input)?,
                5 => options.file_locks = read_bool(&mut input)?,
                6 => options.empty_namespaces.push(read_string(&mut input)?),
                7 => options.cgroups_mode = read_string(&mut input)?,
                8 => options.no_new_keyring = read_bool(&mut input)?,
                9 => options.shim_cgroup = read_string(&mut input)?,
                10 => options.io_uid = read_u32(&mut input)?,
                11 => options.io_gid = read_u32(&mut input)?,
                12 => options.criu_work_path = read_string(&mut input)?,
                13 => options.criu_image_path = read_string(&mut input)?,
                // `field` knows no other number.
                _ => {}
            }
        }
        Ok(options)
    }

    /// The proto name and wire type of field `number`, if the message has it.
    fn field(number: u32) -> Option<(&'static str, WireType)> {
        use WireType::{LengthDelimited, Varint};
        const FIELDS: [(&str, WireType); 13] = [
            ("no_pivot_root", Varint),
            ("open_tcp", Varint),
            ("external_unix_sockets", Varint),
            ("terminal", Varint),
            ("file_locks", Varint),
            ("empty_namespaces", LengthDelimited),
            ("cgroups_mode", LengthDelimited),
            ("no_new_keyring", Varint),
            ("shim_cgroup", LengthDelimited),
            ("io_uid", Varint),
            ("io_gid", Varint),
            ("criu_work_path", LengthDelimited),
            ("criu_image_path", LengthDelimited),
        ];
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        FIELDS.get(index).copied()
    }

    /// The CRIU restore settings that are set, by proto field name. containerd's v1 linux
    /// runtime took them from the same message as the create flags; no containerd shim passed
    /// them to `runc restore`.
    fn criu_restore_settings(&self) -> Vec<&'static str> {
        [
            ("open_tcp", self.open_tcp),
            ("external_unix_sockets", self.external_unix_sockets),
            ("terminal", self.terminal),
            ("file_locks", self.file_locks),
            ("empty_namespaces", !self.empty_namespaces.is_empty()),
            ("cgroups_mode", !self.cgroups_mode.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// `config_path` (field 2) of a `runtimeoptions.v1.Options { string type_url = 1; string
/// config_path = 2; }`, decoded by hand: the message is not among containerd-shim-protos' types.
fn config_path_of(bytes: &[u8]) -> Result<String, OptionsError> {
    let invalid = |reason: String| OptionsError::Undecodable { type_name: RUNTIME_OPTIONS_TYPE, reason };
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
fn parse_toml_options(path: &Path, text: &str, defaults: &TaskOptions) -> Result<TaskOptions, OptionsError> {
    let parsed: TomlRuncOptions = toml::from_str(text)
        .map_err(|error| OptionsError::InvalidFile { path: path.to_path_buf(), reason: error.message().to_string() })?;
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
        criu_restore_settings: Vec::new(),
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
    use containerd_shim_protos::protobuf::CodedOutputStream;

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
        // The TOML parser's message is what names the key.
        assert!(
            matches!(&error, OptionsError::InvalidFile { reason, .. } if reason.contains("NoSuchKey")),
            "unknown keys are named: {error:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = any_of("runtimeoptions.v1.Options", runtime_options("x", "/nonexistent/runc.toml"));
        let error = decode_options(Some(&missing), &TaskOptions::default()).await.unwrap_err();
        assert!(
            matches!(&error, OptionsError::UnreadableFile { path, source }
                if path == "/nonexistent/runc.toml" && source.kind() == std::io::ErrorKind::NotFound),
            "{error:?}"
        );
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
        assert!(matches!(&error, OptionsError::InvalidFile { reason, .. } if reason.contains("syslog")), "{error:?}");
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
        assert!(
            matches!(&error, OptionsError::UnknownType { type_url } if type_url == "type.googleapis.com/example.Unknown"),
            "{error:?}"
        );
    }

    /// A `containerd.linux.runc.CreateOptions` with every field set, as containerd 1.x's Go
    /// encoder writes it (fields in order).
    fn every_create_option() -> Vec<u8> {
        encode(|out| {
            out.write_bool(1, true)?;
            out.write_bool(2, true)?;
            out.write_bool(3, true)?;
            out.write_bool(4, true)?;
            out.write_bool(5, true)?;
            out.write_string(6, "network")?;
            out.write_string(6, "ipc")?;
            out.write_string(7, "soft")?;
            out.write_bool(8, true)?;
            out.write_string(9, "/shim.slice")?;
            out.write_uint32(10, 100_000)?;
            out.write_uint32(11, 100_001)?;
            out.write_string(12, "/var/lib/criu-work")?;
            out.write_string(13, "/var/lib/criu-images")
        })
    }

    fn encode(write: impl FnOnce(&mut CodedOutputStream) -> containerd_shim_protos::protobuf::Result<()>) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut out = CodedOutputStream::vec(&mut bytes);
        write(&mut out).unwrap();
        out.flush().unwrap();
        drop(out);
        bytes
    }

    #[test]
    fn every_field_of_linux_create_options_is_decoded() {
        let decoded = LinuxCreateOptions::decode(&every_create_option()).unwrap();
        assert_eq!(
            decoded,
            LinuxCreateOptions {
                no_pivot_root: true,
                open_tcp: true,
                external_unix_sockets: true,
                terminal: true,
                file_locks: true,
                empty_namespaces: vec!["network".into(), "ipc".into()],
                cgroups_mode: "soft".into(),
                no_new_keyring: true,
                shim_cgroup: "/shim.slice".into(),
                io_uid: 100_000,
                io_gid: 100_001,
                criu_work_path: "/var/lib/criu-work".into(),
                criu_image_path: "/var/lib/criu-images".into(),
            }
        );
        assert_eq!(LinuxCreateOptions::decode(&[]).unwrap(), LinuxCreateOptions::default(), "all defaults");
    }

    #[test]
    fn unknown_fields_of_linux_create_options_are_skipped_by_wire_type() {
        let bytes = encode(|out| {
            out.write_uint32(20, 7)?;
            out.write_bool(1, true)?;
            out.write_fixed64(21, u64::MAX)?;
            out.write_string(22, "from a newer containerd")?;
            out.write_fixed32(23, 1)?;
            out.write_uint32(10, 1000)
        });
        let decoded = LinuxCreateOptions::decode(&bytes).unwrap();
        assert_eq!(decoded, LinuxCreateOptions { no_pivot_root: true, io_uid: 1000, ..Default::default() });
    }

    #[test]
    fn bad_linux_create_options_are_refused_naming_the_type_and_field() {
        struct Case {
            name: &'static str,
            bytes: Vec<u8>,
            message: &'static str,
        }
        let every = every_create_option();
        let cases = [
            Case {
                name: "cut inside the last string",
                bytes: every[..every.len() - 3].to_vec(),
                message: "field 13 (criu_image_path)",
            },
            Case { name: "cut after a tag", bytes: vec![0x08], message: "field 1 (no_pivot_root)" },
            Case { name: "cut inside a varint", bytes: vec![0x50, 0x80], message: "field 10 (io_uid)" },
            Case {
                name: "a string field as a varint",
                bytes: encode(|out| out.write_uint32(7, 1)),
                message: "field 7 (cgroups_mode): wire type Varint, expected LengthDelimited",
            },
            Case {
                name: "a bool field as a string",
                bytes: encode(|out| out.write_string(8, "yes")),
                message: "field 8 (no_new_keyring): wire type LengthDelimited, expected Varint",
            },
            Case { name: "wire type 6", bytes: vec![0x0e], message: "field 1: bad wire type 6" },
            Case { name: "field number 0", bytes: vec![0x00, 0x01], message: "field number 0" },
            Case {
                name: "an unknown field cut short",
                bytes: vec![0xa2, 0x01, 0x05, b'x'],
                message: "unknown field 20",
            },
        ];
        for case in cases {
            let error = LinuxCreateOptions::decode(&case.bytes).expect_err(case.name);
            assert!(
                matches!(
                    error,
                    OptionsError::Undecodable { .. }
                        | OptionsError::UnreadableFile { .. }
                        | OptionsError::InvalidFile { .. }
                ),
                "{}: {error:?}",
                case.name
            );
            // The decoder's words are all there is to tell the cases apart, and what containerd
            // shows (bad_input checks "undecodable <type>" end to end).
            let message = error.to_string();
            assert!(message.contains("undecodable containerd.linux.runc.CreateOptions"), "{}: {message}", case.name);
            assert!(message.contains(case.message), "{}: {message}", case.name);
        }
    }

    #[tokio::test]
    async fn linux_create_options_map_as_runc_options_do_over_the_configured_defaults() {
        let defaults = TaskOptions {
            runc_binary: Some("/opt/runc".into()),
            runc_root: Some("/run/configured".into()),
            log_mode: LogMode::Journal,
            sd_notify: true,
            checkpointable: true,
            ..TaskOptions::default()
        };
        let value = encode(|out| {
            out.write_bool(1, true)?;
            out.write_bool(8, true)?;
            out.write_uint32(10, 100_000)?;
            out.write_uint32(11, 100_001)?;
            out.write_string(12, "/w")?;
            out.write_string(13, "/i")
        });
        let expected = TaskOptions {
            no_pivot_root: true,
            no_new_keyring: true,
            io_owner: Some((100_000, 100_001)),
            criu_work_path: Some("/w".into()),
            criu_image_path: Some("/i".into()),
            ..defaults.clone()
        };
        for type_url in
            ["containerd.linux.runc.CreateOptions", "type.googleapis.com/containerd.linux.runc.CreateOptions"]
        {
            let any = any_of(type_url, value.clone());
            assert_eq!(decode_options(Some(&any), &defaults).await.unwrap(), expected, "{type_url}");
        }
        let no_pivot = any_of("containerd.linux.runc.CreateOptions", encode(|out| out.write_bool(1, true)));
        let options = decode_options(Some(&no_pivot), &TaskOptions::default()).await.unwrap();
        assert!(options.no_pivot_root && options.io_owner.is_none() && options.criu_restore_settings.is_empty());
    }

    #[tokio::test]
    async fn criu_restore_settings_are_accepted_for_a_create_and_refused_for_a_restore() {
        let every = LinuxCreateOptions {
            shim_cgroup: String::new(),
            ..LinuxCreateOptions::decode(&every_create_option()).unwrap()
        };
        assert_eq!(
            every.criu_restore_settings(),
            ["open_tcp", "external_unix_sockets", "terminal", "file_locks", "empty_namespaces", "cgroups_mode"]
        );
        let value = encode(|out| {
            out.write_bool(2, true)?;
            out.write_string(7, "soft")
        });
        let any = any_of("containerd.linux.runc.CreateOptions", value);
        let options = decode_options(Some(&any), &TaskOptions::default()).await.unwrap();
        assert_eq!(
            options.criu_restore_settings,
            ["open_tcp", "cgroups_mode"],
            "accepted: a create has no use for them"
        );
        let error = options.refuse_unhonoured_restore_settings().unwrap_err();
        assert!(
            matches!(&error, OptionsError::UnhonouredRestoreSettings { type_name, fields }
                if *type_name == "containerd.linux.runc.CreateOptions" && fields == "open_tcp, cgroups_mode"),
            "{error:?}"
        );
        assert_eq!(crate::Error::from(error).code(), ttrpc::Code::INVALID_ARGUMENT);
        assert!(TaskOptions::default().refuse_unhonoured_restore_settings().is_ok());
    }

    #[tokio::test]
    async fn a_shim_cgroup_is_refused_in_every_form_and_an_empty_one_is_nothing() {
        let runc = |shim_cgroup: &str| {
            let options = RuncOptions { shim_cgroup: shim_cgroup.into(), systemd_cgroup: true, ..Default::default() };
            any_of("containerd.runc.v1.Options", options.write_to_bytes().unwrap())
        };
        let create = |shim_cgroup: &str| {
            any_of("containerd.linux.runc.CreateOptions", encode(|out| out.write_string(9, shim_cgroup)))
        };
        for (form, any) in [("runc options", runc("/pods/shim")), ("CreateOptions", create("/pods/shim"))] {
            let error = decode_options(Some(&any), &TaskOptions::default()).await.unwrap_err();
            assert!(
                matches!(&error, OptionsError::ShimCgroup { value, .. } if value == "/pods/shim"),
                "{form}: {error:?}"
            );
            let message = error.to_string();
            assert_eq!(crate::Error::from(error).code(), ttrpc::Code::INVALID_ARGUMENT, "{form}");
            // The explanation is the contract: it is what containerd shows whoever set ShimCgroup.
            assert!(
                message.contains("ShimCgroup \"/pods/shim\"") && message.contains("cgroupsPath"),
                "{form}: {message}"
            );
        }
        let toml =
            parse_toml_options(Path::new("/etc/r.toml"), "ShimCgroup = \"/pods/shim\"\n", &TaskOptions::default());
        let error = toml.unwrap_err();
        assert!(matches!(&error, OptionsError::ShimCgroup { value, .. } if value == "/pods/shim"), "TOML: {error:?}");
        assert!(error.to_string().starts_with("runtime options file /etc/r.toml: ShimCgroup"), "{error}");

        for (form, any) in [("runc options", runc("")), ("CreateOptions", create(""))] {
            assert!(decode_options(Some(&any), &TaskOptions::default()).await.is_ok(), "{form}");
        }
        let empty = "ShimCgroup = \"\"\nSystemdCgroup = true\n";
        assert_eq!(
            parse_toml_options(Path::new("r.toml"), empty, &TaskOptions::default()).unwrap(),
            TaskOptions::default()
        );
    }

    #[tokio::test]
    async fn garbage_options_are_invalid() {
        let runc = any_of("containerd.runc.v1.Options", vec![0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_options(Some(&runc), &TaskOptions::default()).await,
            Err(OptionsError::Undecodable { .. }
                | OptionsError::UnreadableFile { .. }
                | OptionsError::InvalidFile { .. })
        ));
        let generic = any_of("runtimeoptions.v1.Options", vec![0x12, 0x50, b'x']);
        assert!(matches!(
            decode_options(Some(&generic), &TaskOptions::default()).await,
            Err(OptionsError::Undecodable { .. }
                | OptionsError::UnreadableFile { .. }
                | OptionsError::InvalidFile { .. })
        ));
    }
}
