//! What crashed runs left on this machine, across projects (`mln clean`):
//!
//! - a project folder with a lock file but no record (a run that died
//!   before recording anything, or a removal cut short): what still runs
//!   from it is ended as [`super::recover::sweep`] ends it, then the
//!   folder goes;
//! - scratch files: hidden entries whose name ends in the id of a process
//!   that is gone (`.fetch-PID`, `.state.json.tmp.PID`, `.NAME.part-PID`,
//!   `.NAME.import-PID`, ...: every temporary name mln gives), in the
//!   state root, the templates and kernels folders and each project's
//!   folder and `disks` folder; there, under the project's lock, also
//!   hidden `*.tmp` files and a move's staging folder
//!   (`disks/.HOST.incoming`);
//! - disks (`disks/HOST.cow`, `.qcow2`, `.config`, `.swap`) of hosts the
//!   project's record does not have.
//!
//! A recorded project's own files and processes are never touched, and a
//! project whose lock another process holds (a run under way) is left
//! alone and reported. With `dry_run` nothing is removed or ended: the
//! answer says what would be.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::machine::Backends;
use crate::state::{StateError, StateStore};

/// How long processes of an unrecorded folder have to end after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The file or folder.
    pub path: PathBuf,
    /// What it is, for people (`scratch file`, `unrecorded project
    /// folder (2 processes)`, `disk of host web, not in the record`).
    pub what: String,
}

/// What [`clean`] found, and removed unless it was a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Each leftover.
    pub leftovers: Vec<Leftover>,
    /// Processes ended (or, in a dry run, that would be).
    pub processes: usize,
    /// Projects skipped because a run holds their lock.
    pub busy: Vec<String>,
    /// What could not be removed, with why.
    pub failed: Vec<String>,
}

/// Where [`clean`] looks besides the projects under the state root.
#[derive(Debug, Clone)]
pub struct CleanPlaces {
    /// The state root: one folder per project.
    pub root: PathBuf,
    /// Other folders whose scratch files go (templates, kernels).
    pub folders: Vec<PathBuf>,
}

/// Find what crashed runs left (see the module) and, unless `dry_run`,
/// remove it. `backends` gives this machine's backends for a project
/// folder, to end the Xen domains of an unrecorded project.
pub fn clean(
    places: &CleanPlaces,
    dry_run: bool,
    backends: &dyn Fn(&Path) -> Option<Box<dyn Backends>>,
) -> Result<Cleaned, StateError> {
    let mut out = Cleaned::default();
    for folder in std::iter::once(&places.root).chain(&places.folders) {
        scratch(folder, false, dry_run, &mut out);
    }
    let entries = match fs::read_dir(&places.root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(StateError::Io {
                path: places.root.clone(),
                source: e,
            })
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("lock").is_file() && !places.folders.contains(p))
        .collect();
    dirs.sort();
    for dir in dirs {
        let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        let store = StateStore::open(&places.root, &name)?;
        let lock = match store.lock() {
            Ok(l) => l,
            Err(StateError::Locked { .. }) => {
                out.busy.push(name);
                continue;
            }
            Err(e) => return Err(e),
        };
        let state = match store.load() {
            Ok(s) => s,
            // A damaged record is `mln recover`'s to deal with.
            Err(StateError::Corrupt { .. } | StateError::Version { .. }) => continue,
            Err(e) => return Err(e),
        };
        match state {
            None => {
                let running = super::recover::processes_inside(&dir);
                out.leftovers.push(Leftover {
                    path: dir.clone(),
                    what: format!(
                        "project folder without a record ({} process(es) running from it)",
                        running.len()
                    ),
                });
                if dry_run {
                    out.processes += running.len();
                    continue;
                }
                if let Some(b) = backends(&dir) {
                    let swept = super::recover::sweep(&name, &dir, b.as_ref(), GRACE);
                    out.processes += swept.processes + swept.domains.len();
                    if !swept.left.is_empty() {
                        out.failed
                            .push(format!("{name}: processes {:?} would not end", swept.left));
                        continue;
                    }
                }
                if let Err(e) = store.remove_dir(lock) {
                    out.failed.push(e.to_string());
                }
            }
            Some(state) => {
                // Under the project's lock no writer of its own is at
                // work: any temporary file there is a dead one's.
                scratch(&dir, true, dry_run, &mut out);
                let disks = dir.join("disks");
                scratch(&disks, true, dry_run, &mut out);
                for (path, host) in unrecorded_disks(&disks, |h| state.hosts.contains_key(h)) {
                    out.leftovers.push(Leftover {
                        path: path.clone(),
                        what: format!("disk of host {host}, which {name}'s record does not have"),
                    });
                    if !dry_run {
                        remove(&path, &mut out);
                    }
                }
                drop(lock);
            }
        }
    }
    Ok(out)
}

/// Scratch entries directly in `folder`: hidden names ending in the id of
/// a gone process, and a move's staging folders; with `locked` (the
/// folder's project lock held) also hidden `*.tmp` files.
fn scratch(folder: &Path, locked: bool, dry_run: bool, out: &mut Cleaned) {
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let hidden = name.strip_prefix('.')?;
            let left = hidden.ends_with(".incoming")
                || (locked && hidden.ends_with(".tmp"))
                || dead_pid_suffix(hidden);
            left.then(|| e.path())
        })
        .collect();
    found.sort();
    for path in found {
        out.leftovers.push(Leftover {
            path: path.clone(),
            what: "scratch left by a run that ended".into(),
        });
        if !dry_run {
            remove(&path, out);
        }
    }
}

/// The name ends in `-PID` or `.PID` of a process that no longer runs.
fn dead_pid_suffix(name: &str) -> bool {
    let Some(at) = name.rfind(['-', '.']) else {
        return false;
    };
    match name[at + 1..].parse::<u32>() {
        Ok(pid) if pid > 0 => !Path::new("/proc").join(pid.to_string()).exists(),
        _ => false,
    }
}

/// Disk files in `disks` (`HOST.cow`, `.qcow2`, `.config`, `.swap`) of
/// hosts `known` says the record does not have.
fn unrecorded_disks(disks: &Path, known: impl Fn(&str) -> bool) -> Vec<(PathBuf, String)> {
    let Ok(entries) = fs::read_dir(disks) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, String)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (host, ext) = name.rsplit_once('.')?;
            let disk = matches!(ext, "cow" | "qcow2" | "config" | "swap");
            (disk && !host.starts_with('.') && !known(host)).then(|| (e.path(), host.to_string()))
        })
        .collect();
    out.sort();
    out
}

fn remove(path: &Path, out: &mut Cleaned) {
    let result = if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => out.failed.push(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{HostRecord, HostSpec, State};

    fn none(_: &Path) -> Option<Box<dyn Backends>> {
        None
    }

    #[test]
    fn leftovers_go_and_what_a_record_owns_stays() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        // A recorded project with host web; a disk of gone host old.
        let lab = StateStore::open(root, "lab").unwrap();
        let lock = lab.lock().unwrap();
        let mut st = State::new("lab");
        st.hosts
            .insert("web".into(), HostRecord::new(HostSpec::new("web")));
        lab.save(&lock, &st).unwrap();
        drop(lock);
        let disks = lab.dir().join("disks");
        fs::create_dir_all(disks.join(".web.incoming")).unwrap();
        for f in ["web.cow", "web.config", "old.cow", "old.swap", ".web.tmp"] {
            fs::write(disks.join(f), b"x").unwrap();
        }
        // Scratch of a gone process (pid 0x7ffffffe is never live) and of
        // this one (kept).
        let gone = format!(".state.json.tmp.{}", 0x7fff_fffe_u32);
        fs::write(lab.dir().join(&gone), b"{").unwrap();
        let mine = format!(".fetch-{}", std::process::id());
        fs::create_dir_all(root.join(&mine)).unwrap();
        fs::create_dir_all(root.join(format!(".fetch-{}", 0x7fff_fffe_u32))).unwrap();
        // A folder with only a lock: a run that died before recording.
        let dead = StateStore::open(root, "dead").unwrap();
        drop(dead.lock().unwrap());
        // A templates folder is no project.
        fs::create_dir_all(root.join("templates")).unwrap();
        fs::write(root.join("templates/t.ext4"), b"t").unwrap();
        let places = CleanPlaces {
            root: root.to_path_buf(),
            folders: vec![root.join("templates")],
        };

        let seen = clean(&places, true, &none).unwrap();
        let paths: Vec<_> = seen.leftovers.iter().map(|l| l.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                root.join(format!(".fetch-{}", 0x7fff_fffe_u32)),
                root.join("dead"),
                lab.dir().join(&gone),
                disks.join(".web.incoming"),
                disks.join(".web.tmp"),
                disks.join("old.cow"),
                disks.join("old.swap"),
            ]
        );
        // A dry run removed nothing.
        assert!(paths.iter().all(|p| p.exists()));

        let done = clean(&places, false, &none).unwrap();
        assert_eq!(done.leftovers, seen.leftovers);
        assert!(done.failed.is_empty(), "{:?}", done.failed);
        assert!(paths.iter().all(|p| !p.exists()), "{paths:?}");
        for kept in [
            disks.join("web.cow"),
            disks.join("web.config"),
            lab.dir().join("state.json"),
            root.join(&mine),
            root.join("templates/t.ext4"),
        ] {
            assert!(kept.exists(), "{} went", kept.display());
        }
        assert!(clean(&places, true, &none).unwrap().leftovers.is_empty());
    }

    #[test]
    fn a_project_a_run_holds_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let busy = StateStore::open(root.path(), "busy").unwrap();
        let _held = busy.lock().unwrap();
        let places = CleanPlaces {
            root: root.path().to_path_buf(),
            folders: Vec::new(),
        };
        let done = clean(&places, false, &none).unwrap();
        assert_eq!(done.busy, vec!["busy".to_string()]);
        assert!(done.leftovers.is_empty());
        assert!(busy.dir().exists());
    }
}
