//! A probe boot: does this UML kernel run a user process on this host?
//!
//! The kernel boots with the host's own root file system, read-only,
//! through `hostfs` (no disk image needed), and runs a static busybox as
//! init, which powers the guest off at once. A kernel that cannot run
//! here (see [`CrashCause::HostCpuStateTooLarge`]) dies at that first
//! user process; one that can prints its power-down line. About a second.
//!
//! ```no_run
//! use std::time::Duration;
//! use mln_core::uml::probe;
//! let p = probe::probe_boot("/usr/bin/linux.uml".as_ref(), "/bin/busybox".as_ref(),
//!                           "/tmp/probe".as_ref(), Duration::from_secs(20))?;
//! println!("{p}");
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cmdline::cmdline_path;
use super::crash::CrashCause;
use super::process::{Liveness, ProcessRecord};
use super::{guest_command, powered_off, tail};
use crate::error::{Error, Result};

/// What a probe boot showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// The kernel ran a user process and powered off.
    Boots {
        /// Wall time from start to power-off, milliseconds.
        millis: u64,
    },
    /// The kernel died.
    Crashes {
        /// The cause, when it is a known one.
        cause: Option<CrashCause>,
        /// The end of its console.
        console: String,
    },
    /// Neither within the time allowed (the kernel was killed).
    TimedOut {
        /// The end of its console.
        console: String,
    },
}

impl ProbeOutcome {
    /// True for [`ProbeOutcome::Boots`].
    pub fn boots(&self) -> bool {
        matches!(self, ProbeOutcome::Boots { .. })
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeOutcome::Boots { millis } => write!(f, "boots ({:.1} s)", *millis as f64 / 1e3),
            ProbeOutcome::Crashes {
                cause: Some(cause), ..
            } => write!(f, "crashes: {cause}"),
            ProbeOutcome::Crashes { cause: None, .. } => f.write_str("crashes"),
            ProbeOutcome::TimedOut { .. } => f.write_str("does not finish booting"),
        }
    }
}

/// Boot `kernel` once with `busybox` (a static binary on this machine) as
/// init; `scratch` (created, then removed) holds UML's own files and the
/// console. The kernel is killed after `timeout`.
pub fn probe_boot(
    kernel: &Path,
    busybox: &Path,
    scratch: &Path,
    timeout: Duration,
) -> Result<ProbeOutcome> {
    fs::create_dir_all(scratch).map_err(|e| Error::io(scratch, e))?;
    let result = run(kernel, busybox, scratch, timeout);
    let _ = fs::remove_dir_all(scratch);
    result
}

fn run(kernel: &Path, busybox: &Path, scratch: &Path, timeout: Duration) -> Result<ProbeOutcome> {
    if !kernel.exists() {
        return Err(Error::MissingFile {
            what: "UML kernel",
            path: kernel.to_path_buf(),
        });
    }
    let init = cmdline_path(busybox, "probe init (busybox)")?;
    let dir = cmdline_path(scratch, "probe folder")?;
    let args: Vec<OsString> = [
        "mem=64M".to_string(),
        "umid=probe".to_string(),
        format!("uml_dir={dir}"),
        "con=null".into(),
        "con0=null,fd:1".into(),
        "ssl=null".into(),
        "root=/dev/root".into(),
        "rootfstype=hostfs".into(),
        "rootflags=/".into(),
        "ro".into(),
        format!("init={init}"),
        "initcall_blacklist=raid6_select_algo".into(),
        // init's arguments: busybox runs its poweroff applet.
        "poweroff".into(),
        "-f".into(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let log_path = scratch.join("console.log");
    let log = File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let log2 = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    let started = Instant::now();
    let child = guest_command(kernel, &args)
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: kernel.display().to_string(),
            source,
        })?;
    let pid = child.id();
    // Reaped through the record below (liveness reaps our own children).
    drop(child);
    let proc = ProcessRecord::of(pid).unwrap_or(ProcessRecord { pid, start_time: 0 });
    let marker = format!("uml_dir={dir}");
    let exited = proc.wait_exit(timeout);
    let elapsed = started.elapsed();
    // UML's helper processes can outlive the main one.
    proc.kill_group(&marker);
    debug_assert!(proc.liveness() != Liveness::Alive);
    let console = tail(&log_path, 2000);
    Ok(if !exited {
        ProbeOutcome::TimedOut { console }
    } else if powered_off(&console) {
        ProbeOutcome::Boots {
            millis: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        }
    } else {
        ProbeOutcome::Crashes {
            cause: CrashCause::diagnose(&console),
            console,
        }
    })
}
