//! cgroup v1 metrics (`io.containerd.cgroups.v1.Metrics`), one controller hierarchy at a time,
//! with the field meanings of containerd/cgroups' `cgroup1` package and the kernel's
//! Documentation/admin-guide/cgroup-v1/ (memory.rst, cpuacct.rst, blkio-controller.rst,
//! pids.rst, hugetlb.rst).

use std::path::Path;

use containerd_shim_protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryOomControl, MemoryStat, Metrics,
    PidsStat, Throttle,
};
use containerd_shim_protos::protobuf::MessageField;

use crate::cgroup::files::{
    ensure_dir, names_between, parse_device, parse_number, parse_u64, read_keyed, read_limit_or_zero, read_optional,
    read_u64_or_zero,
};
use crate::cgroup::{CgroupError, ContainerCgroups};

/// The unit of `cpuacct.stat`. USER_HZ is fixed at 100 in the kernel ABI on every
/// architecture we run on (it is what `sysconf(_SC_CLK_TCK)` returns).
const USER_HZ: u64 = 100;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Reads every mounted controller's metrics. A controller whose hierarchy is not mounted leaves
/// its message unset; one whose directory is missing is an error.
pub(super) fn read(cgroups: &ContainerCgroups) -> Result<Metrics, CgroupError> {
    let mut metrics = Metrics::new();
    if let Some(dir) = controller_dir(cgroups, "pids")? {
        metrics.pids = MessageField::some(pids(dir)?);
    }
    let cpuacct = controller_dir(cgroups, "cpuacct")?;
    let cpu = controller_dir(cgroups, "cpu")?;
    if cpuacct.is_some() || cpu.is_some() {
        let mut stat = CPUStat::new();
        if let Some(dir) = cpuacct {
            stat.usage = MessageField::some(cpu_usage(dir)?);
        }
        if let Some(dir) = cpu {
            stat.throttling = MessageField::some(throttling(dir)?);
        }
        metrics.cpu = MessageField::some(stat);
    }
    if let Some(dir) = controller_dir(cgroups, "memory")? {
        metrics.memory = MessageField::some(memory(dir)?);
        metrics.memory_oom_control = MessageField::some(oom_control(dir)?);
    }
    if let Some(dir) = controller_dir(cgroups, "blkio")? {
        metrics.blkio = MessageField::some(blkio(dir)?);
    }
    if let Some(dir) = controller_dir(cgroups, "hugetlb")? {
        metrics.hugetlb = hugetlb(dir)?;
    }
    Ok(metrics)
}

/// The controller's directory if its hierarchy is mounted; an error if it should exist but
/// does not.
fn controller_dir<'a>(cgroups: &'a ContainerCgroups, controller: &str) -> Result<Option<&'a Path>, CgroupError> {
    let Some(dir) = cgroups.v1_dir(controller) else { return Ok(None) };
    ensure_dir(dir)?;
    Ok(Some(dir))
}

fn pids(dir: &Path) -> Result<PidsStat, CgroupError> {
    Ok(PidsStat {
        current: read_u64_or_zero(&dir.join("pids.current"))?,
        // containerd reports an unlimited v1 `pids.max` ("max") as 0.
        limit: read_limit_or_zero(&dir.join("pids.max"), 0)?,
        ..Default::default()
    })
}

/// cpuacct: all times in nanoseconds.
fn cpu_usage(dir: &Path) -> Result<CPUUsage, CgroupError> {
    let per_cpu_path = dir.join("cpuacct.usage_percpu");
    let per_cpu = match read_optional(&per_cpu_path)? {
        Some(text) => {
            text.split_whitespace().map(|word| parse_number(&per_cpu_path, word)).collect::<Result<_, _>>()?
        }
        None => Vec::new(),
    };
    // cpuacct.usage_user/usage_sys (Linux 4.15+) are in nanoseconds; cpuacct.stat, which
    // containerd reads, has the same split in USER_HZ ticks.
    let user_path = dir.join("cpuacct.usage_user");
    let sys_path = dir.join("cpuacct.usage_sys");
    let (user, kernel) = match (read_optional(&user_path)?, read_optional(&sys_path)?) {
        (Some(user), Some(sys)) => (parse_u64(&user_path, &user)?, parse_u64(&sys_path, &sys)?),
        _ => {
            let stat = read_keyed(&dir.join("cpuacct.stat"))?;
            let nanos = |ticks: u64| ticks.saturating_mul(NANOS_PER_SECOND / USER_HZ);
            (nanos(stat.get("user")), nanos(stat.get("system")))
        }
    };
    Ok(CPUUsage { total: read_u64_or_zero(&dir.join("cpuacct.usage"))?, kernel, user, per_cpu, ..Default::default() })
}

/// cpu: CFS bandwidth throttling, `throttled_time` in nanoseconds.
fn throttling(dir: &Path) -> Result<Throttle, CgroupError> {
    let stat = read_keyed(&dir.join("cpu.stat"))?;
    Ok(Throttle {
        periods: stat.get("nr_periods"),
        throttled_periods: stat.get("nr_throttled"),
        throttled_time: stat.get("throttled_time"),
        ..Default::default()
    })
}

fn memory(dir: &Path) -> Result<MemoryStat, CgroupError> {
    let stat = read_keyed(&dir.join("memory.stat"))?;
    Ok(MemoryStat {
        cache: stat.get("cache"),
        rss: stat.get("rss"),
        rss_huge: stat.get("rss_huge"),
        mapped_file: stat.get("mapped_file"),
        dirty: stat.get("dirty"),
        writeback: stat.get("writeback"),
        pg_pg_in: stat.get("pgpgin"),
        pg_pg_out: stat.get("pgpgout"),
        pg_fault: stat.get("pgfault"),
        pg_maj_fault: stat.get("pgmajfault"),
        inactive_anon: stat.get("inactive_anon"),
        active_anon: stat.get("active_anon"),
        inactive_file: stat.get("inactive_file"),
        active_file: stat.get("active_file"),
        unevictable: stat.get("unevictable"),
        hierarchical_memory_limit: stat.get("hierarchical_memory_limit"),
        hierarchical_swap_limit: stat.get("hierarchical_memsw_limit"),
        total_cache: stat.get("total_cache"),
        total_rss: stat.get("total_rss"),
        total_rss_huge: stat.get("total_rss_huge"),
        total_mapped_file: stat.get("total_mapped_file"),
        total_dirty: stat.get("total_dirty"),
        total_writeback: stat.get("total_writeback"),
        total_pg_pg_in: stat.get("total_pgpgin"),
        total_pg_pg_out: stat.get("total_pgpgout"),
        total_pg_fault: stat.get("total_pgfault"),
        total_pg_maj_fault: stat.get("total_pgmajfault"),
        total_inactive_anon: stat.get("total_inactive_anon"),
        total_active_anon: stat.get("total_active_anon"),
        total_inactive_file: stat.get("total_inactive_file"),
        total_active_file: stat.get("total_active_file"),
        total_unevictable: stat.get("total_unevictable"),
        usage: MessageField::some(memory_entry(dir, "memory")?),
        // memsw counts memory plus swap; absent without swap accounting.
        swap: MessageField::some(memory_entry(dir, "memory.memsw")?),
        kernel: MessageField::some(memory_entry(dir, "memory.kmem")?),
        kernel_tcp: MessageField::some(memory_entry(dir, "memory.kmem.tcp")?),
        ..Default::default()
    })
}

/// `<prefix>.usage_in_bytes`, `.limit_in_bytes`, `.max_usage_in_bytes` and `.failcnt`.
fn memory_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let value = |name: &str| read_u64_or_zero(&dir.join(format!("{prefix}.{name}")));
    Ok(MemoryEntry {
        limit: value("limit_in_bytes")?,
        usage: value("usage_in_bytes")?,
        max: value("max_usage_in_bytes")?,
        failcnt: value("failcnt")?,
        ..Default::default()
    })
}

/// `memory.oom_control`; its `oom_kill` line exists since Linux 4.13.
fn oom_control(dir: &Path) -> Result<MemoryOomControl, CgroupError> {
    let control = read_keyed(&dir.join("memory.oom_control"))?;
    Ok(MemoryOomControl {
        oom_kill_disable: control.get("oom_kill_disable"),
        under_oom: control.get("under_oom"),
        oom_kill: control.get("oom_kill"),
        ..Default::default()
    })
}

fn blkio(dir: &Path) -> Result<BlkIOStat, CgroupError> {
    let entries = |name: &str| blkio_entries(&dir.join(format!("blkio.{name}")));
    let mut stat = BlkIOStat {
        io_service_bytes_recursive: entries("io_service_bytes_recursive")?,
        io_serviced_recursive: entries("io_serviced_recursive")?,
        io_queued_recursive: entries("io_queued_recursive")?,
        io_service_time_recursive: entries("io_service_time_recursive")?,
        io_wait_time_recursive: entries("io_wait_time_recursive")?,
        io_merged_recursive: entries("io_merged_recursive")?,
        io_time_recursive: entries("time_recursive")?,
        sectors_recursive: entries("sectors_recursive")?,
        ..Default::default()
    };
    // Those files came with the CFQ scheduler (gone since Linux 5.0). Without them, the
    // throttle policy's counters (kept for all I/O) give bytes and operations, which is what
    // containerd falls back to as well.
    if stat.io_service_bytes_recursive.is_empty() && stat.io_serviced_recursive.is_empty() {
        stat.io_service_bytes_recursive = entries("throttle.io_service_bytes_recursive")?;
        stat.io_serviced_recursive = entries("throttle.io_serviced_recursive")?;
    }
    Ok(stat)
}

fn blkio_entries(path: &Path) -> Result<Vec<BlkIOEntry>, CgroupError> {
    match read_optional(path)? {
        Some(text) => parse_blkio(path, &text),
        None => Ok(Vec::new()),
    }
}

/// Lines are `major:minor op value` (`op` one of Read, Write, Sync, Async, Discard, Total) or
/// `major:minor value`; a final `Total value` sums all devices and is left out.
fn parse_blkio(path: &Path, text: &str) -> Result<Vec<BlkIOEntry>, CgroupError> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (device, op, value) = match words.as_slice() {
            [] | ["Total", _] => continue,
            [device, value] => (*device, "", *value),
            [device, op, value] => (*device, *op, *value),
            _ => {
                return Err(CgroupError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("line {line:?} is not `major:minor [op] value`"),
                })
            }
        };
        let (major, minor) = parse_device(path, device)?;
        entries.push(BlkIOEntry {
            op: op.to_string(),
            major,
            minor,
            value: parse_number(path, value)?,
            ..Default::default()
        });
    }
    Ok(entries)
}

/// One entry per huge page size the kernel has files for (`hugetlb.2MB.usage_in_bytes`, …).
fn hugetlb(dir: &Path) -> Result<Vec<HugetlbStat>, CgroupError> {
    names_between(dir, "hugetlb.", ".usage_in_bytes")?
        .into_iter()
        .map(|size| {
            let value = |name: &str| read_u64_or_zero(&dir.join(format!("hugetlb.{size}.{name}")));
            Ok(HugetlbStat {
                usage: value("usage_in_bytes")?,
                max: value("max_usage_in_bytes")?,
                failcnt: value("failcnt")?,
                pagesize: size,
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::cgroup::test_support::ScratchDir;

    const C: &str = "system.slice/containerd-default-foo.service/container";

    /// A fake v1 tree with each controller's files for one container, values as a 6.x kernel
    /// writes them.
    fn fake_v1_tree(root: &ScratchDir) -> ContainerCgroups {
        for (name, contents) in [
            ("pids/pids.current", "7\n"),
            ("pids/pids.max", "max\n"),
            ("cpuacct/cpuacct.usage", "123456789\n"),
            ("cpuacct/cpuacct.usage_percpu", "100000000 23456789 \n"),
            ("cpuacct/cpuacct.usage_user", "90000000\n"),
            ("cpuacct/cpuacct.usage_sys", "30000000\n"),
            ("cpuacct/cpuacct.stat", "user 9\nsystem 3\n"),
            ("cpu/cpu.stat", "nr_periods 50\nnr_throttled 5\nthrottled_time 2500000\nnr_bursts 0\nburst_time 0\n"),
            ("memory/memory.usage_in_bytes", "52428800\n"),
            ("memory/memory.limit_in_bytes", "104857600\n"),
            ("memory/memory.max_usage_in_bytes", "73400320\n"),
            ("memory/memory.failcnt", "3\n"),
            ("memory/memory.memsw.usage_in_bytes", "52432896\n"),
            ("memory/memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory/memory.kmem.usage_in_bytes", "1048576\n"),
            ("memory/memory.kmem.tcp.failcnt", "0\n"),
            (
                "memory/memory.stat",
                "cache 20480000\nrss 31457280\nrss_huge 2097152\nshmem 0\nmapped_file 4096000\ndirty 8192\n\
                 writeback 0\nswap 0\npgpgin 1000\npgpgout 500\npgfault 2000\npgmajfault 10\n\
                 inactive_anon 1024\nactive_anon 31456256\ninactive_file 10240000\nactive_file 10240000\n\
                 unevictable 0\nhierarchical_memory_limit 104857600\nhierarchical_memsw_limit 9223372036854771712\n\
                 total_cache 20480001\ntotal_rss 31457281\ntotal_rss_huge 2097153\ntotal_mapped_file 4096001\n\
                 total_dirty 8193\ntotal_writeback 1\ntotal_pgpgin 1001\ntotal_pgpgout 501\ntotal_pgfault 2001\n\
                 total_pgmajfault 11\ntotal_inactive_anon 1025\ntotal_active_anon 31456257\n\
                 total_inactive_file 10240001\ntotal_active_file 10240002\ntotal_unevictable 1\n",
            ),
            ("memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            ("blkio/blkio.throttle.io_service_bytes_recursive", "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n"),
            ("blkio/blkio.throttle.io_serviced_recursive", "8:0 Read 1\n8:0 Write 2\nTotal 3\n"),
            ("hugetlb/hugetlb.2MB.usage_in_bytes", "4194304\n"),
            ("hugetlb/hugetlb.2MB.max_usage_in_bytes", "6291456\n"),
            ("hugetlb/hugetlb.2MB.failcnt", "1\n"),
            ("hugetlb/hugetlb.2MB.limit_in_bytes", "9223372036854771712\n"),
            ("hugetlb/hugetlb.2MB.rsvd.usage_in_bytes", "0\n"),
            ("hugetlb/hugetlb.1GB.usage_in_bytes", "0\n"),
        ] {
            let (controller, file) = name.split_once('/').expect("controller/file");
            root.write(&format!("{controller}/{C}/{file}"), contents);
        }
        let dir = |controller: &str| (controller.to_string(), root.path().join(controller).join(C));
        ContainerCgroups::v1(format!("/{C}"), ["pids", "cpuacct", "cpu", "memory", "blkio", "hugetlb"].map(dir))
    }

    #[test]
    fn v1_metrics_carry_the_values_of_each_controllers_files() {
        let root = ScratchDir::new("v1-metrics");
        let metrics = read(&fake_v1_tree(&root)).expect("read metrics");

        assert_eq!((metrics.pids.current, metrics.pids.limit), (7, 0), "pids (max reads as 0)");

        let usage = &metrics.cpu.usage;
        assert_eq!(usage.total, 123_456_789);
        assert_eq!(usage.per_cpu, vec![100_000_000, 23_456_789]);
        assert_eq!((usage.user, usage.kernel), (90_000_000, 30_000_000), "nanosecond files win over ticks");
        let throttling = &metrics.cpu.throttling;
        assert_eq!((throttling.periods, throttling.throttled_periods, throttling.throttled_time), (50, 5, 2_500_000));

        let memory = &metrics.memory;
        assert_eq!(
            (memory.usage.usage, memory.usage.limit, memory.usage.max, memory.usage.failcnt),
            (52_428_800, 104_857_600, 73_400_320, 3)
        );
        assert_eq!((memory.swap.usage, memory.swap.limit), (52_432_896, 9_223_372_036_854_771_712));
        assert_eq!(memory.kernel.usage, 1_048_576);
        assert_eq!(memory.kernel_tcp.failcnt, 0);
        assert_eq!(
            (memory.cache, memory.rss, memory.rss_huge, memory.mapped_file),
            (20_480_000, 31_457_280, 2_097_152, 4_096_000)
        );
        assert_eq!((memory.dirty, memory.writeback, memory.pg_pg_in, memory.pg_pg_out), (8192, 0, 1000, 500));
        assert_eq!((memory.pg_fault, memory.pg_maj_fault), (2000, 10));
        assert_eq!(
            (memory.inactive_anon, memory.active_anon, memory.inactive_file, memory.active_file),
            (1024, 31_456_256, 10_240_000, 10_240_000)
        );
        assert_eq!(
            (memory.hierarchical_memory_limit, memory.hierarchical_swap_limit),
            (104_857_600, 9_223_372_036_854_771_712)
        );
        assert_eq!(
            (memory.total_cache, memory.total_rss, memory.total_rss_huge, memory.total_mapped_file),
            (20_480_001, 31_457_281, 2_097_153, 4_096_001)
        );
        assert_eq!(
            (memory.total_dirty, memory.total_writeback, memory.total_pg_pg_in, memory.total_pg_pg_out),
            (8193, 1, 1001, 501)
        );
        assert_eq!((memory.total_pg_fault, memory.total_pg_maj_fault, memory.total_unevictable), (2001, 11, 1));
        assert_eq!((memory.total_inactive_anon, memory.total_active_anon), (1025, 31_456_257));
        assert_eq!((memory.total_inactive_file, memory.total_active_file), (10_240_001, 10_240_002));

        let oom = &metrics.memory_oom_control;
        assert_eq!((oom.oom_kill_disable, oom.under_oom, oom.oom_kill), (0, 0, 2));

        let bytes: Vec<_> = metrics
            .blkio
            .io_service_bytes_recursive
            .iter()
            .map(|e| (e.major, e.minor, e.op.as_str(), e.value))
            .collect();
        assert_eq!(
            bytes,
            vec![
                (8, 0, "Read", 4096),
                (8, 0, "Write", 8192),
                (8, 0, "Sync", 12288),
                (8, 0, "Async", 0),
                (8, 0, "Discard", 0),
                (8, 0, "Total", 12288)
            ]
        );
        assert_eq!(metrics.blkio.io_serviced_recursive.len(), 2, "throttle counters used without CFQ files");

        let hugetlb: Vec<_> =
            metrics.hugetlb.iter().map(|h| (h.pagesize.as_str(), h.usage, h.max, h.failcnt)).collect();
        assert_eq!(hugetlb, vec![("1GB", 0, 0, 0), ("2MB", 4_194_304, 6_291_456, 1)]);
    }

    #[test]
    fn cpu_user_and_kernel_fall_back_to_cpuacct_stat_ticks() {
        let root = ScratchDir::new("v1-ticks");
        root.write("cpuacct/c/cpuacct.stat", "user 250\nsystem 4\n");
        let cgroups = ContainerCgroups::v1("/c", [("cpuacct".to_string(), root.path().join("cpuacct/c"))]);
        let metrics = read(&cgroups).expect("read metrics");
        assert_eq!((metrics.cpu.usage.user, metrics.cpu.usage.kernel), (2_500_000_000, 40_000_000));
    }

    #[test]
    fn cfq_blkio_files_are_used_when_present() {
        let root = ScratchDir::new("v1-cfq");
        root.write("blkio/c/blkio.io_service_bytes_recursive", "259:0 Read 10\n259:0 Write 20\nTotal 30\n");
        root.write("blkio/c/blkio.sectors_recursive", "259:0 64\n");
        root.write("blkio/c/blkio.throttle.io_service_bytes_recursive", "259:0 Read 999\n");
        let cgroups = ContainerCgroups::v1("/c", [("blkio".to_string(), root.path().join("blkio/c"))]);
        let blkio = read(&cgroups).expect("read metrics").blkio;
        let bytes: Vec<_> =
            blkio.io_service_bytes_recursive.iter().map(|e| (e.major, e.op.as_str(), e.value)).collect();
        assert_eq!(bytes, vec![(259, "Read", 10), (259, "Write", 20)]);
        let sectors: Vec<_> = blkio.sectors_recursive.iter().map(|e| (e.minor, e.op.as_str(), e.value)).collect();
        assert_eq!(sectors, vec![(0, "", 64)]);
    }

    #[test]
    fn missing_files_and_unmounted_controllers_leave_metrics_empty() {
        let root = ScratchDir::new("v1-empty");
        for controller in ["memory", "pids"] {
            std::fs::create_dir_all(root.path().join(controller).join("c")).expect("mkdir");
        }
        let cgroups =
            ContainerCgroups::v1("/c", ["memory", "pids"].map(|c| (c.to_string(), root.path().join(c).join("c"))));
        let metrics = read(&cgroups).expect("read metrics");
        assert_eq!((metrics.pids.current, metrics.pids.limit), (0, 0));
        assert_eq!(metrics.memory.usage.usage, 0);
        assert_eq!(metrics.memory.cache, 0);
        assert_eq!(metrics.memory_oom_control.oom_kill, 0);
        assert!(metrics.cpu.is_none(), "cpu and cpuacct are not mounted");
        assert!(metrics.blkio.is_none(), "blkio is not mounted");
        assert!(metrics.hugetlb.is_empty());
    }

    #[test]
    fn a_missing_controller_directory_is_an_error_naming_it() {
        let root = ScratchDir::new("v1-missing");
        root.write("memory/c/memory.usage_in_bytes", "1\n");
        let missing_pids = root.path().join("pids/c");
        let cgroups = ContainerCgroups::v1(
            "/c",
            [("memory".to_string(), root.path().join("memory/c")), ("pids".to_string(), missing_pids.clone())],
        );
        match read(&cgroups) {
            Err(CgroupError::CgroupNotFound { path }) => assert_eq!(path, missing_pids),
            other => panic!("expected CgroupNotFound, got {other:?}"),
        }
    }

    #[test]
    fn malformed_blkio_lines_are_parse_errors() {
        let path = PathBuf::from("/fake/blkio.io_serviced_recursive");
        for (name, text) in
            [("four words", "8:0 Read 1 2\n"), ("bad device", "sda Read 1\n"), ("bad value", "8:0 Read x\n")]
        {
            assert!(matches!(parse_blkio(&path, text), Err(CgroupError::Parse { .. })), "case {name}");
        }
    }
}
