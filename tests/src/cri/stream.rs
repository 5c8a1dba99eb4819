//! The client end of CRI's streaming `Exec`: the URL the plugin's `Exec` returns is served by
//! the kubelet streaming library in containerd, which speaks the WebSocket form of Kubernetes'
//! remote-command protocol (`v4.channel.k8s.io`): every binary message starts with its channel
//! (1 stdout, 2 stderr, 3 the final status as a JSON `metav1.Status`). The test only reads
//! (no stdin), so the client never sends a frame after the handshake: a minimal WebSocket
//! reader (RFC 6455, server frames are unmasked) is all it needs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The subprotocol asked for: channels, with the exit status on channel 3.
const PROTOCOL: &str = "v4.channel.k8s.io";
/// Any 16 bytes, base64-encoded: the handshake's key (the server's answer is not checked).
const KEY: &str = "c2hpbS10ZXN0LWtleS0xMg==";

/// What a streamed exec produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedExec {
    /// Channel 1 (with a terminal: everything the process wrote).
    pub stdout: String,
    /// Channel 2 (empty with a terminal).
    pub stderr: String,
    /// The exit code the final status reports (0 for `Success`).
    pub exit_code: i32,
}

/// What went wrong talking to the streaming server.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The URL is not `http://host:port/path`.
    #[error("unexpected streaming URL {0:?}")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("streaming {url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server broke the protocol.
    #[error("streaming {url}: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// Runs the exec behind `url` (from CRI's `Exec`) to its end; `timeout` bounds each read.
pub fn run_exec(url: &str, timeout: Duration) -> Result<StreamedExec, StreamError> {
    let (authority, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| StreamError::Url(url.to_string()))?;
    let io = |source| StreamError::Io { url: url.to_string(), source };
    let protocol = |reason: String| StreamError::Protocol { url: url.to_string(), reason };
    let mut stream = TcpStream::connect(authority).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let handshake = format!(
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).map_err(io)?;
    if !status_line.starts_with("HTTP/1.1 101") {
        return Err(protocol(format!("no protocol switch: {status_line:?}")));
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_err(io)? == 0 {
            return Err(protocol("the connection closed during the handshake".into()));
        }
        if header == "\r\n" {
            break;
        }
    }

    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
    while let Some((opcode, payload)) = read_frame(&mut reader).map_err(io)? {
        match opcode {
            // binary (or text) message: channel byte, then data
            0x1 | 0x2 => match payload.split_first() {
                Some((1, data)) => stdout.extend_from_slice(data),
                Some((2, data)) => stderr.extend_from_slice(data),
                Some((3, data)) if !data.is_empty() => status = Some(data.to_vec()),
                // the server opens each channel with an empty message
                _ => {}
            },
            0x8 => break,
            // ping, pong: nothing to answer for a reader the server closes itself
            _ => {}
        }
    }
    let status = status.ok_or_else(|| protocol("no status on channel 3".into()))?;
    Ok(StreamedExec {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit_code: exit_code(&status).map_err(protocol)?,
    })
}

/// One frame: its opcode and payload (continuations are not used by the server for such small
/// messages, and would only be appended), or `None` at the end of the stream.
fn read_frame(reader: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0_u8; 2];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let opcode = head[0] & 0x0f;
    let length = match head[1] & 0x7f {
        126 => {
            let mut extended = [0_u8; 2];
            reader.read_exact(&mut extended)?;
            u64::from(u16::from_be_bytes(extended))
        }
        127 => {
            let mut extended = [0_u8; 8];
            reader.read_exact(&mut extended)?;
            u64::from_be_bytes(extended)
        }
        short => u64::from(short),
    };
    let mut mask = None;
    if head[1] & 0x80 != 0 {
        let mut key = [0_u8; 4];
        reader.read_exact(&mut key)?;
        mask = Some(key);
    }
    let mut payload = vec![0_u8; usize::try_from(length).map_err(std::io::Error::other)?];
    reader.read_exact(&mut payload)?;
    if let Some(key) = mask {
        payload.iter_mut().enumerate().for_each(|(index, byte)| *byte ^= key[index % 4]);
    }
    Ok(Some((opcode, payload)))
}

/// The exit code a `metav1.Status` reports: 0 for `Success`, else the `ExitCode` cause.
fn exit_code(status: &[u8]) -> Result<i32, String> {
    let json: serde_json::Value =
        serde_json::from_slice(status).map_err(|error| format!("status is not JSON ({error}): {status:?}"))?;
    if json["status"] == "Success" {
        return Ok(0);
    }
    json["details"]["causes"]
        .as_array()
        .and_then(|causes| causes.iter().find(|cause| cause["reason"] == "ExitCode"))
        .and_then(|cause| cause["message"].as_str())
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no exit code in status {json}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_every_length_form_are_read() {
        let mut bytes = vec![0x82, 3, 1, b'h', b'i'];
        bytes.extend([0x82, 126, 0, 200]);
        bytes.extend(std::iter::once(2).chain(std::iter::repeat_n(b'x', 199)));
        bytes.extend([0x88, 0]);
        let mut reader = &bytes[..];
        assert_eq!(read_frame(&mut reader).unwrap(), Some((2, vec![1, b'h', b'i'])));
        let (opcode, long) = read_frame(&mut reader).unwrap().expect("second frame");
        assert_eq!((opcode, long.len(), long[0]), (2, 200, 2));
        assert_eq!(read_frame(&mut reader).unwrap(), Some((8, vec![])));
        assert_eq!(read_frame(&mut reader).unwrap(), None);
    }

    #[test]
    fn the_status_gives_the_exit_code() {
        assert_eq!(exit_code(br#"{"metadata":{},"status":"Success"}"#), Ok(0));
        let failure = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode",
            "details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code(failure), Ok(3));
        assert!(exit_code(br#"{"status":"Failure"}"#).is_err());
    }
}
