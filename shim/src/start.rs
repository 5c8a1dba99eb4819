//! `containerd-shim-systemd-v1 start`: run by containerd for every new task. It makes sure the
//! one daemon for this containerd runs, records the address in the bundle, and prints it in the
//! form this containerd reads. Nothing else may be printed: containerd 2.x parses stdout and
//! stderr together.
//!
//! When nobody answers on the daemon's control socket, the daemon is started the way it was
//! set up: through the `.socket` unit `containerd-shim-systemd-v1 install` wrote (same name as
//! the daemon's service), or else as a transient service launched on demand. The two share the
//! unit name, and systemd refuses a transient unit named like a unit file, so they can never
//! run side by side and fight over the control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::bootstrap_api::{BootstrapParams, BootstrapResult};
use containerd_shim_protos::protobuf::Message;
use runc_wrap::atomic_file::write_atomically;
use unit_gen::{render_daemon_unit, validate_identifier, DaemonUnitRequest, IdentifierKind};

use crate::blocking::blocking;
use crate::config::{self, Config, ConfigSource};
use crate::control::{ask, ControlRequest, ControlResponse};
use crate::error::Error;
use crate::paths::{unix_address, DaemonIdentity};
use crate::systemd::{error_names, JobResult, Systemd};
use crate::task_api::{detect_task_api, TaskApi};

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
    if request.containerd_address.is_empty() {
        return Err(Error::InvalidRequest("-address (containerd's socket) is required".into()));
    }
    if request.ttrpc_address.is_empty() {
        return Err(Error::InvalidRequest("TTRPC_ADDRESS is not set in the environment".into()));
    }
    let identity = DaemonIdentity::for_containerd(&request.containerd_address);
    ensure_daemon(&identity, request).await?;
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
        .map_err(Error::State)?;

    if let Some(params) = bootstrap_params(&request.stdin, &request.namespace, &request.id) {
        tracing::debug!("bootstrap protocol from containerd {}", params.containerd_version);
        let result = BootstrapResult { version: 3, address, protocol: "ttrpc".into(), ..Default::default() };
        return result
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

/// Newer containerd sends `BootstrapParams` on stdin; older ones send runtime options (an `Any`)
/// or nothing. Only params naming this very task count as the bootstrap protocol.
fn bootstrap_params(stdin: &[u8], namespace: &str, id: &str) -> Option<BootstrapParams> {
    if stdin.is_empty() {
        return None;
    }
    let params = BootstrapParams::parse_from_bytes(stdin).ok()?;
    (params.instance_id == id && params.namespace == namespace).then_some(params)
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
    Config::load(&request.config)?;
    let systemd = Systemd::connect().await?;
    if systemd.unit_load_state(&identity.socket_unit()).await? == "loaded" {
        return start_installed_daemon(identity, &systemd).await;
    }
    let unit = render_daemon_unit(&daemon_unit_request(identity, request, systemd.version()));
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

fn daemon_unit_request(identity: &DaemonIdentity, request: &StartRequest, systemd_version: u32) -> DaemonUnitRequest {
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
    use containerd_shim_protos::protobuf::well_known_types::any::Any;

    #[test]
    fn bootstrap_params_must_name_this_task() {
        let params = BootstrapParams { instance_id: "t1".into(), namespace: "ns".into(), ..Default::default() };
        let bytes = params.write_to_bytes().unwrap();
        assert!(bootstrap_params(&bytes, "ns", "t1").is_some());
        assert!(bootstrap_params(&bytes, "ns", "other").is_none());
        assert!(bootstrap_params(&[], "ns", "t1").is_none());
    }

    #[test]
    fn runtime_options_on_stdin_are_not_bootstrap_params() {
        let options = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![], ..Default::default() };
        assert!(bootstrap_params(&options.write_to_bytes().unwrap(), "ns", "t1").is_none());
    }

    #[test]
    fn daemon_unit_passes_addresses_and_path() {
        let identity = DaemonIdentity::for_containerd("/run/containerd/containerd.sock");
        let request = StartRequest {
            namespace: "ns".into(),
            id: "t1".into(),
            containerd_address: "/run/containerd/containerd.sock".into(),
            publish_binary: "/usr/bin/containerd".into(),
            ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
            debug: true,
            bundle: "/b".into(),
            stdin: vec![],
            exe: "/usr/local/bin/containerd-shim-systemd-v1".into(),
            path_env: "/usr/sbin:/usr/bin".into(),
            config: ConfigSource::Default,
            telemetry_env: vec!["OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318".into()],
        };
        let unit = daemon_unit_request(&identity, &request, 252);
        assert_eq!(unit.args.last().map(String::as_str), Some("daemon"));
        assert!(unit.args.contains(&"-debug".to_string()));
        assert!(unit.args.contains(&unix_address(&identity.control_socket)));
        assert!(unit.environment.contains(&"PATH=/usr/sbin:/usr/bin".to_string()));
        assert!(unit.environment.contains(&"TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc".to_string()));
        assert!(unit.environment.contains(&"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318".to_string()));
        assert!(!unit.environment.iter().any(|entry| entry.starts_with(config::PATH_ENV)), "default config path");

        let named = StartRequest { config: ConfigSource::Explicit("/etc/shim.toml".into()), ..request };
        let unit = daemon_unit_request(&identity, &named, 252);
        assert!(unit.environment.contains(&format!("{}=/etc/shim.toml", config::PATH_ENV)), "{unit:?}");
    }
}
