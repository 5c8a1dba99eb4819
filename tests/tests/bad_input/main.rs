//! Bad input gets a clear error naming what was wrong, the daemon keeps serving, and nothing is
//! left behind. Three layers: through `ctr` (containerd validates first), through our `start`
//! subcommand, and straight at the daemon's task API, the way containerd itself talks to it.
//!
//! Each bad input is a test of its own, named for what is refused and how. The task API ones run
//! in namespaces of their own, with tasks of their own ([`harness::TaskApi`]), so that one
//! failing never fails another. Test names do not carry this file's name: `tests/run -- ctr::
//! shim_start:: create_requests:: task_requests:: exec_requests:: across_namespaces::
//! sequences::` runs them all.

mod across_namespaces;
mod create_requests;
mod ctr;
mod exec_requests;
mod harness;
mod sequences;
mod shim_start;
mod task_requests;
