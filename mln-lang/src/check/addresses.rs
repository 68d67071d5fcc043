//! Addresses on a switch: one address used twice (E0013), an address
//! outside the subnet the switch's other hosts agree on (E0014).

use std::collections::HashMap;
use std::net::IpAddr;

use super::links::interface_keyword;
use super::subnet::{prefix_of_netmask, Subnet};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{Address, Origins, Project};
use crate::source::Span;

/// One statically addressed interface on a switch.
struct Port<'a> {
    host: &'a str,
    iface: &'a str,
    addr: IpAddr,
    /// The subnet its own prefix or netmask puts it in, when it has one.
    subnet: Option<Subnet>,
}

impl Port<'_> {
    /// Where its address was written (looked up only to report it).
    fn span(&self, origins: &Origins) -> Option<Span> {
        interface_keyword(origins.hosts.get(self.host), self.iface, "address")
    }
}

/// Static addresses grouped by switch name (in name order), each group in
/// host then interface order.
fn ports_by_switch(project: &Project) -> Vec<(&str, Vec<Port<'_>>)> {
    let mut by_switch: HashMap<&str, Vec<Port>> = HashMap::new();
    for host in &project.hosts {
        for iface in &host.interfaces {
            let (Some(switch), Some(Address::Static { addr, prefix })) =
                (iface.switch.as_deref(), iface.address)
            else {
                continue;
            };
            let prefix = prefix.or_else(|| iface.netmask.and_then(prefix_of_netmask));
            by_switch.entry(switch).or_default().push(Port {
                host: &host.name,
                iface: &iface.name,
                addr,
                subnet: prefix.and_then(|p| Subnet::containing(addr, p)),
            });
        }
    }
    let mut sorted: Vec<_> = by_switch.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
}

/// Run both address checks.
pub(super) fn check(project: &Project, origins: &Origins, out: &mut Diagnostics) {
    for (switch, ports) in ports_by_switch(project) {
        duplicate_addresses(switch, &ports, origins, out);
        // IPv4 and IPv6 subnets on one switch are independent.
        let (v4, v6): (Vec<&Port>, Vec<&Port>) = ports.iter().partition(|p| p.addr.is_ipv4());
        outside_subnet(switch, &v4, origins, out);
        outside_subnet(switch, &v6, origins, out);
    }
}

/// E0013: two interfaces on one switch with the same address.
fn duplicate_addresses(switch: &str, ports: &[Port], origins: &Origins, out: &mut Diagnostics) {
    let mut first: HashMap<IpAddr, &Port> = HashMap::with_capacity(ports.len());
    for port in ports {
        match first.get(&port.addr) {
            None => {
                first.insert(port.addr, port);
            }
            Some(earlier) => {
                let span = port.span(origins);
                let earlier_span = earlier.span(origins);
                if span == earlier_span {
                    // One `address` line inherited by several hosts (a
                    // superclass, autoenum without `address auto`).
                    out.push(
                        Diagnostic::new(
                            Code::DuplicateAddress,
                            span,
                            format!(
                                "hosts `{}` and `{}` both get address {} on switch `{switch}` \
                                 from this line",
                                earlier.host, port.host, port.addr
                            ),
                        )
                        .with_help(
                            "every host that inherits this address shares it: give each host \
                             its own (with autoenum, `address auto`)",
                        ),
                    );
                    continue;
                }
                let mut d = Diagnostic::new(
                    Code::DuplicateAddress,
                    span,
                    format!(
                        "address {} of host `{}` {} is already used on switch `{switch}`",
                        port.addr, port.host, port.iface
                    ),
                )
                .with_help("give each interface on a switch its own address");
                if let Some(span) = earlier_span {
                    d = d.with_label(
                        span,
                        format!("used by host `{}` {} here", earlier.host, earlier.iface),
                    );
                }
                out.push(d);
            }
        }
    }
}

/// E0014: the subnet most addressed interfaces on the switch are in (at
/// least two of them, and strictly more than in any other subnet) is the
/// switch's subnet; an address outside it is an error. Without such a
/// majority the hosts do not agree, and nothing is reported.
fn outside_subnet(switch: &str, ports: &[&Port], origins: &Origins, out: &mut Diagnostics) {
    let mut votes: HashMap<Subnet, Vec<&Port>> = HashMap::new();
    for &port in ports {
        if let Some(s) = port.subnet {
            votes.entry(s).or_default().push(port);
        }
    }
    let mut ranked: Vec<(&Subnet, &Vec<&Port>)> = votes.iter().collect();
    // Largest group first; the subnet breaks ties so the order is stable.
    ranked.sort_by_key(|r| (std::cmp::Reverse(r.1.len()), *r.0));
    let (subnet, agreeing) = match ranked.as_slice() {
        [(s, p), rest @ ..]
            if p.len() >= 2 && rest.first().map_or(true, |r| r.1.len() < p.len()) =>
        {
            (**s, *p)
        }
        _ => return,
    };
    for port in ports.iter().filter(|p| !subnet.contains(p.addr)) {
        let mut d = Diagnostic::new(
            Code::AddressOutsideSubnet,
            port.span(origins),
            format!(
                "address {} of host `{}` {} is outside {subnet}, the subnet of switch `{switch}`",
                port.addr, port.host, port.iface
            ),
        )
        .with_help(format!(
            "{} of the {} addressed interfaces on `{switch}` are in {subnet}; \
             use an address in it, or plug this interface into another switch",
            agreeing.len(),
            ports.len()
        ));
        if let Some(witness) = agreeing.first() {
            if let Some(span) = witness.span(origins) {
                d = d.with_label(
                    span,
                    format!("host `{}` {} is in {subnet}", witness.host, witness.iface),
                );
            }
        }
        out.push(d);
    }
}
