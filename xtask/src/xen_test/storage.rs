//! What dom0 needs to give PV guests the disks mln's `LocalBackends` makes
//! for every Xen host: a qcow2 overlay over a template (made with
//! `qemu-img`, served by libxl's qdisk backend, which is Debian's
//! `xen-qemu-system-i386`) and a raw configuration file (served by the
//! kernel's blkback over a loop device, set up by Xen's `block` hotplug
//! script, which needs bash, `flock` and the `xenstore-*` tools).
//!
//! The programs and the keymap QEMU reads at start come from this machine
//! (`qemu-utils`, `qemu-system-data`, `bash`, `util-linux`: same glibc as
//! dom0) or from the unpacked packages; the libraries of every program are
//! added by the caller from `ldd`.

use std::fs;
use std::path::{Path, PathBuf};

use super::{copy, io_err};

/// Where libxl looks for the device model (Debian's build of Xen).
const DEVICE_MODEL: &str = "usr/libexec/xen-qemu-system-i386";

/// The `xenstore-*` names of the one `xenstore` binary (it acts on the name
/// it is called by). The cpio writer follows symlinks, so each becomes a
/// copy.
const XENSTORE_TOOLS: &[&str] = &["read", "write", "exists", "list", "ls", "rm", "chmod"];

/// Put the disk tooling into `dom0` (taking Xen's parts from `pkgs`);
/// returns the programs whose libraries dom0 also needs.
pub fn install(pkgs: &Path, dom0: &Path) -> Result<Vec<PathBuf>, String> {
    let mut programs = Vec::new();
    let mut add = |from: &Path, to: &str| -> Result<(), String> {
        let dest = dom0.join(to);
        copy(from, &dest)?;
        programs.push(dest);
        Ok(())
    };
    add(&pkgs.join(DEVICE_MODEL), DEVICE_MODEL)?;
    add(&pkgs.join("usr/bin/xenstore"), "usr/bin/xenstore")?;
    add(Path::new("/usr/bin/qemu-img"), "usr/bin/qemu-img")?;
    // Xen's hotplug scripts are bash scripts; busybox has no `flock`.
    add(Path::new("/bin/bash"), "bin/bash")?;
    add(Path::new("/usr/bin/flock"), "usr/bin/flock")?;
    // `mln agent` reads a template's boot marker with debugfs, as on any
    // Debian server (e2fsprogs is required there).
    add(Path::new("/usr/sbin/debugfs"), "usr/sbin/debugfs")?;
    let bin = dom0.join("usr/bin");
    for t in XENSTORE_TOOLS {
        let link = bin.join(format!("xenstore-{t}"));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("xenstore", &link).map_err(io_err(&link))?;
    }
    let scripts = pkgs.join("etc/xen/scripts");
    for e in fs::read_dir(&scripts).map_err(io_err(&scripts))? {
        let e = e.map_err(io_err(&scripts))?;
        super::write_script(&e.path(), &dom0.join("etc/xen/scripts").join(e.file_name()))?;
    }
    // QEMU refuses to start (even with `-vnc none`) without its keymap.
    copy(
        Path::new("/usr/share/qemu/keymaps/en-us"),
        &dom0.join("usr/share/qemu/keymaps/en-us"),
    )?;
    Ok(programs)
}
