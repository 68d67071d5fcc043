//! Guest configuration: what a host's project settings mean inside the guest
//! (host name, addresses, routes, resolver, `/etc/hosts`, users, groups,
//! files, startup and shutdown lines), independent of the backend.
//!
//! A [`GuestConfig`] is delivered as a *configuration disk*: a small tar
//! archive written to a file ([`GuestConfig::write_disk`]) that the backend
//! attaches as an extra read-only disk (`ubdb` on UML, `xvdb` on Xen). No
//! root privileges and no mounting are needed on the managing machine. The
//! template's boot script (`templates/busybox/rc.boot`) unpacks the archive
//! to `/run/mln` and runs:
//!
//! - `/run/mln/apply`: a generated POSIX shell script that sets the host
//!   name, writes `/etc/hosts` and `/etc/resolv.conf`, configures every
//!   interface with `ip` (or `udhcpc` for DHCP), adds the default route,
//!   creates groups and users in `/etc/group`, `/etc/passwd` and
//!   `/etc/shadow`, sets root's password and copies the `files`; first of
//!   all it grows the root file system to fill a larger root disk and
//!   turns swap on, and once the network is up it mounts the project's
//!   file systems;
//! - `/run/mln/startup`: the project's `startup` lines;
//!
//! and at halt, `/run/mln/shutdown`: the `shutdown` lines. Every value that
//! is not itself meant as shell code is single-quoted in the scripts.
//! Files whose content is given ([`GuestConfig::written`], what plugins
//! add) are `written/N` on the disk and copied last, after the `files`.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use mln_core::guest::{GuestConfig, GuestInterface, InterfaceAddress};
//! let mut cfg = GuestConfig::new("alice");
//! cfg.interfaces.push(GuestInterface::fixed("eth0", Ipv4Addr::new(10, 0, 0, 1).into(), 24));
//! cfg.interfaces[0].gateway = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254)));
//! cfg.startup.push("echo hello from $(hostname)".into());
//! assert!(cfg.apply_script()?.contains("ip addr add '10.0.0.1/24'"));
//! # Ok::<(), mln_core::Error>(())
//! ```

mod files;
mod password;
mod storage;
mod tar;

pub use password::{is_crypt_hash, password_hash};
pub use storage::GuestMount;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::MacAddr;
use crate::error::{Error, Result};
use crate::name::SafeName;

/// Everything MLN configures inside one guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// The host name (a [`SafeName`]).
    pub hostname: String,
    /// Network interfaces, in guest order.
    pub interfaces: Vec<GuestInterface>,
    /// Resolvers for `/etc/resolv.conf` (none: the file is left alone).
    pub nameservers: Vec<IpAddr>,
    /// `/etc/hosts` entries besides `localhost`: usually every host of the
    /// project with its addresses.
    pub hosts: Vec<HostsEntry>,
    /// Accounts to create (or replace).
    pub users: Vec<GuestUser>,
    /// Groups to create, with their members.
    pub groups: Vec<GuestGroup>,
    /// Files copied from the managing machine into the guest.
    pub files: Vec<GuestFile>,
    /// Shell lines run once at boot, after the configuration is applied.
    pub startup: Vec<String>,
    /// Shell lines run when the guest halts.
    pub shutdown: Vec<String>,
    /// crypt(3) hash for root's password (none: unchanged).
    pub root_password_hash: Option<String>,
    /// Grow the root file system to fill its disk at boot (the host's
    /// root disk was made larger than its template).
    #[serde(default)]
    pub grow_root: bool,
    /// The swap device to turn on at boot (`/dev/ubdc`).
    #[serde(default)]
    pub swap: Option<String>,
    /// File systems to mount at boot, in order.
    #[serde(default)]
    pub mounts: Vec<GuestMount>,
    /// Public keys added to users' `~/.ssh/authorized_keys` (MLN's
    /// `sshkey`), after the accounts are made.
    #[serde(default)]
    pub ssh_keys: Vec<GuestSshKey>,
    /// Files whose content is given rather than read from the managing
    /// machine (what plugins add), written after the `files`: one for a
    /// destination that a `files` line also names replaces it.
    #[serde(default)]
    pub written: Vec<GuestText>,
}

/// A file written into the guest with the content given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestText {
    /// Absolute path in the guest.
    pub dest: String,
    /// The whole content.
    pub content: String,
    /// Permission bits (default 0644).
    pub mode: Option<u32>,
}

/// One public key that logs a user in over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSshKey {
    /// The account (`root` or one of the guest's users).
    pub user: String,
    /// The key as OpenSSH writes it: `TYPE BASE64 [COMMENT]`.
    pub key: String,
}

impl GuestSshKey {
    /// An MLN `sshkey` line, `USER TYPE BASE64 [COMMENT]`; `None` when it
    /// has no user before the key.
    pub fn from_line(line: &str) -> Option<GuestSshKey> {
        let (user, key) = line.trim().split_once(char::is_whitespace)?;
        let key = key.trim();
        (!user.is_empty() && !key.is_empty()).then(|| GuestSshKey {
            user: user.to_string(),
            key: key.to_string(),
        })
    }
}

/// Whether `word` names an OpenSSH public key type (`ssh-ed25519`,
/// `ecdsa-sha2-nistp256`, `sk-ssh-ed25519@openssh.com`, ...).
pub fn is_ssh_key_type(word: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|p| word.starts_with(p) && word.len() > p.len())
}

/// One interface inside the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestInterface {
    /// `eth0`, `eth1`, ...
    pub name: String,
    /// The MAC address to set in the guest (the backend usually sets it
    /// already; none: left as is).
    pub mac: Option<MacAddr>,
    /// How the interface gets its address.
    pub address: InterfaceAddress,
    /// Default gateway reached through this interface.
    pub gateway: Option<IpAddr>,
}

impl GuestInterface {
    /// An interface with a fixed address and prefix length, no gateway.
    pub fn fixed(name: &str, address: IpAddr, prefix: u8) -> Self {
        GuestInterface {
            name: name.to_string(),
            mac: None,
            address: InterfaceAddress::Static {
                address,
                prefix,
                broadcast: None,
            },
            gateway: None,
        }
    }
}

/// How an interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceAddress {
    /// A fixed address.
    Static {
        /// The address.
        address: IpAddr,
        /// Prefix length (`24` for netmask 255.255.255.0).
        prefix: u8,
        /// IPv4 broadcast address (none: derived by the guest's `ip`).
        broadcast: Option<Ipv4Addr>,
    },
    /// DHCP (busybox `udhcpc`).
    Dhcp,
    /// Brought up without an address.
    Unconfigured,
}

/// The prefix length of a netmask (`255.255.255.0` → 24), or `None` when
/// its ones are not contiguous (`255.0.255.0`).
///
/// ```
/// use mln_core::guest::prefix_from_netmask;
/// assert_eq!(prefix_from_netmask("255.255.254.0".parse().unwrap()), Some(23));
/// assert_eq!(prefix_from_netmask("255.0.255.0".parse().unwrap()), None);
/// ```
pub fn prefix_from_netmask(netmask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(netmask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// One line of `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsEntry {
    /// The address.
    pub address: IpAddr,
    /// Its names, canonical first.
    pub names: Vec<String>,
}

/// An account in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestUser {
    /// Login name.
    pub name: String,
    /// crypt(3) password hash (`$6$salt$...`), or `*`/`!` for no login.
    pub password_hash: String,
    /// Home folder (default `/home/NAME`).
    pub home: Option<String>,
    /// User id (default: the next free one from 1000 on, in list order).
    pub uid: Option<u32>,
}

/// A group in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestGroup {
    /// Group name.
    pub name: String,
    /// Member user names.
    pub members: Vec<String>,
}

/// A file copied into the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFile {
    /// The file on the managing machine.
    pub source: PathBuf,
    /// Absolute path in the guest.
    pub dest: String,
    /// Permission bits (default 0644).
    pub mode: Option<u32>,
}

impl GuestConfig {
    /// A configuration that only sets the host name.
    pub fn new(hostname: &str) -> Self {
        GuestConfig {
            hostname: hostname.to_string(),
            ..Default::default()
        }
    }

    fn invalid(&self, field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidGuestConfig {
            host: self.hostname.clone(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Check every value that ends up in a guest file or script.
    pub fn validate(&self) -> Result<()> {
        SafeName::new(&self.hostname)?;
        for (i, iface) in self.interfaces.iter().enumerate() {
            let field = format!("interface {}", iface.name);
            if !is_iface_name(&iface.name) {
                return Err(self.invalid(field, "interface names are eth0, eth1, ..."));
            }
            if self.interfaces[..i].iter().any(|o| o.name == iface.name) {
                return Err(self.invalid(field, "listed twice"));
            }
            if let InterfaceAddress::Static {
                address, prefix, ..
            } = &iface.address
            {
                let max = if address.is_ipv4() { 32 } else { 128 };
                if *prefix > max {
                    return Err(self.invalid(field, format!("prefix /{prefix} is too long")));
                }
            }
        }
        for entry in &self.hosts {
            for name in &entry.names {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(self.invalid(format!("hosts entry {name:?}"), "not a host name"));
                }
            }
        }
        for user in &self.users {
            let field = format!("user {}", user.name);
            check_account_name(&user.name).map_err(|r| self.invalid(&field, r))?;
            check_field(&user.password_hash).map_err(|r| self.invalid(&field, r))?;
            if let Some(home) = &user.home {
                check_field(home).map_err(|r| self.invalid(&field, r))?;
                if !home.starts_with('/') {
                    return Err(self.invalid(field, "home must be an absolute path"));
                }
            }
        }
        for group in &self.groups {
            let field = format!("group {}", group.name);
            check_account_name(&group.name).map_err(|r| self.invalid(&field, r))?;
            for m in &group.members {
                check_account_name(m).map_err(|r| self.invalid(&field, r))?;
            }
        }
        if let Some(h) = &self.root_password_hash {
            check_field(h).map_err(|r| self.invalid("root password", r))?;
        }
        for k in &self.ssh_keys {
            let field = format!("sshkey for {}", k.user);
            check_account_name(&k.user).map_err(|r| self.invalid(&field, r))?;
            let key_type = k.key.split_whitespace().next().unwrap_or_default();
            if !is_ssh_key_type(key_type) || k.key.split_whitespace().count() < 2 {
                return Err(self.invalid(field, "not a public key: write `TYPE BASE64 [COMMENT]`"));
            }
            if k.key.contains(['\n', '\r', '\0']) {
                return Err(self.invalid(field, "the key must be on one line"));
            }
        }
        self.validate_storage()?;
        for f in &self.files {
            if !f.dest.starts_with('/') || f.dest.contains('\0') || f.dest.contains('\n') {
                return Err(self.invalid(
                    format!("file {}", f.dest),
                    "the destination must be an absolute path on one line",
                ));
            }
            if f.mode.is_some_and(|m| m > 0o7777) {
                return Err(self.invalid(format!("file {}", f.dest), "mode above 07777"));
            }
        }
        for w in &self.written {
            check_dest(&w.dest, w.mode).map_err(|r| self.invalid(format!("file {}", w.dest), r))?;
        }
        Ok(())
    }

    /// The `/etc/hosts` this configuration writes.
    pub fn etc_hosts(&self) -> String {
        let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
        for e in &self.hosts {
            let _ = writeln!(s, "{}\t{}", e.address, e.names.join(" "));
        }
        if !self.hosts.iter().any(|e| e.names.contains(&self.hostname)) {
            let _ = writeln!(s, "127.0.1.1\t{}", self.hostname);
        }
        s
    }

    /// The generated `/run/mln/apply` script (see the module docs).
    pub fn apply_script(&self) -> Result<String> {
        self.validate()?;
        let mut s = String::from(APPLY_PRELUDE);
        s.push_str(storage::PRELUDE);
        self.disk_lines(&mut s);
        let _ = writeln!(s, "hostname {}", quote(&self.hostname));
        let _ = writeln!(s, "echo {} > /etc/hostname", quote(&self.hostname));
        s.push_str("cat /run/mln/hosts > /etc/hosts\n");
        if !self.nameservers.is_empty() {
            s.push_str("cat /run/mln/resolv.conf > /etc/resolv.conf\n");
        }
        for iface in &self.interfaces {
            let dev = quote(&iface.name);
            if let Some(mac) = iface.mac {
                let _ = writeln!(
                    s,
                    "ip link set dev {dev} address {}",
                    quote(&mac.to_string())
                );
            }
            let _ = writeln!(s, "ip link set dev {dev} up");
            match &iface.address {
                InterfaceAddress::Static {
                    address,
                    prefix,
                    broadcast,
                } => {
                    let bcast = match (broadcast, address) {
                        (Some(b), _) => format!(" broadcast {}", quote(&b.to_string())),
                        (None, IpAddr::V4(_)) => " broadcast +".to_string(),
                        (None, IpAddr::V6(_)) => String::new(),
                    };
                    let _ = writeln!(
                        s,
                        "ip addr add {}{bcast} dev {dev}",
                        quote(&format!("{address}/{prefix}"))
                    );
                }
                InterfaceAddress::Dhcp => {
                    let _ = writeln!(
                        s,
                        "udhcpc -b -t 5 -s /run/mln/udhcpc.script -i {dev} >/dev/null 2>&1"
                    );
                }
                InterfaceAddress::Unconfigured => {}
            }
        }
        for iface in &self.interfaces {
            if let Some(gw) = iface.gateway {
                let _ = writeln!(
                    s,
                    "ip route add default via {} dev {}",
                    quote(&gw.to_string()),
                    quote(&iface.name)
                );
            }
        }
        self.mount_lines(&mut s);
        for g in &self.groups {
            let _ = writeln!(s, "mln_group {}", quote(&g.name));
        }
        let mut next_uid = 1000;
        for u in &self.users {
            let uid = u.uid.unwrap_or_else(|| {
                while self.users.iter().any(|o| o.uid == Some(next_uid)) {
                    next_uid += 1;
                }
                next_uid += 1;
                next_uid - 1
            });
            let home = u
                .home
                .clone()
                .unwrap_or_else(|| format!("/home/{}", u.name));
            let _ = writeln!(
                s,
                "mln_user {} {uid} {} {}",
                quote(&u.name),
                quote(&home),
                quote(&u.password_hash)
            );
        }
        for g in &self.groups {
            for m in &g.members {
                let _ = writeln!(s, "mln_member {} {}", quote(&g.name), quote(m));
            }
        }
        if let Some(h) = &self.root_password_hash {
            let _ = writeln!(s, "mln_password root {}", quote(h));
        }
        for k in &self.ssh_keys {
            let _ = writeln!(s, "mln_sshkey {} {}", quote(&k.user), quote(&k.key));
        }
        for p in files::placed(&self.hostname, &self.files)? {
            match p {
                files::Placed::File {
                    name, dest, mode, ..
                } => {
                    let _ = writeln!(
                        s,
                        "mln_file /run/mln/files/{name} {} {mode:o}",
                        quote(&dest)
                    );
                }
                files::Placed::Dir { dest, mode } => {
                    let _ = writeln!(s, "mln_dir {} {mode:o}", quote(&dest));
                }
            }
        }
        for (i, w) in self.written.iter().enumerate() {
            let _ = writeln!(
                s,
                "mln_file /run/mln/written/{i} {} {:o}",
                quote(&w.dest),
                w.mode.unwrap_or(0o644)
            );
        }
        Ok(s)
    }

    /// The `startup` lines as a script.
    pub fn startup_script(&self) -> String {
        lines_script(&self.startup)
    }

    /// The `shutdown` lines as a script.
    pub fn shutdown_script(&self) -> String {
        lines_script(&self.shutdown)
    }

    /// Write the configuration disk for this guest to `path`: a tar archive
    /// (padded to whole 4 KiB blocks) holding `apply`, `startup`, `shutdown`,
    /// `hosts`, `resolv.conf`, `udhcpc.script` and `files/N` for every file. Attach it
    /// read-only as the guest's second disk, or name it with the kernel
    /// argument `mln.config=DEVICE`.
    pub fn write_disk(&self, path: &Path) -> Result<()> {
        crate::uml::process::write_atomic(path, &self.disk_bytes()?)
    }

    /// The configuration disk [`GuestConfig::write_disk`] writes, as
    /// bytes (to be written elsewhere: on another server).
    pub fn disk_bytes(&self) -> Result<Vec<u8>> {
        let mut archive = tar::Archive::new();
        archive.add("apply", 0o755, self.apply_script()?.as_bytes());
        archive.add("startup", 0o755, self.startup_script().as_bytes());
        archive.add("shutdown", 0o755, self.shutdown_script().as_bytes());
        archive.add("hosts", 0o644, self.etc_hosts().as_bytes());
        let mut resolv = String::new();
        for ns in &self.nameservers {
            let _ = writeln!(resolv, "nameserver {ns}");
        }
        archive.add("resolv.conf", 0o644, resolv.as_bytes());
        archive.add("udhcpc.script", 0o755, UDHCPC_SCRIPT.as_bytes());
        archive.dir("files", 0o755);
        for p in files::placed(&self.hostname, &self.files)? {
            if let files::Placed::File {
                source, name, mode, ..
            } = p
            {
                let data = std::fs::read(&source).map_err(|e| Error::io(&source, e))?;
                archive.add(&format!("files/{name}"), mode, &data);
            }
        }
        archive.dir("written", 0o755);
        for (i, w) in self.written.iter().enumerate() {
            archive.add(
                &format!("written/{i}"),
                w.mode.unwrap_or(0o644),
                w.content.as_bytes(),
            );
        }
        Ok(archive.finish(4096))
    }
}

/// busybox `udhcpc`'s event script, shipped on the configuration disk so
/// that DHCP works whatever default script path the guest's busybox has.
const UDHCPC_SCRIPT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest/udhcpc.script"
));

/// Shell helpers the generated script uses: plain edits of the account
/// files, so any template with a POSIX shell, `grep` and `cp` works.
const APPLY_PRELUDE: &str = r#"#!/bin/sh
# Generated by MLN: applies this guest's configuration. Run once at boot.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
mln_drop() { # FILE NAME: remove NAME's line from FILE
    [ -f "$1" ] || return 0
    grep -v "^$2:" "$1" > "$1.mln"; cat "$1.mln" > "$1"; rm -f "$1.mln"
}
mln_group() { # NAME
    grep -q "^$1:" /etc/group 2>/dev/null && return 0
    gid=1000
    while cut -d: -f3 /etc/group | grep -qx "$gid"; do gid=$((gid + 1)); done
    echo "$1:x:$gid:" >> /etc/group
}
mln_user() { # NAME UID HOME HASH
    mln_drop /etc/passwd "$1"; mln_drop /etc/shadow "$1"
    mln_group "$1"
    gid=$(grep "^$1:" /etc/group | cut -d: -f3)
    echo "$1:x:$2:$gid::$3:/bin/sh" >> /etc/passwd
    echo "$1:$4:19000:0:99999:7:::" >> /etc/shadow
    mkdir -p "$3" && chown "$2:$gid" "$3" && chmod 755 "$3"
}
mln_member() { # GROUP USER
    line=$(grep "^$1:" /etc/group) || return 0
    case ",${line##*:}," in *",$2,"*) return 0 ;; esac
    case "$line" in *:) new="$line$2" ;; *) new="$line,$2" ;; esac
    mln_drop /etc/group "$1"; echo "$new" >> /etc/group
}
mln_password() { # NAME HASH
    line=$(grep "^$1:" /etc/shadow) || line="$1:x:19000:0:99999:7:::"
    rest=${line#*:}; rest=${rest#*:}
    mln_drop /etc/shadow "$1"; echo "$1:$2:$rest" >> /etc/shadow
}
mln_sshkey() { # USER KEY: added once to USER's authorized_keys
    line=$(grep "^$1:" /etc/passwd) || { echo "mln: sshkey: no user $1"; return 0; }
    home=$(echo "$line" | cut -d: -f6); owner=$(echo "$line" | cut -d: -f3,4)
    mkdir -p "$home/.ssh" && touch "$home/.ssh/authorized_keys" || return 0
    grep -qxF "$2" "$home/.ssh/authorized_keys" || echo "$2" >> "$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
    chown -R "$owner" "$home/.ssh"
}
mln_file() { # SOURCE DEST MODE
    mkdir -p "$(dirname "$2")" && cp "$1" "$2" && chmod "$3" "$2"
}
mln_dir() { # DEST MODE
    mkdir -p "$1" && chmod "$2" "$1"
}
chmod 600 /etc/shadow 2>/dev/null
"#;

/// Why `dest` (with `mode`) cannot be a file's place in the guest.
fn check_dest(dest: &str, mode: Option<u32>) -> std::result::Result<(), &'static str> {
    if !dest.starts_with('/') || dest.contains(['\0', '\n', '\r']) {
        return Err("the destination must be an absolute path on one line");
    }
    if mode.is_some_and(|m| m > 0o7777) {
        return Err("mode above 07777");
    }
    Ok(())
}

fn lines_script(lines: &[String]) -> String {
    let mut s = String::from("#!/bin/sh\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_iface_name(name: &str) -> bool {
    name.strip_prefix("eth")
        .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.chars().all(|c| c.is_ascii_digit()))
}

fn check_account_name(name: &str) -> std::result::Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("account names are letters, digits, `-`, `_`, `.` (at most 32)")
    }
}

fn check_field(value: &str) -> std::result::Result<(), &'static str> {
    if value.contains([':', '\n', '\0']) {
        Err("must not contain `:`, a newline or NUL")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GuestConfig {
        let mut c = GuestConfig::new("alice");
        let mut eth0 = GuestInterface::fixed("eth0", "10.0.0.1".parse().unwrap(), 24);
        eth0.gateway = Some("10.0.0.254".parse().unwrap());
        eth0.mac = Some(MacAddr::derived("lab/alice/eth0"));
        c.interfaces.push(eth0);
        c.interfaces.push(GuestInterface {
            name: "eth1".into(),
            mac: None,
            address: InterfaceAddress::Dhcp,
            gateway: None,
        });
        c.hosts.push(HostsEntry {
            address: "10.0.0.2".parse().unwrap(),
            names: vec!["bob".into()],
        });
        c.users.push(GuestUser {
            name: "alice".into(),
            password_hash: "$6$salt$it's".into(),
            home: None,
            uid: None,
        });
        c.groups.push(GuestGroup {
            name: "staff".into(),
            members: vec!["alice".into()],
        });
        c
    }

    #[test]
    fn script_quotes_every_value() {
        let s = sample().apply_script().unwrap();
        assert!(s.contains("ip addr add '10.0.0.1/24' broadcast + dev 'eth0'"));
        assert!(s.contains("ip route add default via '10.0.0.254' dev 'eth0'"));
        assert!(s.contains("mln_user 'alice' 1000 '/home/alice' '$6$salt$it'\\''s'"));
        assert!(s.contains("mln_member 'staff' 'alice'"));
        assert!(s.contains("udhcpc -b -t 5 -s /run/mln/udhcpc.script -i 'eth1'"));
    }

    #[test]
    fn hostile_values_are_refused() {
        let mut c = sample();
        c.users[0].name = "root:0".into();
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidGuestConfig { .. })
        ));
        let mut c = sample();
        c.users[0].password_hash = "x\nroot::0:0::/:/bin/sh".into();
        assert!(c.validate().is_err());
        let mut c = sample();
        c.hostname = "a;reboot".into();
        assert!(c.validate().is_err());
        let mut c = sample();
        c.interfaces[0].name = "wlan0".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn ssh_keys_are_added_after_the_accounts_and_checked() {
        let mut c = sample();
        let line = "alice ssh-ed25519 AAAAC3Nza alice@desk";
        c.ssh_keys.push(GuestSshKey::from_line(line).unwrap());
        let s = c.apply_script().unwrap();
        let add = "mln_sshkey 'alice' 'ssh-ed25519 AAAAC3Nza alice@desk'";
        let (user, key) = (s.find("mln_user 'alice'").unwrap(), s.find(add).unwrap());
        assert!(user < key, "{s}");
        // No user before the key, a key that is not one, a hostile user.
        assert_eq!(GuestSshKey::from_line("ssh-ed25519"), None);
        for (user, key) in [
            ("ssh-ed25519", "AAAAC3Nza alice@desk"),
            ("alice", "AAAAC3Nza"),
            ("alice", "ssh-ed25519"),
            ("root:0", "ssh-ed25519 AAAA"),
            ("alice", "ssh-ed25519 AAAA\nroot"),
        ] {
            let mut c = sample();
            c.ssh_keys.push(GuestSshKey {
                user: user.into(),
                key: key.into(),
            });
            assert!(c.validate().is_err(), "{user} {key:?} accepted");
        }
    }

    #[test]
    fn written_files_come_after_the_copied_ones_and_are_checked() {
        let mut c = sample();
        c.written.push(GuestText {
            dest: "/etc/motd".into(),
            content: "hello\n".into(),
            mode: Some(0o600),
        });
        let s = c.apply_script().unwrap();
        assert!(
            s.contains("mln_file /run/mln/written/0 '/etc/motd' 600\n"),
            "{s}"
        );
        assert!(s.find("mln_member").unwrap() < s.find("written/0").unwrap());
        for (dest, mode) in [
            ("etc/motd", None),
            ("/etc/a\nb", None),
            ("/etc/x", Some(0o10000)),
        ] {
            let mut c = sample();
            c.written.push(GuestText {
                dest: dest.into(),
                content: String::new(),
                mode,
            });
            assert!(c.validate().is_err(), "{dest:?} accepted");
        }
    }

    #[test]
    fn hosts_file_lists_project_hosts_and_self() {
        let h = sample().etc_hosts();
        assert!(h.contains("10.0.0.2\tbob\n"));
        assert!(h.contains("127.0.1.1\talice\n"));
    }
}
