//! Backends for a project spread over several servers: this machine's
//! hosts go to a [`LocalBackends`], every other service host's to its
//! `mln agent`, reached over ssh ([`crate::agent`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use mln_core::{DomainSpec, Error, Hypervisor, Result};

use super::{Backends, LocalBackends};
use crate::agent::carry::{carry, Side};
use crate::agent::disks::{self, HostDisks};
use crate::agent::migrate;
use crate::agent::protocol::{Capacity, ConsoleTail, Request, ServerProject, Underlay};
use crate::agent::vxlan;
use crate::agent::{AgentClient, AgentError, Connection, RemoteHypervisor, ServerAccess};
use crate::plan::{DesiredProject, HostSpec, Platform, SwitchSpec};
use crate::state::{State, SwitchRecord};

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

const PLATFORMS: [Platform; 3] = [Platform::Uml, Platform::Xen, Platform::Hvm];

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
}

/// How a switch's instance on another server is joined to its home one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// A vde cable run from this machine (`mln_core::net::Cable`).
    Cable,
    /// A VXLAN link between the two Linux bridges
    /// (`mln_core::net::Vxlan`), between this machine and that server.
    Vxlan,
}

/// VXLAN when both instances are Linux bridges and one of them is on
/// this machine; the cable otherwise. Each bridged instance is also a
/// `vde_switch` joined to its bridge by a tap, so UML guests meet through
/// the link too. The two never join the same pair: with the taps they
/// would close a loop. Only between this machine and a server are both
/// ends' addresses known (the server's `SSH_CONNECTION`); between two
/// other servers the cable stays.
fn transport(
    home: Option<&str>,
    home_rec: &SwitchRecord,
    other: Option<&str>,
    other_rec: &SwitchRecord,
) -> Transport {
    let bridged = home_rec.bridge.is_some() && other_rec.bridge.is_some();
    if bridged && vxlan_server(home, other).is_some() {
        Transport::Vxlan
    } else {
        Transport::Cable
    }
}

/// The server a VXLAN link of `home` and `other` would run to: the one
/// that is not this machine, when the other one is.
fn vxlan_server<'a>(home: Option<&'a str>, other: Option<&'a str>) -> Option<&'a str> {
    match (home, other) {
        (None, Some(server)) | (Some(server), None) => Some(server),
        _ => None,
    }
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
        }
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

    /// What `server` runs, every project.
    pub fn server_projects(&self, server: &str) -> Result<Vec<ServerProject>> {
        self.link(server)?.call(&Request::Projects)
    }

    fn here_host(host: &HostSpec) -> HostSpec {
        let mut h = host.clone();
        h.service_host = None;
        h
    }

    fn here_switch(spec: &SwitchSpec) -> SwitchSpec {
        let mut s = spec.clone();
        s.service_host = None;
        s
    }

    /// Start `spec`'s instance on `at` (`None`: here).
    fn switch_instance(
        &self,
        project: &str,
        spec: &SwitchSpec,
        at: Option<&str>,
    ) -> Result<SwitchRecord> {
        match at {
            None => self.local.create_switch(project, &Self::here_switch(spec)),
            Some(server) => self.link(server)?.call(&Request::CreateSwitch {
                project: project.to_string(),
                spec: spec.clone(),
            }),
        }
    }

    fn remove_instance(&self, project: &str, spec: &SwitchSpec, at: Option<&str>) -> Result<()> {
        match at {
            None => self.local.remove_switch(project, &Self::here_switch(spec)),
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::RemoveSwitch {
                    project: project.to_string(),
                    spec: spec.clone(),
                })
                .map(drop),
        }
    }

    fn cable_dir(&self) -> PathBuf {
        self.local.dir().join("cables")
    }

    /// The cable joining `switch`'s instance on `other` to its home one.
    fn cable_name(switch: &str, other: Option<&str>) -> String {
        let other: String = other
            .unwrap_or("local")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{switch}--{other}")
    }

    /// The command that plugs into `switch`'s instance on `at`: `vde_plug`
    /// here, `mln agent plug PROJECT SWITCH` over ssh on another server.
    fn plug_side(
        &self,
        project: &str,
        switch: &str,
        at: Option<&str>,
    ) -> Result<Vec<std::ffi::OsString>> {
        match at {
            None => Ok(
                mln_core::net::VdeSwitch::open(switch, self.local.dir().join("switches"))?
                    .plug_argv(),
            ),
            Some(server) => {
                mln_core::SafeName::new(project)?;
                mln_core::SafeName::new(switch)?;
                Ok(self.access.argv(server, &["plug", project, switch])?)
            }
        }
    }

    /// Join the instances of a switch that spans servers: a
    /// `mln_core::net::Cable` run from this machine between the home
    /// instance and the one on `other` (each side `vde_plug` here or over
    /// ssh). A cable still alive is kept.
    fn cable(
        &self,
        project: &str,
        switch: &str,
        home: Option<&str>,
        other: Option<&str>,
    ) -> Result<()> {
        let left = self.plug_side(project, switch, home)?;
        let right = self.plug_side(project, switch, other)?;
        match mln_core::net::Cable::start(
            self.cable_dir(),
            &Self::cable_name(switch, other),
            &left,
            &right,
        ) {
            Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Join `switch`'s instance on `other` to its home one, as
    /// [`transport`] decides; with the home instance unknown (`None`: the
    /// switch was not created by this process), by cable. A VXLAN link
    /// that cannot be made (an address a link cannot use, a VNI taken on
    /// either end) is logged and the cable used instead; the cable is
    /// stopped before a link is made, and a link removed before a cable
    /// starts, so never both run.
    fn join(
        &self,
        project: &str,
        switch: &str,
        (home, home_rec): (Option<&str>, Option<&SwitchRecord>),
        (other, other_rec): (Option<&str>, &SwitchRecord),
    ) -> Result<()> {
        let wanted = home_rec.map_or(Transport::Cable, |h| transport(home, h, other, other_rec));
        if let (Transport::Vxlan, Some(server)) = (wanted, vxlan_server(home, other)) {
            self.uncable(switch, other)?;
            match self.vxlan(project, switch, server) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    log::warn!("switch {switch}: no VXLAN link to {server} ({e}); cabled instead");
                    self.unlink(project, switch, server)?;
                }
            }
        } else if let Some(server) = vxlan_server(home, other) {
            self.unlink(project, switch, server)?;
        }
        self.cable(project, switch, home, other)
    }

    /// Undo [`Self::join`]: the cable, and the link when there may be one.
    fn unjoin(&self, project: &str, switch: &str, other: Option<&str>) -> Result<()> {
        self.uncable(switch, other)?;
        let home = self.homes.get(switch).cloned().flatten();
        match vxlan_server(home.as_deref(), other) {
            Some(server) => self.unlink(project, switch, server),
            None => Ok(()),
        }
    }

    /// The local switch folder (`LocalBackends`' `switches/`).
    fn switch_dir(&self) -> PathBuf {
        self.local.dir().join("switches")
    }

    /// Make the VXLAN link of `switch` between this machine and `server`:
    /// the addresses are the two ends of the agent's ssh connection as the
    /// server sees them, device name and VNI derived from project, switch
    /// and server (the same on both ends).
    fn vxlan(&self, project: &str, switch: &str, server: &str) -> Result<()> {
        let link = self.link(server)?;
        let ends: Underlay = link.call(&Request::Underlay)?;
        let device = mln_core::net::Vxlan::derived_name(project, switch, server);
        let vni = mln_core::net::Vxlan::derived_vni(project, switch, server);
        let here = mln_core::net::VxlanSpec {
            device: device.clone(),
            vni,
            local: ends.client,
            remote: ends.server,
        };
        let there = mln_core::net::VxlanSpec {
            device,
            vni,
            local: ends.server,
            remote: ends.client,
        };
        vxlan::create(&self.switch_dir(), switch, &here)?;
        let made = link.call::<serde_json::Value>(&Request::CreateVxlan {
            project: project.to_string(),
            switch: switch.to_string(),
            spec: there,
        });
        if let Err(e) = made {
            let _ = vxlan::remove(&self.switch_dir(), switch, &here.device);
            return Err(e);
        }
        Ok(())
    }

    /// Remove both ends of the VXLAN link of `switch` to `server`, if any.
    fn unlink(&self, project: &str, switch: &str, server: &str) -> Result<()> {
        let device = mln_core::net::Vxlan::derived_name(project, switch, server);
        vxlan::remove(&self.switch_dir(), switch, &device)?;
        match self
            .link(server)?
            .call::<serde_json::Value>(&Request::RemoveVxlan {
                project: project.to_string(),
                switch: switch.to_string(),
                device,
            }) {
            // An older agent makes no links, so has none to remove.
            Ok(_) | Err(Error::Unsupported { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether `switch`'s instance on `other` is joined to its home one
    /// now: a VXLAN link up at both ends where this machine's end is
    /// recorded, else a live cable.
    fn joined(&self, switch: &str, other: Option<&str>) -> bool {
        let home = self.homes.get(switch).cloned().flatten();
        if let Some(server) = vxlan_server(home.as_deref(), other) {
            let device = mln_core::net::Vxlan::derived_name(&self.project, switch, server);
            if vxlan::is_recorded(&self.switch_dir(), switch, &device) {
                return vxlan::is_up(&self.switch_dir(), switch, &device)
                    && self
                        .link(server)
                        .and_then(|l| {
                            l.call::<bool>(&Request::VxlanUp {
                                project: self.project.clone(),
                                switch: switch.to_string(),
                                device,
                            })
                        })
                        .unwrap_or(false);
            }
        }
        mln_core::net::Cable::open(self.cable_dir(), &Self::cable_name(switch, other))
            .is_ok_and(|c| c.is_alive())
    }

    /// Whether `switch`'s instance on `at` runs now.
    fn instance_up(&self, project: &str, switch: &str, at: Option<&str>) -> bool {
        let found: Result<Vec<(String, bool)>> = match at {
            None => self.local.list_switches(project, None),
            Some(server) => self.link(server).and_then(|l| {
                l.call(&Request::ListSwitches {
                    project: project.to_string(),
                })
            }),
        };
        found.is_ok_and(|v| v.iter().any(|(n, up)| n == switch && *up))
    }

    /// Start `spec`'s instance on `at`, or adopt it when it runs; notes
    /// which (see [`Backends::replug`] below).
    fn ensure_instance(
        &self,
        project: &str,
        spec: &SwitchSpec,
        at: Option<&str>,
    ) -> Result<SwitchRecord> {
        let was_up = self.instance_up(project, &spec.name, at);
        let rec = self.switch_instance(project, spec, at)?;
        let key = (spec.name.clone(), at.map(str::to_string));
        let mut adopted = lock(&self.adopted);
        if was_up {
            adopted.insert(key.clone());
        } else {
            adopted.remove(&key);
        }
        drop(adopted);
        lock(&self.ensured).insert(key);
        Ok(rec)
    }

    /// Whether `switch`'s instance on every server its recorded hosts run
    /// on is joined to the home one ([`Self::joined`]). A cable is down
    /// for good once either end went (see `mln_core::net::Cable`): the
    /// switch then needs creating again.
    fn cables_up(&self, switch: &str) -> bool {
        self.recorded_spans
            .get(switch)
            .into_iter()
            .flatten()
            .all(|other| self.joined(switch, other.as_deref()))
    }

    /// Give a guest of `host` on its server an instance of each of its
    /// switches homed elsewhere, cabled to the home one, where this
    /// process has not made sure of it yet: a host moved to a server none
    /// of the switch's members ran on needs one.
    fn ensure_spans(&self, project: &str, host: &HostSpec) -> Result<()> {
        let at = self
            .remote(host.service_host.as_deref())
            .map(str::to_string);
        for sw in host.interfaces.iter().filter_map(|i| i.switch.as_ref()) {
            let (Some(home), Some(spec)) = (self.homes.get(sw), self.switch_specs.get(sw)) else {
                continue;
            };
            let key = (sw.clone(), at.clone());
            if *home == at || lock(&self.ensured).contains(&key) {
                continue;
            }
            let rec = self.ensure_instance(project, spec, at.as_deref())?;
            let home_rec = lock(&self.home_records).get(sw).cloned();
            self.join(
                project,
                sw,
                (home.as_deref(), home_rec.as_ref()),
                (at.as_deref(), &rec),
            )?;
        }
        Ok(())
    }

    /// After `host` left `at`: stop the instances there of its switches
    /// that no desired host on `at` uses any more, and their cables. Best
    /// effort: the move itself is done.
    fn leave_server(&self, project: &str, host: &HostSpec, at: Option<&str>) {
        for sw in host.interfaces.iter().filter_map(|i| i.switch.as_ref()) {
            let (Some(home), Some(spec)) = (self.homes.get(sw), self.switch_specs.get(sw)) else {
                continue;
            };
            let still_used = self
                .desired_members
                .get(sw)
                .is_some_and(|m| m.iter().any(|(s, h)| s.as_deref() == at && *h != host.name));
            if home.as_deref() == at || still_used {
                continue;
            }
            let done = self
                .unjoin(project, sw, at)
                .and_then(|()| self.remove_instance(project, spec, at));
            match done {
                Ok(()) => {
                    lock(&self.ensured).remove(&(sw.clone(), at.map(str::to_string)));
                }
                Err(e) => log::warn!(
                    "switch {sw} on {}: left running after {} moved away: {e}",
                    at.unwrap_or("this machine"),
                    host.name
                ),
            }
        }
    }

    /// What `at` holds of `host`'s disks.
    fn host_disks(&self, project: &str, at: Option<&str>, host: &HostSpec) -> Result<HostDisks> {
        match at {
            None => disks::state(&self.local, host),
            Some(server) => self.link(server)?.call(&Request::HostDisks {
                project: project.to_string(),
                host: host.clone(),
            }),
        }
    }

    fn end_move(&self, project: &str, at: Option<&str>, host: &HostSpec) -> Result<()> {
        match at {
            None => disks::end_move(&self.local, host),
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::EndMove {
                    project: project.to_string(),
                    host: host.clone(),
                })
                .map(drop),
        }
    }

    fn side<'s>(&'s self, at: Option<&'s str>) -> Side<'s> {
        match at {
            None => Side::Here(&self.local),
            Some(server) => Side::Server(server),
        }
    }

    fn uncable(&self, switch: &str, other: Option<&str>) -> Result<()> {
        match mln_core::net::Cable::open(self.cable_dir(), &Self::cable_name(switch, other)) {
            Ok(c) => c.stop(),
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
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
                }
                Ok(capacity)
            }
            Some(server) => self.link(server)?.call(&Request::Capacity),
        }
    }
}

impl Backends for ClusterBackends {
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

    fn create_switch(&self, project: &str, spec: &SwitchSpec) -> Result<SwitchRecord> {
        let home = self.remote(spec.service_host.as_deref());
        let rec = self.ensure_instance(project, spec, home)?;
        lock(&self.home_records).insert(spec.name.clone(), rec.clone());
        // Members on other servers plug into their own server's instance,
        // joined to this one.
        for other in self.spans.get(&spec.name).into_iter().flatten() {
            let other_rec = self.ensure_instance(project, spec, other.as_deref())?;
            self.join(
                project,
                &spec.name,
                (home, Some(&rec)),
                (other.as_deref(), &other_rec),
            )?;
        }
        let mut rec = rec;
        rec.spec = spec.clone();
        Ok(rec)
    }

    fn remove_switch(&self, project: &str, spec: &SwitchSpec) -> Result<()> {
        let home = self.remote(spec.service_host.as_deref());
        let mut first_error = None;
        for other in self.spans.get(&spec.name).into_iter().flatten() {
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
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::WriteGuestConfig {
                    project: project.clone(),
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
    /// checksummed stream, joined here ([`crate::agent::carry`]); the
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

    /// Move running Xen guest `from` to `to`'s server as `xl migrate`
    /// does: libxl's migration stream from `mln agent migrate-send` on the
    /// old server to `migrate-receive` on the new one, joined here
    /// ([`crate::agent::migrate`]). Only memory travels, so this is done
    /// only when the new server sees the guest's disk file itself (shared
    /// storage, proven with a mark: [`migrate::mark`]); otherwise, and
    /// when the stream fails with the guest still running on the old
    /// server, [`Error::Unsupported`] tells the executor to move it cold
    /// (stop, carry the disks, start).
    ///
    /// Live mode is tried first; a Xen that refuses it (no log-dirty
    /// paging for PV guests, as in the test lab) leaves the guest
    /// running, and the stream is sent again with the guest suspended
    /// for the transfer.
    fn migrate(&self, project: &str, from: &HostSpec, to: &HostSpec) -> Result<()> {
        let (a, b) = (
            self.remote(from.service_host.as_deref()),
            self.remote(to.service_host.as_deref()),
        );
        if a == b {
            return Ok(());
        }
        let cold = |why: String| {
            log::info!("{}: moves cold: {why}", from.name);
            Err(Error::Unsupported {
                backend: "mln",
                op: "migrating a running guest whose disks the new server does not share",
            })
        };
        if !from.platform.live_migration() || from.platform != to.platform {
            return cold("only Xen guests migrate, on the same platform".into());
        }
        let server = |at: Option<&str>| at.unwrap_or("this machine").to_string();
        if !self.shares_disks(project, from, to)? {
            return cold(format!(
                "its disk on {} is not a file {} sees too",
                server(a),
                server(b)
            ));
        }
        let spec = self.receiving_spec(project, to)?;
        let name = spec.name.clone();
        let still_there = || {
            self.hypervisor(from.service_host.as_deref(), from.platform)
                .and_then(|hv| hv.info(&name))
                .is_ok_and(|i| i.state == mln_core::DomainState::Running)
        };
        let mut last = None;
        for live in [true, false] {
            match migrate::migrate(
                &self.access,
                project,
                (self.side(a), from),
                (self.side(b), to, &spec),
                live,
            ) {
                Ok(()) => {
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
        cold(format!(
            "the migration stream failed: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }
}

impl ClusterBackends {
    /// Write (`Some`) or remove (`None`) the shared-storage mark beside
    /// `host`'s root disk on `at`; the disk's path there, if any.
    fn storage_mark(
        &self,
        project: &str,
        at: Option<&str>,
        host: &HostSpec,
        token: Option<&str>,
    ) -> Result<Option<PathBuf>> {
        match at {
            None => migrate::mark(&self.local, project, &Self::here_host(host), token),
            Some(server) => self.link(server)?.call(&Request::StorageMark {
                project: project.to_string(),
                host: host.clone(),
                token: token.map(str::to_string),
            }),
        }
    }

    fn storage_check(
        &self,
        project: &str,
        at: Option<&str>,
        host: &HostSpec,
        token: &str,
    ) -> Result<bool> {
        match at {
            None => migrate::marked(&self.local, project, &Self::here_host(host), token),
            Some(server) => self.link(server)?.call(&Request::StorageCheck {
                project: project.to_string(),
                host: host.clone(),
                token: token.to_string(),
            }),
        }
    }

    /// Whether `to`'s server sees `from`'s disk file itself (shared
    /// storage): a fresh token written beside the disk on the old server
    /// is read back beside the disk on the new one.
    fn shares_disks(&self, project: &str, from: &HostSpec, to: &HostSpec) -> Result<bool> {
        let (a, b) = (
            self.remote(from.service_host.as_deref()),
            self.remote(to.service_host.as_deref()),
        );
        let token = migrate::token();
        let Some(disk) = self.storage_mark(project, a, from, Some(&token))? else {
            return Ok(false);
        };
        let seen = self.storage_check(project, b, to, &token);
        if let Err(e) = self.storage_mark(project, a, from, None) {
            log::warn!(
                "{}: storage mark left beside {}: {e}",
                from.name,
                disk.display()
            );
        }
        seen
    }

    /// The domain `to` becomes on its new server, plugged into that
    /// server's instances of its switches.
    fn receiving_spec(&self, project: &str, to: &HostSpec) -> Result<DomainSpec> {
        let at = self.remote(to.service_host.as_deref());
        let mut switches = BTreeMap::new();
        for sw in to.interfaces.iter().filter_map(|i| i.switch.as_ref()) {
            if let Some(spec) = self.switch_specs.get(sw) {
                switches.insert(sw.clone(), self.ensure_instance(project, spec, at)?);
            }
        }
        self.domain_spec(project, to, &switches)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Sets updated whole under the lock stay consistent after a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bridge: Option<&str>) -> SwitchRecord {
        SwitchRecord {
            spec: SwitchSpec::new("lan"),
            socket: Some(PathBuf::from("/var/lib/mln/lab/switches/lan/ctl")),
            bridge: bridge.map(str::to_string),
            pid: Some(1),
        }
    }

    #[test]
    fn bridges_between_here_and_a_server_get_vxlan_everything_else_a_cable() {
        let (br, vde) = (record(Some("mlnaaaa")), record(None));
        let (here, s2, s3) = (None, Some("s2"), Some("s3"));
        // Both bridged, one end here: VXLAN, to the other end's server.
        assert_eq!(transport(here, &br, s2, &br), Transport::Vxlan);
        assert_eq!(transport(s2, &br, here, &br), Transport::Vxlan);
        assert_eq!(vxlan_server(here, s2), Some("s2"));
        assert_eq!(vxlan_server(s2, here), Some("s2"));
        // Either end without a bridge (no Xen, or not root there): cable.
        assert_eq!(transport(here, &br, s2, &vde), Transport::Cable);
        assert_eq!(transport(here, &vde, s2, &br), Transport::Cable);
        assert_eq!(transport(here, &vde, s2, &vde), Transport::Cable);
        // Two other servers: their addresses for each other are unknown.
        assert_eq!(transport(s2, &br, s3, &br), Transport::Cable);
        assert_eq!(vxlan_server(s2, s3), None);
        assert_eq!(vxlan_server(here, here), None);
    }
}
