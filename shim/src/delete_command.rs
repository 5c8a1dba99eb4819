//! `containerd-shim-systemd-v1 delete`: containerd runs it whenever its connection to a task's
//! shim closes (after every clean Delete too) and when a start failed. We ask the daemon to
//! delete the task if it runs and knows it; otherwise we remove the task's residue ourselves.
//! Either way a `DeleteResponse` goes to stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::{DeleteRequest, DeleteResponse};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::TaskClient;
use nix::sys::signal::Signal;
use runc_wrap::atomic_file::read_json;
use runc_wrap::protocol::{files, ExitState};
use unit_gen::{validate_identifier, IdentifierKind};

use crate::daemon::{remove_task_residue, timestamp, ContainerEnd};
use crate::error::Error;
use crate::paths::{exit_file_of, unix_address, DaemonIdentity};
use crate::systemd::{Systemd, TransportPreference};
use crate::unbounded_work::UnboundedWork;

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

/// What the daemon said to our Delete.
#[derive(Debug)]
enum DaemonAnswer {
    /// It deleted the task.
    Deleted(DeleteResponse),
    /// It does not know the task.
    NotFound,
    /// It answered with an error (a task in the wrong state, a deadline it missed): it is alive
    /// and owns the task, so nothing may be removed behind its back.
    Refused(ttrpc::proto::Status),
    /// It could not be asked at all (no socket, or the connection broke): nobody else will
    /// clean up.
    Unreachable,
}

/// Runs `delete`; returns the encoded `DeleteResponse`.
pub async fn delete(command: &DeleteCommand) -> Result<Vec<u8>, Error> {
    validate_identifier(IdentifierKind::Namespace, &command.namespace)?;
    validate_identifier(IdentifierKind::TaskId, &command.id)?;
    let response = match delete_through_daemon(command).await {
        DaemonAnswer::Deleted(response) => response,
        // After a clean Delete the daemon has forgotten the task and removed our files: there is
        // nothing to clean, and this stays off the critical path of `ctr run --rm`.
        DaemonAnswer::NotFound if !has_task_files(&command.bundle).await => killed_now(),
        DaemonAnswer::NotFound | DaemonAnswer::Unreachable => delete_locally(command).await?,
        DaemonAnswer::Refused(status) => {
            return Err(Error::DaemonRefusedDelete {
                namespace: command.namespace.clone(),
                id: command.id.clone(),
                code: format!("{:?}", status.code()),
                message: status.message.clone(),
            })
        }
    };
    response.write_to_bytes().map_err(|error| Error::io("encoding the delete response", std::io::Error::other(error)))
}

async fn delete_through_daemon(command: &DeleteCommand) -> DaemonAnswer {
    let identity = DaemonIdentity::for_containerd(&command.containerd_address);
    let address = unix_address(&identity.namespace_socket(&command.namespace));
    let Ok(client) = ttrpc::asynchronous::Client::connect(&address).await else {
        return DaemonAnswer::Unreachable;
    };
    let context = ttrpc::context::with_duration(DAEMON_DELETE_TIMEOUT);
    let request = DeleteRequest { id: command.id.clone(), ..Default::default() };
    let answer = answer_of(TaskClient::new(client).delete(context, &request).await);
    if let DaemonAnswer::Unreachable = answer {
        tracing::warn!(id = %command.id, "the daemon's connection broke during Delete; cleaning up locally");
    }
    answer
}

/// Classifies the daemon's reply: only a connection that could not carry the call means the
/// daemon is gone.
fn answer_of(reply: Result<DeleteResponse, ttrpc::Error>) -> DaemonAnswer {
    match reply {
        Ok(response) => DaemonAnswer::Deleted(response),
        Err(ttrpc::Error::RpcStatus(status)) if status.code() == ttrpc::Code::NOT_FOUND => DaemonAnswer::NotFound,
        Err(ttrpc::Error::RpcStatus(status)) => DaemonAnswer::Refused(status),
        Err(_transport) => DaemonAnswer::Unreachable,
    }
}

/// Whether any file of ours is still in the bundle (an unreadable bundle counts as yes). One
/// trip to the blocking pool for all of them: this runs after every `ctr run --rm`.
async fn has_task_files(bundle: &Path) -> bool {
    let bundle = bundle.to_path_buf();
    tokio::task::spawn_blocking(move || files::ALL.iter().any(|name| bundle.join(name).try_exists().unwrap_or(true)))
        .await
        .unwrap_or(true)
}

async fn delete_locally(command: &DeleteCommand) -> Result<DeleteResponse, Error> {
    let identity = DaemonIdentity::for_containerd(&command.containerd_address);
    let unit = identity.unit_naming.task(&command.namespace, &command.id);
    let exit_file = exit_file_of(&identity.exits_dir(), unit.as_str());
    // Units made by older daemons record their exit in the bundle.
    let places = [exit_file.clone(), command.bundle.join(files::EXIT_STATE)];
    let recorded =
        tokio::task::spawn_blocking(move || places.iter().find_map(|path| read_json::<ExitState>(path).ok()))
            .await
            .ok()
            .flatten();
    let systemd = Arc::new(Systemd::connect(TransportPreference::default()).await?);
    // The process exits after the answer: a release that hangs ends with it, unjoined.
    let rootfs_releases = UnboundedWork::default();
    remove_task_residue(
        &systemd,
        &runc_wrap::RuncFactory,
        &rootfs_releases,
        &unit,
        &command.bundle,
        &exit_file,
        ContainerEnd::Unknown,
    )
    .await?;
    Ok(match recorded {
        Some(state) => DeleteResponse {
            exit_status: state.status,
            exited_at: Some(timestamp(state.exited_at())).into(),
            ..Default::default()
        },
        None => killed_now(),
    })
}

/// The answer for a task whose exit was never recorded: killed, now (as runc-v2 reports it).
fn killed_now() -> DeleteResponse {
    DeleteResponse {
        exit_status: 128 + Signal::SIGKILL as u32,
        exited_at: Some(timestamp(SystemTime::now())).into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_daemon_that_cannot_be_reached_leaves_the_cleanup_to_us() {
        let status = |code| ttrpc::Error::RpcStatus(ttrpc::get_status(code, "x"));
        assert!(matches!(answer_of(Ok(DeleteResponse::default())), DaemonAnswer::Deleted(_)));
        assert!(matches!(answer_of(Err(status(ttrpc::Code::NOT_FOUND))), DaemonAnswer::NotFound));
        for code in [ttrpc::Code::FAILED_PRECONDITION, ttrpc::Code::DEADLINE_EXCEEDED, ttrpc::Code::INTERNAL] {
            assert!(matches!(answer_of(Err(status(code))), DaemonAnswer::Refused(_)), "{code:?}: the daemon is alive");
        }
        assert!(matches!(answer_of(Err(ttrpc::Error::RemoteClosed)), DaemonAnswer::Unreachable));
        assert!(matches!(answer_of(Err(ttrpc::Error::LocalClosed)), DaemonAnswer::Unreachable));
    }

    #[tokio::test]
    async fn a_bundle_is_left_alone_only_when_none_of_our_files_is_in_it() {
        let bundle = std::env::temp_dir().join(format!("shim-delete-test-{}", std::process::id()));
        std::fs::create_dir_all(&bundle).expect("bundle dir");
        std::fs::write(bundle.join("config.json"), "{}").expect("containerd's file");
        assert!(!has_task_files(&bundle).await, "containerd's own files are not ours");
        for name in files::ALL {
            std::fs::write(bundle.join(name), "").expect("our file");
            assert!(has_task_files(&bundle).await, "{name} is ours");
            std::fs::remove_file(bundle.join(name)).expect("remove our file");
        }
        std::fs::remove_dir_all(&bundle).expect("cleanup");
    }
}
