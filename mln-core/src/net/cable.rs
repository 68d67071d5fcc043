//! Cables between switch instances: how a switch spans servers.
//!
//! A switch whose members run on several servers has one [`VdeSwitch`]
//! instance per server. A cable joins two instances the standard vde2 way:
//! `dpipe LEFT... = RIGHT...` runs two commands with each one's stdout fed
//! to the other's stdin, and each command is a plug into one instance,
//! `vde_plug SOCKET` on this server ([`VdeSwitch::plug_argv`]) or an SSH
//! command whose far end runs `vde_plug` on the other server's instance
//! (`ssh -F CFG server-b mln agent plug PROJECT SWITCH`).
//!
//! A cable is a process group led by `dpipe`, detached from the `mln` that
//! started it (it survives that process, and a Ctrl-C sent to it), recorded
//! in a state folder so a later process finds it again:
//!
//! ```text
//! DIR/NAME.pid    pid and start time of dpipe (the group's leader)
//! DIR/NAME.sides  the two commands, to recognise the group's members
//! DIR/NAME.log    what dpipe and both sides print on stderr
//! ```
//!
//! `dpipe` exits as soon as either side does (a switch stopped, a plug
//! killed, an SSH connection lost), and the other side goes with it. So a
//! cable that is not [`Cable::is_alive`] is down for good: [`Cable::stop`]
//! it (that also ends sides orphaned by a dpipe killed alone) and start a
//! new one.
//!
//! ```no_run
//! use mln_core::net::{Cable, SwitchConfig, VdeSwitch};
//! let a = VdeSwitch::start(&SwitchConfig::new("lan"), "/var/lib/mln/lab/a")?;
//! let b = VdeSwitch::start(&SwitchConfig::new("lan"), "/var/lib/mln/lab/b")?;
//! let cable = Cable::start("/var/lib/mln/lab/cables", "lan", &a.plug_argv(), &b.plug_argv())?;
//! assert!(cable.is_alive());
//! cable.stop()?;
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::VdeSwitch;
use crate::error::{Error, Result};
use crate::name::SafeName;
use crate::uml::process::{write_atomic, Liveness, ProcessRecord};

/// How long [`Cable::start`] watches a new cable for an immediate failure
/// (a plug that cannot reach its switch exits within milliseconds).
const SETTLE: Duration = Duration::from_millis(300);

/// A `dpipe` joining two switch plugs; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cable {
    name: String,
    dir: PathBuf,
    process: ProcessRecord,
    sides: Sides,
}

/// The two commands a cable runs, as recorded in `NAME.sides`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sides {
    left: Vec<OsString>,
    right: Vec<OsString>,
}

impl Cable {
    /// The program that joins the two sides.
    pub const PROGRAM: &'static str = "dpipe";

    /// Run `dpipe LEFT... = RIGHT...` as cable `name`, recorded in `dir`
    /// (created if missing). Each side is an argv (never a shell string),
    /// e.g. [`VdeSwitch::plug_argv`] for an instance on this server.
    ///
    /// Fails with [`Error::AlreadyExists`] when a live cable of that name is
    /// recorded in `dir` (the leftovers of a dead one are cleared), with
    /// [`Error::Command`] (and the log's end) when the cable is down again
    /// within a few hundred milliseconds, e.g. because a socket is wrong. A
    /// later failure (an SSH side that cannot connect) shows as
    /// [`Cable::is_alive`] turning false.
    pub fn start(
        dir: impl AsRef<Path>,
        name: &str,
        left: &[OsString],
        right: &[OsString],
    ) -> Result<Cable> {
        let name = SafeName::new(name)?.to_string();
        let dir = dir.as_ref();
        for (side, argv) in [("left", left), ("right", right)] {
            if argv.is_empty() || argv.iter().any(|a| a.as_bytes() == b"=") {
                return Err(Error::Backend {
                    what: format!("cable {name}"),
                    message: format!("the {side} side must be a command without a lone `=`"),
                });
            }
        }
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        if let Ok(old) = Cable::open(&dir, &name) {
            if old.is_alive() {
                return Err(Error::AlreadyExists {
                    domain: format!("cable {name}"),
                });
            }
            old.stop()?;
        }
        let sides = Sides {
            left: left.to_vec(),
            right: right.to_vec(),
        };
        let sides_path = file(&dir, &name, "sides");
        let json = serde_json::to_vec(&sides).map_err(|e| {
            Error::io(
                &sides_path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        write_atomic(&sides_path, &json)?;
        let log_path = file(&dir, &name, "log");
        let log = File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let log2 = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
        // Its own process group, not its own session: dpipe makes itself a
        // group leader with setpgrp(), which a session leader may not do
        // ("cannot create pgrp"). A background group of this session gets
        // neither the terminal's Ctrl-C nor its hang-up.
        let child = Command::new(Self::PROGRAM)
            .args(left)
            .arg("=")
            .args(right)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Spawn {
                program: Self::PROGRAM.to_string(),
                source: e,
            });
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                remove_files(&dir, &name)?;
                return Err(e);
            }
        };
        let Some(process) = ProcessRecord::of(child.id()) else {
            // Gone before /proc could be read: it failed at once.
            let cable = Cable {
                process: ProcessRecord {
                    pid: child.id(),
                    start_time: 0,
                },
                name,
                dir,
                sides,
            };
            return Err(cable.failed_to_start(None));
        };
        let cable = Cable {
            name,
            dir,
            process,
            sides,
        };
        if let Err(e) = process.write(&cable.file("pid")) {
            cable.kill();
            remove_files(&cable.dir, &cable.name)?;
            return Err(e);
        }
        // `child` is dropped without a wait: `liveness` reaps it, here or
        // never (once this process exits, init does).
        drop(child);
        let settled = Instant::now() + SETTLE;
        while Instant::now() < settled {
            if let Liveness::Exited(code) = cable.process.liveness() {
                return Err(cable.failed_to_start(code));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(cable)
    }

    /// Cable `name` recorded in `dir` by [`Cable::start`], maybe in another
    /// process; [`Error::NotFound`] when there is none (never started, or
    /// stopped). The cable may have gone down since: see
    /// [`Cable::is_alive`].
    pub fn open(dir: impl AsRef<Path>, name: &str) -> Result<Cable> {
        let name = SafeName::new(name)?.to_string();
        let dir = dir.as_ref();
        let not_found = || Error::NotFound {
            domain: format!("cable {name}"),
        };
        let dir = match dir.canonicalize() {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let Some(process) = ProcessRecord::read(&file(&dir, &name, "pid"))? else {
            return Err(not_found());
        };
        let sides_path = file(&dir, &name, "sides");
        let bytes = fs::read(&sides_path).map_err(|e| Error::io(&sides_path, e))?;
        let sides = serde_json::from_slice(&bytes).map_err(|e| {
            Error::io(
                &sides_path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        Ok(Cable {
            name,
            dir,
            process,
            sides,
        })
    }

    /// The cable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of its `dpipe` (also the process group of both sides).
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The file that collects what the cable's processes print.
    pub fn log_path(&self) -> PathBuf {
        self.file("log")
    }

    /// Is the cable up? False for good once either side has exited
    /// (`dpipe` then exits too); a recycled pid never counts as the cable.
    pub fn is_alive(&self) -> bool {
        self.process.liveness() == Liveness::Alive
    }

    /// Take the cable down: the whole group (dpipe and both sides) ends and
    /// the cable's files go. Stopping a stopped or dead cable is fine.
    pub fn stop(&self) -> Result<()> {
        // dpipe ends both sides on SIGTERM; SIGKILL whatever is left.
        self.process.signal(libc::SIGTERM);
        self.process.wait_exit(Duration::from_secs(3));
        if !self.kill() {
            return Err(Error::Timeout {
                what: format!("cable {}", self.name),
                op: "stop",
                after: Duration::from_secs(13),
            });
        }
        remove_files(&self.dir, &self.name)
    }

    /// SIGKILL the group, then each member still found in it (sides that
    /// outlived a killed dpipe); true once none is left.
    fn kill(&self) -> bool {
        self.process.signal_group(libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let members = self.members();
            // Each is in our group and runs one of our recorded command lines.
            for &pid in &members {
                crate::uml::process::kill(pid, libc::SIGKILL);
            }
            if members.is_empty() && self.process.liveness() != Liveness::Alive {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Live processes in the cable's process group that run exactly one of
    /// its two sides: the group id alone could belong to a new group once
    /// ours was empty, the command lines guard against that.
    fn members(&self) -> Vec<u32> {
        let wanted: Vec<Vec<u8>> = [&self.sides.left, &self.sides.right]
            .into_iter()
            .map(|argv| cmdline_bytes(argv))
            .collect();
        crate::uml::process::live_group_members(self.process.pid, |cmdline| {
            wanted.iter().any(|w| w.as_slice() == cmdline)
        })
    }

    fn failed_to_start(&self, code: Option<i32>) -> Error {
        // The other side may still be writing its reason to the log.
        self.kill();
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let status = match code {
            Some(code) => format!("exit status: {code}"),
            None => "exited".to_string(),
        };
        // The error is what matters; leftovers are cleared by the next start.
        let _ = remove_files(&self.dir, &self.name);
        Error::Command {
            program: format!("{} (cable {})", Self::PROGRAM, self.name),
            status,
            stderr: tail(&log, 2000).trim().to_string(),
        }
    }

    fn file(&self, ext: &str) -> PathBuf {
        file(&self.dir, &self.name, ext)
    }
}

impl VdeSwitch {
    /// The command that plugs a cable into this switch instance:
    /// `["vde_plug", CTL_DIR]`, a side for [`Cable::start`].
    pub fn plug_argv(&self) -> Vec<OsString> {
        vec![OsString::from("vde_plug"), self.ctl_dir().into_os_string()]
    }
}

fn file(dir: &Path, name: &str, ext: &str) -> PathBuf {
    dir.join(format!("{name}.{ext}"))
}

fn remove_files(dir: &Path, name: &str) -> Result<()> {
    for ext in ["pid", "sides", "log"] {
        let path = file(dir, name, ext);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(())
}

/// An argv as `/proc/PID/cmdline` shows it: each argument NUL-terminated.
fn cmdline_bytes(argv: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in argv {
        out.extend_from_slice(OsStr::as_bytes(a));
        out.push(0);
    }
    out
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_matches_proc_format() {
        let argv = [OsString::from("vde_plug"), OsString::from("/x/ctl")];
        assert_eq!(cmdline_bytes(&argv), b"vde_plug\0/x/ctl\0");
    }

    #[test]
    fn a_side_with_a_lone_equals_sign_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = [OsString::from("cat"), OsString::from("=")];
        let good = [OsString::from("cat")];
        assert!(matches!(
            Cable::start(dir.path(), "c", &bad, &good),
            Err(Error::Backend { .. })
        ));
        assert!(matches!(
            Cable::open(dir.path(), "c"),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn a_side_that_fails_at_once_is_reported_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-switch");
        let plug = [OsString::from("vde_plug"), missing.into_os_string()];
        let err = Cable::start(dir.path(), "c", &plug, &[OsString::from("cat")]).unwrap_err();
        assert!(
            matches!(&err, Error::Command { stderr, .. } if stderr.contains("no-such-switch")),
            "{err}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
