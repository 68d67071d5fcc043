//! VXLAN (RFC 7348): a switch's Linux bridges on two servers joined into
//! one layer-2 network, Ethernet frames carried in UDP between the
//! servers, made with `ip` (iproute2) in the kernel.
//!
//! A [`Vxlan`] is one device per *link*: `ip link add NAME type vxlan id
//! VNI local ADDR remote ADDR dstport 4789`, plugged into the switch's
//! [`LinuxBridge`] as a port. A switch on a home server and several remote
//! servers is a star, as its `vde` cables are ([`super::Cable`]): the home
//! bridge has one device per remote server, each remote bridge one device
//! to home, and the home bridge forwards between them.
//!
//! Why not one device per server with several peers (`nolearning` or
//! `bridge fdb append 00:00:00:00:00:00 dst IP` per peer)? The bridge treats
//! such a device as one port and never sends a frame back out of the port it
//! came in on, so two remote servers would only reach each other if they
//! were peers of each other too: a full mesh, which needs every server to
//! reach every other one over UDP, and every server's peer list rewritten
//! when one joins. A device per link needs exactly the reachability a cable
//! needs (home and that remote), and a server joining or leaving adds or
//! deletes one device on two servers.
//!
//! # The VXLAN network identifier (VNI)
//!
//! The kernel refuses a second VXLAN device with the same VNI and UDP port
//! in one network namespace (it could not tell which device a packet is
//! for), so each link has its own VNI: [`Vxlan::derived_vni`] hashes the
//! project, the switch and the far server to 24 bits, and both ends derive
//! the same one. Two links that hash to the same VNI on one server (about
//! one chance in 8 million per pair) are not merged: the second device is
//! refused with [`Error::AlreadyExists`] naming the VNI, and the caller
//! picks another (any 1..=16777215 works, as long as both ends use it).
//!
//! # MTU
//!
//! VXLAN over IPv4 adds 50 bytes to every frame (outer IP 20, UDP 8, VXLAN
//! 8, inner Ethernet 14; 70 over IPv6). The device keeps an MTU of 1500
//! ([`Vxlan::MTU`]), the guests' default, so the bridge (whose MTU is its
//! smallest port's) never silently drops a full-size frame, and guests
//! need no change. On a 1500-byte underlay a full-size guest packet does
//! not fit in one UDP packet, and the sending server's kernel handles it
//! as tunnels of bridged traffic do (Linux 5.9 and later): a packet with
//! Don't Fragment (path MTU discovery, Linux's default for TCP and ping)
//! is answered with ICMP "fragmentation needed", MTU 1450, and the guest
//! sends smaller ones from then on (the first such packet is lost); one
//! without it is carried in fragments of the outer UDP packet. The test
//! `guests_on_two_servers_bridges_ping_through_a_vxlan_link` shows both the
//! message and the full-size pings that follow. Where the underlay carries
//! 1550 bytes (jumbo frames) none of this happens; a guest MTU of 1450 also
//! avoids it. No underlay device (`dev`) is named: the remote is reached
//! through the routing table, and naming one would cap the device's MTU at
//! the underlay's less 50.
//!
//! # Ownership and security
//!
//! What `mln` made is recorded in the switch's folder, one file per device,
//! and the device carries the record's token as its alias, as bridges do
//! ([`LinuxBridge`]): a device someone else made is never adopted or
//! deleted.
//!
//! ```text
//! STATE/NAME/vxlan-DEVICE.json   device, VNI, local and remote address,
//!                                bridge, token
//! ```
//!
//! VXLAN has no authentication and no encryption: anyone who can send UDP
//! to port 4789 of a server can inject frames into the switch. Run it on a
//! network between the servers that is trusted (or encrypted underneath).
//!
//! ```no_run
//! use mln_core::net::{LinuxBridge, SwitchConfig, Vxlan, VxlanSpec};
//! let state = "/var/lib/mln/lab/switches";
//! let lan = LinuxBridge::start(&SwitchConfig::new("lan"), &LinuxBridge::derived_name("lab", "lan"), state)?;
//! let spec = VxlanSpec {
//!     device: Vxlan::derived_name("lab", "lan", "server2"),
//!     vni: Vxlan::derived_vni("lab", "lan", "server2"),
//!     local: "192.0.2.1".parse().unwrap(),
//!     remote: "192.0.2.2".parse().unwrap(),
//! };
//! let link = Vxlan::create(&spec, &lan, state)?;
//! link.remove()?;
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::iplink::{self, alias, fnv1a, interface_exists, ip, token, SYS_NET};
use super::{LinuxBridge, Switch, SwitchStatus};
use crate::error::{Error, Result};
use crate::name::SafeName;

/// Where the kernel shows network interfaces.
/// `IFF_UP` in `/sys/class/net/NAME/flags`.
const IFF_UP: u64 = 0x1;
/// The largest VNI (24 bits).
const MAX_VNI: u32 = 0x00FF_FFFF;

/// What a VXLAN link should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanSpec {
    /// The device's interface name (at most 15 characters;
    /// [`Vxlan::derived_name`]).
    pub device: String,
    /// The VXLAN network identifier, 1..=16777215, the same at both ends
    /// ([`Vxlan::derived_vni`]).
    pub vni: u32,
    /// This server's address on the network between the servers: the
    /// packets' source, and where the far end sends to.
    pub local: IpAddr,
    /// The far server's address on that network.
    pub remote: IpAddr,
}

impl VxlanSpec {
    /// Check every name and address; nothing is made before this passes.
    fn check(&self) -> Result<SafeName> {
        let device = SafeName::interface(&self.device)?;
        if self.vni == 0 || self.vni > MAX_VNI {
            return Err(Error::InvalidName {
                name: self.vni.to_string(),
                reason: "a VXLAN network identifier is 1..=16777215",
            });
        }
        check_address(self.local)?;
        check_address(self.remote)?;
        if self.local.is_ipv4() != self.remote.is_ipv4() {
            return Err(Error::InvalidName {
                name: format!("{} -> {}", self.local, self.remote),
                reason: "the local and remote address of a VXLAN link are both IPv4 or both IPv6",
            });
        }
        if self.local == self.remote {
            return Err(Error::InvalidName {
                name: self.remote.to_string(),
                reason: "a VXLAN link joins two servers: the remote address is not the local one",
            });
        }
        Ok(device)
    }
}

/// Refuse addresses a unicast link between two servers cannot use.
fn check_address(addr: IpAddr) -> Result<()> {
    let reason = match addr {
        _ if addr.is_unspecified() => Some("a VXLAN address is a real address, not 0.0.0.0 or ::"),
        _ if addr.is_multicast() => Some("a VXLAN link is unicast: no multicast address"),
        _ if addr.is_loopback() => Some("a VXLAN link joins two servers: no loopback address"),
        IpAddr::V4(v4) if v4.is_broadcast() => {
            Some("a VXLAN link is unicast: no broadcast address")
        }
        // A link-local IPv6 address means nothing without naming the
        // interface (`dev`), which this module does not do (see MTU).
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            Some("an IPv6 link-local address needs an interface: use a global one")
        }
        _ => None,
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: addr.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A VXLAN device made (or adopted) for one link of a switch, a port of
/// the switch's [`LinuxBridge`].
#[derive(Debug, Clone)]
pub struct Vxlan {
    switch: String,
    dir: PathBuf,
    record: VxlanRecord,
}

/// What `vxlan-DEVICE.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct VxlanRecord {
    #[serde(flatten)]
    spec: VxlanSpec,
    /// The bridge the device is a port of.
    bridge: String,
    /// Our mark, also the device's interface alias.
    token: String,
}

impl Vxlan {
    /// The program run.
    pub const PROGRAM: &'static str = iplink::IP;
    /// The UDP port, IANA's for VXLAN.
    pub const PORT: u16 = 4789;
    /// Bytes VXLAN adds to a frame over IPv4 (70 over IPv6).
    pub const OVERHEAD: u32 = 50;
    /// The device's MTU: the guests' default, fragmented underneath when
    /// the underlay is no larger (see the module documentation).
    pub const MTU: u32 = 1500;

    /// A stable device name for the link of switch `switch` of project
    /// `project` to server `far_server`: `mlx` and 12 hexadecimal digits of
    /// a hash of the three, 15 characters, a valid interface name whatever
    /// the names are. Both ends may use the same name.
    ///
    /// ```
    /// use mln_core::net::Vxlan;
    /// let a = Vxlan::derived_name("lab", "lan", "server2");
    /// assert_eq!(a, Vxlan::derived_name("lab", "lan", "server2"));
    /// assert_ne!(a, Vxlan::derived_name("lab", "lan", "server3"));
    /// assert!(a.starts_with("mlx") && a.len() == 15);
    /// assert!(mln_core::SafeName::interface(&a).is_ok());
    /// ```
    pub fn derived_name(project: &str, switch: &str, far_server: &str) -> String {
        format!("mlx{:012x}", link_hash(project, switch, far_server) >> 16)
    }

    /// A stable VNI for that link, 1..=16777215: 24 bits of the same hash.
    /// Two links with the same VNI cannot both exist on one server (see
    /// the module documentation for what happens then).
    ///
    /// ```
    /// use mln_core::net::Vxlan;
    /// let vni = Vxlan::derived_vni("lab", "lan", "server2");
    /// assert_eq!(vni, Vxlan::derived_vni("lab", "lan", "server2"));
    /// assert!((1..=0xFF_FFFF).contains(&vni));
    /// ```
    pub fn derived_vni(project: &str, switch: &str, far_server: &str) -> u32 {
        let h = link_hash(project, switch, far_server);
        // Fold all 64 bits in, not just the low ones.
        let folded = (h ^ (h >> 24) ^ (h >> 48)) & u64::from(MAX_VNI);
        u32::try_from(folded).map_or(1, |v| v.max(1))
    }

    /// Make the link `spec` a port of `bridge` (a bridge of switch
    /// `bridge.name()` recorded under `state_dir`), up. A device of that
    /// name that is already ours is adopted when it was made from the same
    /// spec, else made again; one that is not ours fails with
    /// [`Error::AlreadyExists`] and is left alone, as does a VNI another
    /// device of this server uses. Every name and address is checked
    /// first.
    pub fn create(
        spec: &VxlanSpec,
        bridge: &LinuxBridge,
        state_dir: impl AsRef<Path>,
    ) -> Result<Self> {
        let device = spec.check()?;
        let switch = SafeName::new(bridge.name())?;
        if bridge.status() != SwitchStatus::Up {
            return Err(Error::Backend {
                what: format!("switch {switch}"),
                message: format!(
                    "cannot join VXLAN link {device} to bridge {}: it is not up",
                    bridge.bridge_name()
                ),
            });
        }
        let state_dir = state_dir.as_ref();
        let dir = state_dir
            .canonicalize()
            .map_err(|e| Error::io(state_dir, e))?
            .join(switch.as_str());
        let wanted = |r: &VxlanRecord| r.spec == *spec && r.bridge == bridge.bridge_name();
        let recorded = read_record(&dir, device.as_str())?;
        let adopted = recorded.as_ref().is_some_and(|r| wanted(r) && owns(r));
        let link = match recorded {
            Some(record) if adopted => Vxlan {
                switch: switch.to_string(),
                dir,
                record,
            },
            other => {
                if let Some(old) = other {
                    // Ours but made differently (or gone): clear it first.
                    Vxlan {
                        switch: switch.to_string(),
                        dir: dir.clone(),
                        record: old,
                    }
                    .remove()?;
                }
                if interface_exists(device.as_str()) {
                    return Err(Error::AlreadyExists {
                        domain: format!("interface {device} (not made by mln for switch {switch})"),
                    });
                }
                let record = VxlanRecord {
                    spec: spec.clone(),
                    bridge: bridge.bridge_name().to_string(),
                    token: token(&dir, device.as_str()),
                };
                let link = Vxlan {
                    switch: switch.to_string(),
                    dir,
                    record,
                };
                link.make()?;
                link
            }
        };
        if let Err(e) = link.join(bridge) {
            // Nothing half-made stays behind when this call made it.
            if !adopted {
                let _ = link.remove();
            }
            return Err(e);
        }
        Ok(link)
    }

    /// The link `device` of switch `switch` under `state_dir`, made
    /// earlier (maybe by another process); [`Error::NotFound`] when none is
    /// recorded.
    pub fn open(switch: &str, device: &str, state_dir: impl AsRef<Path>) -> Result<Self> {
        let switch = SafeName::new(switch)?;
        let device = SafeName::interface(device)?;
        let state_dir = state_dir.as_ref();
        let dir = state_dir
            .canonicalize()
            .map_err(|e| Error::io(state_dir, e))?
            .join(switch.as_str());
        match read_record(&dir, device.as_str())? {
            Some(record) => Ok(Vxlan {
                switch: switch.to_string(),
                dir,
                record,
            }),
            None => Err(Error::NotFound {
                domain: format!("VXLAN link {device} of switch {switch}"),
            }),
        }
    }

    /// Every link recorded for switch `switch` under `state_dir`, up or
    /// not, sorted by device name.
    pub fn list(switch: &str, state_dir: impl AsRef<Path>) -> Result<Vec<Self>> {
        let switch = SafeName::new(switch)?;
        let dir = state_dir.as_ref().join(switch.as_str());
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name();
            let Some(device) = name
                .to_str()
                .and_then(|n| n.strip_prefix("vxlan-"))
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if let Ok(link) = Self::open(switch.as_str(), device, state_dir.as_ref()) {
                found.push(link);
            }
        }
        found.sort_by(|a, b| a.record.spec.device.cmp(&b.record.spec.device));
        Ok(found)
    }

    /// The device's interface name.
    pub fn device(&self) -> &str {
        &self.record.spec.device
    }

    /// What the link was made from.
    pub fn spec(&self) -> &VxlanSpec {
        &self.record.spec
    }

    /// The bridge the device is a port of.
    pub fn bridge_name(&self) -> &str {
        &self.record.bridge
    }

    /// Whether the device exists, is ours, is up and is a port of its
    /// bridge (read from sysfs).
    pub fn is_up(&self) -> bool {
        let sys = Path::new(SYS_NET).join(self.device());
        let flags = fs::read_to_string(sys.join("flags"))
            .ok()
            .and_then(|f| u64::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok());
        let master = fs::read_link(sys.join("master"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        owns(&self.record)
            && flags.is_some_and(|f| f & IFF_UP != 0)
            && master.as_deref() == Some(self.record.bridge.as_str())
    }

    /// Delete the device, if it is ours, and its record; the switch's
    /// folder goes with its last file. A device of that name that is not
    /// ours is left alone. Removing twice is not an error.
    pub fn remove(&self) -> Result<()> {
        if owns(&self.record) {
            ip(&["link", "del", "dev", self.device()])?;
        }
        let path = record_path(&self.dir, self.device());
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let _ = fs::remove_dir(&self.dir);
        Ok(())
    }

    /// Make the device, recorded first (as [`LinuxBridge`] does: a crash
    /// part way leaves a record of a device that may not exist, never a
    /// device of ours without a record).
    fn make(&self) -> Result<()> {
        let spec = &self.record.spec;
        let device = spec.device.as_str();
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        write_record(&self.dir, &self.record)?;
        let (vni, local, remote) = (
            spec.vni.to_string(),
            spec.local.to_string(),
            spec.remote.to_string(),
        );
        let port = Self::PORT.to_string();
        let mtu = Self::MTU.to_string();
        let added = ip(&[
            "link", "add", "name", device, "mtu", &mtu, "type", "vxlan", "id", &vni, "local",
            &local, "remote", &remote, "dstport", &port,
        ]);
        if let Err(e) = added {
            let _ = fs::remove_file(record_path(&self.dir, device));
            let _ = fs::remove_dir(&self.dir);
            if interface_exists(device) {
                return Err(Error::AlreadyExists {
                    domain: format!("interface {device} (made meanwhile, not by mln)"),
                });
            }
            if let Error::Command { stderr, .. } = &e {
                if stderr.contains("VNI") {
                    return Err(Error::AlreadyExists {
                        domain: format!(
                            "VXLAN network {vni} on this server (another device uses it; \
                             switch {} needs another VNI for this link)",
                            self.switch
                        ),
                    });
                }
            }
            return Err(e);
        }
        if let Err(e) = ip(&[
            "link",
            "set",
            "dev",
            device,
            "alias",
            &alias(&self.record.token),
        ]) {
            // Made by the command above, so ours to delete.
            let _ = ip(&["link", "del", "dev", device]);
            let _ = fs::remove_file(record_path(&self.dir, device));
            return Err(e);
        }
        // A bridge port joins guests to each other, not to this host: no
        // IPv6 autoconfiguration on it (missing where IPv6 is off).
        let _ = fs::write(
            Path::new("/proc/sys/net/ipv6/conf")
                .join(device)
                .join("disable_ipv6"),
            "1",
        );
        Ok(())
    }

    /// Plug the device into `bridge` (the record's; [`LinuxBridge::plug`]
    /// checks the bridge is ours) and set it up.
    fn join(&self, bridge: &LinuxBridge) -> Result<()> {
        if !owns(&self.record) {
            return Err(Error::Backend {
                what: format!("switch {}", self.switch),
                message: format!("VXLAN link {} vanished while it was made", self.device()),
            });
        }
        bridge.plug(self.device())
    }
}

/// Is the device `record` names there, a VXLAN device, and carrying the
/// record's token?
fn owns(record: &VxlanRecord) -> bool {
    let sys = Path::new(SYS_NET).join(&record.spec.device);
    let is_vxlan = fs::read_to_string(sys.join("uevent"))
        .is_ok_and(|u| u.lines().any(|l| l == "DEVTYPE=vxlan"));
    let alias_ok = fs::read_to_string(sys.join("ifalias"))
        .is_ok_and(|a| a.trim_end_matches('\n') == alias(&record.token));
    is_vxlan && alias_ok
}

fn record_path(dir: &Path, device: &str) -> PathBuf {
    dir.join(format!("vxlan-{device}.json"))
}

fn read_record(dir: &Path, device: &str) -> Result<Option<VxlanRecord>> {
    let path = record_path(dir, device);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let record: VxlanRecord = serde_json::from_slice(&text).map_err(|e| {
        Error::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    // A record is input like any other: its names become arguments.
    record.spec.check()?;
    SafeName::interface(&record.bridge)?;
    if record.spec.device != device {
        return Err(Error::io(
            &path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the record names another device than its file",
            ),
        ));
    }
    Ok(Some(record))
}

fn write_record(dir: &Path, record: &VxlanRecord) -> Result<()> {
    iplink::write_record(&record_path(dir, &record.spec.device), record)
}

/// A hash of project, switch and far server; each length first, so that
/// names containing the separator cannot collide by shifting it.
fn link_hash(project: &str, switch: &str, far_server: &str) -> u64 {
    let seed = format!(
        "vxlan:{}:{}:{project}/{switch}/{far_server}",
        project.len(),
        switch.len()
    );
    fnv1a(&seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(local: &str, remote: &str) -> VxlanSpec {
        VxlanSpec {
            device: "mlxok0".into(),
            vni: 42,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn derived_names_and_vnis_are_stable_valid_and_distinct() {
        let long = "x".repeat(63);
        for (p, s, f) in [
            ("lab", "lan", "s2"),
            (long.as_str(), long.as_str(), long.as_str()),
            ("a", "b", ""),
        ] {
            let n = Vxlan::derived_name(p, s, f);
            assert_eq!(n.len(), 15, "{n}");
            assert!(SafeName::interface(&n).is_ok(), "{n}");
            let vni = Vxlan::derived_vni(p, s, f);
            assert!((1..=MAX_VNI).contains(&vni), "{vni}");
        }
        // The separator cannot be shifted between names.
        assert_ne!(
            Vxlan::derived_vni("ab", "c", "d"),
            Vxlan::derived_vni("a", "bc", "d")
        );
        assert_ne!(
            Vxlan::derived_name("lab", "lan", "s2"),
            Vxlan::derived_name("lab", "lan", "s3")
        );
        // Not the bridge's name: the device is a port of the bridge.
        assert_ne!(
            &Vxlan::derived_name("lab", "lan", "")[3..],
            &LinuxBridge::derived_name("lab", "lan")[3..]
        );
    }

    #[test]
    fn derived_vnis_of_many_links_rarely_collide() {
        // 2,000 links: the birthday bound for 24 bits says about 0.1
        // collisions are expected; a bad fold would show many.
        let mut seen = std::collections::HashSet::new();
        let mut collisions = 0;
        for i in 0..2000 {
            if !seen.insert(Vxlan::derived_vni("lab", &format!("sw{i}"), "server2")) {
                collisions += 1;
            }
        }
        assert!(collisions <= 2, "{collisions}");
    }

    #[test]
    fn unusable_addresses_and_vnis_are_refused() {
        assert!(spec("192.0.2.1", "192.0.2.2").check().is_ok());
        assert!(spec("2001:db8::1", "2001:db8::2").check().is_ok());
        for (local, remote) in [
            ("0.0.0.0", "192.0.2.2"),
            ("192.0.2.1", "239.1.1.1"),
            ("192.0.2.1", "255.255.255.255"),
            ("127.0.0.1", "192.0.2.2"),
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1", "2001:db8::2"),
            ("fe80::1", "fe80::2"),
            ("::", "2001:db8::2"),
            ("2001:db8::1", "ff02::1"),
        ] {
            assert!(
                matches!(spec(local, remote).check(), Err(Error::InvalidName { .. })),
                "{local} -> {remote} accepted"
            );
        }
        for vni in [0, MAX_VNI + 1, u32::MAX] {
            let mut s = spec("192.0.2.1", "192.0.2.2");
            s.vni = vni;
            assert!(s.check().is_err(), "VNI {vni} accepted");
        }
        let mut s = spec("192.0.2.1", "192.0.2.2");
        s.vni = MAX_VNI;
        assert!(s.check().is_ok());
    }
}
