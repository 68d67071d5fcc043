//! What has been done to a project, as the planner reads it and the state
//! store keeps it: per host its spec, disks and domain, per switch its
//! instance. Plain data; the store ([`crate::state`], with the `runtime`
//! feature) reads and writes it as `state.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mln_core::BackendKind;
use serde::{Deserialize, Serialize};

use super::{DesiredProject, HostSpec, SwitchSpec};

/// The version of the `state.json` format this library writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The backend identity of one host's domain while it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// The backend's name for it (`PROJECT.HOST`).
    pub name: String,
    /// Which backend runs it.
    pub backend: BackendKind,
    /// The Xen domid or the UML process id.
    pub id: u32,
    /// The memory ceiling it was created with, bytes.
    pub max_memory: u64,
    /// The vCPU ceiling it was created with.
    pub max_vcpus: u32,
    /// It was let run after being created (created domains start paused).
    #[serde(default)]
    pub started: bool,
}

/// What has been done for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The spec its disk, configuration and domain were made from.
    pub spec: HostSpec,
    /// Its disks exist (paths in `disks`).
    pub disk_ready: bool,
    /// Its guest configuration has been written from `spec`.
    pub config_ready: bool,
    /// Disk image paths on its service host.
    pub disks: Vec<PathBuf>,
    /// Its domain, while one exists.
    pub domain: Option<DomainRecord>,
    /// The last plan applied to it left it running (or meant to): a run
    /// interrupted after stopping it for a restart, or before starting
    /// it, leaves this set, so the next `upgrade` starts it again instead
    /// of taking it for a host someone stopped.
    #[serde(default)]
    pub should_run: bool,
}

impl HostRecord {
    /// A record of a host nothing has been done for yet.
    pub fn new(spec: HostSpec) -> Self {
        HostRecord {
            spec,
            disk_ready: false,
            config_ready: false,
            disks: Vec::new(),
            domain: None,
            should_run: false,
        }
    }
}

/// What has been done for one switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchRecord {
    /// The spec it was made from.
    pub spec: SwitchSpec,
    /// The `vde_switch` control folder, for UML.
    pub socket: Option<PathBuf>,
    /// The Linux bridge, for Xen.
    pub bridge: Option<String>,
    /// The switch process id, when it is a process.
    pub pid: Option<u32>,
}

/// Everything recorded about one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`FORMAT_VERSION`] at the time of writing.
    pub format_version: u32,
    /// Project name.
    pub project: String,
    /// The resolved project (model JSON) as last applied, for `status`.
    pub model: Option<serde_json::Value>,
    /// The project as last applied, in the planner's terms (used by
    /// `start`/`stop`/`remove` when no file is given).
    pub desired: Option<DesiredProject>,
    /// Hosts by name.
    pub hosts: BTreeMap<String, HostRecord>,
    /// Switches by name.
    pub switches: BTreeMap<String, SwitchRecord>,
    /// What was left on servers that could not be reached when their
    /// hosts were placed elsewhere (`mln evacuate`): removed there once
    /// they answer again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<StaleCopy>,
}

/// A host's domain and disks left behind on a lost server when the host
/// was made afresh elsewhere (`mln evacuate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleCopy {
    /// The server it is on.
    pub server: String,
    /// The host as it was made there.
    pub spec: HostSpec,
}

impl State {
    /// An empty state for `project`.
    pub fn new(project: impl Into<String>) -> Self {
        State {
            format_version: FORMAT_VERSION,
            project: project.into(),
            model: None,
            desired: None,
            hosts: BTreeMap::new(),
            switches: BTreeMap::new(),
            stale: Vec::new(),
        }
    }

    /// The state a complete `up` of `desired` would record (every host
    /// built and running, every switch up; ids are placeholders). With
    /// [`crate::plan::Observed::assume_recorded`] it lets `mln diff OLD NEW`
    /// plan NEW against OLD without any machine.
    ///
    /// ```
    /// use mln_lang::plan::{plan, DesiredProject, Goal, HostSpec, Observed, PlanOptions};
    /// use mln_lang::plan::State;
    /// let mut old = DesiredProject::new("lab");
    /// old.add_host(HostSpec::new("web"));
    /// let st = State::as_if_up(&old);
    /// let p = plan(&old, Some(&st), &Observed::assume_recorded(&st), &PlanOptions::new(Goal::Upgrade));
    /// assert!(p.is_empty());
    /// ```
    pub fn as_if_up(desired: &DesiredProject) -> Self {
        let mut st = State::new(&desired.name);
        for h in desired.hosts.values() {
            let mut r = HostRecord::new(h.clone());
            r.disk_ready = true;
            r.config_ready = true;
            let headroom = |live: bool| if live { super::HEADROOM } else { 1 };
            r.domain = Some(DomainRecord {
                name: super::domain_name(&desired.name, &h.name),
                backend: h.platform.backend().unwrap_or(BackendKind::Uml),
                id: 0,
                max_memory: h.memory.saturating_mul(headroom(h.platform.live_resize())),
                max_vcpus: h
                    .vcpus
                    .saturating_mul(headroom(h.platform.live_vcpus()) as u32),
                started: true,
            });
            r.should_run = true;
            st.hosts.insert(h.name.clone(), r);
        }
        for s in desired.switches.values() {
            st.switches.insert(
                s.name.clone(),
                SwitchRecord {
                    spec: s.clone(),
                    socket: None,
                    bridge: None,
                    pid: None,
                },
            );
        }
        st.desired = Some(desired.clone());
        st
    }

    /// True when nothing is recorded for any host or switch, and nothing
    /// is left to remove on a lost server.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.switches.is_empty() && self.stale.is_empty()
    }
}
