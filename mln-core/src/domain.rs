//! The backend-neutral lifecycle API: what a domain is ([`DomainSpec`]), what
//! a backend can do with it ([`Hypervisor`]) and what it reports
//! ([`DomainInfo`]).

use std::fmt;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which backend runs a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Xen through libxenlight.
    Xen,
    /// User-Mode Linux processes.
    Uml,
    /// QEMU full-system guests (KVM where it really runs guests, else TCG).
    Qemu,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Xen => "xen",
            BackendKind::Uml => "uml",
            BackendKind::Qemu => "qemu",
        })
    }
}

/// How a domain boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Boot {
    /// Paravirtualised (Xen PV), UML or a QEMU guest: a kernel loaded
    /// directly.
    Kernel {
        /// The kernel image (a `vmlinuz` for Xen, `linux.uml` for UML).
        kernel: PathBuf,
        /// An optional initial ramdisk.
        ramdisk: Option<PathBuf>,
        /// The kernel command line.
        cmdline: String,
    },
    /// Fully virtualised (Xen HVM, QEMU): boot from the first disk, with
    /// the boot loader on it.
    Disk,
}

impl Boot {
    /// A kernel boot with no ramdisk and an empty command line.
    pub fn kernel(path: impl Into<PathBuf>) -> Self {
        Boot::Kernel {
            kernel: path.into(),
            ramdisk: None,
            cmdline: String::new(),
        }
    }
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True when the locally administered bit is set (addresses we generate).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// True for a unicast address (the multicast bit is clear).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }

    /// A stable, locally administered, unicast address derived from `seed`
    /// (for example `project/host/eth0`): the same seed always gives the
    /// same address, so MACs survive rebuilds and upgrades.
    pub fn derived(seed: &str) -> Self {
        // FNV-1a, 64 bit: stable across Rust versions, unlike `DefaultHasher`.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a network interface is plugged into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attachment {
    /// A Linux bridge on the host (Xen's usual way).
    Bridge(String),
    /// The control socket folder of a `vde_switch` (UML's way).
    Vde(PathBuf),
    /// Not connected.
    None,
}

/// One network interface of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    /// Guest-side name, `eth0`, `eth1`, ...
    pub name: String,
    /// The interface's MAC address.
    pub mac: MacAddr,
    /// Where the host side is plugged in.
    pub attach: Attachment,
}

/// One disk of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpec {
    /// Image file (or block device) on the host.
    pub path: PathBuf,
    /// Guest-side device name (`xvda`, `ubda`, ...).
    pub target: String,
    /// Attach read-only.
    pub readonly: bool,
}

/// Everything a backend needs to create one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSpec {
    /// Domain name, unique per backend; must be a [`crate::SafeName`].
    pub name: String,
    /// Initial memory, bytes.
    pub memory: u64,
    /// Maximum memory the domain may balloon up to, bytes (defaults to `memory`).
    pub max_memory: Option<u64>,
    /// Online virtual CPUs.
    pub vcpus: u32,
    /// Maximum virtual CPUs (defaults to `vcpus`).
    pub max_vcpus: Option<u32>,
    /// Physical CPUs every vCPU is pinned to (Xen's `cpus=`); empty: not
    /// pinned. The Xen and QEMU backends pin (QEMU's whole process);
    /// UML runs the domain unpinned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    /// How the domain boots.
    pub boot: Boot,
    /// Network interfaces, in guest order.
    pub interfaces: Vec<InterfaceSpec>,
    /// Disks, in guest order.
    pub disks: Vec<DiskSpec>,
    /// The line the guest prints on its console once it has booted (its
    /// template's marker), if it prints one: what
    /// [`Hypervisor::boot_status`] waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_marker: Option<String>,
    /// The guest runs MLN's command agent (`mln exec`, see
    /// [`crate::exec`]) on its second console line. UML and QEMU give
    /// every guest that line; Xen gives a PV guest one (a channel, served
    /// by a QEMU process in dom0) only when this is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent: bool,
}

impl DomainSpec {
    /// A spec with one vCPU, no interfaces and no disks.
    pub fn new(name: impl Into<String>, memory: u64, boot: Boot) -> Self {
        DomainSpec {
            name: name.into(),
            memory,
            max_memory: None,
            vcpus: 1,
            max_vcpus: None,
            cpus: Vec::new(),
            boot,
            interfaces: Vec::new(),
            disks: Vec::new(),
            boot_marker: None,
            agent: false,
        }
    }

    /// The maximum memory, bytes: `max_memory` or else `memory`.
    pub fn effective_max_memory(&self) -> u64 {
        self.max_memory.unwrap_or(self.memory).max(self.memory)
    }

    /// The maximum vCPU count: `max_vcpus` or else `vcpus`.
    pub fn effective_max_vcpus(&self) -> u32 {
        self.max_vcpus.unwrap_or(self.vcpus).max(self.vcpus)
    }
}

/// Run state of a domain as the backend reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainState {
    /// Running (or runnable/blocked).
    Running,
    /// Paused by the toolstack.
    Paused,
    /// Shut down, not yet destroyed.
    Shutdown,
    /// Crashed.
    Crashed,
    /// Being torn down.
    Dying,
    /// The backend could not tell.
    Unknown,
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown"))
    }
}

/// What a backend reports about one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// Domain name.
    pub name: String,
    /// Backend identity: the Xen domid, or the UML or QEMU process id.
    pub id: u32,
    /// Which backend runs it.
    pub backend: BackendKind,
    /// Run state.
    pub state: DomainState,
    /// Current memory, bytes.
    pub memory: u64,
    /// Maximum memory, bytes.
    pub max_memory: u64,
    /// Online vCPUs.
    pub vcpus: u32,
    /// CPU time used so far.
    pub cpu_time: Duration,
}

/// How far a started guest got in its boot (see [`Hypervisor::boot_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "boot", rename_all = "snake_case")]
pub enum BootStatus {
    /// It confirmed its boot (printed the template's marker, or answered
    /// where the backend cannot read a marker).
    Booted,
    /// Still running, not confirmed yet.
    Booting,
    /// It stopped before confirming its boot.
    Failed {
        /// The state it ended in (`crashed`, `shutdown`).
        state: DomainState,
        /// Why, in words, when the backend can tell (a known cause and
        /// its fix).
        reason: Option<String>,
        /// The last lines of its console, when the backend keeps one.
        console: String,
        /// It died of a fault known to pass, before it changed anything
        /// on its disks: starting it again is safe and most likely boots
        /// it (see [`crate::uml::CrashCause::is_transient`]).
        #[serde(default)]
        transient: bool,
    },
}

/// A hypervisor backend: one safe method per lifecycle operation.
///
/// Domains are addressed by name. `create` leaves a new domain paused
/// (libxl's rule; UML follows it) until `start`.
pub trait Hypervisor: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Create a domain from `spec`, paused.
    fn create(&self, spec: &DomainSpec) -> Result<DomainInfo>;
    /// Let a freshly created domain run.
    fn start(&self, name: &str) -> Result<()>;
    /// Pause a running domain.
    fn pause(&self, name: &str) -> Result<()>;
    /// Resume a paused domain.
    fn resume(&self, name: &str) -> Result<()>;
    /// Ask the guest to shut down cleanly; destroy it when `timeout` passes.
    fn shutdown(&self, name: &str, timeout: Duration) -> Result<()>;
    /// Ask the guest to reboot.
    fn reboot(&self, name: &str) -> Result<()>;
    /// Tear the domain down at once.
    fn destroy(&self, name: &str) -> Result<()>;
    /// Report one domain.
    fn info(&self, name: &str) -> Result<DomainInfo>;
    /// Report every domain this backend manages.
    fn list(&self) -> Result<Vec<DomainInfo>>;
    /// Set the memory target (balloon), bytes.
    fn set_memory(&self, name: &str, bytes: u64) -> Result<()>;
    /// Set the number of online vCPUs.
    fn set_vcpus(&self, name: &str, count: u32) -> Result<()>;
    /// Save the domain's state to `path`; the domain is gone afterwards.
    fn save(&self, name: &str, path: &Path) -> Result<()>;
    /// Recreate a domain from a file written by `save`.
    fn restore(&self, spec: &DomainSpec, path: &Path) -> Result<DomainInfo>;
    /// Send a running domain over `stream` (the sending half of a migration).
    fn migrate_send(&self, name: &str, stream: BorrowedFd<'_>) -> Result<()>;
    /// Receive a domain sent by `migrate_send` from `stream`.
    fn migrate_receive(&self, spec: &DomainSpec, stream: BorrowedFd<'_>) -> Result<DomainInfo>;

    /// Memory the hypervisor itself can still give to new domains, bytes;
    /// `None` when guests take their memory from the host's own (UML),
    /// where the host's available memory is what counts.
    fn free_memory(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// All the memory the hypervisor manages, bytes, beside
    /// [`Hypervisor::free_memory`]; `None` where that is the host's own.
    fn total_memory(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Run `argv` in running domain `name` (through its guest agent: see
    /// [`crate::exec`]), waiting at most `timeout`; its exit status and
    /// output.
    fn exec(
        &self,
        name: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<crate::exec::ExecOutput> {
        let _ = (name, argv, timeout);
        Err(Error::Unsupported {
            backend: "this backend",
            op: "running a command in a guest",
        })
    }

    /// Where the interactive console of running domain `name` is reached
    /// (see [`crate::attach`]).
    fn console(&self, name: &str) -> Result<crate::attach::ConsoleEndpoint> {
        let _ = name;
        Err(Error::Unsupported {
            backend: "this backend",
            op: "an interactive console",
        })
    }

    /// Has the started domain `name` finished booting (printed its spec's
    /// [`DomainSpec::boot_marker`])? A backend that cannot read the
    /// console counts a running domain as booted; this default does just
    /// that.
    fn boot_status(&self, name: &str) -> Result<BootStatus> {
        let info = self.info(name)?;
        Ok(match info.state {
            DomainState::Running | DomainState::Paused => BootStatus::Booted,
            DomainState::Dying | DomainState::Unknown => BootStatus::Booting,
            state @ (DomainState::Shutdown | DomainState::Crashed) => BootStatus::Failed {
                state,
                reason: None,
                console: String::new(),
                transient: false,
            },
        })
    }
}

/// A domain addressed through its backend: a convenience over [`Hypervisor`].
pub struct DomainHandle<'h> {
    hypervisor: &'h dyn Hypervisor,
    name: String,
}

impl<'h> DomainHandle<'h> {
    /// Create the domain described by `spec` and return its handle.
    pub fn create(hypervisor: &'h dyn Hypervisor, spec: &DomainSpec) -> Result<Self> {
        hypervisor.create(spec)?;
        Ok(DomainHandle {
            hypervisor,
            name: spec.name.clone(),
        })
    }

    /// A handle on an existing domain (checked with `info`).
    pub fn open(hypervisor: &'h dyn Hypervisor, name: &str) -> Result<Self> {
        hypervisor.info(name)?;
        Ok(DomainHandle {
            hypervisor,
            name: name.to_string(),
        })
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// See [`Hypervisor::start`].
    pub fn start(&self) -> Result<()> {
        self.hypervisor.start(&self.name)
    }

    /// See [`Hypervisor::pause`].
    pub fn pause(&self) -> Result<()> {
        self.hypervisor.pause(&self.name)
    }

    /// See [`Hypervisor::resume`].
    pub fn resume(&self) -> Result<()> {
        self.hypervisor.resume(&self.name)
    }

    /// See [`Hypervisor::shutdown`].
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        self.hypervisor.shutdown(&self.name, timeout)
    }

    /// See [`Hypervisor::destroy`].
    pub fn destroy(self) -> Result<()> {
        self.hypervisor.destroy(&self.name)
    }

    /// See [`Hypervisor::info`].
    pub fn info(&self) -> Result<DomainInfo> {
        self.hypervisor.info(&self.name)
    }

    /// See [`Hypervisor::set_memory`].
    pub fn set_memory(&self, bytes: u64) -> Result<()> {
        self.hypervisor.set_memory(&self.name, bytes)
    }

    /// See [`Hypervisor::set_vcpus`].
    pub fn set_vcpus(&self, count: u32) -> Result<()> {
        self.hypervisor.set_vcpus(&self.name, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_mac_is_stable_local_unicast() {
        let a = MacAddr::derived("lab/router/eth0");
        assert_eq!(a, MacAddr::derived("lab/router/eth0"));
        assert_ne!(a, MacAddr::derived("lab/router/eth1"));
        assert!(a.is_local());
        assert!(a.is_unicast());
    }

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "00:16:3E:aa:bb:0c".parse().unwrap();
        assert_eq!(m.to_string(), "00:16:3e:aa:bb:0c");
        assert!("00:16:3e:aa:bb".parse::<MacAddr>().is_err());
        assert!("00:16:3e:aa:bb:cc:dd".parse::<MacAddr>().is_err());
        assert!("0:16:3e:aa:bb:cc".parse::<MacAddr>().is_err());
        assert!("zz:16:3e:aa:bb:cc".parse::<MacAddr>().is_err());
    }

    #[test]
    fn backend_kinds_have_one_spelling() {
        for (kind, word) in [
            (BackendKind::Xen, "xen"),
            (BackendKind::Uml, "uml"),
            (BackendKind::Qemu, "qemu"),
        ] {
            assert_eq!(kind.to_string(), word);
            assert_eq!(serde_json::to_value(kind).unwrap(), word);
            assert_eq!(
                serde_json::from_value::<BackendKind>(word.into()).unwrap(),
                kind
            );
        }
    }

    #[test]
    fn max_memory_never_below_memory() {
        let mut s = DomainSpec::new("a", 256, Boot::Disk);
        s.max_memory = Some(128);
        assert_eq!(s.effective_max_memory(), 256);
    }
}
