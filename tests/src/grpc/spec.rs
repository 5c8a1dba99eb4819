//! OCI runtime specs for the busybox test image, shaped like the default spec containerd's Go
//! client generates for `ctr run` (`oci.populateDefaultUnixSpec`): the default capability set,
//! the usual pseudo-filesystems, fresh namespaces but the host's user and cgroup ones, and the
//! `/NAMESPACE/ID` cgroups path.

use serde_json::{json, Value};

/// Type URLs containerd registers the OCI spec types under (`typeurl.Register` in `oci`).
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// See [`SPEC_TYPE_URL`].
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// The `PATH` containerd puts in a spec when the image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities containerd (like Docker) grants by default.
const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Character devices every container may use: null, zero, full, tty, random, urandom,
/// console, ptmx; `None` as minor allows the whole major (the pty slaves).
const ALLOWED_CHAR_DEVICES: &[(u32, Option<u32>)] = &[
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (5, Some(0)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(1)),
    (136, None),
    (5, Some(2)),
];

/// The process part of a spec: root in `/`, with the default capabilities and no new privileges.
/// `env` replaces the default `PATH` only if it sets one itself.
pub fn process(args: &[&str], env: &[&str]) -> Value {
    let mut environment: Vec<&str> = Vec::new();
    if !env.iter().any(|variable| variable.starts_with("PATH=")) {
        environment.push(DEFAULT_PATH);
    }
    environment.extend_from_slice(env);
    json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": environment,
        "cwd": "/",
        "capabilities": {
            "bounding": DEFAULT_CAPABILITIES,
            "effective": DEFAULT_CAPABILITIES,
            "permitted": DEFAULT_CAPABILITIES,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true,
    })
}

/// A whole spec for container `id` of `namespace` running `args`; the rootfs is the bundle's
/// `rootfs`, where the shim mounts the snapshot.
pub fn container(namespace: &str, id: &str, args: &[&str], env: &[&str]) -> Value {
    let mut devices = vec![json!({"allow": false, "access": "rwm"})];
    devices.extend(ALLOWED_CHAR_DEVICES.iter().map(|&(major, minor)| match minor {
        Some(minor) => json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}),
        None => json!({"allow": true, "type": "c", "major": major, "access": "rwm"}),
    }));
    json!({
        "ociVersion": "1.0.2-dev",
        "process": process(args, env),
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        ],
        "linux": {
            "resources": {"devices": devices},
            "cgroupsPath": format!("/{namespace}/{id}"),
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_added_unless_the_caller_sets_one() {
        assert_eq!(process(&["true"], &["A=1"])["env"], json!([DEFAULT_PATH, "A=1"]));
        assert_eq!(process(&["true"], &["PATH=/bin"])["env"], json!(["PATH=/bin"]));
    }

    #[test]
    fn container_spec_names_its_cgroup_after_namespace_and_id() {
        let spec = container("ns", "box", &["sh"], &[]);
        assert_eq!(spec["linux"]["cgroupsPath"], "/ns/box");
        assert_eq!(spec["process"]["args"], json!(["sh"]));
        assert_eq!(spec["root"]["path"], "rootfs");
    }
}
