//! The runtime options decoder (`CreateTaskRequest.options`): runc's protobuf options, CRI's
//! `runtimeoptions.v1.Options` naming a TOML file, containerd 1.x's
//! `containerd.linux.runc.CreateOptions`, or anything else. It may not panic; runc's options
//! and CreateOptions decode to what was encoded, or are refused for a non-empty ShimCgroup; a
//! TOML file is either accepted or refused as an invalid request naming the file.
//!
//! It drives the decoder through the shim crate's public `runtime_options` module.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedOutputStream, Message};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use libfuzzer_sys::fuzz_target;

use shim::runtime_options::{decode_options, OptionsError, TaskOptions};

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// runc's options, encoded from fields.
    Runc {
        binary_name: String,
        root: String,
        no_pivot_root: bool,
        no_new_keyring: bool,
        io_uid: u32,
        io_gid: u32,
        criu_image_path: String,
        criu_work_path: String,
        shim_cgroup: String,
        systemd_cgroup: bool,
    },
    /// containerd 1.x's `containerd.linux.runc.CreateOptions`, encoded from fields.
    LinuxCreate(LinuxCreate),
    /// Arbitrary bytes under one of the known type URLs, or under any type URL.
    Bytes { type_url: &'a str, known: Option<KnownType>, value: &'a [u8] },
    /// A TOML file named by CRI's options.
    Toml(&'a str),
}

/// The fields of `containerd.linux.runc.CreateOptions`, numbered 1 to 13 in this order.
#[derive(Arbitrary, Debug)]
struct LinuxCreate {
    no_pivot_root: bool,
    open_tcp: bool,
    external_unix_sockets: bool,
    terminal: bool,
    file_locks: bool,
    empty_namespaces: Vec<String>,
    cgroups_mode: String,
    no_new_keyring: bool,
    shim_cgroup: String,
    io_uid: u32,
    io_gid: u32,
    criu_work_path: String,
    criu_image_path: String,
}

impl LinuxCreate {
    /// The message as a protobuf encoder writes it (every field, defaults included, is valid).
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut out = CodedOutputStream::vec(&mut bytes);
        let written = (|| {
            out.write_bool(1, self.no_pivot_root)?;
            out.write_bool(2, self.open_tcp)?;
            out.write_bool(3, self.external_unix_sockets)?;
            out.write_bool(4, self.terminal)?;
            out.write_bool(5, self.file_locks)?;
            for namespace in &self.empty_namespaces {
                out.write_string(6, namespace)?;
            }
            out.write_string(7, &self.cgroups_mode)?;
            out.write_bool(8, self.no_new_keyring)?;
            out.write_string(9, &self.shim_cgroup)?;
            out.write_uint32(10, self.io_uid)?;
            out.write_uint32(11, self.io_gid)?;
            out.write_string(12, &self.criu_work_path)?;
            out.write_string(13, &self.criu_image_path)?;
            out.flush()
        })();
        written.expect("encode");
        drop(out);
        bytes
    }
}

/// The option types the decoder knows.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum KnownType {
    Runc,
    RuntimeOptions,
    LinuxCreate,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

fn decode(any: &Any) -> Result<TaskOptions, OptionsError> {
    runtime().block_on(decode_options(Some(any), &TaskOptions::default()))
}

/// CRI's `runtimeoptions.v1.Options` with field 2 (`config_path`).
fn runtime_options_naming(path: &str) -> Vec<u8> {
    let mut value = vec![0x12];
    let mut length = path.len();
    while length >= 0x80 {
        value.push((length as u8 & 0x7f) | 0x80);
        length >>= 7;
    }
    value.push(length as u8);
    value.extend_from_slice(path.as_bytes());
    value
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Runc {
        binary_name,
        root,
        no_pivot_root,
        no_new_keyring,
        io_uid,
        io_gid,
        criu_image_path,
        criu_work_path,
        shim_cgroup,
        systemd_cgroup,
    } => {
        let runc = RuncOptions {
            binary_name: binary_name.clone(),
            root: root.clone(),
            no_pivot_root,
            no_new_keyring,
            io_uid,
            io_gid,
            criu_image_path: criu_image_path.clone(),
            criu_work_path: criu_work_path.clone(),
            shim_cgroup,
            systemd_cgroup,
            ..Default::default()
        };
        let any = Any {
            type_url: "type.googleapis.com/containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().expect("encode"),
            ..Default::default()
        };
        let decoded = match decode(&any) {
            Err(OptionsError::ShimCgroup { value, .. }) if !value.is_empty() => return,
            decoded => decoded.expect("runc's options as encoded decode, unless they name a ShimCgroup"),
        };
        let non_empty = |value: String| (!value.is_empty()).then_some(value);
        assert_eq!(decoded.runc_binary, non_empty(binary_name));
        assert_eq!(decoded.runc_root, non_empty(root));
        assert_eq!((decoded.no_pivot_root, decoded.no_new_keyring), (no_pivot_root, no_new_keyring));
        let owner = (io_uid != 0 || io_gid != 0).then_some((io_uid, io_gid));
        assert_eq!(decoded.io_owner, owner);
        assert_eq!(decoded.criu_image_path, non_empty(criu_image_path));
        assert_eq!(decoded.criu_work_path, non_empty(criu_work_path));
    }
    Input::LinuxCreate(create) => {
        let any = Any {
            type_url: "type.googleapis.com/containerd.linux.runc.CreateOptions".into(),
            value: create.encode(),
            ..Default::default()
        };
        let decoded = match decode(&any) {
            Err(OptionsError::ShimCgroup { value, .. }) => {
                assert_eq!(value, create.shim_cgroup);
                assert!(!value.is_empty(), "an empty ShimCgroup is nothing");
                return;
            }
            decoded => decoded.expect("CreateOptions as encoded decode, unless they name a ShimCgroup"),
        };
        let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_string());
        assert_eq!((decoded.runc_binary.as_deref(), decoded.runc_root.as_deref()), (None, None), "the configuration's");
        assert_eq!((decoded.no_pivot_root, decoded.no_new_keyring), (create.no_pivot_root, create.no_new_keyring));
        let owner = (create.io_uid != 0 || create.io_gid != 0).then_some((create.io_uid, create.io_gid));
        assert_eq!(decoded.io_owner, owner);
        assert_eq!(decoded.criu_image_path, non_empty(&create.criu_image_path));
        assert_eq!(decoded.criu_work_path, non_empty(&create.criu_work_path));
        let settings = [
            create.open_tcp,
            create.external_unix_sockets,
            create.terminal,
            create.file_locks,
            !create.empty_namespaces.is_empty(),
            !create.cgroups_mode.is_empty(),
        ];
        assert_eq!(decoded.criu_restore_settings.len(), settings.iter().filter(|set| **set).count());
        assert_eq!(decoded.refuse_unhonoured_restore_settings().is_ok(), decoded.criu_restore_settings.is_empty());
    }
    Input::Bytes { type_url, known, value } => {
        let type_url = match known {
            Some(KnownType::Runc) => "containerd.runc.v1.Options",
            Some(KnownType::RuntimeOptions) => "runtimeoptions.v1.Options",
            Some(KnownType::LinuxCreate) => "containerd.linux.runc.CreateOptions",
            None => type_url,
        };
        // A config path must stay one the target controls: a relative one resolves in the
        // fuzzer's directory, an absolute one could name any file of the machine.
        if type_url.rsplit('/').next() == Some("runtimeoptions.v1.Options") && value.contains(&b'/') {
            return;
        }
        let any = Any { type_url: type_url.into(), value: value.to_vec(), ..Default::default() };
        match decode(&any) {
            Ok(_)
            | Err(
                OptionsError::Undecodable { .. } | OptionsError::UnreadableFile { .. } | OptionsError::InvalidFile { .. },
            ) => {}
            Err(OptionsError::ShimCgroup { value, .. }) => assert!(!value.is_empty()),
            Err(OptionsError::UnknownType { type_url: refused }) => {
                assert_eq!(refused, type_url);
                assert!(known.is_none());
            }
            Err(other @ OptionsError::UnhonouredRestoreSettings { .. }) => {
                panic!("only Create refuses these: {other:?}")
            }
        }
    }
    Input::Toml(text) => {
        // tests/fuzz points TMPDIR at a scratch directory it removes afterwards.
        let path = std::env::temp_dir().join(format!("shim-fuzz-options-{}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write the options file");
        let path_text = path.to_str().expect("utf-8 temp dir");
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: runtime_options_naming(path_text),
            ..Default::default()
        };
        match decode(&any) {
            Ok(_) => {}
            Err(error @ (OptionsError::UnreadableFile { .. } | OptionsError::InvalidFile { .. })) => {
                let message = error.to_string();
                assert!(message.contains(path_text), "{message}");
            }
            Err(OptionsError::ShimCgroup { value, given_in }) => {
                assert!(!value.is_empty());
                assert!(given_in.contains(path_text), "{given_in}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }
});
