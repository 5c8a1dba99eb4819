//! containerd-shim-systemd-v1: a containerd shim v2 whose tasks are transient systemd units.
//! `main.rs` parses the command line and calls into the modules here.

pub mod blocking;
pub mod cgroup;
pub mod config;
pub mod connection_id;
pub mod control;
pub mod daemon;
pub mod delete_command;
pub mod error;
pub mod fdstore;
pub mod info;
pub mod install;
pub mod logging;
pub mod paths;
pub mod runtime_options;
pub mod start;
pub mod systemd;
pub mod task_api;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod unbounded_work;
pub mod version;

pub use error::Error;
