//! Unit tests of the checks on hand-built projects (the corpus in
//! `tests/invalid/` covers them again from text).

use std::collections::BTreeMap;

use super::check_project;
use crate::diag::{Code, Severity};
use crate::model::{
    Address, BlockOrigin, GenericBlock, Host, HostOrigin, Interface, InterfaceOrigin, Origins,
    Project, Switch, VecMap,
};
use crate::source::{FileId, Span};

fn span(at: u32) -> Span {
    Span::new(FileId(0), at as usize..at as usize + 1)
}

fn iface(name: &str, switch: &str, addr: Option<&str>, netmask: Option<&str>) -> Interface {
    let mut i = Interface::new(name);
    i.switch = Some(switch.to_string());
    i.address = addr.map(|a| match a.split_once('/') {
        Some((a, p)) => Address::Static {
            addr: a.parse().unwrap(),
            prefix: Some(p.parse().unwrap()),
        },
        None => Address::Static {
            addr: a.parse().unwrap(),
            prefix: None,
        },
    });
    i.netmask = netmask.map(|m| m.parse().unwrap());
    i
}

fn host(name: &str, interfaces: Vec<Interface>) -> Host {
    let mut h = Host::new(name);
    h.interfaces = interfaces;
    h
}

fn project(hosts: Vec<Host>, switches: &[&str]) -> Project {
    Project {
        name: "p".into(),
        hosts,
        switches: switches.iter().map(|s| Switch::new(*s)).collect(),
        ..Project::default()
    }
}

/// Origins giving every host, interface keyword and switch its own span:
/// host number `h` at 1000*(h+1), its interface `i` at +100*(i+1), keyword
/// `k` of that interface at +10*(k+1); switch `s` at 100_000 + 10*s.
fn origins(p: &Project) -> Origins {
    let mut o = Origins {
        project: Some(span(1)),
        ..Origins::default()
    };
    for (h, host) in p.hosts.iter().enumerate() {
        let base = 1000 * (h as u32 + 1);
        let mut interfaces = VecMap::new();
        for (i, iface) in host.interfaces.iter().enumerate() {
            let ib = base + 100 * (i as u32 + 1);
            let keywords = ["switch", "address", "netmask"]
                .iter()
                .enumerate()
                .map(|(k, kw)| ((*kw).into(), span(ib + 10 * (k as u32 + 1))))
                .collect();
            interfaces.insert(
                iface.name.clone(),
                InterfaceOrigin {
                    span: span(ib),
                    name: span(ib),
                    keywords,
                },
            );
        }
        o.hosts.insert(
            host.name.clone(),
            HostOrigin {
                span: span(base),
                name: span(base),
                duplicates: Vec::new(),
                generated: false,
                keywords: VecMap::new(),
                interfaces,
            },
        );
    }
    for (s, switch) in p.switches.iter().enumerate() {
        o.switches.insert(
            switch.name.clone(),
            BlockOrigin {
                span: span(100_000 + 10 * s as u32),
                name: span(100_000 + 10 * s as u32),
                duplicates: Vec::new(),
                keywords: BTreeMap::new(),
            },
        );
    }
    o
}

/// (code, span start) of every diagnostic.
fn found(p: &Project, o: &Origins) -> Vec<(Code, Option<u32>)> {
    check_project(p, o)
        .iter()
        .map(|d| (d.code, d.span.map(|s| s.start)))
        .collect()
}

#[test]
fn a_well_formed_project_has_no_diagnostics() {
    let p = project(
        vec![
            host(
                "a",
                vec![iface(
                    "eth0",
                    "lan",
                    Some("10.0.0.1"),
                    Some("255.255.255.0"),
                )],
            ),
            host("b", vec![iface("eth0", "lan", Some("10.0.0.2/24"), None)]),
        ],
        &["lan"],
    );
    assert_eq!(found(&p, &origins(&p)), []);
}

#[test]
fn unknown_switch_points_at_the_switch_value_and_suggests() {
    let p = project(
        vec![host("a", vec![iface("eth0", "lna", None, None)])],
        &["lan"],
    );
    let o = origins(&p);
    let diags = check_project(&p, &o);
    let d = diags
        .iter()
        .find(|d| d.code == Code::UnknownSwitch)
        .unwrap();
    assert_eq!(d.span, Some(span(1110)));
    assert_eq!(d.help.as_deref(), Some("did you mean `lan`?"));
    // `lan` is unused only because of the typo: one mistake, one report.
    assert!(!diags.iter().any(|d| d.code == Code::UnusedSwitch));
}

#[test]
fn unknown_switch_without_a_close_name_lists_the_switches() {
    let p = project(
        vec![host("a", vec![iface("eth0", "backbone", None, None)])],
        &["lan", "dmz"],
    );
    let diags = check_project(&p, &origins(&p));
    let d = diags
        .iter()
        .find(|d| d.code == Code::UnknownSwitch)
        .unwrap();
    assert_eq!(
        d.help.as_deref(),
        Some("the project's switches are `dmz`, `lan`")
    );
}

#[test]
fn an_inherited_unknown_switch_is_reported_once() {
    let p = project(
        vec![
            host("a", vec![iface("eth0", "nope", None, None)]),
            host("b", vec![iface("eth0", "nope", None, None)]),
        ],
        &[],
    );
    let mut o = origins(&p);
    // Both hosts inherit the interface from one superclass block.
    for h in o.hosts.values_mut() {
        let i = h.interfaces.get_mut("eth0").unwrap();
        i.keywords.insert("switch".into(), span(7));
    }
    assert_eq!(found(&p, &o), [(Code::UnknownSwitch, Some(7))]);
    let diags = check_project(&p, &o);
    assert!(diags
        .iter()
        .all(|d| d.message.ends_with("(and 1 more like it)")));
}

#[test]
fn hosts_generated_from_one_block_share_one_report() {
    let p = project(
        (1..=12)
            .map(|i| host(&format!("pc{i:02}"), Vec::new()))
            .collect(),
        &[],
    );
    let mut o = origins(&p);
    for h in o.hosts.values_mut() {
        h.name = span(42);
        h.generated = true;
    }
    let diags = check_project(&p, &o);
    let msgs: Vec<_> = diags.iter().map(|d| (d.code, d.message.as_str())).collect();
    assert_eq!(
        msgs,
        [(
            Code::NoInterface,
            "host `pc01` has no network interface (and 11 more like it)"
        )]
    );
}

#[test]
fn duplicates_point_at_the_repeat_and_label_the_first() {
    let p = project(
        vec![host("a", vec![iface("eth0", "lan", None, None)])],
        &["lan"],
    );
    let mut o = origins(&p);
    o.hosts.get_mut("a").unwrap().duplicates.push(span(5000));
    o.switches
        .get_mut("lan")
        .unwrap()
        .duplicates
        .push(span(6000));
    let diags = check_project(&p, &o);
    let dups: Vec<_> = diags
        .iter()
        .filter(|d| d.code == Code::DuplicateName)
        .map(|d| (d.span, d.labels[0].span))
        .collect();
    assert_eq!(dups, [(Some(span(6000)), span(100_000))]);
    // A host written twice is a warning at the block that counts (the
    // last), naming the earlier one.
    let hosts: Vec<_> = diags
        .iter()
        .filter(|d| d.code == Code::DuplicateHost)
        .map(|d| (d.span, d.labels[0].span, d.severity))
        .collect();
    assert_eq!(hosts, [(Some(span(1000)), span(5000), Severity::Warning)]);
}

#[test]
fn unsafe_names_of_every_kind_are_reported() {
    let mut p = project(
        vec![host("../etc", vec![iface("eth0", "a b", None, None)])],
        &["a b"],
    );
    p.name = "my lab".into();
    p.superclasses.push(GenericBlock {
        name: "superclass".into(),
        label: Some("-rf".into()),
        items: Vec::new(),
    });
    let codes: Vec<_> = check_project(&p, &origins(&p))
        .iter()
        .filter(|d| d.code == Code::UnsafeName)
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(codes.len(), 4, "{codes:?}");
    assert!(codes[0].starts_with("project name `my lab` is not safe"));
}

#[test]
fn an_empty_project_name_is_left_to_the_resolver() {
    let mut p = project(Vec::new(), &[]);
    p.name = String::new();
    assert_eq!(found(&p, &origins(&p)), []);
}

#[test]
fn one_address_twice_on_one_switch_is_an_error_but_not_across_switches() {
    let p = project(
        vec![
            host("a", vec![iface("eth0", "lan", Some("10.0.0.1"), None)]),
            host(
                "b",
                vec![
                    iface("eth0", "lan", Some("10.0.0.1"), None),
                    iface("eth1", "dmz", Some("10.0.0.1"), None),
                ],
            ),
        ],
        &["lan", "dmz"],
    );
    let o = origins(&p);
    let diags = check_project(&p, &o);
    let d: Vec<_> = diags
        .iter()
        .filter(|d| d.code == Code::DuplicateAddress)
        .collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].span, Some(span(2120)));
    assert_eq!(d[0].labels[0].span, span(1120));
}

#[test]
fn one_inherited_address_shared_by_many_hosts_is_one_error_without_a_label() {
    let m = Some("255.255.255.0");
    let p = project(
        (1..=4)
            .map(|i| {
                host(
                    &format!("node{i}"),
                    vec![iface("eth0", "lan", Some("10.0.0.1"), m)],
                )
            })
            .collect(),
        &["lan"],
    );
    let mut o = origins(&p);
    for h in o.hosts.values_mut() {
        let i = h.interfaces.get_mut("eth0").unwrap();
        i.keywords.insert("address".into(), span(9));
    }
    let diags = check_project(&p, &o);
    let d: Vec<_> = diags.iter().collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, Code::DuplicateAddress);
    assert_eq!(
        d[0].message,
        "hosts `node1` and `node2` both get address 10.0.0.1 on switch `lan` from this line \
         (and 2 more like it)"
    );
    assert!(d[0].labels.is_empty());
}

#[test]
fn dhcp_interfaces_share_no_address() {
    let mut a = iface("eth0", "lan", None, None);
    a.address = Some(Address::Dhcp);
    let b = a.clone();
    let p = project(vec![host("a", vec![a]), host("b", vec![b])], &["lan"]);
    assert_eq!(found(&p, &origins(&p)), []);
}

#[test]
fn an_address_outside_the_agreed_subnet_is_an_error() {
    let m = Some("255.255.255.0");
    let p = project(
        vec![
            host("a", vec![iface("eth0", "lan", Some("10.0.0.1"), m)]),
            host("b", vec![iface("eth0", "lan", Some("10.0.0.2"), m)]),
            host("c", vec![iface("eth0", "lan", Some("10.0.1.3"), m)]),
            host("d", vec![iface("eth0", "lan", Some("10.0.2.4"), None)]),
        ],
        &["lan"],
    );
    assert_eq!(
        found(&p, &origins(&p)),
        [
            (Code::AddressOutsideSubnet, Some(3120)),
            (Code::AddressOutsideSubnet, Some(4120)),
        ]
    );
}

#[test]
fn no_subnet_error_when_the_hosts_do_not_agree() {
    let m = Some("255.255.255.0");
    let p = project(
        vec![
            host("a", vec![iface("eth0", "lan", Some("10.0.0.1"), m)]),
            host("b", vec![iface("eth0", "lan", Some("10.0.1.2"), m)]),
        ],
        &["lan"],
    );
    assert_eq!(found(&p, &origins(&p)), []);
}

#[test]
fn a_wider_netmask_that_still_contains_the_address_is_fine() {
    let p = project(
        vec![
            host("a", vec![iface("eth0", "lan", Some("10.0.0.1/24"), None)]),
            host("b", vec![iface("eth0", "lan", Some("10.0.0.2/24"), None)]),
            host("c", vec![iface("eth0", "lan", Some("10.0.0.3/16"), None)]),
        ],
        &["lan"],
    );
    assert_eq!(found(&p, &origins(&p)), []);
}

#[test]
fn interface_gaps_and_odd_names_are_errors() {
    let p = project(
        vec![
            host(
                "a",
                vec![
                    iface("eth0", "lan", None, None),
                    iface("eth2", "lan", None, None),
                ],
            ),
            host("b", vec![iface("em1", "lan", None, None)]),
            host("c", vec![iface("eth01", "lan", None, None)]),
        ],
        &["lan"],
    );
    let diags = check_project(&p, &origins(&p));
    let got: Vec<_> = diags
        .iter()
        .map(|d| {
            (
                d.code,
                d.span.map(|s| s.start),
                d.help.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].1, Some(1200));
    assert!(got[0].2.contains("rename `eth2` to `eth1`"));
    assert_eq!(got[1].1, Some(2100));
    assert!(got[1].2.contains("`eth0`"));
    assert!(got.iter().all(|g| g.0 == Code::InterfaceNumbering));
}

#[test]
fn unused_switches_and_unconnected_hosts_are_warnings() {
    let p = project(
        vec![
            host("a", vec![iface("eth0", "lan", None, None)]),
            host("lonely", Vec::new()),
        ],
        &["lan", "spare"],
    );
    assert_eq!(
        found(&p, &origins(&p)),
        [
            (Code::NoInterface, Some(2000)),
            (Code::UnusedSwitch, Some(100_010))
        ]
    );
}

#[test]
fn diagnostics_without_origins_still_come_out() {
    let p = project(vec![host("a", Vec::new())], &["spare"]);
    assert_eq!(
        found(&p, &Origins::default()),
        [(Code::UnusedSwitch, None), (Code::NoInterface, None)]
    );
}

#[test]
fn ipv6_addresses_do_not_vote_against_an_ipv4_subnet() {
    let m = Some("255.255.255.0");
    let p = project(
        vec![
            host("a", vec![iface("eth0", "lan", Some("10.0.0.1"), m)]),
            host("b", vec![iface("eth0", "lan", Some("10.0.0.2"), m)]),
            host(
                "c",
                vec![iface("eth0", "lan", Some("2001:db8::3/64"), None)],
            ),
            host(
                "d",
                vec![iface("eth0", "lan", Some("2001:db8::4/64"), None)],
            ),
            host(
                "e",
                vec![iface("eth0", "lan", Some("2001:db9::5/64"), None)],
            ),
        ],
        &["lan"],
    );
    assert_eq!(
        found(&p, &origins(&p)),
        [(Code::AddressOutsideSubnet, Some(5120))]
    );
}

mod properties {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use crate::check::subnet::{prefix_of_netmask, Subnet};
    use crate::check::suggest::edit_distance;

    proptest! {
        #[test]
        fn edit_distance_is_a_symmetric_bounded_measure(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            let d = edit_distance(&a, &b);
            prop_assert_eq!(d, edit_distance(&b, &a));
            prop_assert_eq!(edit_distance(&a, &a), 0);
            prop_assert!(d <= a.chars().count().max(b.chars().count()));
            prop_assert_eq!(d == 0, a == b);
        }

        #[test]
        fn an_address_is_inside_its_own_subnet(v4 in any::<u32>(), v6 in any::<u128>(), p in 0u8..=128) {
            let a4 = IpAddr::from(v4.to_be_bytes());
            if let Some(s) = Subnet::containing(a4, p) {
                prop_assert!(p <= 32);
                prop_assert!(s.contains(a4));
                prop_assert_eq!(Subnet::containing(a4, p), Some(s));
            } else {
                prop_assert!(p > 32);
            }
            let a6 = IpAddr::from(v6.to_be_bytes());
            let s6 = Subnet::containing(a6, p).expect("every prefix up to 128 fits IPv6");
            prop_assert!(s6.contains(a6));
            prop_assert!(!s6.contains(a4));
        }

        #[test]
        fn netmasks_round_trip_through_prefixes(p in 0u32..=32) {
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            let addr = IpAddr::from(mask.to_be_bytes());
            prop_assert_eq!(prefix_of_netmask(addr), Some(p as u8));
        }
    }
}

#[test]
fn cpus_on_a_guest_that_is_not_xen_is_a_warning_that_it_runs_unpinned() {
    let checked = |platform: &str| {
        crate::load_str(
            "p.mln",
            &format!("global {{ project p }}\nswitch lan {{\n}}\nhost a {{\n {platform}\n cpus 0-1\n network eth0 {{ switch lan }}\n}}\n"),
        )
        .unwrap()
    };
    let warned: Vec<String> = checked("uml")
        .warnings
        .iter()
        .filter(|d| d.code == Code::PinningXenOnly)
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(
        warned,
        ["host `a` is a uml guest: `cpus 0-1` pins only Xen and KVM guests, so it runs unpinned"]
    );
    assert!(checked("xen").warnings.is_empty(), "a Xen guest is pinned");
    assert!(checked("kvm").warnings.is_empty(), "a KVM guest is pinned");
}
