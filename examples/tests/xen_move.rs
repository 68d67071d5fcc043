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
//! Where the servers' disks are separate files, the move is cold (the
//! mark of `ClusterBackends::migrate` is not seen on the new server): the
//! guest stops, its qcow2 overlay and configuration disk are carried and
//! rebased, and it boots again on server-b under the same name. Its
//! console shows the second boot.
//!
//! Where both servers' disk folders are one folder (shared storage, as an
//! NFS mount on two servers would be: here two symlinks), the mark is
//! seen and the guest moves as `xl migrate` moves it: libxl's migration
//! stream from the agent's `migrate-send` on server-a to `migrate-receive`
//! on server-b, joined by the managing side. Live mode is tried first;
//! in the lab it fails (libxl: "domain did not respond to suspend
//! request", `ERROR_GUEST_TIMEDOUT`) with the guest left running, and
//! `ClusterBackends::migrate` sends the stream again with the guest
//! suspended for the transfer (`MLN_XEN_TEST_LOG=info` shows "live
//! migration refused, the guest runs on").
//! Both "servers" are the one dom0, so this is the save-and-restore
//! across the same dom0 variant of a migration (the lab has one Xen), not
//! one between two dom0s. The guest does not boot again.

#![cfg(feature = "xen")]

mod xen_lab;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mln_core::{DomainState, Hypervisor};
use mln_lang::apply::{ClusterBackends, LocalBackends, Outcome, Run, RunOptions};
use mln_lang::model::Project;
use mln_lang::plan::{Goal, Op};
use mln_lang::state::StateStore;
use xen_lab::{applied, console_log, domains_of, eventually, xen, Cleanup, StandIn};

/// The project whose disks the servers do not share (cold move).
const PROJECT: &str = "xenmv";
const DOMAIN: &str = "xenmv.web";
/// The project whose disks both servers see (migration stream); its own
/// name, as both tests run at once on the one Xen.
const SHARED: &str = "xenmvs";
const SHARED_DOMAIN: &str = "xenmvs.web";

/// Not a test: the agent, when the stand-in ssh runs this binary as one.
#[test]
fn agent_process() {
    xen_lab::serve_agent_if_asked();
}

struct Lab(StandIn, &'static str);

impl Lab {
    fn new(project: &'static str) -> Lab {
        Lab(StandIn::new(), project)
    }

    /// The lab with one folder of disks for `project` on every server:
    /// each server's `PROJECT/disks` is a symlink to `DIR/shared-disks`.
    fn with_shared_disks(project: &'static str, servers: &[&str]) -> Lab {
        let lab = Lab::new(project);
        let shared = lab.0.dir.path().join("shared-disks");
        std::fs::create_dir_all(&shared).expect("shared disks folder");
        for server in servers {
            let dir = lab.0.project_dir(server, project);
            std::fs::create_dir_all(&dir).expect("server's project folder");
            std::os::unix::fs::symlink(&shared, dir.join("disks"))
                .expect("symlink to the shared disks");
        }
        lab
    }

    fn project(&self, server: &str) -> Project {
        let kernel = xen_lab::guest_kernel();
        let ramdisk = xen_lab::guest_ramdisk();
        let text = format!(
            "global {{\n    project {PROJECT}\n}}\n\
             host web {{\n    xen\n    memory 128M\n    kernel {kernel}\n    \
             ramdisk {ramdisk}\n    extra console=hvc0\n    service_host {server}\n}}\n",
            PROJECT = self.1
        );
        mln_lang::load_str("xen_move.mln", &text)
            .unwrap_or_else(|r| panic!("{}", r.render(false)))
            .project()
            .clone()
    }

    /// Plan and apply `goal` towards `project` as `mln` would, over
    /// `ClusterBackends`.
    fn apply(&self, goal: Goal, project: Option<&Project>) -> Outcome {
        let store = StateStore::open(self.0.dir.path().join("state"), self.1).expect("state");
        let local = LocalBackends::new(store.dir())
            .expect("local backends")
            .with_default_template(self.0.template.clone());
        let desired = project.map(mln_lang::plan::DesiredProject::from_project);
        let recorded = store.load().ok().flatten();
        let b = ClusterBackends::new(self.1, local, self.0.access.clone())
            .with_servers(desired.as_ref(), recorded.as_ref());
        let mut o = RunOptions::new(goal);
        o.stop_timeout = Duration::from_secs(60);
        let out = {
            let run = Run::new(store, &b, o.clone());
            match project {
                Some(p) => run.project(p),
                None => run,
            }
            .run()
        }
        .expect("apply");
        applied(&out);
        out
    }

    fn disk(&self, server: &str) -> PathBuf {
        self.0.project_dir(server, self.1).join("disks/web.qcow2")
    }
}

/// `upgrade` with web's `service_host` changed to server-b: the plan has
/// one move, planned live, and the recorded state names server-b after.
fn upgrade_to_server_b(lab: &Lab) -> Outcome {
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
    out
}

/// The names the web guest of `project` has, before, during and after a
/// move.
fn domains(domain: &str) -> [String; 3] {
    [
        domain.to_string(),
        format!("{domain}--incoming"),
        format!("{domain}--migratedaway"),
    ]
}

#[test]
fn upgrade_moves_a_running_xen_guest_to_another_server_cold_when_disks_are_not_shared() {
    let Some(x) = xen("upgrade_moves_a_running_xen_guest_to_another_server") else {
        return;
    };
    let names = domains(DOMAIN);
    let _cleanup = Cleanup::new(&x, &names.each_ref().map(String::as_str));
    let started = Instant::now();
    let lab = Lab::new(PROJECT);

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

    let out = upgrade_to_server_b(&lab);
    let report = out.report.as_ref().expect("applied");
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

/// How many times the guest's init said it was alive, over every name the
/// guest has had (a restored guest's console may be logged under its
/// incoming name).
fn boots(domain: &str) -> usize {
    domains(domain)
        .iter()
        .map(|d| console_log(d).matches("GUEST-ALIVE").count())
        .sum()
}

#[test]
fn upgrade_migrates_a_running_xen_guest_to_a_server_that_shares_its_disks() {
    let Some(x) = xen("upgrade_migrates_a_running_xen_guest_to_a_server_that_shares_its_disks")
    else {
        return;
    };
    let names = domains(SHARED_DOMAIN);
    let _cleanup = Cleanup::new(&x, &names.each_ref().map(String::as_str));
    let started = Instant::now();
    let lab = Lab::with_shared_disks(SHARED, &["server-a", "server-b"]);

    lab.apply(Goal::Up, Some(&lab.project("server-a")));
    let up = Instant::now();
    eventually("web prints GUEST-ALIVE", || boots(SHARED_DOMAIN) >= 1);
    // How long a boot takes to show its marker here and now: a guest that
    // booted again after the move would have shown its second by twice that.
    let boot_time = up.elapsed();
    let before = x.info(SHARED_DOMAIN).expect("web runs");
    assert_eq!(before.state, DomainState::Running);
    let disk = lab.disk("server-a");
    let inode = std::fs::metadata(&disk).expect("web's disk").ino();
    assert_eq!(
        std::fs::metadata(lab.disk("server-b"))
            .map(|m| m.ino())
            .ok(),
        Some(inode),
        "server-b sees web's disk file itself"
    );
    eprintln!(
        "[{:.0?}] up on server-a: {before:?}, marker after {boot_time:.0?}",
        started.elapsed()
    );

    let out = upgrade_to_server_b(&lab);
    let moved = Instant::now();
    let report = out.report.as_ref().expect("applied");
    let after = x.info(SHARED_DOMAIN).expect("web runs after the move");
    eprintln!(
        "[{:.0?}] migrated to server-b: {after:?}",
        started.elapsed()
    );
    assert_eq!(after.state, DomainState::Running);
    assert_ne!(after.id, before.id, "a migrated guest is a new domain");
    let recorded = report.state.hosts["web"].domain.as_ref().map(|d| d.id);
    assert_eq!(recorded, Some(after.id));
    for name in &names[1..] {
        assert!(x.info(name).is_err(), "{name} is left over");
    }
    // Only memory travelled: the disk is the same file, not a copy.
    assert_eq!(
        std::fs::metadata(lab.disk("server-b"))
            .map(|m| m.ino())
            .ok(),
        Some(inode),
        "web's disk was replaced"
    );
    // The guest runs on in its memory: no second boot, not even after
    // twice the time its first boot took to show.
    let t = after.cpu_time;
    eventually("web runs on server-b", || {
        x.info(SHARED_DOMAIN).is_ok_and(|i| i.cpu_time > t)
    });
    let quiet = (2 * boot_time).max(Duration::from_secs(20));
    while moved.elapsed() < quiet {
        assert_eq!(boots(SHARED_DOMAIN), 1, "web booted again after the move");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(boots(SHARED_DOMAIN), 1, "web booted again after the move");
    assert_eq!(
        x.info(SHARED_DOMAIN).map(|i| i.id).ok(),
        Some(after.id),
        "web was restarted"
    );
    eprintln!(
        "[{:.0?}] still one boot {quiet:.0?} after the move",
        started.elapsed()
    );

    lab.apply(Goal::Remove, None);
    let left = domains_of(&x, SHARED);
    assert!(left.is_empty(), "domains left after remove: {left:?}");
    assert!(!disk.exists(), "{} left after remove", disk.display());
    eprintln!("[{:.0?}] removed", started.elapsed());
}
