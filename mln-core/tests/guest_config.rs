//! The configuration disk: a tar archive the guest's busybox (or any) tar
//! reads, whose scripts are valid shell. (That the busybox template applies
//! it at boot is shown by the uml_* tests.)

use std::process::Command;

use mln_core::guest::{
    GuestConfig, GuestFile, GuestGroup, GuestInterface, GuestUser, HostsEntry, InterfaceAddress,
};

#[test]
fn config_disk_unpacks_with_tar_and_scripts_parse() {
    let dir = tempfile::tempdir().unwrap();
    let motd = dir.path().join("motd");
    std::fs::write(&motd, "welcome to the lab\n").unwrap();

    let mut cfg = GuestConfig::new("router");
    cfg.interfaces.push(GuestInterface::fixed(
        "eth0",
        "192.168.1.1".parse().unwrap(),
        24,
    ));
    cfg.interfaces.push(GuestInterface {
        name: "eth1".into(),
        mac: None,
        address: InterfaceAddress::Static {
            address: "192.168.2.1".parse().unwrap(),
            prefix: 24,
            broadcast: Some("192.168.2.255".parse().unwrap()),
        },
        gateway: None,
    });
    cfg.nameservers.push("192.168.1.1".parse().unwrap());
    cfg.hosts.push(HostsEntry {
        address: "192.168.1.10".parse().unwrap(),
        names: vec!["alice".into()],
    });
    cfg.users.push(GuestUser {
        name: "student".into(),
        password_hash: "$6$x$y".into(),
        home: Some("/home/student".into()),
        uid: Some(2000),
    });
    cfg.groups.push(GuestGroup {
        name: "lab".into(),
        members: vec!["student".into()],
    });
    cfg.files.push(GuestFile {
        source: motd.clone(),
        dest: "/etc/motd".into(),
        mode: Some(0o600),
    });
    cfg.startup
        .push("echo 1 > /proc/sys/net/ipv4/ip_forward".into());
    cfg.shutdown.push("echo bye".into());
    cfg.root_password_hash = Some("$6$r$s".into());

    let disk = dir.path().join("router.config");
    cfg.write_disk(&disk).unwrap();
    assert_eq!(std::fs::metadata(&disk).unwrap().len() % 4096, 0);

    let out = dir.path().join("unpacked");
    std::fs::create_dir(&out).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&disk)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("files/0"), "welcome to the lab\n");
    assert!(read("hosts").contains("192.168.1.10\talice"));
    assert_eq!(read("resolv.conf"), "nameserver 192.168.1.1\n");
    assert!(read("startup").contains("ip_forward"));
    assert!(read("apply").contains("mln_file /run/mln/files/0 '/etc/motd' 600"));
    assert!(read("apply").contains("mln_password root '$6$r$s'"));
    for script in ["apply", "startup", "shutdown"] {
        let st = Command::new("sh")
            .arg("-n")
            .arg(out.join(script))
            .status()
            .unwrap();
        assert!(st.success(), "{script} is not valid shell");
    }
}

#[test]
fn unreadable_file_source_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GuestConfig::new("a");
    let missing = dir.path().join("missing");
    cfg.files.push(GuestFile {
        source: missing.clone(),
        dest: "/x".into(),
        mode: None,
    });
    match cfg.write_disk(&dir.path().join("cfg")) {
        Err(mln_core::Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}
