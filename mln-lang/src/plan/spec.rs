//! What the planner compares: a project reduced to the attributes that
//! decide what must happen to each host and switch.
//!
//! The resolved [`crate::model::Project`] carries everything the language
//! can say; the planner and the state store only need this normalised view,
//! and keeping it separate means a recorded state stays readable when the
//! model grows new fields.

use std::collections::BTreeMap;

use std::net::IpAddr;

use mln_core::guest::InterfaceAddress;
use mln_core::MacAddr;
use serde::{Deserialize, Serialize};

use crate::model::Project;

pub use crate::model::Platform;

/// One network interface of a host as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInterface {
    /// `eth0`, `eth1`, ...
    pub name: String,
    /// The project switch it plugs into.
    pub switch: Option<String>,
    /// An existing host bridge it plugs into instead of a project switch.
    pub bridge: Option<String>,
    /// Its MAC address: the project's `mac`, or one derived from
    /// `project/host/interface` so it never changes across upgrades.
    pub mac: MacAddr,
    /// `address` as written (IPv4, IPv6, CIDR or `dhcp`).
    pub address: Option<String>,
    /// `netmask` as written.
    pub netmask: Option<String>,
    /// `gateway` as written.
    pub gateway: Option<String>,
}

impl HostInterface {
    /// Its address as the guest is given it: `10.0.0.1`, `10.0.0.1/24`
    /// (or with `netmask`; without either, /24 for IPv4 and /64 for IPv6),
    /// `dhcp`, or none. `host` names the host in the error.
    pub fn guest_address(&self, host: &str) -> mln_core::Result<InterfaceAddress> {
        let bad = |reason: String| mln_core::Error::InvalidGuestConfig {
            host: host.to_string(),
            field: format!("{}.address", self.name),
            reason,
        };
        let Some(text) = self.address.as_deref() else {
            return Ok(InterfaceAddress::Unconfigured);
        };
        if text == "dhcp" {
            return Ok(InterfaceAddress::Dhcp);
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|e| bad(e.to_string()))?)),
            None => (text, None),
        };
        let address: IpAddr = addr
            .parse()
            .map_err(|_| bad(format!("{addr:?} is not an address")))?;
        let prefix = match (prefix, self.netmask.as_deref()) {
            (Some(p), _) => p,
            (None, Some(mask)) => {
                let m: IpAddr = mask
                    .parse()
                    .map_err(|_| bad(format!("netmask {mask:?} is not an address")))?;
                match m {
                    IpAddr::V4(v4) => u32::from(v4).count_ones() as u8,
                    IpAddr::V6(v6) => u128::from(v6).count_ones() as u8,
                }
            }
            (None, None) if address.is_ipv4() => 24,
            (None, None) => 64,
        };
        Ok(InterfaceAddress::Static {
            address,
            prefix,
            broadcast: None,
        })
    }
}

/// One host (virtual machine) as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Host name, unique in the project.
    pub name: String,
    /// How it is virtualised.
    pub platform: Platform,
    /// The physical server that runs it; `None` is the local machine.
    pub service_host: Option<String>,
    /// RAM, bytes.
    pub memory: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Physical CPUs the vCPUs are pinned to (`cpus`, Xen only); empty:
    /// not pinned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    /// Filesystem template of the root disk.
    pub template: Option<String>,
    /// Root disk size, bytes (`None`: the template's size).
    pub disk_size: Option<u64>,
    /// Swap size, bytes.
    pub swap: Option<u64>,
    /// Where and how the disk is made (LVM, file path, shared
    /// copy-on-write base, free space), canonical JSON: any difference
    /// means a new disk.
    #[serde(default)]
    pub disk: String,
    /// Kernel to boot directly.
    pub kernel: Option<String>,
    /// Initial ramdisk.
    pub ramdisk: Option<String>,
    /// Extra kernel command line.
    pub cmdline: Option<String>,
    /// Lines for the hypervisor's domain configuration (`xen_extra`).
    #[serde(default)]
    pub domain_extra: Vec<String>,
    /// Start order inside the project (low first).
    pub boot_order: u32,
    /// Network interfaces, in guest order.
    pub interfaces: Vec<HostInterface>,
    /// Everything written into the guest (accounts, files, mounts, startup
    /// lines, resolver, ...): any difference means the guest configuration
    /// must be written again.
    pub guest: GuestSpec,
}

impl HostSpec {
    /// A host with MLN's defaults: UML, 128 MiB, one vCPU, boot order 99.
    ///
    /// ```
    /// use mln_lang::plan::HostSpec;
    /// let h = HostSpec::new("web");
    /// assert_eq!(h.memory, 128 << 20);
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        HostSpec {
            name: name.into(),
            platform: Platform::Uml,
            service_host: None,
            memory: 128 << 20,
            vcpus: 1,
            cpus: Vec::new(),
            template: None,
            disk_size: None,
            swap: None,
            disk: String::new(),
            kernel: None,
            ramdisk: None,
            cmdline: None,
            domain_extra: Vec::new(),
            boot_order: 99,
            interfaces: Vec::new(),
            guest: GuestSpec::default(),
        }
    }

    /// `free_space`, bytes: what the root disk gets beyond its template's
    /// size when `size` is not given (kept in the disk placement, where it
    /// has always been recorded).
    ///
    /// ```
    /// use mln_lang::plan::HostSpec;
    /// let mut h = HostSpec::new("web");
    /// h.disk = r#"{"free_space":1073741824,"lvm":false}"#.into();
    /// assert_eq!(h.free_space(), Some(1 << 30));
    /// assert_eq!(HostSpec::new("db").free_space(), None);
    /// ```
    pub fn free_space(&self) -> Option<u64> {
        serde_json::from_str::<serde_json::Value>(&self.disk)
            .ok()?
            .get("free_space")?
            .as_u64()
    }

    /// The disk placement without `free_space`, which grows a disk rather
    /// than placing it.
    pub(crate) fn placement(&self) -> serde_json::Value {
        let mut v = serde_json::from_str::<serde_json::Value>(&self.disk)
            .unwrap_or_else(|_| serde_json::Value::String(self.disk.clone()));
        if let Some(map) = v.as_object_mut() {
            map.remove("free_space");
        }
        v
    }

    /// The project switches this host plugs into, in interface order.
    pub fn switches(&self) -> impl Iterator<Item = &str> {
        self.interfaces.iter().filter_map(|i| i.switch.as_deref())
    }
}

/// What MLN configures inside a guest besides its interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSpec {
    /// Resolvers (`nameserver`).
    pub nameservers: Vec<String>,
    /// crypt(3) hash of root's password.
    pub root_passwd: Option<String>,
    /// Accounts.
    pub users: Vec<crate::model::User>,
    /// Groups.
    pub groups: Vec<crate::model::Group>,
    /// Files copied in.
    pub files: Vec<crate::model::FileCopy>,
    /// Mounts.
    pub mounts: Vec<crate::model::Mount>,
    /// Kernel modules to load.
    pub modules: Vec<String>,
    /// Lines run at boot.
    pub startup: Vec<String>,
    /// Lines run at halt.
    pub shutdown: Vec<String>,
    /// `sshkey` lines: `USER KEY`, the key added to that user's
    /// `authorized_keys`.
    pub sshkeys: Vec<String>,
    /// The console (`screen`, `xterm`, `none`).
    pub term: Option<String>,
    /// Broadcast address per interface, in interface order.
    pub broadcast: Vec<Option<String>>,
    /// Files plugins write into the guest, content given, in the order
    /// the plugins ran (see [`crate::plugin`]); written after `files`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written: Vec<WrittenFile>,
    /// Lines plugins add to run at boot, after `startup`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_startup: Vec<String>,
}

/// A file written into the guest with the content given: what a plugin
/// adds to a guest's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// Absolute path in the guest.
    pub path: String,
    /// The whole content.
    pub content: String,
    /// Permission bits (`None`: 0644).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The plugin that wrote it.
    pub plugin: String,
}

/// One project switch as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchSpec {
    /// Switch name, unique in the project.
    pub name: String,
    /// The physical server that runs it; `None` is the local machine.
    pub service_host: Option<String>,
    /// Flood every port (a hub).
    pub hub: bool,
    /// Bridge name to use on Xen.
    pub bridge: Option<String>,
    /// Join this existing switch socket instead of starting a switch.
    pub socket: Option<String>,
    /// Plug this host tap interface into the switch.
    pub tap: Option<String>,
    /// Ports the switch is started with: room for every interface the
    /// project plugs into it, twice over (cables between servers, a tap
    /// and hosts added later take ports too); 0 for the switch's own
    /// default (32). See [`SwitchSpec::ports_for`].
    #[serde(default)]
    pub ports: u32,
}

impl SwitchSpec {
    /// A plain local switch.
    pub fn new(name: impl Into<String>) -> Self {
        SwitchSpec {
            name: name.into(),
            service_host: None,
            hub: false,
            bridge: None,
            socket: None,
            tap: None,
            ports: 0,
        }
    }

    /// The ports a switch carrying `interfaces` interfaces is started
    /// with: twice that, in steps of 16, never fewer than `vde_switch`'s
    /// default of 32. (A `vde_switch` refuses a plug once its ports are
    /// taken, and the guest then runs without a network.)
    ///
    /// ```
    /// use mln_lang::plan::SwitchSpec;
    /// assert_eq!(SwitchSpec::ports_for(3), 32);
    /// assert_eq!(SwitchSpec::ports_for(50), 112);
    /// ```
    pub fn ports_for(interfaces: usize) -> u32 {
        let want = u32::try_from(interfaces.saturating_mul(2)).unwrap_or(u32::MAX);
        want.max(32).div_ceil(16).saturating_mul(16)
    }

    /// Whether a switch running as `running` must be made again to become
    /// `self`: any setting differs, except that a switch with at least
    /// the ports wanted keeps them.
    pub fn needs_recreate_from(&self, running: &SwitchSpec) -> bool {
        let same_but_ports = SwitchSpec {
            ports: self.ports,
            ..running.clone()
        };
        same_but_ports != *self || running.effective_ports() < self.effective_ports()
    }

    fn effective_ports(&self) -> u32 {
        if self.ports == 0 {
            32
        } else {
            self.ports
        }
    }
}

/// The points where a project's hook blocks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HookPoint {
    /// Before anything of a start.
    #[serde(rename = "beforeProjectStart")]
    BeforeProjectStart,
    /// Just before the first host starts.
    #[serde(rename = "beforeHostsStart")]
    BeforeHostsStart,
    /// Once every host has started.
    #[serde(rename = "afterHostsStart")]
    AfterHostsStart,
    /// After everything of a start.
    #[serde(rename = "afterProjectStart")]
    AfterProjectStart,
    /// Before anything of a stop.
    #[serde(rename = "beforeProjectStop")]
    BeforeProjectStop,
    /// Just before the first host stops.
    #[serde(rename = "beforeHostsStop")]
    BeforeHostsStop,
    /// Once every host has stopped.
    #[serde(rename = "afterHostsStop")]
    AfterHostsStop,
    /// After everything of a stop.
    #[serde(rename = "afterProjectStop")]
    AfterProjectStop,
}

impl HookPoint {
    /// The block name used in project files.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::BeforeProjectStart => "beforeProjectStart",
            HookPoint::BeforeHostsStart => "beforeHostsStart",
            HookPoint::AfterHostsStart => "afterHostsStart",
            HookPoint::AfterProjectStart => "afterProjectStart",
            HookPoint::BeforeProjectStop => "beforeProjectStop",
            HookPoint::BeforeHostsStop => "beforeHostsStop",
            HookPoint::AfterHostsStop => "afterHostsStop",
            HookPoint::AfterProjectStop => "afterProjectStop",
        }
    }

    /// Parse a block name (`beforeHostsStart`).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            HookPoint::BeforeProjectStart,
            HookPoint::BeforeHostsStart,
            HookPoint::AfterHostsStart,
            HookPoint::AfterProjectStart,
            HookPoint::BeforeProjectStop,
            HookPoint::BeforeHostsStop,
            HookPoint::AfterHostsStop,
            HookPoint::AfterProjectStop,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

/// A whole project as the planner sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredProject {
    /// Project name.
    pub name: String,
    /// Hosts by name.
    pub hosts: BTreeMap<String, HostSpec>,
    /// Switches by name.
    pub switches: BTreeMap<String, SwitchSpec>,
    /// Hook lines by point, in file order.
    pub hooks: BTreeMap<HookPoint, Vec<String>>,
    /// The folder hook blocks run in: the project file's folder, as MLN
    /// ran them in its project folder. `None`: the current folder.
    /// Recorded with the project, so `mln stop -p NAME` runs them there
    /// too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_dir: Option<std::path::PathBuf>,
    /// Brought back up by `mln check-persistent` (`global { persistent }`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent: bool,
    /// Whose project this is (MLN's `owner`, `sudo` and `group` keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
}

/// The Unix user (and group) a project's guests and switches run as, from
/// MLN's `owner` (or `sudo`) and `group` keys on its hosts and switches.
/// One per project (the checker refuses two, E0026): a host or switch
/// without the keys runs as the project's owner too. `mln`, run by root,
/// gives the project's folder to that user and does the work as them;
/// run by anyone else, it refuses a project that is not theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The user, as written (a name or a number).
    pub user: String,
    /// The group, as written, when one is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Ownership {
    /// The ownership `project`'s keys give: the first `sudo` or `owner`
    /// and the first `group` of its hosts, then of its switches. A
    /// `group` alone is the invoking user's group, as in MLN: `None` here
    /// (nothing to hand over).
    pub fn of(project: &Project) -> Option<Ownership> {
        let hosts = project.hosts.iter().map(|h| &h.owner_keys);
        let switches = project.switches.iter().map(|s| &s.owner_keys);
        let all: Vec<_> = hosts.chain(switches).collect();
        let (_, user) = all.iter().find_map(|k| k.user())?;
        Some(Ownership {
            user: user.clone(),
            group: all.iter().find_map(|k| k.group.clone()),
        })
    }
}

impl DesiredProject {
    /// An empty project called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        DesiredProject {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Add (or replace) a host.
    pub fn add_host(&mut self, host: HostSpec) {
        self.hosts.insert(host.name.clone(), host);
    }

    /// Add (or replace) a switch.
    pub fn add_switch(&mut self, switch: SwitchSpec) {
        self.switches.insert(switch.name.clone(), switch);
    }
}

/// The backend name of a host's domain: `PROJECT.HOST`. Project names have
/// no `.`, so two projects never share a domain name.
///
/// ```
/// assert_eq!(mln_lang::plan::domain_name("lab", "router"), "lab.router");
/// ```
pub fn domain_name(project: &str, host: &str) -> String {
    format!("{project}.{host}")
}

/// The MAC an interface gets when the project sets none: derived from
/// `project/host/interface`, so it survives rebuilds, moves and upgrades.
pub fn derived_mac(project: &str, host: &str, iface: &str) -> MacAddr {
    MacAddr::derived(&format!("{project}/{host}/{iface}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Host, Switch};

    #[test]
    fn a_projects_owner_is_its_sudo_or_owner_and_a_group_alone_hands_nothing_over() {
        let mut project = Project {
            name: "p".into(),
            hosts: vec![Host::new("a"), Host::new("b")],
            switches: vec![Switch::new("lan")],
            ..Project::default()
        };
        assert_eq!(Ownership::of(&project), None);
        project.switches[0].owner_keys.group = Some("lab".into());
        assert_eq!(Ownership::of(&project), None, "a group alone");
        project.hosts[1].owner_keys.owner = Some("ann".into());
        project.hosts[1].owner_keys.sudo = Some("bob".into());
        assert_eq!(
            Ownership::of(&project),
            Some(Ownership {
                user: "bob".into(),
                group: Some("lab".into())
            }),
            "sudo wins over owner, the switch's group counts"
        );
    }
}
