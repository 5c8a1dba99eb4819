//! Stdio through pipes, for containers that must be checkpointable (option `Checkpointable`)
//! and for every restored one. CRIU can dump and restore a process's pipes (runc records them
//! and maps them to new pipes on restore), but not a fifo opened outside the container's mount
//! namespace, which is what the direct fifo mode hands the container.
//!
//! The helper forks a copier into the unit that holds containerd's fifos and the far ends of
//! three pipes, and copies: stdin fifo → container, container stdout/stderr → fifos. It needs no
//! daemon. It ignores SIGTERM (systemd sends it to the unit's remaining processes once the
//! container is gone) and ends when both output pipes reach end-of-file, that is when no process
//! of the container is left to write, so the last output is never cut.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::unistd::{fork, pipe, ForkResult};

use crate::helper::privileges::drop_all_privileges;
use crate::helper::stdio::OpenedStdio;
use crate::Error;

/// The container's ends of the three pipes, to become its fds 0, 1 and 2.
pub struct ContainerPipes {
    /// Read end of the stdin pipe.
    pub stdin: OwnedFd,
    /// Write end of the stdout pipe.
    pub stdout: OwnedFd,
    /// Write end of the stderr pipe.
    pub stderr: OwnedFd,
}

impl From<ContainerPipes> for OpenedStdio {
    fn from(pipes: ContainerPipes) -> OpenedStdio {
        OpenedStdio { stdin: pipes.stdin, stdout: pipes.stdout, stderr: pipes.stderr }
    }
}

/// Makes the pipes and forks the copier, which takes `outside` (containerd's side, as opened by
/// the stdio module). Call with no other thread running (it forks).
pub fn start_pipe_copier(outside: OpenedStdio) -> Result<ContainerPipes, Error> {
    let pipe_error = |source| Error::Supervise { action: "creating stdio pipes", source };
    let (stdin_read, stdin_write) = pipe().map_err(pipe_error)?;
    let (stdout_read, stdout_write) = pipe().map_err(pipe_error)?;
    let (stderr_read, stderr_write) = pipe().map_err(pipe_error)?;
    // SAFETY: the helper is single-threaded at this point; the child only copies and exits.
    match unsafe { fork() }.map_err(|source| Error::Supervise { action: "forking the stdio copier", source })? {
        ForkResult::Child => {
            drop((stdin_read, stdout_write, stderr_write));
            let OpenedStdio { stdin, stdout, stderr } = outside;
            copy_until_closed(stdin, stdin_write, [(stdout_read, stdout), (stderr_read, stderr)]);
            std::process::exit(0);
        }
        ForkResult::Parent { .. } => {
            drop((stdin_write, stdout_read, stderr_read, outside));
            Ok(ContainerPipes { stdin: stdin_read, stdout: stdout_write, stderr: stderr_write })
        }
    }
}

/// The copier's body. Its descriptors came open from the helper: it drops every privilege
/// first (see [`crate::helper::privileges`]), and copies nothing if it cannot. Input runs on a
/// thread of its own, so a container that does not read its stdin never stalls its output.
fn copy_until_closed(input_from: OwnedFd, input_to: OwnedFd, outputs: [(OwnedFd, OwnedFd); 2]) {
    // Before the input thread exists: capabilities are per thread.
    if let Err(error) = drop_all_privileges() {
        tracing::error!("stdio copier: {error}");
        return;
    }
    // SAFETY: setting dispositions before any thread exists; SIG_IGN needs no handler code.
    unsafe {
        let _ = signal(Signal::SIGTERM, SigHandler::SigIgn);
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
    std::thread::spawn(move || {
        // End of input closes the container's stdin: what CloseIO means.
        let _ = std::io::copy(&mut File::from(input_from), &mut File::from(input_to));
    });
    copy_outputs(outputs);
}

/// Copies each pipe to its destination until every pipe has reached end-of-file. A destination
/// whose reader went away gets nothing more, but its pipe is still drained.
fn copy_outputs(outputs: [(OwnedFd, OwnedFd); 2]) {
    let mut streams: Vec<(File, Option<File>)> =
        outputs.into_iter().map(|(from, to)| (File::from(from), Some(File::from(to)))).collect();
    let mut buffer = vec![0u8; 64 * 1024];
    while !streams.is_empty() {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> =
                streams.iter().map(|(from, _)| PollFd::new(from.as_fd(), PollFlags::POLLIN)).collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds.iter().map(|fd| fd.revents().is_some_and(|events| !events.is_empty())).collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        };
        let mut index = 0;
        streams.retain_mut(|(from, to)| {
            let is_ready = ready[index];
            index += 1;
            if !is_ready {
                return true;
            }
            match from.read(&mut buffer) {
                Ok(0) => false,
                Ok(count) => {
                    if let Some(destination) = to {
                        if destination.write_all(&buffer[..count]).is_err() {
                            *to = None;
                        }
                    }
                    true
                }
                Err(error) => error.kind() == std::io::ErrorKind::Interrupted,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stdio_copier_copies_without_privileges() {
        use crate::helper::privileges::tests::{privileges_after_in_child, DROPPED};
        let after = privileges_after_in_child(|| {
            // Every writer is gone at once: the copier ends as soon as it has started.
            let (input_from, input_writer) = pipe().expect("pipe");
            let (input_reader, input_to) = pipe().expect("pipe");
            let (out_read, out_write) = pipe().expect("pipe");
            let (err_read, err_write) = pipe().expect("pipe");
            let (out_dest_read, out_dest_write) = pipe().expect("pipe");
            let (err_dest_read, err_dest_write) = pipe().expect("pipe");
            drop((input_writer, out_write, err_write));
            copy_until_closed(input_from, input_to, [(out_read, out_dest_write), (err_read, err_dest_write)]);
            drop((input_reader, out_dest_read, err_dest_read));
        });
        assert_eq!(after, DROPPED);
    }

    #[test]
    fn outputs_are_copied_whole_until_every_writer_is_gone() {
        let (out_read, out_write) = pipe().unwrap();
        let (err_read, err_write) = pipe().unwrap();
        let (out_dest_read, out_dest_write) = pipe().unwrap();
        let (err_dest_read, err_dest_write) = pipe().unwrap();
        let copier = std::thread::spawn(move || copy_outputs([(out_read, out_dest_write), (err_read, err_dest_write)]));
        let big = vec![b'x'; 300_000];
        let writer_big = big.clone();
        let writer = std::thread::spawn(move || {
            File::from(out_write).write_all(&writer_big).unwrap();
            File::from(err_write).write_all(b"err").unwrap();
        });
        let mut out = Vec::new();
        File::from(out_dest_read).read_to_end(&mut out).unwrap();
        let mut err = String::new();
        File::from(err_dest_read).read_to_string(&mut err).unwrap();
        writer.join().unwrap();
        copier.join().unwrap();
        assert_eq!(out, big);
        assert_eq!(err, "err");
    }

    #[test]
    fn a_gone_reader_does_not_stop_the_other_stream_or_block_the_writer() {
        let (out_read, out_write) = pipe().unwrap();
        let (err_read, err_write) = pipe().unwrap();
        let (out_dest_read, out_dest_write) = pipe().unwrap();
        let (err_dest_read, err_dest_write) = pipe().unwrap();
        drop(out_dest_read);
        // SAFETY: test process; ignoring SIGPIPE so the write fails with EPIPE instead.
        unsafe {
            let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
        }
        let copier = std::thread::spawn(move || copy_outputs([(out_read, out_dest_write), (err_read, err_dest_write)]));
        File::from(out_write).write_all(&vec![b'x'; 300_000]).unwrap();
        File::from(err_write).write_all(b"still here").unwrap();
        let mut err = String::new();
        File::from(err_dest_read).read_to_string(&mut err).unwrap();
        copier.join().unwrap();
        assert_eq!(err, "still here");
    }
}
