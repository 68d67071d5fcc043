//! Supervised helper processes (UML guests, `vde_switch`): recorded by pid
//! and start time in a state folder, so that a later process can find them,
//! tell them from a recycled pid, and signal their whole process group.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

use crate::error::{Error, Result};

/// A process we started: its pid and its start time in clock ticks since
/// boot (field 22 of `/proc/PID/stat`), which tells it from a later process
/// that happens to get the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRecord {
    /// The process id (also its process group id: it leads its own group).
    pub pid: u32,
    /// Start time, clock ticks since boot.
    pub start_time: u64,
}

/// What `/proc` says about a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running (or sleeping, or stopped).
    Alive,
    /// Exited; `Some(code)` when we reaped it ourselves and it exited
    /// normally, `None` when it was killed by a signal or is not our child.
    Exited(Option<i32>),
}

impl ProcessRecord {
    /// The record of the running process `pid`, read from `/proc`.
    pub fn of(pid: u32) -> Option<Self> {
        let (_, start_time) = stat(pid)?;
        Some(ProcessRecord { pid, start_time })
    }

    /// Read a record written by [`ProcessRecord::write`].
    pub fn read(path: &Path) -> Result<Option<Self>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut words = text.split_whitespace();
        let pid = words.next().and_then(|w| w.parse().ok());
        let start_time = words.next().and_then(|w| w.parse().ok());
        match (pid, start_time) {
            (Some(pid), Some(start_time)) => Ok(Some(ProcessRecord { pid, start_time })),
            _ => Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed pid record"),
            )),
        }
    }

    /// Write the record atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(
            path,
            format!("{} {}\n", self.pid, self.start_time).as_bytes(),
        )
    }

    /// Is the recorded process still running? Reaps it when it is our own
    /// exited child, so that it never lingers as a zombie.
    pub fn liveness(&self) -> Liveness {
        if let Some(code) = reap(self.pid) {
            return Liveness::Exited(code);
        }
        match stat(self.pid) {
            Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X' => {
                Liveness::Alive
            }
            _ => Liveness::Exited(None),
        }
    }

    /// Send `signal` (a number such as `libc::SIGTERM`) to the process's
    /// whole group (the process leads it).
    pub fn signal_group(&self, signal: i32) {
        if self.liveness() != Liveness::Alive {
            return;
        }
        // Group 1 would be `kill(-1)`: every process we may signal.
        if let (Some(pgid), Some(signal)) = (pid_of(self.pid), Signal::from_named_raw(signal)) {
            if !pgid.is_init() {
                // The group may have emptied since the check: nothing to do.
                let _ = rustix::process::kill_process_group(pgid, signal);
            }
        }
    }

    /// Send `signal` (a number such as `libc::SIGTERM`) to the process
    /// alone.
    pub fn signal(&self, signal: i32) {
        if self.liveness() != Liveness::Alive {
            return;
        }
        kill(self.pid, signal);
    }

    /// Wait until the process has exited, at most `timeout`; true when it did.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Liveness::Exited(_) = self.liveness() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the whole group and wait for it to go (a killed process
    /// always goes; the bound only guards against a stuck kernel).
    ///
    /// Members can outlive their leader (UML's ptraced helpers do when the
    /// main process is killed alone), so members are also looked for by
    /// process group in `/proc` and killed one by one, but only those whose
    /// command line contains `marker` (the object's state folder): a group
    /// id is never reused while a member lives, and the marker guards
    /// against a new group that took the number after ours was empty.
    pub fn kill_group(&self, marker: &str) -> bool {
        self.signal_group(libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let members = group_members(self.pid, marker);
            for &pid in &members {
                kill(pid, libc::SIGKILL);
            }
            let leader_gone = matches!(self.liveness(), Liveness::Exited(_));
            if leader_gone && members.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Live processes in process group `pgid` whose command line contains
/// `marker`.
fn group_members(pgid: u32, marker: &str) -> Vec<u32> {
    live_group_members(pgid, |cmdline| {
        String::from_utf8_lossy(cmdline).contains(marker)
    })
}

/// Live (not zombie) processes in process group `pgid` whose raw command
/// line (NUL-separated words) `keep` accepts.
pub(crate) fn live_group_members(pgid: u32, keep: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    live_processes()
        .filter(|p| p.pgrp == pgid && keep(&p.cmdline()))
        .map(|p| p.pid)
        .collect()
}

/// Pids of the live processes, other than the calling one, whose command
/// line contains `needle`: for a folder, the guests, switches and cables
/// started under it, which all name a path inside it in their arguments.
///
/// Zombies (exited, not yet reaped) do not count: they run nothing and
/// cannot be signalled away. The command line is matched as raw bytes
/// (its words separated by NULs), so any path can be looked for; an empty
/// `needle` matches every process.
///
/// ```no_run
/// use mln_core::uml::processes_mentioning;
///
/// for pid in processes_mentioning("/var/lib/mln/lab") {
///     println!("{pid} still runs something of the lab");
/// }
/// ```
pub fn processes_mentioning(needle: impl AsRef<OsStr>) -> Vec<u32> {
    let needle = needle.as_ref().as_bytes();
    let me = std::process::id();
    live_processes()
        .filter(|p| p.pid != me && contains(&p.cmdline(), needle))
        .map(|p| p.pid)
        .collect()
}

/// A live process found in `/proc`.
struct ProcEntry {
    pid: u32,
    /// Its process group.
    pgrp: u32,
    /// Its `/proc/PID` folder.
    dir: PathBuf,
}

impl ProcEntry {
    /// The raw command line, empty once the process is gone.
    fn cmdline(&self) -> Vec<u8> {
        fs::read(self.dir.join("cmdline")).unwrap_or_default()
    }
}

/// Every process in `/proc` that is neither a zombie nor dead. The one
/// walk of `/proc` for process lookups, so that they all skip the same
/// processes; processes that go while it runs are left out.
fn live_processes() -> impl Iterator<Item = ProcEntry> {
    let entries = fs::read_dir("/proc").into_iter().flatten().flatten();
    entries.filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let dir = entry.path();
        let text = fs::read_to_string(dir.join("stat")).ok()?;
        // The command name (field 2) may contain spaces and parentheses.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        // After the state (field 3): ppid (4), then pgrp (5).
        let pgrp = fields.nth(1)?.parse::<u32>().ok()?;
        if state == "Z" || state == "X" {
            return None;
        }
        Some(ProcEntry { pid, pgrp, dir })
    })
}

/// Does `haystack` contain `needle` (an empty one is everywhere)?
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Send `signal` to process `pid` alone. A pid that is gone, a number
/// that is no pid and a signal number rustix does not name (real-time
/// signals) are ignored, as `kill(1)` failing would be.
pub(crate) fn kill(pid: u32, signal: i32) {
    if let (Some(pid), Some(signal)) = (pid_of(pid), Signal::from_named_raw(signal)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// `pid` as a rustix pid; `None` for 0 and numbers beyond `pid_t`.
fn pid_of(pid: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(pid).ok()?)
}

/// CPU time (user + system) the live process `pid` has used so far.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after `)`.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = Some(rustix::param::clock_ticks_per_second()).filter(|&t| t > 0)?;
    let total = utime + stime;
    Some(
        Duration::from_secs(total / ticks)
            + Duration::from_nanos((total % ticks) * 1_000_000_000 / ticks),
    )
}

/// State letter and start time of `pid`, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: the
    // fields we need come after its last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), the start time is field 22: 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Reap `pid` if it is our exited child: `Some(exit code)` (None inside for
/// death by signal), or `None` when it is not an exited child of ours.
fn reap(pid: u32) -> Option<Option<i32>> {
    let pid = pid_of(pid)?;
    // WNOHANG never blocks; for a pid that is not our child it fails with
    // ECHILD, for a child still running it returns nothing.
    match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
        Ok(Some((reaped, status))) if reaped == pid => Some(status.exit_status()),
        _ => None,
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, so readers
/// never see half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    #[test]
    fn own_process_is_alive_and_recorded() {
        let me = ProcessRecord::of(std::process::id()).unwrap();
        assert_eq!(me.liveness(), Liveness::Alive);
        let other = ProcessRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert_eq!(other.liveness(), Liveness::Exited(None));
    }

    #[test]
    fn processes_mentioning_finds_live_ones_only() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        // `read` is a builtin: the shell waits on its stdin without a
        // child process, which for a moment after a fork would carry the
        // marker too.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line"])
            .arg(&marker)
            .stdin(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        // Matched anywhere in the command line, as bytes; not by a longer
        // needle, and never this process (whose arguments do not name it).
        assert_eq!(processes_mentioning(&marker), vec![pid]);
        assert_eq!(processes_mentioning(dir.path()), vec![pid]);
        assert_eq!(processes_mentioning(marker.join("x")), Vec::<u32>::new());
        let rec = ProcessRecord::of(pid).unwrap();
        rec.signal_group(libc::SIGKILL);
        // Killed but not reaped: a zombie, which does not count.
        let deadline = Instant::now() + Duration::from_secs(10);
        while stat(pid).map(|(state, _)| state) != Some('Z') {
            assert!(Instant::now() < deadline, "never became a zombie");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(processes_mentioning(&marker), Vec::<u32>::new());
        assert!(child.wait().is_ok());
    }

    #[test]
    fn exited_child_is_reaped_with_its_code() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        // Until reaped, even an exited child keeps its /proc entry.
        let rec = ProcessRecord::of(child.id()).unwrap();
        let mut seen = rec.liveness();
        while seen == Liveness::Alive {
            std::thread::sleep(Duration::from_millis(5));
            seen = rec.liveness();
        }
        assert_eq!(seen, Liveness::Exited(Some(3)));
        // Already reaped by `liveness`: the handle has nothing left to wait for.
        assert!(child.wait().is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        rec.write(&path).unwrap();
        assert_eq!(ProcessRecord::read(&path).unwrap(), Some(rec));
    }
}
