//! The state store: what has been done to a project, kept on disk.
//!
//! One folder per project (mode 0700) holds `state.json` (mode 0600) — the
//! project as last applied, every host's backend identity (backend, domid or
//! pid, disks) and every switch's (socket, bridge, pid) — and a `lock` file.
//! `state.json` is replaced atomically (write a temporary file, fsync,
//! rename, fsync the folder), so a crash at any moment leaves either the old
//! or the new state, never a torn one. Writers hold a [`ProjectLock`]
//! (`flock` on the lock file), so two executors never interleave.
//!
//! ```
//! use mln_lang::state::{State, StateStore};
//! let root = tempfile::tempdir().unwrap();
//! let store = StateStore::open(root.path(), "lab").unwrap();
//! let lock = store.lock().unwrap();
//! store.save(&lock, &State::new("lab")).unwrap();
//! assert_eq!(store.load().unwrap().unwrap().project, "lab");
//! ```

mod atomic;
mod lock;

use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use crate::plan::recorded::{DomainRecord, HostRecord, State, SwitchRecord, FORMAT_VERSION};
pub use atomic::write_atomic;
pub use lock::ProjectLock;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

/// What can go wrong with the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The new state could not be written (a full disk, say); the file
    /// still holds the state before it, whole.
    #[error(
        "{path}: cannot record the new state: {source}; the file still holds the previous state"
    )]
    Save {
        /// The state file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the project's lock.
    #[error("project {project} is locked by {}", match .pid { Some(p) => format!("pid {p}"), None => "another process".to_string() })]
    Locked {
        /// The project.
        project: String,
        /// The holder's process id, when it wrote one.
        pid: Option<u32>,
    },
    /// `state.json` is not valid.
    #[error("{path}: corrupt state: {source} (`mln recover -p PROJECT` removes what the project still runs)")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// Why it could not be read.
        source: serde_json::Error,
    },
    /// `state.json` was written by a newer MLN.
    #[error("{path}: state format {found} is newer than this MLN understands ({FORMAT_VERSION})")]
    Version {
        /// The state file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The project name would not be a safe folder name.
    #[error(transparent)]
    Name(#[from] mln_core::Error),
    /// No state folder could be chosen (no `$HOME`).
    #[error("no state folder: set $XDG_STATE_HOME or $HOME, or pass one")]
    NoStateDir,
    /// A lock from another store was passed to [`StateStore::save`].
    #[error("project {project}: the lock held is for another project")]
    WrongLock {
        /// The project being saved.
        project: String,
    },
}

impl StateError {
    fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StateError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`StateError`].
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// The state folder of one project.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    project: String,
}

impl StateStore {
    /// The default root of state folders: `/var/lib/mln` for root, else
    /// `$XDG_STATE_HOME/mln`, else `~/.local/state/mln`.
    pub fn default_root() -> Result<PathBuf> {
        if rustix::process::geteuid().is_root() {
            return Ok(PathBuf::from("/var/lib/mln"));
        }
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            return Ok(PathBuf::from(x).join("mln"));
        }
        match std::env::var_os("HOME").filter(|x| !x.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".local/state/mln")),
            None => Err(StateError::NoStateDir),
        }
    }

    /// The store of `project` under `root` (created, mode 0700, when
    /// missing).
    pub fn open(root: impl AsRef<Path>, project: &str) -> Result<Self> {
        mln_core::SafeName::new(project)?;
        let root = root.as_ref();
        let dir = root.join(project);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| StateError::io(&dir, e))?;
        // A folder made earlier by someone else's umask is tightened too.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| StateError::io(&dir, e))?;
        Ok(StateStore {
            dir,
            project: project.to_string(),
        })
    }

    /// The store of `project` under [`StateStore::default_root`].
    pub fn open_default(project: &str) -> Result<Self> {
        Self::open(Self::default_root()?, project)
    }

    /// Names of the projects that have a state under `root`, sorted.
    pub fn list(root: impl AsRef<Path>) -> Result<Vec<String>> {
        let root = root.as_ref();
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::io(root, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StateError::io(root, e))?;
            if entry.path().join(STATE_FILE).is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The project's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Take the project's lock, failing at once with
    /// [`StateError::Locked`] when another process holds it.
    pub fn lock(&self) -> Result<ProjectLock> {
        ProjectLock::acquire(&self.dir.join(LOCK_FILE), &self.project, false)
    }

    /// Take the project's lock, waiting for its holder to let go.
    pub fn lock_wait(&self) -> Result<ProjectLock> {
        ProjectLock::acquire(&self.dir.join(LOCK_FILE), &self.project, true)
    }

    /// Read the recorded state; `None` when nothing was ever recorded.
    /// Leftover temporary files of an interrupted write are ignored.
    pub fn load(&self) -> Result<Option<State>> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StateError::io(&path, e)),
        };
        #[derive(serde::Deserialize)]
        struct Version {
            format_version: u32,
        }
        let v: Version = serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        if v.format_version > FORMAT_VERSION {
            return Err(StateError::Version {
                path,
                found: v.format_version,
            });
        }
        let state = serde_json::from_slice(&bytes)
            .map_err(|source| StateError::Corrupt { path, source })?;
        Ok(Some(state))
    }

    /// Replace the recorded state atomically. Needs the project's lock.
    pub fn save(&self, lock: &ProjectLock, state: &State) -> Result<()> {
        if !lock.is_for(&self.dir.join(LOCK_FILE)) {
            return Err(StateError::WrongLock {
                project: self.project.clone(),
            });
        }
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: self.dir.join(STATE_FILE),
            source,
        })?;
        bytes.push(b'\n');
        write_atomic(&self.dir, STATE_FILE, |f| f.write_all(&bytes)).map_err(|source| {
            StateError::Save {
                path: self.dir.join(STATE_FILE),
                source,
            }
        })
    }

    /// Forget the project: delete its state file (the folder and lock file
    /// go when the lock is released by [`StateStore::remove_dir`]).
    pub fn clear(&self, lock: &ProjectLock) -> Result<()> {
        if !lock.is_for(&self.dir.join(LOCK_FILE)) {
            return Err(StateError::WrongLock {
                project: self.project.clone(),
            });
        }
        let path = self.dir.join(STATE_FILE);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io(&path, e)),
        }
        atomic::sync_dir(&self.dir).map_err(|e| StateError::io(&self.dir, e))
    }

    /// Move a state file that cannot be read out of the project's folder,
    /// to `ROOT/PROJECT.damaged-state-SECONDS.json` beside it, so that the
    /// project can be recovered (see `mln recover`) and the file still be
    /// looked at; returns where it went.
    pub fn set_aside(&self, lock: &ProjectLock) -> Result<PathBuf> {
        if !lock.is_for(&self.dir.join(LOCK_FILE)) {
            return Err(StateError::WrongLock {
                project: self.project.clone(),
            });
        }
        let from = self.dir.join(STATE_FILE);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let root = self.dir.parent().unwrap_or(&self.dir);
        let to = root.join(format!("{}.damaged-state-{secs}.json", self.project));
        fs::rename(&from, &to).map_err(|e| StateError::io(&from, e))?;
        atomic::sync_dir(root).map_err(|e| StateError::io(root, e))?;
        Ok(to)
    }

    /// Delete the project's folder once its state is cleared, releasing
    /// `lock`. Files other executors' backends left there (sockets, disks)
    /// go too.
    pub fn remove_dir(self, lock: ProjectLock) -> Result<()> {
        self.clear(&lock)?;
        let r = fs::remove_dir_all(&self.dir);
        drop(lock);
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // A project a user was given in a folder of root's (`mln
            // class`): everything in it is gone, the empty folder is
            // root's to remove.
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    && fs::read_dir(&self.dir).is_ok_and(|mut d| d.next().is_none()) =>
            {
                Ok(())
            }
            Err(e) => Err(StateError::io(&self.dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{HostSpec, SwitchSpec};
    use mln_core::BackendKind;

    fn sample() -> State {
        let mut s = State::new("lab");
        let mut rec = HostRecord::new(HostSpec::new("router"));
        rec.disk_ready = true;
        rec.disks.push("/var/lib/mln/lab/router.img".into());
        rec.domain = Some(DomainRecord {
            name: "lab.router".into(),
            backend: BackendKind::Uml,
            id: 4242,
            max_memory: 128 << 20,
            max_vcpus: 1,
            started: true,
        });
        s.hosts.insert("router".into(), rec);
        s.switches.insert(
            "left".into(),
            SwitchRecord {
                spec: SwitchSpec::new("left"),
                socket: Some("/tmp/x/left".into()),
                bridge: None,
                pid: Some(77),
            },
        );
        s
    }

    #[test]
    fn state_round_trips_through_the_store() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        assert!(store.load().unwrap().is_none());
        let lock = store.lock().unwrap();
        let s = sample();
        store.save(&lock, &s).unwrap();
        assert_eq!(store.load().unwrap(), Some(s));
        assert_eq!(StateStore::list(root.path()).unwrap(), vec!["lab"]);
    }

    #[test]
    fn folder_and_file_are_private() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let lock = store.lock().unwrap();
        store.save(&lock, &sample()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.dir().join(STATE_FILE)), 0o600);
        assert_eq!(mode(&store.dir().join(LOCK_FILE)), 0o600);
    }

    #[test]
    fn a_failed_write_leaves_the_previous_state() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let lock = store.lock().unwrap();
        let before = sample();
        store.save(&lock, &before).unwrap();
        // The writer dies half way through the new content.
        let err = write_atomic(store.dir(), STATE_FILE, |f| {
            f.write_all(b"{\"format_version\": 1, \"proj")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(store.load().unwrap(), Some(before));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn a_torn_temporary_file_from_a_crash_is_ignored_and_replaced() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let lock = store.lock().unwrap();
        store.save(&lock, &sample()).unwrap();
        // What a `kill -9` between write and rename leaves.
        let stale = store.dir().join(".state.json.tmp.99999");
        fs::write(&stale, b"{\"format_ver").unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
        let mut next = sample();
        next.hosts.clear();
        store.save(&lock, &next).unwrap();
        assert_eq!(store.load().unwrap(), Some(next));
        assert!(!stale.exists());
    }

    #[test]
    fn unwritable_folder_fails_and_keeps_the_previous_state() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let lock = store.lock().unwrap();
        store.save(&lock, &sample()).unwrap();
        // A file where the temporary file must go makes creating it fail,
        // even for root (permission bits would not stop root).
        let blocker = store
            .dir()
            .join(format!(".{STATE_FILE}.tmp.{}", std::process::id()));
        fs::create_dir(&blocker).unwrap();
        let mut next = sample();
        next.hosts.clear();
        assert!(store.save(&lock, &next).is_err());
        assert_eq!(store.load().unwrap(), Some(sample()));
        fs::remove_dir(&blocker).unwrap();
    }

    #[test]
    fn newer_format_is_refused_not_misread() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        fs::write(
            store.dir().join(STATE_FILE),
            br#"{"format_version": 99, "project": "lab"}"#,
        )
        .unwrap();
        assert!(matches!(
            store.load(),
            Err(StateError::Version { found: 99, .. })
        ));
        fs::write(store.dir().join(STATE_FILE), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn second_locker_gets_a_clear_error_naming_the_holder() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let held = store.lock().unwrap();
        // flock locks belong to open files, so a second open in this process
        // contends exactly like another process would.
        let err = store.lock().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("project lab is locked by pid {}", std::process::id())
        );
        drop(held);
        let again = store.lock().unwrap();
        drop(again);
    }

    #[test]
    fn waiting_locker_proceeds_when_the_holder_lets_go() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let held = store.lock().unwrap();
        let s2 = store.clone();
        let waiter = std::thread::spawn(move || {
            let l = s2.lock_wait().unwrap();
            s2.save(&l, &State::new("lab")).unwrap();
        });
        store.save(&held, &sample()).unwrap();
        drop(held);
        waiter.join().unwrap();
        assert_eq!(store.load().unwrap(), Some(State::new("lab")));
    }

    #[test]
    fn a_waiter_on_a_removed_project_does_not_share_a_lock() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let held = store.lock().unwrap();
        let s2 = store.clone();
        let waiter = std::thread::spawn(move || {
            let l = s2.lock_wait().unwrap();
            // Whoever comes next contends with this holder.
            assert!(matches!(s2.lock(), Err(StateError::Locked { .. })));
            drop(l);
        });
        // Give the waiter time to block on the old file; the assertions
        // above hold whatever the timing.
        std::thread::sleep(std::time::Duration::from_millis(50));
        store.clone().remove_dir(held).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn a_lock_of_another_project_cannot_save() {
        let root = tempfile::tempdir().unwrap();
        let a = StateStore::open(root.path(), "a").unwrap();
        let b = StateStore::open(root.path(), "b").unwrap();
        let la = a.lock().unwrap();
        assert!(matches!(
            b.save(&la, &State::new("b")),
            Err(StateError::WrongLock { .. })
        ));
    }

    #[test]
    fn unsafe_project_names_are_refused() {
        let root = tempfile::tempdir().unwrap();
        assert!(StateStore::open(root.path(), "../etc").is_err());
        assert!(StateStore::open(root.path(), "").is_err());
    }

    #[test]
    fn remove_dir_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path(), "lab").unwrap();
        let lock = store.lock().unwrap();
        store.save(&lock, &sample()).unwrap();
        let dir = store.dir().to_path_buf();
        store.remove_dir(lock).unwrap();
        assert!(!dir.exists());
        assert!(StateStore::list(root.path()).unwrap().is_empty());
    }
}
