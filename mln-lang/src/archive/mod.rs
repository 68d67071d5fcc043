//! A stopped project as one file (`mln export`, `mln import`): its record
//! and its hosts' disks, to bring it back on this or another machine.
//!
//! The archive is a tar file:
//!
//! ```text
//! mln-export.json      what it holds (ExportManifest)
//! state.json           the project's record: the resolved project as last
//!                      applied, every host's spec and disks
//! disks/HOST.disks     per host with disks, its overlay and configuration
//!                      disk as one mln_core::disk::transfer stream
//!                      (compressed, checksummed, zero runs as lengths, so
//!                      a sparse disk stays small and lands sparse)
//! ```
//!
//! Templates are not in it: an overlay is imported over the template of
//! the same name in the importing machine's templates folder, which must
//! have the same content (size and SHA-256), as a move between servers
//! does. Only hosts on this machine are exported: a project with hosts on
//! other servers is refused.

mod tar;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use mln_core::disk::transfer::FileEntry;
use serde::{Deserialize, Serialize};

use crate::agent::disks;
use crate::machine::LocalBackends;
use crate::plan::State;
use crate::state::{StateError, StateStore};

/// The archive format this library writes and reads.
pub const ARCHIVE_VERSION: u32 = 1;

const MANIFEST: &str = "mln-export.json";
const STATE: &str = "state.json";

/// What an archive holds, its first member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// [`ARCHIVE_VERSION`] when written.
    pub format_version: u32,
    /// The project.
    pub project: String,
    /// The project's folder on the exporting machine (recorded paths
    /// under it are moved under the importing machine's).
    pub dir: PathBuf,
    /// Every host, in name order.
    pub hosts: Vec<ExportedHost>,
}

/// One host of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedHost {
    /// The host.
    pub name: String,
    /// Its disks are in the archive (`disks/NAME.disks`); a host never
    /// built has none.
    pub disks: bool,
    /// The template its overlay reads unchanged blocks from, as it was on
    /// the exporting machine.
    pub template: Option<FileEntry>,
}

/// What went wrong exporting or importing a project.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading or writing the archive or a file of the project failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The archive is not one `mln export` wrote, or is damaged.
    #[error("{path}: {why}")]
    Format {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The project has nothing recorded.
    #[error("project {project}: nothing recorded to export")]
    NotRecorded {
        /// The project.
        project: String,
    },
    /// Hosts of the project run: their disks change while they do.
    #[error(
        "project {project}: host(s) {} still run; stop them first (`mln down -p {project}`)",
        hosts.join(", ")
    )]
    Running {
        /// The project.
        project: String,
        /// The running hosts.
        hosts: Vec<String>,
    },
    /// Hosts of the project are on other servers.
    #[error(
        "project {project}: host(s) {} are on other servers; export covers hosts on this \
         machine only",
        hosts.join(", ")
    )]
    Remote {
        /// The project.
        project: String,
        /// The hosts elsewhere.
        hosts: Vec<String>,
    },
    /// A project of that name is already recorded here.
    #[error(
        "project {project} already exists in {}: remove it (`mln remove -p {project}`) or \
         import into another --state-dir",
        dir.display()
    )]
    Exists {
        /// The project.
        project: String,
        /// Its folder.
        dir: PathBuf,
    },
    /// The archive file is there already.
    #[error("{}: already there; not replaced", path.display())]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// Templates the project's disks are made over are missing here.
    #[error(
        "project {project}: missing template(s) here: {}; put them into the templates folder \
         {} first (the archive does not carry templates)",
        missing.join("; "),
        folder.display()
    )]
    MissingTemplates {
        /// The project.
        project: String,
        /// `HOST: TEMPLATE (why)` for each.
        missing: Vec<String>,
        /// The templates folder.
        folder: PathBuf,
    },
    /// A host's disks could not be written to or read from the archive.
    #[error("host {host}: {source}")]
    Disks {
        /// The host.
        host: String,
        /// Why.
        source: mln_core::Error,
    },
    /// The importing machine's backends could not be made.
    #[error("project {project}: {message}")]
    Backends {
        /// The project.
        project: String,
        /// Why.
        message: String,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Result with [`ArchiveError`].
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write the project kept in `store` (its hosts stopped, all on this
/// machine) to a new archive file `file`; `backends` are this machine's
/// for the project's folder. The project's lock is held meanwhile, so
/// nothing starts it; the file appears only once complete, and an
/// existing one is never replaced. Returns what the archive holds.
pub fn export(store: &StateStore, backends: &LocalBackends, file: &Path) -> Result<ExportManifest> {
    let project = store.project().to_string();
    let _lock = store.lock()?;
    let state = store.load()?.ok_or_else(|| ArchiveError::NotRecorded {
        project: project.clone(),
    })?;
    let remote: Vec<String> = state
        .hosts
        .values()
        .filter(|h| h.spec.service_host.is_some())
        .map(|h| h.spec.name.clone())
        .chain(state.stale.iter().map(|s| s.spec.name.clone()))
        .collect();
    if !remote.is_empty() {
        return Err(ArchiveError::Remote {
            project,
            hosts: remote,
        });
    }
    let running: Vec<String> = state
        .hosts
        .values()
        .filter(|h| h.domain.is_some())
        .map(|h| h.spec.name.clone())
        .collect();
    if !running.is_empty() {
        return Err(ArchiveError::Running {
            project,
            hosts: running,
        });
    }
    let mut manifest = ExportManifest {
        format_version: ARCHIVE_VERSION,
        project: project.clone(),
        // The backends' folder is absolute and canonical, as the paths
        // they recorded are.
        dir: backends.dir().to_path_buf(),
        hosts: Vec::new(),
    };
    for h in state.hosts.values() {
        let template = if h.disk_ready {
            disks::state(backends, &h.spec)
                .map_err(|source| ArchiveError::Disks {
                    host: h.spec.name.clone(),
                    source,
                })?
                .template
        } else {
            None
        };
        manifest.hosts.push(ExportedHost {
            name: h.spec.name.clone(),
            disks: h.disk_ready,
            template,
        });
    }
    if fs::symlink_metadata(file).is_ok() {
        return Err(ArchiveError::FileExists {
            path: file.to_path_buf(),
        });
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = file.with_file_name(format!(".{name}.mln-export-{}", std::process::id()));
    let written = write_archive(&temp, &manifest, &state, backends).and_then(|()| {
        // A link, unlike a rename, never replaces a file that appeared
        // meanwhile.
        fs::hard_link(&temp, file).map_err(io_err(file))
    });
    // Best effort: the temporary name goes either way.
    let _ = fs::remove_file(&temp);
    written.map(|()| manifest)
}

fn write_archive(
    path: &Path,
    manifest: &ExportManifest,
    state: &State,
    backends: &LocalBackends,
) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    let mut w = tar::Writer::new(file);
    let m = pretty(manifest).map_err(|why| format_err(path, why))?;
    let s = pretty(state).map_err(|why| format_err(path, why))?;
    w.member(MANIFEST, |f| f.write_all(&m))
        .map_err(io_err(path))?;
    w.member(STATE, |f| f.write_all(&s)).map_err(io_err(path))?;
    for h in manifest.hosts.iter().filter(|h| h.disks) {
        let Some(record) = state.hosts.get(&h.name) else {
            continue;
        };
        let mut failed = None;
        w.member(&format!("disks/{}.disks", h.name), |f| {
            disks::export(backends, &record.spec, f).map_err(|e| {
                failed = Some(e);
                io::Error::other("disk stream")
            })?;
            Ok(())
        })
        .map_err(|e| match failed.take() {
            Some(source) => ArchiveError::Disks {
                host: h.name.clone(),
                source,
            },
            None => io_err(path)(e),
        })?;
    }
    w.finish().map_err(io_err(path))
}

/// What [`import`] brought back.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The archive's manifest.
    pub manifest: ExportManifest,
    /// The project's folder here.
    pub dir: PathBuf,
}

/// Bring back the project in archive `file` under the state root `root`:
/// refused when a project of its name is recorded there. `backends` makes
/// this machine's backends for the new project folder (with the templates
/// folder); every host's template must be there, with the content the
/// exporting machine's had. The disks are put where the local backends
/// keep them, their overlays pointed at the local templates, and the
/// record's paths moved to the new folder. On any failure nothing of the
/// project is left.
pub fn import(
    file: &Path,
    root: &Path,
    templates: &Path,
    backends: impl FnOnce(&Path) -> Result<LocalBackends, String>,
) -> Result<Imported> {
    let archive = File::open(file).map_err(io_err(file))?;
    let mut reader = tar::Reader::new(archive);
    let manifest: ExportManifest = read_json(&mut reader, file, MANIFEST)?;
    if manifest.format_version > ARCHIVE_VERSION {
        return Err(format_err(
            file,
            format!(
                "archive format {} is newer than this MLN understands ({ARCHIVE_VERSION})",
                manifest.format_version
            ),
        ));
    }
    let mut state: State = read_json(&mut reader, file, STATE)?;
    let project = manifest.project.clone();
    if state.project != project {
        return Err(format_err(file, "its record is of another project".into()));
    }
    mln_core::SafeName::new(&project).map_err(|e| format_err(file, e.to_string()))?;
    let dir = root.join(&project);
    if StateStore::list(root)?.contains(&project) || dir.exists() {
        return Err(ArchiveError::Exists { project, dir });
    }
    let store = StateStore::open(root, &project)?;
    let lock = store.lock()?;
    let outcome = (|| {
        let b = backends(store.dir()).map_err(|message| ArchiveError::Backends {
            project: project.clone(),
            message,
        })?;
        check_templates(&manifest, &state, &b, templates)?;
        while let Some(member) = reader.next_member().map_err(io_err(file))? {
            let Some(host) = member
                .name
                .strip_prefix("disks/")
                .and_then(|n| n.strip_suffix(".disks"))
            else {
                continue;
            };
            let (Some(record), Some(exported)) = (
                state.hosts.get(host),
                manifest.hosts.iter().find(|h| h.name == host),
            ) else {
                return Err(format_err(file, format!("disks of unknown host {host}")));
            };
            let content = reader.content(&member).map_err(io_err(file))?;
            let mut input = BufReader::new(content);
            let to_disks = |source| ArchiveError::Disks {
                host: host.to_string(),
                source,
            };
            disks::import(
                &b,
                &project,
                &record.spec,
                exported.template.as_ref(),
                &mut input,
            )
            .map_err(to_disks)?;
            disks::end_move(&b, &record.spec).map_err(to_disks)?;
        }
        relocate(&mut state, &manifest.dir, b.dir());
        store.save(&lock, &state)?;
        Ok(b.dir().to_path_buf())
    })();
    match outcome {
        Ok(dir) => Ok(Imported { manifest, dir }),
        Err(e) => {
            // Best effort on the way out of the error being returned.
            let _ = store.remove_dir(lock);
            Err(e)
        }
    }
}

/// Every template the archive's overlays were made over is known here,
/// else all that are missing, by host.
fn check_templates(
    manifest: &ExportManifest,
    state: &State,
    b: &LocalBackends,
    folder: &Path,
) -> Result<()> {
    let mut missing = Vec::new();
    for h in manifest.hosts.iter().filter(|h| h.disks) {
        let Some(record) = state.hosts.get(&h.name) else {
            continue;
        };
        let wanted = record
            .spec
            .template
            .clone()
            .or_else(|| h.template.as_ref().map(|t| t.name.clone()))
            .unwrap_or_else(|| "the default template".into());
        match b.template_of(&record.spec) {
            Ok(t) if t.image.is_file() => {}
            Ok(t) => missing.push(format!(
                "{}: {wanted} ({} is missing)",
                h.name,
                t.image.display()
            )),
            Err(e) => missing.push(format!("{}: {wanted} ({e})", h.name)),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ArchiveError::MissingTemplates {
        project: manifest.project.clone(),
        missing,
        folder: folder.to_path_buf(),
    })
}

/// Move the record's paths under the exporting machine's project folder
/// `from` to the same places under `to`; forget what ran there.
fn relocate(state: &mut State, from: &Path, to: &Path) {
    let moved = |p: &Path| match p.strip_prefix(from) {
        Ok(rest) => to.join(rest),
        Err(_) => p.to_path_buf(),
    };
    for h in state.hosts.values_mut() {
        h.disks = h.disks.iter().map(|p| moved(p)).collect();
        h.domain = None;
    }
    for s in state.switches.values_mut() {
        s.socket = s.socket.as_deref().map(moved);
        s.pid = None;
    }
    // Hook blocks run in the project file's folder; one this machine does
    // not have is forgotten (they then run in the current folder).
    if let Some(desired) = &mut state.desired {
        if desired.hook_dir.as_deref().is_some_and(|d| !d.is_dir()) {
            desired.hook_dir = None;
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    reader: &mut tar::Reader,
    file: &Path,
    name: &str,
) -> Result<T> {
    let member = reader
        .next_member()
        .map_err(io_err(file))?
        .filter(|m| m.name == name)
        .ok_or_else(|| {
            format_err(
                file,
                format!("not an mln export archive (no {name} where expected)"),
            )
        })?;
    if member.size > 64 << 20 {
        return Err(format_err(file, format!("{name} is implausibly large")));
    }
    let mut bytes = Vec::new();
    reader
        .content(&member)
        .and_then(|mut c| c.read_to_end(&mut bytes))
        .map_err(io_err(file))?;
    serde_json::from_slice(&bytes).map_err(|e| format_err(file, format!("{name}: {e}")))
}

fn format_err(path: &Path, why: String) -> ArchiveError {
    ArchiveError::Format {
        path: path.to_path_buf(),
        why,
    }
}

/// Pretty JSON with a final newline.
fn pretty<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut v = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    v.push(b'\n');
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DomainRecord, HostRecord, HostSpec};

    fn recorded(root: &Path, hosts: Vec<HostRecord>) -> (StateStore, LocalBackends) {
        let store = StateStore::open(root, "lab").unwrap();
        let mut st = State::new("lab");
        for h in hosts {
            st.hosts.insert(h.spec.name.clone(), h);
        }
        store.save(&store.lock().unwrap(), &st).unwrap();
        let b = LocalBackends::new(store.dir()).unwrap();
        (store, b)
    }

    #[test]
    fn running_and_remote_hosts_are_refused_and_no_file_is_left() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("lab.tar");
        let mut running = HostRecord::new(HostSpec::new("web"));
        running.domain = Some(DomainRecord {
            name: "lab.web".into(),
            backend: mln_core::BackendKind::Uml,
            id: 1,
            max_memory: 64 << 20,
            max_vcpus: 1,
            started: true,
        });
        let mut far = HostSpec::new("db");
        far.service_host = Some("other".into());
        let (store, b) = recorded(root.path(), vec![running, HostRecord::new(far)]);
        let err = export(&store, &b, &file).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Remote { hosts, .. } if hosts == &["db"]),
            "{err}"
        );
        assert!(err.to_string().contains("this machine only"), "{err}");
        let mut st = store.load().unwrap().unwrap();
        st.hosts.remove("db");
        store.save(&store.lock().unwrap(), &st).unwrap();
        let err = export(&store, &b, &file).unwrap_err();
        assert_eq!(
            err.to_string(),
            "project lab: host(s) web still run; stop them first (`mln down -p lab`)"
        );
        assert!(!file.exists());
    }

    #[test]
    fn a_project_never_built_travels_and_comes_back_once() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("lab.tar");
        let (store, b) = recorded(root.path(), vec![HostRecord::new(HostSpec::new("web"))]);
        let sent = export(&store, &b, &file).unwrap();
        assert_eq!(sent.hosts.len(), 1);
        assert!(!sent.hosts[0].disks);
        // Over itself: refused.
        let none = |_: &Path| -> Result<LocalBackends, String> { Err("unused".into()) };
        assert!(matches!(
            import(&file, root.path(), root.path(), none),
            Err(ArchiveError::Exists { .. })
        ));
        let elsewhere = root.path().join("elsewhere");
        let got = import(&file, &elsewhere, &elsewhere, |d: &Path| {
            LocalBackends::new(d).map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(got.manifest, sent);
        let back = StateStore::open(&elsewhere, "lab").unwrap().load().unwrap();
        assert_eq!(back.unwrap().hosts.keys().collect::<Vec<_>>(), vec!["web"]);
        // A damaged archive is refused, leaving nothing.
        let cut = root.path().join("cut.tar");
        let bytes = fs::read(&file).unwrap();
        fs::write(&cut, &bytes[..700]).unwrap();
        let third = root.path().join("third");
        assert!(import(&cut, &third, &third, |d: &Path| {
            LocalBackends::new(d).map_err(|e| e.to_string())
        })
        .is_err());
        assert!(!third.join("lab").exists());
    }
}
