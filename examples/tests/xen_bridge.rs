//! A project switch of Xen guests is a Linux bridge (issue #4), on real
//! Xen, through the real executor (`LocalBackends::with_xen`), no double.
//!
//! Running as root with Xen configured, `LocalBackends` makes each switch
//! a `vde_switch` (for UML guests) and a Linux bridge (for Xen guests),
//! joined by the switch's tap plugged into the bridge; a Xen host's
//! interface on the switch is a vif that Xen's `vif-bridge` hotplug script
//! plugs into that bridge. This checks in the kernel's own view
//! (`/sys/class/net`) that the guest's vif `vifDOMID.0` is a port of the
//! project's bridge, that the bridge is up, and that `remove` deletes it.
//!
//! Runs inside the dom0 that `cargo xtask xen-test` boots under QEMU; on
//! any other machine it says why it is skipped and passes. dom0's /init
//! loads only the Xen and disk modules; the harness puts the network ones
//! (`xtask/src/xen_test/network.rs`) in `/lib/modules`, and this test
//! loads them. The guest's busybox ramdisk has no netfront driver, so it
//! does not use its interface: the vif exists in dom0 all the same (it is
//! netback's), which is what is checked; no packet is sent.

#![cfg(feature = "xen")]

mod xen_lab;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mln_core::net::LinuxBridge;
use mln_core::xen::XenHypervisor;
use mln_core::{DomainState, Hypervisor};
use mln_lang::apply::{LocalBackends, Outcome, Run, RunOptions};
use mln_lang::model::Project;
use mln_lang::plan::Goal;
use mln_lang::state::StateStore;
use xen_lab::{applied, console_log, domains_of, eventually, template, xen, Cleanup};

const PROJECT: &str = "xenbr";
const DOMAIN: &str = "xenbr.web";
/// The modules a bridged Xen guest needs in dom0, in load order, as
/// (file in /lib/modules, name in /sys/module).
const MODULES: &[(&str, &str)] = &[
    ("llc", "llc"),
    ("stp", "stp"),
    ("bridge", "bridge"),
    ("tun", "tun"),
    ("xen-netback", "xen_netback"),
];
/// `IFF_UP` in `/sys/class/net/NAME/flags`.
const IFF_UP: u64 = 0x1;

/// One switch `lan` and one Xen host on it.
fn project() -> Project {
    let kernel = xen_lab::guest_kernel();
    let ramdisk = xen_lab::guest_ramdisk();
    let text = format!(
        "global {{\n    project {PROJECT}\n}}\n\
         switch lan {{\n}}\n\
         host web {{\n    xen\n    memory 128M\n    kernel {kernel}\n    \
         ramdisk {ramdisk}\n    extra console=hvc0\n    \
         network eth0 {{\n        switch lan\n    }}\n}}\n"
    );
    mln_lang::load_str("xen_bridge.mln", &text)
        .unwrap_or_else(|r| panic!("{}", r.render(false)))
        .project()
        .clone()
}

fn load_network_modules() {
    for (file, name) in MODULES {
        if Path::new("/sys/module").join(name).exists() {
            continue;
        }
        let path = format!("/lib/modules/{file}.ko");
        let st = Command::new("insmod")
            .arg(&path)
            .status()
            .unwrap_or_else(|e| panic!("insmod {path}: {e}"));
        assert!(
            st.success(),
            "insmod {path}: {st} (does the harness's dom0 image have it?)"
        );
    }
}

/// The ports of bridge `br`, as the kernel lists them.
fn ports(br: &str) -> Vec<String> {
    let mut p: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{br}/brif"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    p.sort();
    p
}

fn flags(iface: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/flags"))
        .unwrap_or_else(|e| panic!("{iface}'s flags: {e}"));
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("{iface}'s flags {text:?}: {e}"))
}

/// Whether process `pid` exists and is not a zombie (dom0's /init reaps
/// orphans only now and then).
fn runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

fn apply(root: &Path, goal: Goal, project: Option<&Project>) -> Outcome {
    let store = StateStore::open(root, PROJECT).expect("state store");
    let b = LocalBackends::new(store.dir())
        .expect("backends folder")
        .with_default_template(template(root))
        .with_xen(Box::new(XenHypervisor::connect().expect("libxl context")));
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

#[test]
fn a_xen_guests_interface_is_a_port_of_the_projects_bridge() {
    let project = project();
    let Some(x) = xen("a_xen_guests_interface_is_a_port_of_the_projects_bridge") else {
        return;
    };
    let _cleanup = Cleanup::new(&x, &[DOMAIN]);
    let started = Instant::now();
    load_network_modules();
    assert!(
        LinuxBridge::can_manage(),
        "dom0's tests run as root, which may make bridges"
    );
    let root = tempfile::tempdir().expect("temporary folder");

    let out = apply(root.path(), Goal::Up, Some(&project));
    let report = out.report.as_ref().expect("applied");
    let lan = &report.state.switches["lan"];
    let br = lan.bridge.clone().expect("switch lan has a bridge for Xen");
    assert_eq!(br, LinuxBridge::derived_name(PROJECT, "lan"));
    let join = LinuxBridge::derived_join_name(PROJECT, "lan");
    let web = x.info(DOMAIN).expect("web runs");
    assert_eq!(web.state, DomainState::Running);
    let vif = format!("vif{}.0", web.id);
    eprintln!(
        "[{:.0?}] up: bridge {br}, ports {:?}, {web:?}",
        started.elapsed(),
        ports(&br)
    );
    assert_eq!(ports(&br), {
        let mut want = vec![join.clone(), vif.clone()];
        want.sort();
        want
    });
    let master = std::fs::read_link(format!("/sys/class/net/{vif}/master"))
        .unwrap_or_else(|e| panic!("{vif} has no master: {e}"));
    assert_eq!(master.file_name().and_then(|n| n.to_str()), Some(&br[..]));
    assert_ne!(flags(&br) & IFF_UP, 0, "bridge {br} is down");
    assert_ne!(flags(&vif) & IFF_UP, 0, "{vif} is down");
    eventually("web prints GUEST-ALIVE", || {
        console_log(DOMAIN).contains("GUEST-ALIVE")
    });
    // Still plugged in once the guest is up.
    assert!(ports(&br).contains(&vif), "{:?}", ports(&br));
    let vde = lan.pid.expect("the vde_switch's pid");
    eprintln!("[{:.0?}] web is up on {br}", started.elapsed());

    apply(root.path(), Goal::Remove, None);
    let left = domains_of(&x, PROJECT);
    assert!(left.is_empty(), "domains left after remove: {left:?}");
    for iface in [&br, &join, &vif] {
        assert!(
            !Path::new("/sys/class/net").join(iface).exists(),
            "{iface} left after remove"
        );
    }
    assert!(!runs(vde), "the vde_switch {vde} runs on after remove");
    eprintln!("[{:.0?}] removed", started.elapsed());
}
