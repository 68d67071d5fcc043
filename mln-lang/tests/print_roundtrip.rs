//! `to_mln` prints text that parses and resolves back to an equal project.

use std::path::{Path, PathBuf};

use mln_lang::model::Project;
use mln_lang::print::to_mln;
use mln_lang::resolve::resolve;
use mln_lang::syntax::{parse_path, parse_source, Limits};
use mln_lang::SourceMap;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../projects")
        .join(name)
}

fn from_text(text: &str) -> Project {
    let mut sources = SourceMap::new();
    let ast = parse_source(
        &mut sources,
        Path::new("printed.mln"),
        text.as_bytes(),
        &Limits::default(),
    )
    .unwrap_or_else(|d| panic!("{}\n{text}", mln_lang::render(&sources, &d.0, false)));
    resolve(&ast, &sources)
        .unwrap_or_else(|d| panic!("{}\n{text}", mln_lang::render(&sources, &d.0, false)))
        .project
}

fn assert_round_trip(p: &Project) {
    let text = to_mln(p);
    let back = from_text(&text);
    assert_eq!(&back, p, "printed as:\n{text}");
    // And the canonical text is a fixed point.
    assert_eq!(to_mln(&back), text);
}

#[test]
fn every_sample_round_trips() {
    for name in [
        "autoenum.mln",
        "lab.mln",
        "multi-server.mln",
        "superclass.mln",
        "two-hosts.mln",
        "upgrade/v1.mln",
        "upgrade/v2.mln",
    ] {
        let mut sources = SourceMap::new();
        let ast = parse_path(&mut sources, &sample(name), &Limits::default()).unwrap();
        let p = resolve(&ast, &sources).unwrap().project;
        assert_round_trip(&p);
    }
}

#[test]
fn everything_the_language_has_round_trips() {
    let text = r#"
global {
    project full
    $domain = example.org
    $pw = $6$salt$hash
    project_password secret
    plugin_setting on
    afterHostsStart {
        echo started $project
        logger "a\;b"
    }
    beforeProjectStop { echo stopping }
    monitoring { interval 5; targets { a; b } }
}
superclass base {
    $role = generic
    xen
    memory 96M
    vcpus 2
    lvm
    boot_order 10
    template debian-12.ext4
    nameserver 10.1.0.254
    root_passwd $pw
    users { admin $6$x$y /home/admin 1001 }
    groups { wheel { admin } }
    files { /etc/hosts /etc/hosts 0644 }
    mount { server:/srv /srv nfs ro,soft }
    modules { e1000 }
    startup { echo $role on $hostname.$domain }
    shutdown { sync }
    sshkey { root ssh-ed25519 AAAA key@host }
    xen_extra { on_crash = restart; vif = [ 'bridge=a' ] }
    network eth0 { switch lan; netmask 255.255.255.0; gateway 10.1.0.254 }
    backup { when nightly; keep 7 }
}
superclass web { superclass base; $role = web; memory 192M; startup { service nginx start } }
switch lan { service_host server-a; hub; bridge br-lan; socket /tmp/lan.sock; tap tap0; color blue; meta { owner ops } }
host w1 {
    superclass web
    vcpus 1
    lvm 0
    boot_order 99
    size 2G
    free_space 500MB
    swap 64b
    kernel /boot/vmlinuz
    ramdisk /boot/initrd
    extra console=hvc0
    term screen
    lvm_vg vg0
    lvm_snapshot 1
    filepath /srv/images
    cow_filesystem base.img
    service_host server-b
    widget 3
    network eth0 { address 10.1.0.11/24; mac 02:00:0A:01:00:0B; speed fast }
    network eth1 { address dhcp; bridge xenbr0 }
    network eth10 { address fe80::1 }
    network eth2 { address 10.2.0.1; broadcast 10.2.0.255; switch lan }
    xen_extra { on_crash = destroy }
    backup { keep 3 }
    startup { echo "w1 \{special\} \#x" }
}
host w2 { superclass web; hvm; memory 1GB }
host plain { kvm }
host bare { }
other_top { key value; nested x { deeper { y } } }
"#;
    let p = from_text(text);
    let w1 = p.host("w1").unwrap();
    assert_eq!(w1.interfaces.len(), 4);
    assert_eq!(w1.interfaces[3].name, "eth10");
    assert_eq!(w1.xen_extra, ["vif = [ 'bridge=a' ]", "on_crash = destroy"]);
    // base's line, expanded where it is written: base's `$role`.
    assert_eq!(
        w1.startup,
        [
            "echo generic on w1.example.org",
            "service nginx start",
            "echo \"w1 {special} #x\""
        ]
    );
    assert_eq!(w1.users[0].uid, Some(1001));
    assert_eq!(w1.root_passwd.as_deref(), Some("$6$salt$hash"));
    assert_eq!(w1.blocks.len(), 1);
    assert_eq!(
        p.hooks.after_hosts_start,
        ["echo started full", "logger \"a;b\""]
    );
    assert_round_trip(&p);
}

#[test]
fn duplicate_superclasses_round_trip() {
    let p = from_text(
        "global { project d }\nsuperclass s { memory 64M }\nsuperclass s { vcpus 4 }\nhost a { superclass s; vcpus 1 }\n",
    );
    assert_eq!(p.hosts[0].vcpus, 1);
    assert_round_trip(&p);
}
