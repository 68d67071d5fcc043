//! A running guest moving between servers: a Xen guest the way `xl
//! migrate` moves it (libxl's migration stream from the old server's
//! toolstack to the new one's), a QEMU guest by QEMU's migration stream,
//! through the managing machine.
//!
//! Each side is `mln agent migrate-send` / `migrate-receive` on its server
//! (over ssh, argv only; the project, host and, for the receiver, the
//! domain spec travel as a JSON first line, [`MigrateJob`]), or runs
//! in-process where that server is this machine. Each side bridges its
//! stdin or stdout to one end of a local socket pair whose other end libxl
//! reads or writes (`Hypervisor::migrate_send` / `migrate_receive`); the
//! managing machine copies the sender's stdout into the receiver's stdin.
//!
//! Only memory travels when the guest's disks are files both servers see:
//! the managing machine first proves that with a mark ([`mark`],
//! [`marked`]): a random token written beside the disk on the old server
//! must be read back beside the disk on the new one. Otherwise a QEMU
//! guest's disks travel in the stream too (`copy_disks`: what its overlay
//! holds, into a fresh overlay the new server made over its own copy of
//! the template), and a Xen guest moves cold (stop, carry the disks,
//! start: [`super::carry`]).

use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use mln_core::{DomainSpec, Error, Hypervisor, Result, SafeName};
use serde::{Deserialize, Serialize};

use super::carry::{Job, Side};
use super::ServerAccess;
use crate::machine::{Backends, LocalBackends};
use crate::plan::{domain_name, HostSpec, Platform};

/// The first line on a migration job's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrateJob {
    /// The project.
    pub project: String,
    /// The host (its `service_host` is ignored: the job's server is it).
    pub host: HostSpec,
    /// For `migrate-receive`: the domain to restore the stream into (its
    /// disks and interfaces as the receiving server has them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<DomainSpec>,
    /// For `migrate-send`: copy memory while the guest runs (libxl's live
    /// mode) rather than suspend it for the whole transfer.
    #[serde(default)]
    pub live: bool,
    /// For `migrate-send` of a QEMU guest: its disks' overlays travel in
    /// the stream too (the new server does not see them).
    #[serde(default)]
    pub copy_disks: bool,
}

/// Read a migration job's first line.
pub fn read_job(input: &mut impl BufRead) -> Result<MigrateJob> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| Error::io(Path::new("migration job"), e))?;
    serde_json::from_str(&line).map_err(|e| Error::Backend {
        what: "migration job".into(),
        message: format!("the first line must be {{\"project\":..,\"host\":..}}: {e}"),
    })
}

/// Send running domain `name` from `hv` to `out` (libxl's stream); the
/// domain is gone here once this returns `Ok`, and runs on here under its
/// name when it returns `Err`.
pub fn send(hv: &dyn Hypervisor, name: &str, out: impl Write) -> Result<()> {
    send_with(|fd| hv.migrate_send(name, fd), name, out)
}

/// [`send`] through `sender`, which writes the stream into the descriptor
/// it is given (a hypervisor's `migrate_send`, or QEMU's migration with the
/// disks).
pub fn send_with(
    sender: impl FnOnce(BorrowedFd<'_>) -> Result<()> + Send,
    name: &str,
    mut out: impl Write,
) -> Result<()> {
    let (mut ours, theirs) =
        UnixStream::pair().map_err(|e| Error::io(Path::new("socketpair"), e))?;
    std::thread::scope(|s| {
        let sender = s.spawn(move || {
            let sent = sender(theirs.as_fd());
            // The end of the stream for the copy below.
            drop(theirs);
            sent
        });
        let copied = std::io::copy(&mut ours, &mut out).and_then(|n| out.flush().map(|()| n));
        // A reader that went away makes libxl's next write fail rather
        // than block.
        drop(ours);
        let sent = joined(sender);
        match (sent, copied) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(Error::io(Path::new("migration stream"), e)),
            (Ok(()), Ok(n)) => {
                log::info!("{name}: {n} bytes of migration stream sent");
                Ok(())
            }
        }
    })
}

/// Restore the stream read from `input` as `spec` under `hv`, running.
pub fn receive(
    hv: &dyn Hypervisor,
    spec: &DomainSpec,
    mut input: impl Read,
) -> Result<mln_core::DomainInfo> {
    let (mut ours, theirs) =
        UnixStream::pair().map_err(|e| Error::io(Path::new("socketpair"), e))?;
    std::thread::scope(|s| {
        let receiver = s.spawn(move || {
            let got = hv.migrate_receive(spec, theirs.as_fd());
            // Unblocks the copy below after a failed restore.
            drop(theirs);
            got
        });
        if let Err(e) = std::io::copy(&mut input, &mut ours) {
            log::info!("migration stream in: {e}");
        }
        // The end of the stream: libxl sees EOF if it wants more.
        let _ = ours.shutdown(std::net::Shutdown::Write);
        let got = receiver.join().unwrap_or_else(|_| {
            Err(Error::Backend {
                what: spec.name.clone(),
                message: "the restoring thread panicked".into(),
            })
        });
        drop(ours);
        got
    })
}

fn mark_path(b: &LocalBackends, host: &HostSpec) -> Result<PathBuf> {
    let name = SafeName::new(&host.name)?;
    Ok(b.dir().join("disks").join(format!(".{name}.storage-mark")))
}

fn root_disk(b: &LocalBackends, project: &str, host: &HostSpec) -> Result<PathBuf> {
    let spec = b.domain_spec(project, host, &Default::default());
    // Interfaces need switch records; only the disks matter here, and
    // those do not depend on switches: ask again without interfaces.
    let spec = match spec {
        Ok(s) => s,
        Err(_) => {
            let mut bare = host.clone();
            bare.interfaces.clear();
            b.domain_spec(project, &bare, &Default::default())?
        }
    };
    spec.disks
        .first()
        .map(|d| d.path.clone())
        .ok_or_else(|| Error::NotFound {
            domain: format!("disks of {}", host.name),
        })
}

/// Write `token` beside `host`'s root disk (`disks/.HOST.storage-mark`),
/// or remove the mark (`None`); the disk's path when it exists.
pub fn mark(
    b: &LocalBackends,
    project: &str,
    host: &HostSpec,
    token: Option<&str>,
) -> Result<Option<PathBuf>> {
    let path = mark_path(b, host)?;
    let Some(token) = token else {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(None),
        };
    };
    let disk = root_disk(b, project, host)?;
    if !disk.exists() {
        return Ok(None);
    }
    std::fs::write(&path, token).map_err(|e| Error::io(&path, e))?;
    Ok(Some(disk))
}

/// Whether `host`'s root disk exists here and the mark beside it holds
/// `token`: then this server sees the very file the marking server does.
pub fn marked(b: &LocalBackends, project: &str, host: &HostSpec, token: &str) -> Result<bool> {
    let disk = root_disk(b, project, host)?;
    let found = std::fs::read_to_string(mark_path(b, host)?).unwrap_or_default();
    Ok(disk.exists() && found == token)
}

/// A fresh token for [`mark`]: the kernel's random UUID.
pub fn token() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            format!("{}-{}", std::process::id(), t.as_nanos())
        })
}

fn hypervisor<'a>(b: &'a LocalBackends, host: &HostSpec) -> Result<&'a dyn Hypervisor> {
    match host.platform {
        Platform::Xen | Platform::Hvm | Platform::Kvm => b.hypervisor(None, host.platform),
        Platform::Uml => Err(Error::Unsupported {
            backend: "mln",
            op: "migrating a UML guest",
        }),
    }
}

/// Send `host`'s guest `name` from this machine's backends `b` to `out`:
/// through its hypervisor, or for a QEMU guest whose disks the receiver
/// does not see (`copy_disks`), with what its overlays hold.
pub fn send_from(
    b: &LocalBackends,
    host: &HostSpec,
    name: &str,
    copy_disks: bool,
    out: impl Write,
) -> Result<()> {
    if copy_disks && host.platform == Platform::Kvm {
        let qemu = b.qemu()?;
        return send_with(
            |fd| {
                let figures = qemu.migrate_send_with_disks(name, fd)?;
                if let (Some(down), Some(total)) = (figures.downtime_ms, figures.total_ms) {
                    // Read back by the managing side (see `Sending::finish`).
                    log::warn!("{MOVED} {name} in {total} ms, stopped for {down} ms");
                }
                Ok(())
            },
            name,
            out,
        );
    }
    send(hypervisor(b, host)?, name, out)
}

fn header(job: &MigrateJob) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(job).map_err(|e| Error::Backend {
        what: job.host.name.clone(),
        message: format!("cannot encode the migration job: {e}"),
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Move running `from` (at `source`) to `target` as `spec` there, joining
/// a sender and a receiver. `live` asks remote senders for libxl's live
/// mode; an in-process sender uses its hypervisor as configured.
pub fn migrate(
    access: &ServerAccess,
    project: &str,
    (source, from): (Side<'_>, &HostSpec),
    (target, to, spec): (Side<'_>, &HostSpec, &DomainSpec),
    live: bool,
    copy_disks: bool,
) -> Result<()> {
    let name = domain_name(project, &from.name);
    let job = |host: &HostSpec, spec: Option<&DomainSpec>| MigrateJob {
        project: project.to_string(),
        host: host.clone(),
        spec: spec.cloned(),
        live,
        copy_disks,
    };
    // In-process sides' backends, checked before anything starts.
    let send_here = match source {
        Side::Here(local) => {
            hypervisor(local, from)?;
            Some(local)
        }
        Side::Server(_) => None,
    };
    let receive_hv = match target {
        Side::Here(local) => Some(hypervisor(local, to)?),
        Side::Server(_) => None,
    };
    std::thread::scope(|s| {
        // The receiver first: it waits on its input.
        let (mut input, receiving): (Box<dyn Write + Send>, _) = match receive_hv {
            Some(hv) => {
                let (ours, theirs) =
                    UnixStream::pair().map_err(|e| Error::io(Path::new("socketpair"), e))?;
                let h = s.spawn(move || receive(hv, spec, theirs).map(drop));
                (Box::new(ours), Receiving::Here(h))
            }
            None => {
                let server = server_of(target);
                let mut j = Job::start(
                    access,
                    server,
                    "migrate-receive",
                    &header(&job(to, Some(spec)))?,
                )?;
                let stdin = j.take_stdin()?;
                (Box::new(stdin), Receiving::Server(j))
            }
        };
        let (output, sending): (Box<dyn Read + Send>, _) = match send_here {
            Some(local) => {
                let (ours, theirs) =
                    UnixStream::pair().map_err(|e| Error::io(Path::new("socketpair"), e))?;
                let name = name.clone();
                let h = s.spawn(move || send_from(local, from, &name, copy_disks, theirs));
                (Box::new(ours), Sending::Here(h))
            }
            None => {
                let server = server_of(source);
                let started =
                    Job::start(access, server, "migrate-send", &header(&job(from, None))?);
                let mut j = match started {
                    Ok(j) => j,
                    Err(e) => {
                        drop(input);
                        let _ = receiving.finish();
                        return Err(e);
                    }
                };
                let stdout = j.take_stdout()?;
                (Box::new(stdout), Sending::Server(j))
            }
        };
        let mut output = output;
        if let Err(e) = std::io::copy(&mut output, &mut input) {
            log::info!("{name}: migration stream cut: {e}");
        }
        drop(output);
        drop(input);
        let sent = sending.finish();
        let received = receiving.finish();
        match (sent, received) {
            (Ok(()), Ok(())) => Ok(()),
            // The sender's own failure explains the receiver's.
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(Error::Backend {
                what: name.clone(),
                message: format!(
                    "the old server sent the guest and ended it, but the new server could \
                     not restore it: {e}"
                ),
            }),
        }
    })
}

fn server_of<'a>(side: Side<'a>) -> &'a str {
    match side {
        Side::Server(s) => s,
        Side::Here(_) => "this machine",
    }
}

enum Receiving<'s> {
    Here(std::thread::ScopedJoinHandle<'s, Result<()>>),
    Server(Job),
}

enum Sending<'s> {
    Here(std::thread::ScopedJoinHandle<'s, Result<()>>),
    Server(Job),
}

fn joined(h: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    h.join().unwrap_or_else(|_| {
        Err(Error::Backend {
            what: "migration".into(),
            message: "a migration thread panicked".into(),
        })
    })
}

impl Receiving<'_> {
    fn finish(self) -> Result<()> {
        match self {
            Receiving::Here(h) => joined(h),
            Receiving::Server(j) => j.finish(),
        }
    }
}

impl Sending<'_> {
    /// The sender's end; a server's report of what QEMU measured (the
    /// guest's stop, the whole move) is passed on to this process's log.
    fn finish(self) -> Result<()> {
        match self {
            Sending::Here(h) => joined(h),
            Sending::Server(j) => {
                let said = j.finish_saying()?;
                for report in said.lines().filter_map(move_report) {
                    log::warn!("{report}");
                }
                Ok(())
            }
        }
    }
}

/// What a sender prints before its report of a completed live move (the
/// Xen backend's `MOVED_LIVE`, too).
const MOVED: &str = "moved live:";
/// What the Xen backend prints before its report of a move with the guest
/// suspended for the whole transfer (its `MOVED_SUSPENDED`).
const MOVED_SUSPENDED: &str = "moved suspended:";

/// The report of a completed move in a line a sender logged, from its
/// marker on.
fn move_report(line: &str) -> Option<&str> {
    [MOVED, MOVED_SUSPENDED]
        .iter()
        .filter_map(|m| line.find(m))
        .min()
        .map(|at| line[at..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mln_core::template::Template;

    fn server(root: &Path, name: &str) -> LocalBackends {
        let image = root.join("template.img");
        if !image.exists() {
            std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        }
        LocalBackends::new(root.join(name))
            .unwrap()
            .with_default_template(Template::image(image, "root=/dev/ubda rw"))
    }

    #[test]
    fn a_mark_is_seen_only_where_the_same_disk_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let a = server(dir.path(), "a");
        let b = server(dir.path(), "b");
        // "c" is "a" under another name: the same folder, as a shared
        // filesystem mounted on two servers would be.
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("c")).unwrap();
        let c = server(dir.path(), "c");
        let host = HostSpec::new("web");
        a.prepare_disk("lab", &host).unwrap();
        b.prepare_disk("lab", &host).unwrap();
        let t = token();
        assert!(mark(&a, "lab", &host, Some(&t)).unwrap().is_some());
        assert!(marked(&c, "lab", &host, &t).unwrap());
        // b has a disk of that name, but another file.
        assert!(!marked(&b, "lab", &host, &t).unwrap());
        assert!(!marked(&c, "lab", &host, "other").unwrap());
        mark(&a, "lab", &host, None).unwrap();
        assert!(!marked(&c, "lab", &host, &t).unwrap());
        // Without a disk there is nothing to mark.
        let other = HostSpec::new("db");
        assert!(mark(&a, "lab", &other, Some(&t)).unwrap().is_none());
    }

    #[test]
    fn a_senders_report_of_either_move_is_passed_on_from_its_marker() {
        assert_eq!(
            move_report("[WARN mln_core::xen] moved live: lab.web in 900 ms"),
            Some("moved live: lab.web in 900 ms")
        );
        assert_eq!(
            move_report("WARN moved suspended: lab.web in 2000 ms"),
            Some("moved suspended: lab.web in 2000 ms")
        );
        assert_eq!(move_report("INFO lab.web: 1000 bytes sent"), None);
    }

    #[test]
    fn a_job_line_round_trips() {
        let job = MigrateJob {
            project: "lab".into(),
            host: HostSpec::new("web"),
            spec: None,
            live: true,
            copy_disks: true,
        };
        let line = header(&job).unwrap();
        assert!(line.ends_with(b"\n"));
        assert_eq!(read_job(&mut &line[..]).unwrap(), job);
    }
}
