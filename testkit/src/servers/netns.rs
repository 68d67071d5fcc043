//! The network under the test servers: run names, network namespaces, the
//! switch namespace, the subnet, and clearing what earlier runs left.
//!
//! Every name a run makes starts with its prefix, `mlnt` + the test
//! process's pid (6 hex digits; `pid_max` is at most 2^22) + an instance
//! number (2 hex digits):
//!
//! ```text
//! mlnt0012ab00              the switch namespace (bridge br0) and, in the
//!                           root namespace, the veth into it (address .1)
//! mlnt0012ab00-server-a     one namespace per server (eth0, address .2, .3..)
//! $TMPDIR/mlnt0012ab00/     keys, configs, logs and state folders
//! ```
//!
//! So a run killed before its teardown is recognised by the next one: a
//! prefix whose pid is dead (or is ours, with an instance number this
//! process does not use) is stale and removed.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use rustix::process::{Pid, Signal};

/// What every name of every run starts with.
const TAG: &str = "mlnt";

/// The private range the runs' subnets are taken from: `10.213.X.0/24`.
const RANGE: [u8; 2] = [10, 213];

/// Instance numbers in use by this process, so that a leftover of an
/// earlier process that had our pid is told from our own runs.
static LIVE: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());

/// One run's instance number, given back on drop.
#[derive(Debug)]
pub(super) struct Instance {
    pub(super) number: u8,
    pub(super) prefix: String,
}

impl Instance {
    /// The lowest instance number this process is not using, or `None`
    /// when 256 runs are alive at once.
    pub(super) fn claim() -> Option<Instance> {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        let number = (0..=u8::MAX).find(|n| !live.contains(n))?;
        live.insert(number);
        Some(Instance {
            number,
            prefix: format!("{TAG}{:06x}{number:02x}", std::process::id()),
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.number);
    }
}

/// The pid and instance number of a run's name (`PREFIX` or `PREFIX-...`).
fn parse_name(name: &str) -> Option<(&str, u32, u8)> {
    let rest = name.strip_prefix(TAG)?;
    let digits = rest.get(..8)?;
    if !matches!(rest.as_bytes().get(8), None | Some(b'-'))
        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let pid = u32::from_str_radix(&digits[..6], 16).ok()?;
    let instance = u8::from_str_radix(&digits[6..], 16).ok()?;
    Some((&name[..TAG.len() + 8], pid, instance))
}

/// Whether the run that made `name` is gone.
fn is_stale(name: &str) -> bool {
    let Some((_, pid, instance)) = parse_name(name) else {
        return false;
    };
    if pid == std::process::id() {
        let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        !live.contains(&instance)
    } else {
        !Path::new(&format!("/proc/{pid}")).exists()
    }
}

/// Runs `ip ARGS`; its stdout, or its stderr as the error.
pub(super) fn ip(ip: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(ip)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", ip.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Names of the network namespaces (`ip netns list`).
pub(super) fn namespaces(ip_path: &Path) -> Vec<String> {
    ip(ip_path, &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Names of the links of the root namespace (`ip -o link show`).
pub(super) fn root_links(ip_path: &Path) -> Vec<String> {
    ip(ip_path, &["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// Pids of the processes in namespace `ns` (`ip netns pids`).
pub(super) fn pids_in(ip_path: &Path, ns: &str) -> Vec<u32> {
    ip(ip_path, &["netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Sends `signal` to `pid`, ignoring a process already gone.
pub(super) fn signal(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = rustix::process::kill_process(pid, signal);
}

/// Kills every process in namespace `ns`, until none is left or 5 s pass
/// (a process forking while it is being killed needs another round).
fn kill_namespace(ip_path: &Path, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids_in(ip_path, ns);
        if pids.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in pids {
            signal(pid, Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The folder of run `prefix`.
pub(super) fn run_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(prefix)
}

/// Removes everything run `prefix` made: kills the processes in its
/// namespaces and under its folder, deletes its root link (and so the
/// veth pair), its namespaces (and so the bridge and the other veths) and
/// its folder. Safe to call on a half-made run, or twice.
pub(super) fn teardown(ip_path: &Path, prefix: &str) {
    let ours = |name: &str| parse_name(name).is_some_and(|(p, _, _)| p == prefix);
    let spaces: Vec<String> = namespaces(ip_path)
        .into_iter()
        .filter(|n| ours(n))
        .collect();
    for ns in &spaces {
        kill_namespace(ip_path, ns);
    }
    let dir = run_dir(prefix);
    for pid in crate::processes_under(&dir) {
        signal(pid, Signal::KILL);
    }
    for link in root_links(ip_path).into_iter().filter(|n| ours(n)) {
        let _ = ip(ip_path, &["link", "del", &link]);
    }
    for ns in &spaces {
        let _ = ip(ip_path, &["netns", "del", ns]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tears down every stale run found among namespaces, root links and
/// folders.
pub(super) fn clear_stale(ip_path: &Path) {
    let folders = std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut stale = BTreeSet::new();
    for name in namespaces(ip_path)
        .into_iter()
        .chain(root_links(ip_path))
        .chain(folders)
    {
        if is_stale(&name) {
            if let Some((prefix, _, _)) = parse_name(&name) {
                stale.insert(prefix.to_owned());
            }
        }
    }
    for prefix in stale {
        teardown(ip_path, &prefix);
    }
}

/// An exclusive lock shared by every run on this machine, held while one
/// clears stale runs and claims a subnet; released on drop.
pub(super) struct MachineLock(#[allow(dead_code)] File);

impl MachineLock {
    pub(super) fn take() -> Result<MachineLock, String> {
        let path = if Path::new("/run").is_dir() {
            PathBuf::from("/run/mln-testkit.lock")
        } else {
            std::env::temp_dir().join("mln-testkit.lock")
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Err(e) = flock(&file, FlockOperation::LockExclusive) {
            return Err(format!(
                "flock {}: {}",
                path.display(),
                std::io::Error::from(e)
            ));
        }
        Ok(MachineLock(file))
    }
}

/// `a.b.c.d/len` (or a bare address, as /32).
fn parse_net(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/').unwrap_or((text, "32"));
    Some((addr.parse().ok()?, len.parse().ok().filter(|l| *l <= 32)?))
}

/// Whether two networks share an address.
fn overlaps((a, alen): (Ipv4Addr, u8), (b, blen): (Ipv4Addr, u8)) -> bool {
    let len = alen.min(blen);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

/// The networks the root namespace already uses: its addresses, and its
/// routes narrower than /16 (a broad route such as a VPN's 10.0.0.0/8 is
/// fine to carve a local /24 out of).
fn used_networks(ip_path: &Path) -> Vec<(Ipv4Addr, u8)> {
    let mut used = Vec::new();
    for line in ip(ip_path, &["-4", "-o", "addr", "show"])
        .unwrap_or_default()
        .lines()
    {
        let mut words = line.split_whitespace();
        if words.any(|w| w == "inet") {
            used.extend(words.next().and_then(parse_net));
        }
    }
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "unreachable",
        "blackhole",
        "prohibit",
        "throw",
        "nat",
    ];
    for line in ip(ip_path, &["-4", "route", "show", "table", "all"])
        .unwrap_or_default()
        .lines()
    {
        let dest = line.split_whitespace().find(|w| !TYPES.contains(w));
        if let Some(net) = dest.and_then(parse_net).filter(|(_, len)| *len >= 16) {
            used.push(net);
        }
    }
    used
}

/// A `10.213.X.0/24` the root namespace does not use, trying X from
/// `start` on: its X.
pub(super) fn free_subnet(ip_path: &Path, start: u8) -> Option<u8> {
    let used = used_networks(ip_path);
    (0..=u8::MAX).map(|i| start.wrapping_add(i)).find(|x| {
        let ours = (subnet_address(*x, 0), 24);
        !used.iter().any(|net| overlaps(*net, ours))
    })
}

/// Address `host` of subnet `x`.
pub(super) fn subnet_address(x: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(RANGE[0], RANGE[1], x, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_parse_back_to_their_pid_and_instance() {
        assert_eq!(
            parse_name("mlnt0012ab07"),
            Some(("mlnt0012ab07", 0x12ab, 7))
        );
        assert_eq!(
            parse_name("mlnt0012ab07-server-a"),
            Some(("mlnt0012ab07", 0x12ab, 7))
        );
        assert_eq!(parse_name("mlnt0012ab07x"), None);
        assert_eq!(parse_name("mlnt0012ab0"), None);
        assert_eq!(parse_name("mlntzz12ab07"), None);
        assert_eq!(parse_name("eth0"), None);
    }

    #[test]
    fn a_run_of_a_dead_process_is_stale_and_a_live_one_is_not() {
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        assert!(is_stale(&format!("mlnt{dead:06x}00")));
        assert!(!is_stale(&format!("mlnt{:06x}00", 1)));
        let mine = Instance::claim().unwrap();
        assert!(!is_stale(&mine.prefix));
        let number = mine.number;
        drop(mine);
        assert!(is_stale(&format!(
            "mlnt{:06x}{number:02x}",
            std::process::id()
        )));
    }

    #[test]
    fn networks_overlap_when_they_share_an_address() {
        let ours = (Ipv4Addr::new(10, 213, 5, 0), 24);
        assert!(overlaps((Ipv4Addr::new(10, 213, 5, 7), 32), ours));
        assert!(overlaps((Ipv4Addr::new(10, 213, 0, 0), 16), ours));
        assert!(!overlaps((Ipv4Addr::new(10, 213, 6, 0), 24), ours));
        assert!(overlaps((Ipv4Addr::new(0, 0, 0, 0), 0), ours));
        assert_eq!(
            parse_net("10.1.2.3"),
            Some((Ipv4Addr::new(10, 1, 2, 3), 32))
        );
        assert_eq!(parse_net("default"), None);
    }
}
