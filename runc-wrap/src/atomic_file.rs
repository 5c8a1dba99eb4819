//! Small state files written atomically: a temporary file in the same directory, fsync, rename,
//! then fsync of the directory. A reader sees the old content or the new, never a torn write,
//! and a crash right after `write_atomically` returns cannot lose the file. Also the bounded
//! reader for configuration files others wrote.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// Writes `contents` to `path` atomically with mode 0600.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let io_error = |source| Error::StateFile { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| io_error(std::io::Error::other("path has no file name")))?;
    let temp = dir.join(format!(".{}.{}.tmp", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(io_error)
}

/// Serializes `value` as JSON and writes it atomically to `path`.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let json = serde_json::to_vec(value).map_err(|source| Error::Encode { path: path.to_path_buf(), source })?;
    write_atomically(path, &json)
}

/// Reads and parses the JSON file at `path`.
/// The pid in a pid file (`runc --pid-file`): a positive number, surrounding whitespace allowed.
pub fn read_pid_file(path: &Path) -> Result<u32, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::StateFile { path: path.to_path_buf(), source })?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|pid| *pid > 0 && i32::try_from(*pid).is_ok())
        .ok_or_else(|| Error::BadPidFile { path: path.to_path_buf(), contents: text.clone() })
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = fs::read(path).map_err(|source| Error::StateFile { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Decode { path: path.to_path_buf(), source })
}

/// The most we read of a configuration file someone else wrote (an OCI spec, a runtime options
/// file): far above any real one, low enough that a huge file cannot exhaust the daemon's memory.
pub const MAX_CONFIG_LEN: u64 = 16 << 20;

/// Reads `path` if it is a regular file of at most `max_len` bytes. The open never blocks and
/// anything but a regular file is refused: a fifo in its place would otherwise hold the reading
/// thread until someone writes to it, and a device like `/dev/zero` would never end. The error
/// keeps the kind of a failed open (`NotFound` stays `NotFound`).
pub async fn read_regular_file(path: &Path, max_len: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        let kind = meta.file_type();
        let what = if kind.is_dir() {
            "a directory"
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&kind) {
            "a fifo"
        } else {
            "a device or socket"
        };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is {what}, not a regular file")));
    }
    if meta.len() > max_len {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is larger than {max_len} bytes")));
    }
    let mut contents = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow after the stat: never read more than the limit.
    file.take(max_len + 1).read_to_end(&mut contents).await?;
    if contents.len() as u64 > max_len {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is larger than {max_len} bytes")));
    }
    Ok(contents)
}

/// Removes `path`; a file that is already gone is not an error.
pub fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::StateFile { path: path.to_path_buf(), source: error })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_hold_one_positive_pid() {
        let dir = std::env::temp_dir().join(format!("runc-wrap-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pid");
        for (contents, expected) in [("42", Some(42)), ("42\n", Some(42)), ("0", None), ("-1", None), ("x", None)] {
            fs::write(&path, contents).unwrap();
            assert_eq!(read_pid_file(&path).ok(), expected, "{contents:?}");
        }
        assert!(matches!(read_pid_file(&dir.join("missing")), Err(Error::StateFile { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("runc-wrap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = scratch_dir("atomic");
        let path = dir.join("state.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("state.json")]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_into_missing_directory_names_the_path() {
        let path = Path::new("/nonexistent-dir-for-test/state.json");
        let error = write_atomically(path, b"x").unwrap_err();
        assert!(error.to_string().contains("/nonexistent-dir-for-test/state.json"), "{error}");
    }

    #[tokio::test]
    async fn only_regular_files_within_the_limit_are_read() {
        let dir = scratch_dir("regular");
        let file = dir.join("config.json");
        fs::write(&file, b"{}").unwrap();
        assert_eq!(read_regular_file(&file, 2).await.unwrap(), b"{}");
        let too_big = read_regular_file(&file, 1).await.unwrap_err();
        assert!(too_big.to_string().contains("larger than 1 bytes"), "{too_big}");

        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Nobody writes: a blocking open would wait here forever.
        let error = tokio::time::timeout(std::time::Duration::from_secs(5), read_regular_file(&fifo, 10))
            .await
            .expect("a fifo is refused without waiting for a writer")
            .unwrap_err();
        assert!(error.to_string().contains("is a fifo, not a regular file"), "{error}");
        let error = read_regular_file(&dir, 10).await.unwrap_err();
        assert!(error.to_string().contains("is a directory"), "{error}");
        let error = read_regular_file(Path::new("/dev/zero"), 10).await.unwrap_err();
        assert!(error.to_string().contains("a device or socket"), "{error}");
        let missing = read_regular_file(&dir.join("missing"), 10).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn removing_a_missing_file_is_fine() {
        remove_if_present(Path::new("/nonexistent-dir-for-test/x")).unwrap();
    }
}
