//! A criterion measurement of the benchmark thread's CPU time.
//!
//! Wall-clock time on a shared or virtualised machine includes every moment
//! the thread waited for a CPU; on a busy host that can triple a figure.
//! The thread's CPU clock counts only time spent running, so the numbers
//! stay comparable between runs. (Time the kernel spends on the thread's
//! behalf, such as page faults, is included.)

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use rustix::time::{clock_gettime, ClockId};

/// Thread CPU time, in nanoseconds.
///
/// ```
/// use criterion::measurement::Measurement;
/// let m = benches::ThreadCpuTime;
/// let start = m.start();
/// let spent = m.end(start);
/// assert!(m.to_f64(&spent) >= 0.0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCpuTime;

fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        now_ns()
    }

    fn end(&self, start: u64) -> u64 {
        now_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a.saturating_add(*b)
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

/// Formats nanoseconds like criterion's wall-clock formatter does.
struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (amount, unit, per) = match *throughput {
            Throughput::Bytes(b) | Throughput::ElementsAndBytes { bytes: b, .. } => {
                (b as f64, "MiB/s", 1024.0 * 1024.0)
            }
            Throughput::BytesDecimal(b) => (b as f64, "MB/s", 1e6),
            Throughput::Bits(b) => (b as f64, "Mbit/s", 1e6),
            Throughput::Elements(e) => (e as f64, "Melem/s", 1e6),
        };
        for v in values {
            *v = amount * (1e9 / *v) / per;
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
