//! dom0's initramfs and the guest's: busybox, the Xen modules and
//! daemons, what guest disks need ([`super::storage`]), project switches
//! ([`super::network`]), the lab's NICs and shared storage, what dom0
//! runs (test binaries, `mln`, a program) with every library `ldd` lists,
//! the guest kernel and the guest initramfs (`xtask/xen-lab/`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::servers::{Keys, Server};
use super::{copy, cpio, io_err, modules, network, run_checked, storage, write_script};

/// Xen tools dom0 needs, from `usr/lib/xen-4.17/bin`.
const XEN_TOOLS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xenconsole",
    "xen-init-dom0",
    "libxl-save-helper",
];
/// Kernel modules dom0 loads at boot, by name (what they need comes
/// along, from `modules.dep`): Xen's, the block backends', the network
/// backends and bridge, the lab's virtio NICs and its 9p shared storage.
const DOM0_MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-privcmd",
    "xenfs",
    "xen-gntdev",
    "xen-gntalloc",
    "loop",
    "xen-blkback",
    "bridge",
    "tun",
    "xen-netback",
    "virtio_pci",
    "virtio_net",
    "9pnet_virtio",
    "9p",
];
/// Kernel modules the guest's initramfs carries (`/lib/modules/NAME.ko`).
const GUEST_MODULES: &[&str] = &["xen-netfront", "xen-blkfront"];

/// What dom0 runs, besides the lab's daemons.
pub struct Payload {
    /// Binaries and where each goes in dom0's root.
    pub binaries: Vec<(PathBuf, String)>,
    /// The file their arguments go to (one per line) and the arguments.
    pub args_file: &'static str,
    pub args: Vec<String>,
    /// The /init (from `xtask/xen-lab/`).
    pub init: &'static str,
    /// The lab's servers and keys, for a server's dom0 (sshd, LAN).
    pub servers: Option<(Vec<Server>, Keys)>,
}

/// The libraries `ldd` lists for `binary` (resolved against the unpacked
/// packages first), as (soname, path).
fn libraries(binary: &Path, pkg_root: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let libpath = format!(
        "{}:{}",
        pkg_root.join("usr/lib/x86_64-linux-gnu").display(),
        pkg_root.join("usr/lib").display()
    );
    let out = run_checked(
        Command::new("ldd")
            .arg(binary)
            .env("LD_LIBRARY_PATH", libpath),
    )?;
    let mut libs = Vec::new();
    for line in out.lines() {
        let mut parts = line.split("=>");
        let (Some(name), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = rest.split_whitespace().next().unwrap_or("");
        if path == "not" {
            return Err(format!(
                "{}: library {} not found",
                binary.display(),
                name.trim()
            ));
        }
        if path.starts_with('/') {
            libs.push((name.trim().to_string(), PathBuf::from(path)));
        }
    }
    Ok(libs)
}

fn kernel_tree(pkgs: &Path) -> Result<PathBuf, String> {
    let modules = pkgs.join("lib/modules");
    fs::read_dir(&modules)
        .map_err(io_err(&modules))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .next()
        .ok_or_else(|| "no kernel modules in the kernel package".to_string())
}

/// Copy `wanted` and what they need from kernel tree `kver` into
/// `root/lib/modules/NAME.ko`; their names in load order.
fn install_modules(kver: &Path, root: &Path, wanted: &[&str]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for path in modules::closure(kver, wanted)? {
        let file = path.file_name().unwrap_or_default();
        copy(&path, &root.join("lib/modules").join(file))?;
        names.push(file.to_string_lossy().trim_end_matches(".ko").to_string());
    }
    Ok(names)
}

fn copy_text(text: &str, to: &Path) -> Result<(), String> {
    if let Some(d) = to.parent() {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    fs::write(to, text).map_err(io_err(to))
}

/// The guest kernel (`vmlinuz-*` of the kernel package).
pub fn vmlinuz(pkgs: &Path) -> Result<PathBuf, String> {
    let boot = pkgs.join("boot");
    fs::read_dir(&boot)
        .map_err(io_err(&boot))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| "no vmlinuz-* in the kernel package".to_string())
}

/// The guest's initramfs at `dest`, built in `work`.
fn guest_cpio(
    files: &Path,
    pkgs: &Path,
    kver: &Path,
    work: &Path,
    dest: &Path,
) -> Result<(), String> {
    let _ = fs::remove_dir_all(work);
    for d in [
        "bin",
        "sbin",
        "proc",
        "sys",
        "dev",
        "lib/modules",
        "etc/mln",
    ] {
        fs::create_dir_all(work.join(d)).map_err(io_err(work))?;
    }
    copy(&pkgs.join("bin/busybox"), &work.join("bin/busybox"))?;
    write_script(&files.join("guest-init"), &work.join("init"))?;
    // The templates' command agent, which the guest runs on its channel
    // to dom0 (`mln exec`).
    let agent = files.join("../../templates/busybox/agent");
    write_script(&agent, &work.join("etc/mln/agent"))?;
    write_script(&files.join("guest-poweroff"), &work.join("sbin/poweroff"))?;
    write_script(&files.join("guest-reboot"), &work.join("sbin/reboot"))?;
    install_modules(kver, work, GUEST_MODULES)?;
    cpio::write_tree(work, &CONSOLE, dest).map_err(|e| format!("guest.cpio: {e}"))
}

const CONSOLE: [cpio::CharDev; 1] = [cpio::CharDev {
    name: "dev/console",
    major: 5,
    minor: 1,
}];

/// Assemble `lab/`: `xen` (copied from `hypervisor`), `vmlinuz` and
/// `dom0.cpio`.
pub fn assemble(
    root: &Path,
    pkgs: &Path,
    hypervisor: &Path,
    lab: &Path,
    payload: &Payload,
) -> Result<(), String> {
    let files = root.join("xtask/xen-lab");
    copy(hypervisor, &lab.join("xen"))?;
    let vmlinuz = vmlinuz(pkgs)?;
    copy(&vmlinuz, &lab.join("vmlinuz"))?;
    let kver = kernel_tree(pkgs)?;

    let dom0 = lab.join("dom0");
    let _ = fs::remove_dir_all(&dom0);
    for d in [
        "bin",
        "sbin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "var/run",
        "var/lib",
        "var/log",
        "etc/xen/scripts",
        "lib/modules",
        "lib64",
        "lib/x86_64-linux-gnu",
        "usr/lib/xen-4.17/bin",
        "usr/bin",
        "usr/sbin",
        "xen-tests",
    ] {
        fs::create_dir_all(dom0.join(d)).map_err(io_err(&dom0))?;
    }
    guest_cpio(
        &files,
        pkgs,
        &kver,
        &lab.join("guest"),
        &dom0.join("guest.cpio"),
    )?;
    copy(&pkgs.join("bin/busybox"), &dom0.join("bin/busybox"))?;
    copy(&vmlinuz, &dom0.join("vmlinuz"))?;
    let order = install_modules(&kver, &dom0, DOM0_MODULES)?;
    fs::write(dom0.join("lib/modules/order"), order.join("\n") + "\n").map_err(io_err(&dom0))?;
    let mut binaries = Vec::new();
    for t in XEN_TOOLS {
        let dest = dom0.join("usr/lib/xen-4.17/bin").join(t);
        copy(&pkgs.join("usr/lib/xen-4.17/bin").join(t), &dest)?;
        binaries.push(dest);
    }
    binaries.extend(storage::install(pkgs, &dom0)?);
    binaries.extend(network::install(&dom0)?);
    if let Some((servers, keys)) = &payload.servers {
        binaries.extend(keys.install(&dom0, servers)?);
        let conf = dom0.join("etc/mln/mln.conf");
        copy_text(super::lab::MLN_CONF, &conf)?;
    }
    // What dom0 runs, without debug info (dom0's RAM holds the initramfs).
    for (bin, dest) in &payload.binaries {
        let dest = dom0.join(dest);
        if let Some(d) = dest.parent() {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let stripped = run_checked(
            Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&dest)
                .arg(bin),
        );
        if stripped.is_err() {
            copy(bin, &dest)?;
        }
        binaries.push(dest);
    }
    for b in &binaries {
        for (soname, path) in libraries(b, pkgs)? {
            let dest = if soname.starts_with('/') {
                dom0.join(soname.trim_start_matches('/'))
            } else {
                dom0.join("lib/x86_64-linux-gnu").join(&soname)
            };
            if !dest.exists() {
                copy(&path, &dest)?;
            }
        }
    }
    copy(
        Path::new("/lib64/ld-linux-x86-64.so.2"),
        &dom0.join("lib64/ld-linux-x86-64.so.2"),
    )?;
    // Without it xl aborts at exit ("libgcc_s.so.1 must be installed for pthread_cancel").
    copy(
        Path::new("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
        &dom0.join("lib/x86_64-linux-gnu/libgcc_s.so.1"),
    )?;
    fs::write(dom0.join("etc/xen/xl.conf"), "").map_err(io_err(&dom0))?;
    fs::write(dom0.join(payload.args_file), payload.args.join("\n")).map_err(io_err(&dom0))?;
    // libxl's log level inside dom0 (read by the test's logger).
    let level = std::env::var("MLN_XEN_TEST_LOG").unwrap_or_else(|_| "warn".to_string());
    if !["off", "error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
        return Err(format!(
            "MLN_XEN_TEST_LOG={level:?}: use error, warn, info, debug or trace"
        ));
    }
    fs::write(dom0.join("test-log"), level).map_err(io_err(&dom0))?;
    write_script(&files.join("dom0-setup"), &dom0.join("dom0-setup"))?;
    write_script(&files.join("run-tests"), &dom0.join("run-tests"))?;
    write_script(&files.join(payload.init), &dom0.join("init"))?;
    cpio::write_tree(&dom0, &CONSOLE, &lab.join("dom0.cpio")).map_err(|e| format!("dom0.cpio: {e}"))
}
