//! The planning algorithm: for every host and switch, where it is (record +
//! observation), where it must be (desired project + goal), and the actions
//! between the two, wired by dependencies.

mod host;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use mln_core::DomainState;

use super::recorded::{HostRecord, State};
use super::spec::{DesiredProject, HookPoint, HostSpec};
use super::types::{
    Action, ActionId, AttrChange, ChangeClass, Goal, HostChange, HostChangeKind, LinkEffect,
    ObjectRef, Observed, Op, Plan, SwitchChange, SwitchChangeKind,
};

/// What to plan for, and for which hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// What the project should become.
    pub goal: Goal,
    /// Only these hosts (`-h HOST`); `None` for every host.
    pub hosts: Option<BTreeSet<String>>,
    /// Servers given up for lost (`mln evacuate`): hosts leaving them are
    /// made afresh where they go, nothing is asked of them, and what they
    /// keep is recorded as stale.
    pub lost: BTreeSet<String>,
    /// Servers that did not answer: what they keep as stale waits.
    pub unreachable: BTreeSet<String>,
    /// Make the selected hosts that exist afresh, from their template and
    /// configuration, each keeping its run state (`mln reset`): what their
    /// guests wrote to disk is lost.
    pub fresh: bool,
}

impl PlanOptions {
    /// Plan `goal` for every host.
    pub fn new(goal: Goal) -> Self {
        PlanOptions {
            goal,
            hosts: None,
            lost: BTreeSet::new(),
            unreachable: BTreeSet::new(),
            fresh: false,
        }
    }

    /// Give `servers` up for lost.
    pub fn lost<I: IntoIterator<Item = S>, S: Into<String>>(mut self, servers: I) -> Self {
        self.lost = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Restrict the plan to `hosts`.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }
}

/// The factor between a Xen guest's memory (and vCPUs) and the ceiling it
/// is created with, so that growing it later is a live change.
pub const HEADROOM: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Absent,
    Built,
    Running,
}

/// Compute the plan that takes the project from what `recorded` and
/// `observed` say it is to what `desired` and `options.goal` want. Pure:
/// reads its inputs, touches nothing.
///
/// ```
/// use mln_lang::plan::{plan, DesiredProject, Goal, HostSpec, Observed, PlanOptions};
/// let mut p = DesiredProject::new("lab");
/// p.add_host(HostSpec::new("web"));
/// let plan = plan(&p, None, &Observed::default(), &PlanOptions::new(Goal::Build));
/// assert_eq!(plan.actions.len(), 2); // prepare disk, write guest config
/// ```
pub fn plan(
    desired: &DesiredProject,
    recorded: Option<&State>,
    observed: &Observed,
    options: &PlanOptions,
) -> Plan {
    let mut b = Builder {
        desired,
        recorded,
        observed,
        goal: options.goal,
        lost: &options.lost,
        fresh: options.fresh,
        actions: Vec::new(),
        hosts: Vec::new(),
        switches: Vec::new(),
        needs_switches: Vec::new(),
        detaches: Vec::new(),
        starts: Vec::new(),
        stops: Vec::new(),
        will_run: HashMap::new(),
        recreated: BTreeSet::new(),
        members: BTreeMap::new(),
    };
    for h in desired.hosts.values() {
        for sw in h.switches() {
            b.members.entry(sw).or_default().push(&h.name);
        }
    }
    let project_running = observed.domains.values().any(|d| alive(d.info.state));

    let mut names = merge_sorted(
        desired.hosts.keys().map(String::as_str),
        recorded
            .into_iter()
            .flat_map(|r| r.hosts.keys().map(String::as_str)),
    );
    names = merge_sorted(
        names.into_iter(),
        observed.domains.keys().map(String::as_str),
    );
    for name in names {
        let selected = options
            .hosts
            .as_ref()
            .map_or(true, |only| only.contains(name));
        if selected {
            b.host(name, project_running);
        } else if observed
            .domains
            .get(name)
            .is_some_and(|d| alive(d.info.state))
        {
            b.will_run.insert(name, true);
        }
    }
    b.stale(&options.unreachable);
    b.switches(options.hosts.is_some());
    b.order();
    b.hooks();
    let running = b
        .will_run
        .iter()
        .filter(|(_, runs)| **runs)
        .map(|(h, _)| h.to_string())
        .collect();
    Plan {
        project: desired.name.clone(),
        goal: options.goal,
        actions: b.actions,
        hosts: b.hosts,
        switches: b.switches,
        running,
    }
}

fn alive(s: DomainState) -> bool {
    matches!(
        s,
        DomainState::Running | DomainState::Paused | DomainState::Unknown
    )
}

struct Builder<'a> {
    desired: &'a DesiredProject,
    recorded: Option<&'a State>,
    observed: &'a Observed,
    goal: Goal,
    /// Servers given up for lost ([`PlanOptions::lost`]).
    lost: &'a BTreeSet<String>,
    /// [`PlanOptions::fresh`].
    fresh: bool,
    actions: Vec<Action>,
    hosts: Vec<HostChange>,
    switches: Vec<SwitchChange>,
    /// Actions that plug a host into switches: they wait for the switches.
    needs_switches: Vec<(ActionId, &'a HostSpec)>,
    /// Actions that take a host off its switches: switch removal waits.
    detaches: Vec<(ActionId, &'a str)>,
    starts: Vec<(u32, ActionId)>,
    stops: Vec<(u32, ActionId)>,
    /// Host → runs after the plan.
    will_run: HashMap<&'a str, bool>,
    /// Hosts whose domain is created afresh (plugs in by itself).
    recreated: BTreeSet<String>,
    /// Switch → desired member hosts.
    members: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Builder<'a> {
    fn push(&mut self, op: Op, service_host: Option<String>, after: &[ActionId]) -> ActionId {
        let id = ActionId(self.actions.len());
        let mut touches = vec![op.object()];
        if let Some(h) = op.host() {
            let spec = self
                .desired
                .hosts
                .get(h)
                .or_else(|| self.recorded.and_then(|r| r.hosts.get(h)).map(|r| &r.spec));
            if let Some(spec) = spec {
                if matches!(
                    op,
                    Op::CreateDomain { .. }
                        | Op::Restart { .. }
                        | Op::Rebuild { .. }
                        | Op::Move { .. }
                        | Op::Replug { .. }
                ) {
                    touches.extend(spec.switches().map(|s| ObjectRef::Switch(s.to_string())));
                }
            }
        }
        self.actions.push(Action {
            id,
            op,
            service_host,
            touches,
            after: after.to_vec(),
        });
        id
    }

    fn links(&self, spec: &HostSpec) -> Vec<LinkEffect> {
        spec.switches()
            .map(|sw| LinkEffect {
                switch: sw.to_string(),
                peers: self
                    .members
                    .get(sw)
                    .map(|m| {
                        m.iter()
                            .filter(|p| **p != spec.name)
                            .map(|p| p.to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn summary(
        &mut self,
        host: &str,
        kind: HostChangeKind,
        from: Option<String>,
        to: Option<String>,
        changes: Vec<AttrChange>,
        links: Vec<LinkEffect>,
    ) {
        self.hosts.push(HostChange {
            host: host.to_string(),
            kind,
            from,
            to,
            changes,
            links,
        });
    }

    /// Create the domain of a built host and start it.
    fn bring_up(&mut self, spec: &'a HostSpec, after: &[ActionId]) -> ActionId {
        let sh = spec.service_host.clone();
        let create = self.push(
            Op::CreateDomain {
                host: spec.name.clone(),
            },
            sh.clone(),
            after,
        );
        self.needs_switches.push((create, spec));
        let start = self.push(
            Op::Start {
                host: spec.name.clone(),
            },
            sh,
            &[create],
        );
        self.starts.push((spec.boot_order, start));
        self.recreated.insert(spec.name.clone());
        start
    }

    fn stop(
        &mut self,
        name: &'a str,
        rec: Option<&HostRecord>,
        sh: Option<String>,
        after: &[ActionId],
    ) -> ActionId {
        let id = self.push(
            Op::Stop {
                host: name.to_string(),
            },
            sh,
            after,
        );
        self.stops.push((rec.map_or(0, |r| r.spec.boot_order), id));
        self.detaches.push((id, name));
        id
    }

    fn live_changes(&mut self, spec: &HostSpec, changes: &[AttrChange], after: ActionId) {
        self.live_changes_after(spec, changes, &[after]);
    }

    fn live_changes_root(&mut self, spec: &HostSpec, changes: &[AttrChange]) {
        self.live_changes_after(spec, changes, &[]);
    }

    fn live_changes_after(&mut self, spec: &HostSpec, changes: &[AttrChange], after: &[ActionId]) {
        let rec = self.recorded.and_then(|r| r.hosts.get(&spec.name));
        for c in changes.iter().filter(|c| c.class == ChangeClass::Live) {
            let op = match c.attr.as_str() {
                "memory" => Op::SetMemory {
                    host: spec.name.clone(),
                    from: rec.map_or(0, |r| r.spec.memory),
                    to: spec.memory,
                },
                "vcpus" => Op::SetVcpus {
                    host: spec.name.clone(),
                    from: rec.map_or(0, |r| r.spec.vcpus),
                    to: spec.vcpus,
                },
                _ => continue,
            };
            self.push(op, spec.service_host.clone(), after);
        }
    }

    fn switches(&mut self, filtered: bool) {
        let mut names = merge_sorted(
            self.desired.switches.keys().map(String::as_str),
            self.recorded
                .into_iter()
                .flat_map(|r| r.switches.keys().map(String::as_str)),
        );
        names = merge_sorted(
            names.into_iter(),
            self.observed.switches.keys().map(String::as_str),
        );

        // Switch → hosts that run on it after the plan.
        let mut running_members: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (&host, &runs) in &self.will_run {
            if !runs {
                continue;
            }
            let spec = self.desired.hosts.get(host).or_else(|| {
                self.recorded
                    .and_then(|r| r.hosts.get(host))
                    .map(|r| &r.spec)
            });
            if let Some(spec) = spec {
                for sw in spec.switches() {
                    running_members.entry(sw).or_default().push(&spec.name);
                }
            }
        }
        // Hash order must not leak into the plan.
        for v in running_members.values_mut() {
            v.sort_unstable();
        }

        let mut creates: HashMap<String, ActionId> = HashMap::new();
        let mut removes: Vec<(ActionId, &str)> = Vec::new();
        for name in names {
            let want = self.desired.switches.get(name);
            let rec = self.recorded.and_then(|r| r.switches.get(name));
            let obs = self.observed.switches.get(name);
            let up = obs.is_some_and(|o| o.up);
            let runners = running_members.get(name).map_or(&[][..], |v| v.as_slice());
            let needed = want.is_some()
                && (!runners.is_empty()
                    || (up && matches!(self.goal, Goal::Build | Goal::Upgrade | Goal::Up)));
            let sh = want
                .map(|w| w.service_host.clone())
                .or_else(|| rec.map(|r| r.spec.service_host.clone()))
                .or_else(|| obs.map(|o| o.service_host.clone()))
                .flatten();
            if needed {
                let changed =
                    rec.is_some_and(|r| want.is_some_and(|w| w.needs_recreate_from(&r.spec)));
                if up && rec.is_some() && !changed {
                    continue;
                }
                let mut after = Vec::new();
                let (kind, reason) = if up && rec.is_none() {
                    // Started by a run that died before recording it: the
                    // backend adopts the running switch and it is recorded.
                    (SwitchChangeKind::Create, "left running unrecorded: adopted")
                } else if up {
                    let old_sh = rec
                        .and_then(|r| r.spec.service_host.clone())
                        .or_else(|| obs.and_then(|o| o.service_host.clone()));
                    let r = self.push(
                        Op::RemoveSwitch {
                            switch: name.to_string(),
                        },
                        old_sh,
                        &[],
                    );
                    removes.push((r, name));
                    after.push(r);
                    (SwitchChangeKind::Recreate, "its settings changed")
                } else if rec.is_some() && runners.iter().any(|h| self.is_running_now(h)) {
                    (SwitchChangeKind::Recreate, "found down while hosts use it")
                } else {
                    (SwitchChangeKind::Create, "hosts on it start")
                };
                let c = self.push(
                    Op::CreateSwitch {
                        switch: name.to_string(),
                    },
                    sh,
                    &after,
                );
                creates.insert(name.to_string(), c);
                let replugged = if kind == SwitchChangeKind::Recreate {
                    self.replug(name, runners, c)
                } else {
                    Vec::new()
                };
                self.switches.push(SwitchChange {
                    switch: name.to_string(),
                    kind,
                    reason: reason.to_string(),
                    replugged,
                });
            } else if (obs.is_some() || rec.is_some()) && !filtered {
                // Found at all (a switch whose cable is down is found down)
                // or recorded: removed, so no instance of it is left behind.
                let r = self.push(
                    Op::RemoveSwitch {
                        switch: name.to_string(),
                    },
                    sh,
                    &[],
                );
                removes.push((r, name));
                let reason = if want.is_none() && rec.is_none() {
                    "left over, not in the project"
                } else if want.is_none() {
                    "not in the project any more"
                } else {
                    "no running host uses it"
                };
                self.switches.push(SwitchChange {
                    switch: name.to_string(),
                    kind: SwitchChangeKind::Remove,
                    reason: reason.to_string(),
                    replugged: Vec::new(),
                });
            }
        }

        // Plugging in waits for the switch; removing waits for every
        // member to be off it. An action that does both on one recreated
        // switch (a restart, a rebuild, a move) plugs in after the new
        // switch exists and so cannot also hold up the old one's removal:
        // it leaves the old switch by stopping on the new one's side,
        // which is the re-plug a recreated switch needs anyway.
        let mut plugs_into_new: HashSet<(ActionId, &str)> = HashSet::new();
        for (id, spec) in std::mem::take(&mut self.needs_switches) {
            for sw in spec.switches() {
                if let Some(c) = creates.get(sw) {
                    self.actions[id.0].after.push(*c);
                    plugs_into_new.insert((id, sw));
                }
            }
        }
        let mut off: HashMap<&str, Vec<ActionId>> = HashMap::new();
        for &(id, host) in &self.detaches {
            let rec = self
                .recorded
                .and_then(|r| r.hosts.get(host))
                .map(|r| &r.spec);
            let specs = [rec, self.desired.hosts.get(host)];
            let mut seen: Vec<&str> = Vec::new();
            for sw in specs.into_iter().flatten().flat_map(|s| s.switches()) {
                if !seen.contains(&sw) {
                    seen.push(sw);
                    off.entry(sw).or_default().push(id);
                }
            }
        }
        for (r, name) in removes {
            if let Some(ids) = off.get(name) {
                let ids: Vec<ActionId> = ids
                    .iter()
                    .copied()
                    .filter(|id| !plugs_into_new.contains(&(*id, name)))
                    .collect();
                self.actions[r.0].after.extend(ids);
            }
        }
    }

    /// Remove what servers kept while they were lost, first thing, where
    /// they answer again.
    fn stale(&mut self, unreachable: &BTreeSet<String>) {
        let Some(recorded) = self.recorded else {
            return;
        };
        for copy in &recorded.stale {
            if unreachable.contains(&copy.server) || self.lost.contains(&copy.server) {
                continue;
            }
            self.push(
                Op::ClearStale {
                    server: copy.server.clone(),
                    host: copy.spec.name.clone(),
                },
                Some(copy.server.clone()),
                &[],
            );
        }
    }

    fn is_running_now(&self, host: &str) -> bool {
        self.observed
            .domains
            .get(host)
            .is_some_and(|d| alive(d.info.state))
    }

    /// Re-plug the running members of a recreated switch; returns them.
    fn replug(&mut self, switch: &str, runners: &[&str], create: ActionId) -> Vec<String> {
        let mut out = Vec::new();
        for host in runners {
            if self.recreated.contains(*host) || !self.is_running_now(host) {
                continue;
            }
            let Some(spec) = self.desired.hosts.get(*host) else {
                continue;
            };
            out.push(spec.name.clone());
            for iface in spec
                .interfaces
                .iter()
                .filter(|i| i.switch.as_deref() == Some(switch))
            {
                self.push(
                    Op::Replug {
                        host: spec.name.clone(),
                        interface: iface.name.clone(),
                        switch: switch.to_string(),
                    },
                    spec.service_host.clone(),
                    &[create],
                );
            }
        }
        out
    }

    /// `boot_order`: hosts of a lower order start first, and stop last.
    fn order(&mut self) {
        let mut starts = std::mem::take(&mut self.starts);
        starts.sort();
        chain_groups(&mut self.actions, &starts);
        let mut stops = std::mem::take(&mut self.stops);
        stops.sort_by(|a, b| b.cmp(a));
        chain_groups(&mut self.actions, &stops);
    }

    fn hooks(&mut self) {
        let hooks = &self.desired.hooks;
        let has_start = self
            .actions
            .iter()
            .any(|a| matches!(a.op, Op::Start { .. } | Op::Rebuild { start: true, .. }));
        let has_stop = self.actions.iter().any(|a| matches!(a.op, Op::Stop { .. }));
        let work: Vec<ActionId> = self.actions.iter().map(|a| a.id).collect();
        let pick = |pred: fn(&Op) -> bool, actions: &[Action]| -> Vec<ActionId> {
            actions
                .iter()
                .filter(|a| pred(&a.op))
                .map(|a| a.id)
                .collect()
        };
        let phases = [
            (
                has_start,
                [
                    HookPoint::BeforeProjectStart,
                    HookPoint::BeforeHostsStart,
                    HookPoint::AfterHostsStart,
                    HookPoint::AfterProjectStart,
                ],
                pick(
                    |o| matches!(o, Op::Start { .. } | Op::Rebuild { start: true, .. }),
                    &self.actions,
                ),
            ),
            (
                has_stop,
                [
                    HookPoint::BeforeProjectStop,
                    HookPoint::BeforeHostsStop,
                    HookPoint::AfterHostsStop,
                    HookPoint::AfterProjectStop,
                ],
                pick(|o| matches!(o, Op::Stop { .. }), &self.actions),
            ),
        ];
        for (present, [before_p, before_h, after_h, after_p], hosts) in phases {
            if !present {
                continue;
            }
            let add = |b: &mut Self, point: HookPoint, after: Vec<ActionId>| {
                if hooks.get(&point).is_some_and(|l| !l.is_empty()) {
                    Some(b.push(Op::RunHook { point }, None, &after))
                } else {
                    None
                }
            };
            if let Some(h) = add(self, before_p, Vec::new()) {
                for id in &work {
                    self.actions[id.0].after.push(h);
                }
            }
            let earlier: Vec<ActionId> = work
                .iter()
                .copied()
                .filter(|id| !hosts.contains(id))
                .filter(|id| {
                    matches!(
                        self.actions[id.0].op,
                        Op::CreateDomain { .. }
                            | Op::PrepareDisk { .. }
                            | Op::WriteGuestConfig { .. }
                    )
                })
                .collect();
            if let Some(h) = add(self, before_h, earlier) {
                for id in &hosts {
                    self.actions[id.0].after.push(h);
                }
            }
            let after_hosts = add(self, after_h, hosts.clone());
            let mut all = work.clone();
            all.extend(after_hosts);
            add(self, after_p, all);
        }
    }
}

/// The union of two sorted sequences, sorted, without duplicates.
fn merge_sorted<'s>(
    a: impl Iterator<Item = &'s str>,
    b: impl Iterator<Item = &'s str>,
) -> Vec<&'s str> {
    let mut out = Vec::with_capacity(a.size_hint().0 + b.size_hint().0);
    let mut a = a.peekable();
    let mut b = b.peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x < y => a.next(),
            (Some(x), Some(y)) if x > y => b.next(),
            (Some(_), Some(_)) => {
                b.next();
                a.next()
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

/// Make every action of a group wait for every action of the group before.
fn chain_groups(actions: &mut [Action], sorted: &[(u32, ActionId)]) {
    let mut prev: Vec<ActionId> = Vec::new();
    let mut cur: Vec<ActionId> = Vec::new();
    let mut cur_key = None;
    for &(key, id) in sorted {
        if cur_key != Some(key) {
            prev = std::mem::take(&mut cur);
            cur_key = Some(key);
        }
        actions[id.0].after.extend(prev.iter().copied());
        cur.push(id);
    }
}
