//! A kernel for QEMU guests: Debian's `linux-image-amd64` kernel (the
//! versioned package it depends on), fetched with `apt-get download` and
//! unpacked with `dpkg-deb -x` (no root, nothing installed on the host),
//! and two initramfs images built from its modules and a static busybox
//! (see `initramfs.rs`): one that boots a root disk, one that probes KVM.
//!
//! Kept in a folder of a kernels store (the UML kernels' one does well):
//!
//! ```text
//! KERNELS/linux-6.1.0-57-amd64/vmlinuz      the kernel
//! KERNELS/linux-6.1.0-57-amd64/initrd.gz    virtio, ext4, button modules; boots root=
//! KERNELS/linux-6.1.0-57-amd64/probe.gz     prints MLN-PROBE-OK, powers off
//! KERNELS/linux-6.1.0-57-amd64/guest.json   this record
//! ```
//!
//! Measured on the development machine (Debian 12, 6.1.0-57-amd64, 2
//! cores, busy with other builds): fetch and build took 9 s in all (the
//! 70 MB download about 2 s from a near mirror, unpacking about 4 s,
//! finding module dependencies and writing both images the rest). The
//! folder keeps 11 MB: kernel 8.2 MB, initramfs 1.8 MB (17 modules and
//! busybox), probe 1.0 MB; the package and its unpacked tree are not kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::initramfs;
use crate::bounded::checked_within;
use crate::domain::Boot;
use crate::error::{Error, Result};
use crate::template::BusyboxSource;
use crate::uml::process::write_atomic;

const RECORD: &str = "guest.json";
const PREFIX: &str = "linux-";
const NETWORK: Duration = Duration::from_secs(600);
const LOCAL: Duration = Duration::from_secs(120);

/// A Debian kernel with MLN's initramfs images, ready to boot QEMU guests
/// and Xen PV guests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestKernel {
    /// The kernel release (`6.1.0-57-amd64`).
    pub version: String,
    /// The Debian package it came from (`linux-image-6.1.0-57-amd64`).
    pub package: String,
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initramfs that mounts `root=` and runs its init.
    pub initrd: PathBuf,
    /// The initramfs of the KVM probe (see [`super::accel`]).
    pub probe_initrd: PathBuf,
    /// The modules in `initrd`, in the order its init loads them.
    pub modules: Vec<String>,
    /// Which init script `initrd` runs (a digest of it; empty in a record
    /// from before it was kept).
    #[serde(default)]
    pub init: String,
}

impl GuestKernel {
    /// The guest kernel already fetched into `store`, if any (the newest
    /// when there are several).
    pub fn find(store: impl AsRef<Path>) -> Option<GuestKernel> {
        let mut found: Vec<GuestKernel> = fs::read_dir(store.as_ref())
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
            .filter_map(|e| fs::read(e.path().join(RECORD)).ok())
            .filter_map(|b| serde_json::from_slice::<GuestKernel>(&b).ok())
            .filter(|k| k.kernel.is_file() && k.initrd.is_file() && k.probe_initrd.is_file())
            // One built by an older `mln` without a module guests now
            // need is built again.
            .filter(|k| {
                initramfs::MODULES
                    .iter()
                    .all(|m| k.modules.iter().any(|n| n == m))
            })
            // Nor one whose initramfs runs another init script.
            .filter(|k| k.init == initramfs::init_digest())
            .collect();
        found.sort_by_key(|k| version_key(&k.version));
        found.pop()
    }

    /// The guest kernel in `store`: the one already there (see
    /// [`GuestKernel::find`]), else fetched from Debian's archive and
    /// built now (see the module documentation). Busybox comes from
    /// `/bin/busybox` or is fetched into `store/download`.
    pub fn fetch(store: impl AsRef<Path>) -> Result<GuestKernel> {
        let store = store.as_ref();
        if let Some(found) = Self::find(store) {
            return Ok(found);
        }
        fs::create_dir_all(store).map_err(|e| Error::io(store, e))?;
        let store = store.canonicalize().map_err(|e| Error::io(store, e))?;
        // One fetch at a time (guests of a project are made in parallel,
        // and several `mln` may run): the others wait, then find it.
        let lock_path = store.join(".linux-fetch.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(&lock_path, e.into()))?;
        if let Some(found) = Self::find(&store) {
            return Ok(found);
        }
        let BusyboxSource::Binary(busybox) = BusyboxSource::find(store.join("download"))?;
        let scratch = store.join(format!(".fetch-linux-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        let result = fetch_into(&store, &scratch, &busybox);
        let _ = fs::remove_dir_all(&scratch);
        result
    }

    /// A kernel boot of this kernel and its initramfs with `cmdline`
    /// (e.g. `root=/dev/vda rw`; `console=ttyS0` is added by the backend).
    pub fn boot(&self, cmdline: &str) -> Boot {
        Boot::Kernel {
            kernel: self.kernel.clone(),
            ramdisk: Some(self.initrd.clone()),
            cmdline: cmdline.to_string(),
        }
    }
}

fn fetch_into(store: &Path, scratch: &Path, busybox: &Path) -> Result<GuestKernel> {
    let debs = scratch.join("debs");
    fs::create_dir_all(&debs).map_err(|e| Error::io(&debs, e))?;
    let package = kernel_package()?;
    let mut apt = Command::new("apt-get");
    apt.arg("-q");
    if rustix::process::geteuid().is_root() {
        // apt's download sandbox user cannot write into our folder.
        apt.args(["-o", "APT::Sandbox::User=root"]);
    }
    checked_within(
        apt.args(["download", &package]).current_dir(&debs),
        "apt-get download",
        NETWORK,
    )?;
    let deb = fs::read_dir(&debs)
        .map_err(|e| Error::io(&debs, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| Error::MissingFile {
            what: "downloaded kernel package",
            path: debs.join(format!("{package}_*.deb")),
        })?;
    let root = scratch.join("root");
    checked_within(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb",
        LOCAL,
    )?;
    let modules_dir = root.join("lib/modules");
    let version = fs::read_dir(&modules_dir)
        .map_err(|e| Error::io(&modules_dir, e))?
        .filter_map(|e| e.ok())
        .find_map(|e| e.file_name().to_str().map(str::to_string))
        .ok_or_else(|| Error::MissingFile {
            what: "kernel modules in the package",
            path: modules_dir.clone(),
        })?;
    let target = store.join(format!("{PREFIX}{version}"));
    let staging = scratch.join("out");
    fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    let vmlinuz = root.join(format!("boot/vmlinuz-{version}"));
    fs::copy(&vmlinuz, staging.join("vmlinuz")).map_err(|e| Error::io(&vmlinuz, e))?;
    let modules = initramfs::write_guest(
        &staging.join("initrd.gz"),
        busybox,
        &modules_dir.join(&version),
    )?;
    initramfs::write_probe(&staging.join("probe.gz"), busybox)?;
    let kernel = GuestKernel {
        version,
        package,
        kernel: target.join("vmlinuz"),
        initrd: target.join("initrd.gz"),
        probe_initrd: target.join("probe.gz"),
        modules,
        init: initramfs::init_digest(),
    };
    let record = serde_json::to_vec_pretty(&kernel)
        .map_err(|e| Error::io(&staging, std::io::Error::other(e)))?;
    write_atomic(&staging.join(RECORD), &record)?;
    let _ = fs::remove_dir_all(&target);
    fs::rename(&staging, &target).map_err(|e| Error::io(&target, e))?;
    Ok(kernel)
}

/// `6.1.0-57-amd64` as numbers (6, 1, 0, 57): -57 comes after -9.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The versioned kernel package `linux-image-amd64` depends on now.
fn kernel_package() -> Result<String> {
    let out = checked_within(
        Command::new("apt-cache").args(["depends", "linux-image-amd64"]),
        "apt-cache depends",
        LOCAL,
    )?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| {
            p.starts_with("linux-image-") && p.as_bytes().get(12).is_some_and(u8::is_ascii_digit)
        })
        .map(str::to_string)
        .ok_or_else(|| Error::Backend {
            what: "linux-image-amd64".into(),
            message: "apt-cache knows no kernel package behind it (run apt-get update?)".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_takes_only_complete_folders() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(GuestKernel::find(dir.path()), None);
        let k = dir.path().join("linux-6.1.0-1-amd64");
        fs::create_dir_all(&k).unwrap();
        let kernel = GuestKernel {
            version: "6.1.0-1-amd64".into(),
            package: "linux-image-6.1.0-1-amd64".into(),
            kernel: k.join("vmlinuz"),
            initrd: k.join("initrd.gz"),
            probe_initrd: k.join("probe.gz"),
            modules: vec!["virtio".into()],
            init: initramfs::init_digest(),
        };
        fs::write(k.join(RECORD), serde_json::to_vec(&kernel).unwrap()).unwrap();
        assert_eq!(GuestKernel::find(dir.path()), None, "files missing");
        for f in ["vmlinuz", "initrd.gz", "probe.gz"] {
            fs::write(k.join(f), b"x").unwrap();
        }
        // An initramfs without a module guests now need (one built by an
        // older mln, before Xen's front ends) is not taken.
        assert_eq!(GuestKernel::find(dir.path()), None, "modules missing");
        // Nor one whose init script is not this mln's.
        let kernel = GuestKernel {
            modules: initramfs::MODULES.iter().map(|m| m.to_string()).collect(),
            init: "0000000000000000".into(),
            ..kernel
        };
        fs::write(k.join(RECORD), serde_json::to_vec(&kernel).unwrap()).unwrap();
        assert_eq!(GuestKernel::find(dir.path()), None, "another init");
        let kernel = GuestKernel {
            init: initramfs::init_digest(),
            ..kernel
        };
        fs::write(k.join(RECORD), serde_json::to_vec(&kernel).unwrap()).unwrap();
        assert_eq!(GuestKernel::find(dir.path()), Some(kernel.clone()));
        match kernel.boot("root=/dev/vda rw") {
            Boot::Kernel {
                ramdisk, cmdline, ..
            } => {
                assert_eq!(ramdisk, Some(k.join("initrd.gz")));
                assert_eq!(cmdline, "root=/dev/vda rw");
            }
            Boot::Disk => panic!(),
        }
    }
}
