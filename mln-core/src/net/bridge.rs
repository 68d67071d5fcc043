//! Linux bridges: the switch of Xen guests, made with `ip` (iproute2).
//!
//! Where the process may manage network interfaces (root, or
//! `CAP_NET_ADMIN`: [`LinuxBridge::can_manage`]) and the guests are Xen's, a
//! project switch is a bridge in the host's kernel; Xen's hotplug script
//! plugs each guest's vif into it by name ([`Attachment::Bridge`]). There is
//! no process: the bridge lives until it is deleted. What `mln` made is
//! recorded in the switch's state folder, next to a `vde_switch`'s files:
//!
//! ```text
//! STATE/NAME/bridge.json   the bridge's name, its tap, and the token that
//!                          identifies it as ours
//! ```
//!
//! A bridge is `mln`'s when that record names it AND the bridge carries the
//! record's token as its interface alias (`/sys/class/net/BR/ifalias`): a
//! bridge that someone else made, or made again after ours was deleted, is
//! never adopted, changed or deleted.
//!
//! A hub ([`SwitchConfig::hub`]) is a bridge that forgets every address at
//! once (`ageing_time 0`), so it floods every frame to every port; a switch
//! keeps learned addresses for the kernel's default 300 s.
//!
//! ```no_run
//! use mln_core::net::{LinuxBridge, Switch, SwitchConfig};
//! let name = LinuxBridge::derived_name("lab", "lan"); // "mln" + 12 hex digits
//! let lan = LinuxBridge::start(&SwitchConfig::new("lan"), &name, "/var/lib/mln/lab/switches")?;
//! let attach = lan.attachment(); // Attachment::Bridge(name), into InterfaceSpec::attach
//! lan.stop()?;
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::iplink::{self, alias, fnv1a, interface_exists, ip, token, SYS_NET};
use super::{Switch, SwitchConfig, SwitchStatus};
use crate::domain::Attachment;
use crate::error::{Error, Result};
use crate::name::SafeName;

/// The record file in the switch's folder.
const RECORD: &str = "bridge.json";
/// Where the kernel shows network interfaces.
/// The kernel's default address ageing, centiseconds (300 s).
const SWITCH_AGEING: &str = "30000";
/// `CAP_NET_ADMIN`, the capability that creating interfaces needs.
const CAP_NET_ADMIN: u32 = 12;
/// `IFF_UP` in `/sys/class/net/NAME/flags`.
const IFF_UP: u64 = 0x1;

/// A Linux bridge made (or adopted) for a project switch.
#[derive(Debug, Clone)]
pub struct LinuxBridge {
    name: String,
    dir: PathBuf,
    record: BridgeRecord,
}

/// What `bridge.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BridgeRecord {
    /// The bridge's interface name.
    bridge: String,
    /// Our mark, also the bridge's interface alias.
    token: String,
    /// A tap interface made for the switch's `tap` and plugged in.
    #[serde(default)]
    tap: Option<String>,
}

impl LinuxBridge {
    /// The program run.
    pub const PROGRAM: &'static str = iplink::IP;

    /// A stable bridge name for switch `switch` of project `project`:
    /// `mln` and 12 hexadecimal digits of a hash of both names, 15
    /// characters, a valid interface name whatever the two names are.
    ///
    /// ```
    /// use mln_core::net::LinuxBridge;
    /// let a = LinuxBridge::derived_name("lab", "lan");
    /// assert_eq!(a, LinuxBridge::derived_name("lab", "lan"));
    /// assert_ne!(a, LinuxBridge::derived_name("lab", "dmz"));
    /// assert!(a.starts_with("mln") && a.len() == 15);
    /// assert!(mln_core::SafeName::interface(&a).is_ok());
    /// ```
    pub fn derived_name(project: &str, switch: &str) -> String {
        format!("mln{}", short_hash(project, switch))
    }

    /// A stable name for the tap that joins a `vde_switch` to the bridge of
    /// the same switch (a switch with both UML and Xen guests): `mlj` and
    /// the same 12 digits as [`LinuxBridge::derived_name`].
    ///
    /// ```
    /// use mln_core::net::LinuxBridge;
    /// let tap = LinuxBridge::derived_join_name("lab", "lan");
    /// assert_eq!(&tap[3..], &LinuxBridge::derived_name("lab", "lan")[3..]);
    /// assert!(tap.starts_with("mlj") && tap.len() == 15);
    /// ```
    pub fn derived_join_name(project: &str, switch: &str) -> String {
        format!("mlj{}", short_hash(project, switch))
    }

    /// Whether this process may create and delete network interfaces:
    /// `CAP_NET_ADMIN` is in its effective set (root has it).
    pub fn can_manage() -> bool {
        let Ok(status) = fs::read_to_string("/proc/self/status") else {
            return false;
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
    }

    /// Make bridge `bridge` for switch `spec` under `state_dir` (created if
    /// missing), up, flooding like a hub when `spec.hub`, with `spec.tap`
    /// made and plugged in. A bridge of that name that is already ours is
    /// adopted (set up as `spec` says); one that is not ours fails with
    /// [`Error::AlreadyExists`] and is left alone. Every name is checked
    /// first: `bridge` and the tap as interface names
    /// ([`SafeName::interface`]), the switch's as a file name. A bridge has
    /// no port limit: `spec.ports` is not used.
    pub fn start(spec: &SwitchConfig, bridge: &str, state_dir: impl AsRef<Path>) -> Result<Self> {
        let bridge = SafeName::interface(bridge)?;
        let tap = spec.tap.as_deref().map(SafeName::interface).transpose()?;
        if tap.as_ref() == Some(&bridge) {
            return Err(Error::InvalidName {
                name: bridge.to_string(),
                reason: "the tap and the bridge need different names",
            });
        }
        let (name, dir) = at(&spec.name, state_dir.as_ref(), true)?;
        let recorded = read_record(&dir)?;
        let adopted = recorded
            .as_ref()
            .filter(|r| r.bridge == bridge.as_str() && owns(r))
            .cloned();
        let made_here = adopted.is_none();
        let record = match adopted {
            Some(r) => r,
            None => {
                if interface_exists(bridge.as_str()) {
                    return Err(Error::AlreadyExists {
                        domain: format!(
                            "interface {bridge} (not made by mln for switch {name}; \
                             a host's `bridge` plugs it into an existing bridge)"
                        ),
                    });
                }
                // A record of another (or a vanished) bridge of this
                // switch: clear what is ours of it first.
                if let Some(old) = recorded {
                    LinuxBridge {
                        name: name.clone(),
                        dir: dir.clone(),
                        record: old,
                    }
                    .stop()?;
                }
                create(&name, &dir, bridge.as_str())?
            }
        };
        let mut br = LinuxBridge { name, dir, record };
        if let Err(e) = br.configure(spec.hub, tap.as_ref().map(SafeName::as_str)) {
            // Nothing half-made stays behind when this call made it.
            if made_here {
                let _ = br.stop();
            }
            return Err(e);
        }
        Ok(br)
    }

    /// The bridge of switch `name` under `state_dir`, made earlier (maybe
    /// by another process); [`Error::NotFound`] when none is recorded.
    pub fn open(name: &str, state_dir: impl AsRef<Path>) -> Result<Self> {
        let (name, dir) = at(name, state_dir.as_ref(), false)?;
        match read_record(&dir)? {
            Some(record) => Ok(LinuxBridge { name, dir, record }),
            None => Err(Error::NotFound {
                domain: format!("bridge of switch {name}"),
            }),
        }
    }

    /// Every bridge recorded under `state_dir`, up or not.
    pub fn list(state_dir: impl AsRef<Path>) -> Result<Vec<Self>> {
        super::list_recorded(state_dir.as_ref(), |name, dir| Self::open(name, dir))
    }

    /// The bridge's interface name.
    pub fn bridge_name(&self) -> &str {
        &self.record.bridge
    }

    /// Plug the existing interface `interface` (a tap, a veth end) into the
    /// bridge and set it up. Refused unless the bridge is ours.
    pub fn plug(&self, interface: &str) -> Result<()> {
        let interface = SafeName::interface(interface)?;
        self.require_ours("plug an interface into")?;
        ip(&[
            "link",
            "set",
            "dev",
            interface.as_str(),
            "master",
            &self.record.bridge,
            "up",
        ])
    }

    /// Whether the bridge is ours and flooding like a hub (address ageing
    /// 0), read from sysfs; `None` when it is gone or not ours.
    pub fn is_hub(&self) -> Option<bool> {
        if !owns(&self.record) {
            return None;
        }
        let path = Path::new(SYS_NET)
            .join(&self.record.bridge)
            .join("bridge/ageing_time");
        let ageing = fs::read_to_string(path).ok()?;
        Some(ageing.trim() == "0")
    }

    fn require_ours(&self, op: &str) -> Result<()> {
        if owns(&self.record) {
            Ok(())
        } else {
            Err(Error::Backend {
                what: format!("switch {}", self.name),
                message: format!(
                    "cannot {op} bridge {}: it is gone, or not the one mln made",
                    self.record.bridge
                ),
            })
        }
    }

    /// Hub or switch, the tap, up.
    fn configure(&mut self, hub: bool, tap: Option<&str>) -> Result<()> {
        let br = self.record.bridge.clone();
        let ageing = if hub { "0" } else { SWITCH_AGEING };
        ip(&[
            "link",
            "set",
            "dev",
            &br,
            "type",
            "bridge",
            "ageing_time",
            ageing,
        ])?;
        // The bridge joins guests to each other, not to this host: no
        // IPv6 autoconfiguration chatter from the host into their network
        // (the file is missing where IPv6 is off, which is as good).
        let _ = fs::write(
            Path::new("/proc/sys/net/ipv6/conf")
                .join(&br)
                .join("disable_ipv6"),
            "1",
        );
        if self.record.tap.as_deref() != tap {
            self.remove_tap()?;
        }
        if let Some(tap) = tap {
            if !owns_interface(tap, &self.record.token) {
                if interface_exists(tap) {
                    return Err(Error::AlreadyExists {
                        domain: format!("interface {tap} (the tap of switch {})", self.name),
                    });
                }
                // Recorded before it is made, so a failure part way leaves
                // nothing of ours unrecorded.
                self.record.tap = Some(tap.to_string());
                write_record(&self.dir, &self.record)?;
                ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
                ip(&[
                    "link",
                    "set",
                    "dev",
                    tap,
                    "alias",
                    &alias(&self.record.token),
                ])?;
            }
            self.plug(tap)?;
        }
        ip(&["link", "set", "dev", &br, "up"])
    }

    /// Delete the tap this bridge recorded, if it is still ours.
    fn remove_tap(&mut self) -> Result<()> {
        if let Some(tap) = self.record.tap.take() {
            if owns_interface(&tap, &self.record.token) {
                ip(&["link", "del", "dev", &tap])?;
            }
            write_record(&self.dir, &self.record)?;
        }
        Ok(())
    }
}

impl Switch for LinuxBridge {
    fn name(&self) -> &str {
        &self.name
    }

    fn attachment(&self) -> Attachment {
        Attachment::Bridge(self.record.bridge.clone())
    }

    /// [`SwitchStatus::Up`] while the bridge exists, is ours and is up.
    fn status(&self) -> SwitchStatus {
        let flags = fs::read_to_string(Path::new(SYS_NET).join(&self.record.bridge).join("flags"))
            .ok()
            .and_then(|f| u64::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok());
        match flags {
            Some(f) if f & IFF_UP != 0 && owns(&self.record) => SwitchStatus::Up,
            _ => SwitchStatus::Gone,
        }
    }

    /// Delete the bridge and its tap, if they are ours, and the record. An
    /// interface of that name that is not ours is left alone.
    fn stop(&self) -> Result<()> {
        let mut me = self.clone();
        // A tap survives its bridge: it goes on its own, if ours.
        me.remove_tap()?;
        if owns(&me.record) {
            ip(&["link", "del", "dev", &me.record.bridge])?;
        }
        let path = me.dir.join(RECORD);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        // The folder goes with the last thing in it (a vde switch of the
        // same name may still keep its files there).
        let _ = fs::remove_dir(&me.dir);
        Ok(())
    }
}

/// The switch's checked name and folder under `state_dir`.
fn at(name: &str, state_dir: &Path, create: bool) -> Result<(String, PathBuf)> {
    let name = SafeName::new(name)?;
    if create {
        fs::create_dir_all(state_dir).map_err(|e| Error::io(state_dir, e))?;
    }
    let state_dir = state_dir
        .canonicalize()
        .map_err(|e| Error::io(state_dir, e))?;
    Ok((name.to_string(), state_dir.join(name.as_str())))
}

/// Make the bridge, recorded first: a crash part way leaves a record of a
/// bridge that may not exist (cleared by the next start or stop), never a
/// bridge of ours without a record. (A crash between making the bridge and
/// marking it, a few milliseconds, leaves a bridge nobody owns: refused,
/// never deleted, until someone deletes it by hand.)
fn create(name: &str, dir: &Path, bridge: &str) -> Result<BridgeRecord> {
    let record = BridgeRecord {
        bridge: bridge.to_string(),
        token: token(dir, bridge),
        tap: None,
    };
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_record(dir, &record)?;
    if let Err(e) = ip(&["link", "add", "name", bridge, "type", "bridge"]) {
        // Nothing was made; if the name is taken now, someone else made it
        // since we looked.
        let _ = fs::remove_file(dir.join(RECORD));
        if interface_exists(bridge) {
            return Err(Error::AlreadyExists {
                domain: format!("interface {bridge} (made meanwhile, not by mln for {name})"),
            });
        }
        return Err(e);
    }
    if let Err(e) = ip(&["link", "set", "dev", bridge, "alias", &alias(&record.token)]) {
        // Made by the command above, so ours to delete.
        let _ = ip(&["link", "del", "dev", bridge]);
        let _ = fs::remove_file(dir.join(RECORD));
        return Err(e);
    }
    Ok(record)
}

/// Is the bridge `record` names there and carrying the record's token?
fn owns(record: &BridgeRecord) -> bool {
    Path::new(SYS_NET)
        .join(&record.bridge)
        .join("bridge")
        .is_dir()
        && owns_interface(&record.bridge, &record.token)
}

/// Does interface `name` exist and carry our `token` as its alias?
fn owns_interface(name: &str, token: &str) -> bool {
    interface_alias(name).as_deref() == Some(alias(token).as_str())
}

fn interface_alias(name: &str) -> Option<String> {
    fs::read_to_string(Path::new(SYS_NET).join(name).join("ifalias"))
        .ok()
        .map(|a| a.trim_end_matches('\n').to_string())
}

fn read_record(dir: &Path) -> Result<Option<BridgeRecord>> {
    let path = dir.join(RECORD);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let record: BridgeRecord = serde_json::from_slice(&text).map_err(|e| {
        Error::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    // A record is input like any other: its names become arguments.
    SafeName::interface(&record.bridge)?;
    if let Some(tap) = &record.tap {
        SafeName::interface(tap)?;
    }
    Ok(Some(record))
}

fn write_record(dir: &Path, record: &BridgeRecord) -> Result<()> {
    iplink::write_record(&dir.join(RECORD), record)
}

/// 12 hexadecimal digits (48 bits) of a hash of `project` and `switch`.
fn short_hash(project: &str, switch: &str) -> String {
    // The length first, so that ("ab", "c") and ("a", "bc") differ even
    // if a name contained the separator.
    let seed = format!("{}:{project}/{switch}", project.len());
    format!("{:012x}", fnv1a(&seed) >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_are_interface_names_whatever_the_input() {
        let long = "x".repeat(63);
        for (p, s) in [("lab", "lan"), (long.as_str(), long.as_str()), ("a", "b")] {
            let n = LinuxBridge::derived_name(p, s);
            assert_eq!(n.len(), 15, "{n}");
            assert!(SafeName::interface(&n).is_ok(), "{n}");
        }
        assert_ne!(
            LinuxBridge::derived_name("lab", "lan"),
            LinuxBridge::derived_name("lab2", "lan")
        );
        // Project and switch are not simply glued together.
        assert_ne!(
            LinuxBridge::derived_name("ab", "c"),
            LinuxBridge::derived_name("a", "bc")
        );
    }

    #[test]
    fn hostile_bridge_names_are_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "-x", "a;b", "a b", "", "sixteen-chars-xx"] {
            assert!(
                matches!(
                    LinuxBridge::start(&SwitchConfig::new("lan"), bad, dir.path()),
                    Err(Error::InvalidName { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            LinuxBridge::start(&SwitchConfig::new("../lan"), "mlnx", dir.path()),
            Err(Error::InvalidName { .. })
        ));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
