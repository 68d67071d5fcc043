//! Hosts (virtual machines) and their network interfaces.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{GenericBlock, OwnerKeys, VecMap};

/// Memory when none is given: 128 MiB.
pub const DEFAULT_MEMORY: u64 = 128 * 1024 * 1024;
/// Disk size when neither `size` nor `free_space` is given: 250 MiB.
pub const DEFAULT_SIZE: u64 = 250 * 1024 * 1024;
/// Virtual CPUs when none are given.
pub const DEFAULT_VCPUS: u32 = 1;
/// Start order when none is given (low starts first).
pub const DEFAULT_BOOT_ORDER: u32 = 99;

/// One virtual machine, with everything it inherits from its superclasses
/// already merged in and every variable expanded.
///
/// When read from JSON, only `name` is required; every other field takes
/// its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The host's name (also its guest hostname).
    pub name: String,
    /// The superclass chain, nearest first (`superclass web` where `web`
    /// inherits `base` gives `["web", "base"]`). Empty when none.
    #[serde(default)]
    pub superclasses: Vec<String>,
    /// Which hypervisor runs it (`xen`, `hvm`, `kvm`, `uml`; default UML).
    #[serde(default)]
    pub platform: Platform,
    /// `service_host` / `location`: the physical server that runs it;
    /// `None` for the local machine.
    #[serde(default)]
    pub service_host: Option<String>,
    /// RAM in bytes (default [`DEFAULT_MEMORY`]).
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// `vcpus` (default [`DEFAULT_VCPUS`]).
    #[serde(default = "default_vcpus")]
    pub vcpus: u32,
    /// `cpus`: the physical CPUs a Xen host's vCPUs are pinned to, as
    /// written (`1`, `0-3`, `0,2-3`); Xen's `cpus=`, as in MLN.
    #[serde(default)]
    pub cpus: Option<String>,
    /// `template`: the filesystem template the root disk is made from;
    /// `None` for the site default.
    #[serde(default)]
    pub template: Option<String>,
    /// `size`: disk size in bytes; `None` for the default
    /// ([`DEFAULT_SIZE`], or the template's size plus `free_space`).
    #[serde(default)]
    pub size: Option<u64>,
    /// `free_space`: bytes added to the template's size.
    #[serde(default)]
    pub free_space: Option<u64>,
    /// `swap`: swap size in bytes; `None` for no swap.
    #[serde(default)]
    pub swap: Option<u64>,
    /// `lvm`: the disk is a logical volume.
    #[serde(default)]
    pub lvm: bool,
    /// `lvm_vg`: the volume group of the disk.
    #[serde(default)]
    pub lvm_vg: Option<String>,
    /// `lvm_snapshot`: the value as written (`"1"` for a bare flag).
    #[serde(default)]
    pub lvm_snapshot: Option<String>,
    /// `filepath`: the folder or file the disk image lives in.
    #[serde(default)]
    pub filepath: Option<String>,
    /// `cow_filesystem NAME`: share one base image copy-on-write.
    #[serde(default)]
    pub cow_filesystem: Option<String>,
    /// `kernel`: boot directly from this kernel.
    #[serde(default)]
    pub kernel: Option<String>,
    /// `ramdisk`: initial ramdisk for `kernel`.
    #[serde(default)]
    pub ramdisk: Option<String>,
    /// `extra`: extra kernel command line.
    #[serde(default)]
    pub extra: Option<String>,
    /// `boot_order`: start order in the project, low first (default
    /// [`DEFAULT_BOOT_ORDER`]).
    #[serde(default = "default_boot_order")]
    pub boot_order: u32,
    /// `term`: the console; `None` when not given (no console).
    #[serde(default)]
    pub term: Option<Term>,
    /// `nameserver`: resolver written into the guest.
    #[serde(default)]
    pub nameserver: Option<IpAddr>,
    /// `root_passwd`: crypt(3) hash of root's password.
    #[serde(default)]
    pub root_passwd: Option<String>,
    /// `owner`, `group` and `sudo`: whose guest it is.
    #[serde(default, flatten)]
    pub owner_keys: OwnerKeys,
    /// `users { NAME HASH [HOME] [UID] }`, in order.
    #[serde(default)]
    pub users: Vec<User>,
    /// `groups { G { USER ... } }`, in order.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// `files { SRC DEST [MODE] }`, in order.
    #[serde(default)]
    pub files: Vec<FileCopy>,
    /// `mount { SRC POINT FSTYPE [OPTS] }`, in order.
    #[serde(default)]
    pub mount: Vec<Mount>,
    /// `modules { ... }`: kernel modules, one line each.
    #[serde(default)]
    pub modules: Vec<String>,
    /// `startup { ... }`: shell lines the guest runs at boot.
    #[serde(default)]
    pub startup: Vec<String>,
    /// `shutdown { ... }`: shell lines the guest runs at halt.
    #[serde(default)]
    pub shutdown: Vec<String>,
    /// `sshkey { ... }`: public keys, one line each.
    #[serde(default)]
    pub sshkey: Vec<String>,
    /// `xen_extra { ... }`: lines passed verbatim to the Xen domain
    /// configuration (merged with the superclass's by their first word).
    #[serde(default)]
    pub xen_extra: Vec<String>,
    /// Network interfaces ordered by number (`eth0`, `eth1`, ...; other
    /// names after them, by name).
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Variables the host itself declares (`$name = value`), as written.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// The text each size keyword (`memory`, `size`, `free_space`, `swap`)
    /// was written as, after variable expansion (e.g. `memory` → `"256M"`),
    /// wherever in the superclass chain it came from. Only keywords that
    /// were written appear.
    #[serde(default)]
    pub written: VecMap<Cow<'static, str>, String>,
    /// Keywords this implementation does not know (reported as warnings),
    /// value after variable expansion (`"1"` for a flag).
    #[serde(default)]
    pub unknown: BTreeMap<String, String>,
    /// Nested blocks this implementation gives no meaning to, merged with
    /// the superclass's block of the same name and label key by key.
    #[serde(default)]
    pub blocks: Vec<GenericBlock>,
}

fn default_memory() -> u64 {
    DEFAULT_MEMORY
}

fn default_vcpus() -> u32 {
    DEFAULT_VCPUS
}

fn default_boot_order() -> u32 {
    DEFAULT_BOOT_ORDER
}

impl Host {
    /// A host called `name` with every setting at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Host {
            name: name.into(),
            superclasses: Vec::new(),
            platform: Platform::default(),
            service_host: None,
            memory: DEFAULT_MEMORY,
            vcpus: DEFAULT_VCPUS,
            cpus: None,
            template: None,
            size: None,
            free_space: None,
            swap: None,
            lvm: false,
            lvm_vg: None,
            lvm_snapshot: None,
            filepath: None,
            cow_filesystem: None,
            kernel: None,
            ramdisk: None,
            extra: None,
            boot_order: DEFAULT_BOOT_ORDER,
            term: None,
            nameserver: None,
            root_passwd: None,
            owner_keys: OwnerKeys::default(),
            users: Vec::new(),
            groups: Vec::new(),
            files: Vec::new(),
            mount: Vec::new(),
            modules: Vec::new(),
            startup: Vec::new(),
            shutdown: Vec::new(),
            sshkey: Vec::new(),
            xen_extra: Vec::new(),
            interfaces: Vec::new(),
            variables: BTreeMap::new(),
            written: VecMap::new(),
            unknown: BTreeMap::new(),
            blocks: Vec::new(),
        }
    }

    /// The interface called `name` (`eth0`, ...).
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

/// The hypervisor a host runs on. One enum for the language, the planner
/// and the runtime; its JSON and its [`fmt::Display`] are the MLN keyword
/// (`uml`, `xen`, `hvm`, `kvm`), and it parses back from it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// User-Mode Linux (`uml`, MLN's default).
    #[default]
    Uml,
    /// A paravirtualised Xen guest (`xen`).
    Xen,
    /// A fully virtualised Xen guest (`hvm`).
    Hvm,
    /// KVM (`kvm`).
    Kvm,
}

impl Platform {
    /// Every platform, in keyword order of the language reference.
    pub const ALL: [Platform; 4] = [Platform::Uml, Platform::Xen, Platform::Hvm, Platform::Kvm];

    /// The MLN keyword that selects this platform.
    pub fn keyword(self) -> &'static str {
        match self {
            Platform::Uml => "uml",
            Platform::Xen => "xen",
            Platform::Hvm => "hvm",
            Platform::Kvm => "kvm",
        }
    }

    /// The mln-core backend that runs this platform, when there is one.
    pub fn backend(self) -> Option<mln_core::BackendKind> {
        match self {
            Platform::Uml => Some(mln_core::BackendKind::Uml),
            Platform::Xen | Platform::Hvm => Some(mln_core::BackendKind::Xen),
            Platform::Kvm => Some(mln_core::BackendKind::Qemu),
        }
    }

    /// True when memory can change on a running guest (Xen's balloon,
    /// QEMU's virtio balloon), up to the ceiling it was created with.
    pub fn live_resize(self) -> bool {
        matches!(self, Platform::Xen | Platform::Hvm | Platform::Kvm)
    }

    /// True when vCPUs can be brought online or offline on a running
    /// guest (Xen).
    pub fn live_vcpus(self) -> bool {
        matches!(self, Platform::Xen | Platform::Hvm)
    }

    /// True when a running guest can move between service hosts (Xen's
    /// and QEMU's migration streams).
    pub fn live_migration(self) -> bool {
        matches!(self, Platform::Xen | Platform::Hvm | Platform::Kvm)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A word that names no platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform `{0}`: expected uml, xen, hvm or kvm")]
pub struct UnknownPlatform(pub String);

impl std::str::FromStr for Platform {
    type Err = UnknownPlatform;

    /// The platform a keyword names.
    ///
    /// ```
    /// use mln_lang::model::Platform;
    /// assert_eq!("hvm".parse::<Platform>(), Ok(Platform::Hvm));
    /// assert_eq!(Platform::Hvm.to_string(), "hvm");
    /// assert!("vmware".parse::<Platform>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.keyword() == s)
            .ok_or_else(|| UnknownPlatform(s.to_string()))
    }
}

/// The console a host gets (`term`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    /// A detached `screen` session.
    Screen,
    /// An `xterm` window.
    Xterm,
    /// No console.
    None,
}

impl Term {
    /// The MLN spelling (`screen`, `xterm`, `none`).
    pub fn keyword(self) -> &'static str {
        match self {
            Term::Screen => "screen",
            Term::Xterm => "xterm",
            Term::None => "none",
        }
    }
}

/// A guest account: `users { NAME HASH [HOME] [UID] }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// crypt(3) hash of the password (may be empty).
    #[serde(default)]
    pub hash: String,
    /// Home folder.
    #[serde(default)]
    pub home: Option<String>,
    /// Numeric user id.
    #[serde(default)]
    pub uid: Option<u32>,
}

/// A guest group: `groups { NAME { USER ... } }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Member user names, in order.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A file copied into the guest: `files { SRC DEST [MODE] }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileCopy {
    /// Path on the managing machine.
    pub src: String,
    /// Path in the guest.
    pub dest: String,
    /// Permissions as written (e.g. `0644`).
    #[serde(default)]
    pub mode: Option<String>,
}

/// A guest mount: `mount { SRC POINT FSTYPE [OPTS] }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mount {
    /// Device or remote path.
    pub src: String,
    /// Mount point in the guest.
    pub point: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount options as written.
    #[serde(default)]
    pub options: Option<String>,
}

/// One network interface: `network eth0 { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// `eth0`, `eth1`, ...
    pub name: String,
    /// `switch SW`: the project switch it plugs into.
    #[serde(default)]
    pub switch: Option<String>,
    /// `address A`, `address A/PREFIX` or `address dhcp`.
    #[serde(default)]
    pub address: Option<Address>,
    /// `netmask`.
    #[serde(default)]
    pub netmask: Option<IpAddr>,
    /// `broadcast`.
    #[serde(default)]
    pub broadcast: Option<IpAddr>,
    /// `gateway`.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// `mac`: a fixed MAC address, lower case with colons
    /// (`02:00:0a:01:00:0b`); `None` for a generated, stable one.
    #[serde(default)]
    pub mac: Option<String>,
    /// `bridge BR`: attach to this existing host bridge instead of a switch.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Keywords this implementation does not know, value after expansion.
    #[serde(default)]
    pub unknown: BTreeMap<String, String>,
}

impl Interface {
    /// An interface called `name` with nothing set.
    pub fn new(name: impl Into<String>) -> Self {
        Interface {
            name: name.into(),
            switch: None,
            address: None,
            netmask: None,
            broadcast: None,
            gateway: None,
            mac: None,
            bridge: None,
            unknown: BTreeMap::new(),
        }
    }

    /// The number in `ethN`, when the name has that form.
    pub fn number(&self) -> Option<u32> {
        self.name.strip_prefix("eth").and_then(|n| {
            if n.is_empty()
                || !n.bytes().all(|b| b.is_ascii_digit())
                || n.len() > 1 && n.starts_with('0')
            {
                None
            } else {
                n.parse().ok()
            }
        })
    }
}

/// How an interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Address {
    /// A fixed address, optionally with a prefix length (`10.0.0.1/24`).
    Static {
        /// The address.
        addr: IpAddr,
        /// The prefix length when written as CIDR.
        #[serde(default)]
        prefix: Option<u8>,
    },
    /// `dhcp`.
    Dhcp,
}

impl std::fmt::Display for Address {
    /// MLN spelling: `10.0.0.1`, `10.0.0.1/24` or `dhcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Static { addr, prefix: None } => write!(f, "{addr}"),
            Address::Static {
                addr,
                prefix: Some(p),
            } => write!(f, "{addr}/{p}"),
            Address::Dhcp => f.write_str("dhcp"),
        }
    }
}
