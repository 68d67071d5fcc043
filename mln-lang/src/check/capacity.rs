//! Memory against the service hosts' capacity (E0016), a plan-time check:
//! only the planner knows how much memory each physical server has.

use std::collections::BTreeMap;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{Origins, Project};

/// The key under which [`check_capacity`] looks up the capacity of the
/// local machine, which runs every host without a `service_host`.
pub const LOCAL_MACHINE: &str = "localhost";

/// E0016: hosts asking for more memory than their service host has.
///
/// `capacity` maps a service host's name to the memory, in bytes, that its
/// guests may use (hosts without `service_host` are looked up under
/// [`LOCAL_MACHINE`]); service hosts not in the map are not checked. A host
/// that alone needs more than its server has is reported at its `memory`;
/// otherwise, when the hosts on one server need more together, the host
/// that goes over is reported, once per server.
///
/// ```
/// use std::collections::BTreeMap;
/// use mln_lang::check::check_capacity;
/// use mln_lang::model::{Host, Origins, Project};
///
/// let mut big = Host::new("db");
/// big.service_host = Some("server-a".into());
/// big.memory = 2 << 30;
/// let project = Project { name: "p".into(), hosts: vec![big], ..Project::default() };
/// let capacity = BTreeMap::from([("server-a".to_string(), 1u64 << 30)]);
///
/// let diags = check_capacity(&project, &Origins::default(), &capacity);
/// assert_eq!(diags.iter().next().map(|d| d.code.as_str()), Some("E0016"));
/// ```
pub fn check_capacity(
    project: &Project,
    origins: &Origins,
    capacity: &BTreeMap<String, u64>,
) -> Diagnostics {
    let mut out = Diagnostics::default();
    // Running total per server, and whether the server was reported.
    let mut used: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
    for host in &project.hosts {
        let server = host.service_host.as_deref().unwrap_or(LOCAL_MACHINE);
        let Some(&limit) = capacity.get(server) else {
            continue;
        };
        let span = origins
            .hosts
            .get(&host.name)
            .map(|o| o.keywords.get("memory").copied().unwrap_or(o.name));
        let entry = used.entry(server).or_insert((0, false));
        entry.0 = entry.0.saturating_add(host.memory);
        if host.memory > limit {
            entry.1 = true;
            out.push(
                Diagnostic::new(
                    Code::OverCapacity,
                    span,
                    format!(
                        "host `{}` needs {} of memory; its service host `{server}` has {}",
                        host.name,
                        human(host.memory),
                        human(limit)
                    ),
                )
                .with_help(format!(
                    "lower `memory` to at most {}, or move the host to another `service_host`",
                    human(limit)
                )),
            );
        } else if entry.0 > limit && !entry.1 {
            // Reported once per server, at the host that goes over.
            entry.1 = true;
            out.push(
                Diagnostic::new(
                    Code::OverCapacity,
                    span,
                    format!(
                        "with host `{}`, the hosts on `{server}` need {} of memory; it has {}",
                        host.name,
                        human(entry.0),
                        human(limit)
                    ),
                )
                .with_help("lower `memory`, or spread the hosts over more service hosts"),
            );
        }
    }
    super::collapse_repeats(&mut out);
    out
}

/// `2 GiB`, `512 MiB`, `3 KiB` when exact, else bytes.
fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Host;

    fn host(name: &str, server: Option<&str>, memory: u64) -> Host {
        let mut h = Host::new(name);
        h.service_host = server.map(str::to_string);
        h.memory = memory;
        h
    }

    fn codes(project: &Project, capacity: &[(&str, u64)]) -> Vec<String> {
        let capacity = capacity.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        check_capacity(project, &Origins::default(), &capacity)
            .iter()
            .map(|d| d.message.clone())
            .collect()
    }

    #[test]
    fn one_host_over_its_server_is_reported() {
        let p = Project {
            hosts: vec![
                host("db", Some("a"), 2 << 30),
                host("web", Some("b"), 2 << 30),
            ],
            ..Project::default()
        };
        let msgs = codes(&p, &[("a", 1 << 30)]);
        assert_eq!(
            msgs,
            ["host `db` needs 2 GiB of memory; its service host `a` has 1 GiB"]
        );
    }

    #[test]
    fn hosts_over_a_server_together_are_reported_once() {
        let p = Project {
            hosts: vec![
                host("x", None, 512 << 20),
                host("y", None, 512 << 20),
                host("z", None, 512 << 20),
                host("w", None, 512 << 20),
            ],
            ..Project::default()
        };
        let msgs = codes(&p, &[(LOCAL_MACHINE, 1 << 30)]);
        assert_eq!(
            msgs,
            ["with host `z`, the hosts on `localhost` need 1536 MiB of memory; it has 1 GiB"]
        );
    }

    #[test]
    fn unknown_servers_and_fitting_hosts_pass() {
        let p = Project {
            hosts: vec![
                host("x", Some("a"), 1 << 30),
                host("y", Some("c"), 64 << 30),
            ],
            ..Project::default()
        };
        assert!(codes(&p, &[("a", 1 << 30)]).is_empty());
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit() {
        assert_eq!(human(2 << 30), "2 GiB");
        assert_eq!(human(1536 << 20), "1536 MiB");
        assert_eq!(human(1000), "1000 bytes");
        assert_eq!(human(0), "0 bytes");
    }
}
