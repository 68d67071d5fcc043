//! Planning one host: where it is (record and observation), where it must
//! be (desired spec and goal), and the actions between the two, one
//! function per kind of journey: a leftover cleared, a host going away, a
//! new host, a move, a rebuild, changes in place.

use mln_core::DomainState;

use super::super::attrs::{diff_host, Running};
use super::super::recorded::HostRecord;
use super::super::spec::HostSpec;
use super::super::types::{
    ActionId, AttrChange, ChangeClass, Goal, HostChangeKind, ObservedDomain, Op,
};
use super::{alive, Builder, Phase};

/// What is known about one host before planning it.
struct Where<'a> {
    name: &'a str,
    /// Its desired spec, when the project still has it.
    wanted: Option<&'a HostSpec>,
    record: Option<&'a HostRecord>,
    observed: Option<&'a ObservedDomain>,
    /// Its domain runs (or is paused).
    alive: bool,
    /// The server it is on now (`None`: this machine).
    server: Option<String>,
}

/// What the leftovers step did: the actions later ones follow, whether
/// it repaired something, and whether the domain still runs after it.
struct Cleared {
    first: Vec<ActionId>,
    repaired: bool,
    alive: bool,
}

impl<'a> Builder<'a> {
    /// Plan `name`.
    pub(super) fn host(&mut self, name: &'a str, project_running: bool) {
        let record = self.recorded.and_then(|r| r.hosts.get(name));
        let observed = self.observed.domains.get(name);
        let here = Where {
            name,
            wanted: self.desired.hosts.get(name),
            record,
            observed,
            alive: observed.is_some_and(|o| alive(o.info.state)),
            server: observed
                .map(|o| o.service_host.clone())
                .or_else(|| record.map(|r| r.spec.service_host.clone()))
                .flatten(),
        };
        let Some(want) = self.wanted_phase(&here, project_running) else {
            return;
        };
        self.will_run.insert(name, want == Phase::Running);
        let cleared = self.clear_leftover(&here);
        let Some(spec) = here.wanted.filter(|_| want != Phase::Absent) else {
            return self.going_away(&here, &cleared);
        };
        let run = want == Phase::Running;
        let Some(record) = here.record else {
            return self.new_host(spec, run, &cleared.first);
        };
        let mut changes = self.changes(&here, record, spec, cleared.alive && run);
        if self.fresh && !changes.iter().any(|c| c.class == ChangeClass::Move) {
            changes.push(AttrChange {
                attr: "disks".into(),
                from: "as the guest left them".into(),
                to: "fresh from the template".into(),
                class: ChangeClass::Rebuild,
            });
        }
        let has = |class: ChangeClass| changes.iter().any(|c| c.class == class);
        if has(ChangeClass::Move) {
            self.moved(&here, record, spec, run, &cleared, changes);
        } else if has(ChangeClass::Rebuild) {
            self.rebuilt(&here, spec, run, &cleared, changes);
        } else {
            self.in_place(&here, record, spec, run, cleared, changes);
        }
    }

    /// Where the goal takes the host; `None` when there is nothing to do
    /// (stopping a host that was never made).
    fn wanted_phase(&self, here: &Where<'_>, project_running: bool) -> Option<Phase> {
        let (rec, alive) = (here.record.is_some(), here.alive);
        Some(match (here.wanted, self.goal) {
            (None, _) | (_, Goal::Remove) => Phase::Absent,
            (Some(_), Goal::Up) => Phase::Running,
            (Some(_), Goal::Build) if alive => Phase::Running,
            (Some(_), Goal::Build) => Phase::Built,
            (Some(_), Goal::Stop) if !rec && here.observed.is_none() => return None,
            // Only a leftover domain to clean up.
            (Some(_), Goal::Stop) if !rec => Phase::Absent,
            (Some(_), Goal::Stop) => Phase::Built,
            (Some(_), Goal::Upgrade) if alive => Phase::Running,
            // Stopped or not yet started by a run that meant to run it.
            (Some(_), Goal::Upgrade) if here.record.is_some_and(|r| r.should_run) => Phase::Running,
            (Some(_), Goal::Upgrade) if rec => Phase::Built,
            (Some(_), Goal::Upgrade) if project_running => Phase::Running,
            (Some(_), Goal::Upgrade) => Phase::Built,
        })
    }

    /// Leftovers first: a dead domain, or one no record accounts for (made
    /// by someone else or by a run that died before recording it).
    fn clear_leftover(&mut self, here: &Where<'a>) -> Cleared {
        if here.observed.is_none() || (here.alive && here.record.is_some()) {
            return Cleared {
                first: Vec::new(),
                repaired: false,
                alive: here.alive,
            };
        }
        let d = self.push(
            Op::Destroy {
                host: here.name.to_string(),
            },
            here.server.clone(),
            &[],
        );
        self.detaches.push((d, here.name));
        Cleared {
            first: vec![d],
            repaired: true,
            alive: false,
        }
    }

    /// The host leaves the project (or the project is removed): stop it,
    /// delete its disks.
    fn going_away(&mut self, here: &Where<'a>, cleared: &Cleared) {
        let name = here.name;
        let mut last = cleared.first.clone();
        if cleared.alive {
            last = vec![self.stop(name, here.record, here.server.clone(), &cleared.first)];
        }
        if here.record.is_some() {
            let r = self.push(
                Op::RemoveDisk {
                    host: name.to_string(),
                },
                here.server.clone(),
                &last,
            );
            self.detaches.push((r, name));
            self.summary(
                name,
                HostChangeKind::Destroy,
                here.server.clone(),
                None,
                Vec::new(),
                Vec::new(),
            );
        } else if cleared.repaired {
            self.summary(
                name,
                HostChangeKind::Repair,
                here.server.clone(),
                None,
                Vec::new(),
                Vec::new(),
            );
        }
    }

    /// A host the project never made: disks, configuration, then (when it
    /// should run) its domain.
    fn new_host(&mut self, spec: &'a HostSpec, run: bool, first: &[ActionId]) {
        let sh = spec.service_host.clone();
        let d = self.push(
            Op::PrepareDisk {
                host: spec.name.clone(),
            },
            sh.clone(),
            first,
        );
        let c = self.push(
            Op::WriteGuestConfig {
                host: spec.name.clone(),
            },
            sh.clone(),
            &[d],
        );
        if run {
            self.bring_up(spec, &[c]);
        }
        self.summary(
            &spec.name,
            HostChangeKind::Create,
            None,
            sh,
            Vec::new(),
            Vec::new(),
        );
    }

    /// What differs between the recorded host and `spec`, judged against
    /// the ceilings its running domain was created with (`live`: it runs
    /// and will keep running, so changes within them are live).
    fn changes(
        &self,
        here: &Where<'_>,
        record: &HostRecord,
        spec: &HostSpec,
        live: bool,
    ) -> Vec<AttrChange> {
        let (max_memory, max_vcpus) = match (record.domain.as_ref(), here.observed) {
            (_, Some(o)) if o.info.max_memory > 0 => (
                o.info.max_memory,
                record.domain.as_ref().map_or(o.info.vcpus, |d| d.max_vcpus),
            ),
            (Some(d), _) => (d.max_memory, d.max_vcpus),
            _ => (record.spec.memory, record.spec.vcpus),
        };
        diff_host(
            &record.spec,
            spec,
            Running {
                live,
                max_memory,
                max_vcpus,
            },
        )
    }

    /// The host changes server: live (a running guest whose platform
    /// migrates, with nothing but live changes besides) or cold.
    fn moved(
        &mut self,
        here: &Where<'a>,
        record: &HostRecord,
        spec: &'a HostSpec,
        run: bool,
        cleared: &Cleared,
        changes: Vec<AttrChange>,
    ) {
        let name = here.name;
        let sh = spec.service_host.clone();
        // Nothing is asked of a lost server: the host is made afresh.
        let lost = here.server.as_ref().is_some_and(|s| self.lost.contains(s));
        let live = !lost
            && cleared.alive
            && run
            && spec.platform.live_migration()
            && changes
                .iter()
                .all(|c| matches!(c.class, ChangeClass::Live | ChangeClass::Move));
        let built = record.disk_ready && record.config_ready;
        let rebuild = lost || changes.iter().any(|c| c.class == ChangeClass::Rebuild) || !built;
        let m = self.push(
            Op::Move {
                host: name.to_string(),
                from: here.server.clone(),
                to: sh.clone(),
                live,
                start: run,
                rebuild,
                lost,
            },
            sh.clone(),
            &cleared.first,
        );
        self.needs_switches.push((m, spec));
        self.detaches.push((m, name));
        if live {
            self.live_changes(spec, &changes, m);
        } else {
            self.recreated.insert(name.to_string());
        }
        let links = self.links(spec);
        self.summary(
            name,
            HostChangeKind::Move,
            here.server.clone(),
            sh,
            changes,
            links,
        );
    }

    /// Changes that need new disks: tear down and make again.
    fn rebuilt(
        &mut self,
        here: &Where<'a>,
        spec: &'a HostSpec,
        run: bool,
        cleared: &Cleared,
        changes: Vec<AttrChange>,
    ) {
        let name = here.name;
        let sh = spec.service_host.clone();
        let r = self.push(
            Op::Rebuild {
                host: name.to_string(),
                start: run,
            },
            sh.clone(),
            &cleared.first,
        );
        self.needs_switches.push((r, spec));
        self.detaches.push((r, name));
        self.recreated.insert(name.to_string());
        if run {
            self.starts.push((spec.boot_order, r));
        }
        let links = self.links(spec);
        self.summary(
            name,
            HostChangeKind::Rebuild,
            here.server.clone(),
            sh,
            changes,
            links,
        );
    }

    /// Same place, same disks: finish what an interrupted run left, apply
    /// the changes, then reach the wanted run state.
    fn in_place(
        &mut self,
        here: &Where<'a>,
        record: &'a HostRecord,
        spec: &'a HostSpec,
        run: bool,
        cleared: Cleared,
        changes: Vec<AttrChange>,
    ) {
        let name = here.name;
        let sh = spec.service_host.clone();
        let restart = changes.iter().any(|c| c.class == ChangeClass::Restart);
        let mut repaired = cleared.repaired;
        let mut last = cleared.first;
        if !record.disk_ready {
            last = vec![self.push(
                Op::PrepareDisk {
                    host: name.to_string(),
                },
                sh.clone(),
                &last,
            )];
            repaired = true;
        }
        if !record.config_ready || restart {
            repaired |= !record.config_ready;
            last = vec![self.push(
                Op::WriteGuestConfig {
                    host: name.to_string(),
                },
                sh.clone(),
                &last,
            )];
        }
        // Created by a run that died before letting it run: a paused domain
        // the record does not know as started.
        let created_unstarted = cleared.alive
            && here
                .observed
                .is_some_and(|o| o.info.state == DomainState::Paused)
            && !matches!(&record.domain, Some(d) if d.started);
        let mut kind = match changes.iter().map(|c| c.class).max() {
            Some(class) => Some(HostChangeKind::Update(class)),
            None if repaired || created_unstarted => Some(HostChangeKind::Repair),
            None => None,
        };
        match (cleared.alive, run) {
            (true, true) if restart => {
                let r = self.push(
                    Op::Restart {
                        host: name.to_string(),
                    },
                    sh.clone(),
                    &last,
                );
                self.needs_switches.push((r, spec));
                self.detaches.push((r, name));
                self.recreated.insert(name.to_string());
            }
            (true, true) => {
                if created_unstarted {
                    let s = self.push(
                        Op::Start {
                            host: name.to_string(),
                        },
                        sh.clone(),
                        &last,
                    );
                    self.starts.push((spec.boot_order, s));
                    last = vec![s];
                }
                match last.last() {
                    Some(&l) => self.live_changes(spec, &changes, l),
                    None => self.live_changes_root(spec, &changes),
                }
            }
            (true, false) => {
                self.stop(name, Some(record), here.server.clone(), &last);
                kind.get_or_insert(HostChangeKind::Stop);
            }
            (false, true) => {
                self.bring_up(spec, &last);
                if kind.is_none() || kind == Some(HostChangeKind::Repair) && !repaired {
                    kind = Some(HostChangeKind::Start);
                }
            }
            (false, false) => {}
        }
        if let Some(kind) = kind {
            self.summary(name, kind, here.server.clone(), sh, changes, Vec::new());
        }
    }
}
