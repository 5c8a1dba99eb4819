//! A process's stdio as containerd's task API names it: paths the shim opens (fifos, or
//! `file://` URIs), and the fifos a test feeds or reads, the way containerd's Go client sets up
//! `cio.NewFIFOSet` for `ctr run`.
//!
//! The fifos live in a fresh directory under the test root, the one directory the test (on the
//! host) and containerd (in the sandbox, whose `/run`, `/tmp` and `/var/tmp` are private) see
//! at the same path.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::stat::Mode;

use super::Error;
use crate::{unique_id, Sandbox};

/// How long dropping an [`OutputFifo`] waits for its reader to finish.
const DROP_GRACE: Duration = Duration::from_secs(5);

/// Where a process's stdin, stdout and stderr go; `None` is no stream (the shim uses
/// `/dev/null`).
#[derive(Debug, Clone, Default)]
pub struct Stdio {
    /// Path of the stdin fifo.
    pub stdin: Option<String>,
    /// Path of the stdout fifo, or a `file://` URI.
    pub stdout: Option<String>,
    /// Path of the stderr fifo, or a `file://` URI.
    pub stderr: Option<String>,
}

impl Stdio {
    /// No stdio at all.
    pub fn none() -> Stdio {
        Stdio::default()
    }

    /// The three fields as the API carries them: empty for none.
    pub(super) fn as_api(&self) -> (String, String, String) {
        let field = |path: &Option<String>| path.clone().unwrap_or_default();
        (field(&self.stdin), field(&self.stdout), field(&self.stderr))
    }
}

/// A fresh directory under the test root, for one fifo or log file.
pub fn scratch_dir(sandbox: &Sandbox, name: &str) -> Result<PathBuf, Error> {
    let dir = sandbox.root.join("grpc-io").join(unique_id(name));
    std::fs::create_dir_all(&dir).map_err(|source| Error::Stdio { path: dir.clone(), source })?;
    Ok(dir)
}

fn make_fifo(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|errno| Error::Stdio { path: path.clone(), source: errno.into() })?;
    Ok(path)
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("the test root is a utf-8 path").to_string()
}

/// A stdin fifo the test writes to. It is held open for reading and writing, so the process
/// blocks in `read` until the test sends something instead of seeing end-of-file at once; it
/// sees end-of-file when the fifo is dropped.
pub struct InputFifo {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
}

impl InputFifo {
    /// Creates the fifo and opens it (on Linux an `O_RDWR` open of a fifo never blocks).
    pub fn create(sandbox: &Sandbox, name: &str) -> Result<InputFifo, Error> {
        let dir = scratch_dir(sandbox, name)?;
        let path = make_fifo(&dir, "stdin")?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Stdio { path: path.clone(), source })?;
        Ok(InputFifo { dir, path, file: Some(file) })
    }

    /// The path to give containerd.
    pub fn path(&self) -> String {
        path_text(&self.path)
    }

    /// Closes the test's end: the process reads end-of-file once it has read what was sent.
    pub fn close(&mut self) {
        drop(self.file.take());
    }

    /// Writes `text` for the process to read.
    pub fn send(&mut self, text: &str) -> Result<(), Error> {
        let file = self.file.as_mut().expect("the fifo is open until dropped");
        file.write_all(text.as_bytes()).map_err(|source| Error::Stdio { path: self.path.clone(), source })
    }
}

impl Drop for InputFifo {
    fn drop(&mut self) {
        drop(self.file.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A stdout or stderr fifo the test reads everything from. A thread opens it for reading at
/// once, so the shim's open for writing (which blocks until a reader is there) goes through,
/// and reads until every writer has closed it.
pub struct OutputFifo {
    dir: PathBuf,
    path: PathBuf,
    reader: Option<JoinHandle<std::io::Result<Vec<u8>>>>,
}

impl OutputFifo {
    /// Creates the fifo and starts reading it.
    pub fn create(sandbox: &Sandbox, name: &str) -> Result<OutputFifo, Error> {
        let dir = scratch_dir(sandbox, name)?;
        let path = make_fifo(&dir, "output")?;
        let thread_path = path.clone();
        let reader = std::thread::spawn(move || {
            // Blocks until the shim opens the other end.
            let mut file = File::open(&thread_path)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        Ok(OutputFifo { dir, path, reader: Some(reader) })
    }

    /// The path to give containerd.
    pub fn path(&self) -> String {
        path_text(&self.path)
    }

    /// Everything written until the last writer closed the fifo, waiting at most `timeout`
    /// for that.
    pub fn collect(mut self, timeout: Duration) -> Result<String, Error> {
        let finished = self.wait_for_reader(timeout);
        let reader = self.reader.take().expect("collect consumes the fifo");
        if !finished {
            self.unblock_reader();
            // The reader may still hold a writer's end if a process keeps the fifo open; do
            // not wait for it forever.
            self.reader = Some(reader);
            return Err(Error::OutputTimeout { path: self.path.clone(), timeout });
        }
        let bytes = reader
            .join()
            .expect("the fifo reader does not panic")
            .map_err(|source| Error::Stdio { path: self.path.clone(), source })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn wait_for_reader(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let reader = self.reader.as_ref().expect("the reader runs until collected");
        while !reader.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Releases a reader still blocked in `open` because no writer ever came: opening the write
    /// end without blocking succeeds once a reader waits, and closing it again is end-of-file.
    fn unblock_reader(&self) {
        let _ = OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(&self.path);
    }
}

impl Drop for OutputFifo {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.unblock_reader();
            if self.wait_for_reader(DROP_GRACE) {
                let _ = self.reader.take().map(JoinHandle::join);
            } else {
                eprintln!("reader of {} is still blocked; leaving it", self.path.display());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `file://` log the shim appends a stream to, read back once the process is done.
pub struct OutputFile {
    dir: PathBuf,
    path: PathBuf,
}

impl OutputFile {
    /// A path for the log in a fresh directory; the shim creates the file.
    pub fn create(sandbox: &Sandbox, name: &str) -> Result<OutputFile, Error> {
        let dir = scratch_dir(sandbox, name)?;
        let path = dir.join("log");
        Ok(OutputFile { dir, path })
    }

    /// The `file://` URI to give containerd.
    pub fn uri(&self) -> String {
        format!("file://{}", path_text(&self.path))
    }

    /// What the log holds now.
    pub fn read(&self) -> Result<String, Error> {
        std::fs::read_to_string(&self.path).map_err(|source| Error::Stdio { path: self.path.clone(), source })
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
