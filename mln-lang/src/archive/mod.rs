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
//! does. Hosts on other servers are exported and imported through their
//! servers' agents, their disks streaming through this machine as a move
//! between servers does; on import each goes back to its own server.

mod export;
mod import;
mod tar;

use std::io;
use std::path::{Path, PathBuf};

use mln_core::disk::transfer::FileEntry;
use serde::{Deserialize, Serialize};

use crate::state::StateError;

pub use export::export;
pub use import::{import, Imported};

/// The archive format this library writes and reads.
pub const ARCHIVE_VERSION: u32 = 1;

pub(crate) const MANIFEST: &str = "mln-export.json";
pub(crate) const STATE: &str = "state.json";

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
    /// Copies of hosts are left on a server given up for lost (`mln
    /// evacuate`): the record still owes their removal there.
    #[error(
        "project {project}: copies of host(s) {} are left on a lost server; `mln up -p \
         {project}` removes them once that server answers",
        hosts.join(", ")
    )]
    Stale {
        /// The project.
        project: String,
        /// The hosts with a copy left behind.
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

pub(crate) fn io_err(path: &Path) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}
pub(crate) fn format_err(path: &Path, why: String) -> ArchiveError {
    ArchiveError::Format {
        path: path.to_path_buf(),
        why,
    }
}

/// Pretty JSON with a final newline.
pub(crate) fn pretty<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut v = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    v.push(b'\n');
    Ok(v)
}
#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::agent::ServerAccess;
    use crate::apply::ClusterBackends;
    use crate::machine::LocalBackends;
    use crate::plan::State;
    use crate::plan::{DomainRecord, HostRecord, HostSpec, StaleCopy};
    use crate::state::StateStore;

    fn recorded(root: &Path, hosts: Vec<HostRecord>) -> (StateStore, ClusterBackends) {
        let store = StateStore::open(root, "lab").unwrap();
        let mut st = State::new("lab");
        for h in hosts {
            st.hosts.insert(h.spec.name.clone(), h);
        }
        store.save(&store.lock().unwrap(), &st).unwrap();
        (store.clone(), cluster("lab", store.dir()).unwrap())
    }

    fn cluster(project: &str, dir: &Path) -> Result<ClusterBackends, String> {
        let local = LocalBackends::new(dir).map_err(|e| e.to_string())?;
        Ok(ClusterBackends::new(
            project,
            local,
            ServerAccess::default(),
        ))
    }

    #[test]
    fn running_hosts_and_copies_left_on_a_lost_server_are_refused_and_no_file_is_left() {
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
        let (store, b) = recorded(root.path(), vec![running, HostRecord::new(far.clone())]);
        let mut st = store.load().unwrap().unwrap();
        st.stale.push(StaleCopy {
            server: "gone".into(),
            spec: far,
        });
        store.save(&store.lock().unwrap(), &st).unwrap();
        let err = export(&store, b, &file).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Stale { hosts, .. } if hosts == &["db"]),
            "{err}"
        );
        assert!(err.to_string().contains("`mln up -p lab`"), "{err}");
        st.stale.clear();
        store.save(&store.lock().unwrap(), &st).unwrap();
        let err = export(&store, cluster("lab", store.dir()).unwrap(), &file).unwrap_err();
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
        // A host on another server that was never built needs no server.
        let mut st = store.load().unwrap().unwrap();
        let mut far = HostSpec::new("db");
        far.service_host = Some("other".into());
        st.hosts.insert("db".into(), HostRecord::new(far));
        store.save(&store.lock().unwrap(), &st).unwrap();
        let sent = export(&store, b, &file).unwrap();
        assert_eq!(sent.hosts.len(), 2);
        assert!(sent.hosts.iter().all(|h| !h.disks));
        // Over itself: refused.
        let none = |_: &str, _: &Path| -> Result<ClusterBackends, String> { Err("unused".into()) };
        assert!(matches!(
            import(&file, root.path(), root.path(), none),
            Err(ArchiveError::Exists { .. })
        ));
        let elsewhere = root.path().join("elsewhere");
        let got = import(&file, &elsewhere, &elsewhere, cluster).unwrap();
        assert_eq!(got.manifest, sent);
        let back = StateStore::open(&elsewhere, "lab").unwrap().load().unwrap();
        assert_eq!(
            back.unwrap().hosts.keys().collect::<Vec<_>>(),
            vec!["db", "web"]
        );
        // A damaged archive is refused, leaving nothing.
        let cut = root.path().join("cut.tar");
        let bytes = fs::read(&file).unwrap();
        fs::write(&cut, &bytes[..700]).unwrap();
        let third = root.path().join("third");
        assert!(import(&cut, &third, &third, cluster).is_err());
        assert!(!third.join("lab").exists());
    }
}
