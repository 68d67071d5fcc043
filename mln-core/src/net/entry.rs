//! A way into a switch's network from the machine it runs on: a tap in a
//! network namespace of its own, plugged into the switch, so that programs
//! run there (`ssh`, `ping`, `tcpdump`) reach the guests by their
//! addresses as one more machine on the switch would, and nothing of the
//! host's own network is touched.
//!
//! Two steps, because a namespace is entered by a new process:
//!
//! 1. [`SwitchEntry::enter_argv`] wraps a command line in `unshare --net`
//!    (for a user who is not root, with `--map-root-user`: a user
//!    namespace gives them the right to make a tap in their own network
//!    namespace, where `/dev/net/tun` is open to them, as Debian has it).
//! 2. In there, [`SwitchEntry::plug_in`] makes the tap, gives it its
//!    address and plugs it into the switch with `vde_plug2tap`, kept until
//!    the returned [`Plugged`] is dropped; it refuses to run anywhere but
//!    in a fresh namespace (only `lo` there), so it never adds a device to
//!    the host's network.
//!
//! ```no_run
//! use mln_core::net::SwitchEntry;
//! let entry = SwitchEntry::new("/var/lib/mln/lab/switches/lan/ctl", "10.0.0.254".parse()?, 24);
//! // Run by the process `unshare` started:
//! let _plugged = entry.plug_in()?;
//! std::process::Command::new("ping").args(["-c1", "10.0.0.1"]).status()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::iplink::ip;
use crate::error::{Error, Result};

/// The tap's name in the namespace.
pub const DEVICE: &str = "mln0";
/// The folder beside a switch's control folder where entries hold their
/// addresses ([`SwitchEntry::claim`]); it goes when the switch stops.
pub const ENTRIES: &str = "entries";
/// The program that joins a tap to a vde switch (Debian's `vde2`).
pub const PLUG: &str = "vde_plug2tap";
/// How long a new plug is watched for an early failure (a socket that is
/// not a switch's, a tap it cannot open).
const SETTLE: Duration = Duration::from_millis(300);

/// An address on a switch's network, to be taken by a tap plugged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchEntry {
    socket: PathBuf,
    address: Ipv4Addr,
    prefix: u8,
}

/// A tap plugged into a switch; unplugged (its `vde_plug2tap` ended) when
/// dropped, or when the process that plugged it ends. The tap goes with
/// the namespace.
#[derive(Debug)]
pub struct Plugged {
    plug: Child,
}

impl SwitchEntry {
    /// Take `address/prefix` on the switch whose vde control folder is
    /// `socket`.
    pub fn new(socket: impl AsRef<Path>, address: Ipv4Addr, prefix: u8) -> Self {
        SwitchEntry {
            socket: socket.as_ref().to_path_buf(),
            address,
            prefix,
        }
    }

    /// The switch's vde control folder.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The prefix length of the tap's address.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address the tap takes.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// `argv` run in a network namespace of its own: `unshare --net`, and
    /// `--map-root-user` where this process is not root.
    pub fn enter_argv(argv: &[OsString]) -> Vec<OsString> {
        let mut wrapped: Vec<OsString> = vec!["unshare".into()];
        if !rustix::process::geteuid().is_root() {
            wrapped.push("--map-root-user".into());
        }
        wrapped.extend(["--net".into(), "--".into()]);
        wrapped.extend(argv.iter().cloned());
        wrapped
    }

    /// Make the tap [`DEVICE`] with this entry's address and plug it into
    /// the switch. Run in the fresh namespace [`Self::enter_argv`] made:
    /// anywhere else (a namespace with more than `lo`) it refuses.
    pub fn plug_in(&self) -> Result<Plugged> {
        let others = namespace_devices()?;
        if others.iter().any(|d| d != "lo") {
            return Err(Error::Backend {
                what: format!("entry to {}", self.socket.display()),
                message: format!(
                    "not in a network namespace of its own (it has {}): run it through \
                     `unshare --net`",
                    others.join(", ")
                ),
            });
        }
        if !self.socket.join("ctl").exists() {
            return Err(Error::Backend {
                what: format!("switch socket {}", self.socket.display()),
                message: "no switch runs there".into(),
            });
        }
        let address = format!("{}/{}", self.address, self.prefix);
        ip(&["link", "set", "lo", "up"])?;
        ip(&["tuntap", "add", "dev", DEVICE, "mode", "tap"])
            .map_err(|e| tap_refused(e, &address))?;
        ip(&["addr", "add", &address, "dev", DEVICE])?;
        ip(&["link", "set", DEVICE, "up"])?;
        // It ends with the process that plugged it, however that one ends.
        let mut plug = Command::new("setpriv")
            .args(["--pdeathsig", "TERM", "--", PLUG])
            .arg("--sock")
            .arg(&self.socket)
            .arg(DEVICE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Spawn {
                program: format!("setpriv … {PLUG}"),
                source: e,
            })?;
        let settled = Instant::now() + SETTLE;
        while Instant::now() < settled {
            if let Ok(Some(status)) = plug.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = plug.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                return Err(Error::Command {
                    program: format!("{PLUG} --sock {} {DEVICE}", self.socket.display()),
                    status: status.to_string(),
                    stderr: stderr.trim().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Plugged { plug })
    }
}

impl Drop for Plugged {
    fn drop(&mut self) {
        let _ = self.plug.kill();
        let _ = self.plug.wait();
    }
}

/// The network devices of this process's namespace (`/proc/self/net/dev`:
/// `/sys/class/net` shows the namespace sysfs was mounted in).
fn namespace_devices() -> Result<Vec<String>> {
    let path = Path::new("/proc/self/net/dev");
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect())
}

/// A tap refused: most often `/dev/net/tun` closed to this user.
fn tap_refused(e: Error, address: &str) -> Error {
    let tun = Path::new("/dev/net/tun");
    let mode = std::fs::metadata(tun)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .ok();
    match mode {
        Some(m) if m & 0o006 != 0o006 => Error::Backend {
            what: format!("a tap for {address}"),
            message: format!(
                "{} is mode {m:04o} here, so only root makes taps: run as root, or open \
                 it to users as Debian does (`chmod 0666 /dev/net/tun`)",
                tun.display()
            ),
        },
        _ => e,
    }
}

/// An address of a switch's network held for one entry: while it lives,
/// no other [`SwitchEntry::claim`] on that switch gets it, so entries
/// started side by side (a forward and a login, say) never share an
/// address. A lock file beside the switch's control folder, locked.
#[derive(Debug)]
pub struct Claim {
    _lock: std::fs::File,
}

impl SwitchEntry {
    /// The highest address of the subnet of `on/prefix` that is not in
    /// `taken` (the hosts' addresses) and that no other live entry of the
    /// switch at `socket` holds; the entry, and the claim that holds the
    /// address until dropped. `None`-like error when every one is taken.
    pub fn claim(
        socket: impl AsRef<Path>,
        on: Ipv4Addr,
        prefix: u8,
        taken: &[Ipv4Addr],
    ) -> Result<(SwitchEntry, Claim)> {
        let socket = socket.as_ref();
        let switch_dir = socket.parent().unwrap_or(socket);
        let dir = switch_dir.join(ENTRIES);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let owner = std::fs::metadata(switch_dir).map_err(|e| Error::io(switch_dir, e))?;
        let mut skip = taken.to_vec();
        while let Some(address) = free_address(on, prefix, &skip) {
            let path = dir.join(format!("{address}.lock"));
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            // Root working on a user's switch leaves what that user can
            // remove with it.
            if rustix::process::geteuid().is_root() {
                use std::os::unix::fs::MetadataExt;
                let (uid, gid) = (
                    rustix::fs::Uid::from_raw(owner.uid()),
                    rustix::fs::Gid::from_raw(owner.gid()),
                );
                for p in [dir.as_path(), path.as_path()] {
                    let _ = rustix::fs::chown(p, Some(uid), Some(gid));
                }
            }
            let held =
                rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive);
            if held.is_ok() {
                return Ok((
                    SwitchEntry::new(socket, address, prefix),
                    Claim { _lock: lock },
                ));
            }
            skip.push(address);
        }
        Err(Error::Backend {
            what: format!("switch {}", socket.display()),
            message: format!("no free address left in {on}/{prefix}"),
        })
    }
}

/// The highest address of `network/prefix` that is neither the network's
/// own, its broadcast, nor one of `taken`; `None` when every one is
/// taken (or the prefix leaves no host addresses).
///
/// ```
/// use mln_core::net::entry::free_address;
/// let taken = ["10.0.0.254".parse().unwrap()];
/// assert_eq!(free_address("10.0.0.7".parse().unwrap(), 24, &taken), Some("10.0.0.253".parse().unwrap()));
/// assert_eq!(free_address("10.0.0.1".parse().unwrap(), 31, &[]), None);
/// ```
pub fn free_address(on: Ipv4Addr, prefix: u8, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    if prefix > 30 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let network = u32::from(on) & mask;
    let broadcast = network | !mask;
    (network + 1..broadcast)
        .rev()
        .map(Ipv4Addr::from)
        .find(|a| !taken.contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_address_skips_taken_ones_from_the_top() {
        let taken: Vec<Ipv4Addr> = ["192.168.1.254", "192.168.1.253"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            free_address("192.168.1.1".parse().unwrap(), 24, &taken),
            Some("192.168.1.252".parse().unwrap())
        );
        assert_eq!(
            free_address("10.1.2.3".parse().unwrap(), 16, &[]),
            Some("10.1.255.254".parse().unwrap())
        );
        // A /30 has two host addresses; both taken, none is left.
        let both: Vec<Ipv4Addr> = ["10.0.0.1", "10.0.0.2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(free_address("10.0.0.1".parse().unwrap(), 30, &both), None);
    }

    #[test]
    fn entries_side_by_side_claim_different_addresses_and_free_them() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ctl");
        let on: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let taken = [on, "10.0.0.254".parse().unwrap()];
        let (a, claim_a) = SwitchEntry::claim(&socket, on, 24, &taken).unwrap();
        let (b, _claim_b) = SwitchEntry::claim(&socket, on, 24, &taken).unwrap();
        assert_eq!(a.address(), "10.0.0.253".parse::<Ipv4Addr>().unwrap());
        assert_eq!(b.address(), "10.0.0.252".parse::<Ipv4Addr>().unwrap());
        drop(claim_a);
        let (c, _claim_c) = SwitchEntry::claim(&socket, on, 24, &taken).unwrap();
        assert_eq!(c.address(), a.address());
        // A /30 with both host addresses taken has none to give.
        let err =
            SwitchEntry::claim(&socket, on, 30, &[on, "10.0.0.2".parse().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("no free address left"), "{err}");
    }

    #[test]
    fn the_entry_is_wrapped_in_unshare() {
        let argv = SwitchEntry::enter_argv(&["mln".into(), "x".into()]);
        assert_eq!(argv[0], "unshare");
        let net = argv.iter().position(|a| a == "--net").unwrap();
        assert_eq!(argv[net + 1], "--");
        assert_eq!(&argv[net + 2..], ["mln", "x"]);
    }

    #[test]
    fn outside_a_fresh_namespace_it_refuses() {
        // The test runs in a namespace with more than `lo` (where there
        // is only `lo`, there is nothing to check).
        if namespace_devices().unwrap().iter().all(|d| d == "lo") {
            return;
        }
        let entry = SwitchEntry::new("/nonexistent", "10.0.0.254".parse().unwrap(), 24);
        let err = entry.plug_in().unwrap_err().to_string();
        assert!(
            err.contains("not in a network namespace of its own"),
            "{err}"
        );
    }
}
