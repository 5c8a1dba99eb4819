//! The transient unit that runs the shim daemon itself: one per containerd, `Type=notify`, so
//! the start job finishes only once the daemon listens. Launched by `containerd-shim-systemd-v1
//! start` when no daemon answers; an installed `.socket`/`.service` pair may replace it.

use crate::names::UnitName;
use crate::properties::{exec_property, single_line, ExecCommand, Property, PropertyValue, TransientUnit};

/// How long systemd waits for the daemon's `READY=1`.
pub const DAEMON_START_TIMEOUT_USEC: u64 = 30 * 1_000_000;

/// How many descriptors the daemon may keep in systemd's fd store across restarts when its
/// configuration says nothing: its listening sockets and every ttrpc connection from
/// containerd (one per task, and a few per namespace).
pub const DEFAULT_FD_STORE_MAX: u32 = 4096;

/// The daemon's open-file limit.
pub const OPEN_FILES: u64 = 1 << 20;

/// Restart delay after the daemon died: short, containerd's calls wait meanwhile.
const RESTART_USEC: u64 = 100_000;

/// The accounting the daemon's unit turns on, the controllers every container unit uses too.
/// While the daemon runs they stay realized up to the root slice, so a container starting or
/// stopping changes no slice's controllers. On a cgroup-v1 host each such change makes systemd
/// migrate every process of the root cgroup between hierarchies, before the container's unit
/// can start: twice per `ctr run --rm`, when one container runs at a time.
pub const ACCOUNTING: [&str; 4] = ["MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"];

/// The first systemd without `CPUAccounting=`: CPU accounting is always on where only the
/// unified hierarchy remains, and the setting is ignored with a warning at every load.
const FIRST_SYSTEMD_WITHOUT_CPU_ACCOUNTING: u32 = 258;

/// The [`ACCOUNTING`] settings a systemd of major version `systemd_version` still has.
pub fn accounting(systemd_version: u32) -> impl Iterator<Item = &'static str> {
    ACCOUNTING
        .into_iter()
        .filter(move |name| *name != "CPUAccounting" || systemd_version < FIRST_SYSTEMD_WITHOUT_CPU_ACCOUNTING)
}

/// Everything the daemon's unit is derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonUnitRequest {
    /// The unit name (derived from containerd's address by the caller).
    pub unit_name: String,
    /// Absolute path of the shim binary.
    pub exe: String,
    /// Arguments after the binary.
    pub args: Vec<String>,
    /// `NAME=value` environment entries.
    pub environment: Vec<String>,
    /// Human-readable description.
    pub description: String,
    /// Major version of the systemd we talk to.
    pub systemd_version: u32,
    /// `FileDescriptorStoreMax=`: the daemon's configured limit, which it counts against.
    pub fd_store_max: u32,
}

/// Renders the daemon's unit.
pub fn render_daemon_unit(request: &DaemonUnitRequest) -> TransientUnit {
    let args: Vec<&str> = request.args.iter().map(String::as_str).collect();
    let command = ExecCommand::literal(&request.exe, &args);
    let exec_start = exec_property("ExecStart", command, request.systemd_version);
    TransientUnit {
        name: UnitName::from_raw(request.unit_name.clone()),
        properties: vec![
            // It names containerd's address, which may hold anything.
            Property::new("Description", PropertyValue::Str(single_line(&request.description))),
            Property::new("Type", PropertyValue::Str("notify".into())),
            Property::new("NotifyAccess", PropertyValue::Str("main".into())),
            Property::new("Environment", PropertyValue::StrList(request.environment.clone())),
            // Sockets and state files the daemon creates are for root only.
            Property::new("UMask", PropertyValue::U32(0o077)),
            Property::new("TimeoutStartUSec", PropertyValue::U64(DAEMON_START_TIMEOUT_USEC)),
            // A daemon that died must not block the next `start` from launching a new one.
            Property::new("CollectMode", PropertyValue::Str("inactive-or-failed".into())),
            // Crash-only: a daemon that dies (or loses systemd) is restarted, gets its sockets
            // and containerd's connections back from the fd store, and re-adopts every task
            // from its state files, so containerd notices nothing.
            Property::new("Restart", PropertyValue::Str("always".into())),
            Property::new("RestartUSec", PropertyValue::U64(RESTART_USEC)),
            // No start rate limit: one that is hit fails the unit for good, and with it goes
            // the fd store, which holds every containerd connection. An operator restarting it
            // a few times in a row must not cost that; a crash loop is paced by RestartUSec.
            Property::new("StartLimitIntervalUSec", PropertyValue::U64(0)),
            Property::new("FileDescriptorStoreMax", PropertyValue::U32(request.fd_store_max)),
            // One connection per task from containerd, kept in the fd store too.
            Property::new("LimitNOFILE", PropertyValue::U64(OPEN_FILES)),
            Property::new("LimitNOFILESoft", PropertyValue::U64(OPEN_FILES)),
            // Containers are units of their own; the only other processes here are the runc
            // (and CRIU) calls in flight, which a stopping daemon lets finish (it drains) and
            // which, killed halfway, would leave a container frozen or half deleted.
            Property::new("KillMode", PropertyValue::Str("process".into())),
            exec_start,
        ]
        .into_iter()
        .chain(accounting(request.systemd_version).map(|name| Property::new(name, PropertyValue::Bool(true))))
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> DaemonUnitRequest {
        DaemonUnitRequest {
            unit_name: "containerd-shim-systemd-v1-0123456789abcdef.service".into(),
            exe: "/usr/local/bin/containerd-shim-systemd-v1".into(),
            args: vec!["-address".into(), "/run/containerd/containerd.sock".into(), "daemon".into()],
            environment: vec!["TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc".into()],
            description: "shim daemon".into(),
            systemd_version: 252,
            fd_store_max: 100,
        }
    }

    #[test]
    fn daemon_unit_is_notify_type_with_argv_exec() {
        let unit = render_daemon_unit(&request());
        assert_eq!(unit.property("Type"), Some(&PropertyValue::Str("notify".into())));
        assert_eq!(unit.property("UMask"), Some(&PropertyValue::U32(0o077)));
        let Some(PropertyValue::Exec(commands)) = unit.property("ExecStart") else { panic!("{unit:?}") };
        assert_eq!(commands[0].argv.last().map(String::as_str), Some("daemon"));
        assert_eq!(unit.property("Description"), Some(&PropertyValue::Str("shim daemon".into())));
        assert_eq!(
            unit.property("Environment"),
            Some(&PropertyValue::StrList(vec!["TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc".into()]))
        );
    }

    #[test]
    fn daemon_unit_keeps_the_containers_controllers_realized() {
        let unit = render_daemon_unit(&request());
        for name in ["MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"] {
            assert_eq!(unit.property(name), Some(&PropertyValue::Bool(true)), "{name}");
        }
    }

    #[test]
    fn daemon_restarts_and_keeps_its_descriptors() {
        let unit = render_daemon_unit(&request());
        assert_eq!(unit.property("Restart"), Some(&PropertyValue::Str("always".into())));
        assert_eq!(unit.property("StartLimitIntervalUSec"), Some(&PropertyValue::U64(0)), "never rate limited");
        assert_eq!(unit.property("FileDescriptorStoreMax"), Some(&PropertyValue::U32(100)), "as configured");
        assert_eq!(unit.property("KillMode"), Some(&PropertyValue::Str("process".into())));
        assert_eq!(unit.property("LimitNOFILE"), Some(&PropertyValue::U64(OPEN_FILES)));
    }

    #[test]
    fn a_description_from_a_hostile_address_stays_one_line() {
        let mut request = request();
        request.description = "daemon for containerd at /run/x\n[Service]\nExecStartPost=/bin/touch /tmp/p".into();
        let unit = render_daemon_unit(&request);
        assert_eq!(
            unit.property("Description"),
            Some(&PropertyValue::Str(
                "daemon for containerd at /run/x\\n[Service]\\nExecStartPost=/bin/touch /tmp/p".into()
            ))
        );
    }
}
