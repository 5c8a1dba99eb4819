//! Reading cgroupfs files and parsing the kernel's value formats (Documentation/admin-guide/
//! cgroup-v2.rst, "Interface Files": single values, flat keyed `key value` lines).
//! Parsers are pure and take the file's path only to name it in errors.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

use nix::errno::Errno;

use super::CgroupError;

/// Fails with [`CgroupError::CgroupNotFound`] unless `dir` exists.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::metadata(dir) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            Err(CgroupError::CgroupNotFound { path: dir.to_path_buf() })
        }
        Err(source) => Err(CgroupError::Read { path: dir.to_path_buf(), source }),
    }
}

/// Whether a read error means "this interface file is not there": the controller is not
/// mounted or enabled, or the kernel is too old or configured without it (PSI files exist but
/// fail with EOPNOTSUPP when booted with `psi=0`).
pub(super) fn is_absent(error: &std::io::Error) -> bool {
    error.kind() == ErrorKind::NotFound || error.raw_os_error() == Some(Errno::EOPNOTSUPP as i32)
}

/// The contents of `path`, or `None` if the file is absent (see [`is_absent`]).
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if is_absent(&error) => Ok(None),
        Err(source) => Err(CgroupError::Read { path: path.to_path_buf(), source }),
    }
}

/// A single-value file as a number; 0 if the file is absent.
pub(super) fn read_u64_or_zero(path: &Path) -> Result<u64, CgroupError> {
    match read_optional(path)? {
        Some(text) => parse_u64(path, &text),
        None => Ok(0),
    }
}

/// A limit file (number or `max`) with `max` read as `unlimited`; 0 if the file is absent.
pub(super) fn read_limit_or_zero(path: &Path, unlimited: u64) -> Result<u64, CgroupError> {
    match read_optional(path)? {
        Some(text) => parse_limit(path, &text, unlimited),
        None => Ok(0),
    }
}

/// A flat keyed file; empty if the file is absent.
pub(super) fn read_keyed(path: &Path) -> Result<Keyed, CgroupError> {
    match read_optional(path)? {
        Some(text) => parse_keyed(path, &text),
        None => Ok(Keyed::default()),
    }
}

fn parse_error(path: &Path, reason: String) -> CgroupError {
    CgroupError::Parse { path: path.to_path_buf(), reason }
}

/// One unsigned counter. Negative values read as 0: some kernels briefly report negative
/// per-cpu-summed counters, and containerd's cgroups library clamps them the same way.
pub(super) fn parse_number(path: &Path, word: &str) -> Result<u64, CgroupError> {
    if let Ok(value) = word.parse::<u64>() {
        return Ok(value);
    }
    match word.strip_prefix('-') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(0),
        _ => Err(parse_error(path, format!("{word:?} is not a number"))),
    }
}

/// A single-value file's contents.
pub(super) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    parse_number(path, text.trim())
}

/// A limit file's contents: a number, or `max` (no limit), which reads as `unlimited`.
pub(super) fn parse_limit(path: &Path, text: &str, unlimited: u64) -> Result<u64, CgroupError> {
    match text.trim() {
        "max" => Ok(unlimited),
        word => parse_number(path, word),
    }
}

/// The values of a flat keyed file (`key value` per line); missing keys read as 0.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Keyed(BTreeMap<String, u64>);

impl Keyed {
    /// The value of `key`, 0 if the file does not have it.
    pub(super) fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// The value of `key` if the file has it.
    pub(super) fn find(&self, key: &str) -> Option<u64> {
        self.0.get(key).copied()
    }
}

/// Parses a flat keyed file. Every non-empty line must be a key and one number.
pub(super) fn parse_keyed(path: &Path, text: &str) -> Result<Keyed, CgroupError> {
    let mut values = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(parse_error(path, format!("line {line:?} is not `key value`")));
        };
        values.insert(key.to_string(), parse_number(path, value)?);
    }
    Ok(Keyed(values))
}

/// `major:minor` of a block device.
pub(super) fn parse_device(path: &Path, word: &str) -> Result<(u64, u64), CgroupError> {
    let malformed = || parse_error(path, format!("{word:?} is not a `major:minor` device number"));
    let (major, minor) = word.split_once(':').ok_or_else(malformed)?;
    Ok((major.parse().map_err(|_| malformed())?, minor.parse().map_err(|_| malformed())?))
}

/// The names in `dir` of the form `{prefix}<middle>{suffix}`, as the sorted `<middle>` parts
/// (e.g. the page sizes in `hugetlb.2MB.current`). Empty if `dir` cannot be listed because it
/// is gone; callers check the directory's existence first.
pub(super) fn names_between(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<String>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if is_absent(&error) => return Ok(Vec::new()),
        Err(source) => return Err(CgroupError::Read { path: dir.to_path_buf(), source }),
    };
    let mut middles = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Read { path: dir.to_path_buf(), source })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(middle) = name.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(suffix)) {
            if !middle.is_empty() && !middle.contains('.') {
                middles.push(middle.to_string());
            }
        }
    }
    middles.sort();
    Ok(middles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("/fake/memory.stat")
    }

    #[test]
    fn keyed_file_values_are_found_by_key_and_missing_keys_read_as_zero() {
        let keyed = parse_keyed(path(), "cache 4096\nrss 8192\n\nnegative -3\n").expect("parse");
        assert_eq!(keyed.get("cache"), 4096);
        assert_eq!(keyed.get("rss"), 8192);
        assert_eq!(keyed.get("negative"), 0);
        assert_eq!(keyed.get("absent"), 0);
        assert_eq!(keyed.find("absent"), None);
    }

    #[test]
    fn limits_read_max_as_the_callers_unlimited_value() {
        assert_eq!(parse_limit(path(), "max\n", u64::MAX).expect("max"), u64::MAX);
        assert_eq!(parse_limit(path(), "max\n", 0).expect("max"), 0);
        assert_eq!(parse_limit(path(), "1024\n", 0).expect("number"), 1024);
    }

    #[test]
    fn malformed_values_are_parse_errors_naming_the_file() {
        struct Case {
            name: &'static str,
            text: &'static str,
        }
        let cases = [
            Case { name: "word instead of number", text: "cache lots\n" },
            Case { name: "key without value", text: "cache\n" },
            Case { name: "three words", text: "cache 1 2\n" },
            Case { name: "lone minus", text: "cache -\n" },
            Case { name: "fraction", text: "cache 1.5\n" },
        ];
        for case in cases {
            match parse_keyed(path(), case.text) {
                Err(CgroupError::Parse { path: named, .. }) => assert_eq!(named, path(), "case {}", case.name),
                other => panic!("case {}: expected a parse error, got {other:?}", case.name),
            }
        }
        assert!(matches!(parse_u64(path(), "x"), Err(CgroupError::Parse { .. })));
        assert!(matches!(parse_device(path(), "8-0"), Err(CgroupError::Parse { .. })));
        assert!(matches!(parse_device(path(), "8:x"), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn device_numbers_parse_as_major_and_minor() {
        assert_eq!(parse_device(path(), "259:3").expect("device"), (259, 3));
    }
}
