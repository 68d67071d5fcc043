//! A stopped UML host's disks moving between servers: each side of the
//! move on one server, run by `mln agent export-disks` / `import-disks`
//! there, or in-process where that server is the managing machine.
//!
//! The files are the host's COW disk and configuration disk
//! (`DIR/disks/HOST.cow`, `DIR/disks/HOST.config`), sent as one
//! [`mln_core::disk::transfer`] stream (compressed, checksummed). The
//! importing server stages the stream in `disks/.HOST.incoming/`, rebases
//! the COW onto its own copy of the template, puts the files in place and
//! only then writes `disks/.HOST.moved-in` ([`MovedIn`]): what arrived and
//! what was placed. The managing machine compares that record with the
//! old server's files ([`HostDisks::holds_copy_of`]) before it deletes
//! them, and so can retry a move cut at any point:
//!
//! - target complete and recorded, source still there: nothing is sent
//!   again, the source goes;
//! - target partial or stale: it is replaced;
//! - source already gone, target there: the move had finished.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use mln_core::disk::transfer::{self, FileEntry, Manifest};
use mln_core::disk::Overlay;
use mln_core::{Error, Result, SafeName};
use serde::{Deserialize, Serialize};

use crate::apply::{Backends, LocalBackends};
use crate::plan::{HostSpec, Platform};

/// What a server holds of a host's disks (answer to `host_disks`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDisks {
    /// The COW and configuration disks present, in that order.
    pub files: Vec<FileEntry>,
    /// The record of the move that brought them here, until the move
    /// ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_in: Option<MovedIn>,
    /// The template the COW disk reads unchanged blocks from, as found on
    /// this server (absent without a usable COW disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<FileEntry>,
}

impl HostDisks {
    /// Whether these files are a verified copy of `source` (the files on
    /// the old server): the stream that brought them carried exactly
    /// `source`, and the files here are still what the import placed.
    pub fn holds_copy_of(&self, source: &[FileEntry]) -> bool {
        let Some(m) = &self.moved_in else {
            return false;
        };
        !source.is_empty() && same(&m.received.files, source) && same(&m.placed, &self.files)
    }

    /// Whether the COW disk of `host` is among the files.
    pub fn has_cow(&self, host: &str) -> bool {
        self.files.iter().any(|f| f.name == format!("{host}.cow"))
    }
}

fn same(a: &[FileEntry], b: &[FileEntry]) -> bool {
    let sorted = |v: &[FileEntry]| {
        let mut v = v.to_vec();
        v.sort_by(|x, y| x.name.cmp(&y.name));
        v
    };
    sorted(a) == sorted(b)
}

/// A finished import: the stream's manifest (the files as the old server
/// had them) and the files as placed here (the COW rebased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedIn {
    /// What the stream carried.
    pub received: Manifest,
    /// What was put in place.
    pub placed: Vec<FileEntry>,
}

/// The first line on a disk job's stdin: which host of which project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskJob {
    /// The project.
    pub project: String,
    /// The host (its `service_host` is ignored: the job's server is it).
    pub host: HostSpec,
    /// For an import: the template the COW was made over on the old
    /// server. The importing server's copy must have the same size and
    /// checksum, or the COW's changed blocks would land on another image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<FileEntry>,
}

/// Where one host's disk files are in a project folder.
struct HostFiles {
    dir: PathBuf,
    cow: PathBuf,
    config: PathBuf,
    staging: PathBuf,
    record: PathBuf,
}

impl HostFiles {
    fn of(project_dir: &Path, host: &HostSpec) -> Result<HostFiles> {
        if host.platform != Platform::Uml {
            return Err(Error::Unsupported {
                backend: "mln",
                op: "moving a Xen host's qcow2 disk between servers (only UML COW disks move)",
            });
        }
        let name = SafeName::new(&host.name)?;
        let dir = project_dir.join("disks");
        Ok(HostFiles {
            cow: dir.join(format!("{name}.cow")),
            config: dir.join(format!("{name}.config")),
            staging: dir.join(format!(".{name}.incoming")),
            record: dir.join(format!(".{name}.moved-in")),
            dir,
        })
    }

    fn present(&self) -> Vec<&Path> {
        [self.cow.as_path(), self.config.as_path()]
            .into_iter()
            .filter(|p| p.exists())
            .collect()
    }
}

/// What `b`'s project folder holds of `host`'s disks.
pub fn state(b: &LocalBackends, host: &HostSpec) -> Result<HostDisks> {
    let files = HostFiles::of(b.dir(), host)?;
    let present = files
        .present()
        .into_iter()
        .map(transfer::describe)
        .collect::<Result<Vec<_>>>()?;
    // An unreadable record counts as none: the files are then sent again.
    let moved_in = fs::read(&files.record)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let template = match Overlay::open(&files.cow) {
        Ok(o) => Some(transfer::describe(&o.template)?),
        Err(_) => None,
    };
    Ok(HostDisks {
        files: present,
        moved_in,
        template,
    })
}

/// Write `host`'s disks to `out` as a transfer stream; the host must be
/// stopped. [`Error::NotFound`] when it has no COW disk here.
pub fn export(b: &LocalBackends, host: &HostSpec, out: impl Write) -> Result<Manifest> {
    let files = HostFiles::of(b.dir(), host)?;
    if !files.cow.exists() {
        return Err(Error::NotFound {
            domain: format!("disks of {}", host.name),
        });
    }
    transfer::export(&files.present(), out)
}

/// Read a stream made by [`export`] from `input` and make it `host`'s
/// disks here: staged, checked, the COW rebased onto this server's copy
/// of the template, put in place (replacing whatever partial copy was
/// there), then recorded. On failure nothing of the host's disks is left
/// here: the old server still holds them (a move imports only then).
///
/// `template`, when given, is the old server's template: this server's
/// must have the same content, else the import is refused.
pub fn import(
    b: &LocalBackends,
    project: &str,
    host: &HostSpec,
    template: Option<&FileEntry>,
    input: &mut impl BufRead,
) -> Result<MovedIn> {
    let files = HostFiles::of(b.dir(), host)?;
    let host = here(host);
    let mut touched = false;
    let outcome = (|| {
        remove_tree(&files.staging)?;
        fs::create_dir_all(&files.staging).map_err(|e| Error::io(&files.staging, e))?;
        let received = transfer::import(input, &files.staging)?;
        let cow_name = file_name(&files.cow);
        let config_name = file_name(&files.config);
        if received.files.iter().all(|f| f.name != cow_name)
            || received
                .files
                .iter()
                .any(|f| f.name != cow_name && f.name != config_name)
        {
            return Err(Error::Backend {
                what: host.name.clone(),
                message: format!(
                    "the disk stream carries {:?}, not {cow_name} (and {config_name})",
                    received.files.iter().map(|f| &f.name).collect::<Vec<_>>()
                ),
            });
        }
        touched = true;
        remove_file(&files.record)?;
        // A fresh overlay made the way a new host's is: its header names
        // this server's copy of the host's template.
        b.prepare_disk(project, &host)?;
        let base = Overlay::open(&files.cow)?.template;
        if let Some(want) = template {
            let here = transfer::describe(&base)?;
            if (here.size, &here.sha256) != (want.size, &want.sha256) {
                return Err(Error::Backend {
                    what: host.name.clone(),
                    message: format!(
                        "template {} here differs from {} the disk was made over on \
                         the old server (SHA-256 {} here, {} there): put the same \
                         template on both servers",
                        base.display(),
                        want.name,
                        here.sha256,
                        want.sha256
                    ),
                });
            }
        }
        Overlay::rebase(files.staging.join(&cow_name), &base)?;
        for f in &received.files {
            let to = files.dir.join(&f.name);
            fs::rename(files.staging.join(&f.name), &to).map_err(|e| Error::io(&to, e))?;
        }
        fs::File::open(&files.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&files.dir, e))?;
        let placed = received
            .files
            .iter()
            .map(|f| transfer::describe(files.dir.join(&f.name)))
            .collect::<Result<Vec<_>>>()?;
        let moved = MovedIn { received, placed };
        write_record(&files.record, &moved)?;
        Ok(moved)
    })();
    // Best effort on the way out: the staging folder is cleared again by
    // the next import.
    let _ = remove_tree(&files.staging);
    if outcome.is_err() && touched {
        for p in [&files.record, &files.cow, &files.config] {
            let _ = remove_file(p);
        }
    }
    outcome
}

/// The move that brought `host`'s disks here is over (the old server's
/// copy is gone): forget its record.
pub fn end_move(b: &LocalBackends, host: &HostSpec) -> Result<()> {
    match HostFiles::of(b.dir(), host) {
        Ok(files) => remove_file(&files.record),
        Err(Error::Unsupported { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove what a move left of `host` besides its disks (the record, a
/// staging folder), as part of removing its disks.
pub fn clear(b: &LocalBackends, host: &HostSpec) -> Result<()> {
    match HostFiles::of(b.dir(), host) {
        Ok(files) => {
            remove_file(&files.record)?;
            remove_tree(&files.staging)
        }
        Err(Error::Unsupported { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Read a disk job's first line (a [`DiskJob`]).
pub fn read_job(input: &mut impl BufRead) -> Result<DiskJob> {
    let what = Path::new("disk job");
    let mut line = String::new();
    input.read_line(&mut line).map_err(|e| Error::io(what, e))?;
    serde_json::from_str(&line).map_err(|e| Error::Backend {
        what: "disk job".into(),
        message: format!("the first line must be {{\"project\":..,\"host\":..}}: {e}"),
    })
}

fn here(host: &HostSpec) -> HostSpec {
    let mut h = host.clone();
    h.service_host = None;
    h
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_record(path: &Path, moved: &MovedIn) -> Result<()> {
    let bytes = serde_json::to_vec(moved).map_err(|e| Error::Backend {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    let temp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&temp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&temp, path)
    };
    write().map_err(|e| Error::io(path, e))
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mln_core::template::Template;

    /// A server's backends over a template with `fill` as content (same
    /// fill: same image).
    fn server(root: &Path, name: &str, fill: u8) -> LocalBackends {
        let image = root.join(format!("{name}-template.img"));
        fs::write(&image, vec![fill; 1 << 20]).unwrap();
        LocalBackends::new(root.join(name))
            .unwrap()
            .with_default_template(Template {
                image,
                cmdline: "root=/dev/ubda rw".into(),
            })
    }

    /// `host` made on `b`, with a configuration disk.
    fn made(b: &LocalBackends, host: &HostSpec) -> HostDisks {
        b.prepare_disk("lab", host).unwrap();
        fs::write(b.dir().join("disks/web.config"), b"config").unwrap();
        state(b, host).unwrap()
    }

    fn stream(b: &LocalBackends, host: &HostSpec) -> Vec<u8> {
        let mut out = Vec::new();
        export(b, host, &mut out).unwrap();
        out
    }

    #[test]
    fn an_import_is_a_verified_copy_rebased_and_a_retry_replaces_a_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (server(dir.path(), "a", 7), server(dir.path(), "b", 7));
        let host = HostSpec::new("web");
        let source = made(&a, &host);
        assert!(source.has_cow("web") && source.template.is_some());
        let data = stream(&a, &host);

        // Cut halfway: refused, nothing of the host left on b.
        let cut = &data[..data.len() / 2];
        assert!(import(&b, "lab", &host, None, &mut &cut[..]).is_err());
        let after_cut = state(&b, &host).unwrap();
        assert!(after_cut.files.is_empty() && after_cut.moved_in.is_none());

        // A stale copy there is replaced; the result is a verified copy
        // whose COW reads b's template.
        fs::create_dir_all(b.dir().join("disks")).unwrap();
        fs::write(b.dir().join("disks/web.cow"), b"stale").unwrap();
        let template = source.template.clone();
        import(&b, "lab", &host, template.as_ref(), &mut &data[..]).unwrap();
        let target = state(&b, &host).unwrap();
        assert!(target.holds_copy_of(&source.files), "{target:?}");
        let cow = Overlay::open(b.dir().join("disks/web.cow")).unwrap();
        assert!(cow
            .template
            .starts_with(dir.path().canonicalize().unwrap().join("b-template.img")));
        assert_eq!(
            fs::read(b.dir().join("disks/web.config")).unwrap(),
            b"config"
        );

        // Another source (the guest ran on at a) is no longer matched.
        let mut changed = source.files.clone();
        changed[0].sha256 = "0".repeat(64);
        assert!(!target.holds_copy_of(&changed));

        end_move(&b, &host).unwrap();
        assert!(state(&b, &host).unwrap().moved_in.is_none());
    }

    #[test]
    fn a_different_template_on_the_new_server_is_refused_leaving_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (server(dir.path(), "a", 7), server(dir.path(), "b", 8));
        let host = HostSpec::new("web");
        let source = made(&a, &host);
        let data = stream(&a, &host);
        let err = import(&b, "lab", &host, source.template.as_ref(), &mut &data[..]).unwrap_err();
        assert!(err.to_string().contains("same template"), "{err}");
        let left = state(&b, &host).unwrap();
        assert!(left.files.is_empty() && left.moved_in.is_none(), "{left:?}");
        assert!(!b.dir().join("disks/.web.incoming").exists());
    }
}
