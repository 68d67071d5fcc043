//! Property: for any project, `to_mln` prints text that parses and
//! resolves back to an equal project. Two generators: projects built as
//! models (every field, awkward characters), and projects written as MLN
//! text with superclass chains (so inheritance, list merging and variable
//! expansion must all survive the trip).

use std::net::IpAddr;
use std::path::Path;

use mln_lang::model::{
    Address, FileCopy, GenericBlock, GenericItem, Group, Host, Interface, Mount, OwnerKeys,
    Platform, Project, Switch, SwitchPort, Term, User,
};
use mln_lang::print::to_mln;
use mln_lang::resolve::resolve;
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::SourceMap;
use proptest::prelude::*;

fn reparse(text: &str) -> Result<Project, String> {
    let mut sources = SourceMap::new();
    let ast = parse_source(
        &mut sources,
        Path::new("p.mln"),
        text.as_bytes(),
        &Limits::default(),
    )
    .map_err(|d| mln_lang::render(&sources, &d.0, false))?;
    resolve(&ast, &sources)
        .map(|r| r.project)
        .map_err(|d| mln_lang::render(&sources, &d.0, false))
}

/// A word of a value: plain characters and the ones the printer escapes.
/// A `$` is never followed by a letter: a resolved project has no such
/// text where the variable is declared (resolution expanded it), and the
/// language has no way to write it literally.
fn word() -> impl Strategy<Value = String> {
    "[a-z0-9./:=_,é\"'-]{1,6}|[a-z]{1,3}[;{}#\\\\][a-z0-9]{0,3}|\\$[0-9]"
}

/// A value: words joined by single spaces.
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 1..4).prop_map(|w| w.join(" "))
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,6}"
}

/// Keywords no block knows, so they land in `unknown`.
fn odd_keyword() -> impl Strategy<Value = String> {
    "x_[a-z]{1,6}"
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(s)
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|l| seen.insert(l.clone()));
    v
}

/// Lines of a list block: the first word must not start a declaration.
/// `sshkey` lines: a user and a key (the checker refuses any other).
fn sshkey_lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        (
            "[a-z][a-z0-9_]{0,5}",
            "[A-Za-z0-9+/]{4,12}",
            opt("[a-z]{1,5}@[a-z]{1,5}"),
        ),
        0..3,
    )
    .prop_map(|v| {
        dedup(
            v.into_iter()
                .map(|(user, data, comment)| match comment {
                    Some(c) => format!("{user} ssh-ed25519 {data} {c}"),
                    None => format!("{user} ssh-ed25519 {data}"),
                })
                .collect(),
        )
    })
}

fn lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(("[a-z][a-z0-9_]{0,5}", opt(value())), 0..4).prop_map(|v| {
        dedup(
            v.into_iter()
                .map(|(k, rest)| match rest {
                    Some(r) => format!("{k} {r}"),
                    None => k,
                })
                .collect(),
        )
    })
}

/// A size with the text it is written as.
fn size() -> impl Strategy<Value = (u64, String)> {
    let units: [(&str, u64); 7] = [
        ("K", 1024),
        ("M", 1 << 20),
        ("G", 1 << 30),
        ("KB", 1000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("b", 512),
    ];
    (1u64..5000, 0usize..8).prop_map(move |(n, u)| match units.get(u) {
        Some((unit, mult)) => (n * mult, format!("{n}{unit}")),
        None => (n << 20, n.to_string()),
    })
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from),
    ]
}

fn netmask() -> impl Strategy<Value = IpAddr> {
    (0u32..=32).prop_map(|p| IpAddr::from(u32::MAX.checked_shl(32 - p).unwrap_or(0).to_be_bytes()))
}

fn mac() -> impl Strategy<Value = String> {
    any::<[u8; 6]>().prop_map(|m| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        Just(Address::Dhcp),
        (ip(), opt(0u8..=32)).prop_map(|(addr, prefix)| Address::Static { addr, prefix }),
    ]
}

fn interface(n: usize) -> impl Strategy<Value = Interface> {
    (
        opt(name()),
        opt(address()),
        opt(netmask()),
        opt(ip()),
        opt(ip()),
        opt(mac()),
        opt(name()),
        prop::collection::btree_map(odd_keyword(), value(), 0..2),
    )
        .prop_map(
            move |(switch, address, netmask, broadcast, gateway, mac, bridge, unknown)| Interface {
                name: format!("eth{n}"),
                switch,
                address,
                netmask,
                broadcast,
                gateway,
                mac,
                bridge,
                unknown,
            },
        )
}

fn generic(depth: u32) -> impl Strategy<Value = GenericBlock> {
    let leaf = prop_oneof![
        (name(), opt(value()))
            .prop_map(|(keyword, value)| GenericItem::Statement { keyword, value }),
        ("[a-z]{1,5}", value()).prop_map(|(name, value)| GenericItem::Assign { name, value }),
    ];
    let items =
        leaf.prop_recursive(depth, 12, 4, |inner| {
            prop_oneof![
                inner.clone(),
                (
                    "y_[a-z]{1,4}",
                    opt("[a-z0-9]{1,4}"),
                    prop::collection::vec(inner, 0..3)
                )
                    .prop_map(|(name, label, items)| GenericItem::Block(
                        GenericBlock { name, label, items }
                    )),
            ]
        });
    (
        "y_[a-z]{1,4}",
        opt("[a-z0-9]{1,4}"),
        prop::collection::vec(items, 0..4),
    )
        .prop_map(|(name, label, items)| GenericBlock { name, label, items })
}

/// Blocks with distinct name and label (blocks of one key merge).
fn generic_blocks() -> impl Strategy<Value = Vec<GenericBlock>> {
    prop::collection::vec(generic(2), 0..3).prop_map(|mut v| {
        let mut seen = std::collections::HashSet::new();
        v.retain(|b| seen.insert((b.name.clone(), b.label.clone())));
        v
    })
}

fn users() -> impl Strategy<Value = Vec<User>> {
    prop::collection::vec(
        (
            name(),
            "(\\$[0-9]\\$[0-9])?[a-z0-9./]{1,12}",
            opt(("/home/[a-z]{1,5}", opt(0u32..70000))),
        ),
        0..3,
    )
    .prop_map(|v| {
        let mut out: Vec<User> = Vec::new();
        for (name, hash, home) in v {
            let (home, uid) = match home {
                Some((h, uid)) => (Some(h), uid),
                None => (None, None),
            };
            let u = User {
                name,
                hash,
                home,
                uid,
            };
            if !out.contains(&u) {
                out.push(u);
            }
        }
        out
    })
}

prop_compose! {
    fn host()(
        name in name(),
        platform in prop_oneof![Just(Platform::Uml), Just(Platform::Xen), Just(Platform::Hvm), Just(Platform::Kvm)],
        service_host in opt(name()),
        memory in opt(size()),
        vcpus in 1u32..64,
        template in opt(value()),
        sizes in (opt(size()), opt(size()), opt(size())),
        lvm in any::<bool>(),
        strings in prop::collection::vec(opt(value()), 8),
        owner_keys in owner_keys(),
        boot_order in 0u32..200,
        term in opt(prop_oneof![Just(Term::Screen), Just(Term::Xterm), Just(Term::None)]),
        nameserver in opt(ip()),
        users in users(),
        groups in prop::collection::vec((name(), prop::collection::vec(name(), 0..3)), 0..3),
        files in prop::collection::vec((word(), word(), opt("0[0-7]{3}")), 0..3),
        mounts in prop::collection::vec((word(), word(), name(), opt(value())), 0..2),
        lists in prop::collection::vec(lines(), 3),
        sshkeys in sshkey_lines(),
        xen_extra in prop::collection::btree_map("[a-z_]{1,8}", value(), 0..3),
        n_interfaces in 0usize..4,
        interfaces in prop::collection::vec(interface(0), 4),
        variables in prop::collection::btree_map("[a-z]{1,5}", value(), 0..2),
        unknown in prop::collection::btree_map(odd_keyword(), value(), 0..3),
        blocks in generic_blocks(),
    ) -> Host {
        let mut h = Host::new(name);
        h.platform = platform;
        h.service_host = service_host;
        if let Some((bytes, text)) = memory {
            h.memory = bytes;
            h.written.insert("memory".into(), text);
        }
        h.vcpus = vcpus;
        h.template = template;
        for (key, s) in [("size", sizes.0), ("free_space", sizes.1), ("swap", sizes.2)] {
            if let Some((bytes, text)) = s {
                match key {
                    "size" => h.size = Some(bytes),
                    "free_space" => h.free_space = Some(bytes),
                    _ => h.swap = Some(bytes),
                }
                h.written.insert(key.into(), text);
            }
        }
        h.lvm = lvm;
        let mut s = strings.into_iter();
        h.lvm_vg = s.next().flatten();
        h.lvm_snapshot = s.next().flatten();
        h.filepath = s.next().flatten();
        h.cow_filesystem = s.next().flatten();
        h.kernel = s.next().flatten();
        h.ramdisk = s.next().flatten();
        h.extra = s.next().flatten();
        h.root_passwd = s.next().flatten();
        h.owner_keys = owner_keys;
        h.boot_order = boot_order;
        h.term = term;
        h.nameserver = nameserver;
        h.users = users;
        let mut groups: Vec<Group> = groups.into_iter().map(|(name, members)| Group { name, members }).collect();
        groups.dedup();
        h.groups = groups;
        let mut files: Vec<FileCopy> = files.into_iter().map(|(src, dest, mode)| FileCopy { src, dest, mode }).collect();
        files.dedup();
        h.files = files;
        let mut mounts: Vec<Mount> = mounts.into_iter().map(|(src, point, fstype, options)| Mount { src, point, fstype, options }).collect();
        mounts.dedup();
        h.mount = mounts;
        let mut l = lists.into_iter();
        h.modules = l.next().unwrap_or_default();
        h.startup = l.next().unwrap_or_default();
        h.shutdown = l.next().unwrap_or_default();
        h.sshkey = sshkeys;
        h.xen_extra = xen_extra.into_iter().map(|(k, v)| format!("{k} {v}")).collect();
        h.interfaces = interfaces
            .into_iter()
            .take(n_interfaces)
            .enumerate()
            .map(|(i, mut iface)| {
                iface.name = format!("eth{i}");
                iface
            })
            .collect();
        h.variables = variables;
        h.unknown = unknown;
        h.blocks = blocks;
        h
    }
}

prop_compose! {
    fn switch()(
        name in name(),
        service_host in opt(name()),
        hub in any::<bool>(),
        bridge in opt(name()),
        socket in opt(word()),
        tap in opt(name()),
        owner_keys in owner_keys(),
        unknown in prop::collection::btree_map(odd_keyword(), value(), 0..2),
        blocks in generic_blocks(),
    ) -> Switch {
        Switch {
            name, service_host, hub, bridge, socket, tap, owner_keys,
            members: Vec::new(), unknown, blocks,
        }
    }
}

prop_compose! {
    fn owner_keys()(owner in opt(name()), group in opt(name()), sudo in opt(name())) -> OwnerKeys {
        OwnerKeys { owner, group, sudo }
    }
}

prop_compose! {
    fn project()(
        name in name(),
        variables in prop::collection::btree_map("[a-z]{1,5}", value(), 0..3),
        hooks in prop::collection::vec(lines(), 8),
        project_password in opt(word()),
        unknown in prop::collection::btree_map(odd_keyword(), value(), 0..2),
        global_blocks in generic_blocks(),
        hosts in prop::collection::vec(host(), 0..4),
        switches in prop::collection::vec(switch(), 0..3),
        blocks in generic_blocks(),
    ) -> Project {
        let mut p = Project { name, variables, project_password, unknown, global_blocks, blocks, ..Project::default() };
        for (name, lines) in mln_lang::model::Hooks::NAMES.iter().zip(hooks) {
            if let Some(h) = p.hooks.get_mut(name) {
                *h = lines;
            }
        }
        let mut seen = std::collections::HashSet::new();
        p.hosts = hosts.into_iter().filter(|h| seen.insert(h.name.clone())).collect();
        let mut seen = std::collections::HashSet::new();
        p.switches = switches.into_iter().filter(|s| seen.insert(s.name.clone())).collect();
        // Membership is derived: compute it the way the resolver does.
        for h in &p.hosts {
            for i in &h.interfaces {
                if let Some(s) = p.switches.iter_mut().find(|s| Some(&s.name) == i.switch.as_ref()) {
                    s.members.push(SwitchPort { host: h.name.clone(), interface: i.name.clone() });
                }
            }
        }
        p
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn printed_models_resolve_back_equal(p in project()) {
        let text = to_mln(&p);
        let back = reparse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &p, "printed as:\n{}", text);
    }

    #[test]
    fn projects_with_superclass_chains_round_trip(text in inherited_project()) {
        // Some combinations are rightly errors (`xen` and `kvm` in one host).
        let p = reparse(&text);
        prop_assume!(p.is_ok());
        let p = p.map_err(TestCaseError::fail)?;
        let printed = to_mln(&p);
        let back = reparse(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
        prop_assert_eq!(&back, &p, "source:\n{}\nprinted as:\n{}", text, printed);
    }
}

/// MLN text: a chain of superclasses, each setting a random subset of
/// keywords, lists, interfaces, variables and generic blocks; hosts
/// inheriting from random points of the chain and overriding some.
fn inherited_project() -> impl Strategy<Value = String> {
    let layer = || {
        (
            prop::collection::vec(
                prop_oneof![
                    Just("xen".to_string()),
                    Just("hvm".to_string()),
                    Just("kvm".to_string()),
                    Just("uml".to_string()),
                    Just("lvm".to_string()),
                    Just("lvm 0".to_string()),
                    (1u32..9).prop_map(|n| format!("vcpus {n}")),
                    (1u32..200).prop_map(|n| format!("boot_order {n}")),
                    (1u32..900).prop_map(|n| format!("memory {n}M")),
                    (1u32..900).prop_map(|n| format!("memory {n}")),
                    name().prop_map(|n| format!("template {n}.img")),
                    Just("template $hostname-$role.img".to_string()),
                    name().prop_map(|n| format!("service_host {n}")),
                    name().prop_map(|n| format!("x_extra {n}")),
                    (1u32..9).prop_map(|n| format!("$role = r{n}")),
                    prop::collection::vec(
                        prop_oneof![
                            Just("echo $hostname".to_string()),
                            Just("echo $role".to_string()),
                            "[a-z]{1,3}".prop_map(|s| format!("run {s}")),
                        ],
                        0..3
                    )
                    .prop_map(|l| format!("startup {{ {} }}", l.join("; "))),
                    "[a-z]{1,3}".prop_map(|s| format!("users {{ {s} $1$x$y }}")),
                    ("[a-z]{1,2}", "[a-z]{1,2}")
                        .prop_map(|(k, v)| format!("xen_extra {{ {k} = {v} }}")),
                    (0u32..3, 1u8..250)
                        .prop_map(|(i, a)| format!("network eth{i} {{ address 10.0.0.{a} }}")),
                    (0u32..3).prop_map(|i| format!(
                        "network eth{i} {{ switch lan; netmask 255.255.255.0 }}"
                    )),
                    ("[a-z]{1,2}", "[a-z]{1,2}")
                        .prop_map(|(k, v)| format!("y_plug {{ {k} {v}; inner {{ {v} {k} }} }}")),
                ],
                0..6,
            ),
            0usize..4,
        )
    };
    (
        prop::collection::vec(layer(), 1..5),
        prop::collection::vec(layer(), 1..5),
    )
        .prop_map(|(supers, hosts)| {
            let mut t = String::from("global { project chain; $role = global }\nswitch lan { }\n");
            let n = supers.len();
            for (i, (stmts, _)) in supers.iter().enumerate() {
                t.push_str(&format!("superclass s{i} {{\n"));
                if i + 1 < n {
                    t.push_str(&format!("superclass s{}\n", i + 1));
                }
                for s in stmts {
                    t.push_str(s);
                    t.push('\n');
                }
                t.push_str("}\n");
            }
            for (i, (stmts, parent)) in hosts.iter().enumerate() {
                t.push_str(&format!("host h{i} {{\n"));
                if *parent < n {
                    t.push_str(&format!("superclass s{parent}\n"));
                }
                for s in stmts {
                    t.push_str(s);
                    t.push('\n');
                }
                t.push_str("}\n");
            }
            t
        })
}
