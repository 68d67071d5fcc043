//! Memory a host's platform needs to boot at all (E0024) or to boot
//! reliably when many guests start together (W0006).

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{Origins, Platform, Project};
use crate::resolve::format_size;

/// The least memory a guest of `platform` boots with: a QEMU guest runs
/// Debian's kernel and unpacks its initramfs; a UML kernel keeps about 12
/// MiB for itself.
pub fn minimum_memory(platform: Platform) -> u64 {
    match platform {
        Platform::Kvm => 128 << 20,
        Platform::Uml | Platform::Xen | Platform::Hvm => 16 << 20,
    }
}

/// Below this a UML guest now and then runs out of memory while it boots
/// (at 24M one of two did in one of three tries, and 2 or 3 of 50 booting
/// together). The guest has this much of its own: the kernel's image
/// comes on top (see [`UML_KERNEL_IMAGE`]); 50 and 200 guests of 32M
/// booted together whole (benches/README.md).
pub const UML_RELIABLE_MEMORY: u64 = 32 << 20;

/// The most memory a UML host takes beyond its `memory`: its kernel's own
/// image and page descriptors, which the backend adds to the kernel's
/// `mem=` (11 MiB for Debian 12's 6.1 kernel, 14 MiB for the 7.2 kernel
/// `mln kernel fetch` brings). The memory check before `up` counts it.
pub const UML_KERNEL_IMAGE: u64 = 16 << 20;

/// E0024 for a host below its platform's minimum, W0006 for a UML host
/// below [`UML_RELIABLE_MEMORY`].
pub(super) fn check(project: &Project, origins: &Origins, out: &mut Diagnostics) {
    for host in &project.hosts {
        let span = origins
            .hosts
            .get(&host.name)
            .map(|o| o.keywords.get("memory").copied().unwrap_or(o.name));
        let least = minimum_memory(host.platform);
        if host.memory < least {
            out.push(
                Diagnostic::new(
                    Code::TooLittleMemory,
                    span,
                    format!(
                        "host `{}` has {} of memory; a {} guest needs at least {}",
                        host.name,
                        format_size(host.memory),
                        host.platform,
                        format_size(least)
                    ),
                )
                .with_help(format!("give it `memory {}`", format_size(least))),
            );
        } else if host.platform == Platform::Uml && host.memory < UML_RELIABLE_MEMORY {
            out.push(
                Diagnostic::new(
                    Code::TightMemory,
                    span,
                    format!(
                        "host `{}` has {} of memory: a UML guest this small can run out of \
                         memory while it boots, more often among many others",
                        host.name,
                        format_size(host.memory)
                    ),
                )
                .with_help(format!(
                    "{} or more boots reliably",
                    format_size(UML_RELIABLE_MEMORY)
                )),
            );
        }
    }
}
