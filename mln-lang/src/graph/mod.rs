//! A project's topology as a picture: hosts, switches and the links
//! between them (each labelled with its interface and address), with the
//! hosts and switches of each service host grouped in a cluster.
//!
//! [`to_dot`] writes Graphviz DOT (render with `dot -Tsvg`), [`to_mermaid`]
//! a Mermaid flowchart (renders in Markdown on GitHub and GitLab). Both
//! read the planner's view of a project, so a resolved
//! [`crate::model::Project`] goes through
//! [`DesiredProject::from_project`] first.
//!
//! ```
//! use mln_lang::plan::{DesiredProject, HostSpec, SwitchSpec};
//! let mut p = DesiredProject::new("lab");
//! p.add_switch(SwitchSpec::new("lan"));
//! p.add_host(HostSpec::new("web"));
//! assert!(mln_lang::graph::to_dot(&p).contains("\"host:web\""));
//! assert!(mln_lang::graph::to_mermaid(&p).starts_with("---\ntitle: project lab"));
//! ```

mod dot;
mod mermaid;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::plan::{DesiredProject, HostInterface, HostSpec};

pub use dot::to_dot;
pub use mermaid::to_mermaid;

/// What the picture shows, in a stable order (names sorted, interfaces in
/// guest order), so the same project always draws the same text.
struct Topology<'a> {
    project: &'a str,
    /// Service host (`None`: this machine) → what runs there.
    places: BTreeMap<Option<&'a str>, Place<'a>>,
    /// Existing host bridges interfaces plug into.
    bridges: BTreeSet<&'a str>,
    links: Vec<Link<'a>>,
}

#[derive(Default)]
struct Place<'a> {
    hosts: Vec<&'a HostSpec>,
    /// Switch name and whether it floods every port (a hub).
    switches: Vec<(&'a str, bool)>,
}

/// Where an interface plugs in.
enum End<'a> {
    Switch(&'a str),
    Bridge(&'a str),
}

struct Link<'a> {
    host: &'a str,
    end: End<'a>,
    /// Label lines: the interface, then its address when it has one.
    label: Vec<String>,
}

impl<'a> Topology<'a> {
    fn of(p: &'a DesiredProject) -> Self {
        let mut places: BTreeMap<Option<&str>, Place> = BTreeMap::new();
        let mut bridges = BTreeSet::new();
        let mut links = Vec::new();
        for s in p.switches.values() {
            places
                .entry(s.service_host.as_deref())
                .or_default()
                .switches
                .push((&s.name, s.hub));
        }
        let mut unknown = BTreeSet::new();
        for h in p.hosts.values() {
            places
                .entry(h.service_host.as_deref())
                .or_default()
                .hosts
                .push(h);
            for i in &h.interfaces {
                let end = match (&i.switch, &i.bridge) {
                    (Some(s), _) => {
                        if !p.switches.contains_key(s) {
                            unknown.insert(s.as_str());
                        }
                        End::Switch(s)
                    }
                    (None, Some(b)) => {
                        bridges.insert(b.as_str());
                        End::Bridge(b)
                    }
                    (None, None) => continue,
                };
                let mut label = vec![i.name.clone()];
                label.extend(address(i));
                links.push(Link {
                    host: &h.name,
                    end,
                    label,
                });
            }
        }
        // A switch the project does not declare (the checker refuses
        // that; a hand-made project may not) is still drawn.
        for s in unknown {
            places.entry(None).or_default().switches.push((s, false));
        }
        Topology {
            project: &p.name,
            places,
            bridges,
            links,
        }
    }
}

/// A host's label lines: its name, then platform and memory.
fn host_label(h: &HostSpec) -> [String; 2] {
    [
        h.name.clone(),
        format!(
            "{}, {}",
            h.platform.keyword(),
            crate::plan::render::size(h.memory)
        ),
    ]
}

/// `192.168.1.1/24` from an address and a netmask as written; an address
/// already in CIDR form, `dhcp` or an IPv6 address is shown as written.
fn address(i: &HostInterface) -> Option<String> {
    let a = i.address.as_deref()?;
    let prefix = i
        .netmask
        .as_deref()
        .and_then(|m| m.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .filter(|m| m.leading_ones() + m.trailing_zeros() == 32);
    Some(match prefix {
        Some(m) if !a.contains('/') && a.parse::<Ipv4Addr>().is_ok() => {
            format!("{a}/{}", m.leading_ones())
        }
        _ => a.to_string(),
    })
}

#[cfg(test)]
mod tests;
