//! What dom0 needs for project switches of Xen guests (issue #4): `mln`
//! makes a Linux bridge per switch, joined by a tap to a `vde_switch`
//! (`mln_core::net::LinuxBridge`, `VdeSwitch`), and Xen's `vif-bridge`
//! hotplug script plugs each guest's vif into it.
//!
//! The kernel parts are modules of the Debian kernel: the bridge (with
//! `stp` and `llc`, which it needs), `tun` for the tap and `xen-netback`
//! for the guests' vifs. dom0's /init does not load them; a test that
//! needs them loads them in [`MODULES`] order from `/lib/modules/NAME.ko`.
//! The programs are this machine's (same glibc as dom0): iproute2's `ip`,
//! which `mln` drives (busybox's `ip` knows no `type bridge`, no `alias`),
//! placed at `/bin/ip` before busybox's links so it is the one found; and
//! `vde_switch` from `vde2`.

use std::path::{Path, PathBuf};

use super::copy;

/// Kernel modules (paths under the kernel's `kernel/`), in load order.
pub const MODULES: &[&str] = &[
    "net/llc/llc.ko",
    "net/802/stp.ko",
    "net/bridge/bridge.ko",
    "drivers/net/tun.ko",
    "drivers/net/xen-netback/xen-netback.ko",
];

/// Programs from this machine and where each goes in dom0.
const PROGRAMS: &[(&str, &str)] = &[
    ("/usr/sbin/ip", "bin/ip"),
    ("/usr/bin/vde_switch", "usr/bin/vde_switch"),
];

/// Put the network modules (from kernel tree `kver`) and programs into
/// `dom0`; returns the programs whose libraries dom0 also needs.
pub fn install(kver: &Path, dom0: &Path) -> Result<Vec<PathBuf>, String> {
    for m in MODULES {
        let name = Path::new(m).file_name().unwrap_or_default();
        copy(
            &kver.join("kernel").join(m),
            &dom0.join("lib/modules").join(name),
        )?;
    }
    let mut programs = Vec::new();
    for (from, to) in PROGRAMS {
        let from = Path::new(from);
        if !from.exists() {
            return Err(format!(
                "{} is missing on this machine (packages iproute2 and vde2)",
                from.display()
            ));
        }
        let dest = dom0.join(to);
        copy(from, &dest)?;
        programs.push(dest);
    }
    Ok(programs)
}
