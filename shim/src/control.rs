//! The daemon's control protocol, spoken between `start` and the daemon on the daemon's control
//! socket. containerd's task API names a task by id only, and containerd 1.6 sends no namespace
//! with its calls, so the daemon serves one ttrpc socket per containerd namespace: the socket a
//! call arrives on says which namespace it is for. `start` knows the namespace (`-namespace`)
//! and asks the daemon to serve it before handing the address to containerd.
//!
//! Framing: one JSON request line, one JSON response line, then the connection closes.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::Error;

/// Longest request or response line accepted.
pub const MAX_LINE: u64 = 64 * 1024;

/// How long the daemon gives one control connection to send its request and take the answer.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `start` waits for the daemon's answer: a socket-activated daemon may still be
/// starting, which its unit allows 30 s (`TimeoutStartSec=`), as `start` allows the start job of
/// a daemon it launches itself.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(40);

/// What `start` asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlRequest {
    /// Serve the task API for `namespace` (idempotent) and say where.
    ServeNamespace {
        /// The containerd namespace.
        namespace: String,
    },
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlResponse {
    /// The namespace is served at `address` (`unix://…`).
    Serving {
        /// The ttrpc address for containerd.
        address: String,
    },
    /// The request was refused, and why.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Sends `request` to the daemon's control socket at `socket` and returns its answer.
pub async fn ask(socket: &Path, request: &ControlRequest) -> Result<ControlResponse, Error> {
    let exchange = async {
        let context = || format!("talking to the shim daemon at {}", socket.display());
        let stream = UnixStream::connect(socket).await.map_err(|error| Error::io(context(), error))?;
        let (read, mut write) = stream.into_split();
        let mut line =
            serde_json::to_vec(request).map_err(|error| Error::io(context(), std::io::Error::other(error)))?;
        line.push(b'\n');
        write.write_all(&line).await.map_err(|error| Error::io(context(), error))?;
        let answer = read_line(read).await.map_err(|error| Error::io(context(), error))?;
        serde_json::from_str(&answer).map_err(|error| Error::io(context(), std::io::Error::other(error)))
    };
    tokio::time::timeout(ASK_TIMEOUT, exchange).await.map_err(|_| {
        Error::io(format!("talking to the shim daemon at {}", socket.display()), std::io::ErrorKind::TimedOut.into())
    })?
}

/// Reads one newline-terminated line of at most [`MAX_LINE`] bytes.
pub async fn read_line(read: impl tokio::io::AsyncRead + Unpin) -> std::io::Result<String> {
    let mut reader = BufReader::new(read.take(MAX_LINE));
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if !line.ends_with('\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "control line too long or cut short"));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_json_form() {
        let request = ControlRequest::ServeNamespace { namespace: "k8s.io".into() };
        assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"serve_namespace":{"namespace":"k8s.io"}}"#);
        let response: ControlResponse = serde_json::from_str(r#"{"serving":{"address":"unix:///x"}}"#).unwrap();
        assert_eq!(response, ControlResponse::Serving { address: "unix:///x".into() });
    }

    #[tokio::test]
    async fn overlong_lines_are_refused() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&vec![b'x'; MAX_LINE as usize + 10]).await;
        });
        assert!(read_line(server).await.is_err());
        writer.await.unwrap();
    }
}
