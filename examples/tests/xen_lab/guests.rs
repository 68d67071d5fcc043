//! Guests of every platform on one network, and the Debian template as
//! Xen guests, in the two-server lab (part of `xen_move`'s binary, which
//! `cargo xtask xen-test` runs on this machine against the servers).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::xen_lab::servers::{text, Servers};
use super::{wait_replies, Desk, A};

/// A KVM guest and a UML guest on this machine and a Xen guest on
/// server-a, on one network: the lab's LAN, which the project's switch
/// joins here by its socket (`switch lan { socket ... }`) and which is
/// `xenbr0` in each dom0. Each reaches the other two.
#[test]
fn a_kvm_a_uml_and_a_xen_guest_on_one_network_reach_each_other() {
    let Some(lab) =
        Servers::from_env("a_kvm_a_uml_and_a_xen_guest_on_one_network_reach_each_other")
    else {
        return;
    };
    let lan = lab
        .lan
        .clone()
        .expect("MLN_XEN_LAB_LAN names the lab's LAN switch");
    let desk = Desk::new(&lab, "mixed");
    let file = desk.file(
        "mixed.mln",
        &format!(
            "global {{\n    project mixed\n}}\n\
             switch lan {{\n    socket {}\n}}\n\
             host x {{\n    xen\n    memory 96M\n    kernel /vmlinuz\n    ramdisk /guest.cpio\n    \
             extra console=hvc0 mln.lab.ip=10.77.0.60/24 mln.lab.ping=10.77.0.61\n    \
             service_host {A}\n    network eth0 {{\n        bridge xenbr0\n    }}\n}}\n\
             host u {{\n    memory 64M\n    \
             network eth0 {{\n        switch lan\n        address 10.77.0.61\n        netmask 255.255.255.0\n    }}\n}}\n\
             host k {{\n    kvm\n    memory 128M\n    \
             network eth0 {{\n        switch lan\n        address 10.77.0.62\n        netmask 255.255.255.0\n    }}\n}}\n",
            lan.display()
        ),
    );
    let started = Instant::now();
    lab.mln_ok(&desk.state(), &["up", &file]);
    eprintln!("mixed: up in {:.0?}", started.elapsed());
    // The Xen guest reaches the UML guest (its pings answered)...
    wait_replies(&lab, A, "mixed.x", 3);
    // ...and the UML and KVM guests reach each other and the Xen guest.
    for (host, target) in [
        ("u", "10.77.0.62"),
        ("u", "10.77.0.60"),
        ("k", "10.77.0.61"),
        ("k", "10.77.0.60"),
    ] {
        let out = lab.mln_ok(
            &desk.state(),
            &[
                "exec", "-p", "mixed", host, "--", "ping", "-c", "2", "-W", "5", target,
            ],
        );
        assert!(
            out.contains("2 packets received"),
            "{host} pinging {target}:\n{out}"
        );
    }
    // `mln exec` reaches the Xen guest too, through its channel to
    // server-a's dom0 (`/dev/hvc1` in the guest), with its exit status.
    let exec_x = |command: &[&str]| {
        let mut args = vec!["exec", "-p", "mixed", "x", "--"];
        args.extend_from_slice(command);
        lab.mln(&desk.state(), &args)
    };
    let o = exec_x(&["cat", "/sys/hypervisor/type"]);
    assert!(o.status.success(), "mln exec on x: {}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "xen");
    let failed = exec_x(&["sh", "-c", "echo no >&2; exit 3"]);
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed));
    assert!(text(&failed).contains("no"), "{}", text(&failed));
    let status = lab.mln_ok(&desk.state(), &["status", "-p", "mixed"]);
    eprintln!("{status}");
    // Each server's free memory is part of its total (on a dom0, Xen's
    // free memory of Xen's total, not of dom0's own share).
    let json = lab.mln_ok(
        &desk.state(),
        &["status", "-p", "mixed", "--format", "json"],
    );
    let json: serde_json::Value = serde_json::from_str(&json).expect("status JSON");
    let servers = json[0]["servers"].as_array().cloned().unwrap_or_default();
    assert_eq!(servers.len(), 2, "{json:#}");
    for sv in &servers {
        let (free, total) = (sv["memory_free"].as_u64(), sv["memory_total"].as_u64());
        assert!(
            matches!((free, total), (Some(f), Some(t)) if f <= t),
            "server {}: {free:?} free of {total:?}",
            sv["server"]
        );
    }
    lab.mln_ok(&desk.state(), &["remove", "-p", "mixed"]);
    let left: Vec<String> = lab
        .domains(A)
        .into_iter()
        .filter(|d| d.starts_with("mixed."))
        .collect();
    assert!(left.is_empty(), "left on server-a: {left:?}");
    assert!(lan.join("ctl").exists(), "remove stopped the lab's LAN");
}

/// The Debian router lab of `debian_guests.rs` as Xen PV guests on
/// server-a: the same hosts, with `xen`, the server, and Debian's kernel
/// with MLN's initramfs (what a Xen host without `kernel` boots; here
/// named, as dom0 has no network to fetch it). What each guest saw is
/// read from its console as xenconsoled logs it (a Xen PV guest has no
/// second line for `mln exec`).
const DEBIAN_LAB: &str = r#"global { project xendeb }
superclass debian {
    template debian-12
    memory 160M
    xen
    kernel /srv/shared/guest-kernel/vmlinuz
    ramdisk /srv/shared/guest-kernel/initrd.gz
    service_host server-a
}
switch left { }
switch right { }
host router {
    superclass debian
    network eth0 { switch left; address 192.168.1.1; netmask 255.255.255.0 }
    network eth1 { switch right; address 192.168.2.1; netmask 255.255.255.0 }
    startup {
        echo 1 > /proc/sys/net/ipv4/ip_forward
    }
}
host alice {
    superclass debian
    network eth0 { switch left; address 192.168.1.10; netmask 255.255.255.0; gateway 192.168.1.1 }
    files { @KEYFILE@ /root/.ssh/id_ed25519 0600 }
    startup {
        for i in $(seq 60); do ping -c 1 -W 1 192.168.2.10 >/dev/null 2>&1 && break; sleep 1; done
        ping -c 2 -W 2 192.168.2.10 && echo "alice reached bob across the router"
        for i in $(seq 30); do ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5 root@192.168.2.10 'echo "alice logged into $(hostname) as $(id -un) with a key"' && break; sleep 1; done
    }
}
host bob {
    superclass debian
    network eth0 { switch right; address 192.168.2.10; netmask 255.255.255.0; gateway 192.168.2.1 }
    sshkey { root @KEY@ }
    startup {
        echo "bob's sshd: $(systemctl is-active ssh)"
    }
}
"#;

/// The Debian template the Debian tests built (`debian_guests.rs`, same
/// folder), built now when they have not run.
fn debian_template(lab: &Servers) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
    let link = dir.join("debian-12.ext4");
    if !link.exists() {
        let scratch = tempfile::tempdir().expect("scratch folder");
        let out = super::xen_lab::servers::run(
            Command::new(&lab.mln)
                .args(["template", "build", "debian", "--out"])
                .arg(&dir)
                .arg("--state-dir")
                .arg(scratch.path()),
            Duration::from_secs(1800),
        );
        assert!(out.status.success(), "Debian template: {}", text(&out));
    }
    link.canonicalize().expect("the Debian template")
}

/// Copy `from` to `to` keeping holes (the template is a sparse 1 GiB).
fn copy_sparse(from: &Path, to: &Path) {
    let out = super::xen_lab::servers::run(
        Command::new("cp").arg("--sparse=always").arg(from).arg(to),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "cp {}: {}",
        from.display(),
        text(&out)
    );
}

#[test]
fn the_debian_lab_runs_as_xen_guests_routes_and_logs_in_with_a_key() {
    let Some(lab) =
        Servers::from_env("the_debian_lab_runs_as_xen_guests_routes_and_logs_in_with_a_key")
    else {
        return;
    };
    // The template and the guest kernel go where the servers see them.
    let template = debian_template(&lab);
    let templates = lab.shared.join("templates");
    let name = template.file_name().expect("a file name");
    copy_sparse(&template, &templates.join(name));
    let link = templates.join("debian-12.ext4");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(name, &link).expect("template link");
    let kernels = std::env::var_os("MLN_KERNELS_DIR")
        .map(PathBuf::from)
        .expect("MLN_KERNELS_DIR names the kernels folder (CI sets it)");
    let kernel = mln_core::qemu::GuestKernel::fetch(&kernels).expect("Debian's guest kernel");
    let k = lab.shared.join("guest-kernel");
    std::fs::create_dir_all(&k).expect("kernel folder");
    copy_sparse(&kernel.kernel, &k.join("vmlinuz"));
    copy_sparse(&kernel.initrd, &k.join("initrd.gz"));

    let desk = Desk::new(&lab, "xendeb");
    let key = desk.file("alice-key", "");
    let _ = std::fs::remove_file(&key);
    let keygen = super::xen_lab::servers::run(
        Command::new("ssh-keygen").args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "alice@xendeb",
            "-f",
            &key,
        ]),
        Duration::from_secs(60),
    );
    assert!(keygen.status.success(), "ssh-keygen: {}", text(&keygen));
    let public = std::fs::read_to_string(format!("{key}.pub")).expect("public key");
    let file = desk.file(
        "xendeb.mln",
        &DEBIAN_LAB
            .replace("@KEYFILE@", &key)
            .replace("@KEY@", public.trim()),
    );
    let started = Instant::now();
    lab.mln_ok(&desk.state(), &["up", &file, "--boot-timeout", "900"]);
    eprintln!("xendeb: up in {:.0?}", started.elapsed());
    // xenconsoled's log in dom0 (`mln log` does not read Xen consoles).
    let log = |host: &str| {
        let mut text = String::new();
        lab.eventually(
            &format!("{host}'s boot marker in xenconsoled's log"),
            || {
                text = lab.console(A, &format!("xendeb.{host}"));
                text.contains(mln_core::template::BOOT_FINISHED)
            },
        );
        text
    };
    let alice = log("alice");
    assert!(
        alice.contains("alice reached bob across the router"),
        "{alice}"
    );
    assert!(
        alice.contains("alice logged into bob as root with a key"),
        "{alice}"
    );
    assert!(alice.contains(mln_core::template::BOOT_FINISHED), "{alice}");
    let bob = log("bob");
    assert!(bob.contains("bob's sshd: active"), "{bob}");
    assert!(bob.contains("bob login:"), "no login prompt on hvc0: {bob}");
    // `mln exec` reaches a Debian guest on Xen through its channel too
    // (the agent unit of the template's guest step, on /dev/hvc1).
    let o = lab.mln(
        &desk.state(),
        &[
            "exec",
            "-p",
            "xendeb",
            "bob",
            "--",
            "systemctl",
            "is-active",
            "ssh",
        ],
    );
    assert!(o.status.success(), "mln exec on bob: {}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "active");

    let down = Instant::now();
    let out = lab.mln_ok(&desk.state(), &["remove", "-p", "xendeb"]);
    eprintln!("xendeb: removed in {:.0?}", down.elapsed());
    assert!(!out.contains("no clean shutdown"), "{out}");
    let left: Vec<String> = lab
        .domains(A)
        .into_iter()
        .filter(|d| d.starts_with("xendeb."))
        .collect();
    assert!(left.is_empty(), "left on server-a: {left:?}");
}
