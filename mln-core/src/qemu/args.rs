//! The `qemu-system-x86_64` command line: how a [`DomainSpec`] becomes
//! QEMU arguments (machine, memory, serial console, QMP socket, kernel or
//! disk boot, virtio disks and network interfaces).
//!
//! Every device sits on a fixed PCI slot, so the guest finds them in the
//! same order on every boot and after a migration (whose target must have
//! the very same devices): the balloon on slot 3, disk `vdX` on slot
//! 4 + X (`vda` on 4), interface `ethN` on slot 16 + N. The guest's
//! kernel names disks and interfaces in PCI order: `vda`, `vdb`, ... and
//! `eth0`, `eth1`, ... as the spec says.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::accel::Acceleration;
use super::{BACKEND, CONSOLE, QMP};
use crate::domain::{Attachment, Boot, DiskSpec, DomainSpec};
use crate::error::{Error, Result};

/// Slots of the PCI bus QEMU's `pc` machine leaves free from 3 to 31.
const BALLOON_SLOT: u32 = 3;
const FIRST_DISK_SLOT: u32 = 4;
const MAX_DISKS: u32 = 12;
const FIRST_NIC_SLOT: u32 = 16;
const MAX_NICS: u32 = 16;

/// What the guest kernel always gets: its console on the first serial
/// port (the console log), the template's login prompt there too
/// (`mln.console`, see [`crate::attach`]), and a panic ends the guest
/// instead of hanging.
const KERNEL_BASE_CMDLINE: &str = "console=ttyS0 mln.console=ttyS0 panic=-1";

/// A disk image's format, as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImageFormat {
    /// qcow2; `backed` when it names a backing file (an overlay).
    Qcow2 {
        backed: bool,
    },
    Raw,
}

impl ImageFormat {
    /// `qcow2` when the file starts with qcow2's magic, else `raw`.
    pub fn of(path: &Path) -> Result<ImageFormat> {
        let mut header = [0u8; 16];
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut n = 0;
        while n < header.len() {
            match f.read(&mut header[n..]).map_err(|e| Error::io(path, e))? {
                0 => break,
                k => n += k,
            }
        }
        Ok(if n == 16 && header[..4] == *b"QFI\xfb" {
            // Bytes 8..16: where the backing file's name is, 0 for none.
            let backing = u64::from_be_bytes(header[8..16].try_into().unwrap_or_default());
            ImageFormat::Qcow2 {
                backed: backing != 0,
            }
        } else {
            ImageFormat::Raw
        })
    }

    fn name(self) -> &'static str {
        match self {
            ImageFormat::Qcow2 { .. } => "qcow2",
            ImageFormat::Raw => "raw",
        }
    }
}

/// The arguments (without the program) that run `spec` with its state in
/// `dir`, under `accel`; the guest starts paused (`-S`). `incoming` adds
/// `-incoming defer` instead of `-S`: the guest's state then comes by
/// migration, and QEMU lets it run the moment its state is in when it ran
/// at the sender (a guest paused there, or saved, which is paused first,
/// stays paused). With `-S` it waited for the backend to see the end of
/// the migration and send `cont`, which made a live move's downtime one
/// poll and two QMP sessions longer.
pub(super) fn args(
    dir: &Path,
    spec: &DomainSpec,
    accel: Acceleration,
    incoming: bool,
) -> Result<Vec<OsString>> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |words: &[&str]| a.extend(words.iter().map(OsString::from));
    let max_mib = spec.effective_max_memory().div_ceil(1 << 20);
    push(&["-name", &format!("guest={},debug-threads=on", spec.name)]);
    push(&["-machine", "pc", "-accel", accel.qemu_name()]);
    if accel == Acceleration::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&["-m", &format!("{max_mib}M")]);
    push(&[
        "-smp",
        &format!("{},maxcpus={}", spec.vcpus, spec.effective_max_vcpus()),
    ]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    if !incoming {
        push(&["-S"]);
    }
    // A guest that resets itself (a kernel panic with panic=-1, a reboot
    // from inside) ends QEMU, so a crash at boot shows as one instead of
    // a boot loop; `Hypervisor::reboot` lifts this for its own reset.
    push(&["-action", "reboot=shutdown"]);
    // The first serial line: the kernel's console and the template's
    // login prompt, served on a socket for `mln console` and logged (all
    // of it, whether anyone is attached or not) for boot checks and
    // `mln log`.
    let console = value(&dir.join(CONSOLE), "console log")?;
    let console_socket = value(&dir.join(super::CONSOLE_SOCKET), "console socket")?;
    push(&[
        "-chardev",
        &format!(
            "socket,id=console,path={console_socket},server=on,wait=off,\
             logfile={console},logappend=on"
        ),
    ]);
    push(&["-serial", "chardev:console"]);
    // The second serial port: `mln exec`'s channel to the guest's agent.
    let agent = value(&dir.join(super::AGENT_SOCKET), "agent socket")?;
    push(&[
        "-chardev",
        &format!("socket,id=agent,path={agent},server=on,wait=off"),
    ]);
    push(&["-serial", "chardev:agent"]);
    let qmp = value(&dir.join(QMP), "QMP socket")?;
    push(&["-qmp", &format!("unix:{qmp},server=on,wait=off")]);
    push(&[
        "-device",
        &format!("virtio-balloon-pci,id=balloon,addr={BALLOON_SLOT:#x}"),
    ]);
    for disk in &spec.disks {
        disk_args(disk, spec, &mut push)?;
    }
    for iface in &spec.interfaces {
        let index = interface_index(&iface.name)?;
        let netdev = match &iface.attach {
            Attachment::Vde(sock) => {
                format!(
                    "vde,id={},sock={}",
                    iface.name,
                    value(sock, "vde switch socket")?
                )
            }
            Attachment::Bridge(_) => format!(
                "tap,id={},ifname={},script=no,downscript=no",
                iface.name,
                super::bridge::tap_name(dir, &iface.name)
            ),
            Attachment::None => continue,
        };
        push(&["-netdev", &netdev]);
        push(&[
            "-device",
            &format!(
                "virtio-net-pci,netdev={},mac={},addr={:#x}",
                iface.name,
                iface.mac,
                FIRST_NIC_SLOT + index
            ),
        ]);
    }
    match &spec.boot {
        Boot::Kernel {
            kernel,
            ramdisk,
            cmdline,
        } => {
            a.push("-kernel".into());
            a.push(kernel.into());
            if let Some(rd) = ramdisk {
                a.push("-initrd".into());
                a.push(rd.into());
            }
            a.push("-append".into());
            a.push(format!("{KERNEL_BASE_CMDLINE} {cmdline}").trim_end().into());
        }
        Boot::Disk => {}
    }
    if incoming {
        a.extend(["-incoming", "defer"].map(OsString::from));
    }
    Ok(a)
}

/// `-drive` and `-device` for one virtio disk.
fn disk_args(disk: &DiskSpec, spec: &DomainSpec, push: &mut impl FnMut(&[&str])) -> Result<()> {
    let index = disk_index(&disk.target)?;
    let format = ImageFormat::of(&disk.path)?;
    let ro = if disk.readonly { ",readonly=on" } else { "" };
    // The template under an overlay is shared by every guest made over
    // it and never written. QEMU's image locks read a UML guest's lock
    // on it (a whole-file read lock) as a writer's, and refuse to start:
    // no locks on the template, the overlay keeps its own.
    let backing = match format {
        ImageFormat::Qcow2 { backed: true } => ",backing.file.locking=off",
        _ => "",
    };
    let id = format!("disk-{}", disk.target);
    push(&[
        "-drive",
        &format!(
            "file={},if=none,id={id},format={}{ro}{backing}",
            value(&disk.path, "disk image")?,
            format.name()
        ),
    ]);
    // The boot loader's disk: the first one, when the spec boots from disk.
    let boot = if matches!(spec.boot, Boot::Disk) && index == 0 {
        ",bootindex=0"
    } else {
        ""
    };
    push(&[
        "-device",
        &format!(
            "virtio-blk-pci,drive={id},addr={:#x}{boot}",
            FIRST_DISK_SLOT + index
        ),
    ]);
    Ok(())
}

/// `vda` → 0, `vdb` → 1, ...
pub(super) fn disk_index(target: &str) -> Result<u32> {
    target
        .strip_prefix("vd")
        .filter(|l| l.len() == 1)
        .and_then(|l| l.bytes().next())
        .filter(u8::is_ascii_lowercase)
        .map(|b| u32::from(b - b'a'))
        .filter(|&i| i < MAX_DISKS)
        .ok_or_else(|| Error::InvalidName {
            name: target.to_string(),
            reason: "a QEMU disk target is vda, vdb, ... vdl",
        })
}

/// `eth0` → 0, `eth1` → 1, ...
pub(super) fn interface_index(name: &str) -> Result<u32> {
    name.strip_prefix("eth")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|&i| i < MAX_NICS && name == format!("eth{i}"))
        .ok_or_else(|| Error::InvalidName {
            name: name.to_string(),
            reason: "a QEMU interface is eth0 ... eth15",
        })
}

/// `path` as a value inside a QEMU option (`key=value,...`): a comma is
/// doubled, as QEMU's option syntax wants; a path that is not UTF-8 is
/// refused.
fn value(path: &Path, what: &'static str) -> Result<String> {
    let text = path.to_str().ok_or_else(|| Error::UnusablePath {
        path: path.to_path_buf(),
        what,
        reason: "not UTF-8, which QEMU's options need",
    })?;
    Ok(text.replace(',', ",,"))
}

/// Refuse what the backend cannot run before anything is written.
pub(super) fn check(spec: &DomainSpec) -> Result<()> {
    for d in &spec.disks {
        disk_index(&d.target)?;
    }
    for (i, d) in spec.disks.iter().enumerate() {
        if spec.disks[..i].iter().any(|o| o.target == d.target) {
            return Err(Error::InvalidName {
                name: d.target.clone(),
                reason: "two disks with one target",
            });
        }
    }
    for iface in &spec.interfaces {
        interface_index(&iface.name)?;
    }
    if spec.vcpus == 0 || spec.memory == 0 {
        return Err(Error::Unsupported {
            backend: BACKEND,
            op: "a guest without vCPUs or memory",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InterfaceSpec, MacAddr};

    fn words(a: &[OsString]) -> Vec<String> {
        a.iter().map(|w| w.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_kernel_guest_with_disks_and_a_switch() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root,1.qcow2");
        let mut qcow = b"QFI\xfb".to_vec();
        qcow.resize(512, 0);
        qcow[15] = 0x80; // a backing file's name at byte 128
        std::fs::write(&root, qcow).unwrap();
        let cfg = dir.path().join("config.tar");
        std::fs::write(&cfg, b"not a qcow").unwrap();
        let mut spec = DomainSpec::new(
            "alice",
            64 << 20,
            Boot::Kernel {
                kernel: "/k/vmlinuz".into(),
                ramdisk: Some("/k/initrd.gz".into()),
                cmdline: "root=/dev/vda rw".into(),
            },
        );
        spec.max_memory = Some(128 << 20);
        spec.disks.push(DiskSpec {
            path: root,
            target: "vda".into(),
            readonly: false,
        });
        spec.disks.push(DiskSpec {
            path: cfg,
            target: "vdb".into(),
            readonly: true,
        });
        spec.interfaces.push(InterfaceSpec {
            name: "eth1".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            attach: Attachment::Vde("/s/lan/ctl".into()),
        });
        check(&spec).unwrap();
        let a = words(&args(Path::new("/st/alice"), &spec, Acceleration::Tcg, false).unwrap());
        let joined = a.join(" ");
        for want in [
            "-accel tcg",
            "-m 128M",
            "-smp 1,maxcpus=1",
            "-chardev socket,id=console,path=/st/alice/console,server=on,wait=off,logfile=/st/alice/console.log,logappend=on",
            "-qmp unix:/st/alice/qmp,server=on,wait=off",
            ",if=none,id=disk-vda,format=qcow2,backing.file.locking=off ",
            "root,,1.qcow2",
            "virtio-blk-pci,drive=disk-vda,addr=0x4 ",
            "id=disk-vdb,format=raw,readonly=on",
            "virtio-blk-pci,drive=disk-vdb,addr=0x5",
            "-netdev vde,id=eth1,sock=/s/lan/ctl",
            "virtio-net-pci,netdev=eth1,mac=02:00:00:00:00:01,addr=0x11",
            "-kernel /k/vmlinuz -initrd /k/initrd.gz",
        ] {
            assert!(joined.contains(want), "{want:?} not in {joined}");
        }
        let append = a.iter().position(|w| w == "-append").unwrap();
        assert_eq!(
            a[append + 1],
            "console=ttyS0 mln.console=ttyS0 panic=-1 root=/dev/vda rw"
        );
        assert!(!joined.contains("-incoming"));
        let incoming =
            words(&args(Path::new("/st/alice"), &spec, Acceleration::Kvm, true).unwrap());
        assert!(incoming.join(" ").ends_with("-incoming defer"));
        assert!(a.iter().any(|w| w == "-S"));
        assert!(!incoming.iter().any(|w| w == "-S"));
        assert!(incoming.join(" ").contains("-cpu host"));
    }

    #[test]
    fn a_disk_boot_marks_the_first_disk_bootable_and_loads_no_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("debian.img");
        std::fs::write(&image, [0u8; 512]).unwrap();
        let mut spec = DomainSpec::new("deb", 512 << 20, Boot::Disk);
        spec.vcpus = 2;
        spec.disks.push(DiskSpec {
            path: image,
            target: "vda".into(),
            readonly: false,
        });
        let a = words(&args(Path::new("/st/deb"), &spec, Acceleration::Tcg, false).unwrap());
        let joined = a.join(" ");
        assert!(joined.contains("format=raw"), "{joined}");
        assert!(joined.contains("addr=0x4,bootindex=0"), "{joined}");
        assert!(joined.contains("-smp 2,maxcpus=2"), "{joined}");
        assert!(!joined.contains("-kernel") && !joined.contains("-append"));
    }

    #[test]
    fn targets_and_interfaces_are_checked() {
        assert_eq!(disk_index("vda").unwrap(), 0);
        assert_eq!(disk_index("vdc").unwrap(), 2);
        for bad in ["xvda", "vd", "vdA", "vdaa", "vdz", "sda"] {
            assert!(disk_index(bad).is_err(), "{bad}");
        }
        assert_eq!(interface_index("eth15").unwrap(), 15);
        for bad in ["eth16", "eth01", "vec0", "eth", "eth-1"] {
            assert!(interface_index(bad).is_err(), "{bad}");
        }
    }
}
