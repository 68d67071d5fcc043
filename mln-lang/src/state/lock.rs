//! One writer per project: an exclusive `flock` on the project's lock file.
//!
//! The kernel drops the lock when its holder exits, however it exits
//! (`kill -9` included), so a crashed executor never leaves a project
//! locked. The holder writes its pid into the file so a contender can say
//! who holds it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::{Result, StateError};

/// The held lock of one project; released on drop.
#[derive(Debug)]
pub struct ProjectLock {
    file: File,
    path: PathBuf,
}

impl ProjectLock {
    pub(super) fn acquire(path: &Path, project: &str, wait: bool) -> Result<Self> {
        let io_err = |e: io::Error| StateError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let op = if wait {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        let mut file = loop {
            // `remove` deletes the folder (and this file) while holding the
            // lock; whoever waited on the deleted file must not go on
            // believing it holds the lock of a new one, so it starts over.
            if let Some(dir) = path.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_err)?;
            }
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(io_err)?;
            match flock(&file, op) {
                Ok(()) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let mut text = String::new();
                    // The holder may be between truncate and write: no pid then.
                    let _ = file.read_to_string(&mut text);
                    return Err(StateError::Locked {
                        project: project.to_string(),
                        pid: text.trim().parse().ok(),
                    });
                }
                Err(e) => return Err(io_err(e.into())),
            }
            let held = file.metadata().map_err(io_err)?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => break file,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e)),
            }
        };
        // Only for a contender's message: a full disk must not keep the
        // lock from being taken (the state write after it says so).
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(ProjectLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// True when this is the lock at `path`.
    pub(super) fn is_for(&self, path: &Path) -> bool {
        self.path == path
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ProjectLock {
    fn drop(&mut self) {
        // Clear the pid so a later contender does not blame a gone process.
        let _ = self.file.set_len(0);
        // Unlock explicitly rather than by closing: a child forked by
        // another thread at this moment holds a copy of the descriptor
        // until it execs, and closing ours alone would leave the lock held
        // through that copy. Unlocking releases the open file description.
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}
