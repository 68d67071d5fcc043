//! What is left of a project whose state file cannot be read: found from
//! what runs, not from the record, and ended (`mln recover`).
//!
//! On this machine everything a project runs names its folder in its
//! command line (a UML guest its disks, a QEMU guest its sockets, a switch
//! its socket folder, a cable both ends), and a Xen domain is named
//! `PROJECT.HOST`. [`sweep`] ends both. Hosts on other servers are reached
//! only through the project file: the caller records the project as if it
//! were up ([`crate::state::State::as_if_up`]) and removes it as usual.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::machine::Backends;
use crate::plan::Platform;

/// What [`sweep`] ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Processes that named the project's folder.
    pub processes: usize,
    /// Xen domains of the project, destroyed.
    pub domains: Vec<String>,
    /// Processes still there after the grace period and SIGKILL.
    pub left: Vec<u32>,
}

/// End what project `project` (its folder `dir`) runs on this machine:
/// every process whose command line names a path inside `dir` gets SIGTERM, and SIGKILL
/// if it is still there after `grace`; every Xen domain named
/// `PROJECT.…` is destroyed when Xen runs here.
pub fn sweep(project: &str, dir: &Path, backends: &dyn Backends, grace: Duration) -> Swept {
    let mut swept = Swept::default();
    if backends.platforms(None).contains(&Platform::Xen) {
        if let Ok(xen) = backends.hypervisor(None, Platform::Xen) {
            let prefix = format!("{project}.");
            for d in xen.list().unwrap_or_default() {
                if d.name.starts_with(&prefix) && xen.destroy(&d.name).is_ok() {
                    swept.domains.push(d.name);
                }
            }
        }
    }
    let found = processes_inside(dir);
    swept.processes = found.len();
    signal(&found, Signal::TERM);
    let deadline = Instant::now() + grace;
    loop {
        let left = processes_inside(dir);
        if left.is_empty() {
            return swept;
        }
        if Instant::now() >= deadline {
            signal(&left, Signal::KILL);
            std::thread::sleep(Duration::from_millis(200));
            swept.left = processes_inside(dir);
            return swept;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Processes whose command line names a path inside `dir` (`DIR/…`, so
/// that project `lab`'s folder never matches `lab2`'s processes).
pub fn processes_inside(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut needle = dir.into_os_string();
    needle.push("/");
    mln_core::uml::processes_mentioning(needle)
}

fn signal(pids: &[u32], signal: Signal) {
    for &pid in pids {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, signal);
        }
    }
}
