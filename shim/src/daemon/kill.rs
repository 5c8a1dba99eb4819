//! Kill: signals the container's init itself ([`super::init_signal`]), or through runc when
//! every process in it is meant (`all`), when it is paused (runc thaws it for SIGKILL), when
//! the pid cannot be shown to be the init, or when the runtime binary wraps runc (it sees every
//! step, as under runc-v2).

use containerd_shim_protos::api::Status;
use nix::sys::signal::Signal;

use super::init_signal::{process_exists, signal_init, Signalled};
use super::manager::TaskManager;
use super::task::TaskKey;
use crate::error::Error;

impl TaskManager {
    /// Sends `signal` to task `key`'s init, or to all its processes.
    pub async fn kill(&self, key: &TaskKey, signal: u32, all: bool) -> Result<(), Error> {
        let signal = parse_signal(signal)?;
        let task = self.task(key)?;
        let finished = || Error::ProcessFinished { namespace: key.namespace.clone(), id: key.id.clone() };
        let (pid, paused) = {
            let lifecycle = task.lifecycle();
            if lifecycle.exit().is_some() {
                return Err(finished());
            }
            if !lifecycle.can_kill() {
                return Err(Error::BadState {
                    namespace: key.namespace.clone(),
                    id: key.id.clone(),
                    state: lifecycle.name(),
                    action: "kill",
                });
            }
            (lifecycle.pid(), lifecycle.status() == Status::PAUSED)
        };
        if !all && !paused && task.runc.is_plain_runc() {
            match signal_init(pid, task.unit.as_str(), signal).await {
                Signalled::Sent => return Ok(()),
                Signalled::Gone => return Err(finished()),
                Signalled::Unverified => {}
            }
        }
        match task.runc.kill(&key.id, signal, all).await {
            Ok(()) => Ok(()),
            // runc refuses to signal a container whose init is gone; say so the way containerd
            // expects (NOT_FOUND), judging by the process, not by runc's wording.
            Err(_) if !process_exists(pid) => Err(finished()),
            Err(error) => Err(Error::Runc(error)),
        }
    }
}

/// The signal with number `signal`, or INVALID_ARGUMENT.
pub fn parse_signal(signal: u32) -> Result<Signal, Error> {
    i32::try_from(signal).ok().and_then(|number| Signal::try_from(number).ok()).ok_or(Error::InvalidSignal(signal))
}
