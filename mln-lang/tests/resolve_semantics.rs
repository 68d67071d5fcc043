//! The resolution rules of the reference, one behaviour per test.

use std::path::Path;

use mln_lang::model::{Platform, Project};
use mln_lang::resolve::{resolve, Resolved};
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::SourceMap;

fn resolved(text: &str) -> Resolved {
    let mut sources = SourceMap::new();
    let ast = parse_source(
        &mut sources,
        Path::new("t.mln"),
        text.as_bytes(),
        &Limits::default(),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    resolve(&ast, &sources)
        .unwrap_or_else(|d| panic!("{}", mln_lang::render(&sources, &d.0, false)))
}

fn project(text: &str) -> Project {
    resolved(text).project
}

fn names(p: &Project) -> Vec<&str> {
    p.hosts.iter().map(|h| h.name.as_str()).collect()
}

#[test]
fn autoenum_pads_numbers_to_the_width_of_numhosts() {
    let p = project("global { project t; autoenum { numhosts 9 } }");
    assert_eq!(names(&p)[0], "node1");
    assert_eq!(names(&p)[8], "node9");
    let p = project("global { project t; autoenum { numhosts 10 } }");
    assert_eq!(names(&p)[0], "node01");
    assert_eq!(names(&p)[9], "node10");
    let p = project("global { project t; autoenum { numhosts 100; hostprefix lab } }");
    assert_eq!(names(&p)[0], "lab001");
    assert_eq!(names(&p)[99], "lab100");
}

#[test]
fn autoenum_hands_hosts_to_service_hosts_in_order() {
    let p = project(
        "global { project t; autoenum { numhosts 5; service_hosts { alpha 2; beta all } } }",
    );
    let sh: Vec<Option<&str>> = p.hosts.iter().map(|h| h.service_host.as_deref()).collect();
    assert_eq!(
        sh,
        [
            Some("alpha"),
            Some("alpha"),
            Some("beta"),
            Some("beta"),
            Some("beta")
        ]
    );
    let p =
        project("global { project t; autoenum { numhosts 5; service_hosts { alpha 2; beta 1 } } }");
    let sh: Vec<Option<&str>> = p.hosts.iter().map(|h| h.service_host.as_deref()).collect();
    assert_eq!(sh, [Some("alpha"), Some("alpha"), Some("beta"), None, None]);
}

#[test]
fn autoenum_autouser_and_addresses() {
    let p = project(
        "global { project t; autoenum { numhosts 3; net 10.0.0.0; address auto; autouser $1$ab$cd } }",
    );
    let h = &p.hosts[2];
    assert_eq!(h.users.len(), 1);
    assert_eq!(h.users[0].name, "node3");
    assert_eq!(h.users[0].hash, "$1$ab$cd");
    // addresses_begin defaults to 1: host i gets net + i.
    assert_eq!(
        h.interface("eth0").unwrap().address.unwrap().to_string(),
        "10.0.0.3"
    );
}

#[test]
fn written_hosts_override_generated_settings() {
    let text = "
host pc2 { memory 1G }
global { project t; autoenum { superclass s; numhosts 3; hostprefix pc; net 10.0.0.0; address auto; addresses_begin 10 } }
superclass s { memory 64M; network eth0 { switch lan } }
switch lan { }
host pc3 { network eth0 { address 10.9.9.9 } }
";
    let r = resolved(text);
    let p = &r.project;
    // pc2 was written first and keeps its place.
    assert_eq!(names(p), ["pc2", "pc1", "pc3"]);
    let pc2 = p.host("pc2").unwrap();
    assert_eq!(pc2.memory, 1 << 30);
    assert_eq!(pc2.superclasses, ["s"]);
    assert_eq!(
        pc2.interface("eth0").unwrap().address.unwrap().to_string(),
        "10.0.0.11"
    );
    let pc3 = p.host("pc3").unwrap();
    assert_eq!(pc3.memory, 64 << 20);
    let eth0 = pc3.interface("eth0").unwrap();
    assert_eq!(eth0.address.unwrap().to_string(), "10.9.9.9");
    assert_eq!(eth0.switch.as_deref(), Some("lan"));
    assert!(r.origins.hosts["pc3"].generated);
    assert!(r.origins.hosts["pc3"].duplicates.is_empty());
}

/// As MLN 1.0.8 answers (`perl mln parse -f F -S /host/a/template`): a
/// value inherited from a superclass expands with that superclass's
/// variables, then global's; a subclass's or the host's do not reach it
/// (MLN printed `deb-etch.ext3`, `deb-etch.ext3`, `deb-$flavour-glob.ext3`
/// and `deb-$flavour-glob.ext3` for the four hosts below).
#[test]
fn an_inherited_value_takes_the_variables_of_the_superclass_that_writes_it() {
    let p = project(
        "global { project v; $g = glob }
         superclass base { $flavour = etch; template deb-$flavour.ext3 }
         superclass sub { superclass base; $flavour = lenny }
         superclass bare { template deb-$flavour-$g.ext3 }
         host a { superclass sub; $flavour = sid }
         host b { superclass base }
         host c { superclass bare; $flavour = sid }
         host d { superclass bare; $g = mine }",
    );
    let t = |h: &str| p.host(h).unwrap().template.clone().unwrap_or_default();
    assert_eq!(t("a"), "deb-etch.ext3");
    assert_eq!(t("b"), "deb-etch.ext3");
    assert_eq!(t("c"), "deb-$flavour-glob.ext3");
    assert_eq!(t("d"), "deb-$flavour-glob.ext3");
}

/// MLN 1.0.8 keeps the last of two blocks of one host: `perl mln parse
/// -f F -S /host/a/nameserver` on `host a { memory 64M; nameserver
/// 10.0.0.1 }` followed by `host a { memory 128M }` prints an empty line,
/// and `-S /host/a/memory` prints `128M`.
#[test]
fn a_host_written_twice_is_its_last_block_as_in_mln() {
    let r =
        resolved("global { project t }\nhost a { memory 1G; template x }\nhost a { memory 2G }\n");
    let a = r.project.host("a").unwrap();
    assert_eq!(a.memory, 2 << 30);
    assert_eq!(a.template, None);
    assert_eq!(r.project.hosts.len(), 1);
    assert_eq!(r.origins.hosts["a"].duplicates.len(), 1);
}

#[test]
fn variables_nearest_first_and_inherited_values_expand_where_written() {
    let p = project(
        "global { project proj; $role = global; $where = dc1 }
         superclass s { $role = super; startup { echo $role $where $hostname $project } }
         host a { superclass s; $role = mine; shutdown { echo $role } }
         host b { superclass s }
         host c { $hostname = fake; template $hostname.img }",
    );
    // s's line takes s's `$role`, whatever a sets; a's own line takes a's.
    assert_eq!(p.host("a").unwrap().startup, ["echo super dc1 a proj"]);
    assert_eq!(p.host("a").unwrap().shutdown, ["echo mine"]);
    assert_eq!(p.host("b").unwrap().startup, ["echo super dc1 b proj"]);
    assert_eq!(p.host("c").unwrap().template.as_deref(), Some("c.img"));
    assert_eq!(p.host("a").unwrap().variables["role"], "mine");
}

#[test]
fn lists_concatenate_superclass_first_without_duplicates() {
    let p = project(
        "global { project t }
         superclass base { startup { one; two } }
         superclass mid { superclass base; startup { three; one } }
         host h { superclass mid; startup { two; four } }",
    );
    assert_eq!(p.hosts[0].startup, ["one", "two", "three", "four"]);
}

#[test]
fn a_line_repeated_in_one_block_is_kept_every_time() {
    let p = project(
        "global { project t }
         host h {
             startup {
                 sleep 1
                 ping -c1 x
                 sleep 1
                 ping -c1 x
             }
             shutdown { sync; sleep 1; sync }
             modules { loop; loop }
         }",
    );
    let h = &p.hosts[0];
    assert_eq!(
        h.startup,
        ["sleep 1", "ping -c1 x", "sleep 1", "ping -c1 x"]
    );
    assert_eq!(h.shutdown, ["sync", "sleep 1", "sync"]);
    assert_eq!(h.modules, ["loop", "loop"]);
}

#[test]
fn a_superclass_block_with_repeated_lines_is_inherited_whole() {
    let p = project(
        "global { project t }
         superclass s { startup { until ping -c1 gw; do sleep 1; done; until ping -c1 peer; do sleep 1; done } }
         host h { superclass s }
         host g { superclass s; startup { echo up } }",
    );
    let lines = [
        "until ping -c1 gw",
        "do sleep 1",
        "done",
        "until ping -c1 peer",
        "do sleep 1",
        "done",
    ];
    assert_eq!(p.host("h").unwrap().startup, lines);
    let mut with_echo = lines.to_vec();
    with_echo.push("echo up");
    assert_eq!(p.host("g").unwrap().startup, with_echo);
}

#[test]
fn a_host_repeating_its_superclass_list_runs_each_inherited_line_once() {
    let p = project(
        "global { project t }
         superclass s { startup { sleep 1; ping x; sleep 1; ping x } }
         host whole { superclass s; startup { sleep 1; ping x; sleep 1; ping x; echo done } }
         host more { superclass s; startup { sleep 1; ping x; sleep 1; ping x; sleep 1; ping x } }",
    );
    assert_eq!(
        p.host("whole").unwrap().startup,
        ["sleep 1", "ping x", "sleep 1", "ping x", "echo done"]
    );
    // Each inherited line absorbs one repeat: the host's third pair is its
    // own.
    assert_eq!(p.host("more").unwrap().startup.len(), 6);
}

#[test]
fn an_inherited_line_matches_the_hosts_line_after_expansion() {
    let p = project(
        "global { project t }
         superclass s { startup { echo $hostname } }
         host web1 { superclass s; startup { echo web1; echo web1 } }",
    );
    assert_eq!(p.hosts[0].startup, ["echo web1", "echo web1"]);
}

#[test]
fn a_long_block_keeps_its_repeated_lines_too() {
    // Past the length where the merge matches lines through maps.
    let own: String = (0..40).map(|i| format!("sleep 1; echo {i}; ")).collect();
    let p = project(&format!(
        "global {{ project t }}
         superclass s {{ startup {{ sleep 1; echo 0 }} }}
         host h {{ superclass s; startup {{ {own} }} }}"
    ));
    let startup = &p.hosts[0].startup;
    assert_eq!(startup.len(), 80, "{startup:?}");
    assert_eq!(startup.iter().filter(|l| *l == "sleep 1").count(), 40);
    assert_eq!(startup[..4], ["sleep 1", "echo 0", "sleep 1", "echo 1"]);
}

#[test]
fn nested_blocks_merge_key_by_key() {
    let p = project(
        "global { project t }
         superclass s {
             xen_extra { on_crash = restart; vcpus_pin = 1 }
             network eth0 { switch lan; netmask 255.255.255.0; gateway 10.0.0.254 }
             backup { when nightly; keep 7; target { path /b } }
         }
         switch lan { }
         host h {
             superclass s
             xen_extra { on_crash = destroy }
             network eth0 { address 10.0.0.1; gateway 10.0.0.1 }
             backup { keep 3; target { host nas } }
         }",
    );
    let h = &p.hosts[0];
    assert_eq!(h.xen_extra, ["vcpus_pin = 1", "on_crash = destroy"]);
    let eth0 = h.interface("eth0").unwrap();
    assert_eq!(eth0.switch.as_deref(), Some("lan"));
    assert_eq!(eth0.gateway.unwrap().to_string(), "10.0.0.1");
    assert_eq!(eth0.netmask.unwrap().to_string(), "255.255.255.0");
    let backup = &h.blocks[0];
    let printed = mln_lang::print::to_mln(&Project {
        blocks: vec![backup.clone()],
        ..Project::default()
    });
    assert!(printed.contains("when nightly"), "{printed}");
    assert!(printed.contains("keep 3"), "{printed}");
    assert!(!printed.contains("keep 7"), "{printed}");
    assert!(
        printed.contains("path /b") && printed.contains("host nas"),
        "{printed}"
    );
}

#[test]
fn platform_comes_from_the_nearest_layer_that_names_one() {
    let p = project(
        "global { project t }
         superclass x { xen }
         host a { superclass x }
         host b { superclass x; hvm }
         host c { superclass x; kvm }
         host d { superclass x; uml }
         host e { }",
    );
    let pl: Vec<Platform> = p.hosts.iter().map(|h| h.platform).collect();
    assert_eq!(
        pl,
        [
            Platform::Xen,
            Platform::Hvm,
            Platform::Kvm,
            Platform::Uml,
            Platform::Uml
        ]
    );
}

#[test]
fn aliases_and_interface_order() {
    let p = project(
        "global { project t }
         host a { location srv; vcpus 4; network eth10 { }; network eth2 { }; network eth0 { } }",
    );
    let a = &p.hosts[0];
    assert_eq!(a.service_host.as_deref(), Some("srv"));
    assert_eq!(a.vcpus, 4);
    let order: Vec<&str> = a.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(order, ["eth0", "eth2", "eth10"]);
}

/// `cpus` is Xen's CPU pinning and `vcpus` the vCPU count, as MLN 1.0.8
/// has them (it wrote `cpus = ...` and `vcpus = ...` into the domain's
/// configuration). On this file, `perl mln parse -f F -S PATH` printed
/// `/host/a/cpus` `1`, `/host/a/vcpus` `2`, `/host/b/cpus` `0-1` (from
/// the superclass), `/host/c/cpus` an empty line, `/host/c/vcpus` `3`.
#[test]
fn cpus_pins_and_vcpus_counts_as_in_mln() {
    let p = project(
        "global { project c }
         superclass pinned { cpus 0-1 }
         host a { xen; cpus 1; vcpus 2 }
         host b { xen; superclass pinned }
         host c { vcpus 3 }",
    );
    let h = |n: &str| p.host(n).unwrap();
    assert_eq!((h("a").cpus.as_deref(), h("a").vcpus), (Some("1"), 2));
    assert_eq!(h("b").cpus.as_deref(), Some("0-1"));
    assert_eq!((h("c").cpus.as_deref(), h("c").vcpus), (None, 3));
    for (path, mln_1_0_8) in [
        ("/host/a/cpus", "1"),
        ("/host/a/vcpus", "2"),
        ("/host/b/cpus", "0-1"),
        ("/host/c/vcpus", "3"),
    ] {
        assert_eq!(
            mln_lang::query_scalar(&p, path).unwrap(),
            mln_1_0_8,
            "{path}"
        );
    }
    assert!(mln_lang::query_scalar(&p, "/host/c/cpus").is_err());
    // What the planner hands the Xen backend to pin.
    let desired = mln_lang::plan::DesiredProject::from_project(&p);
    assert_eq!(desired.hosts["a"].cpus, [1]);
    assert_eq!(desired.hosts["b"].cpus, [0, 1]);
    assert!(desired.hosts["c"].cpus.is_empty());
}

#[test]
fn switch_membership_lists_only_existing_switches() {
    let p = project(
        "global { project t }
         switch lan { }
         host a { network eth0 { switch lan }; network eth1 { switch wan } }
         host b { network eth0 { switch lan } }",
    );
    let lan = p.switch("lan").unwrap();
    let m: Vec<(&str, &str)> = lan
        .members
        .iter()
        .map(|m| (m.host.as_str(), m.interface.as_str()))
        .collect();
    assert_eq!(m, [("a", "eth0"), ("b", "eth0")]);
}

#[test]
fn origins_point_at_where_values_were_written() {
    let text = "global { project t }\nsuperclass s { memory 64M }\nhost a { superclass s; network eth0 { switch lan } }\nswitch lan { }\n";
    let mut sources = SourceMap::new();
    let ast = parse_source(
        &mut sources,
        Path::new("t.mln"),
        text.as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let r = resolve(&ast, &sources).unwrap();
    let a = &r.origins.hosts["a"];
    assert_eq!(sources.text(a.name), "a");
    assert_eq!(sources.location(a.keywords["memory"]), "t.mln:2:23");
    assert_eq!(sources.text(a.interfaces["eth0"].keywords["switch"]), "lan");
    assert_eq!(sources.text(r.origins.switches["lan"].name), "lan");
    assert_eq!(sources.text(r.origins.superclasses["s"].name), "s");
    assert_eq!(sources.text(r.origins.project.unwrap()), "t");

    // Aliases are recorded under the keyword they stand for; `cpus` is
    // a keyword of its own (CPU pinning), not `vcpus`.
    let text = "global { project t }\nhost a { location srv; cpus 2 }\n";
    let mut sources = SourceMap::new();
    let ast = parse_source(
        &mut sources,
        Path::new("t.mln"),
        text.as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let r = resolve(&ast, &sources).unwrap();
    let k = &r.origins.hosts["a"].keywords;
    assert_eq!(sources.text(k["service_host"]), "srv");
    assert_eq!(sources.text(k["cpus"]), "2");
    assert!(!k.contains_key("vcpus"));
}

#[test]
fn json_field_names_are_stable() {
    let p = project(
        "global { project t }
         host a { memory 256M; network eth0 { address 10.0.0.1/24 }; network eth1 { address dhcp } }",
    );
    let v = serde_json::to_value(&p).unwrap();
    let host = &v["hosts"][0];
    assert_eq!(host["memory"], 268435456u64);
    assert_eq!(host["platform"], "uml");
    assert_eq!(host["written"]["memory"], "256M");
    assert_eq!(
        host["interfaces"][0]["address"]["static"]["addr"],
        "10.0.0.1"
    );
    assert_eq!(host["interfaces"][0]["address"]["static"]["prefix"], 24);
    assert_eq!(host["interfaces"][1]["address"], "dhcp");
    assert_eq!(v["name"], "t");
    let back: Project = serde_json::from_value(v).unwrap();
    assert_eq!(back, p);
}

#[test]
fn json_hosts_need_only_a_name() {
    let h: mln_lang::model::Host = serde_json::from_str(r#"{"name": "a"}"#).unwrap();
    assert_eq!(h, mln_lang::model::Host::new("a"));
    let p: Project = serde_json::from_str(r#"{"name": "p", "hosts": [{"name": "a"}]}"#).unwrap();
    assert_eq!(p.hosts.len(), 1);
}
