//! `mln agent`: a server's side of the protocol. It reads requests from
//! the SSH channel, runs each on its own thread through the project's
//! [`LocalBackends`] under `STATE_ROOT/PROJECT/` (the layout the managing
//! machine uses for its own hosts), and writes each response as soon as it
//! is ready. It keeps no plan state: the managing machine records
//! everything.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use mln_core::disk::transfer::Manifest;
use mln_core::{Error, Hypervisor, SafeName};
use serde_json::Value;

use super::disks;
use super::migrate;
use super::protocol::{
    Capacity, ConsoleTail, Envelope, ErrorBody, Hello, Request, Response, ServerProject, KNOWN_OPS,
};
mod requests;
use crate::machine::{Backends, LocalBackends};
use crate::plan::{domain_name, HostSpec, Platform, SwitchSpec};

/// Makes the backends of one project from its folder (templates, Xen).
pub type BackendsFactory = dyn Fn(&Path) -> mln_core::Result<LocalBackends> + Send + Sync;

/// Asks the Xen hypervisor for its (free, total) memory, bytes.
pub type XenMemory = dyn Fn() -> Option<(u64, u64)> + Send + Sync;

/// The server side: one per `mln agent` process.
pub struct Agent {
    root: PathBuf,
    make: Box<BackendsFactory>,
    projects: Mutex<HashMap<String, Arc<LocalBackends>>>,
    /// Requests hold it shared; removing an emptied project folder holds
    /// it alone, so no request creates files in a folder being removed.
    gate: RwLock<()>,
    xen_memory: Option<Box<XenMemory>>,
    platforms: Vec<Platform>,
}

impl Agent {
    /// An agent keeping projects under `state_root`, making each project's
    /// backends with `make` (given `STATE_ROOT/PROJECT`).
    pub fn new(state_root: impl Into<PathBuf>, make: Box<BackendsFactory>) -> Self {
        Agent {
            root: state_root.into(),
            make,
            projects: Mutex::new(HashMap::new()),
            gate: RwLock::new(()),
            xen_memory: None,
            platforms: vec![Platform::Uml],
        }
    }

    /// The platforms announced in the hello (default: UML).
    pub fn with_platforms(mut self, platforms: Vec<Platform>) -> Self {
        self.platforms = platforms;
        self
    }

    /// How to ask the Xen hypervisor for its free and total memory (for
    /// `capacity`).
    pub fn with_xen_memory(mut self, f: Box<XenMemory>) -> Self {
        self.xen_memory = Some(f);
        self
    }

    fn backends(&self, project: &str) -> mln_core::Result<Arc<LocalBackends>> {
        let name = SafeName::new(project)?;
        let mut map = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(name.as_str()) {
            return Ok(b.clone());
        }
        let b = Arc::new((self.make)(&self.root.join(name.as_str()))?);
        map.insert(project.to_string(), b.clone());
        Ok(b)
    }

    fn hypervisor(b: &LocalBackends, platform: Platform) -> mln_core::Result<&dyn Hypervisor> {
        b.hypervisor(None, platform)
    }

    /// Where the console of `project`'s `host` (a `platform` guest here)
    /// is reached: for `mln agent console`, which a managing `mln console`
    /// runs over `ssh -t`.
    pub fn console(
        &self,
        project: &str,
        platform: Platform,
        host: &str,
    ) -> mln_core::Result<mln_core::attach::ConsoleEndpoint> {
        let b = self.backends(project)?;
        Self::hypervisor(&b, platform)?.console(&crate::plan::domain_name(project, host))
    }

    /// Answer one request (already parsed).
    pub fn handle(&self, req: Request) -> Result<Value, ErrorBody> {
        let prune = match &req {
            Request::Destroy { project, .. }
            | Request::Shutdown { project, .. }
            | Request::RemoveSwitch { project, .. }
            | Request::RemoveDisk { project, .. } => Some(project.clone()),
            _ => None,
        };
        let out = {
            let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
            self.run(req).map_err(|e| ErrorBody::from_core(&e))
        };
        if let Some(project) = prune {
            self.prune(&project);
        }
        out
    }

    /// `mln agent export-disks`: after the `DiskJob` line on
    /// `input`, write the host's disks to `out` as a transfer stream.
    pub fn export_disks(
        &self,
        input: &mut impl BufRead,
        out: impl Write,
    ) -> mln_core::Result<Manifest> {
        let job = disks::read_job(input)?;
        if !self
            .root
            .join(SafeName::new(&job.project)?.as_str())
            .exists()
        {
            return Err(Error::NotFound {
                domain: format!("project {} on this server", job.project),
            });
        }
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let b = self.backends(&job.project)?;
        disks::export(&b, &here_host(job.host), out)
    }

    /// `mln agent import-disks`: after the `DiskJob` line, read a
    /// transfer stream from `input` and make it the host's disks here
    /// (see `disks::import`).
    pub fn import_disks(&self, input: &mut impl BufRead) -> mln_core::Result<disks::MovedIn> {
        let job = disks::read_job(input)?;
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let b = self.backends(&job.project)?;
        disks::import(&b, &job.project, &job.host, job.template.as_ref(), input)
    }

    /// `mln agent migrate-send`: after the `MigrateJob` line,
    /// send the running guest to `out` as libxl's migration stream, in
    /// live mode if asked; `hypervisor(live)` gives the hypervisor that
    /// sends (the project's own when `None`).
    pub fn migrate_send(
        &self,
        input: &mut impl BufRead,
        out: impl Write,
        hypervisor: Option<&dyn Fn(bool) -> mln_core::Result<Box<dyn Hypervisor>>>,
    ) -> mln_core::Result<()> {
        let job = migrate::read_job(input)?;
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let b = self.backends(&job.project)?;
        let name = domain_name(&job.project, &job.host.name);
        match hypervisor {
            // A Xen guest: the toolstack the caller made for live or
            // suspended sending.
            Some(make) if job.host.platform != Platform::Kvm => {
                migrate::send(make(job.live)?.as_ref(), &name, out)
            }
            _ => migrate::send_from(&b, &job.host, &name, job.copy_disks, out),
        }
    }

    /// `mln agent migrate-receive`: after the `MigrateJob`
    /// line (with the domain spec), restore the stream on `input` here.
    pub fn migrate_receive(
        &self,
        input: &mut impl BufRead,
    ) -> mln_core::Result<mln_core::DomainInfo> {
        let job = migrate::read_job(input)?;
        let spec = job.spec.ok_or_else(|| Error::Backend {
            what: "migration job".into(),
            message: "migrate-receive needs the domain spec in its first line".into(),
        })?;
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let b = self.backends(&job.project)?;
        migrate::receive(Self::hypervisor(&b, job.host.platform)?, &spec, input)
    }

    fn server_projects(&self) -> mln_core::Result<Vec<ServerProject>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == "templates" || SafeName::new(&name).is_err() || !entry.path().is_dir() {
                continue;
            }
            let b = self.backends(&name)?;
            let mut domains = Vec::new();
            for p in &self.platforms {
                if let Ok(hv) = Self::hypervisor(&b, *p) {
                    let prefix = format!("{name}.");
                    domains.extend(
                        hv.list()?
                            .into_iter()
                            .filter(|d| d.name.starts_with(&prefix)),
                    );
                }
            }
            out.push(ServerProject {
                project: name,
                domains,
            });
        }
        out.sort_by(|a, b| a.project.cmp(&b.project));
        Ok(out)
    }

    /// Remove a project's folder once nothing is left in it but empty
    /// folders, so a removed project leaves nothing on the server.
    fn prune(&self, project: &str) {
        let Ok(name) = SafeName::new(project) else {
            return;
        };
        let _alone = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let dir = self.root.join(name.as_str());
        if remove_empty_tree(&dir) {
            self.projects
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(project);
        }
    }

    /// Serve requests from `reader` until it ends, answering on `writer`:
    /// the hello first, then one response per request, each as soon as it
    /// is ready (several run at once). Returns when every request read has
    /// been answered.
    pub fn serve(&self, reader: impl BufRead, writer: impl Write + Send) -> std::io::Result<()> {
        let hostname = super::this_hostname().unwrap_or_default();
        let writer = Mutex::new(writer);
        let send = |line: String| -> std::io::Result<()> {
            let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
            w.flush()
        };
        let hello = Hello::new(hostname, self.platforms.clone());
        send(serde_json::to_string(&hello).map_err(std::io::Error::other)?)?;
        std::thread::scope(|s| {
            for line in reader.lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match parse(&line) {
                    Ok((id, req)) => {
                        let send = &send;
                        s.spawn(move || {
                            let resp = match self.handle(req) {
                                Ok(v) => Response::ok(id, v),
                                Err(e) => Response::err(id, e),
                            };
                            if let Ok(text) = serde_json::to_string(&resp) {
                                if let Err(e) = send(text) {
                                    log::warn!("cannot answer request {id}: {e}");
                                }
                            }
                        });
                    }
                    Err(resp) => {
                        send(serde_json::to_string(&resp).map_err(std::io::Error::other)?)?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// A request line, or the error response it gets: `unsupported` for a
/// request kind this agent does not know, `bad_request` otherwise.
pub fn parse(line: &str) -> Result<(u64, Request), Response> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| Response::err(0, ErrorBody::new("bad_request", format!("not JSON: {e}"))))?;
    let id = value.get("id").and_then(Value::as_u64).unwrap_or(0);
    let op = value
        .get("req")
        .and_then(|r| r.get("op"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !KNOWN_OPS.contains(&op.as_str()) {
        return Err(Response::err(
            id,
            ErrorBody::new(
                "unsupported",
                format!("this agent does not know request {op:?}"),
            ),
        ));
    }
    let env: Envelope = serde_json::from_value(value)
        .map_err(|e| Response::err(id, ErrorBody::new("bad_request", format!("{op}: {e}"))))?;
    Ok((env.id, env.req))
}

/// A host as this server sees it: its own.
fn here_host(mut host: HostSpec) -> HostSpec {
    host.service_host = None;
    host
}

fn here_switch(mut spec: SwitchSpec) -> SwitchSpec {
    spec.service_host = None;
    spec
}

/// Remove `dir` if it holds only empty folders; whether it is gone.
pub(crate) fn remove_empty_tree(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return !dir.exists();
    };
    let mut empty = true;
    for e in entries.flatten() {
        let p = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !(is_dir && remove_empty_tree(&p)) {
            empty = false;
        }
    }
    empty && std::fs::remove_dir(dir).is_ok()
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`.
pub fn meminfo() -> mln_core::Result<Capacity> {
    let path = Path::new("/proc/meminfo");
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_meminfo(&text).ok_or_else(|| Error::Backend {
        what: path.display().to_string(),
        message: "no MemTotal/MemAvailable lines".into(),
    })
}

fn parse_meminfo(text: &str) -> Option<Capacity> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some(Capacity {
        mem_total: field("MemTotal:")?,
        mem_available: field("MemAvailable:")?,
        xen_free: None,
        xen_total: None,
    })
}

fn console_tail(
    b: &LocalBackends,
    project: &str,
    host: &str,
    bytes: u64,
) -> mln_core::Result<ConsoleTail> {
    let path = b.console_log(project, host)?;
    let mut f = std::fs::File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            domain: domain_name(project, host),
        },
        _ => Error::io(&path, e),
    })?;
    let size = f.metadata().map_err(|e| Error::io(&path, e))?.len();
    let from = size.saturating_sub(bytes);
    f.seek(SeekFrom::Start(from))
        .map_err(|e| Error::io(&path, e))?;
    let mut buf = Vec::new();
    f.take(bytes)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(&path, e))?;
    Ok(ConsoleTail {
        size,
        text: String::from_utf8_lossy(&buf).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_request_kinds_get_unsupported_and_garbage_bad_request() {
        let r = parse(r#"{"id":4,"req":{"op":"teleport"}}"#).unwrap_err();
        assert_eq!(r.id, 4);
        assert_eq!(r.err.unwrap().kind, "unsupported");
        let r = parse(r#"{"id":5,"req":{"op":"start"}}"#).unwrap_err();
        assert_eq!(r.err.unwrap().kind, "bad_request");
        let r = parse("nonsense").unwrap_err();
        assert_eq!(r.err.unwrap().kind, "bad_request");
        let (id, req) = parse(r#"{"id":6,"req":{"op":"capacity"}}"#).unwrap();
        assert_eq!((id, req), (6, Request::Capacity));
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let c =
            parse_meminfo("MemTotal:       16 kB\nMemFree: 1 kB\nMemAvailable:    8 kB\n").unwrap();
        assert_eq!(
            (c.mem_total, c.mem_available, c.free()),
            (16384, 8192, 8192)
        );
        assert!(parse_meminfo("MemTotal: 1 kB\n").is_none());
        assert!(meminfo().unwrap().mem_total > 0);
    }

    #[test]
    fn the_agent_answers_capacity_and_unknown_requests_after_its_hello() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::new(dir.path(), Box::new(|d: &Path| LocalBackends::new(d)));
        let input =
            "{\"id\":1,\"req\":{\"op\":\"capacity\"}}\n{\"id\":2,\"req\":{\"op\":\"fly\"}}\n\
                     {\"id\":3,\"req\":{\"op\":\"list_switches\",\"project\":\"nothere\"}}\n";
        let mut out = Vec::new();
        agent.serve(input.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let hello: Hello = serde_json::from_str(lines.next().unwrap()).unwrap();
        hello.check().unwrap();
        let mut answers: Vec<Response> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
        answers.sort_by_key(|r| r.id);
        assert!(
            answers[0].ok.as_ref().unwrap()["mem_available"]
                .as_u64()
                .unwrap()
                > 0
        );
        assert_eq!(answers[1].err.as_ref().unwrap().kind, "unsupported");
        assert_eq!(answers[2].ok, Some(serde_json::json!([])));
        // Asking about a project creates nothing on the server.
        assert!(!dir.path().join("nothere").exists());
    }
}
