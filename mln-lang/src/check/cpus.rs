//! `cpus` pins a host's vCPUs to physical CPUs, as Xen's `cpus=` does:
//! Xen and KVM guests are pinned, a UML guest is not (W0007).

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{Origins, Platform, Project};

/// W0007 for a UML host that says `cpus`.
pub(super) fn check(project: &Project, origins: &Origins, out: &mut Diagnostics) {
    for host in &project.hosts {
        let Some(cpus) = &host.cpus else { continue };
        if matches!(host.platform, Platform::Xen | Platform::Hvm | Platform::Kvm) {
            continue;
        }
        let span = origins
            .hosts
            .get(&host.name)
            .map(|o| o.keywords.get("cpus").copied().unwrap_or(o.name));
        out.push(
            Diagnostic::new(
                Code::PinningXenOnly,
                span,
                format!(
                    "host `{}` is a {} guest: `cpus {cpus}` pins only Xen and KVM guests, so it runs unpinned",
                    host.name, host.platform
                ),
            )
            .with_help("for the number of virtual CPUs, write `vcpus N`"),
        );
    }
}
