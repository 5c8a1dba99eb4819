//! What the benchmark reads about processes from the host's `/proc`: identity (pid namespace,
//! the pid in each namespace, parent, command line, cgroup), memory (`smaps_rollup`) and CPU
//! time (`stat`). Parsing is pure and unit-tested; reading tolerates processes that vanish.

use std::path::Path;
use std::time::Duration;

use super::Error;

/// A process as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its pid on the host.
    pub pid: u32,
    /// Its parent's pid on the host.
    pub ppid: u32,
    /// Its pid in each pid namespace it is visible in, outermost (the host's) first
    /// (`NSpid` in `/proc/PID/status`).
    pub nspid: Vec<u32>,
    /// The inode of its pid namespace.
    pub pid_namespace: u64,
    /// Its argv.
    pub cmdline: Vec<String>,
    /// Its cgroup in the systemd hierarchy (`name=systemd` on a hybrid host, else the unified one).
    pub cgroup: String,
}

impl Process {
    /// Reads process `pid`; `None` if it is gone (or went while being read).
    pub fn read(pid: u32) -> Option<Process> {
        let dir = format!("/proc/{pid}");
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let (ppid, nspid) = parse_status(&status)?;
        let pid_namespace = namespace_inode(&std::fs::read_link(format!("{dir}/ns/pid")).ok()?)?;
        let cmdline = std::fs::read(format!("{dir}/cmdline")).ok()?;
        let cmdline = cmdline
            .split(|&byte| byte == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let cgroup = systemd_cgroup(&std::fs::read_to_string(format!("{dir}/cgroup")).ok()?)?;
        Some(Process { pid, ppid, nspid, pid_namespace, cmdline, cgroup })
    }

    /// Every process on the host that could be read.
    pub fn all() -> Result<Vec<Process>, Error> {
        let entries = std::fs::read_dir("/proc").map_err(|source| Error::Proc { path: "/proc".into(), source })?;
        Ok(entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(Process::read)
            .collect())
    }

    /// The base name of its executable as argv[0] gives it.
    pub fn program(&self) -> &str {
        self.cmdline.first().map(|arg0| arg0.rsplit('/').next().unwrap_or(arg0)).unwrap_or("")
    }

    /// The value following `flag` in its argv (`-namespace NS`).
    pub fn flag(&self, flag: &str) -> Option<&str> {
        let at = self.cmdline.iter().position(|arg| arg == flag)?;
        self.cmdline.get(at + 1).map(String::as_str)
    }
}

/// `PPid` and `NSpid` from the text of `/proc/PID/status`.
fn parse_status(status: &str) -> Option<(u32, Vec<u32>)> {
    let field = |name: &str| {
        status.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim).map(str::to_string))
    };
    let ppid = field("PPid")?.parse().ok()?;
    let nspid = field("NSpid")?.split_whitespace().map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
    Some((ppid, nspid))
}

/// The inode in a namespace link such as `pid:[4026532178]`.
fn namespace_inode(link: &Path) -> Option<u64> {
    let text = link.to_str()?;
    text.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// The systemd hierarchy's path from the text of `/proc/PID/cgroup`.
fn systemd_cgroup(cgroup: &str) -> Option<String> {
    let path_in = |hierarchy: &str| {
        cgroup.lines().find_map(|line| {
            let (_, rest) = line.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            (controllers == hierarchy).then(|| path.to_string())
        })
    };
    path_in("name=systemd").or_else(|| path_in(""))
}

/// The host pid of the process in pid namespace `pid_namespace` that listens on the unix socket
/// bound at `path`, if one does.
pub fn listener_of(path: &str, pid_namespace: u64) -> Result<Option<u32>, Error> {
    let table = std::fs::read_to_string("/proc/net/unix")
        .map_err(|source| Error::Proc { path: "/proc/net/unix".into(), source })?;
    let inodes = listening_inodes(&table, path);
    if inodes.is_empty() {
        return Ok(None);
    }
    let wanted: Vec<String> = inodes.iter().map(|inode| format!("socket:[{inode}]")).collect();
    for process in Process::all()? {
        if process.pid_namespace != pid_namespace {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", process.pid)) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|socket| target.as_os_str() == socket.as_str()))
        });
        if holds {
            return Ok(Some(process.pid));
        }
    }
    Ok(None)
}

/// The inodes of listening sockets bound at `path`, from the text of `/proc/net/unix`
/// (`Num RefCount Protocol Flags Type St Inode Path`; flag `0x10000` is `__SO_ACCEPTCON`).
fn listening_inodes(table: &str, path: &str) -> Vec<u64> {
    const ACCEPTING: u32 = 0x10000;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let inode = fields.get(6)?.parse().ok()?;
            (fields.get(7) == Some(&path) && flags & ACCEPTING != 0).then_some(inode)
        })
        .collect()
}

/// A process's memory, from `/proc/PID/smaps_rollup`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size: every page it maps that is in memory, shared ones in full.
    pub rss_kib: u64,
    /// Proportional set size: each page divided by the number of processes mapping it.
    pub pss_kib: u64,
    /// Anonymous memory (heap, stacks): not backed by a file, so not reclaimable without swap.
    pub anonymous_kib: u64,
}

impl Memory {
    /// Reads process `pid`'s memory; `None` if it is gone.
    pub fn of(pid: u32) -> Option<Memory> {
        parse_smaps_rollup(&std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?)
    }
}

impl std::ops::Add for Memory {
    type Output = Memory;

    fn add(self, other: Memory) -> Memory {
        Memory {
            rss_kib: self.rss_kib + other.rss_kib,
            pss_kib: self.pss_kib + other.pss_kib,
            anonymous_kib: self.anonymous_kib + other.anonymous_kib,
        }
    }
}

impl std::iter::Sum for Memory {
    fn sum<I: Iterator<Item = Memory>>(iter: I) -> Memory {
        iter.fold(Memory::default(), std::ops::Add::add)
    }
}

fn parse_smaps_rollup(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?.trim();
            value.strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(Memory { rss_kib: field("Rss")?, pss_kib: field("Pss")?, anonymous_kib: field("Anonymous")? })
}

/// CPU time a process used, with that of the children it has waited for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// User + system time of the process itself.
    pub own: Duration,
    /// User + system time of its reaped children (`cutime` + `cstime`).
    pub children: Duration,
}

impl CpuTime {
    /// Reads process `pid`'s CPU time; `None` if it is gone.
    pub fn of(pid: u32) -> Option<CpuTime> {
        parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?, clock_ticks_per_second())
    }

    /// Both together.
    pub fn total(&self) -> Duration {
        self.own + self.children
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the times in `/proc/PID/stat` (proc(5)).
/// The kernel's clock ticks per second, in which it counts CPU time.
pub fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|ticks| u64::try_from(ticks).ok())
        .unwrap_or(100)
}

/// CPU times from the text of `/proc/PID/stat`. The command name (field 2) is in parentheses
/// and may hold spaces, so fields are counted from the last `)`: state is field 3, `utime`,
/// `stime`, `cutime`, `cstime` are fields 14 to 17 (proc(5)).
fn parse_stat(stat: &str, ticks_per_second: u64) -> Option<CpuTime> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    let to_duration = |ticks: u64| Duration::from_micros(ticks * 1_000_000 / ticks_per_second.max(1));
    Some(CpuTime { own: to_duration(ticks(14)? + ticks(15)?), children: to_duration(ticks(16)? + ticks(17)?) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_parent_and_pids_in_every_namespace() {
        let status = "Name:\tsleep\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t29130\nNSpid:\t4242\t57\t1\n";
        assert_eq!(parse_status(status), Some((29130, vec![4242, 57, 1])));
    }

    #[test]
    fn status_without_nspid_is_unreadable() {
        assert_eq!(parse_status("Name:\tsleep\nPPid:\t1\n"), None);
    }

    #[test]
    fn namespace_link_gives_its_inode() {
        assert_eq!(namespace_inode(Path::new("pid:[4026532178]")), Some(4026532178));
        assert_eq!(namespace_inode(Path::new("garbage")), None);
    }

    #[test]
    fn systemd_cgroup_is_the_named_hierarchy_on_hybrid_hosts_and_the_unified_one_otherwise() {
        let hybrid =
            "4:memory:/system.slice/a.service\n9:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n";
        assert_eq!(systemd_cgroup(hybrid).as_deref(), Some("/system.slice/a.service"));
        assert_eq!(systemd_cgroup("0::/system.slice/b.service\n").as_deref(), Some("/system.slice/b.service"));
        assert_eq!(systemd_cgroup("4:memory:/\n"), None);
    }

    #[test]
    fn smaps_rollup_gives_rss_pss_and_anonymous_memory() {
        let text = "55a112aaf000-7ffc9de74000 ---p 00000000 00:00 0 [rollup]\nRss:               19928 kB\n\
                    Pss:               18184 kB\nPss_Anon:           2416 kB\nAnonymous:          2416 kB\n";
        assert_eq!(
            parse_smaps_rollup(text),
            Some(Memory { rss_kib: 19928, pss_kib: 18184, anonymous_kib: 2416 }),
            "Pss_Anon must not be taken for Pss"
        );
    }

    #[test]
    fn stat_counts_fields_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 1 0 5 1000 100";
        let cpu = parse_stat(stat, 100).expect("parses");
        assert_eq!(cpu.own, Duration::from_millis(3000));
        assert_eq!(cpu.children, Duration::from_millis(500));
    }

    #[test]
    fn listening_sockets_are_found_by_exact_path() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000032e52920: 00000003 00000000 00000000 0001 03 527582 /run/containerd/containerd.sock\n\
            00000000c41b5017: 00000002 00000000 00010000 0001 01 426865 /run/containerd/containerd.sock.ttrpc\n\
            00000000fdb7c70e: 00000002 00000000 00010000 0001 01 426868 /run/containerd/containerd.sock\n\
            000000007400f896: 00000003 00000000 00000000 0001 03 555693\n";
        assert_eq!(listening_inodes(table, "/run/containerd/containerd.sock"), vec![426868]);
        assert_eq!(listening_inodes(table, "/run/other.sock"), Vec::<u64>::new());
    }

    #[test]
    fn program_and_flags_come_from_argv() {
        let process = Process {
            pid: 1,
            ppid: 0,
            nspid: vec![1],
            pid_namespace: 1,
            cmdline: ["/usr/bin/containerd-shim-runc-v2", "-namespace", "bench-x", "-id", "a"]
                .map(str::to_string)
                .to_vec(),
            cgroup: "/".into(),
        };
        assert_eq!(process.program(), "containerd-shim-runc-v2");
        assert_eq!(process.flag("-namespace"), Some("bench-x"));
        assert_eq!(process.flag("-id"), Some("a"));
        assert_eq!(process.flag("-address"), None);
    }
}
