//! `upgrade` moving a running Xen guest to another server, on real Xen,
//! through the real executor, `ClusterBackends` and the real agent code
//! (`mln_lang::agent::Agent`, its JSON lines and its `export-disks`,
//! `import-disks`, `migrate-send`, `migrate-receive` jobs), no double.
//!
//! Runs inside the dom0 that `cargo xtask xen-test` boots under QEMU; on
//! any other machine it says why it is skipped and passes.
//!
//! Two "servers" on the one dom0, each with its own state folder, reached
//! through a stand-in for ssh (as `agent_local.rs` does) that runs the
//! agent. The harness ships test binaries into dom0 but not the `mln`
//! binary, so the agent is this test binary itself: the stand-in runs it
//! as `--exact agent_process`, which serves the agent protocol (or runs
//! one job) and exits; libtest's own chatter goes to stderr, the protocol
//! to a FIFO the agent opens itself and the stand-in copies to its stdout
//! (an inherited descriptor would be inherited again by libxl's device
//! model, which outlives the agent and would hold the channel open).
//!
//! The servers' disks are separate files, so the move is cold (the mark
//! of `ClusterBackends::migrate` is not seen on the new server): the
//! guest stops, its qcow2 overlay and configuration disk are carried and
//! rebased, and it boots again on server-b under the same name. Its
//! console shows the second boot.

#![cfg(feature = "xen")]

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mln_core::template::Template;
use mln_core::xen::XenHypervisor;
use mln_core::{DomainState, Error, Hypervisor};
use mln_lang::agent::{Agent, ServerAccess};
use mln_lang::apply::{run, ClusterBackends, LocalBackends, NoProgress, Outcome, RunOptions};
use mln_lang::model::Project;
use mln_lang::plan::{Goal, Op, Platform};
use mln_lang::state::StateStore;

const MIB: u64 = 1 << 20;
const PROJECT: &str = "xenmv";
const DOMAIN: &str = "xenmv.web";
const WAIT: Duration = Duration::from_secs(600);
/// Set by the stand-in ssh: the agent's state root (its server's folder).
const AGENT_ROOT: &str = "MLN_XEN_MOVE_AGENT_ROOT";
/// Set by the stand-in ssh: `serve` or the job's name.
const AGENT_JOB: &str = "MLN_XEN_MOVE_JOB";
/// The template image every server uses.
const AGENT_TEMPLATE: &str = "MLN_XEN_MOVE_TEMPLATE";
/// Set by the stand-in ssh: the FIFO the agent writes its channel to.
const AGENT_OUT: &str = "MLN_XEN_MOVE_OUT";

fn xen(test: &str) -> Option<XenHypervisor> {
    let level = std::env::var("MLN_XEN_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = env_logger::Builder::new().parse_filters(&level).try_init();
    match XenHypervisor::connect() {
        Ok(x) => Some(x),
        Err(Error::XenUnavailable { reason }) => {
            eprintln!("{test}: skipped, not running on Xen ({reason}); use `cargo xtask xen-test`");
            None
        }
        Err(e) => panic!("{test}: connecting to Xen failed: {e}"),
    }
}

/// Not a test: the agent, when the stand-in ssh runs this binary as one.
#[test]
fn agent_process() {
    let Some(root) = std::env::var_os(AGENT_ROOT) else {
        return;
    };
    let _ = env_logger::Builder::new()
        .parse_filters(&std::env::var("MLN_XEN_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let image = PathBuf::from(std::env::var_os(AGENT_TEMPLATE).expect("template"));
    let make = move |dir: &Path| -> mln_core::Result<LocalBackends> {
        Ok(LocalBackends::new(dir)?
            .with_default_template(Template {
                image: image.clone(),
                cmdline: "root=/dev/ubda rw".into(),
            })
            .with_xen(Box::new(XenHypervisor::connect()?)))
    };
    let agent = Agent::new(PathBuf::from(root), Box::new(make)).with_platforms(vec![
        Platform::Uml,
        Platform::Xen,
        Platform::Hvm,
    ]);
    // Opened here (close-on-exec), never inherited: libxl's device model,
    // started by this process, must not hold the channel open after the
    // agent exits.
    let channel = std::env::var_os(AGENT_OUT).expect("the channel FIFO");
    let out = std::fs::OpenOptions::new()
        .write(true)
        .open(&channel)
        .expect("the channel FIFO");
    let mut input = BufReader::new(std::io::stdin());
    let job = std::env::var(AGENT_JOB).unwrap_or_default();
    let done: Result<(), String> = match job.as_str() {
        "export-disks" => agent
            .export_disks(&mut input, out)
            .map(drop)
            .map_err(|e| e.to_string()),
        "import-disks" => agent
            .import_disks(&mut input)
            .map(drop)
            .map_err(|e| e.to_string()),
        "migrate-send" => {
            let make = |live: bool| -> mln_core::Result<Box<dyn Hypervisor>> {
                Ok(Box::new(
                    XenHypervisor::connect()?.with_live_migration(live),
                ))
            };
            agent
                .migrate_send(&mut input, out, Some(&make))
                .map_err(|e| e.to_string())
        }
        "migrate-receive" => agent
            .migrate_receive(&mut input)
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => agent.serve(input, out).map_err(|e| e.to_string()),
    };
    let _ = std::io::stderr().flush();
    match done {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("agent {job}: {e}");
            std::process::exit(1)
        }
    }
}

struct Lab {
    dir: tempfile::TempDir,
    access: ServerAccess,
    template: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().expect("temporary folder");
        let template = dir.path().join("template.img");
        std::fs::File::create(&template)
            .and_then(|f| f.set_len(16 * MIB))
            .expect("template image");
        let ssh = dir.path().join("stand-in-ssh");
        let servers = dir.path().join("servers");
        std::fs::write(
            &ssh,
            format!(
                "#!/bin/sh\n\
                 while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
                 shift\n\
                 {AGENT_ROOT}='{servers}'/\"$1\"; export {AGENT_ROOT}\n\
                 bin=\"$2\"; shift 3\n\
                 {AGENT_JOB}=\"${{1:-serve}}\"; export {AGENT_JOB}\n\
                 {AGENT_TEMPLATE}='{template}'; export {AGENT_TEMPLATE}\n\
                 out='{lab}'/channel.$$; rm -f \"$out\"; mkfifo \"$out\"\n\
                 {AGENT_OUT}=\"$out\"; export {AGENT_OUT}\n\
                 cat \"$out\" &\n\
                 \"$bin\" --exact agent_process --nocapture --test-threads=1 >&2\n\
                 rc=$?\n\
                 wait\n\
                 rm -f \"$out\"\n\
                 exit $rc\n",
                servers = servers.display(),
                template = template.display(),
                lab = dir.path().display(),
            ),
        )
        .expect("stand-in ssh");
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let me = std::env::current_exe().expect("this test binary");
        let access = ServerAccess {
            ssh: ssh.into_os_string(),
            ssh_config: None,
            agent: vec![me.to_string_lossy().into_owned()],
            connect_timeout: Duration::from_secs(60),
        };
        Lab {
            dir,
            access,
            template,
        }
    }

    fn project(&self, server: &str) -> Project {
        let kernel = std::env::var("MLN_XEN_GUEST_KERNEL").unwrap_or_else(|_| "/vmlinuz".into());
        let ramdisk =
            std::env::var("MLN_XEN_GUEST_RAMDISK").unwrap_or_else(|_| "/guest.cpio".into());
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
        let store = StateStore::open(self.dir.path().join("state"), PROJECT).expect("state");
        let local = LocalBackends::new(store.dir())
            .expect("local backends")
            .with_default_template(Template {
                image: self.template.clone(),
                cmdline: "root=/dev/ubda rw".into(),
            });
        let desired = project.map(mln_lang::plan::DesiredProject::from_project);
        let recorded = store.load().ok().flatten();
        let b = ClusterBackends::new(PROJECT, local, self.access.clone())
            .with_servers(desired.as_ref(), recorded.as_ref());
        let mut o = RunOptions::new(goal);
        o.stop_timeout = Duration::from_secs(60);
        let out = run(store, &b, project, &o, &NoProgress).expect("apply");
        let report = out.report.as_ref().expect("not a dry run");
        assert!(
            report.is_success(),
            "plan:\n{}\nfailed: {:#?}\nnot run: {:?}",
            out.plan.render_actions(),
            report.failed,
            report.not_run
        );
        out
    }

    fn disk(&self, server: &str) -> PathBuf {
        self.dir
            .path()
            .join("servers")
            .join(server)
            .join(PROJECT)
            .join("disks/web.qcow2")
    }
}

fn console_log() -> String {
    std::fs::read_to_string(format!("/var/log/xen/console/guest-{DOMAIN}.log")).unwrap_or_default()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Cleanup<'a>(&'a XenHypervisor);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for d in [
            DOMAIN.to_string(),
            format!("{DOMAIN}--incoming"),
            format!("{DOMAIN}--migratedaway"),
        ] {
            let _ = self.0.destroy(&d);
        }
    }
}

#[test]
fn upgrade_moves_a_running_xen_guest_to_another_server_cold_when_disks_are_not_shared() {
    let Some(x) = xen("upgrade_moves_a_running_xen_guest_to_another_server") else {
        return;
    };
    let _cleanup = Cleanup(&x);
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
        console_log().contains("GUEST-ALIVE")
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
        console_log().matches("GUEST-ALIVE").count() >= 2
    });
    let t = x.info(DOMAIN).expect("info").cpu_time;
    eventually("web runs on server-b", || {
        x.info(DOMAIN).is_ok_and(|i| i.cpu_time > t)
    });

    lab.apply(Goal::Remove, None);
    let left: Vec<String> = x
        .list()
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with(&format!("{PROJECT}.")))
        .collect();
    assert!(left.is_empty(), "domains left after remove: {left:?}");
    assert!(!lab.disk("server-b").exists());
    eprintln!("[{:.0?}] removed", started.elapsed());
}
