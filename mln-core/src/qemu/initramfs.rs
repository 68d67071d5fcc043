//! The initramfs QEMU guests boot with, made from a Debian kernel's
//! modules and a static busybox: its `/init` (`init.sh`) loads the
//! modules below, mounts the disk `root=` names and `switch_root`s to its
//! init. And the probe initramfs for the KVM check, whose init only says
//! [`PROBE_MARKER`] and powers off.

use std::fs;
use std::path::Path;

use super::accel::PROBE_MARKER;
use super::cpio::CpioWriter;
use super::modinfo;
use crate::error::{Error, Result};

const INIT: &str = include_str!("init.sh");

/// What identifies the guest init script this `mln` builds into the
/// initramfs: the first 16 hex digits of its SHA-256. A kernel folder
/// built with another script is built again (see `GuestKernel::find`).
pub(super) fn init_digest() -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(INIT.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The modules a QEMU guest of MLN needs (their dependencies come along):
/// virtio's PCI transport, disks, network and balloon; ext4 and the
/// checksum driver it asks for by alias (`crypto-crc32c`, which insmod
/// does not resolve); the ACPI power button and the event device it is
/// read through (a clean shutdown); and Xen's disk and network front
/// ends, so that the same kernel and initramfs boot a template as a Xen PV
/// guest (root `xvda`).
pub(super) const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_balloon",
    "crc32c_generic",
    "ext4",
    "button",
    "evdev",
    "xen_blkfront",
    "xen_netfront",
];

/// Write the guest initramfs to `out`: busybox from `busybox`, the
/// [`MODULES`] of the kernel tree `modules` (`lib/modules/VERSION`) in
/// load order. Returns the modules, in that order.
pub(super) fn write_guest(out: &Path, busybox: &Path, modules: &Path) -> Result<Vec<String>> {
    let index = modinfo::index(modules)?;
    let order = modinfo::load_order(&index, MODULES)?;
    let names: Vec<String> = order.iter().map(|(n, _)| n.clone()).collect();
    let init = INIT.replace("@MODULES@", &names.join(" "));
    let io = |e| Error::io(out, e);
    let mut w = base(out, busybox)?;
    w.file("init", 0o755, init.as_bytes()).map_err(io)?;
    w.dir("lib").map_err(io)?;
    w.dir("lib/modules").map_err(io)?;
    for (name, path) in &order {
        let data = fs::read(path).map_err(|e| Error::io(path, e))?;
        w.file(&format!("lib/modules/{name}.ko"), 0o644, &data)
            .map_err(io)?;
    }
    w.finish().map_err(io)?;
    Ok(names)
}

/// Write the probe initramfs to `out`: an init that prints the marker and
/// powers off.
pub(super) fn write_probe(out: &Path, busybox: &Path) -> Result<()> {
    let io = |e| Error::io(out, e);
    let init =
        format!("#!/bin/busybox sh\n/bin/busybox echo {PROBE_MARKER}\n/bin/busybox poweroff -f\n");
    let mut w = base(out, busybox)?;
    w.file("init", 0o755, init.as_bytes()).map_err(io)?;
    w.finish().map_err(io)
}

/// An archive with the folders, the console device and busybox.
fn base(out: &Path, busybox: &Path) -> Result<CpioWriter> {
    let io = |e| Error::io(out, e);
    let bb = fs::read(busybox).map_err(|e| Error::io(busybox, e))?;
    let mut w = CpioWriter::create(out).map_err(io)?;
    for d in ["bin", "dev", "proc", "sys", "newroot"] {
        w.dir(d).map_err(io)?;
    }
    w.char_device("dev/console", 5, 1).map_err(io)?;
    w.file("bin/busybox", 0o755, &bb).map_err(io)?;
    w.symlink("bin/sh", "busybox").map_err(io)?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_script_names_every_step() {
        for step in [
            "@MODULES@",
            "insmod",
            "root=",
            "switch_root /newroot",
            "mount --move /dev",
        ] {
            assert!(INIT.contains(step), "{step}");
        }
    }
}
