//! The Debian packages of the lab, fetched with `apt-get download` into a
//! cache folder and unpacked with `dpkg -x` (nothing is installed on the host).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_checked;

/// Packages besides the kernel (whose versioned name is looked up).
const PACKAGES: &[&str] = &[
    "busybox-static",
    "xen-hypervisor-4.17-amd64",
    "xen-utils-4.17",
    "xen-utils-common",
    "libxenmisc4.17",
    "libxenstore4",
    "libxencall1",
    "libxendevicemodel1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenhypfs1",
    "libxentoolcore1",
    "libxentoollog1",
    "libyajl2",
    // Guest disks (see `storage`): the `xenstore-*` tools Xen's block
    // hotplug script calls, and the QEMU that serves qcow2 (qdisk).
    "xenstore-utils",
    "qemu-system-xen",
];

/// The versioned kernel package `linux-image-amd64` depends on.
fn kernel_package() -> Result<String, String> {
    let out = run_checked(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-6") || p.starts_with("linux-image-5"))
        .map(str::to_string)
        .ok_or_else(|| "apt-cache knows no kernel behind linux-image-amd64".to_string())
}

/// Download the packages into `cache/debs` (only those a previous run did
/// not fetch) and unpack them into `cache/root` (again when the set of
/// packages changed); returns the root.
pub fn fetch_and_unpack(cache: &Path) -> Result<PathBuf, String> {
    let debs = cache.join("debs");
    let stamp = debs.join(".complete");
    // The stamp lists what a completed download fetched, the kernel last.
    let fetched = fs::read_to_string(&stamp).unwrap_or_default();
    let fetched: Vec<&str> = fetched.lines().collect();
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !fetched.contains(p))
        .collect();
    if missing.is_empty() && fetched.len() > PACKAGES.len() {
        eprintln!("xen-test: reusing packages in {}", debs.display());
    } else {
        fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
        let kernel = match fetched.last() {
            Some(k) if k.starts_with("linux-image-") => k.to_string(),
            _ => kernel_package()?,
        };
        let mut get: Vec<&str> = missing;
        if !fetched.contains(&kernel.as_str()) {
            get.push(&kernel);
        }
        eprintln!("xen-test: apt-get download {}", get.join(" "));
        run_checked(
            Command::new("apt-get")
                .arg("download")
                .args(&get)
                .current_dir(&debs),
        )?;
        fs::write(&stamp, format!("{}\n{kernel}\n", PACKAGES.join("\n")))
            .map_err(|e| format!("{}: {e}", stamp.display()))?;
    }

    let mut files: Vec<PathBuf> = fs::read_dir(&debs)
        .map_err(|e| format!("{}: {e}", debs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    files.sort();
    let names: String = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| format!("{}\n", n.to_string_lossy())))
        .collect();
    let root = cache.join("root");
    let root_stamp = root.join(".complete");
    if fs::read_to_string(&root_stamp).ok().as_deref() != Some(names.as_str()) {
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        for deb in &files {
            run_checked(Command::new("dpkg").arg("-x").arg(deb).arg(&root))?;
        }
        fs::write(&root_stamp, names).map_err(|e| format!("{}: {e}", root_stamp.display()))?;
    }
    Ok(root)
}
