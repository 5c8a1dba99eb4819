//! What the gRPC test clients ([`crate::grpc`] for containerd's API, [`crate::cri`] for the CRI
//! plugin) share: one deadline for every call, sent along so the server sees it too, and the
//! two ways a call fails.

use std::future::Future;
use std::time::Duration;

use containerd_client::tonic::{Code, Request, Response, Status};

/// The deadline of every call: long enough for a `Wait` on a process a test has just ended,
/// and for RunPodSandbox and StopContainer's grace period.
const CALL_TIMEOUT_UNSCALED: Duration = Duration::from_secs(60);

/// How long a call may take, [`crate::scaled`] for slow hosts.
pub fn call_timeout() -> Duration {
    crate::scaled(CALL_TIMEOUT_UNSCALED)
}

/// How one call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error status.
    #[error("{call} of {id} failed")]
    Failed {
        /// The service and method, e.g. `Tasks.Create` or `RunPodSandbox`.
        call: &'static str,
        /// What the call concerned: a container, pod, image or snapshot.
        id: String,
        /// The server's answer.
        #[source]
        source: Status,
    },
    /// No answer came before the deadline.
    #[error("{call} of {id} got no answer within {timeout:?}")]
    Timeout {
        /// The service and method.
        call: &'static str,
        /// What the call concerned.
        id: String,
        /// The deadline.
        timeout: Duration,
    },
}

impl CallError {
    /// The gRPC status code, if the server answered with an error.
    pub fn code(&self) -> Option<Code> {
        match self {
            CallError::Failed { source, .. } => Some(source.code()),
            CallError::Timeout { .. } => None,
        }
    }
}

/// Awaits one call with [`call_timeout`], naming it and its subject in any error.
pub async fn call<T>(
    call: &'static str,
    id: &str,
    response: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(call_timeout(), response).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(source)) => Err(CallError::Failed { call, id: id.to_string(), source }),
        Err(_) => Err(CallError::Timeout { call, id: id.to_string(), timeout: call_timeout() }),
    }
}

/// `message` as a request carrying [`call_timeout`] as its deadline.
pub fn with_deadline<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(call_timeout());
    request
}
