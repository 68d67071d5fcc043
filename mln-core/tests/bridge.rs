//! Linux bridges as project switches, on the real kernel: made, found again,
//! adopted and removed; hub and switch as sysfs shows them; names refused
//! before anything is made; a foreign bridge never adopted or deleted; a
//! tap port; and real frames: network namespaces on veth pairs ping each
//! other through the bridge, and through a `vde_switch` joined to it.
//!
//! Everything but the name checks needs root (CAP_NET_ADMIN) and skips,
//! saying so, without it. Every test tears down what it made on every way
//! out ([`Made`]).

use std::path::Path;
use std::process::Command;

use mln_core::net::{LinuxBridge, Switch, SwitchConfig, SwitchStatus, VdeSwitch};
use mln_core::{Attachment, Error};
use testkit::run_ok as run;

fn can_manage(test: &str) -> bool {
    let ok = LinuxBridge::can_manage();
    if !ok {
        testkit::skip(test, "Linux bridges need root (CAP_NET_ADMIN)");
    }
    ok
}

/// A name unique to this test process: bridges are global to the host.
fn unique(test: &str) -> String {
    format!("mln-test-{}-{test}", std::process::id())
}

fn sys_net(name: &str) -> std::path::PathBuf {
    Path::new("/sys/class/net").join(name)
}

fn read_sys(name: &str, file: &str) -> String {
    std::fs::read_to_string(sys_net(name).join(file))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What a test made, removed when dropped (whatever happened): network
/// namespaces (their veth ends go with them), interfaces, bridges,
/// switches.
#[derive(Default)]
struct Made {
    namespaces: Vec<String>,
    interfaces: Vec<String>,
    bridges: Vec<LinuxBridge>,
    switches: Vec<VdeSwitch>,
    plug: Option<std::process::Child>,
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(child) = &mut self.plug {
            let _ = child.kill();
            let _ = child.wait();
        }
        for sw in &self.switches {
            let _ = sw.stop();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for br in &self.bridges {
            let _ = br.stop();
        }
        for i in &self.interfaces {
            if sys_net(i).exists() {
                let _ = Command::new("ip").args(["link", "del", "dev", i]).status();
            }
        }
    }
}

impl Made {
    /// A network namespace with a veth pair: `host` stays on the host, its
    /// peer goes into the namespace as `eth0` with `address`.
    fn namespace(&mut self, ns: &str, host: &str, address: &str) {
        run(&["ip", "netns", "add", ns]);
        self.namespaces.push(ns.to_string());
        run(&[
            "ip", "link", "add", "name", host, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        self.interfaces.push(host.to_string());
        run(&["ip", "-n", ns, "addr", "add", address, "dev", "eth0"]);
        run(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// Does `from` reach `to` (an address) within `seconds`? (Debian's
    /// `busybox`, which the busybox template is built from, has `ping`.)
    fn pings_within(&self, from: &str, to: &str, seconds: u32) -> bool {
        let deadline = seconds.to_string();
        Command::new("ip")
            .args([
                "netns", "exec", from, "busybox", "ping", "-c", "1", "-w", &deadline, "-W",
                &deadline, to,
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Does `from` reach `to`? (A few seconds for the first frames.)
    fn pings(&self, from: &str, to: &str) -> bool {
        self.pings_within(from, to, 5)
    }

    /// Is `to` unreachable from `from`? (On one host a reply takes well
    /// under a millisecond: a second without one says enough.)
    fn cut_off(&self, from: &str, to: &str) -> bool {
        !self.pings_within(from, to, 1)
    }
}

#[test]
fn bridge_is_made_found_adopted_and_removed() {
    if !can_manage("bridge_is_made_found_adopted_and_removed") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let name = LinuxBridge::derived_name(&unique("life"), "lan");
    let mut made = Made::default();
    let br = LinuxBridge::start(&SwitchConfig::new("lan"), &name, state.path()).unwrap();
    made.bridges.push(br.clone());

    assert!(sys_net(&name).join("bridge").is_dir());
    assert_eq!(br.bridge_name(), name);
    assert_eq!(br.status(), SwitchStatus::Up);
    assert!(br.status().is_up());
    assert_eq!(br.attachment(), Attachment::Bridge(name.clone()));
    assert!(state.path().join("lan/bridge.json").exists());
    assert!(read_sys(&name, "ifalias").starts_with("mln:"));

    // Found again from the state folder, as a later process would.
    let found = LinuxBridge::open("lan", state.path()).unwrap();
    assert_eq!(found.bridge_name(), name);
    assert_eq!(LinuxBridge::list(state.path()).unwrap().len(), 1);

    // Started again: ours, so adopted, not refused and not made twice.
    let again = LinuxBridge::start(&SwitchConfig::new("lan"), &name, state.path()).unwrap();
    assert_eq!(again.status(), SwitchStatus::Up);

    // Set down behind our back: not working.
    run(&["ip", "link", "set", "dev", &name, "down"]);
    assert_eq!(found.status(), SwitchStatus::Gone);
    // Starting it again brings it up.
    LinuxBridge::start(&SwitchConfig::new("lan"), &name, state.path()).unwrap();
    assert_eq!(found.status(), SwitchStatus::Up);

    found.stop().unwrap();
    assert!(!sys_net(&name).exists());
    assert!(!state.path().join("lan").exists());
    assert!(matches!(
        LinuxBridge::open("lan", state.path()),
        Err(Error::NotFound { .. })
    ));
    // Stopping twice is not an error.
    found.stop().unwrap();
}

#[test]
fn hub_and_switch_show_in_sysfs() {
    if !can_manage("hub_and_switch_show_in_sysfs") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let name = LinuxBridge::derived_name(&unique("hub"), "lan");
    let mut made = Made::default();
    let mut spec = SwitchConfig::new("lan");
    spec.hub = true;
    let hub = LinuxBridge::start(&spec, &name, state.path()).unwrap();
    made.bridges.push(hub.clone());
    // A hub forgets every address at once, so it floods every frame.
    assert_eq!(read_sys(&name, "bridge/ageing_time"), "0");
    assert_eq!(hub.is_hub(), Some(true));

    // The same bridge adopted as a learning switch: the kernel's default.
    spec.hub = false;
    let sw = LinuxBridge::start(&spec, &name, state.path()).unwrap();
    assert_eq!(read_sys(&name, "bridge/ageing_time"), "30000");
    assert_eq!(sw.is_hub(), Some(false));
}

#[test]
fn hostile_names_are_refused_before_anything_is_made() {
    // No root needed: nothing may be made, so nothing is.
    let state = tempfile::tempdir().unwrap();
    for bad in [
        "../x",
        "-x",
        "a;b",
        "a b",
        "$(x)",
        "x/y",
        "",
        "a-very-long-name",
    ] {
        assert!(
            matches!(
                LinuxBridge::start(&SwitchConfig::new("lan"), bad, state.path()),
                Err(Error::InvalidName { .. })
            ),
            "bridge name {bad:?} accepted"
        );
        let mut spec = SwitchConfig::new("lan");
        spec.tap = Some(bad.to_string());
        assert!(
            matches!(
                LinuxBridge::start(&spec, "mlnok0", state.path()),
                Err(Error::InvalidName { .. })
            ),
            "tap name {bad:?} accepted"
        );
        if !bad.is_empty() && !bad.contains('/') {
            assert!(!sys_net(bad).exists(), "{bad:?} was made");
        }
    }
    // Exactly 15 characters is the limit, 16 is over it.
    assert_eq!("a-very-long-name".len(), 16);
    assert!(matches!(
        LinuxBridge::start(&SwitchConfig::new("../lan"), "mlnok0", state.path()),
        Err(Error::InvalidName { .. })
    ));
    assert!(!sys_net("mlnok0").exists());
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn a_bridge_mln_did_not_make_is_never_adopted_or_deleted() {
    if !can_manage("a_bridge_mln_did_not_make_is_never_adopted_or_deleted") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let name = LinuxBridge::derived_name(&unique("foreign"), "lan");
    let mut made = Made::default();
    run(&["ip", "link", "add", "name", &name, "type", "bridge"]);
    made.interfaces.push(name.clone());

    match LinuxBridge::start(&SwitchConfig::new("lan"), &name, state.path()) {
        Err(Error::AlreadyExists { domain }) => assert!(domain.contains(&name), "{domain}"),
        other => panic!("foreign bridge adopted: {other:?}"),
    }
    assert!(!state.path().join("lan/bridge.json").exists());

    // Ours once, deleted behind our back, and made again by someone else
    // under the same name: the stale record does not make it ours.
    let state2 = tempfile::tempdir().unwrap();
    let name2 = LinuxBridge::derived_name(&unique("foreign2"), "lan");
    let ours = LinuxBridge::start(&SwitchConfig::new("lan"), &name2, state2.path()).unwrap();
    made.bridges.push(ours.clone());
    run(&["ip", "link", "del", "dev", &name2]);
    run(&["ip", "link", "add", "name", &name2, "type", "bridge"]);
    made.interfaces.push(name2.clone());
    assert_eq!(ours.status(), SwitchStatus::Gone);
    assert!(ours.plug("lo").is_err());
    assert!(matches!(
        LinuxBridge::start(&SwitchConfig::new("lan"), &name2, state2.path()),
        Err(Error::AlreadyExists { .. })
    ));
    ours.stop().unwrap();
    assert!(
        sys_net(&name2).join("bridge").is_dir(),
        "foreign bridge deleted"
    );
    assert!(!state2.path().join("lan/bridge.json").exists());
}

#[test]
fn tap_is_made_plugged_in_and_removed_with_the_bridge() {
    if !can_manage("tap_is_made_plugged_in_and_removed_with_the_bridge")
        || !Path::new("/dev/net/tun").exists()
    {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let name = LinuxBridge::derived_name(&unique("tap"), "lan");
    let tap = format!("mlnt{}", std::process::id() % 1_000_000);
    let mut made = Made::default();
    made.interfaces.push(tap.clone());
    let mut spec = SwitchConfig::new("lan");
    spec.tap = Some(tap.clone());
    let br = LinuxBridge::start(&spec, &name, state.path()).unwrap();
    made.bridges.push(br.clone());
    assert!(sys_net(&name).join("brif").join(&tap).exists());
    assert!(read_sys(&tap, "tun_flags").len() > 1, "not a tun device");

    // Adopted without a tap: the tap goes, the bridge stays.
    let plain = LinuxBridge::start(&SwitchConfig::new("lan"), &name, state.path()).unwrap();
    assert!(!sys_net(&tap).exists());
    assert!(sys_net(&name).exists());
    // And with it again, then everything goes with the bridge.
    let br = LinuxBridge::start(&spec, &name, state.path()).unwrap();
    assert!(sys_net(&name).join("brif").join(&tap).exists());
    drop(plain);
    br.stop().unwrap();
    assert!(!sys_net(&tap).exists());
    assert!(!sys_net(&name).exists());
}

#[test]
fn namespaces_on_the_bridge_ping_each_other() {
    if !can_manage("namespaces_on_the_bridge_ping_each_other") {
        return;
    }
    let id = std::process::id() % 1_000_000;
    let state = tempfile::tempdir().unwrap();
    let name = LinuxBridge::derived_name(&unique("ping"), "lan");
    let mut made = Made::default();
    for hub in [false, true] {
        let mut spec = SwitchConfig::new("lan");
        spec.hub = hub;
        let br = LinuxBridge::start(&spec, &name, state.path()).unwrap();
        made.bridges.push(br.clone());
        let (a, b) = (
            format!("mlnpa{id}{}", hub as u8),
            format!("mlnpb{id}{}", hub as u8),
        );
        made.namespace(&a, &format!("mva{id}{}", hub as u8), "10.77.0.1/24");
        made.namespace(&b, &format!("mvb{id}{}", hub as u8), "10.77.0.2/24");
        // Before they are plugged in, nothing gets through.
        assert!(made.cut_off(&a, "10.77.0.2"));
        br.plug(&format!("mva{id}{}", hub as u8)).unwrap();
        br.plug(&format!("mvb{id}{}", hub as u8)).unwrap();
        assert!(made.pings(&a, "10.77.0.2"), "a cannot reach b (hub: {hub})");
        assert!(made.pings(&b, "10.77.0.1"), "b cannot reach a (hub: {hub})");
        br.stop().unwrap();
        // With the bridge gone the path is gone too.
        assert!(made.cut_off(&a, "10.77.0.2"));
    }
}

#[test]
fn a_vde_switch_joined_to_the_bridge_carries_frames_between_them() {
    if !can_manage("a_vde_switch_joined_to_the_bridge_carries_frames_between_them")
        || !Path::new("/dev/net/tun").exists()
    {
        return;
    }
    let id = std::process::id() % 1_000_000;
    let state = tempfile::tempdir().unwrap();
    let name = LinuxBridge::derived_name(&unique("join"), "lan");
    let mut made = Made::default();
    // What a switch with both UML and Xen guests is: a vde_switch whose
    // tap port is plugged into a bridge, both recorded in one folder.
    let join = LinuxBridge::derived_join_name(&unique("join"), "lan");
    let mut vde_spec = SwitchConfig::new("lan");
    vde_spec.tap = Some(join.clone());
    let vde = VdeSwitch::start(&vde_spec, state.path()).unwrap();
    made.switches.push(vde.clone());
    let br = LinuxBridge::start(&SwitchConfig::new("lan"), &name, state.path()).unwrap();
    made.bridges.push(br.clone());
    br.plug(&join).unwrap();
    assert!(sys_net(&name).join("brif").join(&join).exists());

    // On the bridge's side, a namespace on a veth pair (where a Xen vif
    // would be); on the vde side, a namespace whose eth0 is a tap that
    // `vde_plug2tap` plugs into the switch (where a UML guest would be).
    let (a, b) = (format!("mlnja{id}"), format!("mlnjb{id}"));
    made.namespace(&a, &format!("mvja{id}"), "10.78.0.1/24");
    br.plug(&format!("mvja{id}")).unwrap();
    let tap = format!("mlnjt{id}");
    made.interfaces.push(tap.clone());
    made.plug = Some(
        Command::new("vde_plug2tap")
            .arg("--sock")
            .arg(vde.ctl_dir())
            .arg(&tap)
            .spawn()
            .expect("vde_plug2tap"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sys_net(&tap).exists() {
        assert!(std::time::Instant::now() < deadline, "{tap} never appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run(&["ip", "netns", "add", &b]);
    made.namespaces.push(b.clone());
    run(&["ip", "link", "set", "dev", &tap, "netns", &b]);
    run(&["ip", "-n", &b, "addr", "add", "10.78.0.2/24", "dev", &tap]);
    run(&["ip", "-n", &b, "link", "set", &tap, "up"]);

    assert!(
        made.pings(&a, "10.78.0.2"),
        "bridge side cannot reach vde side"
    );
    assert!(
        made.pings(&b, "10.78.0.1"),
        "vde side cannot reach bridge side"
    );

    // Stopping the vde switch takes its tap out of the bridge, cuts the
    // path, and leaves the bridge and its record in place.
    vde.stop().unwrap();
    assert!(!sys_net(&join).exists());
    assert!(made.cut_off(&a, "10.78.0.2"));
    assert!(state.path().join("lan/bridge.json").exists());
    assert_eq!(br.status(), SwitchStatus::Up);
    br.stop().unwrap();
    assert!(!state.path().join("lan").exists());
}
