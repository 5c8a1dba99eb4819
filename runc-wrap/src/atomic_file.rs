//! Small state files written atomically: a temporary file in the same directory, fsync, rename,
//! then fsync of the directory. A reader sees the old content or the new, never a torn write,
//! and a crash right after `write_atomically` returns cannot lose the file.

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
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = fs::read(path).map_err(|source| Error::StateFile { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Decode { path: path.to_path_buf(), source })
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

    #[test]
    fn removing_a_missing_file_is_fine() {
        remove_if_present(Path::new("/nonexistent-dir-for-test/x")).unwrap();
    }
}
