//! Dropping the privileges of the copiers that stay in a container's unit for its whole life
//! (the terminal copier, the stdio pipe copier). They start as root with every capability, as
//! the helper does, but once their descriptors are open all they do is read and write those:
//! they reopen nothing, chown nothing and write no state file (the unit's `ExecStopPost` helper,
//! a process of its own, records the exit; ResizePty works on the master from the daemon's
//! side). So they keep no capability at all, in any set, and can gain none back through an
//! exec (`PR_SET_NO_NEW_PRIVS`): container output that subverts a copier finds a process that
//! is root by uid only.
//!
//! Capabilities are per thread (capset(2), `PR_CAPBSET_DROP`): call [`drop_all_privileges`]
//! while the copier has one thread, before it starts any other.

use nix::errno::Errno;
use nix::libc;

use crate::Error;

/// `_LINUX_CAPABILITY_VERSION_3` (linux/capability.h): 64-bit capability sets, in two words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapabilityHeader {
    version: u32,
    /// 0: the calling thread.
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h), one 32-bit word of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapabilityWords {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets `PR_SET_NO_NEW_PRIVS` and empties the calling thread's bounding, ambient, effective,
/// permitted and inheritable capability sets. The bounding set goes first: dropping from it
/// needs `CAP_SETPCAP` in the effective set.
pub fn drop_all_privileges() -> Result<(), Error> {
    let failed = |step: &'static str| move |source: Errno| Error::DropPrivileges { step, source };
    nix::sys::prctl::set_no_new_privs().map_err(failed("setting no_new_privs"))?;
    drop_bounding_set().map_err(failed("emptying the bounding set"))?;
    // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL) takes no pointers.
    let cleared =
        unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    match Errno::result(cleared) {
        // Kernels before 4.3 have no ambient set: nothing to clear.
        Ok(_) | Err(Errno::EINVAL) => {}
        Err(errno) => return Err(failed("clearing the ambient set")(errno)),
    }
    let header = CapabilityHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let empty = [CapabilityWords::default(); 2];
    // SAFETY: capset reads one header and the two data words version 3 defines, both alive
    // for the call.
    let set = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapabilityHeader, empty.as_ptr()) };
    Errno::result(set).map(drop).map_err(failed("emptying the effective, permitted and inheritable sets"))
}

/// Drops every capability the kernel knows from the bounding set; the first number it does not
/// know ends the walk (EINVAL).
fn drop_bounding_set() -> Result<(), Errno> {
    for capability in 0..64 {
        // SAFETY: prctl(PR_CAPBSET_DROP, n) takes no pointers.
        let dropped = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability as libc::c_ulong, 0, 0, 0) };
        match Errno::result(dropped) {
            Ok(_) => {}
            Err(Errno::EINVAL) => return Ok(()),
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The capability and no_new_privs lines of `/proc/thread-self/status`.
    pub(crate) fn privilege_lines() -> Vec<String> {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("read the thread's status");
        status
            .lines()
            .filter(|line| {
                ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"].iter().any(|key| line.starts_with(key))
            })
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// What [`privilege_lines`] shows once every privilege is gone.
    pub(crate) const DROPPED: [&str; 6] = [
        "CapInh: 0000000000000000",
        "CapPrm: 0000000000000000",
        "CapEff: 0000000000000000",
        "CapBnd: 0000000000000000",
        "CapAmb: 0000000000000000",
        "NoNewPrivs: 1",
    ];

    /// Runs `body` in a forked child, which reports the privilege lines after it through a
    /// pipe: the drop is for good, so the test process itself must keep its privileges.
    pub(crate) fn privileges_after_in_child(body: impl FnOnce()) -> Vec<String> {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, pipe, ForkResult};
        use std::io::{Read, Write};
        let (read, write) = pipe().expect("pipe");
        // SAFETY: the child only runs `body`, reads its own status and exits, without
        // returning into the test harness.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(read);
                // A failed assertion in `body` must end the child, not unwind into the harness.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
                let report = privilege_lines().join("\n");
                let _ = std::fs::File::from(write).write_all(report.as_bytes());
                // SAFETY: _exit skips the harness's atexit handlers, which belong to the parent.
                unsafe { libc::_exit(if ran.is_ok() { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                drop(write);
                let mut report = String::new();
                std::fs::File::from(read).read_to_string(&mut report).expect("read the child's report");
                assert_eq!(waitpid(child, None).expect("wait for the child"), WaitStatus::Exited(child, 0));
                report.lines().map(str::to_string).collect()
            }
        }
    }

    #[test]
    fn every_capability_set_is_empty_and_no_new_privs_set_after_the_drop() {
        let before = privilege_lines();
        if before.iter().any(|line| line == "CapEff: 0000000000000000") {
            panic!("this test needs a process with capabilities (run it as root): {before:?}");
        }
        let after = privileges_after_in_child(|| drop_all_privileges().expect("drop privileges"));
        assert_eq!(after, DROPPED);
        assert_eq!(privilege_lines(), before, "the test process keeps its own privileges");
    }
}
