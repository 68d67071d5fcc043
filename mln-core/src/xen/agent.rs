//! `mln exec` on Xen: a PV guest's line to MLN's agent is a channel
//! (xl.cfg's `channel = [ "name=org.mln.agent,connection=socket,path=…" ]`),
//! a second PV console that the guest sees as `/dev/hvc1` and whose dom0
//! end QEMU serves as a unix socket under [`AGENT_DIR`]. The protocol on
//! it is [`crate::exec`]'s, as on UML's and QEMU's second serial line.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::exec::ExecOutput;

/// The channel's name, as the guest finds it in xenstore.
pub const CHANNEL_NAME: &str = "org.mln.agent";
/// Where dom0 keeps the channels' sockets (root's only).
pub const AGENT_DIR: &str = "/run/mln/xen";

/// The socket of domain `name`'s channel.
pub fn socket(name: &str) -> PathBuf {
    Path::new(AGENT_DIR).join(format!("{name}.agent"))
}

/// The folder QEMU makes the sockets in, made when missing (QEMU makes
/// only the socket).
pub fn prepare() -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(AGENT_DIR)
        .map_err(|e| Error::io(Path::new(AGENT_DIR), e))
}

/// Run `argv` in domain `name` through its channel, at most `timeout`.
pub fn exec(name: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
    let path = socket(name);
    // No socket, not even the folder: the domain was made without the
    // channel. Said before the lock beside the socket is taken.
    if !path.exists() {
        return Err(no_channel(name));
    }
    crate::exec::locked(&path.with_extension("exec-lock"), || {
        let stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => no_channel(name),
            _ => Error::io(&path, e),
        })?;
        stream
            .set_nonblocking(true)
            .map_err(|e| Error::io(&path, e))?;
        crate::exec::run(name, stream, argv, timeout)
    })
}

/// Domain `name` was made without a channel for MLN's agent.
fn no_channel(name: &str) -> Error {
    Error::Backend {
        what: name.to_string(),
        message: "it has no channel for MLN's agent (made before this MLN, or from a template \
                  that names no boot marker, or whose marker the server could not read: its \
                  `mln agent` log says which): `mln exec` cannot reach it"
            .into(),
    }
}

/// Remove what domain `name`'s channel left in dom0 (best effort: QEMU
/// removes a stale socket itself before it listens).
pub fn forget(name: &str) {
    let path = socket(name);
    let _ = fs::remove_file(path.with_extension("exec-lock"));
    let _ = fs::remove_file(path);
}
