//! A project switch that is another switch (MLN's `switch NAME { socket
//! PATH }`): the guests plug into a `vde_switch` someone else runs (another
//! project's, a lab's, an administrator's), which is how two projects, or
//! a project and machines outside it, share one network. Nothing is
//! started and nothing of the other switch is ever stopped; a record under
//! the state folder names the socket, so that the switch is listed like
//! the project's own and seen to work while the other switch does:
//!
//! ```text
//! STATE/NAME/joined   the other switch's vde control folder
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use super::{list_recorded, remove_dir_if_empty, remove_if_there, Switch, SwitchStatus};
use crate::domain::Attachment;
use crate::error::{Error, Result};
use crate::name::SafeName;

/// The record's file in the switch's folder.
const RECORD: &str = "joined";

/// A switch joined by its socket; see the module docs.
///
/// ```no_run
/// use mln_core::net::{JoinedSwitch, Switch};
/// let lan = JoinedSwitch::join("lan", "/run/lab/lan.ctl", "/var/lib/mln/lab/switches")?;
/// let attach = lan.attachment(); // the other switch's socket
/// lan.stop()?; // forgets it; the other switch runs on
/// # Ok::<(), mln_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct JoinedSwitch {
    name: String,
    dir: PathBuf,
    socket: PathBuf,
}

impl JoinedSwitch {
    /// Join the `vde_switch` whose control folder is `socket` (the folder
    /// holding its `ctl` socket) as switch `name`, recorded under
    /// `state_dir`. Fails, naming the path, when no switch answers there.
    pub fn join(name: &str, socket: impl AsRef<Path>, state_dir: impl AsRef<Path>) -> Result<Self> {
        let name = SafeName::new(name)?;
        let socket = socket.as_ref();
        if !socket.is_absolute() {
            return Err(Error::UnusablePath {
                path: socket.to_path_buf(),
                what: "switch socket",
                reason: "not an absolute path",
            });
        }
        if !is_vde_socket(socket) {
            return Err(Error::UnusablePath {
                path: socket.to_path_buf(),
                what: "switch socket",
                reason: "no vde_switch control socket (`ctl`) in it: is that switch running?",
            });
        }
        let dir = state_dir.as_ref().join(name.as_str());
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let record = dir.join(RECORD);
        let bytes = socket.as_os_str().as_encoded_bytes();
        fs::write(&record, bytes).map_err(|e| Error::io(&record, e))?;
        Ok(JoinedSwitch {
            name: name.to_string(),
            dir,
            socket: socket.to_path_buf(),
        })
    }

    /// The switch `name` joined earlier under `state_dir`;
    /// [`Error::NotFound`] when there is none.
    pub fn open(name: &str, state_dir: impl AsRef<Path>) -> Result<Self> {
        let name = SafeName::new(name)?;
        let dir = state_dir.as_ref().join(name.as_str());
        let record = dir.join(RECORD);
        let socket = match fs::read_to_string(&record) {
            Ok(s) => PathBuf::from(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    domain: format!("switch {name}"),
                })
            }
            Err(e) => return Err(Error::io(&record, e)),
        };
        Ok(JoinedSwitch {
            name: name.to_string(),
            dir,
            socket,
        })
    }

    /// Every switch joined under `state_dir`.
    pub fn list(state_dir: impl AsRef<Path>) -> Result<Vec<Self>> {
        list_recorded(state_dir.as_ref(), |name, dir| Self::open(name, dir))
    }

    /// The other switch's control folder.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Whether `dir` is a vde control folder: it holds the `ctl` socket.
fn is_vde_socket(dir: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::metadata(dir.join("ctl")).is_ok_and(|m| m.file_type().is_socket())
}

impl Switch for JoinedSwitch {
    fn name(&self) -> &str {
        &self.name
    }

    fn attachment(&self) -> Attachment {
        Attachment::Vde(self.socket.clone())
    }

    /// Up while the other switch's control socket is there (a stopped
    /// `vde_switch` removes it).
    fn status(&self) -> SwitchStatus {
        if is_vde_socket(&self.socket) {
            SwitchStatus::Up
        } else {
            SwitchStatus::Gone
        }
    }

    /// Forget the switch: its record goes, the other switch runs on.
    fn stop(&self) -> Result<()> {
        remove_if_there(&self.dir.join(RECORD))?;
        remove_dir_if_empty(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_where_no_switch_runs_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = dir.path().join("nowhere");
        let e = JoinedSwitch::join("lan", &nowhere, dir.path()).unwrap_err();
        assert!(e.to_string().contains("nowhere"), "{e}");
        assert!(JoinedSwitch::join("lan", "relative/ctl", dir.path()).is_err());
        assert!(JoinedSwitch::join("../x", &nowhere, dir.path()).is_err());
        assert!(JoinedSwitch::list(dir.path()).unwrap().is_empty());
    }
}
