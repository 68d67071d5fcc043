//! The managing machine's part of moving a host's disks: it joins the
//! old server's export to the new server's import. A side on another
//! server is `mln agent export-disks` / `import-disks` run over ssh (argv
//! only; the project and host travel as a JSON line on the job's stdin);
//! a side on this machine runs in-process ([`super::disks`]).
//!
//! The stream flows through this machine, so the servers need no access
//! to each other. Errors name the server and quote the job's last words.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use mln_core::disk::transfer::FileEntry;
use mln_core::{Error, Result};

use super::disks::{self, DiskJob};
use super::ServerAccess;
use crate::machine::LocalBackends;
use crate::plan::HostSpec;

/// Where one side of a move runs.
#[derive(Clone, Copy)]
pub enum Side<'a> {
    /// On this machine, in these backends.
    Here(&'a LocalBackends),
    /// On that server, through its agent.
    Server(&'a str),
}

/// Send `from`'s disks (at `source`) to `target` as `to`'s: an export
/// joined to an import, which refuses a template other than `template`
/// (the source's). Returns once the import finished (verified and
/// recorded there) or failed; the source is never changed.
pub fn carry(
    access: &ServerAccess,
    project: &str,
    (source, from): (Side<'_>, &HostSpec),
    (target, to): (Side<'_>, &HostSpec),
    template: Option<&FileEntry>,
) -> Result<()> {
    match (source, target) {
        // Both on this machine: the files are where they belong already.
        (Side::Here(_), Side::Here(_)) => Ok(()),
        (Side::Here(local), Side::Server(server)) => {
            send_to(access, server, project, to, template, |stdin| {
                disks::export(local, from, stdin).map(drop)
            })
        }
        (Side::Server(server), Side::Here(local)) => {
            fetch_from(access, server, project, from, |mut out| {
                disks::import(local, project, to, template, &mut out).map(drop)
            })
        }
        (Side::Server(x), Side::Server(y)) => {
            let mut export = Job::start(access, x, "export-disks", &header(project, from, None)?)?;
            drop(export.child.stdin.take());
            let mut import =
                match Job::start(access, y, "import-disks", &header(project, to, template)?) {
                    Ok(j) => j,
                    Err(e) => {
                        export.kill();
                        return Err(e);
                    }
                };
            if let (Some(mut out), Some(mut input)) =
                (export.child.stdout.take(), import.child.stdin.take())
            {
                // A side that ends early breaks the copy; its own error
                // says why, below. Both pipes close here either way, so
                // neither job waits for the other.
                if let Err(e) = std::io::copy(&mut out, &mut input) {
                    log::info!("disk stream {x} → {y} cut: {e}");
                }
            }
            let exported = export.finish();
            let imported = import.finish();
            imported.and(exported)
        }
    }
}

/// Make `host`'s disks on `server` from the transfer stream `write`
/// writes (`mln agent import-disks`, which refuses a template other than
/// `template`). Returns once the server verified and recorded them, or
/// with its failure (which explains a broken pipe on this side).
pub fn send_to(
    access: &ServerAccess,
    server: &str,
    project: &str,
    host: &HostSpec,
    template: Option<&FileEntry>,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let mut job = Job::start(
        access,
        server,
        "import-disks",
        &header(project, host, template)?,
    )?;
    let sent = match job.child.stdin.take() {
        Some(mut stdin) => write(&mut stdin).and_then(|()| {
            stdin
                .flush()
                .map_err(|e| Error::io(std::path::Path::new("disk stream"), e))
        }),
        None => Ok(()),
    };
    // stdin is closed here: the import sees the end of the stream.
    let done = job.finish();
    match (sent, done) {
        (Ok(()), done) => done,
        // The import's complaint explains a broken pipe.
        (Err(e), Err(theirs)) if broken_pipe(&e) => Err(theirs),
        (Err(e), _) => Err(e),
    }
}

/// Read `host`'s disks on `server` as a transfer stream (`mln agent
/// export-disks`), handed to `read`; the server's files are not changed.
/// A failure of `read` ends the job, and carries what it said.
pub fn fetch_from(
    access: &ServerAccess,
    server: &str,
    project: &str,
    host: &HostSpec,
    read: impl FnOnce(&mut dyn BufRead) -> Result<()>,
) -> Result<()> {
    let mut job = Job::start(
        access,
        server,
        "export-disks",
        &header(project, host, None)?,
    )?;
    drop(job.child.stdin.take());
    let got = match job.child.stdout.take() {
        Some(out) => read(&mut BufReader::new(out)),
        None => Err(Error::Backend {
            what: server.to_string(),
            message: "the export job has no output".into(),
        }),
    };
    match got {
        Ok(()) => job.finish(),
        Err(e) => {
            let said = job.kill();
            Err(with_words(e, server, &said))
        }
    }
}

fn broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn header(project: &str, host: &HostSpec, template: Option<&FileEntry>) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&DiskJob {
        project: project.to_string(),
        host: host.clone(),
        template: template.cloned(),
    })
    .map_err(|e| Error::Backend {
        what: host.name.clone(),
        message: format!("cannot encode the disk job: {e}"),
    })?;
    line.push(b'\n');
    Ok(line)
}

/// `e`, with what `server`'s job printed when it says more.
fn with_words(e: Error, server: &str, said: &str) -> Error {
    let said = said.trim();
    if said.is_empty() {
        return e;
    }
    Error::Backend {
        what: server.to_string(),
        message: format!("{e} ({})", tail(said, 600)),
    }
}

/// An `mln agent JOB` on a server over ssh, its stderr collected.
pub(super) struct Job {
    server: String,
    name: &'static str,
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Job {
    /// Start it and write `header` (the [`DiskJob`] line) to its stdin.
    pub(super) fn start(
        access: &ServerAccess,
        server: &str,
        name: &'static str,
        header: &[u8],
    ) -> Result<Job> {
        let argv = access.argv(server, &[name])?;
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Spawn {
                program: argv[0].to_string_lossy().into_owned(),
                source: e,
            })?;
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        });
        let mut job = Job {
            server: server.to_string(),
            name,
            child,
            stderr,
        };
        let written = match job.child.stdin.as_mut() {
            Some(stdin) => stdin.write_all(header).and_then(|()| stdin.flush()),
            None => Ok(()),
        };
        if let Err(e) = written {
            drop(job.child.stdin.take());
            // Its own error (ssh could not connect, ...) says more than
            // the broken pipe.
            return Err(job.finish().err().unwrap_or_else(|| Error::Backend {
                what: server.to_string(),
                message: format!("mln agent {name}: {e}"),
            }));
        }
        Ok(job)
    }

    /// Wait for it (its stdin closed first); its failure with its last
    /// words.
    pub(super) fn finish(self) -> Result<()> {
        self.finish_saying().map(drop)
    }

    /// [`Job::finish`], returning what the job printed on stderr when it
    /// succeeded (a report worth passing on).
    pub(super) fn finish_saying(mut self) -> Result<String> {
        drop(self.child.stdin.take());
        drop(self.child.stdout.take());
        let status = self.child.wait().map_err(|e| Error::Backend {
            what: self.server.clone(),
            message: format!("mln agent {}: {e}", self.name),
        })?;
        let said = self.said();
        if status.success() {
            return Ok(said);
        }
        let said = said.trim();
        Err(Error::Backend {
            what: self.server.clone(),
            message: if said.is_empty() {
                format!("mln agent {} failed ({status})", self.name)
            } else {
                format!("mln agent {}: {}", self.name, tail(said, 600))
            },
        })
    }

    /// Its stdin, to write a stream to.
    pub(super) fn take_stdin(&mut self) -> Result<std::process::ChildStdin> {
        self.child.stdin.take().ok_or_else(|| Error::Backend {
            what: self.server.clone(),
            message: format!("mln agent {} has no input", self.name),
        })
    }

    /// Its stdout, to read a stream from.
    pub(super) fn take_stdout(&mut self) -> Result<std::process::ChildStdout> {
        self.child.stdout.take().ok_or_else(|| Error::Backend {
            what: self.server.clone(),
            message: format!("mln agent {} has no output", self.name),
        })
    }

    /// End it at once; what it printed.
    fn kill(mut self) -> String {
        drop(self.child.stdin.take());
        drop(self.child.stdout.take());
        // Killing one that exited already is harmless; the wait reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.said()
    }

    fn said(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
