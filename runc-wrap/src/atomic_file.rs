//! Small state files written atomically: a temporary file in the same directory, fsync, rename,
//! then fsync of the directory. A reader sees the old content or the new, never a torn write,
//! and a crash right after `write_atomically` returns cannot lose the file. Also the bounded
//! reader for configuration files others wrote.
//!
//! The temporary file is always a new file under a name nobody can guess (`O_CREAT|O_EXCL`,
//! `O_NOFOLLOW`, a random part): a symlink or file planted at a predictable name would
//! otherwise be followed or overwritten with the daemon's privileges.
//!
//! Why not a crate. `tempfile` (3.27, compiled in through containerd-shim) makes the temporary
//! file the same way (`O_CREAT|O_EXCL`, mode 0600) and `persist` renames it, but fsyncs
//! neither the file nor the directory, so the durability half would stay here anyway; its first
//! three names come from `fastrand`, which its source calls predictable (it reseeds from the
//! kernel after three collisions), and it tries up to 65,536 names in a directory someone is
//! filling, where we stop at `TEMP_NAME_ATTEMPTS` (16).
//! `atomic-write-file` (0.3) does the whole dance (`openat` with `O_EXCL`, fsync, `renameat`,
//! fsync of the directory) but loops on `EEXIST` without a bound, keeps the old file's mode by
//! default where we want 0600 always, and brings rand 0.10 with rand_core 0.10 and chacha20 (a
//! second rand beside opentelemetry_sdk's 0.9). Ours is some sixty lines and tested with
//! planted names.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::random::random_u64;
use crate::Error;

/// How many temporary names are tried before giving up. Two random 64-bit names colliding by
/// chance is vanishingly rare; every name taken means someone is planting files in the directory.
const TEMP_NAME_ATTEMPTS: usize = 16;

/// Writes `contents` to `path` atomically with mode 0600.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    write_atomically_with_names(path, contents, || Ok(format!("{:016x}", random_u64()?)))
}

/// [`write_atomically`], with the random part of each temporary name drawn from `unique`.
fn write_atomically_with_names(
    path: &Path,
    contents: &[u8],
    mut unique: impl FnMut() -> std::io::Result<String>,
) -> Result<(), Error> {
    let io_error = |source| Error::StateFile { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| io_error(std::io::Error::other("path has no file name")))?;
    let (temp, mut file) = create_temp_file(dir, &file_name.to_string_lossy(), &mut unique).map_err(io_error)?;
    let renamed = (|| {
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if renamed.is_err() {
        // Only the file this call created: `create_temp_file` never opens an existing one.
        let _ = fs::remove_file(&temp);
    }
    renamed.and_then(|()| File::open(dir)?.sync_all()).map_err(io_error)
}

/// Creates a new temporary file for `file_name` in `dir`: `.<file name>.<pid>.<unique>.tmp`,
/// mode 0600. A name that exists already (a file, or a symlink that `O_EXCL` refuses to follow
/// even when it dangles) is never opened; the next name is tried, up to [`TEMP_NAME_ATTEMPTS`].
fn create_temp_file(
    dir: &Path,
    file_name: &str,
    unique: &mut impl FnMut() -> std::io::Result<String>,
) -> std::io::Result<(PathBuf, File)> {
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp = dir.join(format!(".{file_name}.{}.{}.tmp", std::process::id(), unique()?));
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&temp);
        match created {
            Ok(file) => return Ok((temp, file)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{TEMP_NAME_ATTEMPTS} temporary names in a row were taken in {}", dir.display()),
    ))
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
    fn a_symlink_at_the_old_predictable_temp_name_is_not_followed() {
        let dir = scratch_dir("planted-symlink");
        let target = dir.join("target");
        fs::write(&target, b"precious").unwrap();
        // The name every write of `state.json` by this process used to go through.
        let predictable = dir.join(format!(".state.json.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, &predictable).unwrap();
        let path = dir.join("state.json");
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"precious", "the symlink's target is untouched");
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "the state file is a plain file");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_temp_name_taken_by_a_symlink_or_file_is_skipped_and_left_alone() {
        let dir = scratch_dir("taken-names");
        let target = dir.join("target");
        fs::write(&target, b"precious").unwrap();
        let temp = |unique: &str| dir.join(format!(".state.json.{}.{unique}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, temp("first")).unwrap();
        fs::write(temp("second"), b"someone else's").unwrap();
        let mut names = ["first", "second", "third"].into_iter().map(|name| Ok(name.to_string()));
        let path = dir.join("state.json");
        write_atomically_with_names(&path, b"new", || names.next().unwrap()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        assert_eq!(fs::read(temp("second")).unwrap(), b"someone else's");
        assert!(fs::symlink_metadata(temp("first")).unwrap().file_type().is_symlink());
        assert!(!temp("third").exists(), "the temporary file became the state file");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn when_every_temp_name_is_taken_the_write_fails_and_removes_nothing() {
        let dir = scratch_dir("all-taken");
        let taken = dir.join(format!(".state.json.{}.same.tmp", std::process::id()));
        fs::write(&taken, b"someone else's").unwrap();
        let path = dir.join("state.json");
        let error = write_atomically_with_names(&path, b"new", || Ok("same".to_string())).unwrap_err();
        assert!(error.to_string().contains("temporary names in a row were taken"), "{error}");
        assert_eq!(fs::read(&taken).unwrap(), b"someone else's");
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_into_missing_directory_names_the_path() {
        let path = Path::new("/nonexistent-dir-for-test/state.json");
        let error = write_atomically(path, b"x").unwrap_err();
        assert!(matches!(&error, Error::StateFile { path: named, .. } if named == path), "{error:?}");
    }

    #[tokio::test]
    async fn only_regular_files_within_the_limit_are_read() {
        let dir = scratch_dir("regular");
        let file = dir.join("config.json");
        fs::write(&file, b"{}").unwrap();
        assert_eq!(read_regular_file(&file, 2).await.unwrap(), b"{}");
        // These io::Error messages are the contract: containerd shows them for a bundle's
        // config.json or a runtime options file (bad_input checks "not a regular file").
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
