//! `helper exited STATE-FILE`: the ExecStopPost of a container's unit. Records how the main
//! process ended, from the `$EXIT_CODE` / `$EXIT_STATUS` systemd passes, so the exit survives a
//! daemon that is down or restarting. Always exits 0: a failing ExecStopPost would only mark the
//! unit failed, which helps no one.

use std::path::Path;
use std::time::SystemTime;

use crate::atomic_file::write_json_atomically;
use crate::protocol::ExitState;

/// Runs the exited helper; returns the process exit code (always 0).
pub fn run_exited(state_path: &Path) -> i32 {
    let exit_code = std::env::var("EXIT_CODE").ok();
    let exit_status = std::env::var("EXIT_STATUS").ok();
    let service_result = std::env::var("SERVICE_RESULT").unwrap_or_default();
    match ExitState::from_systemd_env(exit_code.as_deref(), exit_status.as_deref(), SystemTime::now()) {
        Ok(Some(state)) => match write_json_atomically(state_path, &state) {
            Ok(()) => tracing::info!("recorded exit status {} (service result {service_result})", state.status),
            Err(error) => tracing::error!("could not record exit status {}: {error}", state.status),
        },
        Ok(None) => tracing::info!("no main process exited (service result {service_result}); nothing to record"),
        Err(error) => tracing::error!("{error}"),
    }
    0
}
