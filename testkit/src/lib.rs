//! Helpers shared by the integration tests that run real guests and
//! switches: find what a test left running, and end it on every way out;
//! make test servers (network namespaces running `sshd`) for projects
//! across several servers.

use std::path::{Path, PathBuf};
use std::process::Command;

mod servers;

pub use servers::{Skip, TestServers};

/// Pids of live processes (not this one) whose command line mentions
/// `dir`: the guests and switches a test started under its folder. A
/// zombie has an empty command line, so it never counts.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) && pid != std::process::id() {
            out.push(pid);
        }
    }
    out
}

/// Kills (SIGKILL) whatever still runs under its folder when dropped, so a
/// failing assertion never leaves guests or switches behind.
pub struct KillUnder(pub PathBuf);

impl Drop for KillUnder {
    fn drop(&mut self) {
        for pid in processes_under(&self.0) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}
