//! The executor against an in-memory double of the backends. The real
//! proof is `tests/apply_uml.rs` with real UML guests and switches; these
//! cover failure paths a real machine cannot produce on demand.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mln_core::{
    BackendKind, BootStatus, DomainInfo, DomainSpec, DomainState, Error, Hypervisor,
    Result as CoreResult,
};

use super::*;
use crate::plan::{
    derived_mac, plan, DesiredProject, Goal, HookPoint, HostInterface, HostSpec, Op, PlanOptions,
    Platform, SwitchSpec,
};
use crate::state::{State, StateStore, SwitchRecord};

#[derive(Default)]
struct FakeHv {
    domains: Mutex<BTreeMap<String, (DomainSpec, DomainState, u64)>>,
    fail_create: Mutex<BTreeSet<String>>,
    /// What `boot_status` says of a domain (default: booted once running).
    boot: Mutex<BTreeMap<String, BootStatus>>,
    /// When set, `create` waits until this many creates are in flight
    /// (shared between servers' hypervisors to count across them).
    rendezvous: Option<Arc<(Mutex<usize>, Condvar, usize)>>,
    /// Creates in flight now, and the most ever at once.
    in_flight: Mutex<(usize, usize)>,
    /// Starts of each domain so far.
    starts: Mutex<BTreeMap<String, usize>>,
    /// Domains whose first this many starts die of a passing fault.
    dies_passing: Mutex<BTreeMap<String, usize>>,
    /// Domains whose first this many starts fail at once, of a passing
    /// fault ([`Error::BootCrash`]).
    start_crashes: Mutex<BTreeMap<String, usize>>,
}

impl FakeHv {
    fn names(&self) -> Vec<String> {
        self.domains.lock().unwrap().keys().cloned().collect()
    }
}

fn nf(name: &str) -> Error {
    Error::NotFound {
        domain: name.to_string(),
    }
}

impl Hypervisor for FakeHv {
    fn kind(&self) -> BackendKind {
        BackendKind::Uml
    }
    fn create(&self, spec: &DomainSpec) -> CoreResult<DomainInfo> {
        if let Some(r) = &self.rendezvous {
            let (count, cv, want) = &**r;
            let mut n = count.lock().unwrap();
            *n += 1;
            cv.notify_all();
            // Deadlock guard only: the test asserts on the count, not time.
            let (n, _) = cv
                .wait_timeout_while(n, Duration::from_secs(20), |n| *n < *want)
                .unwrap();
            assert!(*n >= *want, "creates did not run in parallel");
        }
        {
            let mut f = self.in_flight.lock().unwrap();
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        // Long enough for creates that may overlap to overlap.
        std::thread::sleep(Duration::from_millis(30));
        self.in_flight.lock().unwrap().0 -= 1;
        if self.fail_create.lock().unwrap().contains(&spec.name) {
            return Err(Error::Backend {
                what: spec.name.clone(),
                message: "injected failure".into(),
            });
        }
        let mut d = self.domains.lock().unwrap();
        if d.contains_key(&spec.name) {
            return Err(Error::AlreadyExists {
                domain: spec.name.clone(),
            });
        }
        d.insert(
            spec.name.clone(),
            (spec.clone(), DomainState::Paused, spec.memory),
        );
        drop(d);
        self.info(&spec.name)
    }
    fn start(&self, name: &str) -> CoreResult<()> {
        let mut d = self.domains.lock().unwrap();
        let mut starts = self.starts.lock().unwrap();
        let n = starts.entry(name.into()).or_default();
        *n += 1;
        if self
            .start_crashes
            .lock()
            .unwrap()
            .get(name)
            .is_some_and(|c| *n <= *c)
        {
            d.get_mut(name).ok_or_else(|| nf(name))?.1 = DomainState::Crashed;
            return Err(Error::BootCrash {
                domain: name.into(),
                message: "error loading journal".into(),
                transient: true,
            });
        }
        d.get_mut(name).ok_or_else(|| nf(name))?.1 = DomainState::Running;
        Ok(())
    }
    fn pause(&self, _: &str) -> CoreResult<()> {
        Ok(())
    }
    fn resume(&self, _: &str) -> CoreResult<()> {
        Ok(())
    }
    fn shutdown(&self, name: &str, _: Duration) -> CoreResult<()> {
        self.destroy(name)
    }
    fn reboot(&self, _: &str) -> CoreResult<()> {
        Ok(())
    }
    fn destroy(&self, name: &str) -> CoreResult<()> {
        self.domains
            .lock()
            .unwrap()
            .remove(name)
            .map(drop)
            .ok_or_else(|| nf(name))
    }
    fn info(&self, name: &str) -> CoreResult<DomainInfo> {
        let d = self.domains.lock().unwrap();
        let (spec, state, mem) = d.get(name).ok_or_else(|| nf(name))?;
        Ok(DomainInfo {
            name: name.to_string(),
            id: 100 + name.len() as u32,
            backend: BackendKind::Uml,
            state: *state,
            memory: *mem,
            max_memory: spec.effective_max_memory(),
            vcpus: spec.vcpus,
            cpu_time: Duration::ZERO,
        })
    }
    fn list(&self) -> CoreResult<Vec<DomainInfo>> {
        self.names().iter().map(|n| self.info(n)).collect()
    }
    fn boot_status(&self, name: &str) -> CoreResult<BootStatus> {
        self.info(name)?;
        let starts = self.starts.lock().unwrap().get(name).copied();
        let dies = self.dies_passing.lock().unwrap().get(name).copied();
        if let (Some(starts), Some(dies)) = (starts, dies) {
            if starts <= dies {
                return Ok(BootStatus::Failed {
                    state: DomainState::Crashed,
                    reason: Some("a passing fault; started again".into()),
                    console: "EXT4-fs (ubda): error loading journal".into(),
                    transient: true,
                });
            }
        }
        Ok(self
            .boot
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or(BootStatus::Booted))
    }
    fn set_memory(&self, name: &str, bytes: u64) -> CoreResult<()> {
        let mut d = self.domains.lock().unwrap();
        d.get_mut(name).ok_or_else(|| nf(name))?.2 = bytes;
        Ok(())
    }
    fn set_vcpus(&self, _: &str, _: u32) -> CoreResult<()> {
        Ok(())
    }
    fn save(&self, _: &str, _: &Path) -> CoreResult<()> {
        unimplemented!()
    }
    fn restore(&self, _: &DomainSpec, _: &Path) -> CoreResult<DomainInfo> {
        unimplemented!()
    }
    fn migrate_send(&self, _: &str, _: BorrowedFd<'_>) -> CoreResult<()> {
        unimplemented!()
    }
    fn migrate_receive(&self, _: &DomainSpec, _: BorrowedFd<'_>) -> CoreResult<DomainInfo> {
        unimplemented!()
    }
}

/// `(host, from service host, to service host)`.
type Between = (String, Option<String>, Option<String>);

#[derive(Default)]
struct Fake {
    /// This machine's hypervisor.
    hv: FakeHv,
    /// Other service hosts' hypervisors, by server name.
    servers: BTreeMap<String, FakeHv>,
    switches: Mutex<BTreeMap<String, bool>>,
    disks: Mutex<BTreeSet<String>>,
    configs: Mutex<BTreeSet<String>>,
    /// Every `migrate` asked for, in order.
    migrations: Mutex<Vec<Between>>,
    /// What the next `migrate` fails with; `None`: unsupported, as for a
    /// backend without live migration.
    migrate_error: Mutex<Option<Error>>,
    /// Disks carried between service hosts, in order.
    moved_disks: Mutex<Vec<Between>>,
}

fn between(from: &HostSpec, to: &HostSpec) -> Between {
    (
        from.name.clone(),
        from.service_host.clone(),
        to.service_host.clone(),
    )
}

fn unsupported() -> Error {
    Error::Unsupported {
        backend: "fake",
        op: "live migration",
    }
}

impl Backends for Fake {
    fn hypervisor(&self, server: Option<&str>, _: Platform) -> CoreResult<&dyn Hypervisor> {
        match server {
            None => Ok(&self.hv),
            Some(s) => self
                .servers
                .get(s)
                .map(|hv| hv as &dyn Hypervisor)
                .ok_or_else(|| Error::Backend {
                    what: s.to_string(),
                    message: "no such server".into(),
                }),
        }
    }
    fn migrate(&self, _: &DesiredProject, from: &HostSpec, to: &HostSpec) -> CoreResult<()> {
        self.migrations.lock().unwrap().push(between(from, to));
        Err(self
            .migrate_error
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(unsupported))
    }
    fn move_disk(&self, _: &str, from: &HostSpec, to: &HostSpec) -> CoreResult<()> {
        self.moved_disks.lock().unwrap().push(between(from, to));
        Ok(())
    }
    fn platforms(&self, _: Option<&str>) -> Vec<Platform> {
        vec![Platform::Uml]
    }
    fn create_switch(&self, _: &str, spec: &SwitchSpec) -> CoreResult<SwitchRecord> {
        self.switches
            .lock()
            .unwrap()
            .insert(spec.name.clone(), true);
        Ok(SwitchRecord {
            spec: spec.clone(),
            socket: Some(PathBuf::from(format!("/fake/{}", spec.name))),
            bridge: None,
            pid: Some(1),
        })
    }
    fn remove_switch(&self, _: &str, spec: &SwitchSpec) -> CoreResult<()> {
        self.switches.lock().unwrap().remove(&spec.name);
        Ok(())
    }
    fn list_switches(&self, _: &str, _: Option<&str>) -> CoreResult<Vec<(String, bool)>> {
        Ok(self
            .switches
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }
    fn prepare_disk(&self, _: &str, host: &HostSpec) -> CoreResult<Vec<PathBuf>> {
        self.disks.lock().unwrap().insert(host.name.clone());
        Ok(vec![PathBuf::from(format!("/fake/{}.cow", host.name))])
    }
    fn write_guest_config(&self, _: &DesiredProject, host: &HostSpec) -> CoreResult<()> {
        self.configs.lock().unwrap().insert(host.name.clone());
        Ok(())
    }
    fn remove_disk(&self, _: &str, host: &HostSpec) -> CoreResult<()> {
        self.disks.lock().unwrap().remove(&host.name);
        self.configs.lock().unwrap().remove(&host.name);
        Ok(())
    }
    fn domain_spec(
        &self,
        project: &str,
        host: &HostSpec,
        switches: &BTreeMap<String, SwitchRecord>,
    ) -> CoreResult<DomainSpec> {
        for sw in host.switches() {
            if !switches.contains_key(sw) {
                return Err(nf(sw));
            }
        }
        let mut s = DomainSpec::new(
            crate::plan::domain_name(project, &host.name),
            host.memory,
            mln_core::Boot::Disk,
        );
        s.vcpus = host.vcpus;
        Ok(s)
    }
}

fn lab(n: usize) -> DesiredProject {
    let mut p = DesiredProject::new("lab");
    p.add_switch(SwitchSpec::new("lan"));
    for i in 0..n {
        let name = format!("h{i}");
        let mut h = HostSpec::new(&name);
        h.memory = 64 << 20;
        h.interfaces.push(HostInterface {
            name: "eth0".into(),
            switch: Some("lan".into()),
            bridge: None,
            mac: derived_mac("lab", &name, "eth0"),
            address: Some(format!("10.0.0.{}", i + 1)),
            netmask: Some("255.255.255.0".into()),
            gateway: None,
        });
        p.add_host(h);
    }
    p
}

fn up(
    store: &StateStore,
    fake: &Fake,
    p: &DesiredProject,
    goal: Goal,
) -> std::result::Result<Outcome, ApplyError> {
    Run::new(store.clone(), fake, RunOptions::new(goal))
        .desired(p, None)
        .run()
}

#[test]
fn up_builds_starts_records_and_converges() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let p = lab(3);
    let out = up(&store, &fake, &p, Goal::Up).unwrap();
    let report = out.report.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(fake.hv.names(), vec!["lab.h0", "lab.h1", "lab.h2"]);
    let st = store.load().unwrap().unwrap();
    assert!(st
        .hosts
        .values()
        .all(|r| r.domain.is_some() && r.disk_ready));
    assert!(st.switches.contains_key("lan"));
    // Nothing left to do.
    let again = up(&store, &fake, &p, Goal::Up).unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan.render_actions());
    let s = status(&store, &fake).unwrap();
    assert!(s.hosts.iter().all(|h| h.state == "running"));
    assert_eq!(s.switches[0].state, "up");
}

#[test]
fn a_failure_stops_dependents_and_the_rest_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    fake.hv.fail_create.lock().unwrap().insert("lab.h1".into());
    let out = up(&store, &fake, &lab(3), Goal::Up).unwrap();
    let report = out.report.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].description, "create domain h1");
    assert!(report.failed[0].error.contains("injected failure"));
    let not_run: Vec<String> = report
        .not_run
        .iter()
        .map(|id| out.plan.action(*id).unwrap().op.describe())
        .collect();
    assert_eq!(not_run, vec!["start h1"]);
    assert_eq!(fake.hv.names(), vec!["lab.h0", "lab.h2"]);
    // The state says exactly that: h1 built, not running.
    let st = store.load().unwrap().unwrap();
    assert!(st.hosts["h1"].domain.is_none() && st.hosts["h1"].disk_ready);
    assert!(st.hosts["h0"].domain.is_some());
    // Once the cause is gone the next run finishes the job.
    fake.hv.fail_create.lock().unwrap().clear();
    let out = up(&store, &fake, &lab(3), Goal::Up).unwrap();
    assert_eq!(
        out.plan
            .actions
            .iter()
            .map(|a| a.op.describe())
            .collect::<Vec<_>>(),
        vec!["create domain h1", "start h1"]
    );
    assert!(out.report.unwrap().is_success());
}

#[test]
fn a_guest_that_crashes_while_booting_fails_its_start_and_the_rest_stays_up() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    fake.hv.boot.lock().unwrap().insert(
        "lab.h1".into(),
        BootStatus::Failed {
            state: DomainState::Crashed,
            reason: Some("a known cause; the fix".into()),
            console: "Kernel panic - not syncing: Attempted to kill init!".into(),
            transient: false,
        },
    );
    let out = up(&store, &fake, &lab(3), Goal::Up).unwrap();
    let report = out.report.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].description, "start h1");
    let error = &report.failed[0].error;
    assert!(
        error.contains("h1 crashed while booting: a known cause; the fix"),
        "{error}"
    );
    assert!(error.contains("Kernel panic"), "{error}");
    // The others are up, and the crashed one is recorded as started: the
    // status shows it crashed, the next `up` starts it again.
    assert_eq!(report.done.len() + 1, out.plan.actions.len());
    let st = store.load().unwrap().unwrap();
    assert!(st.hosts.values().all(|r| r.domain.is_some()));
}

/// `up` of a three-host lab whose h1 dies of a passing fault at its
/// first `at_start` starts (at once) and then at its first `booting`
/// starts (while booting); the report, and how often h1 was started.
fn up_with_passing_faults(at_start: usize, booting: usize) -> (ApplyReport, usize) {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let h1 = "lab.h1".to_string();
    fake.hv
        .start_crashes
        .lock()
        .unwrap()
        .insert(h1.clone(), at_start);
    fake.hv
        .dies_passing
        .lock()
        .unwrap()
        .insert(h1.clone(), booting);
    let report = up(&store, &fake, &lab(3), Goal::Up)
        .unwrap()
        .report
        .unwrap();
    assert_eq!(fake.hv.starts.lock().unwrap()["lab.h0"], 1);
    let starts = fake.hv.starts.lock().unwrap()[&h1];
    (report, starts)
}

#[test]
fn a_guest_that_dies_of_a_passing_fault_is_started_once_more_and_said_so() {
    for (at_start, booting) in [(0, 1), (1, 0)] {
        let (report, starts) = up_with_passing_faults(at_start, booting);
        assert!(report.is_success(), "{report:?}");
        assert_eq!(starts, 2);
        assert_eq!(report.boot_retries.len(), 1);
        assert_eq!(report.boot_retries[0].host, "h1");
    }
    let (report, _) = up_with_passing_faults(0, 1);
    assert!(report.boot_retries[0]
        .why
        .contains("crashed while booting: a passing fault"));
    let (report, _) = up_with_passing_faults(1, 0);
    assert!(report.boot_retries[0].why.contains("journal"));
}

#[test]
fn a_guest_that_dies_of_a_passing_fault_twice_fails_and_is_not_started_a_third_time() {
    // Twice while booting, or at start and then while booting.
    for (at_start, booting) in [(0, 2), (1, 2)] {
        let (report, starts) = up_with_passing_faults(at_start, booting);
        assert_eq!(report.failed.len(), 1, "{report:?}");
        let error = &report.failed[0].error;
        assert!(error.contains("died again"), "{error}");
        assert!(error.contains("error loading journal"), "{error}");
        assert_eq!(starts, 2);
        assert_eq!(report.boot_retries.len(), 1);
    }
}

#[test]
fn a_guest_that_never_confirms_its_boot_fails_after_the_boot_timeout() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    fake.hv
        .boot
        .lock()
        .unwrap()
        .insert("lab.h0".into(), BootStatus::Booting);
    let mut options = RunOptions::new(Goal::Up);
    options.boot_timeout = Duration::from_millis(300);
    let out = Run::new(store.clone(), &fake, options)
        .desired(&lab(2), None)
        .run()
        .unwrap();
    let report = out.report.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].description, "start h0");
    assert!(
        report.failed[0]
            .error
            .contains("did not confirm its boot within 0 s"),
        "{}",
        report.failed[0].error
    );
    assert!(report
        .done
        .iter()
        .any(|id| out.plan.action(*id).unwrap().op.describe() == "start h1"));
}

#[test]
fn after_a_crash_between_create_and_record_there_is_no_duplicate() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let p = lab(2);
    up(&store, &fake, &p, Goal::Build).unwrap();
    // What a kill -9 right after `create domain h0` leaves: the domain
    // exists (paused), the state does not know it.
    let spec = DomainSpec::new("lab.h0", 64 << 20, mln_core::Boot::Disk);
    fake.hv.create(&spec).unwrap();
    let out = up(&store, &fake, &p, Goal::Up).unwrap();
    assert!(out.report.unwrap().is_success());
    assert_eq!(fake.hv.names(), vec!["lab.h0", "lab.h1"]);
    assert!(out
        .plan
        .actions
        .iter()
        .all(|a| a.op.describe() != "create domain h0"));
}

#[test]
fn after_a_crash_mid_disk_the_next_run_remakes_it_and_remove_leaks_nothing() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let p = lab(2);
    // The run died inside `prepare disk of h1`: intent recorded, disk half made.
    {
        let lock = store.lock().unwrap();
        let mut st = State::new("lab");
        st.desired = Some(p.clone());
        st.hosts.insert(
            "h1".into(),
            crate::state::HostRecord::new(p.hosts["h1"].clone()),
        );
        store.save(&lock, &st).unwrap();
        fake.disks.lock().unwrap().insert("h1".into());
    }
    let out = up(&store, &fake, &p, Goal::Up).unwrap();
    assert!(out.report.unwrap().is_success());
    assert_eq!(fake.hv.names().len(), 2);
    let out = up(&store, &fake, &p, Goal::Remove).unwrap();
    assert!(out.report.unwrap().is_success());
    assert!(fake.hv.names().is_empty());
    assert!(fake.disks.lock().unwrap().is_empty());
    assert!(fake.configs.lock().unwrap().is_empty());
    assert!(fake.switches.lock().unwrap().is_empty());
    assert!(!store.dir().exists());
}

#[test]
fn stop_then_start_then_live_memory() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let mut p = lab(2);
    for h in p.hosts.values_mut() {
        h.platform = Platform::Xen;
    }
    up(&store, &fake, &p, Goal::Up).unwrap();
    let out = up(&store, &fake, &p, Goal::Stop).unwrap();
    assert!(out.report.unwrap().is_success());
    assert!(fake.hv.names().is_empty());
    assert!(fake.switches.lock().unwrap().is_empty());
    let out = Run::new(store.clone(), &fake, RunOptions::new(Goal::Up))
        .run()
        .unwrap();
    assert!(out.report.unwrap().is_success());
    assert_eq!(fake.hv.names().len(), 2);
    // The fake creates without headroom, so only a decrease is live.
    p.hosts.get_mut("h0").unwrap().memory = 32 << 20;
    let out = up(&store, &fake, &p, Goal::Upgrade).unwrap();
    assert_eq!(out.plan.actions.len(), 1, "{}", out.plan.render_diff());
    assert!(out.report.unwrap().is_success());
    assert_eq!(fake.hv.info("lab.h0").unwrap().memory, 32 << 20);
    assert_eq!(
        store.load().unwrap().unwrap().hosts["h0"].spec.memory,
        32 << 20
    );
}

#[test]
fn independent_actions_run_in_parallel() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake {
        hv: FakeHv {
            rendezvous: Some(Arc::new((Mutex::new(0), Condvar::new(), 3))),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = up(&store, &fake, &lab(3), Goal::Up).unwrap();
    assert!(out.report.unwrap().is_success());
}

/// `lab(n)` with host i on server `servers[i % len]`.
fn spread(n: usize, servers: &[&str]) -> DesiredProject {
    let mut p = lab(n);
    for (i, h) in p.hosts.values_mut().enumerate() {
        h.service_host = Some(servers[i % servers.len()].to_string());
    }
    p
}

fn one_at_a_time(goal: Goal) -> RunOptions {
    RunOptions {
        parallelism: 1,
        ..RunOptions::new(goal)
    }
}

#[test]
fn parallelism_is_per_server_so_servers_work_at_once() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    // One create on each of three servers, each server allowed one action
    // at a time: the three still meet, so they ran at once.
    let meet = Arc::new((Mutex::new(0), Condvar::new(), 3));
    let hv = || FakeHv {
        rendezvous: Some(meet.clone()),
        ..Default::default()
    };
    let fake = Fake {
        servers: BTreeMap::from([("a".into(), hv()), ("b".into(), hv()), ("c".into(), hv())]),
        ..Default::default()
    };
    let out = Run::new(store.clone(), &fake, one_at_a_time(Goal::Up))
        .desired(&spread(3, &["a", "b", "c"]), None)
        .run()
        .unwrap();
    assert!(out.report.unwrap().is_success());
}

#[test]
fn no_server_runs_more_than_its_share_at_once() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake {
        servers: BTreeMap::from([
            ("a".into(), FakeHv::default()),
            ("b".into(), FakeHv::default()),
        ]),
        ..Default::default()
    };
    let out = Run::new(store.clone(), &fake, one_at_a_time(Goal::Up))
        .desired(&spread(6, &["a", "b"]), None)
        .run()
        .unwrap();
    assert!(out.report.unwrap().is_success());
    for s in ["a", "b"] {
        let hv = &fake.servers[s];
        assert_eq!(hv.names().len(), 3, "{s}");
        assert_eq!(
            hv.in_flight.lock().unwrap().1,
            1,
            "{s} created more than one at once"
        );
    }
}

/// As MLN 1.0.8 ran its `HOOK.sh` scripts (a block written whole under
/// `#!/bin/bash`, run by `system` from the project's folder with MLN's
/// own environment): a block is one script, so `cd` and `if ... fi` span
/// lines; it runs in the project file's folder; it sees the caller's
/// environment, plus `MLN_PROJECT` and `MLN_HOOK`.
#[test]
fn a_hook_block_runs_as_one_script_in_the_project_folder() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let mut p = lab(1);
    let project_dir = root.path().join("project");
    std::fs::create_dir_all(project_dir.join("sub")).unwrap();
    p.hook_dir = Some(project_dir.clone());
    // HOME is in every test's environment: it reaches the hook.
    let home = std::env::var("HOME").unwrap_or_default();
    p.hooks.insert(
        HookPoint::AfterHostsStart,
        [
            "started_in=$(pwd)",
            "cd sub",
            "if [ -n \"$HOME\" ]; then",
            "  echo \"$MLN_PROJECT $MLN_HOOK $started_in $HOME\" > hook.out",
            "fi",
        ]
        .map(String::from)
        .to_vec(),
    );
    p.hooks
        .insert(HookPoint::BeforeProjectStart, vec!["true".into()]);
    let out = up(&store, &fake, &p, Goal::Up).unwrap();
    assert!(out.report.unwrap().is_success());
    assert_eq!(
        std::fs::read_to_string(project_dir.join("sub/hook.out")).unwrap(),
        format!("lab afterHostsStart {} {home}\n", project_dir.display())
    );
    // A failing block fails its action and what waits for it; the
    // error names the block by its first line.
    p.hooks.insert(
        HookPoint::BeforeHostsStop,
        vec!["echo stopping".into(), "exit 3".into()],
    );
    let out = up(&store, &fake, &p, Goal::Stop).unwrap();
    let report = out.report.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].error.contains("exit status: 3"));
    assert!(report.failed[0].error.contains("`echo stopping ...`"));
    assert_eq!(fake.hv.names().len(), 1, "the host must not stop");
}

/// A hook that never ends is killed at the bound and fails its action,
/// and one that leaves a process in the background holding its output
/// does not hold `mln` up.
#[test]
fn a_hook_that_runs_too_long_is_killed_and_fails_its_action() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let mut p = lab(1);
    p.hooks
        .insert(HookPoint::BeforeProjectStart, vec!["sleep 30 &".into()]);
    p.hooks
        .insert(HookPoint::AfterHostsStart, vec!["sleep 30".into()]);
    let mut opts = RunOptions::new(Goal::Up);
    opts.hook_timeout = std::time::Duration::from_millis(500);
    let started = std::time::Instant::now();
    let out = Run::new(store.clone(), &fake, opts)
        .desired(&p, None)
        .run()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let report = out.report.unwrap();
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    let error = &report.failed[0].error;
    assert!(error.contains("afterHostsStart hook `sleep 30`"), "{error}");
    assert!(
        error.contains("still running after 500ms; killed"),
        "{error}"
    );
}

#[test]
fn a_second_executor_on_a_locked_project_fails_clearly() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let _held = store.lock().unwrap();
    let err = up(&store, &fake, &lab(1), Goal::Up).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("project lab is locked by pid {}", std::process::id())
    );
    assert!(fake.hv.names().is_empty());
}

#[test]
fn a_dry_run_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let mut opts = RunOptions::new(Goal::Up);
    opts.dry_run = true;
    let out = Run::new(store.clone(), &fake, opts)
        .desired(&lab(2), None)
        .run()
        .unwrap();
    assert!(out.report.is_none());
    assert!(!out.plan.is_empty());
    assert!(fake.hv.names().is_empty());
    assert!(store.load().unwrap().is_none());
}

#[test]
fn malformed_plans_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let lock = store.lock().unwrap();
    let fake = Fake::default();
    let p = lab(1);
    let mut pl = plan(
        &p,
        None,
        &Default::default(),
        &PlanOptions::new(Goal::Build),
    );
    pl.actions[0].after.push(crate::plan::ActionId(99));
    let err = Executor::new(&fake, &store, &lock)
        .apply(&pl, &p, State::new("lab"))
        .unwrap_err();
    assert!(matches!(err, ApplyError::BadPlan(_)));
}

/// Two running Xen hosts on this machine, and a fake with a second server,
/// `server-b`, to move them to.
fn two_servers() -> (tempfile::TempDir, StateStore, Fake, DesiredProject) {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake {
        servers: BTreeMap::from([("server-b".to_string(), FakeHv::default())]),
        ..Default::default()
    };
    let mut p = lab(2);
    for h in p.hosts.values_mut() {
        h.platform = Platform::Xen;
    }
    let out = up(&store, &fake, &p, Goal::Up).unwrap();
    assert!(out.report.unwrap().is_success());
    assert_eq!(fake.hv.names(), vec!["lab.h0", "lab.h1"]);
    (root, store, fake, p)
}

/// `p` with h0 on `server-b` and smaller: a live move, then a live memory
/// change that waits for it.
fn h0_to_server_b(p: &DesiredProject) -> DesiredProject {
    let mut p = p.clone();
    let h0 = p.hosts.get_mut("h0").unwrap();
    h0.service_host = Some("server-b".into());
    h0.memory = 32 << 20;
    p
}

fn server_b(fake: &Fake) -> &FakeHv {
    &fake.servers["server-b"]
}

#[test]
fn a_live_move_the_backend_cannot_migrate_moves_cold() {
    let (_root, store, fake, p) = two_servers();
    *fake.migrate_error.lock().unwrap() = Some(unsupported());
    let v2 = h0_to_server_b(&p);
    let out = up(&store, &fake, &v2, Goal::Upgrade).unwrap();
    let ops: Vec<&Op> = out.plan.actions.iter().map(|a| &a.op).collect();
    assert!(
        ops.iter()
            .any(|op| matches!(op, Op::Move { host, live: true, .. } if host == "h0")),
        "{}",
        out.plan.render_actions()
    );
    let report = out.report.unwrap();
    assert!(report.is_success(), "{report:?}");
    let moved = || between(&p.hosts["h0"], &v2.hosts["h0"]);
    // Live first, then cold: stopped here, disks carried, started there.
    assert_eq!(*fake.migrations.lock().unwrap(), vec![moved()]);
    assert_eq!(*fake.moved_disks.lock().unwrap(), vec![moved()]);
    assert_eq!(fake.hv.names(), vec!["lab.h1"]);
    assert_eq!(server_b(&fake).names(), vec!["lab.h0"]);
    let info = server_b(&fake).info("lab.h0").unwrap();
    assert_eq!(info.state, DomainState::Running);
    assert_eq!(info.memory, 32 << 20);
    // The state names the new server, with the domain running there.
    let st = store.load().unwrap().unwrap();
    let h0 = &st.hosts["h0"];
    assert_eq!(h0.spec.service_host.as_deref(), Some("server-b"));
    assert_eq!(h0.spec.memory, 32 << 20);
    assert!(h0.config_ready);
    assert!(h0.domain.as_ref().is_some_and(|d| d.started), "{h0:?}");
    assert_eq!(st.hosts["h1"].spec.service_host, None);
    // Observed from both servers, the project is where it should be.
    let again = up(&store, &fake, &v2, Goal::Upgrade).unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan.render_actions());
}

#[test]
fn a_live_move_whose_migration_fails_fails_and_does_not_go_cold() {
    let (_root, store, fake, p) = two_servers();
    *fake.migrate_error.lock().unwrap() = Some(Error::Backend {
        what: "lab.h0".into(),
        message: "migration stream broke".into(),
    });
    let v2 = h0_to_server_b(&p);
    let out = up(&store, &fake, &v2, Goal::Upgrade).unwrap();
    let report = out.report.unwrap();
    let op_of = |id: &crate::plan::ActionId| out.plan.action(*id).unwrap().op.clone();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let failed = &report.failed[0];
    assert!(
        matches!(out.plan.action(failed.action).unwrap().op, Op::Move { ref host, live: true, .. } if host == "h0"),
        "{report:?}"
    );
    assert!(
        failed.error.contains("migration stream broke"),
        "{}",
        failed.error
    );
    // What waits for the move (the memory change) did not run.
    let not_run: Vec<Op> = report.not_run.iter().map(op_of).collect();
    assert!(
        not_run
            .iter()
            .any(|op| matches!(op, Op::SetMemory { host, .. } if host == "h0")),
        "{not_run:?}"
    );
    // Tried live once, never cold: h0 runs where it was, untouched.
    assert_eq!(fake.migrations.lock().unwrap().len(), 1);
    assert!(fake.moved_disks.lock().unwrap().is_empty());
    assert_eq!(fake.hv.names(), vec!["lab.h0", "lab.h1"]);
    let info = fake.hv.info("lab.h0").unwrap();
    assert_eq!(info.state, DomainState::Running);
    assert_eq!(info.memory, 64 << 20);
    assert!(server_b(&fake).names().is_empty());
    let st = store.load().unwrap().unwrap();
    let h0 = &st.hosts["h0"];
    assert_eq!(h0.spec.service_host, None);
    assert_eq!(h0.spec.memory, 64 << 20);
    assert!(h0.domain.is_some());
}

/// A plugins folder with one program, `guard`, whose shell `body` runs
/// with the point as `$1` (its request read first).
fn guard_plugin(dir: &Path, body: &str) -> crate::plugin::Plugins {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("guard");
    std::fs::write(&p, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    crate::plugin::Plugins::discover(&crate::plugin::PluginFolders {
        given: vec![dir.to_path_buf()],
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn plugins_add_to_guests_hear_of_builds_and_can_refuse_a_remove() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::open(root.path(), "lab").unwrap();
    let fake = Fake::default();
    let built = root.path().join("built");
    let plugins = guard_plugin(
        root.path(),
        &format!(
            r#"case "$1" in
guest_config) printf '{{"files":[{{"path":"/etc/role","content":"%s\\n"}}],"startup":["echo hi"]}}' "$MLN_HOST" ;;
built) echo "$MLN_PROJECT" >> '{}' ;;
removing) echo 'the backup of lab is still running' >&2; exit 1 ;;
esac"#,
            built.display()
        ),
    );
    let checked = crate::load_str(
        "lab.mln",
        "global { project lab }\nswitch lan { }\nhost h0 { network eth0 { switch lan } }\n",
    )
    .unwrap();
    let run = |goal| {
        Run::new(store.clone(), &fake, RunOptions::new(goal))
            .project(checked.project())
            .plugins(&plugins)
            .run()
    };
    let out = run(Goal::Up).unwrap();
    assert!(out.report.unwrap().is_success());
    let recorded = store.load().unwrap().unwrap().desired.unwrap();
    let guest = &recorded.hosts["h0"].guest;
    assert_eq!(guest.written[0].content, "h0\n");
    assert_eq!(guest.plugin_startup, ["echo hi"]);
    assert_eq!(std::fs::read_to_string(&built).unwrap(), "lab\n");
    // The same answers again: nothing to do, and nothing built.
    assert!(run(Goal::Up).unwrap().plan.is_empty());
    assert_eq!(std::fs::read_to_string(&built).unwrap(), "lab\n");
    // A stop calls no plugin, and keeps what they added on record.
    assert!(run(Goal::Stop).unwrap().report.unwrap().is_success());
    let recorded = store.load().unwrap().unwrap().desired.unwrap();
    assert_eq!(recorded.hosts["h0"].guest.written[0].content, "h0\n");
    assert!(run(Goal::Up).unwrap().report.unwrap().is_success());
    assert_eq!(std::fs::read_to_string(&built).unwrap(), "lab\nlab\n");
    let e = run(Goal::Remove).unwrap_err();
    assert!(matches!(e, ApplyError::Plugin(_)), "{e}");
    assert!(
        e.to_string()
            .contains("plugin guard at removing failed (exit status: 1): the backup"),
        "{e}"
    );
    assert_eq!(fake.hv.names(), ["lab.h0"]);
    assert!(store.load().unwrap().is_some());
}
