//! The verbs as library calls: observe, plan, apply and record in one go.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ApplyError, ApplyReport, Backends, Executor, Progress, ServerMemory};
use crate::model::Project;
use crate::plan::{
    plan, DesiredProject, Goal, HostSpec, Observed, ObservedDomain, ObservedSwitch, Op, Plan,
    PlanOptions, Platform,
};
use crate::plugin::Plugins;
use crate::state::{ProjectLock, State, StateStore};

/// Ask every backend the project uses what runs: domains named
/// `PROJECT.HOST` and the project's switches, on every service host the
/// desired project or the recorded state mentions. Fails when this
/// machine's backends cannot answer, because planning on a partial
/// picture would duplicate; see [`observe_servers`] for other servers.
pub fn observe(
    backends: &dyn Backends,
    project: &str,
    desired: Option<&DesiredProject>,
    recorded: Option<&State>,
) -> Result<Observed, ApplyError> {
    observe_servers(backends, project, desired, recorded).map(|(o, _)| o)
}

/// [`observe`], also saying which other servers could not be asked (by
/// name, with why). What an unreachable server runs is taken as recorded,
/// so the plan leaves its hosts alone unless they must change, and the
/// actions it does plan there fail with the reachability error.
pub fn observe_servers(
    backends: &dyn Backends,
    project: &str,
    desired: Option<&DesiredProject>,
    recorded: Option<&State>,
) -> Result<(Observed, BTreeMap<String, String>), ApplyError> {
    let mut servers: BTreeSet<Option<&str>> = BTreeSet::new();
    servers.insert(None);
    let specs = desired.into_iter().flat_map(|d| d.hosts.values()).chain(
        recorded
            .into_iter()
            .flat_map(|r| r.hosts.values().map(|h| &h.spec)),
    );
    for h in specs {
        servers.insert(h.service_host.as_deref());
    }
    let switch_specs = desired.into_iter().flat_map(|d| d.switches.values()).chain(
        recorded
            .into_iter()
            .flat_map(|r| r.switches.values().map(|s| &s.spec)),
    );
    for s in switch_specs {
        servers.insert(s.service_host.as_deref());
    }
    let mut out = Observed::default();
    let mut unreachable = BTreeMap::new();
    // Every server at once: asking one is an ssh connection and its
    // agent's start (a third of a second each, 8 s for 25 servers in
    // turn), which the later calls then reuse.
    let found: Vec<_> = std::thread::scope(|scope| {
        let asked: Vec<_> = servers
            .into_iter()
            .map(|sh| (sh, scope.spawn(move || observe_one(backends, project, sh))))
            .collect();
        asked
            .into_iter()
            .map(|(sh, h)| {
                let found = h.join().unwrap_or_else(|_| {
                    Err(ApplyError::Observe(mln_core::Error::Backend {
                        what: sh.unwrap_or("this machine").to_string(),
                        message: "asking what it runs panicked".into(),
                    }))
                });
                (sh, found)
            })
            .collect()
    });
    for (sh, found) in found {
        match (found, sh) {
            (Ok(found), _) => {
                out.domains.extend(found.domains);
                for (name, sw) in found.switches {
                    out.switches.entry(name).or_insert(sw);
                }
            }
            (Err(e), None) => return Err(e),
            (Err(e), Some(server)) => {
                log::warn!("{server}: {e}");
                let why = match e {
                    ApplyError::Observe(inner) => inner.to_string(),
                    other => other.to_string(),
                };
                unreachable.insert(server.to_string(), why);
                if let Some(r) = recorded {
                    let assumed = Observed::assume_recorded(r);
                    for (h, d) in assumed.domains {
                        if d.service_host.as_deref() == Some(server) {
                            out.domains.insert(h, d);
                        }
                    }
                    for (name, sw) in assumed.switches {
                        if sw.service_host.as_deref() == Some(server) {
                            out.switches.entry(name).or_insert(sw);
                        }
                    }
                }
            }
        }
    }
    Ok((out, unreachable))
}

/// What one service host runs of `project`.
fn observe_one(
    backends: &dyn Backends,
    project: &str,
    sh: Option<&str>,
) -> Result<Observed, ApplyError> {
    let prefix = format!("{project}.");
    let mut out = Observed::default();
    // Switches first: for another server this is the call that connects.
    for (name, up) in backends
        .list_switches(project, sh)
        .map_err(ApplyError::Observe)?
    {
        out.switches.insert(
            name,
            ObservedSwitch {
                service_host: sh.map(str::to_string),
                up,
            },
        );
    }
    let mut seen_backends = std::collections::HashSet::new();
    for platform in backends.platforms(sh) {
        let hv = backends
            .hypervisor(sh, platform)
            .map_err(ApplyError::Observe)?;
        // Xen PV and HVM share one hypervisor: list it once.
        if !seen_backends.insert(hv.kind()) {
            continue;
        }
        for info in hv.list().map_err(ApplyError::Observe)? {
            if let Some(host) = info.name.strip_prefix(&prefix) {
                out.domains.insert(
                    host.to_string(),
                    ObservedDomain {
                        service_host: sh.map(str::to_string),
                        info,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// The memory each server needs free for `plan`: hosts created, started
/// or moved in count whole (a UML host with its kernel's own image, see
/// [`crate::check::UML_KERNEL_IMAGE`]), memory raised live counts the
/// difference.
fn memory_needed(
    plan: &Plan,
    desired: &DesiredProject,
    recorded: Option<&State>,
) -> BTreeMap<Option<String>, u64> {
    let mut per_host: BTreeMap<&str, (Option<String>, u64)> = BTreeMap::new();
    let spec = |host: &str| -> Option<HostSpec> {
        desired
            .hosts
            .get(host)
            .cloned()
            .or_else(|| recorded.and_then(|r| r.hosts.get(host).map(|h| h.spec.clone())))
    };
    let whole = |s: &HostSpec| match s.platform {
        Platform::Uml => s.memory + crate::check::UML_KERNEL_IMAGE,
        _ => s.memory,
    };
    let running = |host: &str| {
        recorded
            .and_then(|r| r.hosts.get(host))
            .is_some_and(|h| h.domain.is_some())
    };
    for a in &plan.actions {
        let (host, need) = match &a.op {
            Op::CreateDomain { host } | Op::Start { host } if !running(host) => (
                host,
                spec(host).map(|s| (s.service_host.clone(), whole(&s))),
            ),
            Op::Rebuild { host, start: true } | Op::Restart { host } => {
                let old = if running(host) {
                    recorded
                        .and_then(|r| r.hosts.get(host.as_str()))
                        .map_or(0, |h| whole(&h.spec))
                } else {
                    0
                };
                (
                    host,
                    spec(host).map(|s| (s.service_host.clone(), whole(&s).saturating_sub(old))),
                )
            }
            Op::Move {
                host, start: true, ..
            } => (
                host,
                spec(host).map(|s| (s.service_host.clone(), whole(&s))),
            ),
            Op::SetMemory { host, from, to } if to > from => {
                (host, spec(host).map(|s| (s.service_host, to - from)))
            }
            _ => continue,
        };
        if let Some(n) = need {
            // A host counts once, with the most it asks for.
            let e = per_host.entry(host.as_str()).or_insert((n.0.clone(), 0));
            e.1 = e.1.max(n.1);
        }
    }
    let mut out: BTreeMap<Option<String>, u64> = BTreeMap::new();
    for (server, bytes) in per_host.into_values() {
        *out.entry(server).or_default() += bytes;
    }
    out
}

/// Refuse `plan` when the hosts it creates, starts or moves in on a
/// server need more memory than the server has free now (asked of the
/// server through `memory`). A server that cannot be asked is left to fail
/// its own actions. (The language's [`crate::check::check_capacity`]
/// is another check: a project's hosts against the memory each server is
/// declared to have, E0016, before anything runs.)
pub fn check_free_memory(
    plan: &Plan,
    desired: &DesiredProject,
    recorded: Option<&State>,
    memory: &dyn ServerMemory,
) -> Result<(), ApplyError> {
    for (server, need) in memory_needed(plan, desired, recorded) {
        if need == 0 {
            continue;
        }
        match memory.memory(server.as_deref()) {
            Ok(cap) if need > cap.free() => {
                return Err(ApplyError::Capacity {
                    server: server.unwrap_or_else(|| "this machine".to_string()),
                    need,
                    free: cap.free(),
                })
            }
            Ok(_) => {}
            Err(e) => log::warn!("cannot ask for free memory: {e}"),
        }
    }
    Ok(())
}

/// How to run a verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// What the project should become.
    pub goal: Goal,
    /// Only these hosts (`-h HOST`).
    pub hosts: Option<BTreeSet<String>>,
    /// Actions run at once on each server (see [`Executor::parallelism`]).
    pub parallelism: usize,
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// Wait for another `mln` on the project instead of failing at once.
    pub wait_for_lock: bool,
    /// How long a guest may take to shut down cleanly before it is
    /// destroyed; zero destroys it without asking (`mln down --force`).
    pub stop_timeout: std::time::Duration,
    /// How long a started guest may take to confirm its boot (see
    /// [`Executor::boot_timeout`]).
    pub boot_timeout: std::time::Duration,
    /// How long a hook block may run (see [`Executor::hook_timeout`]).
    pub hook_timeout: std::time::Duration,
    /// Make the hosts afresh from their templates ([`PlanOptions::fresh`]).
    pub fresh: bool,
}

/// Actions run at once on each server unless told: twice this machine's
/// cores, between 2 and 16 (a plan over several servers runs that many on
/// each, see [`Executor::parallelism`]). Starting a guest holds a worker only until its kernel
/// answers; its boot then goes on without one (see
/// [`Executor::boot_timeout`]), so the guests booting at once are paced by
/// how fast they can be started, not by this number alone.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get().saturating_mul(2))
        .clamp(2, 16)
}

impl RunOptions {
    /// `goal` for every host, [`default_parallelism`] actions at once,
    /// failing when locked.
    pub fn new(goal: Goal) -> Self {
        RunOptions {
            goal,
            hosts: None,
            parallelism: default_parallelism(),
            dry_run: false,
            wait_for_lock: false,
            stop_timeout: std::time::Duration::from_secs(60),
            boot_timeout: super::DEFAULT_BOOT_TIMEOUT,
            hook_timeout: super::DEFAULT_HOOK_TIMEOUT,
            fresh: false,
        }
    }
}

/// What a verb did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The plan computed.
    pub plan: Plan,
    /// What applying it did; `None` for a dry run.
    pub report: Option<ApplyReport>,
}

/// One verb on one project, whole: lock it, load its state, observe the
/// backends, plan towards the goal, apply, record. What `mln
/// build/up/stop/upgrade/remove` run.
///
/// The project is the one given ([`Run::project`], [`Run::desired`]), or
/// without one the project as last applied (`mln stop -p NAME`). A
/// successful `remove` of every host deletes the project's state folder.
///
/// ```no_run
/// use mln_lang::apply::{LocalBackends, Run, RunOptions};
/// use mln_lang::plan::Goal;
/// use mln_lang::state::StateStore;
/// let checked = mln_lang::load("projects/lab.mln")?;
/// let store = StateStore::open("/tmp/mln-state", &checked.project().name)?;
/// let backends = LocalBackends::new(store.dir())?;
/// let outcome = Run::new(store, &backends, RunOptions::new(Goal::Up))
///     .project(checked.project())
///     .run()?;
/// assert!(outcome.report.is_some_and(|r| r.is_success()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Run<'a> {
    store: StateStore,
    backends: &'a dyn Backends,
    options: RunOptions,
    memory: Option<&'a dyn ServerMemory>,
    desired: Option<DesiredProject>,
    model: Option<serde_json::Value>,
    project: Option<Project>,
    plugins: Option<&'a Plugins>,
    progress: &'a dyn Progress,
}

impl<'a> Run<'a> {
    /// The verb `options` describes, on the project kept in `store`, on
    /// `backends`; by default on the project as last applied, with no
    /// free-memory check and no progress reported.
    pub fn new(store: StateStore, backends: &'a dyn Backends, options: RunOptions) -> Self {
        Run {
            store,
            backends,
            options,
            memory: None,
            desired: None,
            model: None,
            project: None,
            plugins: None,
            progress: &super::NoProgress,
        }
    }

    /// Work on `project` (a resolved project file); its model is recorded
    /// for `status`, with passwords hashed.
    pub fn project(mut self, project: &Project) -> Self {
        self.desired = Some(DesiredProject::from_project(project));
        self.model = serde_json::to_value(crate::plan::with_hashed_passwords(project)).ok();
        self.project = Some(project.clone());
        self
    }

    /// Work on a project already in the planner's terms; `model`, when
    /// given, is recorded for `status`.
    pub fn desired(mut self, desired: &DesiredProject, model: Option<serde_json::Value>) -> Self {
        self.desired = Some(desired.clone());
        self.model = model;
        self
    }

    /// Run the project's hook blocks in `dir` (the project file's
    /// folder), recorded with the project for later verbs. Call after
    /// [`Run::project`] or [`Run::desired`].
    pub fn hooks_in(mut self, dir: Option<&std::path::Path>) -> Self {
        if let (Some(d), Some(dir)) = (self.desired.as_mut(), dir) {
            d.hook_dir = Some(dir.to_path_buf());
        }
        self
    }

    /// Refuse a plan that does not fit in the servers' free memory, asked
    /// through `memory` (see [`check_free_memory`]).
    pub fn free_memory(mut self, memory: &'a dyn ServerMemory) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Call `plugins` (see [`crate::plugin`]): for `build`, `up` and
    /// `upgrade` of a project given, at `resolved` and `guest_config`
    /// before planning (what they add is planned) and at `built` once the
    /// plan is applied; for `remove`, at `removing` before anything is
    /// removed. Their warnings go to the [`Progress`]; a failure is
    /// [`ApplyError::Plugin`].
    pub fn plugins(mut self, plugins: &'a Plugins) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Report progress to `progress` (called from worker threads).
    pub fn progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Lock, observe, plan and (unless a dry run) apply.
    pub fn run(mut self) -> Result<Outcome, ApplyError> {
        let builds = matches!(self.options.goal, Goal::Build | Goal::Up | Goal::Upgrade);
        if self.project.is_none() {
            self.project = self
                .model
                .clone()
                .and_then(|m| serde_json::from_value(m).ok());
        }
        if let (true, Some(plugins), Some(project), Some(desired)) =
            (builds, self.plugins, &self.project, self.desired.as_mut())
        {
            for note in plugins.prepare(project, desired)? {
                self.progress.plugin_warning(&note);
            }
        }
        let options = &self.options;
        let mut session = Session::open(self.store, self.backends, options.wait_for_lock)?;
        session.memory = self.memory;
        let mut desired = session.desired(self.desired.as_ref())?;
        // Verbs that call no plugins keep what they added at the last build.
        if let (false, Some(recorded)) =
            (builds, session.recorded().and_then(|r| r.desired.as_ref()))
        {
            crate::plugin::keep_additions(&mut desired, recorded);
        }
        let plan = session.plan(
            &desired,
            &PlanOptions {
                hosts: options.hosts.clone(),
                fresh: options.fresh,
                ..PlanOptions::new(options.goal)
            },
        )?;
        if options.dry_run {
            return Ok(Outcome { plan, report: None });
        }
        // The project plugins are told about: the one given, else the
        // one last applied.
        let project = self.project.clone().or_else(|| {
            let recorded = session.recorded()?.model.clone()?;
            serde_json::from_value::<Project>(recorded).ok()
        });
        let plugins = self.plugins.zip(project.as_ref());
        if let (Goal::Remove, false, Some((plugins, project))) =
            (options.goal, plan.is_empty(), plugins)
        {
            for note in plugins.removing(project)? {
                self.progress.plugin_warning(&note);
            }
        }
        session.stop_timeout = options.stop_timeout;
        session.boot_timeout = options.boot_timeout;
        session.hook_timeout = options.hook_timeout;
        let report = session.apply(
            &plan,
            &desired,
            self.model,
            options.parallelism,
            self.progress,
        )?;
        if options.goal == Goal::Remove && options.hosts.is_none() {
            session.forget_if_empty()?;
        }
        if let (true, false, true, Some((plugins, project))) =
            (builds, plan.is_empty(), report.is_success(), plugins)
        {
            for note in plugins.built(project)? {
                self.progress.plugin_warning(&note);
            }
        }
        Ok(Outcome {
            plan,
            report: Some(report),
        })
    }
}

/// One project held locked from planning to applying, so the plan shown
/// (`mln upgrade` asks before applying) is the plan applied.
///
/// ```no_run
/// # fn f(store: mln_lang::state::StateStore, backends: &dyn mln_lang::apply::Backends,
/// #      project: &mln_lang::plan::DesiredProject) -> Result<(), mln_lang::apply::ApplyError> {
/// use mln_lang::apply::{NoProgress, Session};
/// use mln_lang::plan::{Goal, PlanOptions};
/// let mut session = Session::open(store, backends, false)?;
/// let plan = session.plan(project, &PlanOptions::new(Goal::Upgrade))?;
/// println!("{}", plan.render_diff()); // then ask
/// let report = session.apply(&plan, project, None, 4, &NoProgress)?;
/// # Ok(()) }
/// ```
pub struct Session<'b> {
    store: StateStore,
    lock: Option<ProjectLock>,
    backends: &'b dyn Backends,
    recorded: Option<State>,
    /// How long a guest may take to shut down cleanly (default 60 s);
    /// zero destroys it without asking (`mln down --force`).
    pub stop_timeout: std::time::Duration,
    /// How long a started guest may take to confirm its boot (default
    /// [`super::DEFAULT_BOOT_TIMEOUT`]).
    pub boot_timeout: std::time::Duration,
    /// How long a hook block may run (default
    /// [`super::DEFAULT_HOOK_TIMEOUT`]).
    pub hook_timeout: std::time::Duration,
    /// Where to ask for free memory before applying; `None`: apply
    /// without asking.
    pub memory: Option<&'b dyn ServerMemory>,
    /// The servers the last [`Session::plan`] could not reach, with why.
    pub unreachable: BTreeMap<String, String>,
}

impl<'b> Session<'b> {
    /// Lock the project in `store` (waiting for another holder when `wait`)
    /// and read its state.
    pub fn open(
        store: StateStore,
        backends: &'b dyn Backends,
        wait: bool,
    ) -> Result<Self, ApplyError> {
        let lock = if wait {
            store.lock_wait()?
        } else {
            store.lock()?
        };
        let recorded = store.load()?;
        Ok(Session {
            store,
            lock: Some(lock),
            backends,
            recorded,
            stop_timeout: std::time::Duration::from_secs(60),
            boot_timeout: super::DEFAULT_BOOT_TIMEOUT,
            hook_timeout: super::DEFAULT_HOOK_TIMEOUT,
            memory: None,
            unreachable: BTreeMap::new(),
        })
    }

    /// The state as recorded (after [`Session::apply`]: as it ended).
    pub fn recorded(&self) -> Option<&State> {
        self.recorded.as_ref()
    }

    /// `desired`, or else the project as last applied.
    pub fn desired(&self, desired: Option<&DesiredProject>) -> Result<DesiredProject, ApplyError> {
        match (
            desired,
            self.recorded.as_ref().and_then(|r| r.desired.as_ref()),
        ) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(d)) => Ok(d.clone()),
            (None, None) => Err(ApplyError::NoProject(self.store.project().to_string())),
        }
    }

    /// Observe the backends and plan towards `desired`.
    pub fn plan(
        &mut self,
        desired: &DesiredProject,
        options: &PlanOptions,
    ) -> Result<Plan, ApplyError> {
        let (observed, unreachable) = observe_servers(
            self.backends,
            &desired.name,
            Some(desired),
            self.recorded.as_ref(),
        )?;
        let mut options = options.clone();
        options
            .unreachable
            .extend(unreachable.keys().map(String::clone));
        self.unreachable = unreachable;
        Ok(plan(desired, self.recorded.as_ref(), &observed, &options))
    }

    /// Apply `plan` (made by [`Session::plan`] for `desired`), recording
    /// `model` (the resolved project's JSON) when given.
    pub fn apply(
        &mut self,
        plan: &Plan,
        desired: &DesiredProject,
        model: Option<serde_json::Value>,
        parallelism: usize,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, ApplyError> {
        if let Some(memory) = self.memory {
            if let Err(e) = check_free_memory(plan, desired, self.recorded.as_ref(), memory) {
                // A project refused before anything was ever recorded
                // leaves no folder behind.
                if self.recorded.is_none() {
                    if let Some(lock) = self.lock.take() {
                        self.store.clone().remove_dir(lock)?;
                    }
                }
                return Err(e);
            }
        }
        let lock = self
            .lock
            .as_ref()
            .ok_or_else(|| ApplyError::NoProject(self.store.project().to_string()))?;
        let mut state = self
            .recorded
            .clone()
            .unwrap_or_else(|| State::new(&desired.name));
        if model.is_some() {
            state.model = model;
        }
        let report = Executor::new(self.backends, &self.store, lock)
            .parallelism(parallelism)
            .progress(progress)
            .stop_timeout(self.stop_timeout)
            .boot_timeout(self.boot_timeout)
            .hook_timeout(self.hook_timeout)
            .apply(plan, desired, state)?;
        self.recorded = Some(report.state.clone());
        Ok(report)
    }

    /// After a complete `remove`: delete the project's folder when nothing
    /// is recorded any more, releasing the lock. Returns whether it did.
    pub fn forget_if_empty(&mut self) -> Result<bool, ApplyError> {
        if !self.recorded.as_ref().is_some_and(State::is_empty) {
            return Ok(false);
        }
        match self.lock.take() {
            Some(lock) => {
                // Nothing the record knows of runs any more; what still
                // names the folder (a switch started by a run that failed
                // before recording it, say) would run on without it.
                let project = self.store.project().to_string();
                let swept = super::recover::sweep(
                    &project,
                    self.store.dir(),
                    self.backends,
                    std::time::Duration::from_secs(5),
                );
                if swept.processes > 0 || !swept.domains.is_empty() {
                    log::warn!(
                        "{project}: ended {} process(es) and {} Xen domain(s) the record did \
                         not know of",
                        swept.processes,
                        swept.domains.len()
                    );
                }
                self.store.clone().remove_dir(lock)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// One host in `mln status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host.
    pub host: String,
    /// Its service host (`None`: local).
    pub service_host: Option<String>,
    /// Its platform.
    pub platform: Platform,
    /// `running`, `paused`, `crashed`, ... as the backend reports it;
    /// `built` (disks ready, not running), `partial` (an interrupted
    /// build) or `absent` otherwise.
    pub state: String,
    /// The Xen domid or UML pid, while it runs.
    pub id: Option<u32>,
    /// Memory now, bytes (the backend's figure while it runs).
    pub memory: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// For a QEMU guest, the accelerator it runs under (`KVM`, `TCG`),
    /// when its backend tells (see `LocalBackends::qemu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceleration: Option<String>,
}

impl HostStatus {
    /// Whether the host is up in MLN's sense: its guest runs (or is
    /// paused). Every other state is `down`.
    pub fn is_up(&self) -> bool {
        matches!(self.state.as_str(), "running" | "paused")
    }
}

/// One switch in `mln status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchStatusLine {
    /// The switch.
    pub switch: String,
    /// `up`, `down` or `absent`.
    pub state: String,
    /// Where guests plug in on the managing machine (its `vde_switch`
    /// control folder, or the one it joined): what another project's
    /// `switch NAME { socket PATH }` names to share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<std::path::PathBuf>,
}

/// `mln status -p PROJECT`: every host and switch of the project with what
/// the backends say about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectStatus {
    /// The project.
    pub project: String,
    /// Hosts by name.
    pub hosts: Vec<HostStatus>,
    /// Switches by name.
    pub switches: Vec<SwitchStatusLine>,
    /// Every server the project uses (this machine first).
    #[serde(default)]
    pub servers: Vec<ServerStatus>,
}

/// One server in `mln status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// The service host (`None`: this machine).
    pub server: Option<String>,
    /// Whether it answered.
    pub reachable: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The project's guests running there.
    pub vms: usize,
    /// Their memory, bytes.
    pub memory_used: u64,
    /// Memory free there, bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_free: Option<u64>,
    /// All its memory, bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total: Option<u64>,
}

/// The status of the project in `store` (no lock needed: reads only).
pub fn status(store: &StateStore, backends: &dyn Backends) -> Result<ProjectStatus, ApplyError> {
    status_with(store, backends, None)
}

/// [`status`], with each server's memory when `memory` is given. Hosts on
/// a server that cannot be reached are shown `unreachable`.
pub fn status_with(
    store: &StateStore,
    backends: &dyn Backends,
    memory: Option<&dyn ServerMemory>,
) -> Result<ProjectStatus, ApplyError> {
    let recorded = store
        .load()?
        .ok_or_else(|| ApplyError::NoProject(store.project().to_string()))?;
    let desired = recorded.desired.clone();
    let (observed, unreachable) = observe_servers(
        backends,
        &recorded.project,
        desired.as_ref(),
        Some(&recorded),
    )?;
    let mut hosts: BTreeMap<String, HostStatus> = BTreeMap::new();
    let specs = desired
        .iter()
        .flat_map(|d| d.hosts.values())
        .chain(recorded.hosts.values().map(|r| &r.spec));
    for spec in specs {
        if hosts.contains_key(&spec.name) {
            continue;
        }
        let rec = recorded.hosts.get(&spec.name);
        let obs = observed.domains.get(&spec.name);
        let server = obs.map(|o| o.service_host.clone()).unwrap_or_else(|| {
            rec.map_or(spec.service_host.clone(), |r| r.spec.service_host.clone())
        });
        let state = match (obs, rec) {
            _ if server
                .as_deref()
                .is_some_and(|s| unreachable.contains_key(s)) =>
            {
                "unreachable".to_string()
            }
            (Some(o), _) => o.info.state.to_string(),
            (None, Some(r)) if r.disk_ready && r.config_ready => "built".to_string(),
            (None, Some(_)) => "partial".to_string(),
            (None, None) => "absent".to_string(),
        };
        // Which accelerator a QEMU guest got.
        let acceleration = match (obs, spec.platform) {
            (Some(_), Platform::Kvm) => backends.acceleration(
                server.as_deref(),
                &crate::plan::domain_name(&recorded.project, &spec.name),
            ),
            _ => None,
        };
        hosts.insert(
            spec.name.clone(),
            HostStatus {
                host: spec.name.clone(),
                service_host: server,
                platform: spec.platform,
                state,
                id: obs.map(|o| o.info.id),
                memory: obs.map_or(spec.memory, |o| o.info.memory),
                vcpus: obs.map_or(spec.vcpus, |o| o.info.vcpus),
                acceleration,
            },
        );
    }
    let mut names: BTreeSet<&str> = recorded.switches.keys().map(String::as_str).collect();
    names.extend(
        desired
            .iter()
            .flat_map(|d| d.switches.keys().map(String::as_str)),
    );
    names.extend(observed.switches.keys().map(String::as_str));
    let switches = names
        .into_iter()
        .map(|n| SwitchStatusLine {
            switch: n.to_string(),
            state: match observed.switches.get(n) {
                Some(o) if o.up => "up",
                Some(_) => "down",
                None => "absent",
            }
            .to_string(),
            socket: recorded.switches.get(n).and_then(|r| r.socket.clone()),
        })
        .collect();
    let mut names: BTreeSet<Option<String>> = BTreeSet::new();
    names.insert(None);
    names.extend(hosts.values().map(|h| h.service_host.clone()));
    let servers = names
        .into_iter()
        .map(|server| {
            let reason = server.as_ref().and_then(|s| unreachable.get(s).cloned());
            let running: Vec<&HostStatus> = hosts
                .values()
                .filter(|h| h.service_host == server && h.id.is_some() && reason.is_none())
                .collect();
            let cap = match (&reason, memory) {
                (None, Some(m)) => m.memory(server.as_deref()).ok(),
                _ => None,
            };
            ServerStatus {
                reachable: reason.is_none(),
                reason,
                vms: running.len(),
                memory_used: running.iter().map(|h| h.memory).sum(),
                memory_free: cap.map(|c| c.free()),
                memory_total: cap.map(|c| c.total()),
                server,
            }
        })
        .collect();
    Ok(ProjectStatus {
        project: recorded.project,
        hosts: hosts.into_values().collect(),
        switches,
        servers,
    })
}
