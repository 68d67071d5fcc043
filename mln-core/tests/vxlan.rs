//! VXLAN links between the Linux bridges of a switch on several servers,
//! on the real kernel: guests on two servers' bridges ping each other
//! through a link (full-size packets too, fragmented underneath); two
//! remote servers reach each other through the home server's bridge (the
//! star of links `mln_core::net::vxlan` chose); removing a link deletes its
//! device and record and cuts the path; a device or VNI that is not ours is
//! refused and left alone; bad names and addresses are refused before
//! anything is made.
//!
//! Each server is a network namespace, joined to the others by veth pairs
//! (the underlay, 198.51.100.0/24) and with guests in namespaces of their
//! own on veth pairs into its bridge (10.79.0.0/24). The bridges and links
//! are made by this test binary run again inside the server's namespace
//! ([`Lab::on`] runs the ignored test [`server_role`] through `ip netns
//! exec`, which also mounts that namespace's `/sys`, where `mln_core`
//! reads interfaces), as `mln agent` would run on a real server.
//!
//! Everything but the name checks needs root (CAP_NET_ADMIN) and skips,
//! saying so, without it. Deleting the namespaces (when [`Lab`] drops, on
//! every way out) deletes every device made in them.

use std::env;
use std::path::Path;
use std::process::Command;

use mln_core::net::{LinuxBridge, Switch, SwitchConfig, SwitchStatus, Vxlan, VxlanSpec};
use mln_core::Error;
use testkit::run_ok as run;

/// The bridge's name in every server namespace (each has its own).
const BRIDGE: &str = "mlnvxbr0";
const VAR: &str = "MLN_VXLAN_TEST_";

fn can_manage(test: &str) -> bool {
    let ok = LinuxBridge::can_manage();
    if !ok {
        testkit::skip(test, "VXLAN devices and bridges need root (CAP_NET_ADMIN)");
    }
    ok
}

/// Server and guest namespaces, deleted when dropped.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    states: Vec<tempfile::TempDir>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Lab {
    /// A lab whose namespaces are named after this process and `test`
    /// (tests run in parallel, namespaces are global to the host).
    fn new(test: &str) -> Self {
        Lab {
            prefix: format!("mlnvx{}{test}", std::process::id()),
            namespaces: Vec::new(),
            states: Vec::new(),
        }
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// A namespace `name` with its loopback up; servers get a state folder.
    fn namespace(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        self.states.push(tempfile::tempdir().unwrap());
        ns
    }

    fn state(&self, ns: &str) -> String {
        let i = self.namespaces.iter().position(|n| n == ns).unwrap();
        self.states[i].path().display().to_string()
    }

    /// A veth pair between servers `a` and `b`, `a_if` with `a_addr` in
    /// `a`, `b_if` with `b_addr` in `b`: the network between them.
    fn underlay(&self, a: &str, a_if: &str, a_addr: &str, b: &str, b_if: &str, b_addr: &str) {
        run(&[
            "ip", "-n", a, "link", "add", "name", a_if, "type", "veth", "peer", "name", b_if,
            "netns", b,
        ]);
        for (ns, dev, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// A guest namespace whose `eth0` has `address`, its veth peer `port`
    /// left in `server` for the bridge.
    fn guest(&mut self, name: &str, server: &str, port: &str, address: &str) -> String {
        let ns = self.namespace(name);
        run(&[
            "ip", "-n", server, "link", "add", "name", port, "type", "veth", "peer", "name",
            "eth0", "netns", &ns,
        ]);
        run(&["ip", "-n", &ns, "addr", "add", address, "dev", "eth0"]);
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    /// Run [`server_role`] `role` inside `server` with `vars`; its output
    /// when it passed, a panic with its output when not.
    fn on(&self, server: &str, role: &str, vars: &[(&str, &str)]) -> String {
        let exe = env::current_exe().unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", server])
            .arg(exe)
            .args([
                "--exact",
                "server_role",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(format!("{VAR}ROLE"), role)
            .env(format!("{VAR}STATE"), self.state(server));
        for (k, v) in vars {
            cmd.env(format!("{VAR}{k}"), v);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{role} in {server} failed:\n{text}");
        text
    }

    /// Make the link of `server` (`local`) to `remote` with `vni`.
    fn link(&self, server: &str, device: &str, vni: u32, local: &str, remote: &str) {
        let vni = vni.to_string();
        self.on(
            server,
            "link",
            &[
                ("DEVICE", device),
                ("VNI", &vni),
                ("LOCAL", local),
                ("REMOTE", remote),
            ],
        );
    }

    /// Does `from` reach `to` with `size` bytes of ping payload within
    /// `seconds`? (Debian's `busybox` has `ping`.)
    fn pings_within(&self, from: &str, to: &str, size: u32, seconds: u32) -> bool {
        let (size, deadline) = (size.to_string(), seconds.to_string());
        Command::new("ip")
            .args([
                "netns", "exec", from, "busybox", "ping", "-c", "1", "-s", &size, "-w", &deadline,
                "-W", &deadline, to,
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Does any of three pings of a full 1500-byte packet from `from`
    /// reach `to`?
    fn full_size_pings(&self, from: &str, to: &str) -> bool {
        Command::new("ip")
            .args([
                "netns", "exec", from, "busybox", "ping", "-c", "3", "-s", "1472", "-W", "2", to,
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn pings(&self, from: &str, to: &str) -> bool {
        self.pings_within(from, to, 56, 5)
    }

    fn cut_off(&self, from: &str, to: &str) -> bool {
        !self.pings_within(from, to, 56, 1)
    }
}

/// Field `field` of the `Icmp:` counters of namespace `ns`.
fn icmp_in(ns: &str, field: &str) -> u64 {
    let out = run(&["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = text.lines().filter(|l| l.starts_with("Icmp: "));
    let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
        panic!("no Icmp counters in {ns}: {text}");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == field)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {ns}: {text}"))
}

fn var(name: &str) -> String {
    env::var(format!("{VAR}{name}")).unwrap_or_else(|_| panic!("{VAR}{name} not set"))
}

fn spec_from_env() -> VxlanSpec {
    VxlanSpec {
        device: var("DEVICE"),
        vni: var("VNI").parse().unwrap(),
        local: var("LOCAL").parse().unwrap(),
        remote: var("REMOTE").parse().unwrap(),
    }
}

fn sys_net(name: &str) -> std::path::PathBuf {
    Path::new("/sys/class/net").join(name)
}

/// One step on a server, run by [`Lab::on`] inside its namespace; does
/// nothing when run directly.
#[test]
#[ignore = "run by the other tests inside a namespace server"]
fn server_role() {
    let Ok(role) = env::var(format!("{VAR}ROLE")) else {
        return;
    };
    let state = var("STATE");
    match role.as_str() {
        // The switch's bridge, with the guests' ports plugged in.
        "bridge" => {
            let br = LinuxBridge::start(&SwitchConfig::new("lan"), BRIDGE, &state).unwrap();
            for port in var("PORTS").split(',').filter(|p| !p.is_empty()) {
                br.plug(port).unwrap();
            }
            assert_eq!(br.status(), SwitchStatus::Up);
        }
        // A link, made, a port of the bridge, up; made again: adopted.
        "link" => {
            let spec = spec_from_env();
            let br = LinuxBridge::open("lan", &state).unwrap();
            let link = Vxlan::create(&spec, &br, &state).unwrap();
            assert!(link.is_up());
            assert_eq!(link.bridge_name(), BRIDGE);
            assert!(sys_net(BRIDGE).join("brif").join(&spec.device).exists());
            let alias = std::fs::read_to_string(sys_net(&spec.device).join("ifalias")).unwrap();
            assert!(alias.starts_with("mln:"), "{alias}");
            assert_eq!(
                std::fs::read_to_string(sys_net(&spec.device).join("mtu"))
                    .unwrap()
                    .trim(),
                Vxlan::MTU.to_string()
            );
            let again = Vxlan::create(&spec, &br, &state).unwrap();
            assert!(again.is_up());
            assert_eq!(
                std::fs::read_to_string(sys_net(&spec.device).join("ifalias")).unwrap(),
                alias,
                "made again instead of adopted"
            );
            let found = Vxlan::open("lan", &spec.device, &state).unwrap();
            assert_eq!(found.spec(), &spec);
            assert!(Vxlan::list("lan", &state)
                .unwrap()
                .iter()
                .any(|l| l.device() == spec.device));
        }
        // The link removed: device and record gone, the bridge untouched.
        "unlink" => {
            let device = var("DEVICE");
            let link = Vxlan::open("lan", &device, &state).unwrap();
            link.remove().unwrap();
            assert!(!sys_net(&device).exists(), "{device} still there");
            assert!(matches!(
                Vxlan::open("lan", &device, &state),
                Err(Error::NotFound { .. })
            ));
            assert!(Vxlan::list("lan", &state)
                .unwrap()
                .iter()
                .all(|l| l.device() != device));
            // Removing twice is not an error.
            link.remove().unwrap();
            let br = LinuxBridge::open("lan", &state).unwrap();
            assert_eq!(br.status(), SwitchStatus::Up);
            assert!(Path::new(&state).join("lan/bridge.json").exists());
        }
        // The link refused (a device or VNI not ours), nothing of it kept.
        "refused" => {
            let spec = spec_from_env();
            let br = LinuxBridge::open("lan", &state).unwrap();
            match Vxlan::create(&spec, &br, &state) {
                Err(Error::AlreadyExists { domain }) => println!("REFUSED: {domain}"),
                other => panic!("not refused: {other:?}"),
            }
            assert!(matches!(
                Vxlan::open("lan", &spec.device, &state),
                Err(Error::NotFound { .. })
            ));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn guests_on_two_servers_bridges_ping_through_a_vxlan_link() {
    if !can_manage("guests_on_two_servers_bridges_ping_through_a_vxlan_link") {
        return;
    }
    let mut lab = Lab::new("two");
    let (sa, sb) = (lab.namespace("sa"), lab.namespace("sb"));
    lab.underlay(&sa, "u0", "198.51.100.1/30", &sb, "u0", "198.51.100.2/30");
    let ga = lab.guest("ga", &sa, "g0", "10.79.0.1/24");
    let gb = lab.guest("gb", &sb, "g0", "10.79.0.2/24");
    lab.on(&sa, "bridge", &[("PORTS", "g0")]);
    lab.on(&sb, "bridge", &[("PORTS", "g0")]);
    // Two bridges on two servers: not one network yet.
    assert!(lab.cut_off(&ga, "10.79.0.2"));

    let device = Vxlan::derived_name("lab", "lan", "sb");
    let vni = Vxlan::derived_vni("lab", "lan", "sb");
    lab.link(&sa, &device, vni, "198.51.100.1", "198.51.100.2");
    lab.link(&sb, &device, vni, "198.51.100.2", "198.51.100.1");
    assert!(lab.pings(&ga, "10.79.0.2"), "a cannot reach b");
    assert!(lab.pings(&gb, "10.79.0.1"), "b cannot reach a");
    // A full 1500-byte guest packet is 1550 bytes on the 1500-byte
    // underlay. ping sets Don't Fragment, so the sending server's kernel
    // answers the first one with "fragmentation needed" (MTU 1450) and the
    // guest sends the next ones in fragments that fit.
    let unreachable_before = icmp_in(&ga, "InDestUnreachs");
    assert!(
        lab.full_size_pings(&ga, "10.79.0.2"),
        "full-size packets are lost"
    );
    assert!(
        icmp_in(&ga, "InDestUnreachs") > unreachable_before,
        "the guest was never told the path's MTU"
    );

    lab.on(&sb, "unlink", &[("DEVICE", &device)]);
    assert!(lab.cut_off(&ga, "10.79.0.2"));
}

#[test]
fn a_remote_reaches_another_remote_through_the_home_bridge() {
    if !can_manage("a_remote_reaches_another_remote_through_the_home_bridge") {
        return;
    }
    let mut lab = Lab::new("star");
    let (home, sb, sc) = (
        lab.namespace("home"),
        lab.namespace("sb"),
        lab.namespace("sc"),
    );
    // Each remote reaches home only, as each answers home's ssh.
    lab.underlay(&home, "ub", "198.51.100.1/30", &sb, "u0", "198.51.100.2/30");
    lab.underlay(&home, "uc", "198.51.100.5/30", &sc, "u0", "198.51.100.6/30");
    let gb = lab.guest("gb", &sb, "g0", "10.79.0.2/24");
    let gc = lab.guest("gc", &sc, "g0", "10.79.0.3/24");
    lab.on(&home, "bridge", &[("PORTS", "")]);
    lab.on(&sb, "bridge", &[("PORTS", "g0")]);
    lab.on(&sc, "bridge", &[("PORTS", "g0")]);

    // Home has one link per remote, each with its own VNI.
    let (to_b, to_c) = (
        Vxlan::derived_name("lab", "lan", "sb"),
        Vxlan::derived_name("lab", "lan", "sc"),
    );
    let (vni_b, vni_c) = (
        Vxlan::derived_vni("lab", "lan", "sb"),
        Vxlan::derived_vni("lab", "lan", "sc"),
    );
    assert_ne!(vni_b, vni_c);
    lab.link(&home, &to_b, vni_b, "198.51.100.1", "198.51.100.2");
    lab.link(&home, &to_c, vni_c, "198.51.100.5", "198.51.100.6");
    lab.link(&sb, &to_b, vni_b, "198.51.100.2", "198.51.100.1");
    lab.link(&sc, &to_c, vni_c, "198.51.100.6", "198.51.100.5");

    assert!(lab.pings(&gb, "10.79.0.3"), "b cannot reach c through home");
    assert!(lab.pings(&gc, "10.79.0.2"), "c cannot reach b through home");

    // Home's link to c gone: b and c are apart again.
    lab.on(&home, "unlink", &[("DEVICE", &to_c)]);
    assert!(lab.cut_off(&gb, "10.79.0.3"));
}

#[test]
fn a_device_or_vni_mln_did_not_make_is_refused_and_left_alone() {
    if !can_manage("a_device_or_vni_mln_did_not_make_is_refused_and_left_alone") {
        return;
    }
    let mut lab = Lab::new("foreign");
    let sa = lab.namespace("sa");
    lab.on(&sa, "bridge", &[("PORTS", "")]);
    // Someone else's VXLAN device, with the name and VNI mln would use.
    run(&[
        "ip",
        "-n",
        &sa,
        "link",
        "add",
        "name",
        "mlxforeign",
        "type",
        "vxlan",
        "id",
        "4242",
        "local",
        "198.51.100.1",
        "remote",
        "198.51.100.9",
        "dstport",
        "4789",
    ]);
    let vars = |device: &'static str| {
        [
            ("DEVICE", device),
            ("VNI", "4242"),
            ("LOCAL", "198.51.100.1"),
            ("REMOTE", "198.51.100.2"),
        ]
    };
    // Same name: refused as an interface that is not ours.
    let out = lab.on(&sa, "refused", &vars("mlxforeign"));
    assert!(out.contains("interface mlxforeign"), "{out}");
    // Another name, same VNI: the kernel keeps one device per VNI.
    let out = lab.on(&sa, "refused", &vars("mlxother"));
    assert!(out.contains("VXLAN network 4242"), "{out}");
    // The foreign device is still there, and no other was made.
    let links = run(&["ip", "-n", &sa, "-o", "link", "show", "type", "vxlan"]);
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(links.contains("mlxforeign"), "{links}");
    assert!(!links.contains("mlxother"), "{links}");
}

#[test]
fn bad_names_and_addresses_are_refused_before_anything_is_made() {
    // No root needed: nothing may be made, so nothing is. The bridge is
    // a record of one that does not exist.
    let state = tempfile::tempdir().unwrap();
    let lan = state.path().join("lan");
    std::fs::create_dir(&lan).unwrap();
    std::fs::write(
        lan.join("bridge.json"),
        r#"{"bridge": "mlnnotthere0", "token": "0"}"#,
    )
    .unwrap();
    let br = LinuxBridge::open("lan", state.path()).unwrap();
    let good = VxlanSpec {
        device: "mlxok0".into(),
        vni: 42,
        local: "198.51.100.1".parse().unwrap(),
        remote: "198.51.100.2".parse().unwrap(),
    };
    let mut bad = Vec::new();
    for name in ["../x", "-x", "a;b", "a b", "$(x)", "", "a-very-long-name"] {
        bad.push(VxlanSpec {
            device: name.into(),
            ..good.clone()
        });
    }
    for vni in [0, 1 << 24] {
        bad.push(VxlanSpec {
            vni,
            ..good.clone()
        });
    }
    for (local, remote) in [
        ("0.0.0.0", "198.51.100.2"),
        ("198.51.100.1", "224.0.0.1"),
        ("198.51.100.1", "255.255.255.255"),
        ("127.0.0.1", "198.51.100.2"),
        ("198.51.100.1", "198.51.100.1"),
        ("198.51.100.1", "2001:db8::2"),
        ("fe80::1", "fe80::2"),
    ] {
        bad.push(VxlanSpec {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            ..good.clone()
        });
    }
    for spec in bad {
        assert!(
            matches!(
                Vxlan::create(&spec, &br, state.path()),
                Err(Error::InvalidName { .. })
            ),
            "{spec:?} accepted"
        );
        if !spec.device.is_empty() && !spec.device.contains('/') {
            assert!(!sys_net(&spec.device).exists(), "{spec:?} was made");
        }
    }
    // A good spec on a bridge that is not up is refused too, unmade.
    assert!(matches!(
        Vxlan::create(&good, &br, state.path()),
        Err(Error::Backend { .. })
    ));
    assert!(!sys_net("mlxok0").exists());
    assert!(Vxlan::list("lan", state.path()).unwrap().is_empty());
    assert_eq!(std::fs::read_dir(&lan).unwrap().count(), 1);
}
