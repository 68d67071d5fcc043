//! Checks on a resolved project: everything the language reference lists
//! that needs the whole project to see (unknown switches, duplicate and
//! unsafe names, addresses, interface numbering, unused switches, hosts
//! with no interface), plus the plan-time memory check.
//!
//! The parser reports what is wrong with the text and the resolver what is
//! wrong with a single value; a project that got this far is well formed,
//! and every problem found here is about how its parts fit together.

mod addresses;
mod capacity;
mod cpus;
mod links;
mod memory;
mod names;
mod owners;
pub mod subnet;
pub mod suggest;
#[cfg(test)]
mod tests;

pub use capacity::{check_capacity, LOCAL_MACHINE};
pub use memory::{minimum_memory, UML_KERNEL_IMAGE, UML_RELIABLE_MEMORY};

use std::collections::HashMap;

use crate::diag::{Code, Diagnostics};
use crate::model::{Origins, Project};
use crate::resolve::Resolved;
use crate::source::{SourceMap, Span};

/// Check a resolved project: E0004, E0007, E0008, E0013, E0014, E0015
/// (errors), W0002 and W0003 (warnings), sorted by where they point.
///
/// The resolver's own warnings (`resolved.warnings`) are not repeated: the
/// caller shows both. The plan-time memory check is [`check_capacity`].
/// `sources` is the map the spans point into; the checks need only the
/// spans, and take it so that checks quoting source text need no new API.
///
/// ```
/// use std::path::Path;
/// use mln_lang::check::check;
/// use mln_lang::resolve::resolve;
/// use mln_lang::syntax::{parse_source, Limits};
/// use mln_lang::SourceMap;
///
/// let text = b"global { project p }\nswitch lan {\n}\nhost a {\n    network eth0 { switch lna }\n}\n";
/// let mut sources = SourceMap::new();
/// let ast = parse_source(&mut sources, Path::new("p.mln"), text, &Limits::default()).unwrap();
/// let resolved = resolve(&ast, &sources).unwrap();
///
/// let diags = check(&resolved, &sources);
/// let first = diags.iter().next().unwrap();
/// assert_eq!(first.code.as_str(), "E0004");
/// assert_eq!(first.help.as_deref(), Some("did you mean `lan`?"));
/// assert_eq!(sources.location(first.span.unwrap()), "p.mln:5:27");
/// assert!(diags.has_errors());
/// ```
pub fn check(resolved: &Resolved, sources: &SourceMap) -> Diagnostics {
    let _ = sources;
    check_project(&resolved.project, &resolved.origins)
}

/// Check a resolved `project`, pointing diagnostics at the spans in
/// `origins`: E0004, E0007, E0008, E0013, E0014, E0015 (errors), W0002 and
/// W0003 (warnings). Diagnostics come sorted by where they point.
///
/// ```
/// use mln_lang::check::check_project;
/// use mln_lang::model::{Host, Interface, Origins, Project, Switch};
///
/// let mut host = Host::new("a");
/// let mut eth0 = Interface::new("eth0");
/// eth0.switch = Some("lna".into());
/// host.interfaces.push(eth0);
/// let project = Project {
///     name: "p".into(),
///     hosts: vec![host],
///     switches: vec![Switch::new("lan")],
///     ..Project::default()
/// };
///
/// let diags = check_project(&project, &Origins::default());
/// let codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
/// assert_eq!(codes, ["E0004"]); // and not W0002 for `lan`: the typo is the one mistake
/// assert_eq!(diags.iter().next().and_then(|d| d.help.as_deref()), Some("did you mean `lan`?"));
/// ```
pub fn check_project(project: &Project, origins: &Origins) -> Diagnostics {
    let mut out = Diagnostics::default();
    names::duplicates(origins, &mut out);
    names::unsafe_names(project, origins, &mut out);
    let suggested = links::unknown_switches(project, origins, &mut out);
    links::interface_numbering(project, origins, &mut out);
    addresses::check(project, origins, &mut out);
    links::unused_switches(project, origins, &suggested, &mut out);
    links::hosts_without_interface(project, origins, &mut out);
    memory::check(project, origins, &mut out);
    cpus::check(project, origins, &mut out);
    owners::check(project, origins, &mut out);
    collapse_repeats(&mut out);
    sort(&mut out);
    out
}

/// One mistake written once but inherited by many hosts (a superclass
/// interface, an `autoenum` block) would otherwise be reported once per
/// host, all at the same place: keep the first, and say how many more.
pub(crate) fn collapse_repeats(diags: &mut Diagnostics) {
    let mut first_at: HashMap<(Code, Span), usize> = HashMap::new();
    let mut repeats: Vec<usize> = vec![0; diags.len()];
    let mut keep = Vec::with_capacity(diags.len());
    for (i, d) in diags.0.iter().enumerate() {
        match d.span {
            Some(span) => match first_at.get(&(d.code, span)) {
                Some(&first) => {
                    repeats[first] += 1;
                    keep.push(false);
                }
                None => {
                    first_at.insert((d.code, span), i);
                    keep.push(true);
                }
            },
            None => keep.push(true),
        }
    }
    let old = std::mem::take(&mut diags.0);
    for ((mut d, keep), more) in old.into_iter().zip(keep).zip(repeats) {
        if !keep {
            continue;
        }
        if more > 0 {
            d.message = format!("{} (and {more} more like it)", d.message);
        }
        diags.0.push(d);
    }
}

/// Order by file and position, diagnostics without a span last; the sort is
/// stable, so diagnostics at one place keep the order they were found in.
fn sort(diags: &mut Diagnostics) {
    diags
        .0
        .sort_by_key(|d| d.span.map_or((u32::MAX, u32::MAX), |s| (s.file.0, s.start)));
}
