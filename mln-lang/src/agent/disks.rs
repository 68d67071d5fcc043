//! A stopped host's disks moving between servers: each side of the
//! move on one server, run by `mln agent export-disks` / `import-disks`
//! there, or in-process where that server is the managing machine.
//!
//! The files are the host's overlay and configuration disk
//! (`DIR/disks/HOST.cow` for UML, `DIR/disks/HOST.qcow2` for Xen and
//! KVM, and `DIR/disks/HOST.config`), sent as one [`mln_core::disk::transfer`]
//! stream (compressed, checksummed). The importing server stages the
//! stream in `disks/.HOST.incoming/`, rebases the overlay onto its own
//! copy of the template (a UML COW header rewritten in place; a qcow2 with
//! `qemu-img rebase -u -b TEMPLATE -F raw`, which only changes the
//! backing name: the template is the same image), puts the files in place and
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

use crate::machine::{Backends, LocalBackends};
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

    /// Whether the overlay disk of `host` (UML COW or Xen qcow2) is among
    /// the files.
    pub fn has_cow(&self, host: &str) -> bool {
        self.files
            .iter()
            .any(|f| f.name == format!("{host}.cow") || f.name == format!("{host}.qcow2"))
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
        let name = SafeName::new(&host.name)?;
        let dir = project_dir.join("disks");
        let overlay = match host.platform {
            Platform::Uml => "cow",
            Platform::Xen | Platform::Hvm | Platform::Kvm => "qcow2",
        };
        Ok(HostFiles {
            cow: dir.join(format!("{name}.{overlay}")),
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
    let template = match overlay_template(&files.cow) {
        Ok(t) => Some(transfer::describe(&t)?),
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
        hold_staging(&files.staging)?;
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
        let base = overlay_template(&files.cow)?;
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
        rebase(&files.staging.join(&cow_name), &base)?;
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

/// The template the overlay at `path` reads unchanged blocks from: a
/// UML COW's header, or a qcow2's backing file (`qemu-img info`).
fn overlay_template(path: &Path) -> Result<PathBuf> {
    if is_qcow2(path) {
        return qcow2_backing(path);
    }
    Ok(Overlay::open(path)?.template)
}

/// Point the overlay at `path` to `base`, another copy of its template.
fn rebase(path: &Path, base: &Path) -> Result<()> {
    if !is_qcow2(path) {
        return Overlay::rebase(path, base).map(drop);
    }
    // `-u`: only the header's backing name changes; the data stays valid
    // because the new backing file holds the same image (checked by the
    // caller against the old server's template).
    qemu_img(path, &["rebase", "-u", "-F", "raw", "-b"], Some(base)).map(drop)
}

/// `qemu-img ARGS [EXTRA] PATH` (argv); its stdout, or why it failed.
fn qemu_img(path: &Path, args: &[&str], extra: Option<&Path>) -> Result<Vec<u8>> {
    let mut cmd = std::process::Command::new("qemu-img");
    cmd.args(args);
    if let Some(x) = extra {
        cmd.arg(x);
    }
    let out = cmd.arg(path).output().map_err(|e| Error::Spawn {
        program: "qemu-img".into(),
        source: e,
    })?;
    if !out.status.success() {
        return Err(Error::Backend {
            what: path.display().to_string(),
            message: format!(
                "qemu-img {}: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

fn is_qcow2(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "qcow2")
}

/// The absolute backing file of qcow2 `path`, as `qemu-img info` reads
/// it.
fn qcow2_backing(path: &Path) -> Result<PathBuf> {
    let out = qemu_img(path, &["info", "--output=json", "-U"], None)?;
    let bad = |message: String| Error::Backend {
        what: path.display().to_string(),
        message,
    };
    let info: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| bad(format!("qemu-img info printed no JSON: {e}")))?;
    let backing = info["full-backing-filename"]
        .as_str()
        .or_else(|| info["backing-filename"].as_str())
        .ok_or_else(|| bad("the qcow2 overlay has no backing file".into()))?;
    let backing = PathBuf::from(backing);
    Ok(match (backing.is_absolute(), path.parent()) {
        (false, Some(dir)) => dir.join(backing),
        _ => backing,
    })
}

/// The move that brought `host`'s disks here is over (the old server's
/// copy is gone): forget its record.
/// Make the staging folder `dir` with a file in it, so that it is never
/// empty while the stream is awaited: the server's agent, in another
/// process, removes the project's empty folders after each removal it
/// serves, and took an empty staging folder from under an import (seen
/// when the seed's upgrade moved ten hosts at once). Made again if it
/// went between its making and the file's.
fn hold_staging(dir: &Path) -> Result<()> {
    let held = dir.join(".held");
    let mut tries = 0;
    loop {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        match fs::File::create(&held) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => tries += 1,
            Err(e) => return Err(Error::io(&held, e)),
        }
    }
}

pub fn end_move(b: &LocalBackends, host: &HostSpec) -> Result<()> {
    remove_file(&HostFiles::of(b.dir(), host)?.record)
}

/// Remove what a move left of `host` besides its disks (the record, a
/// staging folder), as part of removing its disks.
pub fn clear(b: &LocalBackends, host: &HostSpec) -> Result<()> {
    let files = HostFiles::of(b.dir(), host)?;
    remove_file(&files.record)?;
    remove_tree(&files.staging)
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

    #[test]
    fn a_staging_folder_awaiting_its_stream_survives_the_agents_pruning() {
        let root = tempfile::tempdir().unwrap();
        let project = root.path().join("lab");
        let staging = project.join("disks/.web.incoming");
        hold_staging(&staging).unwrap();
        // What the server's agent does after serving a removal.
        assert!(!crate::agent::server::remove_empty_tree(&project));
        assert!(staging.is_dir());
        // Held again over a folder that is there: no error.
        hold_staging(&staging).unwrap();
        remove_tree(&staging).unwrap();
        assert!(crate::agent::server::remove_empty_tree(&project));
    }

    /// A server's backends over a template with `fill` as content (same
    /// fill: same image).
    fn server(root: &Path, name: &str, fill: u8) -> LocalBackends {
        let image = root.join(format!("{name}-template.img"));
        fs::write(&image, vec![fill; 1 << 20]).unwrap();
        LocalBackends::new(root.join(name))
            .unwrap()
            .with_default_template(Template::image(image, "root=/dev/ubda rw"))
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
    fn a_xen_hosts_qcow2_moves_and_is_rebased_onto_the_new_servers_template() {
        if std::process::Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_err()
        {
            return testkit::skip(
                "a_xen_hosts_qcow2_moves_and_is_rebased_onto_the_new_servers_template",
                "qemu-img is missing (apt-get install qemu-utils)",
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (server(dir.path(), "a", 7), server(dir.path(), "b", 7));
        let mut host = HostSpec::new("web");
        host.platform = Platform::Xen;
        b.prepare_disk("lab", &host).unwrap();
        fs::remove_file(b.dir().join("disks/web.qcow2")).unwrap();
        a.prepare_disk("lab", &host).unwrap();
        fs::write(a.dir().join("disks/web.config"), b"config").unwrap();
        let source = state(&a, &host).unwrap();
        assert!(source.has_cow("web"), "{source:?}");
        let template = source.template.clone().expect("the qcow2's backing file");
        assert_eq!(template.name, "a-template.img");
        let data = stream(&a, &host);
        import(&b, "lab", &host, Some(&template), &mut &data[..]).unwrap();
        let target = state(&b, &host).unwrap();
        assert!(target.holds_copy_of(&source.files), "{target:?}");
        let base = qcow2_backing(&b.dir().join("disks/web.qcow2")).unwrap();
        assert_eq!(
            base,
            dir.path().canonicalize().unwrap().join("b-template.img")
        );
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
