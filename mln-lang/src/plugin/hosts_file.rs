//! The `hostsFile` built-in's `/etc/hosts`: every host by the address a
//! guest reaches it at. Without it a guest lists each host by its first
//! address, which for a router is the address on one of its networks only;
//! with it, a guest on the LAN lists the router by its LAN address.
//!
//! The walk is breadth first over switches, as MLN's plugin did: first the
//! switches the guest plugs into, each host there by its address on that
//! switch; then the switches those hosts plug into, and so on. A host no
//! walk reaches is listed by its first address, so every name still
//! resolves.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{Address, Host, Project};

/// The `/etc/hosts` of the guest called `me` in `project`.
///
/// ```
/// let p = mln_lang::load_str("lab.mln", "global { project lab }
/// switch lan { } switch wan { }
/// host gw { network eth0 { switch wan; address 192.0.2.1 } network eth1 { switch lan; address 10.0.0.1 } }
/// host pc { network eth0 { switch lan; address 10.0.0.2 } }
/// ").unwrap();
/// let hosts = mln_lang::plugin::etc_hosts(p.project(), "pc");
/// assert!(hosts.contains("10.0.0.1\tgw\n"));
/// assert!(!hosts.contains("192.0.2.1"));
/// ```
pub fn etc_hosts(project: &Project, me: &str) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n\
         # Written by mln's hostsFile plugin: each host by its address on a\n\
         # switch shared with this one.\n",
    );
    let mut listed = BTreeSet::new();
    match project.host(me).and_then(first_address) {
        Some(a) => {
            let _ = writeln!(out, "{a}\t{me}");
        }
        None => {
            let _ = writeln!(out, "127.0.1.1\t{me}");
        }
    }
    listed.insert(me.to_string());
    for (address, host) in reachable(project, me) {
        if listed.insert(host.to_string()) {
            let _ = writeln!(out, "{address}\t{host}");
        }
    }
    for h in &project.hosts {
        if let (false, Some(a)) = (listed.contains(&h.name), first_address(h)) {
            listed.insert(h.name.clone());
            let _ = writeln!(out, "{a}\t{}", h.name);
        }
    }
    out
}

/// Hosts reached from `me` over switches, nearest first, each with its
/// address on the switch it was reached over (a host may appear more
/// than once; the first counts).
fn reachable<'p>(project: &'p Project, me: &str) -> Vec<(IpAddr, &'p str)> {
    let mut queue: VecDeque<&str> = VecDeque::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    if let Some(h) = project.host(me) {
        for s in h.interfaces.iter().filter_map(|i| i.switch.as_deref()) {
            if seen.insert(s) {
                queue.push_back(s);
            }
        }
    }
    let mut out = Vec::new();
    while let Some(name) = queue.pop_front() {
        let Some(switch) = project.switch(name) else {
            continue;
        };
        for port in &switch.members {
            let Some(host) = project.host(&port.host) else {
                continue;
            };
            let on_switch = host
                .interfaces
                .iter()
                .find(|i| i.name == port.interface)
                .and_then(|i| static_address(i.address.as_ref()));
            if let Some(a) = on_switch {
                out.push((a, host.name.as_str()));
            }
            for s in host.interfaces.iter().filter_map(|i| i.switch.as_deref()) {
                if seen.insert(s) {
                    queue.push_back(s);
                }
            }
        }
    }
    out
}

fn static_address(a: Option<&Address>) -> Option<IpAddr> {
    match a {
        Some(Address::Static { addr, .. }) => Some(*addr),
        _ => None,
    }
}

fn first_address(h: &Host) -> Option<IpAddr> {
    h.interfaces
        .iter()
        .find_map(|i| static_address(i.address.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "global { project lab; plugins { hostsFile } }
switch wan { }
switch lan { }
switch dmz { }
host gw {
    network eth0 { switch wan; address 192.0.2.1 }
    network eth1 { switch lan; address 10.0.0.1 }
}
host pc { network eth0 { switch lan; address 10.0.0.2 } }
host fw {
    network eth0 { switch lan; address 10.0.0.3 }
    network eth1 { switch dmz; address 172.16.0.1 }
}
host web { network eth0 { switch dmz; address 172.16.0.2 } }
host isle { network eth0 { address 198.51.100.9 } }
host dyn { network eth0 { switch lan; address dhcp } }
";

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn each_host_is_listed_by_its_address_on_the_nearest_shared_switch() {
        let p = crate::load_str("lab.mln", LAB).unwrap();
        let pc = etc_hosts(p.project(), "pc");
        assert_eq!(
            lines(&pc),
            [
                "127.0.0.1\tlocalhost",
                "::1\tlocalhost ip6-localhost",
                "10.0.0.2\tpc",
                "10.0.0.1\tgw",
                "10.0.0.3\tfw",
                "172.16.0.2\tweb",
                // Reached over no switch: its first address.
                "198.51.100.9\tisle",
            ]
        );
        let web = etc_hosts(p.project(), "web");
        assert!(web.contains("172.16.0.1\tfw\n"), "{web}");
        assert!(web.contains("10.0.0.1\tgw\n"), "{web}");
        assert!(!web.contains("10.0.0.3"), "{web}");
        // A host with only DHCP is not listed; one without any address
        // names itself.
        assert!(!web.contains("dyn"), "{web}");
        let dyn_ = etc_hosts(p.project(), "dyn");
        assert!(dyn_.contains("127.0.1.1\tdyn\n"), "{dyn_}");
    }

    #[test]
    fn the_outside_address_is_seen_from_outside() {
        let p = crate::load_str("lab.mln", LAB).unwrap();
        let isle = etc_hosts(p.project(), "isle");
        assert!(isle.contains("192.0.2.1\tgw\n"), "{isle}");
    }

    /// What MLN 1.0.8's `plugins/hostsFile.pl` appends to each guest's
    /// `/etc/hosts` on the file below, got by running MLN's own code: its
    /// `mln parse -f hf.mln` with `hostsFile.pl` and a probe in
    /// `~/.mln_plugins` whose `END` block redefines `addToFile` to print
    /// and calls `hostsFile_configure` for every host (eight runs,
    /// `PERL_HASH_SEED=1..8`):
    ///
    /// ```text
    /// pc /etc/hosts: 192.168.1.1 router              (every run)
    /// server /etc/hosts: 10.0.0.1 router             (every run)
    /// router /etc/hosts: 10.0.0.5 server             (4 runs of 8)
    /// router /etc/hosts: 192.168.1.10 pc             (the other 4)
    /// ```
    ///
    /// Every address MLN gives a name is the one given here. Where MLN
    /// lists less, it is its plugin's bugs, kept out (docs/language.md):
    /// a host with several interfaces looks from one switch only, chosen
    /// by Perl's hash order (the loop overwrites its list per interface),
    /// and hosts two switches away are never listed (the second,
    /// "breadth first" round skips every host the first one found).
    #[test]
    fn every_address_mln_1_0_8_gives_is_the_one_given_here() {
        let file = "global { project hf }
switch lan { }
switch wan { }
host router {
  network eth0 { switch wan; address 10.0.0.1; netmask 255.255.255.0 }
  network eth1 { switch lan; address 192.168.1.1; netmask 255.255.255.0 }
}
host pc { network eth0 { switch lan; address 192.168.1.10; netmask 255.255.255.0 } }
host server { network eth0 { switch wan; address 10.0.0.5; netmask 255.255.255.0 } }
";
        let p = crate::load_str("hf.mln", file).unwrap();
        let mln_1_0_8 = [
            ("pc", "192.168.1.1\trouter"),
            ("server", "10.0.0.1\trouter"),
            ("router", "10.0.0.5\tserver"),
            ("router", "192.168.1.10\tpc"),
        ];
        for (guest, line) in mln_1_0_8 {
            let ours = etc_hosts(p.project(), guest);
            assert!(lines(&ours).contains(&line), "{guest}: {ours}");
        }
        // What MLN leaves out: the host two switches away, by its address
        // on its own switch.
        assert!(lines(&etc_hosts(p.project(), "pc")).contains(&"10.0.0.5\tserver"));
        assert!(lines(&etc_hosts(p.project(), "server")).contains(&"192.168.1.10\tpc"));
    }
}
