//! What the executor's Xen tests share: connecting to Xen or skipping,
//! waiting on a guest, reading its console, destroying what a failed test
//! left, a template image, checking an outcome, and the two servers of
//! the lab as this machine reaches them ([`servers`]).
//!
//! Included by each test target with `mod xen_lab;` (a folder under
//! `tests/` is not a test target of its own). Each target uses only part
//! of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod servers;

use std::path::Path;
use std::time::{Duration, Instant};

use mln_core::template::Template;
use mln_core::xen::XenHypervisor;
use mln_core::{Error, Hypervisor};
use mln_lang::apply::{ApplyReport, Outcome};
use mln_lang::plan::Plan;

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
