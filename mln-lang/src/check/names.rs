//! Names: duplicates (E0007) and names unsafe to use as file names, bridge
//! names and process arguments (E0008).

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{Origins, Project};
use crate::source::Span;

/// What a name names, for messages.
#[derive(Clone, Copy)]
enum Kind {
    Project,
    Host,
    /// A host `autoenum` made (its span is the `autoenum` block).
    GeneratedHost,
    Switch,
    Superclass,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Host | Kind::GeneratedHost => "host",
            Kind::Switch => "switch",
            Kind::Superclass => "superclass",
        }
    }
}

/// W0005: a `host` block written twice: as in MLN 1.0.8, the last block
/// is the host and the earlier ones are ignored (the resolver records
/// them in [`Origins`]). E0007: a second `switch` or `superclass` block
/// with a name already taken (the resolver merges them).
pub(super) fn duplicates(origins: &Origins, out: &mut Diagnostics) {
    for (name, o) in &origins.hosts {
        for earlier in &o.duplicates {
            out.push(
                Diagnostic::new(
                    Code::DuplicateHost,
                    Some(o.name),
                    format!(
                        "host `{name}` is written more than once: this last block is the host, \
                         as in MLN"
                    ),
                )
                .with_label(*earlier, "an earlier block, ignored")
                .with_help("remove the earlier block, or give one of them another name"),
            );
        }
    }
    let switches = origins
        .switches
        .iter()
        .map(|(n, o)| (Kind::Switch, n, o.name, &o.duplicates));
    let superclasses = origins
        .superclasses
        .iter()
        .map(|(n, o)| (Kind::Superclass, n, o.name, &o.duplicates));
    for (kind, name, first, again) in switches.chain(superclasses) {
        for span in again {
            out.push(
                Diagnostic::new(
                    Code::DuplicateName,
                    Some(*span),
                    format!("{} `{name}` is defined more than once", kind.word()),
                )
                .with_label(first, "first defined here")
                .with_help(format!(
                    "give this {} another name, or move its settings into the first block",
                    kind.word()
                )),
            );
        }
    }
}

/// E0008: every project, host, switch and superclass name must be a safe
/// identifier (see [`mln_core::name::check`]), because it becomes a file
/// name, a bridge name and a process argument.
pub(super) fn unsafe_names(project: &Project, origins: &Origins, out: &mut Diagnostics) {
    // An empty project name is "missing" (E0017), the resolver's to report.
    // Spans are looked up only for bad names: the common case is fast.
    if !project.name.is_empty() {
        check_one(|| Kind::Project, &project.name, || origins.project, out);
    }
    for host in &project.hosts {
        let origin = || origins.hosts.get(&host.name);
        let kind = || match origin() {
            Some(o) if o.generated => Kind::GeneratedHost,
            _ => Kind::Host,
        };
        check_one(kind, &host.name, || origin().map(|o| o.name), out);
    }
    for switch in &project.switches {
        let span = || origins.switches.get(&switch.name).map(|o| o.name);
        check_one(|| Kind::Switch, &switch.name, span, out);
    }
    for class in &project.superclasses {
        let Some(name) = class.label.as_deref() else {
            continue;
        };
        let span = || origins.superclasses.get(name).map(|o| o.name);
        check_one(|| Kind::Superclass, name, span, out);
    }
}

/// `kind` and `span` are computed only for a bad name.
fn check_one(
    kind: impl FnOnce() -> Kind,
    name: &str,
    span: impl FnOnce() -> Option<Span>,
    out: &mut Diagnostics,
) {
    let Err(reason) = mln_core::name::check(name) else {
        return;
    };
    let rule = "use letters, digits, `-`, `_` and `.` (not first), at most 63 characters: \
                the name becomes a file name, a bridge name and a process argument";
    let name = name.escape_debug();
    let (message, help) = match kind() {
        Kind::GeneratedHost => (
            format!("`autoenum` makes host name `{name}`, which is not safe: {reason}"),
            format!("change `hostprefix`; {rule}"),
        ),
        kind => (
            format!("{} name `{name}` is not safe: {reason}", kind.word()),
            rule.to_string(),
        ),
    };
    out.push(Diagnostic::new(Code::UnsafeName, span(), message).with_help(help));
}
