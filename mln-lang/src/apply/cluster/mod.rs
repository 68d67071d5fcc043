//! Backends for a project spread over several servers: this machine's
//! hosts go to a [`LocalBackends`], every other service host's to its
//! `mln agent`, reached over ssh ([`crate::agent`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use mln_core::{DomainSpec, Error, Hypervisor, Result};

use super::{Backends, LocalBackends};
use crate::agent::carry::carry;
use crate::agent::disks;
use crate::agent::migrate;
use crate::agent::protocol::{Capacity, ConsoleTail, Request, ServerProject};
use crate::agent::{AgentClient, AgentError, Connection, RemoteHypervisor, ServerAccess};
use crate::plan::{DesiredProject, HostSpec, Platform, SwitchSpec};
use crate::state::{State, SwitchRecord};

mod archive;
mod moves;
mod span;

/// What [`super::Session`] asks servers before applying a plan: their
/// memory.
pub trait ServerMemory: Sync {
    /// The memory of `service_host` (`None`: this machine).
    fn memory(&self, service_host: Option<&str>) -> Result<Capacity>;
}

/// One server's agent, connected on first use; a failed connection is
/// kept, so every later request fails at once with the same reason.
struct ServerLink {
    server: String,
    access: ServerAccess,
    conn: OnceLock<std::result::Result<Arc<AgentClient>, AgentError>>,
}

impl Connection for ServerLink {
    fn client(&self) -> Result<Arc<AgentClient>> {
        self.conn
            .get_or_init(|| AgentClient::connect(&self.server, &self.access).map(Arc::new))
            .clone()
            .map_err(Error::from)
    }
}

impl ServerLink {
    fn call<T: serde::de::DeserializeOwned>(&self, req: &Request) -> Result<T> {
        self.client()?.call_as(req)
    }
}

const PLATFORMS: [Platform; 4] = Platform::ALL;

/// The backends of one project across servers.
///
/// ```no_run
/// # fn f(store: &mln_lang::state::StateStore, desired: &mln_lang::plan::DesiredProject)
/// #     -> mln_core::Result<()> {
/// use mln_lang::agent::ServerAccess;
/// use mln_lang::apply::{ClusterBackends, LocalBackends};
/// let local = LocalBackends::new(store.dir())?;
/// let backends = ClusterBackends::new(&desired.name, local, ServerAccess::from_env())
///     .with_servers(Some(desired), store.load().ok().flatten().as_ref());
/// # Ok(()) }
/// ```
pub struct ClusterBackends {
    project: String,
    local: LocalBackends,
    local_names: BTreeSet<String>,
    access: ServerAccess,
    links: BTreeMap<String, Arc<ServerLink>>,
    hypervisors: BTreeMap<(String, Platform), RemoteHypervisor>,
    /// Each switch's home server (`None`: here).
    homes: BTreeMap<String, Option<String>>,
    /// The servers whose hosts plug into each switch, home excluded.
    spans: BTreeMap<String, BTreeSet<Option<String>>>,
    /// The same, of the hosts as recorded only: the cables that should
    /// be up now.
    recorded_spans: BTreeMap<String, BTreeSet<Option<String>>>,
    /// Each switch's desired members: (server, host).
    desired_members: BTreeMap<String, BTreeSet<(Option<String>, String)>>,
    /// The switches' specs, desired over recorded.
    switch_specs: BTreeMap<String, SwitchSpec>,
    /// Switch instances this process started or found running, cabled to
    /// the home one: (switch, server).
    ensured: Mutex<BTreeSet<(String, Option<String>)>>,
    /// Instances found running when their switch was (re)created: the
    /// guests plugged into them never lost their link.
    adopted: Mutex<BTreeSet<(String, Option<String>)>>,
    /// The home instances this process started or adopted, by switch:
    /// whether they are Linux bridges decides how others join them.
    home_records: Mutex<BTreeMap<String, SwitchRecord>>,
    /// Servers given up for lost (`mln evacuate`): switch instances there
    /// are neither asked for nor made.
    lost: BTreeSet<String>,
}

impl ClusterBackends {
    /// `project`'s backends: `local` for this machine (service host
    /// `None`, `localhost` or this machine's host name), agents reached
    /// with `access` for the others.
    pub fn new(project: &str, local: LocalBackends, access: ServerAccess) -> Self {
        let mut local_names: BTreeSet<String> = ["localhost".to_string()].into();
        local_names.extend(crate::agent::this_hostname());
        ClusterBackends {
            project: project.to_string(),
            local,
            local_names,
            access,
            links: BTreeMap::new(),
            hypervisors: BTreeMap::new(),
            homes: BTreeMap::new(),
            spans: BTreeMap::new(),
            recorded_spans: BTreeMap::new(),
            desired_members: BTreeMap::new(),
            switch_specs: BTreeMap::new(),
            ensured: Mutex::new(BTreeSet::new()),
            adopted: Mutex::new(BTreeSet::new()),
            home_records: Mutex::new(BTreeMap::new()),
            lost: BTreeSet::new(),
        }
    }

    /// Give `server` up for lost: switches stop spanning it (their
    /// instances there are left alone, their local cable ends stopped).
    pub fn give_up(&mut self, server: &str) {
        self.lost.insert(server.to_string());
    }

    /// The servers `switch` spans, less the lost ones.
    fn live_spans(&self, switch: &str) -> impl Iterator<Item = &Option<String>> {
        self.spans
            .get(switch)
            .into_iter()
            .flatten()
            .filter(|s| s.as_ref().map_or(true, |s| !self.lost.contains(s)))
    }

    /// Get ready for every server `desired` and `recorded` mention (no
    /// connection is made yet).
    pub fn with_servers(
        mut self,
        desired: Option<&DesiredProject>,
        recorded: Option<&State>,
    ) -> Self {
        let hosts = desired
            .into_iter()
            .flat_map(|d| d.hosts.values().map(|h| (h, true)))
            .chain(
                recorded
                    .into_iter()
                    .flat_map(|r| r.hosts.values().map(|h| (&h.spec, false))),
            );
        let mut servers = BTreeSet::new();
        let mut members: Vec<(String, Option<String>, bool)> = Vec::new();
        for (h, wanted) in hosts {
            let sh = self.remote(h.service_host.as_deref()).map(str::to_string);
            servers.extend(sh.clone());
            for i in &h.interfaces {
                if let Some(sw) = &i.switch {
                    members.push((sw.clone(), sh.clone(), wanted));
                    if wanted {
                        self.desired_members
                            .entry(sw.clone())
                            .or_default()
                            .insert((sh.clone(), h.name.clone()));
                    }
                }
            }
        }
        let switches = recorded
            .into_iter()
            .flat_map(|r| r.switches.values().map(|s| &s.spec))
            .chain(desired.into_iter().flat_map(|d| d.switches.values()));
        for s in switches {
            let home = self.remote(s.service_host.as_deref()).map(str::to_string);
            servers.extend(home.clone());
            self.homes.insert(s.name.clone(), home);
            self.switch_specs.insert(s.name.clone(), s.clone());
        }
        for (sw, sh, wanted) in members {
            if self.homes.get(&sw).is_some_and(|home| *home != sh) {
                if !wanted {
                    self.recorded_spans
                        .entry(sw.clone())
                        .or_default()
                        .insert(sh.clone());
                }
                self.spans.entry(sw).or_default().insert(sh);
            }
        }
        // Servers that kept hosts while lost, to be cleared when they answer.
        servers.extend(
            recorded
                .into_iter()
                .flat_map(|r| r.stale.iter().map(|c| c.server.clone())),
        );
        for server in servers {
            self.add_server(&server);
        }
        self
    }

    /// Get ready for `server` (its hypervisors exist from now on).
    pub fn add_server(&mut self, server: &str) {
        if self.links.contains_key(server) {
            return;
        }
        let link = Arc::new(ServerLink {
            server: server.to_string(),
            access: self.access.clone(),
            conn: OnceLock::new(),
        });
        for p in PLATFORMS {
            let conn: Arc<dyn Connection> = link.clone();
            self.hypervisors.insert(
                (server.to_string(), p),
                RemoteHypervisor::new(conn, self.project.clone(), p),
            );
        }
        self.links.insert(server.to_string(), link);
    }

    /// The local backends.
    pub fn local(&self) -> &LocalBackends {
        &self.local
    }

    /// The remote servers known, by name.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.links.keys().map(String::as_str)
    }

    /// `service_host` when it is another machine; `None` for this one.
    pub fn remote<'a>(&self, service_host: Option<&'a str>) -> Option<&'a str> {
        service_host.filter(|s| !self.local_names.contains(*s))
    }

    fn link(&self, server: &str) -> Result<&ServerLink> {
        self.links
            .get(server)
            .map(|l| l.as_ref())
            .ok_or_else(|| Error::Backend {
                what: server.to_string(),
                message: "this server is not part of the project as planned".into(),
            })
    }

    /// Connect to every known server at once (in parallel); the servers
    /// that cannot be reached, with why.
    pub fn connect_all(&self) -> BTreeMap<String, String> {
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .links
                .values()
                .map(|l| (l.server.clone(), s.spawn(move || l.client().map(drop))))
                .collect();
            handles
                .into_iter()
                .filter_map(|(server, h)| match h.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((server, e.to_string())),
                    Err(_) => Some((server, "connecting panicked".to_string())),
                })
                .collect()
        })
    }

    /// The end of `host`'s console log where it runs (`service_host`).
    pub fn console_tail(
        &self,
        service_host: Option<&str>,
        host: &str,
        bytes: u64,
    ) -> Result<ConsoleTail> {
        match self.remote(service_host) {
            None => {
                let path = self.local.console_log(&self.project, host)?;
                let data = std::fs::read(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::NotFound {
                        domain: crate::plan::domain_name(&self.project, host),
                    },
                    _ => Error::io(&path, e),
                })?;
                let from = data
                    .len()
                    .saturating_sub(usize::try_from(bytes).unwrap_or(usize::MAX));
                Ok(ConsoleTail {
                    size: data.len() as u64,
                    text: String::from_utf8_lossy(&data[from..]).into_owned(),
                })
            }
            Some(server) => self.link(server)?.call(&Request::ConsoleTail {
                project: self.project.clone(),
                host: host.to_string(),
                bytes,
            }),
        }
    }

    /// Where `host`'s interactive console is reached, wherever it runs
    /// (`service_host`): on this machine from its backend; on another
    /// server through `ssh` to its agent (`terminal`: this side is a
    /// terminal, so ssh gives the server side one).
    pub fn console(
        &self,
        service_host: Option<&str>,
        platform: Platform,
        host: &str,
        terminal: bool,
    ) -> Result<mln_core::attach::ConsoleEndpoint> {
        match self.remote(service_host) {
            None => self
                .local
                .hypervisor(None, platform)?
                .console(&crate::plan::domain_name(&self.project, host)),
            Some(server) => {
                let argv = self
                    .access
                    .console_argv(server, &self.project, &platform.to_string(), host, terminal)
                    .map_err(|e| Error::Backend {
                        what: server.to_string(),
                        message: e.to_string(),
                    })?;
                Ok(mln_core::attach::ConsoleEndpoint::Program(argv))
            }
        }
    }

    /// What `server` runs, every project.
    pub fn server_projects(&self, server: &str) -> Result<Vec<ServerProject>> {
        self.link(server)?.call(&Request::Projects)
    }

    fn here_host(host: &HostSpec) -> HostSpec {
        let mut h = host.clone();
        h.service_host = None;
        h
    }
}

impl ServerMemory for ClusterBackends {
    fn memory(&self, service_host: Option<&str>) -> Result<Capacity> {
        match self.remote(service_host) {
            None => {
                let mut capacity = crate::agent::server::meminfo()?;
                // On a dom0, Xen's free memory is what new guests can get.
                if let Ok(xen) = self.local.hypervisor(None, Platform::Xen) {
                    capacity.xen_free = xen.free_memory()?;
                    capacity.xen_total = xen.total_memory()?;
                }
                Ok(capacity)
            }
            Some(server) => self.link(server)?.call(&Request::Capacity),
        }
    }
}

impl Backends for ClusterBackends {
    fn acceleration(&self, service_host: Option<&str>, domain: &str) -> Option<String> {
        match service_host {
            None => self.local.acceleration(None, domain),
            Some(_) => None,
        }
    }

    fn hypervisor(
        &self,
        service_host: Option<&str>,
        platform: Platform,
    ) -> Result<&dyn Hypervisor> {
        match self.remote(service_host) {
            None => self.local.hypervisor(None, platform),
            Some(server) => self
                .hypervisors
                .get(&(server.to_string(), platform))
                .map(|h| h as &dyn Hypervisor)
                .ok_or_else(|| Error::Backend {
                    what: server.to_string(),
                    message: "this server is not part of the project as planned".into(),
                }),
        }
    }

    fn platforms(&self, service_host: Option<&str>) -> Vec<Platform> {
        match self.remote(service_host) {
            None => self.local.platforms(None),
            Some(server) => match self.link(server).and_then(|l| l.client()) {
                Ok(c) if !c.hello().platforms.is_empty() => c.hello().platforms.clone(),
                Ok(_) => vec![Platform::Uml],
                Err(_) => Vec::new(),
            },
        }
    }

    fn claim_disks(&self, project: &str, host: &HostSpec) -> Result<()> {
        let Some(server) = self.remote(host.service_host.as_deref()) else {
            return Ok(());
        };
        let claimed = self
            .link(server)?
            .call::<serde_json::Value>(&Request::ClaimDisks {
                project: project.to_string(),
                host: host.clone(),
                server: server.to_string(),
            });
        match claimed {
            // An older agent: its hosts are made afresh if it is lost.
            Err(Error::Unsupported { .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    fn sees_disks_of(&self, project: &str, from: &HostSpec, to: &HostSpec) -> Result<bool> {
        let (a, b) = (
            self.remote(from.service_host.as_deref()),
            self.remote(to.service_host.as_deref()),
        );
        match a {
            Some(lost) if a != b => match self.disks_placed_by(project, b, to) {
                Ok(placed) => Ok(placed.as_deref() == Some(lost)),
                // An older agent cannot tell: the host is made afresh.
                Err(Error::Unsupported { .. }) => Ok(false),
                Err(e) => Err(e),
            },
            _ => Ok(false),
        }
    }

    fn remove_stale(&self, project: &str, host: &HostSpec, now: Option<&HostSpec>) -> Result<()> {
        // On storage both servers see, the stale copy's disk files are
        // the ones the host runs from now: they stay.
        let shared = match now {
            Some(now) if now.service_host != host.service_host => {
                self.shares_disks(project, host, now).unwrap_or_else(|e| {
                    log::warn!(
                        "{}: cannot tell whether its old disks on {} are the ones it runs \
                         from now, so they are kept: {e}",
                        host.name,
                        host.service_host.as_deref().unwrap_or("this machine")
                    );
                    true
                })
            }
            _ => false,
        };
        if shared {
            log::warn!(
                "{}: its disks on {} are on storage {} shares, where it runs from them now: kept",
                host.name,
                host.service_host.as_deref().unwrap_or("this machine"),
                now.and_then(|n| n.service_host.as_deref())
                    .unwrap_or("this machine")
            );
        } else {
            self.remove_disk(project, host)?;
        }
        self.leave_server(project, host, self.remote(host.service_host.as_deref()));
        Ok(())
    }

    fn create_switch(&self, project: &str, spec: &SwitchSpec) -> Result<SwitchRecord> {
        let home = self.remote(spec.service_host.as_deref());
        let rec = self.ensure_instance(project, spec, home)?;
        lock(&self.home_records).insert(spec.name.clone(), rec.clone());
        // Members on other servers plug into their own server's instance,
        // joined to this one.
        for other in self.live_spans(&spec.name) {
            let other_rec = self.ensure_instance(project, spec, other.as_deref())?;
            self.join(
                project,
                &spec.name,
                (home, Some(&rec)),
                (other.as_deref(), &other_rec),
            )?;
            lock(&self.ensured).insert((spec.name.clone(), other.clone()));
        }
        let mut rec = rec;
        rec.spec = spec.clone();
        Ok(rec)
    }

    fn remove_switch(&self, project: &str, spec: &SwitchSpec) -> Result<()> {
        let home = self.remote(spec.service_host.as_deref());
        let mut first_error = None;
        for other in self.live_spans(&spec.name) {
            let done = self
                .unjoin(project, &spec.name, other.as_deref())
                .and_then(|()| self.remove_instance(project, spec, other.as_deref()));
            if let Err(e) = done {
                first_error.get_or_insert(e);
            }
        }
        self.remove_instance(project, spec, home)?;
        first_error.map_or(Ok(()), Err)
    }

    fn list_switches(
        &self,
        project: &str,
        service_host: Option<&str>,
    ) -> Result<Vec<(String, bool)>> {
        let at = self.remote(service_host);
        let found: Vec<(String, bool)> = match at {
            None => self.local.list_switches(project, None)?,
            Some(server) => self.link(server)?.call(&Request::ListSwitches {
                project: project.to_string(),
            })?,
        };
        // Only a switch's home instance stands for the switch; instances
        // that extend it to other servers are this type's business. A
        // switch whose cable to another server is down does not work
        // there: it is reported down, so a plan creates it again (which
        // cables it again).
        Ok(found
            .into_iter()
            .filter(|(name, _)| {
                self.homes
                    .get(name)
                    .map_or(true, |home| home.as_deref() == at)
            })
            .map(|(name, up)| {
                let up = up && self.cables_up(&name);
                (name, up)
            })
            .collect())
    }

    fn prepare_disk(&self, project: &str, host: &HostSpec) -> Result<Vec<PathBuf>> {
        match self.remote(host.service_host.as_deref()) {
            None => self.local.prepare_disk(project, &Self::here_host(host)),
            Some(server) => self.link(server)?.call(&Request::PrepareDisk {
                project: project.to_string(),
                host: host.clone(),
            }),
        }
    }

    fn write_guest_config(&self, project: &DesiredProject, host: &HostSpec) -> Result<()> {
        match self.remote(host.service_host.as_deref()) {
            None => self
                .local
                .write_guest_config(project, &Self::here_host(host)),
            // Made here, where the `files` it carries are, and sent whole.
            Some(server) => {
                let disk = self
                    .local
                    .guest_config_disk(project, &Self::here_host(host))?;
                self.link(server)?
                    .call::<serde_json::Value>(&Request::PutGuestConfig {
                        project: project.name.clone(),
                        host: host.clone(),
                        disk: mln_core::base64::encode(&disk),
                    })
                    .map(drop)
            }
        }
    }

    fn fit_disks(&self, project: &str, host: &HostSpec) -> Result<()> {
        match self.remote(host.service_host.as_deref()) {
            None => self.local.fit_disks(project, &Self::here_host(host)),
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::FitDisks {
                    project: project.to_string(),
                    host: host.clone(),
                })
                .map(drop),
        }
    }

    fn remove_disk(&self, project: &str, host: &HostSpec) -> Result<()> {
        match self.remote(host.service_host.as_deref()) {
            None => {
                disks::clear(&self.local, host)?;
                self.local.remove_disk(project, &Self::here_host(host))
            }
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::RemoveDisk {
                    project: project.to_string(),
                    host: host.clone(),
                })
                .map(drop),
        }
    }

    fn domain_spec(
        &self,
        project: &str,
        host: &HostSpec,
        switches: &BTreeMap<String, SwitchRecord>,
    ) -> Result<DomainSpec> {
        self.ensure_spans(project, host)?;
        match self.remote(host.service_host.as_deref()) {
            None => {
                // A local guest of a switch homed elsewhere plugs into the
                // local instance.
                let mut here = switches.clone();
                for rec in here.values_mut() {
                    if self.remote(rec.spec.service_host.as_deref()).is_some() {
                        if let Ok(sw) = mln_core::net::VdeSwitch::open(
                            &rec.spec.name,
                            self.local.dir().join("switches"),
                        ) {
                            rec.socket = Some(sw.ctl_dir());
                        }
                    }
                }
                self.local
                    .domain_spec(project, &Self::here_host(host), &here)
            }
            Some(server) => self.link(server)?.call(&Request::DomainSpec {
                project: project.to_string(),
                host: host.clone(),
                switches: switches.clone(),
            }),
        }
    }

    fn replug(
        &self,
        project: &str,
        host: &HostSpec,
        interface: &str,
        switch: &SwitchRecord,
    ) -> Result<()> {
        let at = self.remote(host.service_host.as_deref());
        // The guest's own instance ran on when the switch was created
        // again (only a cable was down): its link never broke.
        if lock(&self.adopted).contains(&(switch.spec.name.clone(), at.map(str::to_string))) {
            return Ok(());
        }
        match at {
            None => self
                .local
                .replug(project, &Self::here_host(host), interface, switch),
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::Replug {
                    project: project.to_string(),
                    host: host.clone(),
                    interface: interface.to_string(),
                    switch: switch.clone(),
                })
                .map(drop),
        }
    }

    /// Between two local service hosts (`None` and `localhost`) the disks
    /// stay where they are. Across servers the stopped host's COW and
    /// configuration disks go from the old server to the new one as one
    /// checksummed stream, joined here (the agent's `carry`); the
    /// new server rebases the COW onto its template. The old server's
    /// files go only once the new server's copy is verified, so a move cut
    /// anywhere can be run again: a verified copy is not sent twice, a
    /// partial one is replaced, and a finished move stays finished.
    fn move_disk(&self, project: &str, from: &HostSpec, to: &HostSpec) -> Result<()> {
        let (a, b) = (
            self.remote(from.service_host.as_deref()),
            self.remote(to.service_host.as_deref()),
        );
        if a == b {
            return Ok(());
        }
        let server = |at: Option<&str>| at.unwrap_or("this machine").to_string();
        // On storage both servers see, the new server's files are the old
        // one's: nothing to carry, and nothing to remove.
        if self.shares_disks(project, from, to)? {
            log::info!(
                "{}: {} sees its disks on {} (shared storage): they stay",
                to.name,
                server(b),
                server(a)
            );
            self.end_move(project, b, to)?;
            self.leave_server(project, from, a);
            return Ok(());
        }
        let source = self.host_disks(project, a, from)?;
        let target = self.host_disks(project, b, to)?;
        if source.files.is_empty() {
            if target.has_cow(&to.name) {
                log::info!("{}: its disks are on {} already", to.name, server(b));
                self.end_move(project, b, to)?;
                self.leave_server(project, from, a);
                return Ok(());
            }
            return Err(Error::Backend {
                what: from.name.clone(),
                message: format!(
                    "its disks are neither on {} nor on {}",
                    server(a),
                    server(b)
                ),
            });
        }
        if target.holds_copy_of(&source.files) {
            log::info!(
                "{}: {} holds a verified copy of its disks already",
                to.name,
                server(b)
            );
        } else {
            carry(
                &self.access,
                project,
                (self.side(a), from),
                (self.side(b), to),
                source.template.as_ref(),
            )?;
            if !self
                .host_disks(project, b, to)?
                .holds_copy_of(&source.files)
            {
                return Err(Error::Backend {
                    what: to.name.clone(),
                    message: format!(
                        "the copy of its disks on {} does not match the files on {}, \
                         which keeps them",
                        server(b),
                        server(a)
                    ),
                });
            }
        }
        self.remove_disk(project, from)?;
        self.end_move(project, b, to)?;
        self.leave_server(project, from, a);
        Ok(())
    }

    /// Move running guest `from` to `to`'s server through its
    /// hypervisor's migration stream, from `mln agent migrate-send` on the
    /// old server to `migrate-receive` on the new one, joined here (the
    /// agent's `migrate`).
    ///
    /// A Xen guest moves as `xl migrate` moves it, and only when the new
    /// server sees its disk file itself (shared storage, proven with a
    /// mark: `migrate::mark`): live mode first; a Xen that refuses it (no
    /// log-dirty paging for PV guests, as in the test lab) leaves the
    /// guest running, and the stream is sent again with the guest
    /// suspended for the transfer. A QEMU guest moves live either way:
    /// without shared storage the new server first makes a fresh overlay
    /// over its own copy of the template and the guest's configuration
    /// disk, and what the old overlay holds travels in the stream (QEMU's
    /// incremental block migration); the old server's disks are then
    /// deleted. Otherwise, and when the stream fails with the guest still
    /// running on the old server, [`Error::Unsupported`] tells the
    /// executor to move it cold (stop, carry the disks, start).
    fn migrate(&self, desired: &DesiredProject, from: &HostSpec, to: &HostSpec) -> Result<()> {
        let project = desired.name.as_str();
        let (a, b) = (
            self.remote(from.service_host.as_deref()),
            self.remote(to.service_host.as_deref()),
        );
        if a == b {
            return Ok(());
        }
        // A guest that could move live but will not says why where
        // `upgrade` shows it (issue #21); the rest is the usual case.
        let cold = |why: String| {
            if from.platform.live_migration() {
                log::warn!("{}: moves cold: {why}", from.name);
            } else {
                log::info!("{}: moves cold: {why}", from.name);
            }
            Err(Error::Unsupported {
                backend: "mln",
                op: "migrating this running guest",
            })
        };
        if !from.platform.live_migration() || from.platform != to.platform {
            return cold("only Xen and QEMU guests migrate, on the same platform".into());
        }
        let server = |at: Option<&str>| at.unwrap_or("this machine").to_string();
        let copy_disks = !self.shares_disks(project, from, to)?;
        if copy_disks && from.platform != Platform::Kvm {
            return cold(format!(
                "its disk on {} is not a file {} sees too",
                server(a),
                server(b)
            ));
        }
        if copy_disks {
            // What the stream fills: an empty overlay over the new
            // server's template, and the guest's configuration disk.
            self.prepare_disk(project, to)?;
            self.write_guest_config(desired, to)?;
        }
        let spec = self.receiving_spec(project, to)?;
        let name = spec.name.clone();
        let still_there = || {
            self.hypervisor(from.service_host.as_deref(), from.platform)
                .and_then(|hv| hv.info(&name))
                .is_ok_and(|i| i.state == mln_core::DomainState::Running)
        };
        let mut last = None;
        // QEMU migrates live only; Xen tries live, then suspended.
        let modes: &[bool] = if from.platform == Platform::Kvm {
            &[true]
        } else {
            &[true, false]
        };
        for &live in modes {
            match migrate::migrate(
                &self.access,
                project,
                (self.side(a), from),
                (self.side(b), to, &spec),
                live,
                copy_disks,
            ) {
                Ok(()) => {
                    if copy_disks {
                        if let Err(e) = self.remove_disk(project, from) {
                            log::warn!("{}: disks left on {}: {e}", from.name, server(a));
                        }
                    }
                    self.leave_server(project, from, a);
                    return Ok(());
                }
                Err(e) if still_there() => {
                    log::info!(
                        "{}: {} migration refused, the guest runs on: {e}",
                        from.name,
                        if live { "live" } else { "suspended" }
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if copy_disks {
            // The guest runs on where it was: the new server's copies go.
            let _ = self.remove_disk(project, to);
        }
        cold(format!(
            "the migration stream failed: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Sets updated whole under the lock stay consistent after a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
