//! MLN's `owner`, `group` and `sudo` on hosts and switches. Here a
//! project belongs to one Unix user, whose guests and switches all run as
//! them (see [`crate::plan::Ownership`]): two owners (or two groups) in one
//! project are an error (E0026), `owner` and `sudo` both given a warning
//! (W0009; `sudo` counts, as in MLN).

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{BlockOrigin, Origins, Project};
use crate::source::Span;

/// One `owner`/`sudo` or `group` as written: the value, what wrote it, and
/// where.
struct Claim<'a> {
    value: &'a str,
    who: String,
    span: Option<Span>,
}

/// E0026 and W0009 for `project`.
pub(super) fn check(project: &Project, origins: &Origins, out: &mut Diagnostics) {
    let mut owners = Vec::new();
    let mut groups = Vec::new();
    for host in &project.hosts {
        let origin = origins.hosts.get(&host.name);
        let at = |key: &str| origin.map(|o| o.keywords.get(key).copied().unwrap_or(o.name));
        let who = format!("host `{}`", host.name);
        if let (Some(owner), Some(sudo)) = (&host.owner, &host.sudo) {
            both(out, &who, owner, sudo, at("owner"));
        }
        if let Some(user) = host.sudo.as_ref().or(host.owner.as_ref()) {
            let key = if host.sudo.is_some() { "sudo" } else { "owner" };
            owners.push(Claim {
                value: user,
                who: who.clone(),
                span: at(key),
            });
        }
        if let Some(group) = &host.group {
            groups.push(Claim {
                value: group,
                who,
                span: at("group"),
            });
        }
    }
    for switch in &project.switches {
        let origin = origins.switches.get(&switch.name);
        let at = |key: &str| origin.map(|o| block_span(o, key));
        let who = format!("switch `{}`", switch.name);
        if let (Some(owner), Some(sudo)) = (&switch.owner, &switch.sudo) {
            both(out, &who, owner, sudo, at("owner"));
        }
        if let Some(user) = switch.sudo.as_ref().or(switch.owner.as_ref()) {
            let key = if switch.sudo.is_some() {
                "sudo"
            } else {
                "owner"
            };
            owners.push(Claim {
                value: user,
                who: who.clone(),
                span: at(key),
            });
        }
        if let Some(group) = &switch.group {
            groups.push(Claim {
                value: group,
                who,
                span: at("group"),
            });
        }
    }
    differ(out, &mut owners, "owner");
    differ(out, &mut groups, "group");
}

fn block_span(origin: &BlockOrigin, key: &str) -> Span {
    origin.keywords.get(key).copied().unwrap_or(origin.name)
}

fn both(out: &mut Diagnostics, who: &str, owner: &str, sudo: &str, span: Option<Span>) {
    if owner == sudo {
        return;
    }
    out.push(Diagnostic::new(
        Code::OwnerAndSudo,
        span,
        format!("{who} names both `owner {owner}` and `sudo {sudo}`: it runs as {sudo}"),
    ));
}

/// E0026 at each claim that names another value than the first one
/// written (in file order).
fn differ(out: &mut Diagnostics, claims: &mut [Claim<'_>], what: &str) {
    claims.sort_by_key(|c| c.span.map(|s| (s.file.0, s.start)));
    let Some(first) = claims.first() else { return };
    for other in claims.iter().filter(|c| c.value != first.value) {
        let mut d = Diagnostic::new(
            Code::MixedOwners,
            other.span,
            format!(
                "{} has {what} `{}`, but {} has {what} `{}`: a project has one {what}",
                other.who, other.value, first.who, first.value
            ),
        )
        .with_help(
            "give each user a project of their own (`mln class` makes one copy per student)",
        );
        if let Some(span) = first.span {
            d = d.with_label(span, format!("{} has `{}` here", first.who, first.value));
        }
        out.push(d);
    }
}
