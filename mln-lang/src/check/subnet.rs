//! IPv4 and IPv6 subnets: the arithmetic behind E0014.

use std::net::IpAddr;

/// A subnet: a network address and a prefix length, normalised so that two
/// equal subnets compare equal whatever host address they were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// The subnet `addr/prefix` lies in; `None` when the prefix is longer
    /// than the address family allows.
    pub fn containing(addr: IpAddr, prefix: u8) -> Option<Subnet> {
        let bits = family_bits(addr);
        if u32::from(prefix) > bits {
            return None;
        }
        let network = from_bits(addr, to_bits(addr) & mask(bits, prefix));
        Some(Subnet { network, prefix })
    }

    /// True when `addr` is inside this subnet (never across families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        if addr.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let bits = family_bits(addr);
        to_bits(addr) & mask(bits, self.prefix) == to_bits(self.network)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The prefix length of a netmask such as `255.255.255.0`, or `None` when
/// its ones are not contiguous.
pub fn prefix_of_netmask(mask_addr: IpAddr) -> Option<u8> {
    let bits = family_bits(mask_addr);
    let value = to_bits(mask_addr);
    let ones = value.count_ones();
    if value != mask(bits, u8::try_from(ones).ok()?) {
        return None;
    }
    u8::try_from(ones).ok()
}

fn family_bits(addr: IpAddr) -> u32 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_bits(like: IpAddr, value: u128) -> IpAddr {
    match like {
        // Only the low 32 bits are ever set for an IPv4 value.
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(value).unwrap_or(0).into()),
        IpAddr::V6(_) => IpAddr::V6(value.into()),
    }
}

/// The mask with `prefix` leading ones in a `bits`-wide address.
fn mask(bits: u32, prefix: u8) -> u128 {
    let prefix = u32::from(prefix).min(bits);
    let all: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    // A full-width prefix shifts by the whole width (128 for IPv6), which
    // `>>` does not allow: no host bits are left then.
    all & !all.checked_shr(prefix).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn netmask_prefixes() {
        assert_eq!(prefix_of_netmask(ip("255.255.255.0")), Some(24));
        assert_eq!(prefix_of_netmask(ip("255.255.0.0")), Some(16));
        assert_eq!(prefix_of_netmask(ip("255.255.255.255")), Some(32));
        assert_eq!(prefix_of_netmask(ip("0.0.0.0")), Some(0));
        assert_eq!(prefix_of_netmask(ip("255.0.255.0")), None);
        assert_eq!(prefix_of_netmask(ip("ffff:ffff::")), Some(32));
        assert_eq!(prefix_of_netmask(ip("ffff::ffff")), None);
    }

    #[test]
    fn subnets_normalise_and_contain() {
        let a = Subnet::containing(ip("192.168.1.10"), 24).unwrap();
        let b = Subnet::containing(ip("192.168.1.200"), 24).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "192.168.1.0/24");
        assert!(a.contains(ip("192.168.1.1")));
        assert!(!a.contains(ip("192.168.2.1")));
        assert!(!a.contains(ip("::1")));
        let all = Subnet::containing(ip("10.0.0.1"), 0).unwrap();
        assert!(all.contains(ip("200.1.1.1")));
        assert!(Subnet::containing(ip("10.0.0.1"), 33).is_none());
        let v6 = Subnet::containing(ip("2001:db8::5"), 64).unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/64");
        assert!(v6.contains(ip("2001:db8::ffff")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let host = Subnet::containing(ip("2001:db8::5"), 128).unwrap();
        assert!(host.contains(ip("2001:db8::5")));
        assert!(!host.contains(ip("2001:db8::6")));
        assert_eq!(
            prefix_of_netmask(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(128)
        );
    }
}
