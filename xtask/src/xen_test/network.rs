//! What dom0 needs for project switches of Xen guests (issue #4): `mln`
//! makes a Linux bridge per switch, joined by a tap to a `vde_switch`
//! (`mln_core::net::LinuxBridge`, `VdeSwitch`), and Xen's `vif-bridge`
//! hotplug script plugs each guest's vif into it.
//!
//! The kernel parts are modules of the Debian kernel (the bridge, `tun`
//! for the tap, `xen-netback` for the guests' vifs), which dom0's /init
//! loads with the others (`super::dom0`). The programs are this machine's (same glibc as dom0): iproute2's `ip`,
//! which `mln` drives (busybox's `ip` knows no `type bridge`, no `alias`),
//! placed at `/bin/ip` before busybox's links so it is the one found; and
//! `vde_switch` from `vde2`.

use std::path::{Path, PathBuf};

use super::copy;

/// Programs from this machine and where each goes in dom0.
const PROGRAMS: &[(&str, &str)] = &[
    ("/usr/sbin/ip", "bin/ip"),
    ("/usr/bin/vde_switch", "usr/bin/vde_switch"),
];

/// Put the network programs into `dom0`; returns the programs whose
/// libraries dom0 also needs.
pub fn install(dom0: &Path) -> Result<Vec<PathBuf>, String> {
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
