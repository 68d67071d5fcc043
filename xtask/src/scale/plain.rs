//! The baseline the scale benchmark compares `mln up` with: the very
//! command lines `mln` ran (read from `/proc` while the lab runs: argv,
//! environment, working folder), started again all at once from a plain
//! loop once `mln stop` has stopped the lab, its disks kept. Each guest
//! gets what `mln` gives it: a pseudo-terminal's master as standard input
//! (its `con1=fd:0` line), the slave as standard output, its console log
//! as standard error. Timed until every guest's console shows the
//! template's boot marker, as `mln up` waits for it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

/// One process `mln` started, as `/proc` shows it.
pub struct Launch {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
}

impl Launch {
    fn read(pid: u32) -> Option<Launch> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let split = |bytes: Vec<u8>| -> Vec<OsString> {
            bytes
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| OsString::from_vec(w.to_vec()))
                .collect()
        };
        let argv = split(fs::read(dir.join("cmdline")).ok()?);
        let env = split(fs::read(dir.join("environ")).ok()?)
            .into_iter()
            .filter_map(|kv| {
                let kv = kv.into_vec();
                let eq = kv.iter().position(|b| *b == b'=')?;
                Some((
                    OsString::from_vec(kv[..eq].to_vec()),
                    OsString::from_vec(kv[eq + 1..].to_vec()),
                ))
            })
            .collect();
        let cwd = fs::read_link(dir.join("cwd")).ok()?;
        (!argv.is_empty()).then_some(Launch { argv, env, cwd })
    }

    fn is_switch(&self) -> bool {
        self.argv[0].to_string_lossy().ends_with("vde_switch")
    }

    /// A switch's control folder (`--sock DIR`).
    fn switch_socket(&self) -> Option<PathBuf> {
        let at = self.argv.iter().position(|a| a == "--sock" || a == "-s")?;
        self.argv.get(at + 1).map(PathBuf::from)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        // A UML guest runs in its umid folder, which `mln stop` removed:
        // the guest makes it again.
        if self.cwd.is_dir() {
            cmd.current_dir(&self.cwd);
        }
        cmd
    }
}

/// Whether `pid` leads its session (a guest or switch `mln` started, not
/// one of a UML guest's own helper processes).
fn leads_session(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state ppid pgrp session.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    fields.get(3).and_then(|s| s.parse::<u32>().ok()) == Some(pid)
}

/// The guests and switches running under the state folder `state`.
pub struct Captured {
    switches: Vec<Launch>,
    guests: Vec<Launch>,
}

pub fn capture(state: &Path) -> Captured {
    let mut c = Captured {
        switches: Vec::new(),
        guests: Vec::new(),
    };
    for pid in mln_core::uml::processes_mentioning(state) {
        if !leads_session(pid) {
            continue;
        }
        if let Some(l) = Launch::read(pid) {
            if l.is_switch() {
                c.switches.push(l);
            } else if l
                .argv
                .iter()
                .any(|a| a.to_string_lossy().starts_with("umid="))
            {
                c.guests.push(l);
            }
        }
    }
    c
}

impl Captured {
    pub fn guests(&self) -> usize {
        self.guests.len()
    }
}

/// A guest's pseudo-terminal: master for its stdin, slave for its stdout.
fn pty() -> Result<(File, File), String> {
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).map_err(|e| format!("openpt: {e}"))?;
    grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
    unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    let name = ptsname(&master, Vec::new()).map_err(|e| format!("ptsname: {e}"))?;
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(OsString::from_vec(name.into_bytes()))
        .map_err(|e| format!("open the pty slave: {e}"))?;
    Ok((File::from(master), slave))
}

/// What the plain loop took, and the processes to end afterwards.
pub struct Started {
    pub wall: Duration,
    /// Held open while the guests run: a closed master hangs their line up.
    _ptys: Vec<(File, File)>,
    children: Vec<Child>,
}

impl Started {
    /// Kill everything under `state` and reap what this loop started.
    pub fn end(mut self, state: &Path) {
        kill_all(state);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start the switches, then every guest at once, and wait until every
/// guest's console (in `logs`) shows `marker`, within `limit`.
pub fn start(
    captured: &Captured,
    logs: &Path,
    marker: &str,
    limit: Duration,
) -> Result<Started, String> {
    fs::create_dir_all(logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut children = Vec::new();
    for s in &captured.switches {
        // `mln stop` removed the switch's folder; vde_switch makes only
        // the last part of its control path.
        let sock = s.switch_socket();
        if let Some(parent) = sock.as_deref().and_then(Path::parent) {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let child = s
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start a switch: {e}"))?;
        children.push(child);
    }
    // The guests join once every switch listens.
    let listening = Instant::now() + Duration::from_secs(10);
    for sock in captured.switches.iter().filter_map(Launch::switch_socket) {
        while !sock.join("ctl").exists() {
            if Instant::now() > listening {
                return Err(format!("switch {} never listened", sock.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut ptys = Vec::new();
    let mut files = Vec::new();
    let start = Instant::now();
    for (i, g) in captured.guests.iter().enumerate() {
        let (master, slave) = pty()?;
        let log = logs.join(format!("guest-{i}.log"));
        let err = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let stdin = master.try_clone().map_err(|e| format!("pty: {e}"))?;
        let stdout = slave.try_clone().map_err(|e| format!("pty: {e}"))?;
        let child = g
            .command()
            .stdin(stdin)
            .stdout(stdout)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start a guest: {e}"))?;
        children.push(child);
        ptys.push((master, slave));
        files.push(log);
    }
    let mut waiting: Vec<PathBuf> = files;
    while !waiting.is_empty() {
        if start.elapsed() > limit {
            return Err(format!(
                "{} of {} guests had not booted after {limit:?}",
                waiting.len(),
                captured.guests.len()
            ));
        }
        waiting.retain(|log| {
            !fs::read_to_string(log)
                .map(|t| t.contains(marker))
                .unwrap_or(false)
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Started {
        wall: start.elapsed(),
        _ptys: ptys,
        children,
    })
}

/// SIGKILL whatever runs under `state` until nothing does (bounded).
pub fn kill_all(state: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = mln_core::uml::processes_mentioning(state);
        if left.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in left {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_back_and_is_no_session_leader_of_a_guest() {
        let me = Launch::read(std::process::id()).unwrap();
        assert!(!me.argv.is_empty());
        assert!(me.env.iter().any(|(k, _)| k == "PATH"));
        assert_eq!(me.cwd, std::env::current_dir().unwrap());
        assert!(!me.is_switch());
    }

    #[test]
    fn a_pty_pair_opens() {
        let (_m, _s) = pty().unwrap();
    }
}
