//! Running runc from the helper as a child (for terminals and execs, where the helper has work
//! left after runc exits), with its failure read back from runc's JSON log.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::helper::stdio::OpenedStdio;
use crate::runc::last_error_in_log;
use crate::{Error, Runc};

/// A command for `runc`, with the `PATH` it needs to find CRIU ([`Runc::path_env`]).
pub fn runc_command(runc: &Runc) -> Command {
    let mut command = Command::new(&runc.settings.binary);
    if let Some(path) = runc.path_env(std::env::var_os("PATH").as_deref()) {
        command.env("PATH", path);
    }
    command
}

/// Runs `runc args…` with `stdio` (or `/dev/null` for all three) and waits for it; a failure
/// carries the last error runc logged to `log`.
pub fn run_runc(
    command: &'static str,
    id: &str,
    runc: &Runc,
    args: Vec<OsString>,
    stdio: Option<OpenedStdio>,
    log: &Path,
) -> Result<(), Error> {
    let binary = runc.settings.binary.as_path();
    let mut child = runc_command(runc);
    child.args(args);
    match stdio {
        Some(stdio) => {
            child.stdin(Stdio::from(stdio.stdin)).stdout(Stdio::from(stdio.stdout)).stderr(Stdio::from(stdio.stderr))
        }
        None => child.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()),
    };
    // The helper's NOTIFY_SOCKET (exec units are Type=notify) is not for runc, which would
    // forward it into the container.
    child.env_remove("NOTIFY_SOCKET");
    let status = child.status().map_err(|source| Error::SpawnRunc {
        binary: binary.to_path_buf(),
        command,
        id: id.to_string(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let message = std::fs::read_to_string(log)
        .ok()
        .and_then(|log| last_error_in_log(&log))
        .unwrap_or_else(|| "runc logged no error".to_string());
    Err(Error::RuncFailed { command, id: id.to_string(), status: status.to_string(), message })
}
