//! How hosts plug into switches: unknown switches (E0004), interface
//! numbering (E0015), switches nobody uses (W0002), hosts with no
//! interface (W0003).

use std::collections::BTreeSet;

use super::suggest::closest;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{HostOrigin, Origins, Project};
use crate::source::Span;

/// E0004: an interface names a switch the project does not define. The
/// help suggests the closest defined switch, since this is nearly always a
/// typo. Returns the switches suggested, which are then not also reported
/// as unused: the typo is the one mistake.
pub(super) fn unknown_switches<'p>(
    project: &'p Project,
    origins: &Origins,
    out: &mut Diagnostics,
) -> BTreeSet<&'p str> {
    let mut suggested = BTreeSet::new();
    let known: BTreeSet<&str> = project.switches.iter().map(|s| s.name.as_str()).collect();
    for host in &project.hosts {
        for iface in &host.interfaces {
            let Some(wanted) = iface.switch.as_deref() else {
                continue;
            };
            if known.contains(wanted) {
                continue;
            }
            let origin = origins.hosts.get(&host.name);
            let span = interface_keyword(origin, &iface.name, "switch");
            let mut d = Diagnostic::new(
                Code::UnknownSwitch,
                span,
                format!(
                    "host `{}` {} plugs into switch `{wanted}`, which is not defined",
                    host.name, iface.name
                ),
            );
            d = match closest(wanted, project.switches.iter().map(|s| s.name.as_str())) {
                Some(near) => {
                    suggested.insert(near);
                    d.with_help(format!("did you mean `{near}`?"))
                }
                None if known.is_empty() => {
                    d.with_help(format!("define it: `switch {wanted} {{ }}`"))
                }
                None => d.with_help(format!(
                    "the project's switches are {}",
                    known
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            out.push(d);
        }
    }
    suggested
}

/// E0015: Xen numbers a guest's interfaces in order, so a host's interfaces
/// must be `eth0`, `eth1`, ... `ethN`, each once, none missing.
pub(super) fn interface_numbering(project: &Project, origins: &Origins, out: &mut Diagnostics) {
    for host in &project.hosts {
        // The common case, `eth0` ... `ethN` in order, has nothing to report.
        let in_order = host.interfaces.iter().enumerate().all(|(i, f)| {
            f.number()
                .is_some_and(|n| usize::try_from(n).is_ok_and(|n| n == i))
        });
        if in_order {
            continue;
        }
        // Looked up only when there is something to report.
        let origin = || origins.hosts.get(&host.name);
        let numbers: BTreeSet<u32> = host.interfaces.iter().filter_map(|i| i.number()).collect();
        for iface in host.interfaces.iter().filter(|i| i.number().is_none()) {
            out.push(
                Diagnostic::new(
                    Code::InterfaceNumbering,
                    interface_name(origin(), &iface.name),
                    format!(
                        "host `{}` has an interface named `{}`, not `ethN`",
                        host.name,
                        iface.name.escape_debug()
                    ),
                )
                .with_help(format!(
                    "interfaces are numbered in order: name it `eth{}`",
                    first_missing(&numbers, host.interfaces.len())
                )),
            );
        }
        // The first number missing below the highest one: report the
        // interface just above the gap, once per host.
        let Some(&highest) = numbers.iter().next_back() else {
            continue;
        };
        let Some(missing) = (0..highest).find(|n| !numbers.contains(n)) else {
            continue;
        };
        let Some(&above) = numbers.range(missing..).next() else {
            continue;
        };
        let above_name = format!("eth{above}");
        out.push(
            Diagnostic::new(
                Code::InterfaceNumbering,
                interface_name(origin(), &above_name),
                format!(
                    "host `{}` has `{above_name}` but no `eth{missing}`",
                    host.name
                ),
            )
            .with_help(format!(
                "Xen numbers interfaces without gaps: rename `{above_name}` to `eth{missing}`"
            )),
        );
    }
}

/// The smallest `N` not in `numbers` (for a suggestion), searching up to
/// `count` which is always enough.
fn first_missing(numbers: &BTreeSet<u32>, count: usize) -> u32 {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    (0..=count).find(|n| !numbers.contains(n)).unwrap_or(count)
}

/// W0002: a switch no interface plugs into, unless an unknown switch name
/// was taken for a typo of it (`suggested`).
pub(super) fn unused_switches(
    project: &Project,
    origins: &Origins,
    suggested: &BTreeSet<&str>,
    out: &mut Diagnostics,
) {
    // Only needed when some switch has no members (rare): built then.
    let mut used: Option<BTreeSet<&str>> = None;
    for switch in &project.switches {
        let name = switch.name.as_str();
        if !switch.members.is_empty() {
            continue;
        }
        let used = used.get_or_insert_with(|| {
            project
                .hosts
                .iter()
                .flat_map(|h| h.interfaces.iter())
                .filter_map(|i| i.switch.as_deref())
                .collect()
        });
        if !used.contains(name) && !suggested.contains(name) {
            out.push(
                Diagnostic::new(
                    Code::UnusedSwitch,
                    origins.switches.get(&switch.name).map(|o| o.name),
                    format!("no interface plugs into switch `{}`", switch.name),
                )
                .with_help(format!(
                    "add `switch {}` to a host's `network` block, or remove the switch",
                    switch.name
                )),
            );
        }
    }
}

/// W0003: a host with no network interface cannot be reached.
pub(super) fn hosts_without_interface(project: &Project, origins: &Origins, out: &mut Diagnostics) {
    for host in &project.hosts {
        if host.interfaces.is_empty() {
            out.push(
                Diagnostic::new(
                    Code::NoInterface,
                    origins.hosts.get(&host.name).map(|o| o.name),
                    format!("host `{}` has no network interface", host.name),
                )
                .with_help("add `network eth0 { switch NAME }` to connect it"),
            );
        }
    }
}

/// The span of `keyword`'s value in interface `iface`, falling back to the
/// interface's name, then the host's name.
pub(super) fn interface_keyword(
    origin: Option<&HostOrigin>,
    iface: &str,
    keyword: &str,
) -> Option<Span> {
    let o = origin?;
    match o.interfaces.get(iface) {
        Some(i) => Some(i.keywords.get(keyword).copied().unwrap_or(i.name)),
        None => Some(o.name),
    }
}

/// The span of the name of interface `iface`, falling back to the host's.
fn interface_name(origin: Option<&HostOrigin>, iface: &str) -> Option<Span> {
    let o = origin?;
    Some(o.interfaces.get(iface).map_or(o.name, |i| i.name))
}
