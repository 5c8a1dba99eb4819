//! A containerd gRPC client for the integration tests. It drives a runtime through containerd's
//! public API the way containerd's Go integration suite does (`client.NewContainer`,
//! `container.NewTask`, `task.Start`/`Wait`/`Exec`/`Delete`): image → snapshot → container
//! record → task, so a shim is tested as containerd's clients use it, not only through `ctr`.
//!
//! Only the services' v1 API is used, which containerd 1.6 and 2.x both serve. The runtime is a
//! parameter, so one test body runs against `io.containerd.runc.v2` as a baseline and against
//! ours. The client connects from the host through `/proc/PID/root` of the sandbox.

pub mod image;
pub mod spec;
