//! Which server placed a host's disks last: a mark beside its root disk
//! (`disks/.HOST.home`) naming that server as the managing side calls it.
//! A server that finds a mark naming another server beside its own view
//! of the disk sees that server's very file (storage both mount, as an
//! NFS export): `mln evacuate` then starts the host from it instead of
//! making it afresh. A copy a server made itself, or was carried to it,
//! names that server, so it is never taken for the lost one's.

use std::path::PathBuf;

use mln_core::{Error, Result, SafeName};

use super::LocalBackends;
use crate::plan::HostSpec;

fn mark_path(b: &LocalBackends, host: &HostSpec) -> Result<PathBuf> {
    let name = SafeName::new(&host.name)?;
    Ok(b.dir().join("disks").join(format!(".{name}.home")))
}

/// Mark `host`'s disks here as placed by `server` (nothing when it has no
/// root disk here).
pub fn claim(b: &LocalBackends, host: &HostSpec, server: &str) -> Result<()> {
    if !b.cow(host)?.0.exists() {
        return Ok(());
    }
    let path = mark_path(b, host)?;
    let tmp = path.with_extension("home-new");
    std::fs::write(&tmp, server).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// The server the mark beside `host`'s root disk here names, if there are
/// both.
pub fn placed_by(b: &LocalBackends, host: &HostSpec) -> Result<Option<String>> {
    if !b.cow(host)?.0.exists() {
        return Ok(None);
    }
    let path = mark_path(b, host)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Remove the mark (with the disks it speaks of).
pub(super) fn forget(b: &LocalBackends, host: &HostSpec) -> Result<()> {
    let path = mark_path(b, host)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
        _ => Ok(()),
    }
}
