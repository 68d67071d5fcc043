//! `upgrade` moving a running Xen guest to another server, on real Xen,
//! through the real executor, `ClusterBackends` and the real agent code
//! (`mln_lang::agent::Agent`, its JSON lines and its `export-disks`,
//! `import-disks`, `migrate-send`, `migrate-receive` jobs), no double.
//!
//! Runs inside the dom0 that `cargo xtask xen-test` boots under QEMU; on
//! any other machine it says why it is skipped and passes.
//!
//! Two "servers" on the one dom0, each with its own state folder, reached
//! through a stand-in for ssh that runs the agent, which is this test
//! binary itself (`agent_process`; see `xen_lab::StandIn`).
//!
//! The servers' disks are separate files, so the move is cold (the mark
//! of `ClusterBackends::migrate` is not seen on the new server): the
//! guest stops, its qcow2 overlay and configuration disk are carried and
//! rebased, and it boots again on server-b under the same name. Its
//! console shows the second boot.

#![cfg(feature = "xen")]

mod xen_lab;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mln_core::{DomainState, Hypervisor};
use mln_lang::apply::{run, ClusterBackends, LocalBackends, NoProgress, Outcome, RunOptions};
use mln_lang::model::Project;
use mln_lang::plan::{Goal, Op};
use mln_lang::state::StateStore;
use xen_lab::{applied, console_log, domains_of, eventually, xen, Cleanup, StandIn};

const PROJECT: &str = "xenmv";
const DOMAIN: &str = "xenmv.web";

/// Not a test: the agent, when the stand-in ssh runs this binary as one.
#[test]
fn agent_process() {
    xen_lab::serve_agent_if_asked();
}

struct Lab(StandIn);

impl Lab {
    fn new() -> Lab {
        Lab(StandIn::new())
    }

    fn project(&self, server: &str) -> Project {
        let kernel = xen_lab::guest_kernel();
        let ramdisk = xen_lab::guest_ramdisk();
        let text = format!(
            "global {{\n    project {PROJECT}\n}}\n\
             host web {{\n    xen\n    memory 128M\n    kernel {kernel}\n    \
             ramdisk {ramdisk}\n    extra console=hvc0\n    service_host {server}\n}}\n"
        );
        mln_lang::load_str("xen_move.mln", &text)
            .unwrap_or_else(|r| panic!("{}", r.render(false)))
            .project()
            .clone()
    }

    /// Plan and apply `goal` towards `project` as `mln` would, over
    /// `ClusterBackends`.
    fn apply(&self, goal: Goal, project: Option<&Project>) -> Outcome {
        let store = StateStore::open(self.0.dir.path().join("state"), PROJECT).expect("state");
        let local = LocalBackends::new(store.dir())
            .expect("local backends")
            .with_default_template(self.0.template.clone());
        let desired = project.map(mln_lang::plan::DesiredProject::from_project);
        let recorded = store.load().ok().flatten();
        let b = ClusterBackends::new(PROJECT, local, self.0.access.clone())
            .with_servers(desired.as_ref(), recorded.as_ref());
        let mut o = RunOptions::new(goal);
        o.stop_timeout = Duration::from_secs(60);
        let out = run(store, &b, project, &o, &NoProgress).expect("apply");
        applied(&out);
        out
    }

    fn disk(&self, server: &str) -> PathBuf {
        self.0.project_dir(server, PROJECT).join("disks/web.qcow2")
    }
}

/// The names the web guest has, before, during and after a move.
const DOMAINS: &[&str] = &[DOMAIN, "xenmv.web--incoming", "xenmv.web--migratedaway"];

#[test]
fn upgrade_moves_a_running_xen_guest_to_another_server_cold_when_disks_are_not_shared() {
    let Some(x) = xen("upgrade_moves_a_running_xen_guest_to_another_server") else {
        return;
    };
    let _cleanup = Cleanup::new(&x, DOMAINS);
    let started = Instant::now();
    let lab = Lab::new();

    let out = lab.apply(Goal::Up, Some(&lab.project("server-a")));
    assert_eq!(
        out.report
            .as_ref()
            .map(|r| r.state.hosts["web"].spec.service_host.clone()),
        Some(Some("server-a".to_string()))
    );
    eventually("web prints GUEST-ALIVE", || {
        console_log(DOMAIN).contains("GUEST-ALIVE")
    });
    let before = x.info(DOMAIN).expect("web runs");
    assert_eq!(before.state, DomainState::Running);
    assert!(lab.disk("server-a").exists());
    eprintln!("[{:.0?}] up on server-a: {before:?}", started.elapsed());

    let out = lab.apply(Goal::Upgrade, Some(&lab.project("server-b")));
    let moves: Vec<&Op> = out
        .plan
        .actions
        .iter()
        .map(|a| &a.op)
        .filter(|op| matches!(op, Op::Move { .. }))
        .collect();
    assert!(
        matches!(moves[..], [Op::Move { live: true, .. }]),
        "{}",
        out.plan.render_actions()
    );
    let report = out.report.as_ref().expect("applied");
    assert_eq!(
        report.state.hosts["web"].spec.service_host.as_deref(),
        Some("server-b")
    );
    let after = x.info(DOMAIN).expect("web runs after the move");
    eprintln!("[{:.0?}] moved to server-b: {after:?}", started.elapsed());
    assert_eq!(after.state, DomainState::Running);
    assert_ne!(after.id, before.id);
    // Cold: the disks were carried and the old server's copy is gone.
    assert!(lab.disk("server-b").exists());
    assert!(!lab.disk("server-a").exists());
    let recorded = report.state.hosts["web"].domain.as_ref().map(|d| d.id);
    assert_eq!(recorded, Some(after.id));
    // The guest booted again (a cold move), and runs.
    eventually("web boots again on server-b", || {
        console_log(DOMAIN).matches("GUEST-ALIVE").count() >= 2
    });
    let t = x.info(DOMAIN).expect("info").cpu_time;
    eventually("web runs on server-b", || {
        x.info(DOMAIN).is_ok_and(|i| i.cpu_time > t)
    });

    lab.apply(Goal::Remove, None);
    let left = domains_of(&x, PROJECT);
    assert!(left.is_empty(), "domains left after remove: {left:?}");
    assert!(!lab.disk("server-b").exists());
    eprintln!("[{:.0?}] removed", started.elapsed());
}
