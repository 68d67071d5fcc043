//! A switch spanning two "servers": two real `vde_switch` instances of one
//! switch joined by a cable (`dpipe vde_plug A = vde_plug B`), a real UML
//! guest on each. They ping each other through the cable; stopping the
//! cable cuts them apart, a new cable joins them again, and a cable whose
//! switch dies reports itself down.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{GuestConfig, GuestInterface, HostsEntry};
use mln_core::net::{Cable, Switch, SwitchConfig, VdeSwitch};
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::uml::{self, Uml};
use mln_core::{Error, Hypervisor, InterfaceSpec, MacAddr};

fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        Template::default_in(&base).expect("busybox template")
    })
    .clone()
}

/// Guest `name` at `addr` on `switch`; once booted it pings `peer` every
/// second for good and prints `MLN-UP` or `MLN-DOWN` on its console.
fn guest(uml: &Uml, dir: &Path, name: &str, addr: &str, peer: &str, switch: &VdeSwitch) {
    let cow = Overlay::create(
        &template().image,
        dir.join(format!("{name}.cow")),
        CowFormat::Uml,
    )
    .unwrap();
    let mut cfg = GuestConfig::new(name);
    cfg.hosts = [("alice", "10.0.0.1"), ("bob", "10.0.0.2")]
        .iter()
        .map(|(n, a)| HostsEntry {
            address: a.parse().unwrap(),
            names: vec![n.to_string()],
        })
        .collect();
    let mac = MacAddr::derived(&format!("cable/{name}"));
    let mut iface = GuestInterface::fixed("eth0", addr.parse().unwrap(), 24);
    iface.mac = Some(mac);
    cfg.interfaces.push(iface);
    cfg.startup.push(format!(
        "ok=no; for i in $(seq 60); do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && ok=yes && break; done; \
         echo MLN-PING-$ok"
    ));
    cfg.startup.push(format!(
        "(while true; do if ping -c 1 -W 1 {peer} >/dev/null 2>&1; then echo MLN-UP; \
         else echo MLN-DOWN; fi; sleep 1; done) &"
    ));
    let cfg_disk = dir.join(format!("{name}.config"));
    cfg.write_disk(&cfg_disk).unwrap();
    let nic = InterfaceSpec {
        name: "eth0".into(),
        mac,
        attach: switch.attachment(),
    };
    let spec = uml::host_spec(name, 64 << 20, &cow, &cfg_disk, vec![nic], "quiet");
    uml.create(&spec).unwrap();
    uml.start(name).unwrap();
}

/// Wait until `name`'s console shows `marker` past byte `from`.
fn wait_past(uml: &Uml, name: &str, from: usize, marker: &str) {
    let path = uml.console_log(name).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read(&path).unwrap_or_default();
        let tail = String::from_utf8_lossy(log.get(from..).unwrap_or(&[])).into_owned();
        if tail.contains(marker) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: no {marker} after byte {from}:\n{tail}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_len(uml: &Uml, name: &str) -> usize {
    std::fs::metadata(uml.console_log(name).unwrap()).map_or(0, |m| m.len() as usize)
}

/// Processes under `dir` running dpipe or a cable's plain `vde_plug
/// SOCKET` (UML's own vde_plug helpers take options).
fn cable_processes(dir: &Path) -> Vec<String> {
    testkit::processes_under(dir)
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("dpipe ") || (c.starts_with("vde_plug ") && !c.contains(" --")))
        .collect()
}

#[test]
fn guests_on_two_switch_instances_ping_through_a_cable_until_it_is_stopped() {
    template();
    let dir = tempfile::tempdir().unwrap();
    let _reaper = testkit::KillUnder(dir.path().to_path_buf());
    // One instance of switch `lan` per "server".
    let server_a = dir.path().join("a");
    let server_b = dir.path().join("b");
    let lan_a = VdeSwitch::start(&SwitchConfig::new("lan"), server_a.join("switches")).unwrap();
    let lan_b = VdeSwitch::start(&SwitchConfig::new("lan"), server_b.join("switches")).unwrap();
    let plug_a = lan_a.plug_argv();
    assert_eq!(
        plug_a,
        [OsString::from("vde_plug"), lan_a.ctl_dir().into_os_string()]
    );
    let cables: PathBuf = dir.path().join("cables");
    let cable = Cable::start(&cables, "lan", &plug_a, &lan_b.plug_argv()).unwrap();
    assert!(cable.is_alive());
    assert_eq!(cable_processes(dir.path()).len(), 3, "dpipe and two plugs");

    // A later process finds the same cable; a second one of that name is
    // refused while it runs.
    let found = Cable::open(&cables, "lan").unwrap();
    assert_eq!(found, cable);
    assert!(found.is_alive());
    assert!(matches!(
        Cable::start(&cables, "lan", &plug_a, &lan_b.plug_argv()),
        Err(Error::AlreadyExists { .. })
    ));

    let uml_a = Uml::new(server_a.join("uml")).unwrap();
    let uml_b = Uml::new(server_b.join("uml")).unwrap();
    guest(&uml_a, dir.path(), "alice", "10.0.0.1", "bob", &lan_a);
    guest(&uml_b, dir.path(), "bob", "10.0.0.2", "alice", &lan_b);
    for (uml, name) in [(&uml_a, "alice"), (&uml_b, "bob")] {
        let log = uml
            .wait_console(name, BOOT_FINISHED, Duration::from_secs(90))
            .unwrap();
        assert!(log.contains("MLN-PING-yes"), "{name}:\n{log}");
    }

    // Stopped (through the handle found later): the guests lose each other,
    // and nothing of the cable is left.
    let from = log_len(&uml_a, "alice");
    found.stop().unwrap();
    assert!(!cable.is_alive());
    wait_past(&uml_a, "alice", from, "MLN-DOWN");
    let left = cable_processes(dir.path());
    assert!(left.is_empty(), "left running: {left:?}");
    assert_eq!(std::fs::read_dir(&cables).unwrap().count(), 0);
    assert!(matches!(
        Cable::open(&cables, "lan"),
        Err(Error::NotFound { .. })
    ));
    cable.stop().unwrap(); // again: nothing to do

    // A new cable joins them again.
    let cable = Cable::start(&cables, "lan", &plug_a, &lan_b.plug_argv()).unwrap();
    let from = log_len(&uml_a, "alice");
    wait_past(&uml_a, "alice", from, "MLN-UP");

    // One side's switch gone (a server lost): the cable is down, for good.
    uml_b.destroy("bob").unwrap();
    lan_b.stop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cable.is_alive() {
        assert!(
            Instant::now() < deadline,
            "cable still up without its switch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The other side ends on end of input, a moment after dpipe.
    while !cable_processes(dir.path()).is_empty() {
        let left = cable_processes(dir.path());
        assert!(Instant::now() < deadline, "left running: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(cable.log_path()).unwrap();
    cable.stop().unwrap();
    assert_eq!(
        std::fs::read_dir(&cables).unwrap().count(),
        0,
        "cable log said: {log}"
    );

    uml_a.destroy("alice").unwrap();
    lan_a.stop().unwrap();
    assert!(
        testkit::processes_under(dir.path()).is_empty(),
        "left running"
    );
}

/// dpipe killed alone leaves its two plugs running, still joined: the
/// cable reports down, and stopping it ends the plugs too.
#[test]
fn stopping_a_cable_whose_dpipe_was_killed_ends_its_orphaned_plugs() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = testkit::KillUnder(dir.path().to_path_buf());
    let a = VdeSwitch::start(&SwitchConfig::new("lan"), dir.path().join("a")).unwrap();
    let b = VdeSwitch::start(&SwitchConfig::new("lan"), dir.path().join("b")).unwrap();
    let cables = dir.path().join("cables");
    let cable = Cable::start(&cables, "lan", &a.plug_argv(), &b.plug_argv()).unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", &cable.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while cable.is_alive() {
        assert!(Instant::now() < deadline, "killed dpipe still counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cable_processes(dir.path()).len(), 2, "the plugs live on");
    Cable::open(&cables, "lan").unwrap().stop().unwrap();
    assert!(cable_processes(dir.path()).is_empty());
    assert_eq!(std::fs::read_dir(&cables).unwrap().count(), 0);
    a.stop().unwrap();
    b.stop().unwrap();
}
