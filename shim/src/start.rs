//! `containerd-shim-systemd-v1 start`: run by containerd for every new task. It makes sure the
//! one daemon for this containerd runs, records the address in the bundle, and prints it in the
//! form this containerd reads. Nothing else may be printed: containerd 2.x parses stdout and
//! stderr together.
//!
//! The forms: a bare address for containerd 1.6 and 1.7, version-3 JSON for 2.0 to 2.2, and for
//! 2.3 and later, which write a protobuf `BootstrapParams` on stdin (the bootstrap protocol,
//! `containerd.runtime.bootstrap.v1`), a protobuf `BootstrapResult` ([`bootstrap_result`]; how
//! each parameter is used: [`with_bootstrap_params`]).
//!
//! When nobody answers on the daemon's control socket, the daemon is started the way it was
//! set up: through the `.socket` unit `containerd-shim-systemd-v1 install` wrote (same name as
//! the daemon's service), or else as a transient service launched on demand. The two share the
//! unit name, and systemd refuses a transient unit named like a unit file, so they can never
//! run side by side and fight over the control socket.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::bootstrap_api::{BootstrapParams, BootstrapResult, LogLevel};
use containerd_shim_protos::protobuf::Message;
use runc_wrap::atomic_file::write_atomically;
use unit_gen::{render_daemon_unit, validate_identifier, DaemonUnitRequest, IdentifierKind};

use crate::blocking::blocking;
use crate::config::{self, Config, ConfigSource};
use crate::control::{ask, ControlRequest, ControlResponse};
use crate::error::Error;
use crate::paths::{socket_path_of, unix_address, DaemonIdentity, RUNTIME_NAME, SOCKET_DIR};
use crate::systemd::{error_names, JobResult, Systemd};
use crate::task_api::{detect_task_api, TaskApi};
use crate::version::{REVISION, VERSION};

/// How long we wait for the daemon's start job (its own TimeoutStartSec is 30 s).
const DAEMON_JOB_TIMEOUT: Duration = Duration::from_secs(40);

/// What `start` was given by containerd.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// `-namespace`.
    pub namespace: String,
    /// `-id`.
    pub id: String,
    /// `-address`: containerd's gRPC socket, which identifies the containerd.
    pub containerd_address: String,
    /// `-publish-binary`: the containerd binary.
    pub publish_binary: String,
    /// `$TTRPC_ADDRESS`: where events go.
    pub ttrpc_address: String,
    /// `-debug`.
    pub debug: bool,
    /// The working directory containerd gave us: the task's bundle.
    pub bundle: PathBuf,
    /// What containerd wrote on stdin (runtime options, or bootstrap parameters).
    pub stdin: Vec<u8>,
    /// This binary.
    pub exe: PathBuf,
    /// Our `PATH`, passed to the daemon so it finds runc where containerd would.
    pub path_env: String,
    /// The configuration file the daemon is to read (passed on to a daemon launched here).
    pub config: ConfigSource,
    /// `NAME=value` of the OpenTelemetry variables in our environment (containerd's), passed to
    /// the daemon so it exports traces where containerd does
    /// ([`crate::telemetry::otlp::PASSED_TO_DAEMON`]). A daemon already running keeps its own.
    pub telemetry_env: Vec<String>,
}

/// Runs `start`; returns the bytes to print on stdout.
pub async fn start(request: &StartRequest) -> Result<Vec<u8>, Error> {
    validate_identifier(IdentifierKind::Namespace, &request.namespace)?;
    validate_identifier(IdentifierKind::TaskId, &request.id)?;
    let bootstrap = bootstrap_params(&request.stdin, &request.namespace, &request.id);
    let request = match &bootstrap {
        Some(params) => Cow::Owned(with_bootstrap_params(request, params)?),
        None => Cow::Borrowed(request),
    };
    if request.containerd_address.is_empty() {
        return Err(Error::InvalidRequest("-address (containerd's socket) is required".into()));
    }
    if request.ttrpc_address.is_empty() {
        return Err(Error::InvalidRequest("TTRPC_ADDRESS is not set in the environment".into()));
    }
    let identity = DaemonIdentity::for_containerd(&request.containerd_address);
    ensure_daemon(&identity, &request).await?;
    let address =
        match ask(&identity.control_socket, &ControlRequest::ServeNamespace { namespace: request.namespace.clone() })
            .await?
        {
            ControlResponse::Serving { address } => address,
            ControlResponse::Refused { reason } => {
                return Err(Error::InvalidRequest(format!(
                    "the shim daemon refused namespace {}: {reason}",
                    request.namespace
                )))
            }
        };

    let address_file = request.bundle.join("address");
    let contents = address.clone().into_bytes();
    blocking("writing the address file", move || write_atomically(&address_file, &contents))
        .await?
        .map_err(Error::Runc)?;

    if bootstrap.is_some() {
        return bootstrap_result(address, &identity)
            .write_to_bytes()
            .map_err(|error| Error::io("encoding the bootstrap result", std::io::Error::other(error)));
    }
    Ok(match detect_task_api(Path::new(&request.publish_binary)).await {
        TaskApi::V2 => address.into_bytes(),
        TaskApi::V3 => {
            serde_json::json!({ "version": 3, "address": address, "protocol": "ttrpc" }).to_string().into_bytes()
        }
    })
}

/// containerd 2.3 and later send `BootstrapParams` on stdin; older ones send runtime options (an
/// `Any`) or nothing. An `Any` parses as `BootstrapParams` too (its type URL and value land in
/// `instance_id` and `namespace`), so only params naming this very task count as the bootstrap
/// protocol, as containerd's own shims check them.
fn bootstrap_params(stdin: &[u8], namespace: &str, id: &str) -> Option<BootstrapParams> {
    if stdin.is_empty() {
        return None;
    }
    let params = BootstrapParams::parse_from_bytes(stdin).ok()?;
    (params.instance_id == id && params.namespace == namespace).then_some(params)
}

/// `request` with what containerd's bootstrap parameters add. Each field:
/// - `instance_id`, `namespace`: name this task ([`bootstrap_params`]).
/// - `containerd_grpc_address`, `containerd_ttrpc_address`, `containerd_binary`: containerd still
///   passes these as `-address`, `$TTRPC_ADDRESS` and `-publish-binary` too. A value given both
///   ways must name the same thing (an address with or without `unix://`), else `start` refuses
///   rather than guess which containerd the task belongs to; given one way only, it is used. The
///   flag's spelling wins, since the daemon's identity derives from it and `delete`, which gets
///   no bootstrap parameters, is given the flag.
/// - `log_level`: debug or trace means `-debug`, as containerd's runc-v2 reads it. It sets the
///   level of a daemon this `start` launches; a running daemon, shared by every task, keeps its
///   own, as with `-debug`.
/// - `containerd_version`: logged only; the protocol itself says the reply is a
///   `BootstrapResult`, so there is no task API version to detect.
/// - `socket_dir` (containerd's `[plugins."io.containerd.shim.v1.manager"] socket_dir`, by default
///   `/run/containerd/s`, the directory our sockets are in anyway): not used. The protocol leaves
///   the socket's place to the shim and containerd dials the address the reply gives wherever it
///   is; the directory exists so that a shim without access to `/run/containerd` (rootless
///   containerd) can place its socket. Our sockets belong to the one root daemon, not to the
///   task: each namespace is served on one socket of its own, shared by all its tasks and
///   restored across daemon restarts, so a task cannot move it. Refusing another directory would
///   make every task of such a containerd fail for no gain; containerd works with the address.
/// - `extensions`: not used. containerd 2.3 puts the task's runtime options there, and sends
///   them again with Create, where they are decoded and checked (`crate::runtime_options::decode_options`);
///   other extensions are optional configuration sections for features added later
///   (containerd's examples: CRI, NRI and sandbox configuration) that containerd sends whatever
///   the shim supports, so refusing an unknown one would break this runtime on the next
///   containerd that adds one (runc-v2, too, reads only the extension it knows).
fn with_bootstrap_params(request: &StartRequest, params: &BootstrapParams) -> Result<StartRequest, Error> {
    tracing::debug!(
        "bootstrap protocol from containerd {}; socket_dir {:?} (ours: {SOCKET_DIR}); extensions {:?}",
        params.containerd_version,
        params.socket_dir,
        params.extensions.iter().map(|extension| extension.value.type_url.as_str()).collect::<Vec<_>>()
    );
    let same_address = |a: &str, b: &str| socket_path_of(a) == socket_path_of(b);
    let same_path = |a: &str, b: &str| a == b;
    Ok(StartRequest {
        containerd_address: agreed(
            ("-address", &request.containerd_address),
            ("containerd_grpc_address", &params.containerd_grpc_address),
            same_address,
        )?,
        ttrpc_address: agreed(
            ("TTRPC_ADDRESS", &request.ttrpc_address),
            ("containerd_ttrpc_address", &params.containerd_ttrpc_address),
            same_address,
        )?,
        publish_binary: agreed(
            ("-publish-binary", &request.publish_binary),
            ("containerd_binary", &params.containerd_binary),
            same_path,
        )?,
        debug: request.debug || asks_for_debug(params),
        ..request.clone()
    })
}

/// The value of a setting containerd gave as a flag or variable (`given`) and as a bootstrap
/// parameter (`bootstrap`), each `(name, value)`, empty when not given: the one given, or the
/// flag's when both name the same thing by `same`.
fn agreed(
    given: (&'static str, &str),
    bootstrap: (&'static str, &str),
    same: impl Fn(&str, &str) -> bool,
) -> Result<String, Error> {
    let ((given_as, given), (parameter, bootstrap)) = (given, bootstrap);
    if bootstrap.is_empty() || same(given, bootstrap) {
        Ok(given.to_string())
    } else if given.is_empty() {
        Ok(bootstrap.to_string())
    } else {
        Err(Error::BootstrapDisagrees {
            parameter,
            bootstrap: bootstrap.to_string(),
            given_as,
            given: given.to_string(),
        })
    }
}

/// Whether containerd asks for debug logging: `LOG_LEVEL_DEBUG` or more verbose (lower; the
/// level is an open enum, so unknown values count by number).
fn asks_for_debug(params: &BootstrapParams) -> bool {
    params.log_level.value() <= LogLevel::LOG_LEVEL_DEBUG as i32
}

/// The reply to a containerd that spoke the bootstrap protocol: task API version 3 over ttrpc at
/// `address`, as containerd's runc-v2 answers, and:
/// - `capabilities`: none. containerd's `Capability` enum has no value but
///   `CAPABILITY_UNSPECIFIED` (reserved for negotiation to come), so there is nothing to claim.
/// - `metadata`: our runtime name, version and git revision, and the unit of the daemon that
///   serves the task. containerd keeps the result in the bundle (`bootstrap.json`), where it
///   tells an operator which build and which daemon a task belongs to.
fn bootstrap_result(address: String, identity: &DaemonIdentity) -> BootstrapResult {
    let metadata = [
        ("runtime", RUNTIME_NAME),
        ("version", VERSION),
        ("revision", REVISION),
        ("daemon_unit", identity.unit.as_str()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    BootstrapResult {
        version: 3,
        address,
        protocol: "ttrpc".into(),
        capabilities: Vec::new(),
        metadata,
        ..Default::default()
    }
}

/// Makes sure a daemon answers on its control socket, launching its unit if needed. Concurrent
/// `start`s race safely: systemd lets only one create the unit (the others get `UnitExists`
/// and join its start job).
async fn ensure_daemon(identity: &DaemonIdentity, request: &StartRequest) -> Result<(), Error> {
    if answers(&identity.control_socket).await {
        return Ok(());
    }
    // A daemon is about to start, and would refuse a bad configuration file only in its
    // journal: refuse it here too, where containerd shows the message.
    let config = Config::load(&request.config)?;
    let systemd = Systemd::connect(config.systemd_transport).await?;
    if systemd.unit_load_state(&identity.socket_unit()).await? == "loaded" {
        return start_installed_daemon(identity, &systemd).await;
    }
    let unit = render_daemon_unit(&daemon_unit_request(identity, request, &config, systemd.version()));
    for _attempt in 0..3 {
        match systemd.start_transient_unit(&unit, DAEMON_JOB_TIMEOUT).await {
            Ok(JobResult::Done) => break,
            Ok(result) => return Err(daemon_failed(identity, &format!("its start job ended with {result}"))),
            Err(error) if error.is(error_names::UNIT_EXISTS) => {
                match systemd.unit_active_state(&identity.unit).await? {
                    Some(state) if state == "active" => break,
                    // Another `start` just made the unit: until systemd runs its queued start
                    // job, it is "inactive". Starting it joins that job; stopping it (as for a
                    // dead unit) would cancel it under that `start` (seen with 50 at once).
                    // An inactive transient unit is otherwise collected, so it is never stale.
                    Some(state) if matches!(state.as_str(), "activating" | "reloading" | "inactive") => {
                        match systemd.start_unit(&identity.unit, DAEMON_JOB_TIMEOUT).await? {
                            JobResult::Done => break,
                            result => {
                                return Err(daemon_failed(identity, &format!("its start job ended with {result}")))
                            }
                        }
                    }
                    // failed, deactivating, or gone: clear it and try again
                    _ => {
                        systemd.stop_unit(&identity.unit, DAEMON_JOB_TIMEOUT).await?;
                        systemd.reset_failed_unit(&identity.unit).await?;
                    }
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    if answers(&identity.control_socket).await {
        Ok(())
    } else {
        Err(daemon_failed(identity, "it does not answer on its socket"))
    }
}

/// Starts the daemon `install` set up: its socket, whose first connection activates the
/// service. A service already (re)starting is joined instead: starting the socket then could
/// take the control socket's path from a daemon that still holds it.
async fn start_installed_daemon(identity: &DaemonIdentity, systemd: &Systemd) -> Result<(), Error> {
    let socket = identity.socket_unit();
    let state = systemd.unit_active_state(&identity.unit).await?;
    let (unit, result) = if matches!(state.as_deref(), Some("active" | "activating" | "reloading")) {
        (&identity.unit, systemd.start_unit(&identity.unit, DAEMON_JOB_TIMEOUT).await?)
    } else {
        // A socket whose service hit its start limit is failed, and stays so until reset.
        systemd.reset_failed_unit(&identity.unit).await?;
        systemd.reset_failed_unit(&socket).await?;
        (&socket, systemd.start_unit(&socket, DAEMON_JOB_TIMEOUT).await?)
    };
    if result != JobResult::Done {
        return Err(daemon_failed(identity, &format!("the start job of {unit} ended with {result}")));
    }
    if answers(&identity.control_socket).await {
        Ok(())
    } else {
        Err(daemon_failed(identity, &format!("its socket unit {socket} does not accept connections")))
    }
}

fn daemon_unit_request(
    identity: &DaemonIdentity,
    request: &StartRequest,
    config: &Config,
    systemd_version: u32,
) -> DaemonUnitRequest {
    let mut args = vec![
        "-address".to_string(),
        request.containerd_address.clone(),
        "-publish-binary".to_string(),
        request.publish_binary.clone(),
        "-socket".to_string(),
        unix_address(&identity.control_socket),
    ];
    if request.debug {
        args.push("-debug".to_string());
    }
    args.push("daemon".to_string());
    let mut environment =
        vec![format!("TTRPC_ADDRESS={}", request.ttrpc_address), format!("PATH={}", request.path_env)];
    if let ConfigSource::Explicit(path) = &request.config {
        environment.push(format!("{}={}", config::PATH_ENV, path.display()));
    }
    environment.extend(request.telemetry_env.iter().cloned());
    DaemonUnitRequest {
        unit_name: identity.unit.clone(),
        exe: request.exe.display().to_string(),
        args,
        environment,
        description: format!("containerd-shim-systemd-v1 daemon for containerd at {}", request.containerd_address),
        systemd_version,
        fd_store_max: config.daemon.fd_store_max,
    }
}

fn daemon_failed(identity: &DaemonIdentity, reason: &str) -> Error {
    Error::io(
        format!("launching the shim daemon {}", identity.unit),
        std::io::Error::other(format!("{reason}; see `journalctl -u {}`", identity.unit)),
    )
}

async fn answers(socket: &Path) -> bool {
    tokio::net::UnixStream::connect(socket).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::bootstrap_api::Extension;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::shim::oci::Options as RuncOptions;

    /// What containerd 2.3 sends for task `t1` in namespace `ns`: the same addresses and binary
    /// as its flags and environment ([`request`]), the runtime options as an extension, and its
    /// socket directory.
    fn containerd_2_3_params() -> BootstrapParams {
        let runc = RuncOptions { binary_name: "/usr/sbin/runc".into(), ..Default::default() };
        let options = Any {
            type_url: "type.googleapis.com/containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        BootstrapParams {
            instance_id: "t1".into(),
            namespace: "ns".into(),
            log_level: LogLevel::LOG_LEVEL_INFO.into(),
            containerd_version: "v2.3.0".into(),
            containerd_ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
            containerd_grpc_address: "/run/containerd/containerd.sock".into(),
            containerd_binary: "/usr/bin/containerd".into(),
            extensions: vec![Extension { value: MessageField::some(options), ..Default::default() }],
            socket_dir: Some("/run/containerd/s".into()),
            ..Default::default()
        }
    }

    /// A `start` of task `t1` in namespace `ns` as containerd runs it.
    fn request() -> StartRequest {
        StartRequest {
            namespace: "ns".into(),
            id: "t1".into(),
            containerd_address: "/run/containerd/containerd.sock".into(),
            publish_binary: "/usr/bin/containerd".into(),
            ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
            debug: false,
            bundle: "/b".into(),
            stdin: vec![],
            exe: "/usr/local/bin/containerd-shim-systemd-v1".into(),
            path_env: "/usr/sbin:/usr/bin".into(),
            config: ConfigSource::Default,
            telemetry_env: vec![],
        }
    }

    #[test]
    fn bootstrap_params_must_name_this_task() {
        let bytes = containerd_2_3_params().write_to_bytes().unwrap();
        assert_eq!(bootstrap_params(&bytes, "ns", "t1"), Some(containerd_2_3_params()));
        assert!(bootstrap_params(&bytes, "ns", "other").is_none(), "another task");
        assert!(bootstrap_params(&bytes, "other", "t1").is_none(), "another namespace");
        assert!(bootstrap_params(&[], "ns", "t1").is_none(), "nothing on stdin");
        assert!(bootstrap_params(&[0xff, 0xff], "ns", "t1").is_none(), "not protobuf");
    }

    #[test]
    fn runtime_options_on_stdin_are_not_bootstrap_params() {
        let runc = RuncOptions { binary_name: "/usr/sbin/runc".into(), ..Default::default() };
        let anys = [
            Any { type_url: "containerd.runc.v1.Options".into(), value: vec![], ..Default::default() },
            Any {
                type_url: "containerd.runc.v1.Options".into(),
                value: runc.write_to_bytes().unwrap(),
                ..Default::default()
            },
            // CreateOptions { no_pivot_root: true }, what containerd 1.x's ctr run --no-pivot sends.
            Any {
                type_url: "containerd.linux.runc.CreateOptions".into(),
                value: vec![0x08, 0x01],
                ..Default::default()
            },
        ];
        for any in anys {
            let bytes = any.write_to_bytes().unwrap();
            assert!(BootstrapParams::parse_from_bytes(&bytes).is_ok(), "an Any parses as BootstrapParams");
            assert!(bootstrap_params(&bytes, "ns", "t1").is_none(), "{any:?}");
        }
    }

    #[test]
    fn protobuf_bootstrap_params_get_a_protobuf_bootstrap_result() {
        // What `start` does with containerd 2.3's stdin, short of the daemon, which answers the
        // namespace's socket address.
        let stdin = containerd_2_3_params().write_to_bytes().unwrap();
        let params = bootstrap_params(&stdin, "ns", "t1").expect("the bootstrap protocol");
        let request = with_bootstrap_params(&StartRequest { stdin, ..request() }, &params).unwrap();
        let identity = DaemonIdentity::for_containerd(&request.containerd_address);
        let address = unix_address(&identity.namespace_socket(&request.namespace));
        let bytes = bootstrap_result(address.clone(), &identity).write_to_bytes().unwrap();
        let decoded = BootstrapResult::parse_from_bytes(&bytes).unwrap();
        assert_eq!(decoded.version, 3);
        assert_eq!(decoded.address, address);
        assert_eq!(decoded.protocol, "ttrpc");
        assert_eq!(decoded.capabilities, Vec::new(), "containerd defines no capability to claim");
        let expected: std::collections::HashMap<String, String> = [
            ("runtime", "io.containerd.systemd.v1"),
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", REVISION),
            ("daemon_unit", identity.unit.as_str()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
        assert_eq!(decoded.metadata, expected);
        assert!(decoded.special_fields.unknown_fields().iter().next().is_none(), "nothing else");
    }

    #[test]
    fn bootstrap_params_that_agree_with_the_flags_change_nothing_but_debug() {
        let applied = with_bootstrap_params(&request(), &containerd_2_3_params()).unwrap();
        assert_eq!(format!("{applied:?}"), format!("{:?}", request()));

        let with_scheme = BootstrapParams {
            containerd_grpc_address: "unix:///run/containerd/containerd.sock".into(),
            containerd_ttrpc_address: "unix:///run/containerd/containerd.sock.ttrpc".into(),
            ..containerd_2_3_params()
        };
        let applied = with_bootstrap_params(&request(), &with_scheme).unwrap();
        assert_eq!(applied.containerd_address, "/run/containerd/containerd.sock", "the flag's spelling");
        assert_eq!(applied.ttrpc_address, "/run/containerd/containerd.sock.ttrpc");
    }

    #[test]
    fn bootstrap_params_fill_in_what_the_flags_left_out() {
        let bare = StartRequest {
            containerd_address: String::new(),
            ttrpc_address: String::new(),
            publish_binary: String::new(),
            ..request()
        };
        let applied = with_bootstrap_params(&bare, &containerd_2_3_params()).unwrap();
        assert_eq!(applied.containerd_address, "/run/containerd/containerd.sock");
        assert_eq!(applied.ttrpc_address, "/run/containerd/containerd.sock.ttrpc");
        assert_eq!(applied.publish_binary, "/usr/bin/containerd");
    }

    #[test]
    fn bootstrap_params_naming_another_containerd_are_refused() {
        struct Case {
            name: &'static str,
            params: BootstrapParams,
            expected: (&'static str, &'static str),
        }
        let cases = [
            Case {
                name: "gRPC address",
                params: BootstrapParams {
                    containerd_grpc_address: "unix:///run/other/containerd.sock".into(),
                    ..containerd_2_3_params()
                },
                expected: ("containerd_grpc_address", "-address"),
            },
            Case {
                name: "ttrpc address",
                params: BootstrapParams {
                    containerd_ttrpc_address: "/run/other/containerd.sock.ttrpc".into(),
                    ..containerd_2_3_params()
                },
                expected: ("containerd_ttrpc_address", "TTRPC_ADDRESS"),
            },
            Case {
                name: "binary",
                params: BootstrapParams { containerd_binary: "/opt/containerd".into(), ..containerd_2_3_params() },
                expected: ("containerd_binary", "-publish-binary"),
            },
        ];
        for case in cases {
            let error = with_bootstrap_params(&request(), &case.params).expect_err(case.name);
            let Error::BootstrapDisagrees { parameter, given_as, .. } = &error else {
                panic!("{}: {error:?}", case.name);
            };
            assert_eq!((*parameter, *given_as), case.expected, "{}", case.name);
            assert_eq!(error.code(), ttrpc::Code::INVALID_ARGUMENT, "{}", case.name);
        }
        let error = with_bootstrap_params(
            &request(),
            &BootstrapParams {
                containerd_grpc_address: "unix:///run/other/containerd.sock".into(),
                ..containerd_2_3_params()
            },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "containerd's bootstrap parameters give containerd_grpc_address \"unix:///run/other/containerd.sock\", \
             but -address is \"/run/containerd/containerd.sock\"; refusing to guess which containerd the task belongs to"
        );
    }

    #[test]
    fn debug_or_trace_in_the_bootstrap_log_level_means_debug() {
        let with_level = |level: i32| BootstrapParams {
            log_level: containerd_shim_protos::protobuf::EnumOrUnknown::from_i32(level),
            ..containerd_2_3_params()
        };
        for (level, debug) in [(-8, true), (-6, true), (-4, true), (-2, false), (0, false), (4, false), (12, false)] {
            let applied = with_bootstrap_params(&request(), &with_level(level)).unwrap();
            assert_eq!(applied.debug, debug, "log level {level}");
        }
        let debug_flag = StartRequest { debug: true, ..request() };
        assert!(with_bootstrap_params(&debug_flag, &with_level(0)).unwrap().debug, "-debug still counts");
    }

    #[test]
    fn any_socket_dir_is_accepted_and_our_namespace_socket_is_used() {
        // containerd's default directory is ours; another one (rootless containerd's, or one set
        // in containerd's configuration) does not move the daemon's per-namespace socket.
        for socket_dir in [None, Some("/run/containerd/s"), Some("/run/user/1000/containerd/s"), Some("relative")] {
            let params = BootstrapParams { socket_dir: socket_dir.map(str::to_string), ..containerd_2_3_params() };
            let applied = with_bootstrap_params(&request(), &params).unwrap();
            assert_eq!(format!("{applied:?}"), format!("{:?}", request()), "{socket_dir:?}");
        }
        let identity = DaemonIdentity::for_containerd(&request().containerd_address);
        assert!(identity.namespace_socket("ns").starts_with(SOCKET_DIR), "containerd's default directory");
    }

    #[test]
    fn daemon_unit_passes_addresses_and_path() {
        let identity = DaemonIdentity::for_containerd("/run/containerd/containerd.sock");
        let request = StartRequest {
            debug: true,
            telemetry_env: vec!["OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318".into()],
            ..request()
        };
        let unit = daemon_unit_request(&identity, &request, &Config::default(), 252);
        assert_eq!(unit.args.last().map(String::as_str), Some("daemon"));
        assert!(unit.args.contains(&"-debug".to_string()));
        assert!(unit.args.contains(&unix_address(&identity.control_socket)));
        assert!(unit.environment.contains(&"PATH=/usr/sbin:/usr/bin".to_string()));
        assert!(unit.environment.contains(&"TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc".to_string()));
        assert!(unit.environment.contains(&"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318".to_string()));
        assert!(!unit.environment.iter().any(|entry| entry.starts_with(config::PATH_ENV)), "default config path");

        let named = StartRequest { config: ConfigSource::Explicit("/etc/shim.toml".into()), ..request };
        let unit = daemon_unit_request(&identity, &named, &Config::default(), 252);
        assert!(unit.environment.contains(&format!("{}=/etc/shim.toml", config::PATH_ENV)), "{unit:?}");
    }

    #[test]
    fn the_daemon_unit_keeps_as_many_descriptors_as_the_configuration_says() {
        let identity = DaemonIdentity::for_containerd("/run/containerd/containerd.sock");
        let request = request();
        let config = Config::parse(std::path::Path::new("/c.toml"), "[daemon]\nfd_store_max = 64\n").unwrap();
        assert_eq!(daemon_unit_request(&identity, &request, &config, 252).fd_store_max, 64);
    }
}
