//! The planner on the real sample files: `projects/upgrade/v1.mln` running
//! on Xen, upgraded to `v2.mln`.

use mln_lang::plan::{
    diff, plan, ChangeClass, DesiredProject, Goal, HostChangeKind, Observed, Op, PlanOptions,
};
use mln_lang::plan::{DomainRecord, HostRecord, State, SwitchRecord};

fn load(name: &str) -> DesiredProject {
    let path = format!("{}/../projects/{name}", env!("CARGO_MANIFEST_DIR"));
    let checked = mln_lang::load(&path).unwrap_or_else(|r| panic!("{}", r.render(false)));
    DesiredProject::from_project(checked.project())
}

#[test]
fn upgrade_v1_to_v2_is_exactly_api_live_batch_move_cache_create() {
    let v1 = load("upgrade/v1.mln");
    let v2 = load("upgrade/v2.mln");
    let p = diff(&v1, &v2, &PlanOptions::new(Goal::Upgrade)).unwrap();

    let summary: Vec<(&str, HostChangeKind)> =
        p.hosts.iter().map(|h| (h.host.as_str(), h.kind)).collect();
    assert_eq!(
        summary,
        vec![
            ("api", HostChangeKind::Update(ChangeClass::Live)),
            ("batch", HostChangeKind::Move),
            ("cache", HostChangeKind::Create),
        ],
        "{}",
        p.render_diff()
    );
    assert!(p.switches.is_empty());
    assert!(p.actions.iter().all(|a| a.op.host() != Some("front")));

    let api = p.host("api").unwrap();
    assert_eq!(api.changes.len(), 1);
    assert_eq!(
        (
            api.changes[0].attr.as_str(),
            api.changes[0].from.as_str(),
            api.changes[0].to.as_str()
        ),
        ("memory", "128M", "256M")
    );
    let batch = p.host("batch").unwrap();
    assert_eq!(batch.from.as_deref(), Some("server-a"));
    assert_eq!(batch.to.as_deref(), Some("server-b"));
    assert_eq!(batch.links.len(), 1);
    assert_eq!(batch.links[0].peers, vec!["api", "cache", "front"]);
    assert!(p.actions.iter().any(|a| matches!(
        &a.op,
        Op::Move { host, live: true, start: true, .. } if host == "batch"
    )));
    assert!(p.actions.iter().any(|a| matches!(
        &a.op,
        Op::SetMemory { host, to, .. } if host == "api" && *to == 256 << 20
    )));
    // MACs are the same in both versions of every host.
    for (name, h) in &v1.hosts {
        assert_eq!(h.interfaces[0].mac, v2.hosts[name].interfaces[0].mac);
    }

    let text = p.render_diff();
    for line in [
        "~ host api update live",
        "memory: 128M → 256M (live)",
        "→ host batch move server-a → server-b (live)",
        "+ host cache create on server-a",
        "Plan: 1 to create, 1 to update, 0 to rebuild, 1 to move, 0 to destroy",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    assert_eq!(json["hosts"][0]["kind"]["update"], "live");
    assert_eq!(json["actions"][0]["op"], "set_memory");
}

#[test]
fn every_sample_plans_up_from_nothing_without_cycles() {
    for name in [
        "lab.mln",
        "two-hosts.mln",
        "superclass.mln",
        "autoenum.mln",
        "multi-server.mln",
    ] {
        let d = load(name);
        let p = plan(&d, None, &Observed::default(), &PlanOptions::new(Goal::Up));
        assert_eq!(p.hosts.len(), d.hosts.len());
        assert!(p.hosts.iter().all(|h| h.kind == HostChangeKind::Create));
        for a in &p.actions {
            for dep in &a.after {
                assert!(dep.0 < p.actions.len(), "{name}: dangling dependency");
            }
        }
        // Up again with everything recorded running: nothing to do.
        let mut st = State::new(&d.name);
        for h in d.hosts.values() {
            let mut r = HostRecord::new(h.clone());
            r.disk_ready = true;
            r.config_ready = true;
            r.domain = Some(DomainRecord {
                name: format!("{}.{}", d.name, h.name),
                backend: mln_core_kind(h),
                id: 1,
                max_memory: h.memory,
                max_vcpus: h.vcpus,
                started: true,
            });
            st.hosts.insert(h.name.clone(), r);
        }
        for s in d.switches.values() {
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
        let again = plan(
            &d,
            Some(&st),
            &Observed::assume_recorded(&st),
            &PlanOptions::new(Goal::Up),
        );
        assert!(again.is_empty(), "{name}:\n{}", again.render_actions());
    }
}

fn mln_core_kind(h: &mln_lang::plan::HostSpec) -> mln_core::BackendKind {
    h.platform.backend().unwrap_or(mln_core::BackendKind::Uml)
}

#[test]
fn diff_of_two_files_needs_no_machine() {
    // `mln diff v1.mln v2.mln`: v2 planned against v1 as if v1 were up.
    let v1 = load("upgrade/v1.mln");
    let v2 = load("upgrade/v2.mln");
    let st = State::as_if_up(&v1);
    let p = plan(
        &v2,
        Some(&st),
        &Observed::assume_recorded(&st),
        &PlanOptions::new(Goal::Upgrade),
    );
    let kinds: Vec<HostChangeKind> = p.hosts.iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds,
        vec![
            HostChangeKind::Update(ChangeClass::Live),
            HostChangeKind::Move,
            HostChangeKind::Create
        ]
    );
}
