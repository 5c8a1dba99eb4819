//! `containerd-shim-systemd-v1 delete`: containerd runs it when it believes a task's shim died
//! (its connection closed) or a start failed. We ask the daemon to delete the task if it still
//! runs and knows it; otherwise we remove the task's residue ourselves. Either way a
//! `DeleteResponse` goes to stdout.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::{DeleteRequest, DeleteResponse};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::TaskClient;
use nix::sys::signal::Signal;
use runc_wrap::atomic_file::read_json;
use runc_wrap::protocol::{files, ExitState};
use unit_gen::{validate_identifier, IdentifierKind, UnitName};

use crate::daemon::remove_task_residue;
use crate::error::Error;
use crate::paths::{unix_address, DaemonIdentity};
use crate::systemd::Systemd;

/// How long the daemon may take to delete.
const DAEMON_DELETE_TIMEOUT: Duration = Duration::from_secs(60);

/// What `delete` was given.
#[derive(Debug, Clone)]
pub struct DeleteCommand {
    /// `-namespace`.
    pub namespace: String,
    /// `-id`.
    pub id: String,
    /// `-bundle` (or the working directory).
    pub bundle: PathBuf,
    /// `-address`.
    pub containerd_address: String,
}

/// Runs `delete`; returns the encoded `DeleteResponse`.
pub async fn delete(command: &DeleteCommand) -> Result<Vec<u8>, Error> {
    validate_identifier(IdentifierKind::Namespace, &command.namespace)?;
    validate_identifier(IdentifierKind::TaskId, &command.id)?;
    let response = match delete_through_daemon(command).await {
        Some(response) => response,
        None => delete_locally(command).await?,
    };
    response
        .write_to_bytes()
        .map_err(|error| Error::io("encoding the delete response", std::io::Error::other(error)))
}

async fn delete_through_daemon(command: &DeleteCommand) -> Option<DeleteResponse> {
    let identity = DaemonIdentity::for_containerd(&command.containerd_address);
    let address = unix_address(&identity.namespace_socket(&command.namespace));
    let client = ttrpc::asynchronous::Client::connect(&address).await.ok()?;
    let context = ttrpc::context::with_duration(DAEMON_DELETE_TIMEOUT);
    let request = DeleteRequest {
        id: command.id.clone(),
        ..Default::default()
    };
    match TaskClient::new(client).delete(context, &request).await {
        Ok(response) => Some(response),
        Err(error) => {
            tracing::info!(id = %command.id, "the daemon did not delete the task ({error}); cleaning up locally");
            None
        }
    }
}

async fn delete_locally(command: &DeleteCommand) -> Result<DeleteResponse, Error> {
    let exit_path = command.bundle.join(files::EXIT_STATE);
    let recorded = tokio::task::spawn_blocking(move || read_json::<ExitState>(&exit_path).ok())
        .await
        .ok()
        .flatten();
    let systemd = Systemd::connect().await?;
    let unit = UnitName::for_task(&command.namespace, &command.id);
    remove_task_residue(&systemd, &unit, &command.bundle).await?;
    // Without a recorded exit the task was killed with its shim, as runc-v2 reports it.
    let (status, at) = match recorded {
        Some(state) => (state.status, state.exited_at()),
        None => (128 + Signal::SIGKILL as u32, SystemTime::now()),
    };
    Ok(DeleteResponse {
        pid: 0,
        exit_status: status,
        exited_at: Some(crate::daemon::timestamp(at)).into(),
        ..Default::default()
    })
}
