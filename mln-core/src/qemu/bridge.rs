//! Interfaces on a Linux bridge: QEMU makes a tap device of its own
//! (`-netdev tap,ifname=...`, which needs root or CAP_NET_ADMIN), and the
//! backend adds it to the bridge once QEMU runs. The tap goes away with
//! the QEMU process, so nothing is left to clean up.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::BACKEND;
use crate::bounded::checked_within;
use crate::domain::{Attachment, DomainSpec};
use crate::error::{Error, Result};

/// The tap device for interface `iface` of the guest whose state is in
/// `dir`: `mq` and a hash of both, 12 characters (an interface name has
/// at most 15), the same on every start.
pub(super) fn tap_name(dir: &Path, iface: &str) -> String {
    let seed = format!("{}/{iface}", dir.display());
    let mac = crate::domain::MacAddr::derived(&seed).0;
    format!(
        "mq{:02x}{:02x}{:02x}{:02x}{:02x}",
        mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// Refuse bridge interfaces where taps cannot be made.
pub(super) fn check(spec: &DomainSpec) -> Result<()> {
    let wants_bridge = spec
        .interfaces
        .iter()
        .any(|i| matches!(i.attach, Attachment::Bridge(_)));
    if wants_bridge && !rustix::process::geteuid().is_root() {
        return Err(Error::Unsupported {
            backend: BACKEND,
            op: "attaching to a Linux bridge without root (taps need it; use a vde switch)",
        });
    }
    for iface in &spec.interfaces {
        if let Attachment::Bridge(bridge) = &iface.attach {
            crate::SafeName::interface(bridge)?;
        }
    }
    Ok(())
}

/// Add the taps of the running guest's bridge interfaces to their bridges.
pub(super) fn plug(dir: &Path, spec: &DomainSpec) -> Result<()> {
    for iface in &spec.interfaces {
        if let Attachment::Bridge(bridge) = &iface.attach {
            let tap = tap_name(dir, &iface.name);
            checked_within(
                Command::new("ip").args(["link", "set", "dev", &tap, "master", bridge, "up"]),
                &spec.name,
                Duration::from_secs(10),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_are_short_stable_and_distinct() {
        let a = tap_name(Path::new("/st/alice"), "eth0");
        assert_eq!(a, tap_name(Path::new("/st/alice"), "eth0"));
        assert_ne!(a, tap_name(Path::new("/st/alice"), "eth1"));
        assert_eq!(a.len(), 12);
        crate::SafeName::interface(&a).unwrap();
    }
}
