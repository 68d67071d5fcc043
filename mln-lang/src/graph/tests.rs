use super::*;
use crate::plan::{derived_mac, SwitchSpec};

fn sample(name: &str) -> DesiredProject {
    let path = format!("{}/../projects/{name}", env!("CARGO_MANIFEST_DIR"));
    let checked = crate::load(&path).unwrap_or_else(|r| panic!("{}", r.render(false)));
    DesiredProject::from_project(checked.project())
}

fn iface(name: &str, switch: Option<&str>, bridge: Option<&str>) -> HostInterface {
    HostInterface {
        name: name.into(),
        switch: switch.map(Into::into),
        bridge: bridge.map(Into::into),
        mac: derived_mac("p", "h", name),
        address: None,
        netmask: None,
        gateway: None,
    }
}

#[test]
fn dot_of_the_lab_has_every_host_switch_and_link() {
    let dot = to_dot(&sample("lab.mln"));
    for host in ["router", "alice", "bob"] {
        assert!(
            dot.contains(&format!("\"host:{host}\" [label=\"{host}\\numl, 64M\"")),
            "{dot}"
        );
    }
    for switch in ["left", "right"] {
        assert!(
            dot.contains(&format!("\"switch:{switch}\" [label=\"{switch}\"")),
            "{dot}"
        );
    }
    for link in [
        r#""host:router" -- "switch:left" [label="eth0\n192.168.1.1/24"];"#,
        r#""host:router" -- "switch:right" [label="eth1\n192.168.2.1/24"];"#,
        r#""host:alice" -- "switch:left" [label="eth0\n192.168.1.10/24"];"#,
        r#""host:bob" -- "switch:right" [label="eth0\n192.168.2.10/24"];"#,
    ] {
        assert!(dot.contains(link), "{link} missing from {dot}");
    }
    assert_eq!(dot.matches(" -- ").count(), 4);
    assert!(
        !dot.contains("subgraph"),
        "no service hosts, no clusters: {dot}"
    );
}

#[test]
fn service_hosts_are_clusters_holding_their_hosts() {
    let p = sample("multi-server.mln");
    let dot = to_dot(&p);
    let a = dot
        .find("subgraph \"cluster_server-a\"")
        .expect("cluster a");
    let b = dot
        .find("subgraph \"cluster_server-b\"")
        .expect("cluster b");
    let app2 = dot.find("\"host:app2\" [").expect("app2");
    let db = dot.find("\"host:db\" [").expect("db");
    assert!(a < db && db < b && b < app2, "{dot}");
    assert!(dot.contains("label=\"db\\nxen, 512M\""), "{dot}");

    let mm = to_mermaid(&p);
    assert!(mm.contains("subgraph c1[\"server-a\"]"), "{mm}");
    assert!(mm.contains("subgraph c2[\"server-b\"]"), "{mm}");
    assert_eq!(mm.matches("\n  end\n").count(), 2, "{mm}");
    assert_eq!(mm.matches(" ---|").count(), 3, "{mm}");
}

#[test]
fn mermaid_of_the_lab_links_hosts_to_switches_by_id() {
    let mm = to_mermaid(&sample("lab.mln"));
    assert!(
        mm.starts_with("---\ntitle: project lab\n---\nflowchart LR\n"),
        "{mm}"
    );
    // Switches, then hosts, in name order.
    assert!(mm.contains("  s0((\"left\"))\n  s1((\"right\"))\n"), "{mm}");
    assert!(mm.contains("  h0[\"alice<br/>uml, 64M\"]\n"), "{mm}");
    assert!(mm.contains("  h2[\"router<br/>uml, 64M\"]\n"), "{mm}");
    assert!(
        mm.contains("  h2 ---|\"eth1<br/>192.168.2.1/24\"| s1\n"),
        "{mm}"
    );
    assert!(
        mm.contains("  h0 ---|\"eth0<br/>192.168.1.10/24\"| s0\n"),
        "{mm}"
    );
    assert_eq!(mm.matches(" ---|").count(), 4, "{mm}");
}

#[test]
fn bridges_hubs_and_odd_addresses_are_drawn_as_written() {
    let mut p = DesiredProject::new("odd");
    let mut hub = SwitchSpec::new("hub\"1");
    hub.hub = true;
    p.add_switch(hub);
    let mut h = HostSpec::new("gw");
    let mut e0 = iface("eth0", Some("hub\"1"), None);
    e0.address = Some("10.0.0.1".into());
    e0.netmask = Some("255.0.255.0".into()); // not a prefix
    let mut e1 = iface("eth1", None, Some("xenbr0"));
    e1.address = Some("dhcp".into());
    let mut e2 = iface("eth2", Some("ghost"), None);
    e2.address = Some("10.1.0.1/16".into());
    e2.netmask = Some("255.255.255.0".into());
    h.interfaces = vec![e0, e1, e2, iface("eth3", None, None)];
    p.add_host(h);

    let dot = to_dot(&p);
    assert!(
        dot.contains(r#""switch:hub\"1" [label="hub\"1\n(hub)""#),
        "{dot}"
    );
    assert!(dot.contains(r#"[label="eth0\n10.0.0.1"]"#), "{dot}");
    assert!(
        dot.contains(r#""host:gw" -- "bridge:xenbr0" [label="eth1\ndhcp"]"#),
        "{dot}"
    );
    assert!(
        dot.contains(r#""bridge:xenbr0" [label="bridge xenbr0", shape=note]"#),
        "{dot}"
    );
    assert!(dot.contains(r#""switch:ghost" [label="ghost""#), "{dot}");
    assert!(dot.contains(r#"[label="eth2\n10.1.0.1/16"]"#), "{dot}");
    assert_eq!(
        dot.matches(" -- ").count(),
        3,
        "an unplugged interface has no link"
    );

    let mm = to_mermaid(&p);
    assert!(mm.contains(r#"s0(("hub#quot;1<br/>(hub)"))"#), "{mm}");
    assert!(mm.contains(r#"b0>"bridge xenbr0"]"#), "{mm}");
    assert!(mm.contains(r#"h0 ---|"eth1<br/>dhcp"| b0"#), "{mm}");
    assert_eq!(mm.matches(" ---|").count(), 3, "{mm}");
}
