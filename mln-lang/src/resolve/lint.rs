//! The keywords each block knows, and warnings for the ones it does not.

use crate::diag::{Code, Diagnostic};
use crate::syntax::Text;
use crate::syntax::{Block, Item};

use super::values::closest;
use super::Ctx;

/// Statements a `host` or `superclass` block knows.
pub(crate) const HOST_KEYWORDS: &[&str] = &[
    "superclass",
    "xen",
    "uml",
    "kvm",
    "hvm",
    "service_host",
    "location",
    "memory",
    "vcpus",
    "cpus",
    "template",
    "size",
    "free_space",
    "swap",
    "lvm",
    "lvm_vg",
    "lvm_snapshot",
    "filepath",
    "cow_filesystem",
    "kernel",
    "ramdisk",
    "extra",
    "boot_order",
    "term",
    "nameserver",
    "root_passwd",
    "owner",
    "group",
    "sudo",
];

/// True when `k` is one of [`HOST_KEYWORDS`] (a `match`, which compiles
/// to far fewer comparisons than a scan of the list).
fn is_host_keyword(k: &str) -> bool {
    matches!(
        k,
        "superclass"
            | "xen"
            | "uml"
            | "kvm"
            | "hvm"
            | "service_host"
            | "location"
            | "memory"
            | "vcpus"
            | "cpus"
            | "template"
            | "size"
            | "free_space"
            | "swap"
            | "lvm"
            | "lvm_vg"
            | "lvm_snapshot"
            | "filepath"
            | "cow_filesystem"
            | "kernel"
            | "ramdisk"
            | "extra"
            | "boot_order"
            | "term"
            | "nameserver"
            | "root_passwd"
            | "owner"
            | "group"
            | "sudo"
    )
}

/// List blocks of a host: their lines are kept in order.
pub(crate) const HOST_LISTS: &[&str] = &[
    "users", "groups", "files", "mount", "modules", "startup", "shutdown", "sshkey",
];

/// Statements a `network IFACE` block knows.
pub(crate) const NETWORK_KEYWORDS: &[&str] = &[
    "switch",
    "address",
    "netmask",
    "broadcast",
    "gateway",
    "mac",
    "bridge",
];

/// Statements a `switch` block knows.
pub(crate) const SWITCH_KEYWORDS: &[&str] = &[
    "service_host",
    "location",
    "hub",
    "bridge",
    "socket",
    "tap",
    "owner",
    "group",
    "sudo",
];

/// Statements `global` knows.
pub(crate) const GLOBAL_KEYWORDS: &[&str] = &["project", "project_password", "persistent"];

/// Statements an `autoenum` block knows.
pub(crate) const AUTOENUM_KEYWORDS: &[&str] = &[
    "superclass",
    "numhosts",
    "hostprefix",
    "net",
    "address",
    "addresses_begin",
    "autouser",
];

/// True for `autoenum`, `autoenum0` … `autoenum5`.
pub(crate) fn is_autoenum(name: &str) -> bool {
    matches!(
        name,
        "autoenum"
            | "autoenum0"
            | "autoenum1"
            | "autoenum2"
            | "autoenum3"
            | "autoenum4"
            | "autoenum5"
    )
}

/// W0001 for `keyword` in a `what` block, with the closest of `known` (and
/// of `also`, block names that the user may have meant) as help.
pub(crate) fn unknown_keyword(
    ctx: &mut Ctx<'_>,
    keyword: &crate::source::Spanned<Text>,
    what: &str,
    known: &[&str],
) {
    let mut d = Diagnostic::new(
        Code::UnknownKeyword,
        Some(keyword.span),
        format!("unknown keyword `{}` in {what}", keyword.node),
    );
    if let Some(c) = closest(&keyword.node, known) {
        d = d.with_help(format!("did you mean `{c}`?"));
    }
    ctx.report(d);
}

/// Warn about every statement of a `host` or `superclass` block (and its
/// `network` blocks) that no keyword explains; report list keywords used
/// as statements and unnamed network blocks.
pub(crate) fn host_block(ctx: &mut Ctx<'_>, block: &Block, what: &str) {
    for item in &block.items {
        match item {
            Item::Statement(s) => {
                let k = s.keyword.node.as_str();
                if is_host_keyword(k) {
                    // Known: nothing to say (the common case, tested first).
                } else if HOST_LISTS.contains(&k) || k == "xen_extra" || k == "network" {
                    ctx.report(
                        Diagnostic::new(
                            Code::BadValue,
                            Some(s.keyword.span),
                            format!("`{k}` takes a block, not a value"),
                        )
                        .with_help(format!("write `{k} {{ ... }}`")),
                    );
                } else {
                    unknown_keyword(ctx, &s.keyword, what, HOST_KEYWORDS);
                }
            }
            Item::Block(b) if b.name.node == "network" => match &b.label {
                None => ctx.report(
                    Diagnostic::new(
                        Code::BadValue,
                        Some(b.name.span),
                        "`network` block without an interface name",
                    )
                    .with_help("write `network eth0 { ... }`"),
                ),
                Some(_) => network_block(ctx, b),
            },
            Item::Block(b) => {
                let name = b.name.node.as_str();
                if !HOST_LISTS.contains(&name) && name != "xen_extra" {
                    let mut blocks = HOST_LISTS.to_vec();
                    blocks.extend(["xen_extra", "network"]);
                    near_miss_block(ctx, &b.name, &blocks);
                }
            }
            Item::Assign(_) => {}
        }
    }
}

/// W0001 for a block whose name is one typo away from a block the
/// language knows (`starup { ... }`): it is still kept as a generic block
/// for extensions, but most likely a mistake.
pub(crate) fn near_miss_block(
    ctx: &mut Ctx<'_>,
    name: &crate::source::Spanned<Text>,
    known: &[&str],
) {
    if known.contains(&name.node.as_str()) {
        return;
    }
    // Only close calls: a distance of one or two edits, never a long name
    // that merely shares letters.
    if let Some(c) = closest(&name.node, known) {
        ctx.report(
            Diagnostic::new(
                Code::UnknownKeyword,
                Some(name.span),
                format!("unknown block `{}` is kept as a generic block", name.node),
            )
            .with_help(format!("did you mean `{c}`?")),
        );
    }
}

fn network_block(ctx: &mut Ctx<'_>, block: &Block) {
    for item in &block.items {
        match item {
            Item::Statement(s) => {
                if !NETWORK_KEYWORDS.contains(&s.keyword.node.as_str()) {
                    unknown_keyword(ctx, &s.keyword, "a network block", NETWORK_KEYWORDS);
                }
            }
            Item::Assign(a) => ctx.report(
                Diagnostic::new(
                    Code::UnknownKeyword,
                    Some(a.span),
                    "variables inside a network block are ignored",
                )
                .with_help("declare it in the host, its superclass or global"),
            ),
            Item::Block(b) => ctx.report(Diagnostic::new(
                Code::UnknownKeyword,
                Some(b.name.span),
                format!(
                    "unknown block `{}` in a network block is ignored",
                    b.name.node
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyword_match_agrees_with_the_list() {
        for k in HOST_KEYWORDS {
            assert!(is_host_keyword(k), "{k}");
        }
        for k in ["startup", "network", "memroy", "", "Memory"] {
            assert!(!is_host_keyword(k), "{k}");
        }
    }
}
