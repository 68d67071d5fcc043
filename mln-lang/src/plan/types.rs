//! What a plan is made of: actions with dependencies, and per-object
//! summaries of what changes and how.

use std::collections::BTreeMap;

use mln_core::DomainInfo;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::spec::HookPoint;

/// What the caller wants the project to become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Prepare everything (disks, guest configuration), start nothing;
    /// running hosts keep running.
    Build,
    /// Build what is missing and start every host.
    Up,
    /// Stop every running host; keep disks and configuration.
    Stop,
    /// Stop and delete everything the project made.
    Remove,
    /// Bring the running project in line with a changed file: hosts keep
    /// their run state, new hosts start when the project runs.
    Upgrade,
}

impl Goal {
    /// Every goal.
    pub const ALL: [Goal; 5] = [
        Goal::Build,
        Goal::Up,
        Goal::Stop,
        Goal::Remove,
        Goal::Upgrade,
    ];

    /// The lower-case name (also its JSON and [`std::fmt::Display`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::Build => "build",
            Goal::Up => "up",
            Goal::Stop => "stop",
            Goal::Remove => "remove",
            Goal::Upgrade => "upgrade",
        }
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no goal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown goal `{0}`: expected build, up, stop, remove or upgrade")]
pub struct UnknownGoal(pub String);

impl std::str::FromStr for Goal {
    type Err = UnknownGoal;

    /// The goal a lower-case name names.
    ///
    /// ```
    /// use mln_lang::plan::Goal;
    /// assert_eq!("upgrade".parse::<Goal>(), Ok(Goal::Upgrade));
    /// assert_eq!(Goal::Stop.to_string(), "stop");
    /// assert!("explode".parse::<Goal>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Goal::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownGoal(s.to_string()))
    }
}

/// How an attribute change reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeClass {
    /// Applied to the running guest (memory within its maximum, vCPUs
    /// online, on a running Xen guest).
    Live,
    /// Needs the guest restarted (kernel, command line, guest
    /// configuration, interfaces, memory beyond the maximum); on a stopped
    /// host it takes effect at the next start.
    Restart,
    /// Needs a new disk (template, disk size, platform, disk placement).
    Rebuild,
    /// The host goes to another service host.
    Move,
}

impl ChangeClass {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeClass::Live => "live",
            ChangeClass::Restart => "restart",
            ChangeClass::Rebuild => "rebuild",
            ChangeClass::Move => "move",
        }
    }
}

/// One changed attribute of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrChange {
    /// The attribute (`memory`, `eth0.switch`, `guest`, ...).
    pub attr: String,
    /// Its recorded value, in words.
    pub from: String,
    /// Its desired value, in words.
    pub to: String,
    /// How the change is applied.
    pub class: ChangeClass,
}

/// An action's position in [`Plan::actions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub usize);

/// Something an action reads or changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectRef {
    /// A host (its domain, disk or configuration).
    Host(String),
    /// A project switch.
    Switch(String),
    /// The project as a whole (hooks).
    Project,
    /// What a lost server kept of a host.
    Stale {
        /// The server.
        server: String,
        /// The host.
        host: String,
    },
}

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Start a project switch.
    CreateSwitch {
        /// The switch.
        switch: String,
    },
    /// Make the host's disks (copy-on-write over its template).
    PrepareDisk {
        /// The host.
        host: String,
    },
    /// Write the guest's configuration (accounts, network, startup lines)
    /// and the domain configuration.
    WriteGuestConfig {
        /// The host.
        host: String,
    },
    /// Create the host's domain, paused.
    CreateDomain {
        /// The host.
        host: String,
    },
    /// Let the created domain run.
    Start {
        /// The host.
        host: String,
    },
    /// Change a running guest's memory (balloon).
    SetMemory {
        /// The host.
        host: String,
        /// Bytes now.
        from: u64,
        /// Bytes wanted.
        to: u64,
    },
    /// Change a running guest's online vCPUs.
    SetVcpus {
        /// The host.
        host: String,
        /// vCPUs now.
        from: u32,
        /// vCPUs wanted.
        to: u32,
    },
    /// Stop the guest and create it again from the new spec.
    Restart {
        /// The host.
        host: String,
    },
    /// Tear down the guest and its disks and make them again from the new
    /// spec; start it again when `start`.
    Rebuild {
        /// The host.
        host: String,
        /// Run the rebuilt guest.
        start: bool,
    },
    /// Move the host to another service host.
    Move {
        /// The host.
        host: String,
        /// Its service host now (`None`: local).
        from: Option<String>,
        /// Its service host wanted.
        to: Option<String>,
        /// Migrate the running guest (Xen); otherwise stop, move the disk,
        /// start there (UML, or a stopped host).
        live: bool,
        /// Run the guest at the destination.
        start: bool,
        /// Make fresh disks at the destination (rebuild-class changes came
        /// with the move) instead of carrying the old ones over.
        rebuild: bool,
        /// The old server is lost (`mln evacuate` of a server that does
        /// not answer): nothing is stopped or removed there, the host is
        /// made afresh at the destination, and what stays behind is
        /// recorded as a [`crate::plan::StaleCopy`].
        #[serde(default)]
        lost: bool,
    },
    /// Remove a host's domain and disks left on a server while it was
    /// lost, now that it answers again.
    ClearStale {
        /// The server.
        server: String,
        /// The host.
        host: String,
    },
    /// Shut the guest down cleanly (destroyed after a timeout).
    Stop {
        /// The host.
        host: String,
    },
    /// Tear a domain down at once: a crashed or dead domain, or one no
    /// record accounts for.
    Destroy {
        /// The host.
        host: String,
    },
    /// Stop a project switch.
    RemoveSwitch {
        /// The switch.
        switch: String,
    },
    /// Delete the host's disks and configuration and forget it.
    RemoveDisk {
        /// The host.
        host: String,
    },
    /// Plug a running guest's interface into its (recreated) switch again
    /// (by restarting the guest where the backend cannot swap a live link).
    Replug {
        /// The host.
        host: String,
        /// The interface (`eth0`).
        interface: String,
        /// The switch.
        switch: String,
    },
    /// Run one of the project's hook blocks.
    RunHook {
        /// Which block.
        point: HookPoint,
    },
}

impl Op {
    /// The object the action is about.
    pub fn object(&self) -> ObjectRef {
        match self {
            Op::CreateSwitch { switch } | Op::RemoveSwitch { switch } => {
                ObjectRef::Switch(switch.clone())
            }
            Op::ClearStale { server, host } => ObjectRef::Stale {
                server: server.clone(),
                host: host.clone(),
            },
            Op::RunHook { .. } => ObjectRef::Project,
            Op::PrepareDisk { host }
            | Op::WriteGuestConfig { host }
            | Op::CreateDomain { host }
            | Op::Start { host }
            | Op::SetMemory { host, .. }
            | Op::SetVcpus { host, .. }
            | Op::Restart { host }
            | Op::Rebuild { host, .. }
            | Op::Move { host, .. }
            | Op::Stop { host }
            | Op::Destroy { host }
            | Op::RemoveDisk { host }
            | Op::Replug { host, .. } => ObjectRef::Host(host.clone()),
        }
    }

    /// The host the action is about, if any.
    pub fn host(&self) -> Option<&str> {
        match self {
            Op::CreateSwitch { .. }
            | Op::RemoveSwitch { .. }
            | Op::ClearStale { .. }
            | Op::RunHook { .. } => None,
            Op::PrepareDisk { host }
            | Op::WriteGuestConfig { host }
            | Op::CreateDomain { host }
            | Op::Start { host }
            | Op::SetMemory { host, .. }
            | Op::SetVcpus { host, .. }
            | Op::Restart { host }
            | Op::Rebuild { host, .. }
            | Op::Move { host, .. }
            | Op::Stop { host }
            | Op::Destroy { host }
            | Op::RemoveDisk { host }
            | Op::Replug { host, .. } => Some(host),
        }
    }

    /// A short description: `start api`, `set memory of api to 256M`.
    pub fn describe(&self) -> String {
        match self {
            Op::CreateSwitch { switch } => format!("create switch {switch}"),
            Op::RemoveSwitch { switch } => format!("remove switch {switch}"),
            Op::PrepareDisk { host } => format!("prepare disk of {host}"),
            Op::WriteGuestConfig { host } => format!("write guest configuration of {host}"),
            Op::CreateDomain { host } => format!("create domain {host}"),
            Op::Start { host } => format!("start {host}"),
            Op::SetMemory { host, to, .. } => {
                format!("set memory of {host} to {}", super::render::size(*to))
            }
            Op::SetVcpus { host, to, .. } => format!("set vCPUs of {host} to {to}"),
            Op::Restart { host } => format!("restart {host}"),
            Op::Rebuild { host, .. } => format!("rebuild {host}"),
            Op::Move {
                host,
                to,
                lost: true,
                ..
            } => format!(
                "start {host} on {} (its server is lost)",
                super::render::server(to)
            ),
            Op::Move { host, to, live, .. } => format!(
                "move {host} to {} ({})",
                super::render::server(to),
                if *live { "live" } else { "cold" }
            ),
            Op::ClearStale { server, host } => {
                format!("remove what {server} kept of {host} while it was lost")
            }
            Op::Stop { host } => format!("stop {host}"),
            Op::Destroy { host } => format!("destroy domain {host}"),
            Op::RemoveDisk { host } => format!("remove disk of {host}"),
            Op::Replug {
                host,
                interface,
                switch,
            } => format!("re-plug {host}.{interface} into {switch}"),
            Op::RunHook { point } => format!("run {} hook", point.as_str()),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Its position in the plan.
    pub id: ActionId,
    /// What it does.
    #[serde(flatten)]
    pub op: Op,
    /// The service host it runs on (`None`: the local machine).
    pub service_host: Option<String>,
    /// Every object it reads or changes.
    pub touches: Vec<ObjectRef>,
    /// Actions that must finish first.
    pub after: Vec<ActionId>,
}

/// What happens to one host, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostChangeKind {
    /// A new host: disks, configuration and (when running) its domain.
    Create,
    /// Attribute changes applied in place, with the strongest class.
    Update(ChangeClass),
    /// New disks, new domain.
    Rebuild,
    /// To another service host.
    Move,
    /// Removed from the project.
    Destroy,
    /// An unchanged host that starts.
    Start,
    /// A host that stops.
    Stop,
    /// A leftover of an interrupted run is cleaned up or finished.
    Repair,
}

/// A switch a host change affects, and the other hosts plugged into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEffect {
    /// The switch.
    pub switch: String,
    /// The other hosts on it; their links are checked again after the
    /// change and re-plugged if the switch had to be recreated.
    pub peers: Vec<String>,
}

/// What happens to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChange {
    /// The host.
    pub host: String,
    /// What happens to it.
    pub kind: HostChangeKind,
    /// Its service host now and, for a move, wanted.
    pub from: Option<String>,
    /// Its service host after the plan.
    pub to: Option<String>,
    /// Every changed attribute with its class.
    pub changes: Vec<AttrChange>,
    /// Switch neighbours affected by a rebuild or move.
    pub links: Vec<LinkEffect>,
}

/// What happens to one switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchChangeKind {
    /// Started.
    Create,
    /// Stopped and started again (changed, or found down); its running
    /// members are re-plugged.
    Recreate,
    /// Stopped for good or because nothing uses it.
    Remove,
}

/// What happens to one switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchChange {
    /// The switch.
    pub switch: String,
    /// What happens to it.
    pub kind: SwitchChangeKind,
    /// Why, in words.
    pub reason: String,
    /// Running hosts plugged into it again (a recreated switch).
    #[serde(default)]
    pub replugged: Vec<String>,
}

/// What the backends report about a project right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Domains of the project found running (or dead but not torn down),
    /// by host name.
    pub domains: BTreeMap<String, ObservedDomain>,
    /// Switches of the project found, by switch name.
    pub switches: BTreeMap<String, ObservedSwitch>,
}

impl Observed {
    /// What the backends would report if the recorded state were exactly
    /// true: every recorded domain running, every recorded switch up. For
    /// planning without asking the backends (`mln plan --offline`).
    pub fn assume_recorded(state: &super::recorded::State) -> Self {
        let mut out = Observed::default();
        for (name, rec) in &state.hosts {
            if let Some(d) = &rec.domain {
                out.domains.insert(
                    name.clone(),
                    ObservedDomain {
                        service_host: rec.spec.service_host.clone(),
                        info: DomainInfo {
                            name: d.name.clone(),
                            id: d.id,
                            backend: d.backend,
                            state: mln_core::DomainState::Running,
                            memory: rec.spec.memory,
                            max_memory: d.max_memory,
                            vcpus: rec.spec.vcpus,
                            cpu_time: std::time::Duration::ZERO,
                        },
                    },
                );
            }
        }
        for (name, rec) in &state.switches {
            out.switches.insert(
                name.clone(),
                ObservedSwitch {
                    service_host: rec.spec.service_host.clone(),
                    up: true,
                },
            );
        }
        out
    }
}

/// One domain as a backend reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedDomain {
    /// The service host it was found on (`None`: local).
    pub service_host: Option<String>,
    /// What the backend says.
    pub info: DomainInfo,
}

/// One switch as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedSwitch {
    /// The service host it was found on (`None`: local).
    pub service_host: Option<String>,
    /// True when it answers (its process lives, its socket accepts).
    pub up: bool,
}

/// A plan: the actions that take the project from what it is to what is
/// wanted, and a summary of what changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The project.
    pub project: String,
    /// What the plan is for.
    pub goal: Goal,
    /// Every action, in an order that respects dependencies.
    pub actions: Vec<Action>,
    /// Per host, what happens (hosts left untouched are not listed).
    pub hosts: Vec<HostChange>,
    /// Per switch, what happens.
    pub switches: Vec<SwitchChange>,
    /// The hosts that run once the plan is applied.
    #[serde(default)]
    pub running: BTreeSet<String>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The action with id `id`.
    pub fn action(&self, id: ActionId) -> Option<&Action> {
        self.actions.get(id.0).filter(|a| a.id == id)
    }

    /// What happens to `host`, when anything does.
    pub fn host(&self, host: &str) -> Option<&HostChange> {
        self.hosts.iter().find(|h| h.host == host)
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
