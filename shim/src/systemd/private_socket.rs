//! A connection to systemd's private socket (`/run/systemd/private`) that zbus can read.
//!
//! On that socket systemd marks every message it sends with `SENDER=org.freedesktop.systemd1`
//! (`sd_bus_set_sender()` in PID 1). That is a well-known name, not a unique one, and zbus
//! refuses to parse a message whose sender is not a unique name. On a peer-to-peer connection
//! the sender means nothing, so the read half rewrites that one header field, in place, to the
//! unique name `:org.freedesktop.systemd`: same length, so no offset in the message moves.
//! Everything else passes through untouched. The SASL handshake (EXTERNAL, no fd passing) is
//! done here too, so zbus gets an authenticated byte stream.
//!
//! Why by hand: zbus types the SENDER field as a unique name (`message::Fields::sender` is a
//! `UniqueName`, which accepts `:a.b` or `org.freedesktop.DBus` only; zbus 6.2), and has no
//! option to relax that on a peer-to-peer connection. Upstream: "P2P connections are broken by
//! overzealous validation", <https://github.com/z-galaxy/zbus/issues/1497> (open; reported
//! against systemd's private socket). Once zbus accepts a well-known sender there, this module
//! shrinks to the handshake.
//!
//! `BEGIN` goes out in the same write as `AUTH`, before reading `OK`, as systemd's own clients
//! do. Sent after `OK`, it can reach PID 1 in one read together with our first message; sd-bus
//! (systemd 252) then leaves that message in its buffer with nothing to wake it, and the call
//! hangs until something else happens on the connection (seen here about one time in three).

use std::fmt::Debug;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};
use zbus::connection::AuthMechanism;

/// What systemd puts in the SENDER field on its private socket.
const SYSTEMD_SENDER: &[u8] = b"org.freedesktop.systemd1";
/// A valid unique name of the same length to put there instead.
const UNIQUE_SENDER: &[u8] = b":org.freedesktop.systemd";
const _: () = assert!(SYSTEMD_SENDER.len() == UNIQUE_SENDER.len());

/// D-Bus header field code of SENDER.
const FIELD_SENDER: u8 = 7;
/// Largest message D-Bus allows (128 MiB).
const MAX_MESSAGE_LEN: usize = 128 * 1024 * 1024;
/// Size of the fixed part of a message header.
const PRIMARY_HEADER_LEN: usize = 16;

/// Authenticates on `stream` (SASL EXTERNAL as our uid) and returns the socket to build a
/// zbus connection on, with the server's GUID.
pub async fn authenticate(stream: UnixStream) -> io::Result<(PrivateSocket, String)> {
    let (read, mut write) = stream.into_split();
    let uid = nix::unistd::geteuid().as_raw().to_string();
    let hex_uid: String = uid.bytes().map(|byte| format!("{byte:02x}")).collect();
    write.write_all(format!("\0AUTH EXTERNAL {hex_uid}\r\nBEGIN\r\n").as_bytes()).await?;

    // systemd answers with this one line and sends no message before we do, so the buffered
    // reader cannot swallow message bytes; it is dropped before the stream carries messages.
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let guid = line.strip_prefix("OK ").map(|rest| rest.trim_end().to_string()).ok_or_else(|| {
        io::Error::new(io::ErrorKind::PermissionDenied, format!("systemd refused authentication: {}", line.trim_end()))
    })?;
    if !reader.buffer().is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected data after systemd's OK"));
    }
    Ok((PrivateSocket { read: reader.into_inner(), write }, guid))
}

/// The authenticated private socket.
#[derive(Debug)]
pub struct PrivateSocket {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
}

impl Socket for PrivateSocket {
    type ReadHalf = SenderFixingReader;
    type WriteHalf = Writer;

    fn split(self) -> Split<SenderFixingReader, Writer> {
        Split::new(SenderFixingReader { inner: self.read, message: Vec::new(), handed_out: 0 }, Writer(self.write))
    }
}

/// Reads whole messages, fixes their sender, and hands their bytes to zbus.
#[derive(Debug)]
pub struct SenderFixingReader {
    inner: OwnedReadHalf,
    message: Vec<u8>,
    handed_out: usize,
}

impl SenderFixingReader {
    /// Reads the next message into `self.message`; `false` at a clean end of stream.
    async fn read_message(&mut self) -> io::Result<bool> {
        let mut primary = [0u8; PRIMARY_HEADER_LEN];
        let first = self.inner.read(&mut primary).await?;
        if first == 0 {
            return Ok(false);
        }
        self.inner.read_exact(&mut primary[first..]).await?;
        let total = message_length(&primary)?;
        self.message.clear();
        self.message.extend_from_slice(&primary);
        self.message.resize(total, 0);
        self.inner.read_exact(&mut self.message[PRIMARY_HEADER_LEN..]).await?;
        rewrite_systemd_sender(&mut self.message);
        self.handed_out = 0;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl ReadHalf for SenderFixingReader {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        if self.handed_out == self.message.len() && !self.read_message().await? {
            return Ok((0, Vec::new()));
        }
        let available = &self.message[self.handed_out..];
        let count = available.len().min(buffer.len());
        buffer[..count].copy_from_slice(&available[..count]);
        self.handed_out += count;
        Ok((count, Vec::new()))
    }

    fn auth_mechanism(&self) -> AuthMechanism {
        AuthMechanism::External
    }
}

/// Writes zbus's bytes as they are.
#[derive(Debug)]
pub struct Writer(OwnedWriteHalf);

#[async_trait::async_trait]
impl WriteHalf for Writer {
    async fn sendmsg(&mut self, buffer: &[u8], _fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        self.0.write(buffer).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

fn read_u32(bytes: &[u8], at: usize, little_endian: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(if little_endian { u32::from_le_bytes(raw) } else { u32::from_be_bytes(raw) })
}

fn align(position: usize, to: usize) -> usize {
    position.div_ceil(to) * to
}

/// The length of the whole message whose 16-byte primary header is `primary`.
fn message_length(primary: &[u8; PRIMARY_HEADER_LEN]) -> io::Result<usize> {
    let invalid = |what: &str| {
        io::Error::new(io::ErrorKind::InvalidData, format!("malformed D-Bus message from systemd: {what}"))
    };
    let little_endian = match primary[0] {
        b'l' => true,
        b'B' => false,
        _ => return Err(invalid("bad endianness byte")),
    };
    let body = read_u32(primary, 4, little_endian).ok_or_else(|| invalid("short header"))? as usize;
    let fields = read_u32(primary, 12, little_endian).ok_or_else(|| invalid("short header"))? as usize;
    let total = align(PRIMARY_HEADER_LEN + fields, 8) + body;
    if total > MAX_MESSAGE_LEN {
        return Err(invalid("message too long"));
    }
    Ok(total)
}

/// Rewrites a SENDER field of `org.freedesktop.systemd1` in `message`'s header to
/// `:org.freedesktop.systemd`. Fields are walked by their signatures; a header we cannot walk
/// is left alone (zbus will then report it).
fn rewrite_systemd_sender(message: &mut [u8]) {
    let little_endian = message.first() == Some(&b'l');
    let Some(fields_len) = read_u32(message, 12, little_endian) else {
        return;
    };
    let end = (PRIMARY_HEADER_LEN + fields_len as usize).min(message.len());
    let mut position = PRIMARY_HEADER_LEN;
    while align(position, 8) < end {
        position = align(position, 8);
        let code = message[position];
        let Some(&signature_len) = message.get(position + 1) else {
            return;
        };
        let signature_start = position + 2;
        let Some(signature) = message.get(signature_start..signature_start + signature_len as usize) else {
            return;
        };
        let signature = signature.to_vec();
        position = signature_start + signature_len as usize + 1; // and the signature's NUL
        match signature.as_slice() {
            b"s" | b"o" => {
                position = align(position, 4);
                let Some(len) = read_u32(message, position, little_endian) else {
                    return;
                };
                let start = position + 4;
                let stop = start + len as usize;
                if stop > end {
                    return;
                }
                if code == FIELD_SENDER && &message[start..stop] == SYSTEMD_SENDER {
                    message[start..stop].copy_from_slice(UNIQUE_SENDER);
                    return;
                }
                position = stop + 1;
            }
            b"g" => {
                let Some(&len) = message.get(position) else {
                    return;
                };
                position += 1 + len as usize + 1;
            }
            b"u" => position = align(position, 4) + 4,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian method return with REPLY_SERIAL, SENDER and SIGNATURE fields, laid out
    /// the way sd-bus lays them out, with body `s "x"`.
    fn systemd_reply(sender: &[u8]) -> Vec<u8> {
        let mut fields = Vec::new();
        let pad8 = |fields: &mut Vec<u8>| {
            while !(PRIMARY_HEADER_LEN + fields.len()).is_multiple_of(8) {
                fields.push(0)
            }
        };
        // REPLY_SERIAL (5), u
        fields.extend_from_slice(&[5, 1, b'u', 0]);
        fields.extend_from_slice(&7u32.to_le_bytes());
        pad8(&mut fields);
        // SENDER (7), s
        fields.extend_from_slice(&[FIELD_SENDER, 1, b's', 0]);
        fields.extend_from_slice(&(sender.len() as u32).to_le_bytes());
        fields.extend_from_slice(sender);
        fields.push(0);
        pad8(&mut fields);
        // SIGNATURE (8), g
        fields.extend_from_slice(&[8, 1, b'g', 0, 1, b's', 0]);
        let fields_len = fields.len() as u32;
        pad8(&mut fields);
        let body = [1u8, 0, 0, 0, b'x', 0];
        let mut message = vec![b'l', 2, 1, 1];
        message.extend_from_slice(&(body.len() as u32).to_le_bytes());
        message.extend_from_slice(&9u32.to_le_bytes());
        message.extend_from_slice(&fields_len.to_le_bytes());
        message.extend_from_slice(&fields);
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn systemd_sender_becomes_a_unique_name_of_the_same_length() {
        let mut message = systemd_reply(SYSTEMD_SENDER);
        let before = message.len();
        rewrite_systemd_sender(&mut message);
        assert_eq!(message.len(), before);
        let text = String::from_utf8_lossy(&message);
        assert!(text.contains(":org.freedesktop.systemd\0"), "{message:?}");
        assert!(!text.contains("org.freedesktop.systemd1"));
        assert!(text.ends_with("x\0"), "body untouched");
    }

    #[test]
    fn other_senders_are_left_alone() {
        let original = systemd_reply(b":1.42");
        let mut message = original.clone();
        rewrite_systemd_sender(&mut message);
        assert_eq!(message, original);
    }

    #[test]
    fn message_length_comes_from_the_primary_header() {
        let message = systemd_reply(SYSTEMD_SENDER);
        let primary: [u8; PRIMARY_HEADER_LEN] = message[..PRIMARY_HEADER_LEN].try_into().unwrap();
        assert_eq!(message_length(&primary).unwrap(), message.len());
    }

    #[test]
    fn garbage_headers_are_rejected_or_ignored() {
        let mut primary = [0u8; PRIMARY_HEADER_LEN];
        primary[0] = b'x';
        assert!(message_length(&primary).is_err());
        primary[0] = b'l';
        primary[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(message_length(&primary).is_err(), "oversized");
        let mut truncated = systemd_reply(SYSTEMD_SENDER);
        truncated.truncate(30);
        rewrite_systemd_sender(&mut truncated); // must not panic
    }
}
