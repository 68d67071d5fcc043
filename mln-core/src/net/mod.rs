//! Virtual switches: the layer-2 networks between guests.
//!
//! A project switch is a real switch process, [`VdeSwitch`] (`vde_switch`
//! from Debian's `vde2`), started, watched and stopped here, its sockets and
//! pid file in a state folder the caller chooses (the project's):
//!
//! ```text
//! STATE/NAME/ctl/   vde control folder: what guests attach to
//! STATE/NAME/pid    pid and start time of the switch process
//! ```
//!
//! UML guests attach with `ethN=vde,STATE/NAME/ctl,MAC`: put
//! [`Switch::attachment`] into the interface's
//! [`crate::InterfaceSpec::attach`]. A hub ([`SwitchConfig::hub`]) floods every
//! frame to every port; a switch learns addresses and forwards unicast to one
//! port. Where the backend is Xen and the process is root, a Linux bridge
//! ([`LinuxBridge`], another implementation of [`Switch`]) takes the
//! switch's place, its record in the same folder (`STATE/NAME/bridge.json`);
//! a switch with guests of both kinds is both, joined by a tap port of the
//! `vde_switch` plugged into the bridge ([`LinuxBridge::plug`]). A switch
//! that is another one's socket (MLN's `socket PATH`) is a
//! [`JoinedSwitch`]: nothing started, nothing stopped.
//!
//! ```no_run
//! use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
//! let lan = VdeSwitch::start(&SwitchConfig::new("lan"), "/var/lib/mln/lab/switches")?;
//! let attach = lan.attachment(); // into InterfaceSpec::attach
//! lan.stop()?;
//! # Ok::<(), mln_core::Error>(())
//! ```

pub mod bridge;
pub mod cable;
pub mod entry;
mod iplink;
pub mod joined;
pub mod vxlan;

pub use bridge::LinuxBridge;
pub use cable::Cable;
pub use entry::SwitchEntry;
pub use joined::JoinedSwitch;
pub use vxlan::{Vxlan, VxlanSpec};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::Attachment;
use crate::error::{Error, Result};
use crate::name::SafeName;
use crate::uml::process::{Liveness, ProcessRecord};

/// What a switch should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchConfig {
    /// Switch name (a [`SafeName`]); also its folder's name.
    pub name: String,
    /// Flood every frame to every port (MLN's `hub`).
    pub hub: bool,
    /// Number of ports (default 32).
    pub ports: Option<u32>,
    /// A host tap interface to create and plug in as one more port
    /// (MLN's `tap`; needs root or CAP_NET_ADMIN).
    #[serde(default)]
    pub tap: Option<String>,
}

impl SwitchConfig {
    /// A learning switch with the default number of ports.
    pub fn new(name: &str) -> Self {
        SwitchConfig {
            name: name.to_string(),
            hub: false,
            ports: None,
            tap: None,
        }
    }
}

/// Whether a switch works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchStatus {
    /// A switch process, running; guests can attach.
    Running {
        /// The switch process.
        pid: u32,
    },
    /// A switch in the kernel (a [`LinuxBridge`], no process), up; guests
    /// can attach.
    Up,
    /// Not working without being stopped: the process was killed or
    /// crashed, the bridge was deleted or set down.
    Gone,
}

impl SwitchStatus {
    /// Whether guests can attach ([`SwitchStatus::Running`] or
    /// [`SwitchStatus::Up`]).
    pub fn is_up(&self) -> bool {
        !matches!(self, SwitchStatus::Gone)
    }
}

/// A virtual switch, whatever implements it.
pub trait Switch {
    /// The switch's name.
    fn name(&self) -> &str;
    /// What guest interfaces plug into.
    fn attachment(&self) -> Attachment;
    /// Whether the switch still works.
    fn status(&self) -> SwitchStatus;
    /// Stop the switch and remove its sockets and files.
    fn stop(&self) -> Result<()>;
}

/// A `vde_switch` process.
#[derive(Debug, Clone)]
pub struct VdeSwitch {
    name: String,
    dir: PathBuf,
}

impl VdeSwitch {
    /// The program started.
    pub const PROGRAM: &'static str = "vde_switch";

    /// Start a switch under `state_dir` (created if missing). Fails with
    /// [`Error::AlreadyExists`] when a switch of that name runs there; the
    /// leftovers of a dead one are cleared first.
    pub fn start(spec: &SwitchConfig, state_dir: impl AsRef<Path>) -> Result<Self> {
        // Every name is checked before anything is made.
        let tap = spec.tap.as_deref().map(SafeName::interface).transpose()?;
        let sw = Self::at(&spec.name, state_dir.as_ref(), true)?;
        if let SwitchStatus::Running { .. } = sw.status() {
            return Err(Error::AlreadyExists {
                domain: format!("switch {}", sw.name),
            });
        }
        sw.clear()?;
        fs::create_dir_all(&sw.dir).map_err(|e| Error::io(&sw.dir, e))?;
        let ctl = sw.ctl_dir();
        let ctl_socket = ctl.join("ctl");
        if ctl_socket.as_os_str().len() > crate::uml::MAX_SOCKET_PATH - 20 {
            return Err(Error::UnusablePath {
                path: ctl,
                what: "vde switch socket folder",
                reason: "too long for the unix sockets made in it",
            });
        }
        let pidfile = sw.dir.join("daemon.pid");
        let mut cmd = Command::new(Self::PROGRAM);
        cmd.arg("--sock")
            .arg(&ctl)
            .args(["--mode", "0600", "--dirmode", "0700"])
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--daemon");
        if spec.hub {
            cmd.arg("--hub");
        }
        if let Some(n) = spec.ports {
            cmd.arg("--numports").arg(n.to_string());
        }
        if let Some(tap) = &tap {
            cmd.arg("--tap").arg(tap.as_str());
        }
        // With --daemon the switch forks into its own session and the
        // command returns once it is set up.
        let out = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::Spawn {
                program: Self::PROGRAM.to_string(),
                source: e,
            })?;
        if !out.status.success() {
            return Err(Error::Command {
                program: Self::PROGRAM.to_string(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let proc = loop {
            let pid = fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if let Some(proc) = pid.and_then(ProcessRecord::of) {
                if ctl_socket.exists() {
                    break proc;
                }
            }
            if Instant::now() >= deadline {
                if let Some(p) = pid.and_then(ProcessRecord::of) {
                    p.kill_group(&ctl.display().to_string());
                }
                return Err(Error::Timeout {
                    what: format!("switch {}", sw.name),
                    op: "start",
                    after: Duration::from_secs(10),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        proc.write(&sw.dir.join("pid"))?;
        Ok(sw)
    }

    /// The switch `name` under `state_dir`, started earlier (maybe by
    /// another process); [`Error::NotFound`] when it was never started or
    /// was stopped.
    pub fn open(name: &str, state_dir: impl AsRef<Path>) -> Result<Self> {
        let sw = Self::at(name, state_dir.as_ref(), false)?;
        if !sw.dir.join("pid").exists() {
            return Err(Error::NotFound {
                domain: format!("switch {name}"),
            });
        }
        Ok(sw)
    }

    /// Every switch recorded under `state_dir`, running or gone.
    pub fn list(state_dir: impl AsRef<Path>) -> Result<Vec<Self>> {
        list_recorded(state_dir.as_ref(), |name, dir| Self::open(name, dir))
    }

    fn at(name: &str, state_dir: &Path, create: bool) -> Result<Self> {
        let name = SafeName::new(name)?;
        if create {
            fs::create_dir_all(state_dir).map_err(|e| Error::io(state_dir, e))?;
        }
        let state_dir = state_dir
            .canonicalize()
            .map_err(|e| Error::io(state_dir, e))?;
        Ok(VdeSwitch {
            dir: state_dir.join(name.as_str()),
            name: name.to_string(),
        })
    }

    /// The vde control folder (what `ethN=vde,...` names).
    pub fn ctl_dir(&self) -> PathBuf {
        self.dir.join("ctl")
    }

    fn process(&self) -> Option<ProcessRecord> {
        ProcessRecord::read(&self.dir.join("pid")).ok().flatten()
    }

    /// Remove the switch's own files; the folder goes with them unless
    /// something else of the switch (a [`LinuxBridge`] record) is there.
    fn clear(&self) -> Result<()> {
        let ctl = self.ctl_dir();
        match fs::remove_dir_all(&ctl) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&ctl, e)),
        }
        for file in ["pid", "daemon.pid", "pid.tmp"] {
            remove_if_there(&self.dir.join(file))?;
        }
        let entries = self.dir.join(entry::ENTRIES);
        match fs::remove_dir_all(&entries) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&entries, e)),
        }
        remove_dir_if_empty(&self.dir)
    }
}

impl Switch for VdeSwitch {
    fn name(&self) -> &str {
        &self.name
    }

    fn attachment(&self) -> Attachment {
        Attachment::Vde(self.ctl_dir())
    }

    fn status(&self) -> SwitchStatus {
        match self.process() {
            Some(p) if p.liveness() == Liveness::Alive => SwitchStatus::Running { pid: p.pid },
            _ => SwitchStatus::Gone,
        }
    }

    fn stop(&self) -> Result<()> {
        if let Some(p) = self.process() {
            // SIGTERM lets vde_switch remove its sockets; SIGKILL if it
            // does not go.
            p.signal(libc::SIGTERM);
            if !p.wait_exit(Duration::from_secs(5))
                && !p.kill_group(&self.ctl_dir().display().to_string())
            {
                return Err(Error::Timeout {
                    what: format!("switch {}", self.name),
                    op: "stop",
                    after: Duration::from_secs(15),
                });
            }
        }
        self.clear()
    }
}

/// What `open(NAME, state_dir)` finds for every folder entry of
/// `state_dir` (entries it refuses are skipped), sorted by entry name; an
/// absent `state_dir` holds nothing.
/// Remove file `path`; one already gone is no error.
pub(crate) fn remove_if_there(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Remove a switch's folder once nothing of it is left there (another
/// part of the same switch may still keep its record in it).
pub(crate) fn remove_dir_if_empty(dir: &Path) -> Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

pub(crate) fn list_recorded<T>(
    state_dir: &Path,
    open: impl Fn(&str, &Path) -> Result<T>,
) -> Result<Vec<T>> {
    let entries = match fs::read_dir(state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(state_dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(state_dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            if let Ok(item) = open(name, state_dir) {
                found.push((name.to_string(), item));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, item)| item).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_switch_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            VdeSwitch::start(&SwitchConfig::new("../x"), dir.path()),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            VdeSwitch::open("lan", dir.path()),
            Err(Error::NotFound { .. })
        ));
    }
}
