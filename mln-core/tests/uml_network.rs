//! Real UML guests from the busybox template on real vde switches,
//! configured through `GuestConfig`: they ping each other by name, also
//! through a router (the `lab.mln` sample), and the results are read from
//! their console logs on the host.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{
    GuestConfig, GuestFile, GuestInterface, GuestUser, HostsEntry, InterfaceAddress,
};
use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::uml::{self, Uml};
use mln_core::{Hypervisor, InterfaceSpec, MacAddr};

/// The busybox template, built once per test run under target/.
fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        Template::default_in(&base).expect("busybox template")
    })
    .clone()
}

/// One project brought up in a temporary folder; destroys its guests and
/// stops its switches on every way out.
struct Lab {
    dir: tempfile::TempDir,
    uml: Uml,
    guests: Vec<String>,
    switches: Vec<VdeSwitch>,
}

/// One interface of a lab host: name, switch, address/prefix (or `dhcp`),
/// gateway.
struct Nic<'a> {
    name: &'a str,
    switch: &'a str,
    address: &'a str,
    gateway: Option<&'a str>,
}

impl Lab {
    fn new(switches: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let uml = Uml::new(dir.path().join("uml")).unwrap();
        let mut lab = Lab {
            uml,
            guests: Vec::new(),
            switches: Vec::new(),
            dir,
        };
        for s in switches {
            let sw = VdeSwitch::start(&SwitchConfig::new(s), lab.dir.path().join("switches"));
            lab.switches.push(sw.unwrap());
        }
        lab
    }

    fn switch(&self, name: &str) -> &VdeSwitch {
        self.switches.iter().find(|s| s.name() == name).unwrap()
    }

    /// Create host `name`: a COW disk over the template, a configuration
    /// disk from `cfg` with `nics` filled in, interfaces on the switches.
    fn host(&mut self, name: &str, nics: &[Nic], mut cfg: GuestConfig) -> PathBuf {
        let template = template();
        let cow = Overlay::create(
            &template.image,
            self.dir.path().join(format!("{name}.cow")),
            CowFormat::Uml,
        )
        .unwrap();
        let mut interfaces = Vec::new();
        for nic in nics {
            let mac = MacAddr::derived(&format!("lab/{name}/{}", nic.name));
            let mut iface = match nic.address.split_once('/') {
                Some((addr, prefix)) => {
                    GuestInterface::fixed(nic.name, addr.parse().unwrap(), prefix.parse().unwrap())
                }
                None => GuestInterface {
                    name: nic.name.into(),
                    mac: None,
                    address: InterfaceAddress::Dhcp,
                    gateway: None,
                },
            };
            iface.mac = Some(mac);
            iface.gateway = nic.gateway.map(|g| g.parse().unwrap());
            cfg.interfaces.push(iface);
            interfaces.push(InterfaceSpec {
                name: nic.name.into(),
                mac,
                attach: self.switch(nic.switch).attachment(),
            });
        }
        let cfg_disk = self.dir.path().join(format!("{name}.config"));
        cfg.write_disk(&cfg_disk).unwrap();
        let spec = uml::host_spec(name, 64 << 20, &cow, &cfg_disk, interfaces, "quiet");
        self.uml.create(&spec).unwrap();
        self.guests.push(name.to_string());
        cow.path
    }

    fn start_all(&self) {
        for g in &self.guests {
            self.uml.start(g).unwrap();
        }
    }

    /// Shut every guest down cleanly, in parallel, then stop the switches.
    fn stop_all(&mut self) {
        std::thread::scope(|s| {
            for g in &self.guests {
                let uml = &self.uml;
                s.spawn(move || uml.shutdown(g, Duration::from_secs(30)).unwrap());
            }
        });
        self.guests.clear();
        for sw in self.switches.drain(..) {
            sw.stop().unwrap();
        }
    }

    /// The console output of `name` once it shows `marker`.
    fn wait_for_log(&self, name: &str, marker: &str) -> String {
        self.uml
            .wait_console(name, marker, Duration::from_secs(90))
            .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for g in &self.guests {
            let _ = self.uml.destroy(g);
        }
        for s in &self.switches {
            let _ = s.stop();
        }
    }
}

/// Startup lines that ping `peer` until it answers (it may still be
/// booting), then print a marker either way.
fn ping_lines(peer: &str) -> Vec<String> {
    vec![format!(
        "ok=no; for i in $(seq 60); do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && ok=yes && break; done; \
         echo MLN-PING-$ok $(hostname) to {peer}"
    )]
}

fn hosts_entries(hosts: &[(&str, &str)]) -> Vec<HostsEntry> {
    hosts
        .iter()
        .map(|(n, a)| HostsEntry {
            address: a.parse().unwrap(),
            names: vec![n.to_string()],
        })
        .collect()
}

/// Does the (sparse) file hold `needle`? Reads only its data regions.
fn contains_bytes(path: &Path, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::fd::AsRawFd;
    let mut f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as i64;
    let mut at = 0i64;
    while at < len {
        // SAFETY: lseek on a file this function owns.
        let data = unsafe { libc::lseek(f.as_raw_fd(), at, libc::SEEK_DATA) };
        if data < 0 {
            return false;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), data, libc::SEEK_HOLE) };
        let mut buf = vec![0u8; (hole - data) as usize];
        f.seek(SeekFrom::Start(data as u64)).unwrap();
        f.read_exact(&mut buf).unwrap();
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        at = hole;
    }
    false
}

#[test]
fn two_guests_on_one_switch_ping_each_other_by_name() {
    let template = template();
    let mut lab = Lab::new(&["lan"]);
    let hosts = [("alice", "10.0.0.1", "bob"), ("bob", "10.0.0.2", "alice")];
    let mut cows = Vec::new();
    for (name, addr, peer) in hosts {
        let mut cfg = GuestConfig::new(name);
        cfg.hosts = hosts_entries(&[("alice", "10.0.0.1"), ("bob", "10.0.0.2")]);
        cfg.users.push(GuestUser {
            name: "carol".into(),
            password_hash: "$6$salt$abc".into(),
            home: None,
            uid: Some(1234),
        });
        cfg.startup = ping_lines(peer);
        cfg.startup
            .push("grep -q '^carol:x:1234:' /etc/passwd && echo MLN-USER-OK".into());
        cfg.shutdown.push(format!(
            "echo MLN-SHUTDOWN-RAN-{name} > /root/shutdown-marker; sync"
        ));
        let nic = Nic {
            name: "eth0",
            switch: "lan",
            address: &format!("{addr}/24"),
            gateway: None,
        };
        cows.push(lab.host(name, &[nic], cfg));
    }
    lab.start_all();
    for (name, _, peer) in hosts {
        let log = lab.wait_for_log(name, BOOT_FINISHED);
        assert!(
            log.contains(&format!("MLN-PING-yes {name} to {peer}")),
            "{name} could not ping {peer}:\n{log}"
        );
        assert!(log.contains("MLN-USER-OK"), "{name}: user missing:\n{log}");
    }
    // A clean shutdown runs the guests' shutdown lines, whose output lands
    // in their copy-on-write disks, never in the template.
    let template_mtime = std::fs::metadata(&template.image)
        .unwrap()
        .modified()
        .unwrap();
    lab.stop_all();
    for ((name, _, _), cow) in hosts.iter().zip(&cows) {
        let marker = format!("MLN-SHUTDOWN-RAN-{name}");
        assert!(
            contains_bytes(cow, marker.as_bytes()),
            "{name}: shutdown lines did not run"
        );
    }
    assert_eq!(
        std::fs::metadata(&template.image)
            .unwrap()
            .modified()
            .unwrap(),
        template_mtime
    );
    assert!(lab.uml.list().unwrap().is_empty());
}

/// `projects/lab.mln`: a router joins two switches; alice reaches bob only
/// through it (addresses, netmasks, gateways and the router's startup line
/// as the project gives them).
#[test]
fn lab_project_alice_pings_bob_through_the_router() {
    let mut lab = Lab::new(&["left", "right"]);
    let names = [
        ("router", "192.168.1.1"),
        ("alice", "192.168.1.10"),
        ("bob", "192.168.2.10"),
    ];
    let mut router = GuestConfig::new("router");
    router.hosts = hosts_entries(&names);
    router.nameservers.push("192.168.1.1".parse().unwrap());
    router
        .startup
        .push("echo 1 > /proc/sys/net/ipv4/ip_forward".into());
    lab.host(
        "router",
        &[
            Nic {
                name: "eth0",
                switch: "left",
                address: "192.168.1.1/24",
                gateway: None,
            },
            Nic {
                name: "eth1",
                switch: "right",
                address: "192.168.2.1/24",
                gateway: None,
            },
        ],
        router,
    );
    let mut bob = GuestConfig::new("bob");
    bob.hosts = hosts_entries(&names);
    lab.host(
        "bob",
        &[Nic {
            name: "eth0",
            switch: "right",
            address: "192.168.2.10/24",
            gateway: Some("192.168.2.1"),
        }],
        bob,
    );
    let mut alice = GuestConfig::new("alice");
    alice.hosts = hosts_entries(&names);
    alice.startup = ping_lines("bob");
    lab.host(
        "alice",
        &[Nic {
            name: "eth0",
            switch: "left",
            address: "192.168.1.10/24",
            gateway: Some("192.168.1.1"),
        }],
        alice,
    );
    lab.start_all();
    let log = lab.wait_for_log("alice", BOOT_FINISHED);
    assert!(
        log.contains("MLN-PING-yes alice to bob"),
        "alice could not reach bob through the router:\n{log}"
    );
    let uml_dir = lab.uml.state_dir().to_path_buf();
    let switch_dir = lab.dir.path().join("switches");
    lab.stop_all();
    // Nothing is left behind: no guest or switch folder, socket or process.
    assert_eq!(std::fs::read_dir(&uml_dir).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&switch_dir).unwrap().count(), 0);
    let needle = lab.dir.path().display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        assert!(
            stat.contains(") Z") || !String::from_utf8_lossy(&cmd).contains(&needle),
            "left running: {}",
            String::from_utf8_lossy(&cmd)
        );
    }
}

/// A guest with `address dhcp` gets its address, route and resolver from a
/// DHCP server guest whose configuration file arrives through `files`.
#[test]
fn dhcp_guest_gets_its_address_from_a_dhcp_server_guest() {
    let mut lab = Lab::new(&["lan"]);
    let conf = lab.dir.path().join("udhcpd.conf");
    std::fs::write(
        &conf,
        "start 10.1.0.100\nend 10.1.0.110\ninterface eth0\n\
         lease_file /tmp/udhcpd.leases\noption subnet 255.255.255.0\n\
         option router 10.1.0.1\noption dns 10.1.0.1\n",
    )
    .unwrap();
    let mut server = GuestConfig::new("server");
    server.files.push(GuestFile {
        source: conf,
        dest: "/etc/dhcp/udhcpd.conf".into(),
        mode: Some(0o600),
    });
    server.startup = vec![
        "touch /tmp/udhcpd.leases".into(),
        "stat -c 'MLN-MODE %a' /etc/dhcp/udhcpd.conf".into(),
        "udhcpd /etc/dhcp/udhcpd.conf".into(),
    ];
    let nic = |address, gateway| Nic {
        name: "eth0",
        switch: "lan",
        address,
        gateway,
    };
    lab.host("server", &[nic("10.1.0.1/24", None)], server);
    let mut client = GuestConfig::new("client");
    client.startup = vec![
        "for i in $(seq 100); do ip -4 addr show eth0 | grep -q 'inet 10.1.0.1[01][0-9]*/24' && break; sleep 0.2; done".into(),
        "echo MLN-DHCP $(ip -4 -o addr show eth0 | grep -o 'inet [0-9./]*')".into(),
        "ip route | grep -q 'default via 10.1.0.1' && echo MLN-DHCP-ROUTE".into(),
        "grep -q 'nameserver 10.1.0.1' /etc/resolv.conf && echo MLN-DHCP-DNS".into(),
    ];
    lab.host("client", &[nic("dhcp", None)], client);
    lab.start_all();
    let log = lab.wait_for_log("server", BOOT_FINISHED);
    assert!(log.contains("MLN-MODE 600"), "server:\n{log}");
    let log = lab.wait_for_log("client", BOOT_FINISHED);
    let slog = std::fs::read_to_string(lab.uml.console_log("server").unwrap()).unwrap();
    assert!(
        log.contains("MLN-DHCP inet 10.1.0.1"),
        "client:\n{log}\nserver:\n{slog}"
    );
    assert!(log.contains("MLN-DHCP-ROUTE"), "client:\n{log}");
    assert!(log.contains("MLN-DHCP-DNS"), "client:\n{log}");
    lab.stop_all();
}

/// Two projects with the same host names, switch names, addresses and MAC
/// addresses run at once, each in its own state folder, without seeing or
/// touching each other.
#[test]
fn two_projects_with_the_same_names_run_side_by_side() {
    let mut labs = [Lab::new(&["lan"]), Lab::new(&["lan"])];
    for lab in &mut labs {
        for (name, addr, peer) in [
            ("alice", "10.0.0.1/24", "bob"),
            ("bob", "10.0.0.2/24", "alice"),
        ] {
            let mut cfg = GuestConfig::new(name);
            cfg.hosts = hosts_entries(&[("alice", "10.0.0.1"), ("bob", "10.0.0.2")]);
            cfg.startup = ping_lines(peer);
            // Nobody else answers on this switch: at most one reply per ping.
            cfg.startup.push(format!(
                "ping -c 3 {peer} | grep -q DUP || echo MLN-NO-DUPLICATES"
            ));
            let nic = Nic {
                name: "eth0",
                switch: "lan",
                address: addr,
                gateway: None,
            };
            lab.host(name, &[nic], cfg);
        }
    }
    for lab in &labs {
        lab.start_all();
    }
    for lab in &labs {
        for (name, peer) in [("alice", "bob"), ("bob", "alice")] {
            let log = lab.wait_for_log(name, BOOT_FINISHED);
            assert!(
                log.contains(&format!("MLN-PING-yes {name} to {peer}")),
                "{log}"
            );
            assert!(log.contains("MLN-NO-DUPLICATES"), "{log}");
        }
    }
    // Tearing one project down leaves the other running.
    let [first, second] = &mut labs;
    first.stop_all();
    assert!(first.uml.list().unwrap().is_empty());
    let listed = second.uml.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|i| i.state == mln_core::DomainState::Running));
    second.stop_all();
}
