//! cgroup v2 metrics (`io.containerd.cgroups.v2.Metrics`) from one unified-hierarchy directory,
//! per the kernel's Documentation/admin-guide/cgroup-v2.rst and containerd/cgroups' `cgroup2`
//! conventions (a `max` limit reads as `u64::MAX`).

use std::path::Path;

use containerd_shim_protos::cgroups_v2::metrics::{
    CPUStat, HugeTlbStat, IOEntry, IOStat, MemoryEvents, MemoryStat, Metrics, PSIData, PSIStats, PidsStat,
};
use containerd_shim_protos::protobuf::MessageField;

use crate::cgroup::files::{
    ensure_dir, names_between, parse_device, parse_number, parse_u64, read_keyed, read_limit_or_zero, read_optional,
    read_u64_or_zero, Keyed,
};
use crate::cgroup::CgroupError;

/// Reads the v2 directory's metrics. Controllers not enabled for the cgroup have no interface
/// files there and leave their message unset.
pub(super) fn read(dir: &Path) -> Result<Metrics, CgroupError> {
    ensure_dir(dir)?;
    let mut metrics = Metrics::new();
    if let Some(current) = read_optional(&dir.join("pids.current"))? {
        metrics.pids = MessageField::some(PidsStat {
            current: parse_u64(&dir.join("pids.current"), &current)?,
            limit: read_limit_or_zero(&dir.join("pids.max"), u64::MAX)?,
            ..Default::default()
        });
    }
    metrics.cpu = MessageField::some(cpu(dir)?);
    if let Some(current) = read_optional(&dir.join("memory.current"))? {
        metrics.memory = MessageField::some(memory(dir, parse_u64(&dir.join("memory.current"), &current)?)?);
    }
    if let Some(text) = read_optional(&dir.join("memory.events"))? {
        metrics.memory_events = MessageField::some(memory_events(&dir.join("memory.events"), &text)?);
    }
    let io_stat = dir.join("io.stat");
    let usage = match read_optional(&io_stat)? {
        Some(text) => Some(parse_io_stat(&io_stat, &text)?),
        None => None,
    };
    let io_psi = psi(&dir.join("io.pressure"))?;
    if usage.is_some() || io_psi.is_some() {
        metrics.io =
            MessageField::some(IOStat { usage: usage.unwrap_or_default(), psi: io_psi.into(), ..Default::default() });
    }
    metrics.hugetlb = hugetlb(dir)?;
    Ok(metrics)
}

/// `cpu.stat` exists in every v2 cgroup; the throttling keys only with the cpu controller.
fn cpu(dir: &Path) -> Result<CPUStat, CgroupError> {
    let stat = read_keyed(&dir.join("cpu.stat"))?;
    Ok(CPUStat {
        usage_usec: stat.get("usage_usec"),
        user_usec: stat.get("user_usec"),
        system_usec: stat.get("system_usec"),
        nr_periods: stat.get("nr_periods"),
        nr_throttled: stat.get("nr_throttled"),
        throttled_usec: stat.get("throttled_usec"),
        nr_bursts: stat.get("nr_bursts"),
        burst_usec: stat.get("burst_usec"),
        psi: psi(&dir.join("cpu.pressure"))?.into(),
        ..Default::default()
    })
}

fn memory(dir: &Path, usage: u64) -> Result<MemoryStat, CgroupError> {
    let stat = read_keyed(&dir.join("memory.stat"))?;
    Ok(MemoryStat {
        anon: stat.get("anon"),
        file: stat.get("file"),
        kernel_stack: stat.get("kernel_stack"),
        slab: stat.get("slab"),
        sock: stat.get("sock"),
        shmem: stat.get("shmem"),
        file_mapped: stat.get("file_mapped"),
        file_dirty: stat.get("file_dirty"),
        file_writeback: stat.get("file_writeback"),
        anon_thp: stat.get("anon_thp"),
        inactive_anon: stat.get("inactive_anon"),
        active_anon: stat.get("active_anon"),
        inactive_file: stat.get("inactive_file"),
        active_file: stat.get("active_file"),
        unevictable: stat.get("unevictable"),
        slab_reclaimable: stat.get("slab_reclaimable"),
        slab_unreclaimable: stat.get("slab_unreclaimable"),
        pgfault: stat.get("pgfault"),
        pgmajfault: stat.get("pgmajfault"),
        workingset_refault: split_since_5_9(&stat, "workingset_refault"),
        workingset_activate: split_since_5_9(&stat, "workingset_activate"),
        workingset_nodereclaim: stat.get("workingset_nodereclaim"),
        pgrefill: stat.get("pgrefill"),
        pgscan: stat.get("pgscan"),
        pgsteal: stat.get("pgsteal"),
        pgactivate: stat.get("pgactivate"),
        pgdeactivate: stat.get("pgdeactivate"),
        pglazyfree: stat.get("pglazyfree"),
        pglazyfreed: stat.get("pglazyfreed"),
        thp_fault_alloc: stat.get("thp_fault_alloc"),
        thp_collapse_alloc: stat.get("thp_collapse_alloc"),
        usage,
        usage_limit: read_limit_or_zero(&dir.join("memory.max"), u64::MAX)?,
        swap_usage: read_u64_or_zero(&dir.join("memory.swap.current"))?,
        swap_limit: read_limit_or_zero(&dir.join("memory.swap.max"), u64::MAX)?,
        // memory.peak and memory.swap.peak exist since Linux 5.19 and 6.5.
        max_usage: read_u64_or_zero(&dir.join("memory.peak"))?,
        swap_max_usage: read_u64_or_zero(&dir.join("memory.swap.peak"))?,
        psi: psi(&dir.join("memory.pressure"))?.into(),
        ..Default::default()
    })
}

/// Linux 5.9 split some memory.stat counters into `<key>_anon` and `<key>_file`; the proto has
/// only the sum.
fn split_since_5_9(stat: &Keyed, key: &str) -> u64 {
    stat.find(key).unwrap_or_else(|| stat.get(&format!("{key}_anon")).saturating_add(stat.get(&format!("{key}_file"))))
}

fn memory_events(path: &Path, text: &str) -> Result<MemoryEvents, CgroupError> {
    let events = crate::cgroup::files::parse_keyed(path, text)?;
    Ok(MemoryEvents {
        low: events.get("low"),
        high: events.get("high"),
        max: events.get("max"),
        oom: events.get("oom"),
        oom_kill: events.get("oom_kill"),
        oom_group_kill: events.get("oom_group_kill"),
        ..Default::default()
    })
}

/// `io.stat`: `major:minor key=value…` per device; keys the proto lacks (dbytes, dios, …) are
/// skipped.
fn parse_io_stat(path: &Path, text: &str) -> Result<Vec<IOEntry>, CgroupError> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(device) = words.next() else { continue };
        let (major, minor) = parse_device(path, device)?;
        let mut entry = IOEntry { major, minor, ..Default::default() };
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(CgroupError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("{word:?} is not `key=value`"),
                });
            };
            let slot = match key {
                "rbytes" => &mut entry.rbytes,
                "wbytes" => &mut entry.wbytes,
                "rios" => &mut entry.rios,
                "wios" => &mut entry.wios,
                _ => continue,
            };
            *slot = parse_number(path, value)?;
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// A pressure file (`some avg10=… avg60=… avg300=… total=…`, and a `full` line); `None` if the
/// file is absent or PSI is disabled.
fn psi(path: &Path) -> Result<Option<PSIStats>, CgroupError> {
    match read_optional(path)? {
        Some(text) => parse_psi(path, &text).map(Some),
        None => Ok(None),
    }
}

fn parse_psi(path: &Path, text: &str) -> Result<PSIStats, CgroupError> {
    let malformed =
        |what: &str| CgroupError::Parse { path: path.to_path_buf(), reason: format!("{what:?} is not PSI data") };
    let mut stats = PSIStats::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            None => continue,
            Some("some") => &mut stats.some,
            Some("full") => &mut stats.full,
            Some(_) => return Err(malformed(line)),
        };
        let mut data = PSIData::new();
        for word in words {
            let (key, value) = word.split_once('=').ok_or_else(|| malformed(word))?;
            let average = || value.parse::<f64>().map_err(|_| malformed(word));
            match key {
                "avg10" => data.avg10 = average()?,
                "avg60" => data.avg60 = average()?,
                "avg300" => data.avg300 = average()?,
                "total" => data.total = parse_number(path, value)?,
                _ => {}
            }
        }
        *slot = MessageField::some(data);
    }
    Ok(stats)
}

/// One entry per huge page size with files here (`hugetlb.2MB.current`, …).
fn hugetlb(dir: &Path) -> Result<Vec<HugeTlbStat>, CgroupError> {
    names_between(dir, "hugetlb.", ".current")?
        .into_iter()
        .map(|size| {
            let file = |name: &str| dir.join(format!("hugetlb.{size}.{name}"));
            Ok(HugeTlbStat {
                current: read_u64_or_zero(&file("current"))?,
                max: read_limit_or_zero(&file("max"), u64::MAX)?,
                // `events` is flat keyed; `max` counts allocations refused by the limit.
                failcnt: read_keyed(&file("events"))?.get("max"),
                pagesize: size,
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::test_support::ScratchDir;

    fn fake_v2_dir(root: &ScratchDir) -> std::path::PathBuf {
        for (name, contents) in [
            ("pids.current", "4\n"),
            ("pids.max", "max\n"),
            (
                "cpu.stat",
                "usage_usec 5000000\nuser_usec 3000000\nsystem_usec 2000000\ncore_sched.force_idle_usec 0\n\
                 nr_periods 10\nnr_throttled 2\nthrottled_usec 40000\nnr_bursts 1\nburst_usec 500\n",
            ),
            ("cpu.pressure", "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=789\n"),
            ("memory.current", "104857600\n"),
            ("memory.max", "268435456\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "max\n"),
            ("memory.peak", "134217728\n"),
            (
                "memory.stat",
                "anon 83886080\nfile 16777216\nkernel 2097152\nkernel_stack 65536\npagetables 131072\nsec_pagetables 0\n\
                 percpu 0\nsock 4096\nvmalloc 0\nshmem 8192\nzswap 0\nzswapped 0\nfile_mapped 1048576\n\
                 file_dirty 4096\nfile_writeback 0\nswapcached 0\nanon_thp 2097152\nfile_thp 0\nshmem_thp 0\n\
                 inactive_anon 83000000\nactive_anon 886080\ninactive_file 8388608\nactive_file 8388608\n\
                 unevictable 0\nslab_reclaimable 500000\nslab_unreclaimable 300000\nslab 800000\n\
                 workingset_refault_anon 3\nworkingset_refault_file 4\nworkingset_activate_anon 1\n\
                 workingset_activate_file 2\nworkingset_restore_anon 0\nworkingset_restore_file 0\n\
                 workingset_nodereclaim 5\npgscan 60\npgsteal 50\npgscan_kswapd 0\npgrefill 6\npgfault 7000\n\
                 pgmajfault 70\npgactivate 8\npgdeactivate 9\npglazyfree 10\npglazyfreed 11\n\
                 thp_fault_alloc 12\nthp_collapse_alloc 13\n",
            ),
            ("memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=41\n"),
            ("memory.events", "low 0\nhigh 1\nmax 20\noom 3\noom_kill 2\noom_group_kill 1\n"),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:1 rbytes=10 wbytes=20 rios=3 wios=4 dbytes=0 dios=0\n"),
            ("io.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=6\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.events", "max 3\n"),
            ("hugetlb.2MB.rsvd.current", "0\n"),
        ] {
            root.write(&format!("c/{name}"), contents);
        }
        root.path().join("c")
    }

    #[test]
    fn v2_metrics_carry_the_values_of_the_interface_files() {
        let root = ScratchDir::new("v2-metrics");
        let metrics = read(&fake_v2_dir(&root)).expect("read metrics");

        assert_eq!((metrics.pids.current, metrics.pids.limit), (4, u64::MAX), "pids (max reads as u64::MAX)");

        let cpu = &metrics.cpu;
        assert_eq!((cpu.usage_usec, cpu.user_usec, cpu.system_usec), (5_000_000, 3_000_000, 2_000_000));
        assert_eq!(
            (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec, cpu.nr_bursts, cpu.burst_usec),
            (10, 2, 40_000, 1, 500)
        );
        assert_eq!((cpu.psi.some.avg10, cpu.psi.some.avg60, cpu.psi.some.total), (1.5, 0.25, 123_456));
        assert_eq!(cpu.psi.full.total, 789);

        let memory = &metrics.memory;
        assert_eq!((memory.usage, memory.usage_limit, memory.max_usage), (104_857_600, 268_435_456, 134_217_728));
        assert_eq!((memory.swap_usage, memory.swap_limit, memory.swap_max_usage), (0, u64::MAX, 0));
        assert_eq!(
            (memory.anon, memory.file, memory.kernel_stack, memory.slab, memory.sock, memory.shmem),
            (83_886_080, 16_777_216, 65_536, 800_000, 4096, 8192)
        );
        assert_eq!(
            (memory.file_mapped, memory.file_dirty, memory.file_writeback, memory.anon_thp),
            (1_048_576, 4096, 0, 2_097_152)
        );
        assert_eq!(
            (memory.inactive_anon, memory.active_anon, memory.inactive_file, memory.active_file),
            (83_000_000, 886_080, 8_388_608, 8_388_608)
        );
        assert_eq!((memory.slab_reclaimable, memory.slab_unreclaimable), (500_000, 300_000));
        assert_eq!(
            (memory.workingset_refault, memory.workingset_activate, memory.workingset_nodereclaim),
            (7, 3, 5),
            "anon+file sums"
        );
        assert_eq!(
            (memory.pgfault, memory.pgmajfault, memory.pgrefill, memory.pgscan, memory.pgsteal),
            (7000, 70, 6, 60, 50)
        );
        assert_eq!((memory.pgactivate, memory.pgdeactivate, memory.pglazyfree, memory.pglazyfreed), (8, 9, 10, 11));
        assert_eq!((memory.thp_fault_alloc, memory.thp_collapse_alloc), (12, 13));
        assert_eq!((memory.psi.some.total, memory.psi.full.total), (42, 41));

        let events = &metrics.memory_events;
        assert_eq!(
            (events.low, events.high, events.max, events.oom, events.oom_kill, events.oom_group_kill),
            (0, 1, 20, 3, 2, 1)
        );

        let io: Vec<_> =
            metrics.io.usage.iter().map(|e| (e.major, e.minor, e.rbytes, e.wbytes, e.rios, e.wios)).collect();
        assert_eq!(io, vec![(8, 0, 4096, 8192, 1, 2), (259, 1, 10, 20, 3, 4)]);
        assert_eq!(metrics.io.psi.some.total, 7);

        let hugetlb: Vec<_> =
            metrics.hugetlb.iter().map(|h| (h.pagesize.as_str(), h.current, h.max, h.failcnt)).collect();
        assert_eq!(hugetlb, vec![("2MB", 2_097_152, u64::MAX, 3)]);
    }

    #[test]
    fn controllers_not_enabled_leave_their_messages_unset() {
        // A cgroup whose parent enables no controllers: only the core files.
        let root = ScratchDir::new("v2-bare");
        root.write("c/cgroup.procs", "");
        root.write("c/cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n");
        let metrics = read(&root.path().join("c")).expect("read metrics");
        assert!(metrics.pids.is_none());
        assert!(metrics.memory.is_none());
        assert!(metrics.memory_events.is_none());
        assert!(metrics.io.is_none());
        assert!(metrics.hugetlb.is_empty());
        assert_eq!((metrics.cpu.usage_usec, metrics.cpu.nr_throttled), (10, 0));
        assert!(metrics.cpu.psi.is_none());
    }

    #[test]
    fn malformed_v2_files_are_parse_errors() {
        let path = Path::new("/fake/file");
        assert!(matches!(parse_io_stat(path, "8:0 rbytes\n"), Err(CgroupError::Parse { .. })), "io key without value");
        assert!(
            matches!(parse_io_stat(path, "8:0 rbytes=x\n"), Err(CgroupError::Parse { .. })),
            "io value not a number"
        );
        assert!(matches!(parse_psi(path, "most avg10=0.00\n"), Err(CgroupError::Parse { .. })), "psi unknown line");
        assert!(
            matches!(parse_psi(path, "some avg10=high\n"), Err(CgroupError::Parse { .. })),
            "psi average not a float"
        );
    }
}
