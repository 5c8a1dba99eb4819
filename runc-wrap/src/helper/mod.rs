//! The helper that runs inside a container's unit: `helper create` is the unit's `ExecStart`
//! (mount, stdio, then exec `runc create`), `helper exec` an exec unit's (stdio, then
//! `runc exec --detach`), `helper exited` its `ExecStopPost` (record the exit).
//! It is short-lived, synchronous code: blocking is fine here, and never touches the daemon.

mod cgroup;
mod config_patch;
mod create;
mod exec;
mod exited;
pub mod logger;
mod notify_relay;
mod pipe_copier;
mod privileges;
mod spawn;
mod stdio;
mod terminal;

pub use cgroup::{unit_cgroup_from_proc, CONTAINER_CGROUP_LEAF};
pub use create::run_create;
pub use exec::run_exec;
pub use exited::run_exited;
