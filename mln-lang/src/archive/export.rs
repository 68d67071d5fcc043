//! Writing a stopped project to an archive (`mln export`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::{format_err, io_err, pretty, tar, ArchiveError, ExportManifest, ExportedHost, Result};
use super::{ARCHIVE_VERSION, MANIFEST, STATE};
use crate::apply::ClusterBackends;
use crate::plan::State;
use crate::state::StateStore;

/// Write the project kept in `store` (its hosts stopped) to a new archive
/// file `file`; `backends` are the project's, this machine's for its
/// folder and its servers' agents for hosts elsewhere, whose disks come
/// through this machine. The project's lock is held meanwhile, so nothing
/// starts it; the file appears only once complete, and an existing one is
/// never replaced. Returns what the archive holds.
pub fn export(
    store: &StateStore,
    backends: ClusterBackends,
    file: &Path,
) -> Result<ExportManifest> {
    let project = store.project().to_string();
    let _lock = store.lock()?;
    let state = store.load()?.ok_or_else(|| ArchiveError::NotRecorded {
        project: project.clone(),
    })?;
    let stale: Vec<String> = state.stale.iter().map(|s| s.spec.name.clone()).collect();
    if !stale.is_empty() {
        return Err(ArchiveError::Stale {
            project,
            hosts: stale,
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
    let backends = backends.with_servers(None, Some(&state));
    let mut manifest = ExportManifest {
        format_version: ARCHIVE_VERSION,
        project: project.clone(),
        // The backends' folder is absolute and canonical, as the paths
        // they recorded are.
        dir: backends.local().dir().to_path_buf(),
        hosts: Vec::new(),
    };
    for h in state.hosts.values() {
        let template = if h.disk_ready {
            backends
                .disks_of(&h.spec)
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
    let written = write_archive(&temp, &manifest, &state, &backends).and_then(|()| {
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
    backends: &ClusterBackends,
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
            backends.write_disks(&record.spec, f).map_err(|e| {
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
