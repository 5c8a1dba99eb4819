//! The console copier: shuttles bytes between a tty container's pty master and containerd's fifos until the
//! container's terminal closes or the unit is being stopped.
//!
//! It runs as its own process inside the container's unit (forked by the helper before it execs runc), so restarting
//! the shim daemon does not cut the terminal. When the container's main process exits, systemd stops the unit and
//! sends `KillSignal=` (SIGTERM) to the processes left in its cgroup, the copier among them, and SIGKILL after
//! `TimeoutStopSec=` (systemd.kill(5)). The copier answers SIGTERM by draining what the master still holds for a
//! bounded time, so output written just before exit is not lost.
//!
//! One thread, one `poll` loop, every descriptor non-blocking: a container that does not read its terminal input
//! must never stop its output from flowing, and a slow stdout reader must never make a drain overrun its bound.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{read, write};

use crate::wait::poll_until;
use crate::{Error, Stream};

/// How much is read from one side before it is written to the other. A pty moves at most a few KiB per read and a
/// fifo holds 64 KiB, so 32 KiB keeps syscalls few without holding much back.
const BUFFER_SIZE: usize = 32 * 1024;

/// Events that mean "a read or write will not block now": data or room, or an end (hang-up, error) that the read
/// or write will report.
const READABLE: PollFlags = PollFlags::POLLIN.union(PollFlags::POLLHUP).union(PollFlags::POLLERR);
const WRITABLE: PollFlags = PollFlags::POLLOUT.union(PollFlags::POLLHUP).union(PollFlags::POLLERR);

/// Why the copy loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyEnd {
    /// Every holder of the terminal's slave side closed it: the container's processes are gone. All output read
    /// from the master was passed on to stdout (or discarded, if stdout's reader had gone away).
    TerminalClosed,
    /// SIGTERM or SIGINT arrived (systemd is stopping the unit); the master was drained, within
    /// [`CopyOptions::drain_timeout`], before returning.
    Signalled {
        /// The signal that ended the copy.
        signal: Signal,
    },
}

/// Bounds of the drain that follows SIGTERM or SIGINT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// The longest the drain may take. It must stay well below the unit's `TimeoutStopSec=`, after which systemd
    /// sends SIGKILL.
    pub drain_timeout: Duration,
    /// How long the master must stay empty for the drain to count as complete. Output written just before a
    /// process exits may still be crossing the pty (the kernel moves it to the master side from a work queue), so
    /// an empty master is only trusted once it has stayed empty this long.
    pub drain_quiet: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions { drain_timeout: Duration::from_secs(2), drain_quiet: Duration::from_millis(100) }
    }
}

/// The signals that end the copy: SIGTERM from systemd stopping the unit, SIGINT from someone running the copier
/// by hand.
fn copy_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Blocks SIGTERM and SIGINT in the calling thread (they are read from a signalfd instead) and ignores SIGPIPE in
/// the whole process (a stdout whose reader went away then fails with EPIPE instead of killing us).
///
/// [`run_console_copy`] calls this itself. Call it earlier, right after `fork`, to also cover the time spent
/// receiving the master: a SIGTERM that arrives before the block runs its default action and kills the copier.
/// Blocking before `fork` is not an option for the parent, as the mask would be inherited by runc across `exec`.
/// The signals stay blocked after the copy returns, so the caller decides when to exit.
pub fn block_copy_signals() -> Result<(), Error> {
    copy_signals().thread_block().map_err(|source| Error::BlockSignals { source })?;
    // SAFETY: SIG_IGN installs no handler code, so nothing can run in signal context.
    unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }.map_err(|source| Error::IgnoreSigpipe { source })?;
    Ok(())
}

/// Copies `stdin` → `master` and `master` → `stdout` until the terminal closes or SIGTERM/SIGINT arrives, with the
/// default [`CopyOptions`].
///
/// See [`run_console_copy_with`].
pub fn run_console_copy(master: OwnedFd, stdin: Option<OwnedFd>, stdout: Option<OwnedFd>) -> Result<CopyEnd, Error> {
    run_console_copy_with(master, stdin, stdout, CopyOptions::default())
}

/// Copies `stdin` → `master` and `master` → `stdout` until the terminal closes or SIGTERM/SIGINT arrives.
///
/// **Call it in a process with a single thread**, normally the child of a `fork` made while the parent was still
/// single-threaded. The signals are blocked only in the calling thread (see [`block_copy_signals`]); in a process
/// with other threads the kernel may deliver a process-directed SIGTERM to one of those, whose default action kills
/// the process, instead of leaving it for our signalfd.
///
/// - stdin's EOF only stops reading stdin: nothing is sent to the terminal, which stays open (containerd closes
///   stdin when the client detaches or has sent everything, and the container must keep running).
/// - When stdout's reader goes away (EPIPE), output from the master is read and discarded from then on, so the
///   container never blocks on a full terminal.
/// - When every holder of the slave has closed it (the master reads EIO), the copy ends with
///   [`CopyEnd::TerminalClosed`] once all output is passed on.
/// - On SIGTERM or SIGINT, input is dropped and the master is drained into stdout, bounded by `options`.
///
/// All three descriptors are made non-blocking; that flag belongs to the open file, so other holders of the same
/// open file see it too. Every descriptor is closed on return.
pub fn run_console_copy_with(
    master: OwnedFd,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    options: CopyOptions,
) -> Result<CopyEnd, Error> {
    block_copy_signals()?;
    let signals = SignalFd::with_flags(&copy_signals(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|source| Error::SignalFd { source })?;
    set_nonblocking(master.as_fd(), Stream::Master)?;
    if let Some(stdin) = &stdin {
        set_nonblocking(stdin.as_fd(), Stream::Stdin)?;
    }
    if let Some(stdout) = &stdout {
        set_nonblocking(stdout.as_fd(), Stream::Stdout)?;
    }

    let mut copier = Copier { master, stdin, stdout, to_master: Buffer::new(), to_stdout: Buffer::new() };
    match copier.copy(&signals)? {
        None => {
            tracing::debug!("the container's terminal closed");
            Ok(CopyEnd::TerminalClosed)
        }
        Some(signal) => {
            tracing::debug!(%signal, "draining the terminal before exiting");
            copier.drain(options)?;
            Ok(CopyEnd::Signalled { signal })
        }
    }
}

/// Sets O_NONBLOCK on `fd`, keeping its other status flags.
fn set_nonblocking(fd: BorrowedFd<'_>, stream: Stream) -> Result<(), Error> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|source| Error::SetNonBlocking { stream, source })?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|source| Error::SetNonBlocking { stream, source })?;
    Ok(())
}

/// Bytes read from one side that the other side has not taken yet.
struct Buffer {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn new() -> Self {
        Buffer { data: vec![0; BUFFER_SIZE].into_boxed_slice(), start: 0, end: 0 }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Marks `written` pending bytes as taken by the other side.
    fn consume(&mut self, written: usize) {
        self.start = (self.start + written).min(self.end);
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Reads once from `fd` into the buffer, which must be empty (we only read a side when the other has taken
    /// everything, which is how back-pressure reaches the writer).
    fn fill_from(&mut self, fd: BorrowedFd<'_>) -> Result<usize, Errno> {
        debug_assert!(self.is_empty(), "reading into a buffer that still holds data");
        let read = read(fd, &mut self.data)?;
        self.start = 0;
        self.end = read;
        Ok(read)
    }
}

/// What one read of the master found.
#[derive(Debug, PartialEq, Eq)]
enum MasterRead {
    /// Output was read and passed on (or is waiting for room in stdout).
    Output,
    /// Nothing is buffered right now.
    Empty,
    /// Every holder of the slave closed it and all buffered output has been read.
    Closed,
}

/// The copy loop's state; `None` in `stdin`/`stdout` means that side is gone (or never was).
struct Copier {
    master: OwnedFd,
    stdin: Option<OwnedFd>,
    /// `None` also once its reader went away: output is then discarded.
    stdout: Option<OwnedFd>,
    /// Read from stdin, not yet written to the master.
    to_master: Buffer,
    /// Read from the master, not yet written to stdout.
    to_stdout: Buffer,
}

impl Copier {
    /// Copies both ways until the terminal closes (`None`) or a signal from `signals` arrives.
    fn copy(&mut self, signals: &SignalFd) -> Result<Option<Signal>, Error> {
        loop {
            let ready = self.wait(signals)?;
            if ready.signal.intersects(READABLE) {
                if let Some(signal) = read_signal(signals)? {
                    return Ok(Some(signal));
                }
            }
            // Each step re-checks the buffers, as the one before may have changed them.
            if ready.stdout.intersects(WRITABLE) {
                self.flush_stdout()?;
            }
            if ready.master.intersects(WRITABLE) && !self.to_master.is_empty() {
                self.flush_master()?;
            }
            if ready.master.intersects(READABLE)
                && self.to_stdout.is_empty()
                && self.read_master()? == MasterRead::Closed
            {
                return Ok(None);
            }
            if ready.stdin.intersects(READABLE) && self.to_master.is_empty() {
                self.read_stdin()?;
            }
        }
    }

    /// Polls the signalfd and whichever streams can make progress, and returns what each reported.
    ///
    /// A side with a full buffer is not read until the other side takes it; a stream with nothing to do is left
    /// out of the poll entirely, because a hung-up descriptor reports POLLHUP whatever was asked and would spin us.
    fn wait(&self, signals: &SignalFd) -> Result<Ready, Error> {
        let mut master_events = PollFlags::empty();
        if self.to_stdout.is_empty() {
            master_events |= PollFlags::POLLIN;
        }
        if !self.to_master.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let master = (!master_events.is_empty()).then(|| push(&mut fds, self.master.as_fd(), master_events));
        let stdin = match &self.stdin {
            Some(stdin) if self.to_master.is_empty() => Some(push(&mut fds, stdin.as_fd(), PollFlags::POLLIN)),
            _ => None,
        };
        let stdout = match &self.stdout {
            Some(stdout) if !self.to_stdout.is_empty() => Some(push(&mut fds, stdout.as_fd(), PollFlags::POLLOUT)),
            _ => None,
        };
        poll_until(&mut fds, None).map_err(|source| Error::Poll { source })?;
        Ok(Ready {
            signal: revents(&fds, Some(0)),
            master: revents(&fds, master),
            stdin: revents(&fds, stdin),
            stdout: revents(&fds, stdout),
        })
    }

    /// After a signal: drops input and passes on what the master still holds, until it has been quiet for
    /// `drain_quiet`, the terminal closes, or `drain_timeout` runs out.
    fn drain(&mut self, options: CopyOptions) -> Result<(), Error> {
        // The container is being stopped: what it was about to be sent no longer matters.
        self.stdin = None;
        self.to_master.clear();
        let deadline = Instant::now() + options.drain_timeout;
        let mut last_output = Instant::now();
        loop {
            self.flush_stdout()?;
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(timeout = ?options.drain_timeout, "gave up draining the terminal; later output is lost");
                return Ok(());
            }
            if let Some(stdout) = self.stdout.as_ref().filter(|_| !self.to_stdout.is_empty()) {
                wait_for(stdout.as_fd(), PollFlags::POLLOUT, deadline)?;
                continue;
            }
            match self.read_master()? {
                MasterRead::Closed => return Ok(()),
                MasterRead::Output => last_output = Instant::now(),
                MasterRead::Empty => {
                    let quiet_until = last_output + options.drain_quiet;
                    if now >= quiet_until {
                        return Ok(());
                    }
                    wait_for(self.master.as_fd(), PollFlags::POLLIN, quiet_until.min(deadline))?;
                }
            }
        }
    }

    /// Reads the master into the (empty) stdout buffer and passes it on.
    fn read_master(&mut self) -> Result<MasterRead, Error> {
        loop {
            match self.to_stdout.fill_from(self.master.as_fd()) {
                // Once the last holder of the slave closes it, Linux hands out what was still buffered and then
                // fails reads with EIO; 0 is the same end on systems that report it as EOF.
                Ok(0) | Err(Errno::EIO) => return Ok(MasterRead::Closed),
                Ok(_) => {
                    self.flush_stdout()?;
                    return Ok(MasterRead::Output);
                }
                Err(Errno::EAGAIN) => return Ok(MasterRead::Empty),
                Err(Errno::EINTR) => continue,
                Err(source) => return Err(Error::Read { stream: Stream::Master, source }),
            }
        }
    }

    /// Writes as much pending output to stdout as it takes now; discards it once stdout's reader is gone.
    fn flush_stdout(&mut self) -> Result<(), Error> {
        while !self.to_stdout.is_empty() {
            let Some(stdout) = &self.stdout else {
                self.to_stdout.clear();
                break;
            };
            match write(stdout, self.to_stdout.pending()) {
                // A pipe with room takes at least one byte; 0 would only mean "no room", like EAGAIN.
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(written) => self.to_stdout.consume(written),
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE) => {
                    // containerd closed the fifo (it went away, or nobody is attached). Keep reading the master so
                    // the container never blocks writing to its terminal.
                    tracing::info!("stdout's reader went away; discarding terminal output from now on");
                    self.stdout = None;
                }
                Err(source) => return Err(Error::Write { stream: Stream::Stdout, source }),
            }
        }
        Ok(())
    }

    /// Reads stdin into the (empty) input buffer and writes it to the master.
    fn read_stdin(&mut self) -> Result<(), Error> {
        loop {
            let Some(stdin) = &self.stdin else { return Ok(()) };
            match self.to_master.fill_from(stdin.as_fd()) {
                Ok(0) => {
                    // No EOF character is sent to the terminal: closing stdin must not end the container's shell.
                    tracing::debug!("stdin reached EOF; the terminal stays open");
                    self.stdin = None;
                    return Ok(());
                }
                Ok(_) => return self.flush_master(),
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(source) => return Err(Error::Read { stream: Stream::Stdin, source }),
            }
        }
    }

    /// Writes as much pending input to the master as the terminal takes now.
    fn flush_master(&mut self) -> Result<(), Error> {
        while !self.to_master.is_empty() {
            match write(&self.master, self.to_master.pending()) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(written) => self.to_master.consume(written),
                Err(Errno::EINTR) => continue,
                Err(Errno::EIO) => {
                    // The slave side is gone; the next read of the master reports the end.
                    tracing::debug!("dropping input for a terminal that has closed");
                    self.to_master.clear();
                }
                Err(source) => return Err(Error::Write { stream: Stream::Master, source }),
            }
        }
        Ok(())
    }
}

/// What `poll` reported for each participant (empty for one that was not polled).
struct Ready {
    signal: PollFlags,
    master: PollFlags,
    stdin: PollFlags,
    stdout: PollFlags,
}

/// Adds `fd` to the poll set and returns its index.
fn push<'fd>(fds: &mut Vec<PollFd<'fd>>, fd: BorrowedFd<'fd>, events: PollFlags) -> usize {
    fds.push(PollFd::new(fd, events));
    fds.len() - 1
}

/// The events `poll` reported at `index`; none for a participant that was not polled.
fn revents(fds: &[PollFd<'_>], index: Option<usize>) -> PollFlags {
    index.and_then(|index| fds.get(index)).and_then(PollFd::revents).unwrap_or(PollFlags::empty())
}

/// Waits until `fd` reports `events` (or an end) or `deadline` passes.
fn wait_for(fd: BorrowedFd<'_>, events: PollFlags, deadline: Instant) -> Result<(), Error> {
    let mut fds = [PollFd::new(fd, events)];
    poll_until(&mut fds, Some(deadline)).map_err(|source| Error::Poll { source })?;
    Ok(())
}

/// Takes one signal from the signalfd, if one is pending.
fn read_signal(signals: &SignalFd) -> Result<Option<Signal>, Error> {
    match signals.read_signal() {
        Ok(Some(info)) => Ok(i32::try_from(info.ssi_signo).ok().and_then(|signo| Signal::try_from(signo).ok())),
        Ok(None) | Err(Errno::EINTR) => Ok(None),
        Err(source) => Err(Error::SignalFd { source }),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::thread::JoinHandleExt;
    use std::thread::{self, JoinHandle};

    use nix::unistd::pipe2;

    use super::*;
    use crate::test_support::{open_pty, read_to_eof_within, read_within};

    /// Generous bound for anything that should happen promptly; only reached when the code under test is broken.
    const PROMPTLY: Duration = Duration::from_secs(10);

    /// A copy loop running in a thread of its own, with the test holding the other ends of everything.
    struct Running {
        copy: JoinHandle<Result<CopyEnd, Error>>,
        /// The container's side of the terminal.
        slave: Option<File>,
        /// containerd's end of the stdin fifo.
        stdin: Option<File>,
        /// containerd's end of the stdout fifo.
        stdout: Option<OwnedFd>,
        /// A second descriptor for the copier's stdout write end, for tests that fill the pipe.
        stdout_writer: Option<OwnedFd>,
    }

    /// Which streams the copier gets.
    struct Streams {
        stdin: bool,
        stdout: bool,
    }

    fn start(streams: Streams, options: CopyOptions) -> Running {
        let pty = open_pty();
        let (stdin_reader, stdin_writer) = pipe2(OFlag::O_CLOEXEC).expect("stdin pipe");
        let (stdout_reader, stdout_writer) = pipe2(OFlag::O_CLOEXEC).expect("stdout pipe");
        let spare_writer = stdout_writer.try_clone().expect("clone stdout writer");
        let copier_stdin = streams.stdin.then_some(stdin_reader);
        let copier_stdout = streams.stdout.then_some(stdout_writer);
        let master = pty.master;
        // The loop blocks SIGTERM and SIGINT in its own thread only, which is all a thread-directed signal needs.
        let copy = thread::spawn(move || run_console_copy_with(master, copier_stdin, copier_stdout, options));
        Running {
            copy,
            slave: Some(File::from(pty.slave)),
            stdin: Some(File::from(stdin_writer)),
            stdout: Some(stdout_reader),
            stdout_writer: Some(spare_writer),
        }
    }

    impl Running {
        fn slave(&mut self) -> &mut File {
            self.slave.as_mut().expect("slave still open")
        }

        fn stdout(&self) -> BorrowedFd<'_> {
            self.stdout.as_ref().expect("stdout reader still open").as_fd()
        }

        /// Proves the loop is copying, and so has blocked its signals, by sending a line through it.
        fn round_trip(&mut self, text: &[u8]) {
            self.slave().write_all(text).expect("write to slave");
            assert_eq!(read_within(self.stdout(), text.len(), PROMPTLY), text);
        }

        /// Sends `signal` to the copier's thread only; other test threads never see it.
        fn signal(&self, signal: Signal) {
            // SAFETY: the thread is still running (the test holds the slave open, so the loop cannot have ended),
            // so its pthread_t is valid.
            let ret = unsafe { libc::pthread_kill(self.copy.as_pthread_t(), signal as libc::c_int) };
            assert_eq!(ret, 0, "pthread_kill failed");
        }

        /// Waits for the loop to end, failing the test if it does not within `timeout`.
        fn finish_within(self, timeout: Duration) -> (Result<CopyEnd, Error>, Option<OwnedFd>) {
            let deadline = Instant::now() + timeout;
            while !self.copy.is_finished() {
                assert!(Instant::now() < deadline, "the copy loop did not end within {timeout:?}");
                thread::sleep(Duration::from_millis(5));
            }
            let end = self.copy.join().expect("copy thread panicked");
            (end, self.stdout)
        }
    }

    /// Bytes that show reordering, loss or duplication, unlike a repeated letter.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn output_reaches_stdout_and_stdin_reaches_the_terminal() {
        let mut running = start(Streams { stdin: true, stdout: true }, CopyOptions::default());
        running.round_trip(b"hello");

        running.stdin.as_mut().expect("stdin").write_all(b"typed input").expect("write stdin");
        let slave = running.slave.as_ref().expect("slave");
        assert_eq!(read_within(slave.as_fd(), 11, PROMPTLY), b"typed input");

        running.slave = None;
        let (end, _) = running.finish_within(PROMPTLY);
        assert_eq!(end.expect("copy"), CopyEnd::TerminalClosed);
    }

    #[test]
    fn stdin_eof_does_not_end_the_copy() {
        let mut running = start(Streams { stdin: true, stdout: true }, CopyOptions::default());
        running.stdin.as_mut().expect("stdin").write_all(b"last input").expect("write stdin");
        running.stdin = None;
        let slave = running.slave.as_ref().expect("slave");
        assert_eq!(read_within(slave.as_fd(), 10, PROMPTLY), b"last input");

        // Still copying after the EOF has had time to be seen: output flows and the loop has not returned.
        thread::sleep(Duration::from_millis(100));
        running.round_trip(b"after eof");
        assert!(!running.copy.is_finished(), "stdin's EOF ended the copy");

        running.slave = None;
        let (end, _) = running.finish_within(PROMPTLY);
        assert_eq!(end.expect("copy"), CopyEnd::TerminalClosed);
    }

    #[test]
    fn closing_the_slave_ends_the_copy_with_all_output_delivered() {
        let mut running = start(Streams { stdin: true, stdout: true }, CopyOptions::default());
        // Only the copier may hold the write end, or stdout never reaches EOF.
        running.stdout_writer = None;
        // Far more than the pty and the pipe hold, written by the "container" which then exits at once.
        let output = pattern(1024 * 1024);
        let mut slave = running.slave.take().expect("slave");
        let expected = output.clone();
        let container = thread::spawn(move || {
            slave.write_all(&output).expect("write to slave");
            drop(slave);
        });

        let delivered = read_to_eof_within(running.stdout(), PROMPTLY);
        container.join().expect("container thread panicked");
        assert_eq!(delivered.len(), expected.len(), "delivered {} of {} bytes", delivered.len(), expected.len());
        assert!(delivered == expected, "output was reordered or corrupted");
        let (end, _) = running.finish_within(PROMPTLY);
        assert_eq!(end.expect("copy"), CopyEnd::TerminalClosed);
    }

    #[test]
    fn output_is_discarded_once_the_stdout_reader_is_gone() {
        let mut running = start(Streams { stdin: true, stdout: true }, CopyOptions::default());
        running.round_trip(b"before");
        running.stdout = None;
        running.stdout_writer = None;

        // The container can still write far more than the pty holds: the copier keeps reading and discarding.
        let mut slave = running.slave.take().expect("slave");
        let container = thread::spawn(move || {
            slave.write_all(&pattern(1024 * 1024)).expect("write to slave");
            slave
        });
        let deadline = Instant::now() + PROMPTLY;
        while !container.is_finished() {
            assert!(Instant::now() < deadline, "the container blocked on its terminal");
            thread::sleep(Duration::from_millis(5));
        }
        let slave = container.join().expect("container thread panicked");
        assert!(!running.copy.is_finished(), "losing stdout's reader ended the copy");

        drop(slave);
        let (end, _) = running.finish_within(PROMPTLY);
        assert_eq!(end.expect("copy"), CopyEnd::TerminalClosed);
    }

    #[test]
    fn output_keeps_flowing_while_the_terminal_input_is_full() {
        let mut running = start(Streams { stdin: true, stdout: true }, CopyOptions::default());
        running.round_trip(b"ready");
        // The container never reads its input; containerd keeps sending. A blocking write to the master would
        // stall the whole loop here.
        let mut stdin = running.stdin.take().expect("stdin");
        let client = thread::spawn(move || stdin.write_all(&pattern(1024 * 1024)));
        thread::sleep(Duration::from_millis(200));
        running.round_trip(b"output still flows");

        running.slave = None;
        let (end, _) = running.finish_within(PROMPTLY);
        assert_eq!(end.expect("copy"), CopyEnd::TerminalClosed);
        // The copier closed its end of stdin on return, so the client's write fails instead of hanging.
        assert!(client.join().expect("client thread panicked").is_err(), "1 MiB of input cannot have fit");
    }

    #[test]
    fn copy_without_stdin_or_stdout_reads_the_terminal_until_it_closes() {
        let mut running = start(Streams { stdin: false, stdout: false }, CopyOptions::default());
        let mut slave = running.slave.take().expect("slave");
        // More than the pty holds: it only gets through if the copier reads and discards.
        let container = thread::spawn(move || slave.write_all(&pattern(256 * 1024)));
        let (end, _) = running.finish_within(PROMPTLY);
        assert_eq!(end.expect("copy"), CopyEnd::TerminalClosed);
        container.join().expect("container thread panicked").expect("write to slave");
    }

    #[test]
    fn sigterm_drains_output_that_arrives_just_after_it() {
        // A long quiet period so that the write below, made right after the signal, surely falls inside it.
        let options = CopyOptions { drain_timeout: Duration::from_secs(5), drain_quiet: Duration::from_secs(1) };
        let mut running = start(Streams { stdin: true, stdout: true }, options);
        running.round_trip(b"ready;");

        // The signal is already pending when the container's last output crosses the pty, as happens when systemd
        // stops the unit while the kernel is still moving that output to the master.
        let start = Instant::now();
        running.signal(Signal::SIGTERM);
        running.slave().write_all(b"last words").expect("write to slave");
        // The test keeps the slave open, so only the signal can end the loop.
        let slave = running.slave.take();
        let (end, stdout) = running.finish_within(PROMPTLY);
        let took = start.elapsed();
        assert_eq!(end.expect("copy"), CopyEnd::Signalled { signal: Signal::SIGTERM });
        assert!(took < options.drain_timeout, "a quiet terminal took {took:?} to drain");

        let stdout = stdout.expect("stdout reader");
        assert_eq!(read_to_eof_within(stdout.as_fd(), PROMPTLY), b"last words");
        drop(slave);
    }

    #[test]
    fn sigint_ends_the_copy_like_sigterm() {
        let mut running = start(Streams { stdin: true, stdout: true }, CopyOptions::default());
        running.round_trip(b"ready");
        running.signal(Signal::SIGINT);
        let slave = running.slave.take();
        let (end, _) = running.finish_within(PROMPTLY);
        assert_eq!(end.expect("copy"), CopyEnd::Signalled { signal: Signal::SIGINT });
        drop(slave);
    }

    #[test]
    fn drain_gives_up_at_its_timeout_when_stdout_is_full() {
        let options = CopyOptions { drain_timeout: Duration::from_millis(300), drain_quiet: Duration::from_millis(50) };
        let mut running = start(Streams { stdin: true, stdout: true }, options);
        running.round_trip(b"ready");

        // Fill the stdout pipe so the copier cannot pass anything on, then give it output to hold.
        let spare = running.stdout_writer.take().expect("spare stdout writer");
        set_nonblocking(spare.as_fd(), Stream::Stdout).expect("nonblocking spare");
        let chunk = [0u8; 4096];
        while write(&spare, &chunk).is_ok() {}
        drop(spare);
        running.slave().write_all(b"stuck").expect("write to slave");
        thread::sleep(Duration::from_millis(50));

        let start = Instant::now();
        running.signal(Signal::SIGTERM);
        let slave = running.slave.take();
        let (end, _) = running.finish_within(PROMPTLY);
        let took = start.elapsed();
        assert_eq!(end.expect("copy"), CopyEnd::Signalled { signal: Signal::SIGTERM });
        assert!(took >= options.drain_timeout, "gave up after {took:?}, before the drain timeout");
        assert!(took < options.drain_timeout + Duration::from_secs(2), "the drain overran its bound: {took:?}");
        drop(slave);
    }
}
