//! What the executor's Xen tests share: connecting to Xen or skipping,
//! waiting on a guest, reading its console, destroying what a failed test
//! left, a template image, checking an outcome, and the stand-in servers
//! ([`StandIn`]) that run the agent as the test binary itself.
//!
//! Included by each test target with `mod xen_lab;` (a folder under
//! `tests/` is not a test target of its own). Each target uses only part
//! of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mln_core::template::Template;
use mln_core::xen::XenHypervisor;
use mln_core::{Error, Hypervisor};
use mln_lang::agent::{Agent, ServerAccess};
use mln_lang::apply::{ApplyReport, LocalBackends, Outcome};
use mln_lang::plan::{Plan, Platform};

pub const MIB: u64 = 1 << 20;
/// A bound on waiting for a guest under QEMU's TCG on a busy 2-core
/// machine, not an assertion on speed.
pub const WAIT: Duration = Duration::from_secs(600);

/// libxl's log and ours on stderr, at `MLN_XEN_TEST_LOG` (default `warn`).
pub fn init_log() {
    let level = std::env::var("MLN_XEN_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = env_logger::Builder::new().parse_filters(&level).try_init();
}

/// The hypervisor, or `None` (with a message) when this is not a Xen dom0.
pub fn xen(test: &str) -> Option<XenHypervisor> {
    init_log();
    match XenHypervisor::connect() {
        Ok(x) => Some(x),
        Err(Error::XenUnavailable { reason }) => {
            // `.ci/test` runs these in the Xen lab only (`cargo xtask
            // xen-test`, where CI is set too): never skipped there.
            testkit::skip(
                test,
                &format!("not running on Xen ({reason}); use `cargo xtask xen-test`"),
            );
            None
        }
        Err(e) => panic!("{test}: connecting to Xen failed: {e}"),
    }
}

/// The guest kernel the harness's dom0 has (`MLN_XEN_GUEST_KERNEL`).
pub fn guest_kernel() -> String {
    std::env::var("MLN_XEN_GUEST_KERNEL").unwrap_or_else(|_| "/vmlinuz".into())
}

/// The guest's busybox ramdisk (`MLN_XEN_GUEST_RAMDISK`).
pub fn guest_ramdisk() -> String {
    std::env::var("MLN_XEN_GUEST_RAMDISK").unwrap_or_else(|_| "/guest.cpio".into())
}

/// What xenconsoled logged of `domain`'s console (empty before it exists).
pub fn console_log(domain: &str) -> String {
    std::fs::read_to_string(format!("/var/log/xen/console/guest-{domain}.log")).unwrap_or_default()
}

/// Poll `f` until it holds; fail with `what` if it never does.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Destroys the named domains when a test ends, passed or not, so a
/// failure does not leave guests eating the lab's CPU.
pub struct Cleanup<'a> {
    xen: &'a XenHypervisor,
    domains: Vec<String>,
}

impl<'a> Cleanup<'a> {
    pub fn new(xen: &'a XenHypervisor, domains: &[&str]) -> Self {
        Cleanup {
            xen,
            domains: domains.iter().map(|d| d.to_string()).collect(),
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for d in &self.domains {
            let _ = self.xen.destroy(d);
        }
    }
}

/// A 16 MiB raw template image in `dir` for the hosts' copy-on-write root
/// disks. The guests boot from their ramdisk, so its content does not
/// matter.
pub fn template(dir: &Path) -> Template {
    let image = dir.join("template.img");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(16 * MIB))
        .expect("template image");
    Template::image(image, "root=/dev/ubda rw")
}

pub fn assert_success(plan: &Plan, report: &ApplyReport) {
    assert!(
        report.is_success(),
        "plan:\n{}\nfailed: {:#?}\nnot run: {:?}",
        plan.render_actions(),
        report.failed,
        report.not_run
    );
}

/// The report of an applied (not dry) run, which succeeded.
pub fn applied(out: &Outcome) -> &ApplyReport {
    let report = out.report.as_ref().expect("not a dry run");
    assert_success(&out.plan, report);
    report
}

/// The domains of `project` Xen still runs.
pub fn domains_of(x: &XenHypervisor, project: &str) -> Vec<String> {
    x.list()
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with(&format!("{project}.")))
        .collect()
}

/// Set by the stand-in ssh: the agent's state root (its server's folder).
const AGENT_ROOT: &str = "MLN_XEN_MOVE_AGENT_ROOT";
/// Set by the stand-in ssh: `serve` or the job's name.
const AGENT_JOB: &str = "MLN_XEN_MOVE_JOB";
/// The template image every server uses.
const AGENT_TEMPLATE: &str = "MLN_XEN_MOVE_TEMPLATE";
/// Set by the stand-in ssh: the FIFO the agent writes its channel to.
const AGENT_OUT: &str = "MLN_XEN_MOVE_OUT";

/// Servers on this one dom0, each with its own state folder
/// (`DIR/servers/NAME`), reached through a stand-in for ssh (as
/// `agent_local.rs` does) that runs the agent.
///
/// The harness ships test binaries into dom0 but not the `mln` binary, so
/// the agent is the test binary itself: the stand-in runs it as `--exact
/// agent_process` (a test that calls [`serve_agent_if_asked`]), which
/// serves the agent protocol (or runs one job) and exits; libtest's own
/// chatter goes to stderr, the protocol to a FIFO the agent opens itself
/// and the stand-in copies to its stdout (an inherited descriptor would be
/// inherited again by libxl's device model, which outlives the agent and
/// would hold the channel open).
pub struct StandIn {
    pub dir: tempfile::TempDir,
    pub access: ServerAccess,
    pub template: Template,
}

impl StandIn {
    pub fn new() -> StandIn {
        let dir = tempfile::tempdir().expect("temporary folder");
        let template = template(dir.path());
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
                template = template.image.display(),
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
        StandIn {
            dir,
            access,
            template,
        }
    }

    /// Server `server`'s state folder for `project` (what its agent's
    /// `LocalBackends` use).
    pub fn project_dir(&self, server: &str, project: &str) -> PathBuf {
        self.dir.path().join("servers").join(server).join(project)
    }
}

/// When the stand-in ssh runs this binary as the agent: serve the agent
/// protocol or run the one job asked for, then exit the process; otherwise
/// return (the test run that calls it is not the agent).
pub fn serve_agent_if_asked() {
    let Some(root) = std::env::var_os(AGENT_ROOT) else {
        return;
    };
    init_log();
    let image = PathBuf::from(std::env::var_os(AGENT_TEMPLATE).expect("template"));
    let make = move |dir: &Path| -> mln_core::Result<LocalBackends> {
        Ok(LocalBackends::new(dir)?
            .with_default_template(Template::image(image.clone(), "root=/dev/ubda rw"))
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
