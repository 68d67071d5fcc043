//! Which UML kernel boots guests, and the kernels `mln` fetched.
//!
//! The choice, first match wins: the host's `kernel` keyword (or a
//! caller's explicit choice such as `--uml-kernel`), then `MLN_UML_KERNEL`,
//! then a kernel fetched by [`KernelStore::fetch`] when a probe boot
//! recorded on this CPU showed the distribution's kernel crashing, and
//! last the distribution's [`super::Uml::DEFAULT_KERNEL`].
//!
//! A store is a folder (`STATE/kernels` for the command line):
//!
//! ```text
//! kernels/record.json        what was fetched, and probe boots per kernel and CPU
//! kernels/uml-7.2um1/        a fetched kernel: linux.uml and the C library it runs on
//! ```
//!
//! ```no_run
//! use mln_core::uml::KernelStore;
//! let store = KernelStore::new("/var/lib/mln/kernels");
//! let choice = store.choose(None);
//! println!("{} ({})", choice.path.display(), choice.source);
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::fetch::{fetch_kernel, FetchSource, FetchedKernel};
use super::probe::{probe_boot, ProbeOutcome};
use super::process::write_atomic;
use super::Uml;
use crate::error::{Error, Result};

/// The environment variable naming the UML kernel.
pub const KERNEL_ENV: &str = "MLN_UML_KERNEL";

/// The environment variable naming the kernels folder, for several state
/// folders (or servers on one machine) sharing fetched kernels.
pub const KERNELS_DIR_ENV: &str = "MLN_KERNELS_DIR";

/// The kernels folder of the state folder `state_root`: `MLN_KERNELS_DIR`
/// when set, else `STATE_ROOT/kernels`.
pub fn kernels_dir(state_root: &Path) -> PathBuf {
    std::env::var_os(KERNELS_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| state_root.join("kernels"), PathBuf::from)
}

const RECORD: &str = "record.json";
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the chosen kernel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelSource {
    /// Named by the caller (a host's `kernel`, `--uml-kernel`).
    Explicit,
    /// `MLN_UML_KERNEL`.
    Environment,
    /// Fetched, because the distribution's kernel crashes on this CPU.
    Fetched,
    /// The distribution's `/usr/bin/linux.uml`.
    Distribution,
}

impl fmt::Display for KernelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelSource::Explicit => "named explicitly",
            KernelSource::Environment => "from MLN_UML_KERNEL",
            KernelSource::Fetched => "fetched: the distribution's kernel crashes on this CPU",
            KernelSource::Distribution => "the distribution's",
        })
    }
}

/// The kernel guests boot with, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelChoice {
    /// The kernel binary.
    pub path: PathBuf,
    /// Why this one.
    pub source: KernelSource,
}

/// One probe boot, remembered for the kernel file and CPU it ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// The kernel probed.
    pub kernel: PathBuf,
    /// Its size and modification time (a replaced kernel is probed anew).
    pub identity: String,
    /// The CPU it ran on.
    pub cpu: String,
    /// What it did.
    pub outcome: ProbeOutcome,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    #[serde(default)]
    fetched: Option<FetchedKernel>,
    #[serde(default)]
    probes: Vec<ProbeRecord>,
}

/// What [`KernelStore::fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchReport {
    /// The fetched kernel.
    pub fetched: FetchedKernel,
    /// Its probe boot here.
    pub probe: ProbeOutcome,
    /// The distribution kernel's probe boot, when it is installed.
    pub distribution: Option<ProbeOutcome>,
    /// True when an earlier fetch was still good and nothing was
    /// downloaded.
    pub reused: bool,
}

/// A folder of fetched kernels and probe results.
#[derive(Debug, Clone)]
pub struct KernelStore {
    dir: PathBuf,
}

impl KernelStore {
    /// The store in `dir` (created when something is written), made
    /// absolute: its paths end up on kernel command lines and in the
    /// fetched kernel's ELF header, read from other folders.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir: PathBuf = dir.into();
        KernelStore {
            dir: std::path::absolute(&dir).unwrap_or(dir),
        }
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self) -> Record {
        fs::read(self.dir.join(RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, record: &Record) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(RECORD);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        write_atomic(&path, &bytes)
    }

    /// The fetched kernel, if one is recorded and still there.
    pub fn fetched(&self) -> Option<FetchedKernel> {
        self.read().fetched.filter(|f| f.path.is_file())
    }

    /// The recorded probe of `kernel` on this CPU, if the file is
    /// unchanged since.
    pub fn recorded_probe(&self, kernel: &Path) -> Option<ProbeOutcome> {
        let identity = identity(kernel)?;
        let cpu = cpu();
        self.read()
            .probes
            .into_iter()
            .find(|p| p.kernel == kernel && p.identity == identity && p.cpu == cpu)
            .map(|p| p.outcome)
    }

    /// Boot `kernel` once (see [`super::probe`]) with `busybox` as init,
    /// and remember the outcome for this kernel file and CPU.
    pub fn probe(&self, kernel: &Path, busybox: &Path) -> Result<ProbeOutcome> {
        let scratch = self.dir.join(format!(".probe-{}", std::process::id()));
        let outcome = probe_boot(kernel, busybox, &scratch, PROBE_TIMEOUT)?;
        if let Some(identity) = identity(kernel) {
            let cpu = cpu();
            let mut record = self.read();
            record
                .probes
                .retain(|p| !(p.kernel == kernel && p.cpu == cpu));
            record.probes.push(ProbeRecord {
                kernel: kernel.to_path_buf(),
                identity,
                cpu,
                outcome: outcome.clone(),
            });
            self.write(&record)?;
        }
        Ok(outcome)
    }

    /// Fetch a kernel from `source` (unless a fetched one is there and
    /// `refresh` is false), prove it with a probe boot, probe the
    /// distribution's kernel too, and record all three. A fetched kernel
    /// that does not boot here is an error, and is not recorded.
    pub fn fetch(
        &self,
        source: &FetchSource,
        busybox: &Path,
        refresh: bool,
        say: &dyn Fn(&str),
    ) -> Result<FetchReport> {
        let previous = self.fetched();
        let (fetched, reused) = match previous {
            Some(f) if !refresh => {
                say(&format!("already fetched: {}", f.path.display()));
                (f, true)
            }
            _ => {
                fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
                (fetch_kernel(&self.dir, source, say)?, false)
            }
        };
        say(&format!("probe boot of {}", fetched.path.display()));
        let probe = self.probe(&fetched.path, busybox)?;
        if !probe.boots() {
            let console = match &probe {
                ProbeOutcome::Crashes { console, .. } | ProbeOutcome::TimedOut { console } => {
                    console.as_str()
                }
                ProbeOutcome::Boots { .. } => "",
            };
            return Err(Error::Backend {
                what: fetched.path.display().to_string(),
                message: format!(
                    "the fetched kernel {probe} here; its console said:\n{}",
                    super::last_lines(console, 12)
                ),
            });
        }
        let distro = Path::new(Uml::DEFAULT_KERNEL);
        let distribution = if distro.exists() {
            say(&format!("probe boot of {}", distro.display()));
            Some(self.probe(distro, busybox)?)
        } else {
            None
        };
        let mut record = self.read();
        if let Some(old) = record.fetched.replace(fetched.clone()) {
            if old.path != fetched.path {
                if let Some(dir) = old.path.parent() {
                    let _ = fs::remove_dir_all(dir);
                }
            }
        }
        self.write(&record)?;
        Ok(FetchReport {
            fetched,
            probe,
            distribution,
            reused,
        })
    }

    /// The kernel to boot guests with: `explicit` when given, else
    /// `MLN_UML_KERNEL`, else the fetched kernel when the distribution's
    /// was seen crashing on this CPU, else the distribution's.
    pub fn choose(&self, explicit: Option<&Path>) -> KernelChoice {
        if let Some(path) = explicit {
            return KernelChoice {
                path: path.to_path_buf(),
                source: KernelSource::Explicit,
            };
        }
        if let Some(path) = std::env::var_os(KERNEL_ENV).filter(|v| !v.is_empty()) {
            return KernelChoice {
                path: PathBuf::from(path),
                source: KernelSource::Environment,
            };
        }
        let distro = Path::new(Uml::DEFAULT_KERNEL);
        if let Some(fetched) = self.fetched() {
            if self
                .recorded_probe(distro)
                .is_some_and(|outcome| !outcome.boots())
            {
                return KernelChoice {
                    path: fetched.path,
                    source: KernelSource::Fetched,
                };
            }
        }
        KernelChoice {
            path: distro.to_path_buf(),
            source: KernelSource::Distribution,
        }
    }
}

/// Size and modification time of a file.
fn identity(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Some(format!("{} {mtime}", meta.len()))
}

/// This machine's CPU model, and whether it has AMX (whose large XSAVE
/// area is what old UML kernels trip on).
pub fn cpu() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim());
    let amx = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "amx_tile"));
    if amx {
        format!("{model} (AMX)")
    } else {
        model.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_of(kernel: &Path, outcome: ProbeOutcome) -> ProbeRecord {
        ProbeRecord {
            kernel: kernel.to_path_buf(),
            identity: identity(kernel).unwrap(),
            cpu: cpu(),
            outcome,
        }
    }

    #[test]
    fn the_fetched_kernel_is_chosen_only_where_the_distributions_crashes() {
        if std::env::var_os(KERNEL_ENV).is_some() || !Path::new(Uml::DEFAULT_KERNEL).exists() {
            // The choice reads the environment and the installed kernel.
            eprintln!("SKIPPED: {KERNEL_ENV} set or no distribution kernel");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = KernelStore::new(dir.path());
        assert_eq!(store.choose(None).source, KernelSource::Distribution);
        let fetched_path = dir.path().join("uml-x/linux.uml");
        fs::create_dir_all(fetched_path.parent().unwrap()).unwrap();
        fs::write(&fetched_path, b"stand-in").unwrap();
        let distro = Path::new(Uml::DEFAULT_KERNEL);
        let mut record = Record {
            fetched: Some(FetchedKernel {
                path: fetched_path.clone(),
                version: "7.2.7".into(),
                package: "7.2um1".into(),
                archive: "http://mirror.example/debian".into(),
                suite: "unstable".into(),
            }),
            probes: vec![probe_of(distro, ProbeOutcome::Boots { millis: 900 })],
        };
        store.write(&record).unwrap();
        // Fetched, but the distribution's boots here: it stays.
        assert_eq!(store.choose(None).source, KernelSource::Distribution);
        record.probes = vec![probe_of(
            distro,
            ProbeOutcome::Crashes {
                cause: Some(super::super::CrashCause::HostCpuStateTooLarge),
                console: String::new(),
            },
        )];
        store.write(&record).unwrap();
        let choice = store.choose(None);
        assert_eq!(choice.source, KernelSource::Fetched);
        assert_eq!(choice.path, fetched_path);
        // An explicit kernel beats everything.
        let named = store.choose(Some(Path::new("/opt/uml/linux")));
        assert_eq!(named.source, KernelSource::Explicit);
        // A probe on another CPU does not count here.
        record.probes[0].cpu = "another CPU".into();
        store.write(&record).unwrap();
        assert_eq!(store.choose(None).source, KernelSource::Distribution);
    }
}
