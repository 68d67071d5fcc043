//! MLN's `owner`, `group` and `sudo` on hosts and switches. Here a
//! project belongs to one Unix user, whose guests and switches all run as
//! them (see [`crate::plan::Ownership`]): two owners (or two groups) in one
//! project are an error (E0026), `owner` and `sudo` both given a warning
//! (W0009; `sudo` counts, as in MLN).

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{Origins, OwnerKeys, Project};
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
    // Each host and switch: what it is, its keys, and where each of
    // [`OwnerKeys::KEYWORDS`] was written (else its name).
    let hosts = project.hosts.iter().map(|h| {
        let origin = origins.hosts.get(&h.name);
        let spans = OwnerKeys::KEYWORDS
            .map(|k| origin.map(|o| o.keywords.get(k).copied().unwrap_or(o.name)));
        (format!("host `{}`", h.name), &h.owner_keys, spans)
    });
    let switches = project.switches.iter().map(|s| {
        let origin = origins.switches.get(&s.name);
        let spans = OwnerKeys::KEYWORDS
            .map(|k| origin.map(|o| o.keywords.get(k).copied().unwrap_or(o.name)));
        (format!("switch `{}`", s.name), &s.owner_keys, spans)
    });
    let mut owners = Vec::new();
    let mut groups = Vec::new();
    for (who, keys, [owner_at, group_at, sudo_at]) in hosts.chain(switches) {
        if let (Some(owner), Some(sudo)) = (&keys.owner, &keys.sudo) {
            both(out, &who, owner, sudo, owner_at);
        }
        if let Some((key, user)) = keys.user() {
            owners.push(Claim {
                value: user,
                who: who.clone(),
                span: if key == "sudo" { sudo_at } else { owner_at },
            });
        }
        if let Some(group) = &keys.group {
            groups.push(Claim {
                value: group,
                who,
                span: group_at,
            });
        }
    }
    differ(out, &mut owners, "owner");
    differ(out, &mut groups, "group");
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
