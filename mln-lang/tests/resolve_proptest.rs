//! Property: the resolver never panics on any project the parser accepts,
//! and whatever it resolves prints back to an equal project.

use std::path::Path;

use mln_lang::print::to_mln;
use mln_lang::resolve::resolve;
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::SourceMap;
use proptest::prelude::*;

/// Words the language knows, and some it does not.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "global",
            "project",
            "host",
            "superclass",
            "switch",
            "network",
            "eth0",
            "eth1",
            "address",
            "netmask",
            "gateway",
            "mac",
            "bridge",
            "memory",
            "size",
            "swap",
            "vcpus",
            "xen",
            "hvm",
            "kvm",
            "uml",
            "lvm",
            "term",
            "screen",
            "startup",
            "users",
            "groups",
            "files",
            "mount",
            "xen_extra",
            "autoenum",
            "numhosts",
            "net",
            "auto",
            "addresses_begin",
            "service_hosts",
            "all",
            "hostprefix",
            "autouser",
            "service_host",
            "location",
            "boot_order",
            "nameserver",
            "template",
            "dhcp",
            "10.0.0.1",
            "255.255.255.0",
            "64M",
            "2G",
            "1",
            "0",
            "3",
            "$x",
            "$hostname",
            "$[y]",
            "$1",
            "a",
            "b",
            "s",
            "lan",
            "plugin",
            "afterHostsStart",
            "=",
            "02:00:00:00:00:01",
            "10.0.0.1/24",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,4}",
    ]
}

/// One item: a statement, a declaration or a block of items.
fn item() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => (word(), prop::collection::vec(word(), 0..3))
            .prop_map(|(k, v)| format!("{k} {}\n", v.join(" "))),
        1 => "\\$[a-z] = [a-z0-9$]{1,3}\n",
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        (
            word(),
            prop::option::of(word()),
            prop::collection::vec(inner, 0..6),
        )
            .prop_map(|(name, label, items)| {
                format!(
                    "{name} {} {{\n{}}}\n",
                    label.unwrap_or_default(),
                    items.concat()
                )
            })
    })
}

fn top() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["host", "host", "host", "superclass", "switch"]),
        prop::sample::select(vec!["a", "b", "s", "t", "lan"]),
        prop::collection::vec(item(), 0..8),
    )
        .prop_map(|(kind, name, items)| format!("{kind} {name} {{\n{}}}\n", items.concat()))
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![3 => top(), 1 => item()], 0..8).prop_map(|t| {
        format!(
            "global {{ project p; $x = 1 }}\nswitch lan {{ }}\n{}",
            t.concat()
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn resolve_never_panics_and_round_trips(text in text()) {
        let mut sources = SourceMap::new();
        let Ok(ast) = parse_source(&mut sources, Path::new("f.mln"), text.as_bytes(), &Limits::default()) else {
            return Ok(());
        };
        let Ok(r) = resolve(&ast, &sources) else {
            return Ok(());
        };
        let printed = to_mln(&r.project);
        let mut sources = SourceMap::new();
        let ast = parse_source(&mut sources, Path::new("g.mln"), printed.as_bytes(), &Limits::default())
            .map_err(|d| TestCaseError::fail(format!("{}\n{printed}", mln_lang::render(&sources, &d.0, false))))?;
        let back = resolve(&ast, &sources)
            .map_err(|d| TestCaseError::fail(format!("{}\n{printed}", mln_lang::render(&sources, &d.0, false))))?;
        prop_assert_eq!(&back.project, &r.project, "source:\n{}\nprinted:\n{}", text, printed);
    }
}
