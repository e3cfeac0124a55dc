//! Resource use of a process from Linux `/proc`, and a description of the machine.

use std::fs;

use anyhow::{anyhow, Context};
use serde::Serialize;

/// Counters of one process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// User plus system CPU time (`utime` + `stime` of `/proc/PID/stat`), in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size now (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// The anonymous part of `rss_kib` (`RssAnon`), in KiB. It counts the heap, thread stacks
    /// and the pages that the dynamic loader wrote while relocating the executable, but not
    /// mapped files such as the executable's code.
    pub rss_anon_kib: u64,
    /// Peak resident set size over the process's life (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    /// Bytes the process caused to be sent to the storage layer (`write_bytes` of
    /// `/proc/PID/io`); `None` when the kernel does not provide it.
    pub write_bytes: Option<u64>,
}

/// Reads the counters of process `pid`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    sample_path(&pid.to_string())
}

/// Reads the counters of this process, all its threads included.
pub fn sample_self() -> anyhow::Result<ProcSample> {
    sample_path("self")
}

fn sample_path(pid: &str) -> anyhow::Result<ProcSample> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat =
        fs::read_to_string(&stat_path).with_context(|| format!("cannot read {stat_path}"))?;
    // The command name in brackets may contain spaces, so fields are counted after its `)`.
    // Fields after it start at field 3 (state); utime and stime are fields 14 and 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("cannot parse {stat_path}: {stat:?}"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick_field = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| anyhow!("cannot parse {stat_path}: {stat:?}"))
    };
    let cpu_ticks = tick_field(14 - 3)? + tick_field(15 - 3)?;

    let status_path = format!("/proc/{pid}/status");
    let status =
        fs::read_to_string(&status_path).with_context(|| format!("cannot read {status_path}"))?;
    let rss_kib =
        status_kib(&status, "VmRSS").ok_or_else(|| anyhow!("no VmRSS line in {status_path}"))?;
    let peak_rss_kib =
        status_kib(&status, "VmHWM").ok_or_else(|| anyhow!("no VmHWM line in {status_path}"))?;
    let rss_anon_kib = status_kib(&status, "RssAnon")
        .ok_or_else(|| anyhow!("no RssAnon line in {status_path} (Linux 4.5 added it)"))?;

    let write_bytes = fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| field_value(&io, "write_bytes"));

    Ok(ProcSample {
        cpu_ticks,
        rss_kib,
        rss_anon_kib,
        peak_rss_kib,
        write_bytes,
    })
}

/// Returns the number of a `Name:   1234 kB` line, as in `/proc/PID/status` and `/proc/meminfo`.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let rest = status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Returns the number of a `name: 1234` line, as in `/proc/PID/io`.
fn field_value(text: &str, name: &str) -> Option<u64> {
    let rest = text
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?;
    rest.trim().parse().ok()
}

/// Returns the clock ticks per second, the unit of the CPU times in `/proc/PID/stat`, from
/// `getconf CLK_TCK`. When that fails it returns 100, the value on x86 and ARM Linux.
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs this process may run on, as `nproc` prints.
    pub nproc: usize,
    /// `model name` of the first CPU in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` of `/proc/meminfo`, in MiB.
    pub ram_mib: u64,
    /// Kernel release (`uname -r`).
    pub kernel: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let ram_mib = status_kib(&meminfo, "MemTotal").unwrap_or(0) / 1024;
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            ram_mib,
            kernel,
        }
    }
}

/// Returns the 1, 5 and 15 minute load averages, as `/proc/loadavg` prints them.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_string())
}
