//! Bringing a project back from an archive (`mln import`).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{format_err, io_err, tar, ArchiveError, ExportManifest, Result};
use super::{ARCHIVE_VERSION, MANIFEST, STATE};
use crate::apply::ClusterBackends;
use crate::plan::{HostSpec, State};
use crate::state::StateStore;

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
/// the project's backends (given its name) for the new project folder (this machine's,
/// with the templates folder, and its servers' agents); every host's
/// template must be where the host goes, with the content the exporting
/// machine's had. The disks are put where each host's server keeps them
/// (hosts on other servers go back to them), their overlays pointed at
/// that server's templates, and the record's paths moved to the new
/// folder. On any failure nothing of the project is left, here or on a
/// server.
pub fn import(
    file: &Path,
    root: &Path,
    templates: &Path,
    backends: impl FnOnce(&str, &Path) -> Result<ClusterBackends, String>,
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
    // The hosts whose disks were made, to undo on a failure.
    let mut made: Vec<HostSpec> = Vec::new();
    let mut cluster = None;
    let outcome = (|| {
        let made_here =
            backends(&project, store.dir()).map_err(|message| ArchiveError::Backends {
                project: project.clone(),
                message,
            })?;
        let b = cluster.insert(made_here.with_servers(None, Some(&state)));
        check_templates(&manifest, &state, b, templates)?;
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
            made.push(record.spec.clone());
            b.read_disks(&record.spec, exported.template.as_ref(), &mut input)
                .map_err(|source| ArchiveError::Disks {
                    host: host.to_string(),
                    source,
                })?;
        }
        let here = b.local().dir().to_path_buf();
        relocate(&mut state, &manifest.dir, &here);
        store.save(&lock, &state)?;
        Ok(here)
    })();
    match outcome {
        Ok(dir) => Ok(Imported { manifest, dir }),
        Err(e) => {
            // Best effort on the way out of the error being returned.
            if let Some(b) = &cluster {
                // The last host is the one that failed: its server may
                // hold part of its disks, or be the one not answering.
                let failed = made.len().saturating_sub(1);
                for (i, host) in made.iter().enumerate() {
                    match b.drop_disks(host) {
                        Err(why) if i < failed => {
                            log::warn!("{}: its imported disks are left: {why}", host.name)
                        }
                        Err(why) => log::debug!("{}: {why}", host.name),
                        Ok(()) => {}
                    }
                }
            }
            let _ = store.remove_dir(lock);
            Err(e)
        }
    }
}

/// Every template the archive's overlays on this machine were made over
/// is known here, else all that are missing, by host.
fn check_templates(
    manifest: &ExportManifest,
    state: &State,
    b: &ClusterBackends,
    folder: &Path,
) -> Result<()> {
    let mut missing = Vec::new();
    for h in manifest.hosts.iter().filter(|h| h.disks) {
        let Some(record) = state.hosts.get(&h.name) else {
            continue;
        };
        // A server checks its own when the disks arrive, and refuses them
        // over another template.
        if b.remote(record.spec.service_host.as_deref()).is_some() {
            continue;
        }
        let wanted = record
            .spec
            .template
            .clone()
            .or_else(|| h.template.as_ref().map(|t| t.name.clone()))
            .unwrap_or_else(|| "the default template".into());
        match b.local().template_of(&record.spec) {
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
