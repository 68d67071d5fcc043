//! Helpers of the benchmarks that run real guests (`kvm_bringup`,
//! `kvm_move`): settings from the environment, the guest kernel, summary
//! figures, and the sweep that ends whatever a run left behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mln_core::qemu::GuestKernel;

/// What the guest benchmarks return.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// `MLN_BENCH_ROUNDS`, else `default` (at least 1).
pub fn rounds(default: usize) -> usize {
    std::env::var("MLN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// `MLN_BENCH_SIZES` (e.g. `1,4`), else `default`.
pub fn sizes(default: &[usize]) -> Vec<usize> {
    std::env::var("MLN_BENCH_SIZES")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .filter(|&n: &usize| n > 0)
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// The guest kernel's folder: `MLN_KERNELS_DIR` (as the tests and `mln`
/// read it), else `fallback`.
pub fn kernels_dir(fallback: &Path) -> PathBuf {
    std::env::var_os(mln_core::uml::KERNELS_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| fallback.to_path_buf(), PathBuf::from)
}

/// The QEMU guest kernel (Debian's, with MLN's initramfs), fetched into
/// `store` on first use; says so when it fetches.
pub fn guest_kernel(store: &Path) -> BenchResult<GuestKernel> {
    if GuestKernel::find(store).is_none() {
        eprintln!("fetching the guest kernel into {} (once)", store.display());
    }
    Ok(GuestKernel::fetch(store)?)
}

/// The first load-average figures, for the record.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The median of `samples` (the mean of the middle two for an even
/// count); `NaN` for none.
pub fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The smallest and largest of `samples` (`NaN`s for none).
pub fn min_max(samples: &[f64]) -> (f64, f64) {
    samples
        .iter()
        .fold((f64::NAN, f64::NAN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// `samples` printed with `decimals` decimals, space-separated.
pub fn list(samples: &[f64], decimals: usize) -> String {
    samples
        .iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The CPU time (user and system, all threads) process `pid` has used so
/// far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may hold spaces: field 3 on.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second();
    Some(Duration::from_millis(ticks * 1000 / hz.max(1)))
}

/// SIGKILL every live process whose command line names `dir` (the
/// benchmark's own private folder: only processes it started name it)
/// until none is left, within `timeout`; an error names the survivors.
pub fn kill_under(dir: &Path, timeout: Duration) -> BenchResult<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = mln_core::uml::processes_mentioning(dir);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("processes left under {}: {left:?}", dir.display()).into());
        }
        for pid in &left {
            let pid = i32::try_from(*pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                // Gone already is fine: the next walk tells.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails with `bench`'s name when one of `tools` does not run here.
pub fn require(bench: &str, tools: &[&str]) -> BenchResult<()> {
    for tool in tools {
        let runs = std::process::Command::new(tool)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
        if !runs {
            return Err(format!("{bench} needs {tool}, which does not run here").into());
        }
    }
    Ok(())
}

/// The busybox template and the QEMU guest kernel the benchmarks boot,
/// kept in `base` (cargo's target tmp folder) between runs.
pub fn template_and_kernel(
    base: &Path,
) -> BenchResult<(mln_core::template::Template, GuestKernel)> {
    let template = mln_core::template::Template::default_in(base.join("mln-templates"))?;
    let kernel = guest_kernel(&kernels_dir(&base.join("mln-kernels")))?;
    Ok((template, kernel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(min_max(&[2.0, 5.0, 1.0]), (1.0, 5.0));
        assert_eq!(list(&[1.0, 2.26], 1), "1.0 2.3");
    }
}
