//! What the scale benchmark reads of the machine: CPU time spent by the
//! whole host (`/proc/stat`), memory available (`/proc/meminfo`), and a
//! command's peak resident memory (`VmHWM`, polled while it runs).

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// CPU seconds the host has spent busy since boot, all CPUs together
/// (user, nice, system, irq, softirq, steal; not idle or iowait).
pub fn cpu_busy_secs() -> Result<f64, String> {
    let stat = fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Ok(busy as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// `MemAvailable`, bytes.
pub fn mem_available() -> Result<u64, String> {
    let info = fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    kib_field(&info, "MemAvailable:")
        .map(|k| k * 1024)
        .ok_or_else(|| "no MemAvailable in /proc/meminfo".into())
}

/// The number after `field` in a `/proc` status-like text, in kB.
fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// One timed run of a command.
pub struct Run {
    pub status: ExitStatus,
    pub wall: Duration,
    /// The host's busy CPU seconds over the run (everything the machine
    /// did, the guests' boots included).
    pub host_cpu: f64,
    /// The command's own peak resident memory, bytes.
    pub peak_rss: u64,
}

/// Run `cmd` (its output to `log`) until it exits or `limit` passes
/// (then it is killed and this fails), sampling its `VmHWM`.
pub fn run(cmd: &mut Command, log: &Path, limit: Duration) -> Result<Run, String> {
    let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let cpu0 = cpu_busy_secs()?;
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_file) {
            peak_kib = peak_kib.max(kib_field(&text, "VmHWM:").unwrap_or(0));
        }
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?}: no end within {limit:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{cmd:?}: {e}")),
        }
    };
    Ok(Run {
        status,
        wall: start.elapsed(),
        host_cpu: cpu_busy_secs()? - cpu0,
        peak_rss: peak_kib * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_kib() {
        let text = "Name:\tmln\nVmHWM:\t   20480 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(kib_field(text, "VmHWM:"), Some(20480));
        assert_eq!(kib_field(text, "VmSwap:"), None);
    }

    #[test]
    fn the_host_reports_cpu_and_memory() {
        let a = cpu_busy_secs().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_busy_secs().unwrap() >= a);
        assert!(mem_available().unwrap() > 0);
    }
}
