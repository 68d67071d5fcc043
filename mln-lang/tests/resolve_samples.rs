//! Every sample project resolves, with the values the reference promises.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use mln_lang::model::{Address, Platform, Project};
use mln_lang::resolve::{resolve, Resolved};
use mln_lang::syntax::{parse_path, Limits};
use mln_lang::SourceMap;

const MIB: u64 = 1024 * 1024;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../projects")
        .join(name)
}

fn load(name: &str) -> Resolved {
    let mut sources = SourceMap::new();
    let ast = parse_path(&mut sources, &sample(name), &Limits::default())
        .unwrap_or_else(|d| panic!("{name}: {}", mln_lang::render(&sources, &d.0, false)));
    resolve(&ast, &sources)
        .unwrap_or_else(|d| panic!("{name}: {}", mln_lang::render(&sources, &d.0, false)))
}

fn project(name: &str) -> Project {
    let r = load(name);
    assert!(r.warnings.is_empty(), "{name}: {:?}", r.warnings);
    r.project
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addr(p: &Project, host: &str, iface: &str) -> Option<Address> {
    p.host(host)?.interface(iface)?.address
}

fn stat(s: &str) -> Option<Address> {
    Some(Address::Static {
        addr: ip(s),
        prefix: None,
    })
}

#[test]
fn every_sample_resolves_without_warnings() {
    for name in [
        "autoenum.mln",
        "lab.mln",
        "multi-server.mln",
        "superclass.mln",
        "two-hosts.mln",
        "upgrade/v1.mln",
        "upgrade/v2.mln",
    ] {
        project(name);
    }
}

#[test]
fn superclass_chain_gives_memory_startup_and_variables() {
    let p = project("superclass.mln");
    assert_eq!(p.name, "webfarm");
    let names: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["www1", "www2", "monitor"]);

    let www1 = p.host("www1").unwrap();
    let www2 = p.host("www2").unwrap();
    let monitor = p.host("monitor").unwrap();
    assert_eq!(www1.memory, 192 * MIB);
    assert_eq!(www1.written["memory"], "192M");
    assert_eq!(www2.memory, 256 * MIB);
    assert_eq!(www2.written["memory"], "256M");
    assert_eq!(monitor.memory, 96 * MIB);
    assert_eq!(www1.superclasses, ["web", "base"]);
    assert_eq!(monitor.superclasses, ["base"]);
    assert_eq!(www1.template.as_deref(), Some("debian-12.ext4"));
    assert_eq!(www1.nameserver, Some(ip("10.1.0.254")));

    // Superclass lines first, each expanded in the host's context.
    assert_eq!(
        www1.startup,
        [
            "echo \"booted www1.example.org\" > /etc/motd",
            "service nginx start"
        ]
    );
    assert_eq!(
        monitor.startup,
        ["echo \"booted monitor.example.org\" > /etc/motd"]
    );

    // Interfaces merge key by key: switch and netmask inherited.
    let eth0 = www2.interface("eth0").unwrap();
    assert_eq!(eth0.switch.as_deref(), Some("front"));
    assert_eq!(eth0.netmask, Some(ip("255.255.255.0")));
    assert_eq!(eth0.gateway, Some(ip("10.1.0.254")));
    assert_eq!(eth0.address, stat("10.1.0.12"));

    let front = p.switch("front").unwrap();
    let members: Vec<(&str, &str)> = front
        .members
        .iter()
        .map(|m| (m.host.as_str(), m.interface.as_str()))
        .collect();
    assert_eq!(
        members,
        [("www1", "eth0"), ("www2", "eth0"), ("monitor", "eth0")]
    );
    assert_eq!(p.variables["domain"], "example.org");
    assert_eq!(p.superclasses.len(), 2);
}

#[test]
fn autoenum_numbers_and_addresses_hosts() {
    let p = project("autoenum.mln");
    assert_eq!(p.hosts.len(), 12);
    for (i, h) in p.hosts.iter().enumerate() {
        assert_eq!(h.name, format!("pc{:02}", i + 1));
        assert_eq!(h.superclasses, ["student"]);
        assert_eq!(h.memory, 64 * MIB);
        let eth0 = h.interface("eth0").unwrap();
        assert_eq!(eth0.address, stat(&format!("10.20.0.{}", 10 + i)));
        assert_eq!(eth0.switch.as_deref(), Some("classnet"));
        assert_eq!(eth0.netmask, Some(ip("255.255.255.0")));
    }
    assert_eq!(p.switch("classnet").unwrap().members.len(), 12);
    let r = load("autoenum.mln");
    assert!(r.origins.hosts["pc07"].generated);
}

#[test]
fn multi_server_hosts_keep_their_service_hosts() {
    let p = project("multi-server.mln");
    let sh = |h: &str| p.host(h).unwrap().service_host.clone();
    assert_eq!(sh("db").as_deref(), Some("server-a"));
    assert_eq!(sh("app1").as_deref(), Some("server-a"));
    assert_eq!(sh("app2").as_deref(), Some("server-b"));
    assert_eq!(p.host("db").unwrap().memory, 512 * MIB);
    assert_eq!(p.host("app1").unwrap().memory, 128 * MIB);
    for h in &p.hosts {
        assert_eq!(h.platform, Platform::Xen);
        assert_eq!(
            h.interface("eth0").unwrap().netmask,
            Some(ip("255.255.0.0"))
        );
    }
    assert_eq!(p.switch("backbone").unwrap().members.len(), 3);
}

#[test]
fn upgrade_versions_differ_where_the_design_changed() {
    let v1 = project("upgrade/v1.mln");
    let v2 = project("upgrade/v2.mln");
    assert_eq!(v1.name, "shop");
    assert_eq!(v2.name, "shop");
    assert_eq!(v1.host("front"), v2.host("front"));
    assert_eq!(v1.host("api").unwrap().memory, 128 * MIB);
    assert_eq!(v2.host("api").unwrap().memory, 256 * MIB);
    assert_eq!(
        v1.host("batch").unwrap().service_host.as_deref(),
        Some("server-a")
    );
    assert_eq!(
        v2.host("batch").unwrap().service_host.as_deref(),
        Some("server-b")
    );
    assert!(v1.host("cache").is_none());
    assert_eq!(addr(&v2, "cache", "eth0"), stat("10.5.0.4"));
}

#[test]
fn lab_router_has_two_interfaces_in_order() {
    let p = project("lab.mln");
    let router = p.host("router").unwrap();
    let names: Vec<&str> = router.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "eth1"]);
    assert_eq!(router.startup, ["echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(router.nameserver, Some(ip("192.168.1.1")));
    assert_eq!(
        p.host("alice").unwrap().interface("eth0").unwrap().gateway,
        Some(ip("192.168.1.1"))
    );
    assert_eq!(router.platform, Platform::Uml);
}

#[test]
fn two_hosts_defaults() {
    let p = project("two-hosts.mln");
    let one = p.host("one").unwrap();
    assert_eq!(one.memory, 128 * MIB);
    assert_eq!(one.vcpus, 1);
    assert_eq!(one.boot_order, 99);
    assert!(one.written.is_empty());
    assert_eq!(p.switch("lan").unwrap().members.len(), 2);
}
