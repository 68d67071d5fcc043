//! Planner behaviour on hand-built projects.

use std::time::Duration;

use mln_core::{DomainInfo, DomainState};

use super::recorded::{DomainRecord, HostRecord, State, SwitchRecord};
use super::*;

fn host(name: &str, mem_mb: u64, sw: &str, project: &str) -> HostSpec {
    let mut h = HostSpec::new(name);
    h.platform = Platform::Xen;
    h.memory = mem_mb << 20;
    h.service_host = Some("server-a".into());
    h.interfaces.push(HostInterface {
        name: "eth0".into(),
        switch: Some(sw.into()),
        bridge: None,
        mac: derived_mac(project, name, "eth0"),
        address: None,
        netmask: None,
        gateway: None,
    });
    h
}

/// v1.mln of the upgrade sample, as the planner sees it.
fn shop_v1() -> DesiredProject {
    let mut p = DesiredProject::new("shop");
    p.add_switch(SwitchSpec::new("net"));
    for n in ["front", "api", "batch"] {
        p.add_host(host(n, 128, "net", "shop"));
    }
    p
}

/// v2.mln: api 256M, batch on server-b, cache new.
fn shop_v2() -> DesiredProject {
    let mut p = shop_v1();
    p.hosts.get_mut("api").unwrap().memory = 256 << 20;
    p.hosts.get_mut("batch").unwrap().service_host = Some("server-b".into());
    p.add_host(host("cache", 128, "net", "shop"));
    p
}

/// The state and observation of `p` after a complete `up`.
fn running(p: &DesiredProject) -> (State, Observed) {
    let mut st = State::new(&p.name);
    let mut obs = Observed::default();
    for (id, h) in p.hosts.values().enumerate() {
        let max = h.memory * HEADROOM;
        let mut r = HostRecord::new(h.clone());
        r.disk_ready = true;
        r.config_ready = true;
        r.domain = Some(DomainRecord {
            name: domain_name(&p.name, &h.name),
            backend: h.platform.backend().unwrap(),
            id: id as u32 + 1,
            max_memory: max,
            max_vcpus: h.vcpus * HEADROOM as u32,
            started: true,
        });
        st.hosts.insert(h.name.clone(), r);
        obs.domains.insert(
            h.name.clone(),
            ObservedDomain {
                service_host: h.service_host.clone(),
                info: DomainInfo {
                    name: domain_name(&p.name, &h.name),
                    id: id as u32 + 1,
                    backend: h.platform.backend().unwrap(),
                    state: DomainState::Running,
                    memory: h.memory,
                    max_memory: max,
                    vcpus: h.vcpus,
                    cpu_time: Duration::ZERO,
                },
            },
        );
    }
    for s in p.switches.values() {
        st.switches.insert(
            s.name.clone(),
            SwitchRecord {
                spec: s.clone(),
                socket: None,
                bridge: Some(s.name.clone()),
                pid: None,
            },
        );
        obs.switches.insert(
            s.name.clone(),
            ObservedSwitch {
                service_host: s.service_host.clone(),
                up: true,
            },
        );
    }
    st.desired = Some(p.clone());
    (st, obs)
}

fn ops(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(|a| a.op.describe()).collect()
}

/// Every dependency points at an action of the plan, and there is no cycle
/// (ids are a topological order once sorted by a depth-first walk).
fn assert_acyclic(plan: &Plan) {
    let n = plan.actions.len();
    let mut state = vec![0u8; n];
    fn visit(p: &Plan, i: usize, st: &mut [u8]) {
        assert_ne!(st[i], 1, "cycle through {}", p.actions[i].op.describe());
        if st[i] == 2 {
            return;
        }
        st[i] = 1;
        for d in &p.actions[i].after {
            assert!(d.0 < p.actions.len());
            visit(p, d.0, st);
        }
        st[i] = 2;
    }
    for i in 0..n {
        visit(plan, i, &mut state);
    }
}

#[test]
fn upgrade_v1_to_v2_is_api_live_batch_move_cache_create_front_untouched() {
    let (st, obs) = running(&shop_v1());
    let plan = plan(
        &shop_v2(),
        Some(&st),
        &obs,
        &PlanOptions::new(Goal::Upgrade),
    );
    assert_acyclic(&plan);
    let kinds: Vec<(&str, HostChangeKind)> = plan
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("api", HostChangeKind::Update(ChangeClass::Live)),
            ("batch", HostChangeKind::Move),
            ("cache", HostChangeKind::Create),
        ]
    );
    assert!(plan.host("front").is_none());
    assert!(plan.switches.is_empty());
    let api = plan.host("api").unwrap();
    assert_eq!(api.changes.len(), 1);
    assert_eq!(api.changes[0].attr, "memory");
    let batch = plan.host("batch").unwrap();
    assert_eq!(batch.to.as_deref(), Some("server-b"));
    assert_eq!(batch.links[0].switch, "net");
    assert_eq!(batch.links[0].peers, vec!["api", "cache", "front"]);
    assert_eq!(
        ops(&plan),
        vec![
            "set memory of api to 256M",
            "move batch to server-b (live)",
            "prepare disk of cache",
            "write guest configuration of cache",
            "create domain cache",
            "start cache",
        ]
    );
    assert!(plan.actions.iter().all(|a| a.op.host() != Some("front")));
    let text = plan.render_diff();
    assert!(text.contains("~ host api update live"), "{text}");
    assert!(text.contains("memory: 128M → 256M (live)"), "{text}");
    assert!(
        text.contains("→ host batch move server-a → server-b"),
        "{text}"
    );
    assert!(text.contains("+ host cache create"), "{text}");
    assert!(!text.contains("host front"), "{text}");
    assert!(text.contains("(live)\n      service_host"), "{text}");
    assert!(
        text.contains("Plan: 1 to create, 1 to update, 0 to rebuild, 1 to move, 0 to destroy"),
        "{text}"
    );
    let back: Plan = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn memory_beyond_the_ceiling_restarts_instead() {
    let (st, obs) = running(&shop_v1());
    let mut p = shop_v1();
    p.hosts.get_mut("api").unwrap().memory = 1 << 30;
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Upgrade));
    assert_eq!(
        plan.host("api").unwrap().kind,
        HostChangeKind::Update(ChangeClass::Restart)
    );
    assert_eq!(
        ops(&plan),
        vec!["write guest configuration of api", "restart api"]
    );
}

#[test]
fn rebuild_carries_link_effects_and_keeps_macs() {
    let (st, obs) = running(&shop_v1());
    let mut p = shop_v1();
    p.hosts.get_mut("front").unwrap().template = Some("debian-12".into());
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Upgrade));
    let front = plan.host("front").unwrap();
    assert_eq!(front.kind, HostChangeKind::Rebuild);
    assert_eq!(front.links[0].peers, vec!["api", "batch"]);
    assert_eq!(ops(&plan), vec!["rebuild front"]);
    assert!(
        plan.render_diff()
            .contains("what the guest wrote on it is lost"),
        "{}",
        plan.render_diff()
    );
    // The rebuilt host keeps its MAC: it comes from the spec, not the run.
    assert_eq!(
        p.hosts["front"].interfaces[0].mac,
        st.hosts["front"].spec.interfaces[0].mac
    );
}

#[test]
fn fresh_rebuilds_the_selected_hosts_and_keeps_their_run_state() {
    let p = shop_v1();
    let (st, mut obs) = running(&p);
    // batch was stopped: reset, it stays stopped.
    obs.domains.remove("batch");
    let mut options = PlanOptions::new(Goal::Upgrade).only(["api", "batch"]);
    options.fresh = true;
    let plan = plan(&p, Some(&st), &obs, &options);
    assert_eq!(ops(&plan), vec!["rebuild api", "rebuild batch"]);
    assert!(plan.actions.iter().any(|a| a.op
        == Op::Rebuild {
            host: "api".into(),
            start: true
        }));
    assert!(plan.actions.iter().any(|a| a.op
        == Op::Rebuild {
            host: "batch".into(),
            start: false
        }));
    assert!(plan.host("front").is_none(), "front was not asked for");
    let text = plan.render_diff();
    assert!(
        text.contains("disks: as the guest left them → fresh from the template"),
        "{text}"
    );
}

#[test]
fn a_larger_disk_restarts_the_host_a_smaller_one_rebuilds_it_and_says_so() {
    let (st, obs) = running(&shop_v1());
    let mut p = shop_v1();
    p.hosts.get_mut("front").unwrap().disk_size = Some(2 << 30);
    let grow = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Upgrade));
    assert_eq!(
        grow.host("front").unwrap().kind,
        HostChangeKind::Update(ChangeClass::Restart)
    );
    assert!(!grow.render_diff().contains("is lost"));
    let (st2, obs2) = running(&p);
    let mut smaller = p.clone();
    smaller.hosts.get_mut("front").unwrap().disk_size = Some(1 << 30);
    let shrink = plan(
        &smaller,
        Some(&st2),
        &obs2,
        &PlanOptions::new(Goal::Upgrade),
    );
    assert_eq!(shrink.host("front").unwrap().kind, HostChangeKind::Rebuild);
    let text = shrink.render_diff();
    assert!(text.contains("size: 2G → 1G (rebuild)"), "{text}");
    assert!(
        text.contains("what the guest wrote on it is lost"),
        "{text}"
    );
}

#[test]
fn a_recreated_switch_replugs_its_running_members() {
    let (st, obs) = running(&shop_v1());
    let mut p = shop_v1();
    p.switches.get_mut("net").unwrap().hub = true;
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Upgrade));
    assert_acyclic(&plan);
    assert_eq!(plan.switches[0].kind, SwitchChangeKind::Recreate);
    assert_eq!(plan.switches[0].replugged, vec!["api", "batch", "front"]);
    assert!(plan.render_diff().contains("re-plugs api, batch, front"));
    assert_eq!(
        ops(&plan),
        vec![
            "remove switch net",
            "create switch net",
            "re-plug api.eth0 into net",
            "re-plug batch.eth0 into net",
            "re-plug front.eth0 into net",
        ]
    );
    assert!(plan.actions[2..]
        .iter()
        .all(|a| a.after == vec![ActionId(1)]));
}

#[test]
fn up_from_nothing_creates_switch_first_and_starts_in_boot_order() {
    let mut p = shop_v1();
    p.hosts.get_mut("front").unwrap().boot_order = 10;
    p.hosts.get_mut("api").unwrap().boot_order = 5;
    let plan = plan(&p, None, &Observed::default(), &PlanOptions::new(Goal::Up));
    assert_acyclic(&plan);
    let id_of = |d: &str| {
        plan.actions
            .iter()
            .find(|a| a.op.describe() == d)
            .unwrap()
            .id
    };
    let after = |d: &str| plan.actions[id_of(d).0].after.clone();
    assert!(after("create domain api").contains(&id_of("create switch net")));
    assert!(after("start front").contains(&id_of("start api")));
    assert!(after("start batch").contains(&id_of("start front")));
    assert!(!after("start batch").contains(&id_of("start api")));
    assert_eq!(plan.counts().create, 4);
}

#[test]
fn build_prepares_and_starts_nothing() {
    let plan = plan(
        &shop_v1(),
        None,
        &Observed::default(),
        &PlanOptions::new(Goal::Build),
    );
    assert!(plan
        .actions
        .iter()
        .all(|a| matches!(a.op, Op::PrepareDisk { .. } | Op::WriteGuestConfig { .. })));
    assert!(plan.switches.is_empty());
}

#[test]
fn stop_stops_in_reverse_boot_order_then_removes_switches() {
    let mut p = shop_v1();
    p.hosts.get_mut("api").unwrap().boot_order = 5;
    let (st, obs) = running(&p);
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Stop));
    assert_acyclic(&plan);
    let id_of = |d: &str| {
        plan.actions
            .iter()
            .find(|a| a.op.describe() == d)
            .unwrap()
            .id
    };
    let after = |d: &str| plan.actions[id_of(d).0].after.clone();
    assert!(after("stop api").contains(&id_of("stop front")));
    let rm = after("remove switch net");
    for h in ["api", "batch", "front"] {
        assert!(rm.contains(&id_of(&format!("stop {h}"))));
    }
    assert!(plan.hosts.iter().all(|h| h.kind == HostChangeKind::Stop));
}

#[test]
fn remove_takes_everything_away() {
    let (st, obs) = running(&shop_v1());
    let plan = plan(&shop_v1(), Some(&st), &obs, &PlanOptions::new(Goal::Remove));
    assert_acyclic(&plan);
    assert_eq!(plan.counts().destroy, 4);
    assert_eq!(
        plan.actions
            .iter()
            .filter(|a| matches!(a.op, Op::RemoveDisk { .. }))
            .count(),
        3
    );
}

#[test]
fn up_again_when_everything_runs_is_empty() {
    let (st, obs) = running(&shop_v1());
    let plan = plan(&shop_v1(), Some(&st), &obs, &PlanOptions::new(Goal::Up));
    assert!(plan.is_empty(), "{}", plan.render_actions());
}

#[test]
fn after_a_crash_a_created_unrecorded_domain_is_started_not_duplicated() {
    // The executor died after `create domain api` but before recording it:
    // the disk and config are recorded, the domain exists (paused).
    let p = shop_v1();
    let (mut st, mut obs) = running(&p);
    st.hosts.get_mut("api").unwrap().domain = None;
    obs.domains.get_mut("api").unwrap().info.state = DomainState::Paused;
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Up));
    assert_eq!(ops(&plan), vec!["start api"]);
    assert_eq!(plan.host("api").unwrap().kind, HostChangeKind::Repair);
}

#[test]
fn after_a_crash_leftovers_nobody_recorded_are_destroyed() {
    let p = shop_v1();
    let (_, mut obs) = running(&p);
    // State lost, domains and switch still there.
    obs.domains.retain(|k, _| k == "api");
    let plan = plan(&p, None, &obs, &PlanOptions::new(Goal::Up));
    assert_acyclic(&plan);
    let o = ops(&plan);
    assert_eq!(o.iter().filter(|d| d.contains("create domain")).count(), 3);
    let destroy = o.iter().position(|d| d == "destroy domain api").unwrap();
    let create = plan
        .actions
        .iter()
        .find(|a| a.op.describe() == "create domain api")
        .unwrap();
    // The new domain waits for the old one to go: never two at once.
    let mut seen = create.after.clone();
    let mut found = false;
    while let Some(id) = seen.pop() {
        found |= id.0 == destroy;
        seen.extend(plan.actions[id.0].after.iter().copied());
    }
    assert!(found);
    // The switch is up but unrecorded: it is adopted (the backend finds it
    // running) and recorded, not started twice.
    assert_eq!(o.iter().filter(|d| *d == "create switch net").count(), 1);
    assert_eq!(plan.switches[0].reason, "left running unrecorded: adopted");
    assert!(!o.iter().any(|d| d == "remove switch net"));
}

#[test]
fn a_dead_domain_is_torn_down_before_restart() {
    let p = shop_v1();
    let (st, mut obs) = running(&p);
    obs.domains.get_mut("front").unwrap().info.state = DomainState::Crashed;
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Up));
    assert_eq!(
        ops(&plan),
        vec!["destroy domain front", "create domain front", "start front"]
    );
}

#[test]
fn a_switch_found_down_is_recreated_and_members_replugged() {
    let p = shop_v1();
    let (st, mut obs) = running(&p);
    obs.switches.get_mut("net").unwrap().up = false;
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Up));
    assert_eq!(plan.switches[0].kind, SwitchChangeKind::Recreate);
    assert_eq!(
        plan.actions
            .iter()
            .filter(|a| matches!(a.op, Op::Replug { .. }))
            .count(),
        3
    );
}

#[test]
fn host_filter_limits_the_plan() {
    let plan = plan(
        &shop_v1(),
        None,
        &Observed::default(),
        &PlanOptions::new(Goal::Up).only(["api"]),
    );
    assert!(plan
        .actions
        .iter()
        .all(|a| a.op.host().is_none_or(|h| h == "api")));
    assert_eq!(plan.hosts.len(), 1);
}

#[test]
fn uml_move_is_cold() {
    let mut v1 = shop_v1();
    for h in v1.hosts.values_mut() {
        h.platform = Platform::Uml;
    }
    let (st, obs) = running(&v1);
    let mut v2 = v1.clone();
    v2.hosts.get_mut("batch").unwrap().service_host = Some("server-b".into());
    let plan = plan(&v2, Some(&st), &obs, &PlanOptions::new(Goal::Upgrade));
    assert!(matches!(
        plan.actions[0].op,
        Op::Move {
            live: false,
            start: true,
            ..
        }
    ));
    assert!(plan.render_diff().contains("(cold)"));
}

#[test]
fn hooks_run_around_starts() {
    let mut p = shop_v1();
    p.hooks
        .insert(HookPoint::BeforeHostsStart, vec!["echo before".into()]);
    p.hooks
        .insert(HookPoint::AfterProjectStart, vec!["echo after".into()]);
    let plan = plan(&p, None, &Observed::default(), &PlanOptions::new(Goal::Up));
    assert_acyclic(&plan);
    let hook = |pt: HookPoint| {
        plan.actions
            .iter()
            .find(|a| a.op == Op::RunHook { point: pt })
            .unwrap()
            .id
    };
    let before = hook(HookPoint::BeforeHostsStart);
    let after = hook(HookPoint::AfterProjectStart);
    for a in &plan.actions {
        if let Op::Start { .. } = a.op {
            assert!(a.after.contains(&before));
            assert!(plan.actions[after.0].after.contains(&a.id));
        }
    }
}

#[test]
fn after_a_crash_between_create_and_start_the_domain_is_started() {
    // Recorded as created, never let run: the domain waits paused.
    let p = shop_v1();
    let (mut st, mut obs) = running(&p);
    st.hosts
        .get_mut("api")
        .unwrap()
        .domain
        .as_mut()
        .unwrap()
        .started = false;
    obs.domains.get_mut("api").unwrap().info.state = DomainState::Paused;
    let plan = plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Up));
    assert_eq!(ops(&plan), vec!["start api"]);
    // A domain paused on purpose after it ran is left alone.
    st.hosts
        .get_mut("api")
        .unwrap()
        .domain
        .as_mut()
        .unwrap()
        .started = true;
    let plan = super::plan(&p, Some(&st), &obs, &PlanOptions::new(Goal::Up));
    assert!(plan.is_empty());
}

#[test]
fn a_switch_is_sized_for_its_interfaces_and_made_again_only_when_too_small() {
    let mut text = String::from("global { project big }\nswitch lan {\n}\n");
    for i in 0..50 {
        text.push_str(&format!("host h{i} {{ network eth0 {{ switch lan }} }}\n"));
    }
    let checked = crate::load_str("big.mln", &text).unwrap_or_else(|r| panic!("{r}"));
    let desired = DesiredProject::from_project(checked.project());
    let lan = &desired.switches["lan"];
    assert_eq!(lan.ports, 112, "50 interfaces, twice over, in steps of 16");

    // Recorded with vde_switch's default of 32 ports: too small, made again.
    let mut small = lan.clone();
    small.ports = 0;
    assert!(lan.needs_recreate_from(&small));
    // Recorded with more ports than needed, or exactly these: kept.
    let mut roomy = lan.clone();
    roomy.ports = 256;
    assert!(!lan.needs_recreate_from(&roomy));
    assert!(!lan.needs_recreate_from(lan));
    // Another setting changed: made again whatever its ports.
    roomy.hub = true;
    assert!(lan.needs_recreate_from(&roomy));
}
