//! The `linux.uml` command line: how a [`DomainSpec`] becomes UML kernel
//! arguments (memory, console, disks, interfaces), and the layout of an MLN
//! host ([`host_spec`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{NetDriver, Uml, BACKEND, PAGE, UMID};
use crate::domain::{Attachment, Boot, DomainSpec};
use crate::error::{Error, Result};

/// The guest line the template's login prompt runs on: UML's second
/// console, `con1`.
pub(super) const CONSOLE_LINE: &str = "tty1";

/// The program and arguments that run `spec` with its state in `dir`, on
/// a kernel whose network driver is `net`.
pub(super) fn args(
    dir: &Path,
    spec: &DomainSpec,
    net: NetDriver,
) -> Result<(PathBuf, Vec<OsString>)> {
    let Boot::Kernel {
        kernel,
        ramdisk,
        cmdline,
    } = &spec.boot
    else {
        return Err(Error::Unsupported {
            backend: BACKEND,
            op: "booting from a disk (UML needs a kernel)",
        });
    };
    let mut args: Vec<String> = Vec::new();
    // The guest's memory, and on top of it the kernel's own image (see
    // `footprint`): a guest of `memory 32M` has about 32 MiB of its own.
    let max = round_pages(spec.effective_max_memory());
    let mem = max + super::footprint::reservation(kernel, max)?;
    args.push(format!("mem={}K", mem / 1024));
    args.push(format!("umid={UMID}"));
    args.push(format!("uml_dir={}", cmdline_path(dir, "state folder")?));
    // The kernel's console to the log (stderr). The second console on
    // stdin, a host pseudo-terminal whose other side is stdout (see
    // `ConsoleTerminal`), with the template's login prompt on it
    // (`mln.console=tty1`): where `mln console` attaches. The second
    // serial line on a pseudo-terminal of UML's own making: `mln exec`'s
    // channel to the guest's agent (see `crate::exec`).
    args.extend(
        [
            "con=null",
            "con0=null,fd:2",
            "con1=fd:0",
            "ssl=null",
            "ssl1=pts",
        ]
        .map(String::from),
    );
    args.push(crate::attach::console_word(CONSOLE_LINE));
    for disk in &spec.disks {
        let letter = disk
            .target
            .strip_prefix("ubd")
            .filter(|l| l.len() == 1 && l.chars().all(|c| c.is_ascii_lowercase()))
            .ok_or_else(|| Error::InvalidName {
                name: disk.target.clone(),
                reason: "a UML disk target is ubda, ubdb, ...",
            })?;
        let flag = if disk.readonly { "r" } else { "" };
        let path = cmdline_path(&disk.path, "UML disk")?;
        args.push(format!("ubd{letter}{flag}={path}"));
    }
    for iface in &spec.interfaces {
        let index = interface_index(&iface.name)?;
        match &iface.attach {
            Attachment::Vde(sock) => {
                let sock = cmdline_path(sock, "vde switch socket")?;
                args.push(net.attach(index, &sock, &iface.mac));
            }
            Attachment::Bridge(_) => {
                return Err(Error::Unsupported {
                    backend: BACKEND,
                    op: "attaching to a Linux bridge (use a vde switch)",
                })
            }
            Attachment::None => {}
        }
    }
    if let Some(rd) = ramdisk {
        args.push(format!("initrd={}", cmdline_path(rd, "ramdisk")?));
    }
    for word in cmdline.split_whitespace() {
        // The backend finds and controls the guest through these.
        if ["umid=", "uml_dir=", "mem="]
            .iter()
            .any(|p| word.starts_with(p))
        {
            return Err(Error::InvalidName {
                name: word.to_string(),
                reason: "the UML backend sets umid=, uml_dir= and mem= itself",
            });
        }
        args.push(word.to_string());
    }
    Ok((
        kernel.clone(),
        args.into_iter().map(OsString::from).collect(),
    ))
}

/// The spec of a UML host the way MLN lays one out: its root disk is
/// `root` (a copy-on-write overlay over a template, `ubda`), its guest
/// configuration disk `config_disk` (written by
/// [`crate::guest::GuestConfig::write_disk`], `ubdb`, read-only), booted by
/// [`Uml::default_kernel`] with `root=/dev/ubda rw mln.config=ubdb` and
/// `extra` (e.g. `quiet`) on the command line.
///
/// ```
/// use mln_core::disk::{CowFormat, Overlay};
/// let root = Overlay { path: "/p/alice.cow".into(), template: "/t/busybox.ext4".into(), format: CowFormat::Uml, size: 64 << 20 };
/// let spec = mln_core::uml::host_spec("alice", 64 << 20, &root, "/p/alice.config".as_ref(), Vec::new(), "quiet");
/// assert_eq!(spec.disks[1].target, "ubdb");
/// ```
pub fn host_spec(
    name: &str,
    memory: u64,
    root: &crate::disk::Overlay,
    config_disk: &Path,
    interfaces: Vec<crate::domain::InterfaceSpec>,
    extra: &str,
) -> DomainSpec {
    let mut spec = DomainSpec::new(
        name,
        memory,
        Boot::Kernel {
            kernel: Uml::default_kernel(),
            ramdisk: None,
            cmdline: format!("root=/dev/ubda rw mln.config=ubdb {extra}")
                .trim_end()
                .to_string(),
        },
    );
    spec.disks.push(root.disk_spec("ubda"));
    spec.disks.push(crate::domain::DiskSpec {
        path: config_disk.to_path_buf(),
        target: "ubdb".into(),
        readonly: true,
    });
    spec.interfaces = interfaces;
    spec
}

/// The number of interface `ethN` (at most 3 digits: the name goes into
/// management console requests, where nothing else may ride along).
pub(super) fn interface_index(name: &str) -> Result<u32> {
    name.strip_prefix("eth")
        .filter(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::InvalidName {
            name: name.to_string(),
            reason: "a UML interface is eth0, eth1, ...",
        })
}

/// Memory rounded up to whole pages.
pub(super) fn round_pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE) * PAGE
}

/// `path` as one word of UML's command line, where whitespace splits words
/// and `,` and `:` split a word's fields.
pub(super) fn cmdline_path(path: &Path, what: &'static str) -> Result<String> {
    let s = path.to_str().ok_or_else(|| Error::UnusablePath {
        path: path.to_path_buf(),
        what,
        reason: "not valid UTF-8",
    })?;
    if s.chars().any(|c| c.is_whitespace() || c == ',' || c == ':') {
        return Err(Error::UnusablePath {
            path: path.to_path_buf(),
            what,
            reason: "UML's command line cannot carry whitespace, `,` or `:` in a path",
        });
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DiskSpec, InterfaceSpec, MacAddr};

    #[test]
    fn command_line_carries_disks_interfaces_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let uml = Uml::new(dir.path()).unwrap();
        // An ELF program that is always there, in the kernel's place.
        let program = std::env::current_exe().unwrap();
        let mut spec = DomainSpec::new(
            "alice",
            48 << 20,
            Boot::Kernel {
                kernel: program.clone(),
                ramdisk: None,
                cmdline: "root=/dev/ubda  rw".into(),
            },
        );
        spec.max_memory = Some(64 << 20);
        spec.disks.push(DiskSpec {
            path: "/d/alice.cow".into(),
            target: "ubda".into(),
            readonly: false,
        });
        spec.disks.push(DiskSpec {
            path: "/d/alice.cfg".into(),
            target: "ubdb".into(),
            readonly: true,
        });
        let mac = MacAddr::derived("lab/alice/eth0");
        spec.interfaces.push(InterfaceSpec {
            name: "eth0".into(),
            mac,
            attach: Attachment::Vde("/s/lan".into()),
        });
        let dir = uml.dir("alice").unwrap();
        let (kernel, args) = super::args(&dir, &spec, NetDriver::Eth).unwrap();
        assert_eq!(kernel, program);
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        // The guest's 64 MiB, and the kernel's own image on top.
        let own = crate::uml::footprint::reservation(&kernel, 64 << 20).unwrap();
        assert_eq!(own % (1 << 20), 0);
        assert!(args.contains(&format!("mem={}K", ((64 << 20) + own) / 1024)));
        assert!(args.contains(&"ubda=/d/alice.cow".to_string()));
        assert!(args.contains(&"ubdbr=/d/alice.cfg".to_string()));
        assert!(args.contains(&format!("eth0=vde,/s/lan,{mac}")));
        assert_eq!(&args[args.len() - 2..], ["root=/dev/ubda", "rw"]);
        // The vector driver's kernels get the same switch, as vec0.
        let (_, args) = super::args(&dir, &spec, NetDriver::Vector).unwrap();
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert!(args.contains(&format!("vec0:transport=vde,vnl=vde:///s/lan,mac={mac}")));
    }

    #[test]
    fn paths_that_would_split_the_command_line_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uml = Uml::new(dir.path()).unwrap();
        let mut spec = DomainSpec::new("a", 32 << 20, Boot::kernel("/usr/bin/linux.uml"));
        spec.disks.push(DiskSpec {
            path: "/d/my disk,x".into(),
            target: "ubda".into(),
            readonly: false,
        });
        assert!(matches!(
            uml.command_line(&spec),
            Err(Error::UnusablePath { .. })
        ));
    }

    #[test]
    fn command_line_words_that_would_hide_the_guest_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uml = Uml::new(dir.path()).unwrap();
        let mut spec = DomainSpec::new("a", 32 << 20, Boot::kernel("/usr/bin/linux.uml"));
        spec.boot = Boot::Kernel {
            kernel: "/usr/bin/linux.uml".into(),
            ramdisk: None,
            cmdline: "quiet umid=elsewhere".into(),
        };
        assert!(matches!(
            uml.command_line(&spec),
            Err(Error::InvalidName { .. })
        ));
    }
}
