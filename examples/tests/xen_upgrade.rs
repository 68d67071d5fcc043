//! `mln upgrade` of a guest's memory on real Xen, through the real
//! executor: `mln_lang::apply` with `LocalBackends::with_xen` on
//! `XenHypervisor`, no double anywhere.
//!
//! Runs inside the dom0 that `cargo xtask xen-test` boots under QEMU (real
//! Xen 4.17 and libxl); on any other machine it says why it is skipped and
//! passes. It lives in `examples` rather than `mln-lang` because only this
//! package turns on mln-core's `xen` feature by default.
//!
//! The project is two small PV hosts as the harness can boot them: the
//! Debian kernel with the harness's busybox ramdisk (`MLN_XEN_GUEST_KERNEL`,
//! `MLN_XEN_GUEST_RAMDISK`), no network interfaces (dom0 has no bridge).
//! Each still gets the disks `LocalBackends` makes for every Xen host, a
//! qcow2 overlay over a template and a raw configuration disk, attached
//! through libxl's qdisk and block backends; the guest runs from its
//! ramdisk and does not mount them.

#![cfg(feature = "xen")]

mod xen_lab;

use std::path::Path;
use std::time::{Duration, Instant};

use mln_core::template::Template;
use mln_core::xen::XenHypervisor;
use mln_core::{DomainInfo, DomainState, Hypervisor};
use mln_lang::apply::{ApplyReport, LocalBackends, NoProgress, Run, RunOptions, Session};
use mln_lang::model::Project;
use mln_lang::plan::{
    ChangeClass, DesiredProject, Goal, HostChangeKind, Op, PlanOptions, HEADROOM,
};
use mln_lang::state::StateStore;
use xen_lab::{
    applied, assert_success, console_log, domains_of, eventually, template, xen, Cleanup, MIB,
};

const PROJECT: &str = "xenup";
/// The host whose memory changes.
const RESIZED: &str = "xenup.resized";
/// The host nothing may touch.
const STEADY: &str = "xenup.steady";

/// The project with host `resized` at `memory` MiB; `steady` stays at 128.
fn project(memory: u64) -> Project {
    let kernel = xen_lab::guest_kernel();
    let ramdisk = xen_lab::guest_ramdisk();
    let text = format!(
        "global {{\n    project {PROJECT}\n}}\n\
         superclass pv {{\n    xen\n    memory 128M\n    kernel {kernel}\n    \
         ramdisk {ramdisk}\n    extra console=hvc0\n}}\n\
         host resized {{\n    superclass pv\n    memory {memory}M\n}}\n\
         host steady {{\n    superclass pv\n}}\n"
    );
    mln_lang::load_str("xen_upgrade.mln", &text)
        .unwrap_or_else(|r| panic!("{}", r.render(false)))
        .project()
        .clone()
}

fn backends(store: &StateStore, template: &Template) -> LocalBackends {
    let xen = XenHypervisor::connect().expect("a second libxl context");
    LocalBackends::new(store.dir())
        .expect("backends folder")
        .with_default_template(template.clone())
        .with_xen(Box::new(xen))
}

fn options(goal: Goal) -> RunOptions {
    let mut o = RunOptions::new(goal);
    o.stop_timeout = Duration::from_secs(60);
    o
}

/// Plan `Goal::Upgrade` towards `resized` at `to` MiB (from `from` MiB),
/// check that the plan is exactly one live memory change of `resized`,
/// apply that same plan under the same lock (what `mln upgrade` does after
/// asking), and return what it did.
fn upgrade_memory(root: &Path, template: &Template, from: u64, to: u64) -> ApplyReport {
    let store = StateStore::open(root, PROJECT).expect("state store");
    let b = backends(&store, template);
    let desired = DesiredProject::from_project(&project(to));
    let mut session = Session::open(store, &b, false).expect("lock the project");
    let plan = session
        .plan(&desired, &PlanOptions::new(Goal::Upgrade))
        .expect("plan");
    let shown = plan.render_diff();
    eprintln!("upgrade {from}M -> {to}M:\n{shown}");

    let summary: Vec<(&str, HostChangeKind)> = plan
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.kind))
        .collect();
    assert_eq!(
        summary,
        [("resized", HostChangeKind::Update(ChangeClass::Live))],
        "{shown}"
    );
    let changes: Vec<(&str, &str, &str, ChangeClass)> = plan.hosts[0]
        .changes
        .iter()
        .map(|c| (c.attr.as_str(), c.from.as_str(), c.to.as_str(), c.class))
        .collect();
    let (from_s, to_s) = (format!("{from}M"), format!("{to}M"));
    assert_eq!(
        changes,
        [("memory", from_s.as_str(), to_s.as_str(), ChangeClass::Live)],
        "{shown}"
    );
    assert!(plan.switches.is_empty(), "{shown}");
    // One balloon change and nothing else: no stop, restart, rebuild or
    // create of `resized`, nothing at all for `steady`.
    let ops: Vec<&Op> = plan.actions.iter().map(|a| &a.op).collect();
    assert_eq!(
        ops,
        [&Op::SetMemory {
            host: "resized".into(),
            from: from * MIB,
            to: to * MIB,
        }],
        "{}",
        plan.render_actions()
    );
    assert!(
        shown.contains(&format!("memory: {from}M → {to}M (live)")),
        "{shown}"
    );

    let report = session
        .apply(&plan, &desired, None, 4, &NoProgress)
        .expect("apply the upgrade");
    assert_success(&plan, &report);
    report
}

/// The disks libxl keeps in its configuration of running `domain` (`xl
/// list -l`), as JSON objects.
fn attached_disks(x: &XenHypervisor, domain: &str) -> Vec<serde_json::Value> {
    let json = x
        .domain_config(domain)
        .and_then(|mut c| c.to_json())
        .unwrap_or_else(|e| panic!("configuration of {domain}: {e}"));
    let cfg: serde_json::Value = serde_json::from_str(&json).expect("libxl's JSON");
    cfg["disks"].as_array().cloned().unwrap_or_default()
}

fn info(x: &XenHypervisor, domain: &str) -> DomainInfo {
    x.info(domain)
        .unwrap_or_else(|e| panic!("info {domain}: {e}"))
}

#[test]
fn upgrade_changes_a_running_xen_guests_memory_live_without_restarting_it() {
    let Some(x) = xen("upgrade_changes_a_running_xen_guests_memory_live_without_restarting_it")
    else {
        return;
    };
    let _cleanup = Cleanup::new(&x, &[RESIZED, STEADY]);
    let started = Instant::now();
    let root = tempfile::tempdir().expect("temporary folder");
    let template = template(root.path());

    // up: both hosts created from nothing and started through the executor.
    let store = StateStore::open(root.path(), PROJECT).expect("state store");
    let b = backends(&store, &template);
    let out = Run::new(store, &b, options(Goal::Up))
        .project(&project(128))
        .run()
        .expect("mln up");
    let report = applied(&out);
    assert_eq!(out.plan.hosts.len(), 2, "{}", out.plan.render_diff());
    for (host, rec) in &report.state.hosts {
        assert!(rec.domain.is_some(), "{host} has no recorded domain");
        // libxl's own record of the running domain has both disks.
        let disks = attached_disks(&x, &format!("{PROJECT}.{host}"));
        let recorded: Vec<(String, &str, &str)> = rec
            .disks
            .iter()
            .zip([("xvda", "qcow2"), ("xvdb", "raw")])
            .map(|(p, (vdev, format))| (p.display().to_string(), vdev, format))
            .collect();
        let attached: Vec<(String, &str, &str)> = disks
            .iter()
            .map(|d| {
                (
                    d["pdev_path"].as_str().unwrap_or_default().to_string(),
                    d["vdev"].as_str().unwrap_or_default(),
                    d["format"].as_str().unwrap_or("raw"),
                )
            })
            .collect();
        assert_eq!(attached, recorded, "{host}: {disks:?}");
    }
    drop(b);
    eprintln!("[{:.0?}] up done", started.elapsed());

    let resized = info(&x, RESIZED);
    let steady = info(&x, STEADY);
    eprintln!("up: {resized:?}\nup: {steady:?}");
    for d in [&resized, &steady] {
        assert_eq!(d.state, DomainState::Running, "{d:?}");
        // LocalBackends leaves room to grow live: maxmem = memory × HEADROOM.
        assert!(
            (HEADROOM * 128 * MIB..=HEADROOM * 128 * MIB + 2 * MIB).contains(&d.max_memory),
            "{d:?}"
        );
    }
    assert_eq!(x.memory_target(RESIZED).expect("target"), 128 * MIB);
    // The balloon driver answers only once the guest's kernel is up.
    for d in [RESIZED, STEADY] {
        eventually(&format!("{d} prints GUEST-ALIVE"), || {
            console_log(d).contains("GUEST-ALIVE")
        });
    }

    // Lower `resized` within its maximum: live, same domain.
    let report = upgrade_memory(root.path(), &template, 128, 96);
    assert_eq!(report.state.hosts["resized"].spec.memory, 96 * MIB);
    let after = info(&x, RESIZED);
    assert_eq!(after.id, resized.id, "resized was restarted: {after:?}");
    assert_eq!(after.state, DomainState::Running);
    assert_eq!(x.memory_target(RESIZED).expect("target"), 96 * MIB);
    eventually("resized's balloon gives memory back to Xen", || {
        info(&x, RESIZED).memory <= 100 * MIB
    });
    eprintln!(
        "[{:.0?}] lowered: {:?}",
        started.elapsed(),
        info(&x, RESIZED)
    );

    // Raise it back: live again, same domain, the guest takes it back.
    let report = upgrade_memory(root.path(), &template, 96, 128);
    assert_eq!(report.state.hosts["resized"].spec.memory, 128 * MIB);
    assert_eq!(info(&x, RESIZED).id, resized.id, "resized was restarted");
    assert_eq!(x.memory_target(RESIZED).expect("target"), 128 * MIB);
    eventually("resized's balloon takes its memory back", || {
        info(&x, RESIZED).memory >= 124 * MIB
    });
    eprintln!(
        "[{:.0?}] raised: {:?}",
        started.elapsed(),
        info(&x, RESIZED)
    );

    // `steady` was never touched.
    let still = info(&x, STEADY);
    assert_eq!(
        (still.id, still.state),
        (steady.id, DomainState::Running),
        "{still:?}"
    );
    assert_eq!(x.memory_target(STEADY).expect("target"), 128 * MIB);

    // What is recorded is what runs: upgrading to the same project again
    // plans nothing.
    let store = StateStore::open(root.path(), PROJECT).expect("state store");
    let b = backends(&store, &template);
    let mut dry = options(Goal::Upgrade);
    dry.dry_run = true;
    let again = Run::new(store, &b, dry)
        .project(&project(128))
        .run()
        .expect("plan again");
    assert!(again.plan.is_empty(), "{}", again.plan.render_actions());

    // remove: no domain of the project is left, nor its state folder.
    let store = StateStore::open(root.path(), PROJECT).expect("state store");
    let dir = store.dir().to_path_buf();
    let out = Run::new(store, &b, options(Goal::Remove))
        .run()
        .expect("mln remove");
    applied(&out);
    let left = domains_of(&x, PROJECT);
    assert!(left.is_empty(), "domains left after remove: {left:?}");
    assert!(!dir.exists(), "{} still exists", dir.display());
    eprintln!("[{:.0?}] removed", started.elapsed());
}
