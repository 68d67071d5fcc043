//! Running a plan: independent actions in parallel on a bounded set of
//! threads, dependencies respected, the state recorded after every action.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mln_core::{DomainInfo, Error as CoreError, Hypervisor};
use serde::{Deserialize, Serialize};

use super::boot::{once_more, BootRetry, BootWatch, Verdict};
use super::hooks::run_hook;
use super::{ApplyError, Backends, NoProgress, Progress};
use crate::plan::{
    domain_name, Action, ActionId, DesiredProject, HostSpec, Op, Plan, StaleCopy, SwitchSpec,
};
use crate::state::{DomainRecord, HostRecord, ProjectLock, State, StateStore};

/// One action that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The action.
    pub action: ActionId,
    /// What it was doing.
    pub description: String,
    /// Why it failed.
    pub error: String,
}

/// What running a plan did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Actions that finished, in completion order.
    pub done: Vec<ActionId>,
    /// Actions that failed.
    pub failed: Vec<Failure>,
    /// Actions not run because something they wait for failed (or the
    /// state could not be recorded).
    pub not_run: Vec<ActionId>,
    /// The state as recorded at the end.
    pub state: State,
    /// How much of the plan ran at once.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// Guests that died of a fault known to pass while booting and were
    /// started once more (each at most once); they are in `done` or
    /// `failed` as their second boot went.
    #[serde(default)]
    pub boot_retries: Vec<BootRetry>,
}

/// How much of a plan ran at once: the most at any moment of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concurrency {
    /// Actions executing.
    pub actions: usize,
    /// Actions executing on one server.
    pub on_one_server: usize,
    /// Servers with an action executing.
    pub servers: usize,
    /// Guests started and not yet confirmed booted.
    pub guests_booting: usize,
}

impl Concurrency {
    /// Take in an action just started, with `busy` the actions now
    /// executing by server.
    fn note_busy(&mut self, busy: &BTreeMap<Option<String>, usize>) {
        self.actions = self.actions.max(busy.values().sum());
        self.on_one_server = self
            .on_one_server
            .max(busy.values().copied().max().unwrap_or(0));
        self.servers = self.servers.max(busy.values().filter(|n| **n > 0).count());
    }
}

impl ApplyReport {
    /// True when every action finished.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.not_run.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Running,
    /// Its work is done, but guests it started have not confirmed their
    /// boot yet: it counts as running, its dependents wait.
    Booting,
    Done,
    Failed,
    Skipped,
}

struct Shared {
    state: State,
    status: Vec<Status>,
    waiting_for: Vec<usize>,
    ready: VecDeque<usize>,
    running: usize,
    done: Vec<ActionId>,
    failed: Vec<Failure>,
    /// Recording failed: nothing more is started.
    halted: Option<String>,
    /// Actions whose guests are booting.
    booting: Vec<BootWatch>,
    /// Actions a worker is executing, by the server they run on.
    busy: BTreeMap<Option<String>, usize>,
    /// The most of the plan that ran at once so far.
    peak: Concurrency,
    /// Guests started once more after a passing fault.
    boot_retries: Vec<BootRetry>,
}

/// Applies plans to one project through its [`Backends`], recording every
/// step in its [`StateStore`] under its [`ProjectLock`].
pub struct Executor<'a> {
    backends: &'a dyn Backends,
    store: &'a StateStore,
    lock: &'a ProjectLock,
    progress: &'a dyn Progress,
    parallelism: usize,
    stop_timeout: Duration,
    boot_timeout: Duration,
    hook_timeout: Duration,
}

/// How long a started guest may take to confirm its boot, unless told.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a hook block may run, unless told (MLN had no bound).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(600);

impl<'a> Executor<'a> {
    /// An executor running up to [`super::default_parallelism`] actions at
    /// once, reporting nothing.
    pub fn new(backends: &'a dyn Backends, store: &'a StateStore, lock: &'a ProjectLock) -> Self {
        Executor {
            backends,
            store,
            lock,
            progress: &NoProgress,
            parallelism: super::default_parallelism(),
            stop_timeout: Duration::from_secs(60),
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }

    /// How long a hook block may run (default [`DEFAULT_HOOK_TIMEOUT`]):
    /// one still running then is killed and fails its action, so a hook
    /// that waits for something that never comes cannot hold `mln` up.
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = timeout;
        self
    }

    /// How long a started guest may take to confirm its boot (default
    /// [`DEFAULT_BOOT_TIMEOUT`]): an action that starts guests is done
    /// only when each has printed its template's boot marker (see
    /// [`mln_core::Hypervisor::boot_status`]); one that crashes first, or
    /// is still booting when this passes, fails the action, named with
    /// the end of its console. It is left as it is (a crashed guest shows
    /// `crashed` in the status, a slow one goes on booting).
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// Run at most `n` actions at once on each server (at least 1): the
    /// local machine is one server, and a plan over 25 servers runs up to
    /// 25 × `n` at once, each server's share at most `n`.
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }

    /// Report progress to `progress`.
    pub fn progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    /// How long a guest may take to shut down cleanly before it is
    /// destroyed (default 60 s); zero destroys it without asking.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Run `plan` (made for `desired`) starting from `state`. Returns what
    /// was done, what failed and what was not run; `Err` only when the
    /// plan is malformed or the state cannot be recorded at all.
    pub fn apply(
        &self,
        plan: &Plan,
        desired: &DesiredProject,
        mut state: State,
    ) -> Result<ApplyReport, ApplyError> {
        let n = plan.actions.len();
        let mut waiting_for = vec![0usize; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, a) in plan.actions.iter().enumerate() {
            if a.id.0 != i {
                return Err(ApplyError::BadPlan(format!(
                    "action {i} carries id {}",
                    a.id.0
                )));
            }
            let mut after: Vec<usize> = a.after.iter().map(|d| d.0).collect();
            after.sort_unstable();
            after.dedup();
            for d in after {
                if d >= n || d == i {
                    return Err(ApplyError::BadPlan(format!(
                        "action {i} waits for unknown action {d}"
                    )));
                }
                waiting_for[i] += 1;
                dependents[d].push(i);
            }
        }
        state.desired = Some(desired.clone());
        // What the plan means each host it touches to end as, recorded
        // before anything is done (see `HostRecord::should_run`).
        for h in &plan.hosts {
            if let Some(r) = state.hosts.get_mut(&h.host) {
                r.should_run = plan.running.contains(&h.host);
            }
        }
        self.store.save(self.lock, &state)?;
        let ready = (0..n).filter(|&i| waiting_for[i] == 0).collect();
        let shared = Mutex::new(Shared {
            state,
            status: vec![Status::Pending; n],
            waiting_for,
            ready,
            running: 0,
            done: Vec::new(),
            failed: Vec::new(),
            halted: None,
            booting: Vec::new(),
            busy: BTreeMap::new(),
            peak: Concurrency::default(),
            boot_retries: Vec::new(),
        });
        let wake = Condvar::new();
        // Up to `parallelism` at once on each server the plan touches.
        let servers: BTreeSet<&Option<String>> =
            plan.actions.iter().map(|a| &a.service_host).collect();
        let workers = self
            .parallelism
            .saturating_mul(servers.len().max(1))
            .min(n.max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| self.worker(plan, desired, &dependents, &shared, &wake));
            }
            s.spawn(|| self.watch_boots(plan, desired, &dependents, &shared, &wake));
        });
        let shared = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = shared.halted {
            // Everything done so far is recorded up to the failing write.
            return Err(ApplyError::Record(why));
        }
        let not_run = (0..n)
            .filter(|&i| matches!(shared.status[i], Status::Pending | Status::Skipped))
            .map(ActionId)
            .collect();
        Ok(ApplyReport {
            done: shared.done,
            failed: shared.failed,
            not_run,
            state: shared.state,
            concurrency: shared.peak,
            boot_retries: shared.boot_retries,
        })
    }

    fn worker(
        &self,
        plan: &Plan,
        desired: &DesiredProject,
        dependents: &[Vec<usize>],
        shared: &Mutex<Shared>,
        wake: &Condvar,
    ) {
        loop {
            let id = {
                let mut g = lock(shared);
                loop {
                    if g.halted.is_some() {
                        return;
                    }
                    // The first ready action whose server has room.
                    let room = |i: &usize| {
                        let server = &plan.actions[*i].service_host;
                        g.busy.get(server).copied().unwrap_or(0) < self.parallelism
                    };
                    if let Some(id) = g
                        .ready
                        .iter()
                        .position(room)
                        .and_then(|p| g.ready.remove(p))
                    {
                        g.running += 1;
                        g.status[id] = Status::Running;
                        *g.busy
                            .entry(plan.actions[id].service_host.clone())
                            .or_default() += 1;
                        let Shared { peak, busy, .. } = &mut *g;
                        peak.note_busy(busy);
                        break id;
                    }
                    if g.running == 0 {
                        return;
                    }
                    g = wake.wait(g).unwrap_or_else(|p| p.into_inner());
                }
            };
            let action = &plan.actions[id];
            self.progress.started(action);
            let ctx = Ctx {
                exec: self,
                desired,
                running: &plan.running,
                shared,
                started: RefCell::new(Vec::new()),
            };
            let result = ctx.execute(action);
            let started = ctx.started.into_inner();
            let mut g = lock(shared);
            if let Some(b) = g.busy.get_mut(&action.service_host) {
                *b = b.saturating_sub(1);
            }
            if result.is_ok() && !started.is_empty() && g.halted.is_none() {
                // Done when its guests confirm their boot (watch_boots).
                g.status[id] = Status::Booting;
                g.booting.push(BootWatch {
                    action: id,
                    hosts: started,
                    since: Instant::now(),
                });
                let booting = g.booting.iter().map(|b| b.hosts.len()).sum();
                g.peak.guests_booting = g.peak.guests_booting.max(booting);
            } else {
                self.progress.finished(action, result.as_ref().map(|_| ()));
                self.complete(&mut g, plan, dependents, id, result);
            }
            wake.notify_all();
        }
    }

    /// Record the end of action `id` (one that was running or booting):
    /// done releases its dependents, failed skips them.
    fn complete(
        &self,
        g: &mut Shared,
        plan: &Plan,
        dependents: &[Vec<usize>],
        id: usize,
        result: Result<(), ApplyError>,
    ) {
        let action = &plan.actions[id];
        g.running -= 1;
        match result {
            Ok(()) => {
                g.status[id] = Status::Done;
                g.done.push(action.id);
                for &d in &dependents[id] {
                    g.waiting_for[d] -= 1;
                    if g.waiting_for[d] == 0 && g.status[d] == Status::Pending {
                        g.ready.push_back(d);
                    }
                }
            }
            Err(e) => {
                g.status[id] = Status::Failed;
                if let ApplyError::Record(why) = &e {
                    g.halted = Some(why.clone());
                }
                g.failed.push(Failure {
                    action: action.id,
                    description: action.op.describe(),
                    error: e.to_string(),
                });
                let mut stack = dependents[id].clone();
                while let Some(d) = stack.pop() {
                    if g.status[d] == Status::Pending {
                        g.status[d] = Status::Skipped;
                        self.progress.skipped(&plan.actions[d], action.id);
                        stack.extend(dependents[d].iter().copied());
                    }
                }
            }
        }
    }

    /// Ask the guests of booting actions how far they got, until no
    /// action runs or boots any more: an action whose guests all
    /// confirmed is done; one with a guest that stopped, or that is still
    /// booting after the boot timeout, has failed (see [`super::boot`]).
    fn watch_boots(
        &self,
        plan: &Plan,
        desired: &DesiredProject,
        dependents: &[Vec<usize>],
        shared: &Mutex<Shared>,
        wake: &Condvar,
    ) {
        loop {
            let (watches, restarted): (Vec<BootWatch>, Vec<String>) = {
                let mut g = lock(shared);
                loop {
                    if g.halted.is_some() || (g.running == 0 && g.ready.is_empty()) {
                        return;
                    }
                    if !g.booting.is_empty() {
                        break;
                    }
                    g = wake.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                // Started once more already, at `start` or here: never a
                // third time.
                let restarted = g.boot_retries.iter().map(|r| r.host.clone()).collect();
                (g.booting.clone(), restarted)
            };
            // Asked without the lock: a remote guest's answer takes a
            // round trip.
            let verdicts: Vec<Verdict> = watches
                .iter()
                .map(|w| w.judge(plan, desired, self.backends, self.boot_timeout, &restarted))
                .collect();
            let mut g = lock(shared);
            for verdict in verdicts {
                let Some(pos) = g.booting.iter().position(|w| w.action == verdict.action) else {
                    continue;
                };
                g.booting[pos]
                    .hosts
                    .retain(|h| !verdict.booted.contains(&h.name));
                for retry in verdict.retried {
                    self.progress
                        .boot_retried(&plan.actions[verdict.action], &retry);
                    g.boot_retries.push(retry);
                }
                if let Some(result) = verdict.result {
                    g.booting.remove(pos);
                    let action = &plan.actions[verdict.action];
                    self.progress.finished(action, result.as_ref().map(|_| ()));
                    self.complete(&mut g, plan, dependents, verdict.action, result);
                }
            }
            wake.notify_all();
            // Wait a little, or less when a new action starts booting.
            let _ = wake.wait_timeout(g, Duration::from_millis(100));
        }
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A worker that panicked leaves consistent data: updates are applied
    // whole under the lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One action's view of the run.
struct Ctx<'e, 'a> {
    exec: &'e Executor<'a>,
    desired: &'e DesiredProject,
    /// The hosts that run once the plan is applied.
    running: &'e std::collections::BTreeSet<String>,
    shared: &'e Mutex<Shared>,
    /// Hosts this action started: it is done once they confirm their boot.
    started: RefCell<Vec<HostSpec>>,
}

fn not_found(e: &CoreError) -> bool {
    matches!(e, CoreError::NotFound { .. })
}

impl Ctx<'_, '_> {
    fn project(&self) -> &str {
        &self.desired.name
    }

    /// Change the state and record it at once.
    fn record(&self, f: impl FnOnce(&mut State)) -> Result<(), ApplyError> {
        let mut g = lock(self.shared);
        f(&mut g.state);
        self.exec
            .store
            .save(self.exec.lock, &g.state)
            .map_err(|e| ApplyError::Record(e.to_string()))
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&lock(self.shared).state)
    }

    fn wanted(&self, action: &Action, host: &str) -> Result<&HostSpec, ApplyError> {
        self.desired
            .hosts
            .get(host)
            .ok_or_else(|| ApplyError::Missing {
                action: action.op.describe(),
                what: format!("host {host} is not in the project"),
            })
    }

    /// The recorded spec of `host`, else the desired one.
    fn current(&self, action: &Action, host: &str) -> Result<HostSpec, ApplyError> {
        match self.read(|st| st.hosts.get(host).map(|r| r.spec.clone())) {
            Some(s) => Ok(s),
            None => self.wanted(action, host).cloned(),
        }
    }

    fn hypervisor(&self, action: &Action, spec: &HostSpec) -> Result<&dyn Hypervisor, ApplyError> {
        self.exec
            .backends
            .hypervisor(spec.service_host.as_deref(), spec.platform)
            .map_err(|e| backend(action, e))
    }

    fn execute(&self, action: &Action) -> Result<(), ApplyError> {
        let b = self.exec.backends;
        let project = self.project();
        let be = |e| backend(action, e);
        match &action.op {
            Op::CreateSwitch { switch } => {
                let spec =
                    self.desired
                        .switches
                        .get(switch)
                        .ok_or_else(|| ApplyError::Missing {
                            action: action.op.describe(),
                            what: format!("switch {switch} is not in the project"),
                        })?;
                let rec = b.create_switch(project, spec).map_err(be)?;
                self.record(|st| {
                    st.switches.insert(switch.clone(), rec);
                })
            }
            Op::RemoveSwitch { switch } => {
                let spec = self
                    .read(|st| st.switches.get(switch).map(|r| r.spec.clone()))
                    .or_else(|| self.desired.switches.get(switch).cloned())
                    .unwrap_or_else(|| SwitchSpec::new(switch.clone()));
                b.remove_switch(project, &spec).map_err(be)?;
                self.record(|st| {
                    st.switches.remove(switch);
                })
            }
            Op::PrepareDisk { host } => {
                let spec = self.wanted(action, host)?;
                self.prepare(action, spec)
            }
            Op::WriteGuestConfig { host } => {
                let spec = self.wanted(action, host)?;
                b.write_guest_config(self.desired, spec).map_err(be)?;
                self.record(|st| {
                    let r = st
                        .hosts
                        .entry(host.clone())
                        .or_insert_with(|| HostRecord::new(spec.clone()));
                    r.config_ready = true;
                    // A running domain still runs the old spec: it is
                    // recorded when the domain is made again.
                    if r.domain.is_none() {
                        r.spec = spec.clone();
                    }
                })
            }
            Op::CreateDomain { host } => {
                let spec = self.wanted(action, host)?;
                self.create(action, spec)
            }
            Op::Start { host } => {
                let spec = self.current(action, host)?;
                self.start(action, &spec)
            }
            Op::SetMemory { host, to, .. } => {
                let spec = self.current(action, host)?;
                let hv = self.hypervisor(action, &spec)?;
                hv.set_memory(&domain_name(project, host), *to)
                    .map_err(be)?;
                self.record(|st| {
                    if let Some(r) = st.hosts.get_mut(host) {
                        r.spec.memory = *to;
                    }
                })
            }
            Op::SetVcpus { host, to, .. } => {
                let spec = self.current(action, host)?;
                let hv = self.hypervisor(action, &spec)?;
                hv.set_vcpus(&domain_name(project, host), *to).map_err(be)?;
                self.record(|st| {
                    if let Some(r) = st.hosts.get_mut(host) {
                        r.spec.vcpus = *to;
                    }
                })
            }
            Op::Restart { host } => {
                let old = self.current(action, host)?;
                let new = self.wanted(action, host)?;
                self.stop(action, &old)?;
                self.create(action, new)?;
                self.start(action, new)
            }
            Op::Rebuild { host, start } => {
                let old = self.current(action, host)?;
                let new = self.wanted(action, host)?;
                self.stop(action, &old)?;
                b.remove_disk(project, &old).map_err(be)?;
                self.prepare(action, new)?;
                b.write_guest_config(self.desired, new).map_err(be)?;
                self.record(|st| {
                    if let Some(r) = st.hosts.get_mut(host) {
                        r.config_ready = true;
                    }
                })?;
                if *start {
                    self.create(action, new)?;
                    self.start(action, new)?;
                }
                Ok(())
            }
            Op::Move {
                host,
                start,
                lost: true,
                ..
            } => self.recover(action, host, *start),
            Op::ClearStale { server, host } => self.clear_stale(action, server, host),
            Op::Move {
                host,
                live,
                start,
                rebuild,
                ..
            } => {
                let old = self.current(action, host)?;
                let new = self.wanted(action, host)?;
                // A backend that cannot migrate this guest (disks not on
                // storage both servers see) leaves it running where it
                // was: it then moves cold, below.
                let migrated = match live {
                    true => match b.migrate(self.desired, &old, new) {
                        Err(CoreError::Unsupported { .. }) => false,
                        other => other.map(|()| true).map_err(be)?,
                    },
                    false => false,
                };
                if migrated {
                    let info = self
                        .hypervisor(action, new)?
                        .info(&domain_name(project, host))
                        .map_err(be)?;
                    self.record(|st| {
                        if let Some(r) = st.hosts.get_mut(host) {
                            r.spec.service_host = new.service_host.clone();
                            if let Some(d) = r.domain.as_mut() {
                                d.id = info.id;
                            }
                        }
                    })?;
                    self.claim(new);
                    return Ok(());
                }
                self.stop(action, &old)?;
                if *rebuild {
                    b.remove_disk(project, &old).map_err(be)?;
                    self.prepare(action, new)?;
                } else {
                    b.move_disk(project, &old, new).map_err(be)?;
                    self.claim(new);
                }
                b.write_guest_config(self.desired, new).map_err(be)?;
                self.record(|st| {
                    if let Some(r) = st.hosts.get_mut(host) {
                        r.spec = new.clone();
                        r.config_ready = true;
                    }
                })?;
                if *start {
                    self.create(action, new)?;
                    self.start(action, new)?;
                }
                Ok(())
            }
            Op::Stop { host } => {
                let spec = self.current(action, host)?;
                self.stop(action, &spec)
            }
            Op::Destroy { host } => {
                let spec = self.current(action, host)?;
                let hv = self.hypervisor(action, &spec)?;
                match hv.destroy(&domain_name(project, host)) {
                    Err(e) if !not_found(&e) => return Err(be(e)),
                    _ => {}
                }
                self.record(|st| {
                    if let Some(r) = st.hosts.get_mut(host) {
                        r.domain = None;
                    }
                })
            }
            Op::RemoveDisk { host } => {
                let spec = self.current(action, host)?;
                b.remove_disk(project, &spec).map_err(be)?;
                self.record(|st| {
                    st.hosts.remove(host);
                })
            }
            Op::Replug {
                host,
                interface,
                switch,
            } => {
                let spec = self.current(action, host)?;
                let rec = self
                    .read(|st| st.switches.get(switch).cloned())
                    .ok_or_else(|| ApplyError::Missing {
                        action: action.op.describe(),
                        what: format!("switch {switch} is not recorded"),
                    })?;
                match b.replug(project, &spec, interface, &rec) {
                    // Where the backend cannot swap the link of a running
                    // guest, a restart plugs it in at boot: the peer is
                    // never left cut off.
                    Err(CoreError::Unsupported { .. }) => {
                        self.stop(action, &spec)?;
                        self.create(action, &spec)?;
                        self.start(action, &spec)
                    }
                    other => other.map_err(be),
                }
            }
            Op::RunHook { point } => {
                let lines = self.desired.hooks.get(point).map_or(&[][..], |l| l);
                let dir = self.desired.hook_dir.as_deref();
                run_hook(
                    project,
                    *point,
                    lines,
                    dir,
                    self.exec.hook_timeout,
                    self.exec.progress,
                )
            }
        }
    }

    /// A host whose server is lost, started where it goes: what the lost
    /// server keeps of it is recorded as stale first (so that a run killed
    /// halfway never forgets it); then, where the new server sees the very
    /// disks the host ran from (shared storage, told by their placement
    /// mark), the host starts from them, else its disks are made afresh;
    /// configuration and domain are made as for a new host.
    fn recover(&self, action: &Action, host: &str, start: bool) -> Result<(), ApplyError> {
        let old = self.current(action, host)?;
        let new = self.wanted(action, host)?;
        if let Some(server) = old.service_host.clone() {
            self.record(|st| {
                let copy = StaleCopy {
                    server,
                    spec: old.clone(),
                };
                if !st.stale.contains(&copy) {
                    st.stale.push(copy);
                }
                if let Some(r) = st.hosts.get_mut(host) {
                    r.domain = None;
                }
            })?;
        }
        let b = self.exec.backends;
        let shared = b
            .sees_disks_of(self.project(), &old, new)
            .map_err(|e| backend(action, e))?;
        if shared {
            self.exec.progress.said(
                action,
                &format!(
                    "{host} starts from the disks it ran from, which {} sees too \
                     (shared storage)",
                    new.service_host.as_deref().unwrap_or("this machine")
                ),
            );
            self.record(|st| {
                if let Some(r) = st.hosts.get_mut(host) {
                    r.spec = new.clone();
                    r.disk_ready = true;
                    r.config_ready = false;
                }
            })?;
            self.claim(new);
        } else {
            self.prepare(action, new)?;
        }
        b.write_guest_config(self.desired, new)
            .map_err(|e| backend(action, e))?;
        self.record(|st| {
            if let Some(r) = st.hosts.get_mut(host) {
                r.config_ready = true;
            }
        })?;
        if start {
            self.create(action, new)?;
            self.start(action, new)?;
        }
        Ok(())
    }

    /// Remove what `server` kept of `host` while it was lost (its domain
    /// and disks); forget it once gone.
    fn clear_stale(&self, action: &Action, server: &str, host: &str) -> Result<(), ApplyError> {
        let found = self.read(|st| {
            st.stale
                .iter()
                .find(|c| c.server == server && c.spec.name == host)
                .cloned()
        });
        let Some(copy) = found else {
            return Ok(());
        };
        // Where the host runs now, if it still is in the project.
        let now = self.read(|st| st.hosts.get(host).map(|r| r.spec.clone()));
        let hv = self.hypervisor(action, &copy.spec)?;
        match hv.destroy(&domain_name(self.project(), host)) {
            Ok(()) | Err(CoreError::NotFound { .. }) => {}
            Err(e) => return Err(backend(action, e)),
        }
        self.exec
            .backends
            .remove_stale(self.project(), &copy.spec, now.as_ref())
            .map_err(|e| backend(action, e))?;
        self.record(|st| st.stale.retain(|c| *c != copy))
    }

    fn prepare(&self, action: &Action, spec: &HostSpec) -> Result<(), ApplyError> {
        let host = &spec.name;
        let plan_running = self.running.contains(host);
        // Record the intent first: a crash while the disk is being made
        // leaves a record that says "not ready", so the next run makes it
        // again (and remove finds it) instead of leaking it.
        self.record(|st| {
            let r = st
                .hosts
                .entry(host.clone())
                .or_insert_with(|| HostRecord::new(spec.clone()));
            r.disk_ready = false;
            r.config_ready = false;
            r.spec = spec.clone();
            r.should_run = plan_running;
        })?;
        let disks = self
            .exec
            .backends
            .prepare_disk(self.project(), spec)
            .map_err(|e| backend(action, e))?;
        self.record(|st| {
            if let Some(r) = st.hosts.get_mut(host) {
                r.disks = disks;
                r.disk_ready = true;
            }
        })?;
        self.claim(spec);
        Ok(())
    }

    /// Mark `spec`'s disks as placed by its server (see
    /// [`crate::machine::home`]). A mark that cannot be written costs only
    /// an evacuation's start from shared disks: said, not failed.
    fn claim(&self, spec: &HostSpec) {
        if let Err(e) = self.exec.backends.claim_disks(self.project(), spec) {
            log::warn!(
                "{}: its disks' placement mark was not written ({e}): were its server lost, \
                 `mln evacuate` would make it afresh even on shared storage",
                spec.name
            );
        }
    }

    fn create(&self, action: &Action, spec: &HostSpec) -> Result<(), ApplyError> {
        // The domain is not running: its disks can change size now.
        self.exec
            .backends
            .fit_disks(self.project(), spec)
            .map_err(|e| backend(action, e))?;
        let switches = self.read(|st| st.switches.clone());
        let dspec = self
            .exec
            .backends
            .domain_spec(self.project(), spec, &switches)
            .map_err(|e| backend(action, e))?;
        let hv = self.hypervisor(action, spec)?;
        let info = hv.create(&dspec).map_err(|e| backend(action, e))?;
        let rec = DomainRecord {
            name: dspec.name.clone(),
            backend: hv.kind(),
            id: info.id,
            max_memory: dspec.effective_max_memory(),
            max_vcpus: dspec.effective_max_vcpus(),
            started: false,
        };
        self.record(|st| {
            let r = st
                .hosts
                .entry(spec.name.clone())
                .or_insert_with(|| HostRecord::new(spec.clone()));
            r.domain = Some(rec);
            r.spec = spec.clone();
        })
    }

    fn start(&self, action: &Action, spec: &HostSpec) -> Result<(), ApplyError> {
        let name = domain_name(self.project(), &spec.name);
        let hv = self.hypervisor(action, spec)?;
        match hv.start(&name) {
            Err(CoreError::BootCrash {
                message,
                transient: true,
                ..
            }) => {
                // A fault known to pass, before the guest touched its
                // disks: once more, said so.
                let retry = BootRetry {
                    host: spec.name.clone(),
                    why: format!("crashed while booting: {message}"),
                };
                self.exec.progress.boot_retried(action, &retry);
                lock(self.shared).boot_retries.push(retry);
                hv.start(&name).map_err(|e| backend(action, once_more(e)))?;
            }
            other => other.map_err(|e| backend(action, e))?,
        }
        let info: DomainInfo = hv.info(&name).map_err(|e| backend(action, e))?;
        let kind = hv.kind();
        self.record(|st| {
            if let Some(r) = st.hosts.get_mut(&spec.name) {
                // A domain made by a run that died before recording it is
                // adopted here.
                let d = r.domain.get_or_insert_with(|| DomainRecord {
                    name: name.clone(),
                    backend: kind,
                    id: info.id,
                    max_memory: info.max_memory,
                    max_vcpus: info.vcpus,
                    started: true,
                });
                d.id = info.id;
                d.started = true;
            }
        })?;
        self.started.borrow_mut().push(spec.clone());
        Ok(())
    }

    /// Shut the domain of `spec` down (destroying it after the timeout;
    /// at once, without asking the guest, when the timeout is zero: `mln
    /// down --force`); a domain that is not there is already stopped.
    fn stop(&self, action: &Action, spec: &HostSpec) -> Result<(), ApplyError> {
        let name = domain_name(self.project(), &spec.name);
        let hv = self.hypervisor(action, spec)?;
        if !self.exec.stop_timeout.is_zero() {
            match hv.shutdown(&name, self.exec.stop_timeout) {
                Err(e) if !not_found(&e) => return Err(backend(action, e)),
                _ => {}
            }
        }
        // Backends that keep a shut-down domain around (Xen) let it go here.
        match hv.destroy(&name) {
            Err(e) if !not_found(&e) => return Err(backend(action, e)),
            _ => {}
        }
        self.record(|st| {
            if let Some(r) = st.hosts.get_mut(&spec.name) {
                r.domain = None;
            }
        })
    }
}

fn backend(action: &Action, source: CoreError) -> ApplyError {
    ApplyError::Backend {
        action: action.op.describe(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_keeps_the_most_seen_at_any_moment() {
        let mut peak = Concurrency::default();
        let busy = |v: &[(Option<&str>, usize)]| -> BTreeMap<Option<String>, usize> {
            v.iter().map(|(s, n)| (s.map(str::to_string), *n)).collect()
        };
        peak.note_busy(&busy(&[(None, 1), (Some("a"), 3)]));
        peak.note_busy(&busy(&[(None, 0), (Some("a"), 1), (Some("b"), 1)]));
        assert_eq!(
            peak,
            Concurrency {
                actions: 4,
                on_one_server: 3,
                servers: 2,
                guests_booting: 0
            }
        );
    }
}
