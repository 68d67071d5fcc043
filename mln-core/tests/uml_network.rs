//! Two real UML guests from the busybox template, on one real vde_switch,
//! configured through `GuestConfig`, ping each other by name; the result is
//! read from their console logs on the host.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{GuestConfig, GuestInterface, GuestUser, HostsEntry};
use mln_core::net::{Switch, SwitchSpec, VdeSwitch};
use mln_core::template::{BusyboxSource, BusyboxTemplate, Template};
use mln_core::uml::Uml;
use mln_core::{Boot, DiskSpec, DomainSpec, DomainState, Hypervisor, InterfaceSpec, MacAddr};

/// The busybox template, built once per test run under target/.
fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        let source = BusyboxSource::find(base.join("download")).expect("busybox");
        BusyboxTemplate::new(source)
            .build(&base)
            .expect("template build")
    })
    .clone()
}

/// Destroys the guests and stops the switches on every way out.
struct Lab {
    uml: Uml,
    guests: Vec<String>,
    switches: Vec<VdeSwitch>,
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

fn wait_for_log(uml: &Uml, name: &str, marker: &str, failure: &str) -> String {
    let log = uml.console_log(name).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(marker) || text.contains(failure) {
            return text;
        }
        let state = uml.info(name).unwrap().state;
        assert!(
            matches!(state, DomainState::Running),
            "{name} is {state} before printing {marker:?}:\n{text}"
        );
        assert!(
            Instant::now() < deadline,
            "{name} never printed {marker:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab {
        uml: Uml::new(dir.path().join("uml")).unwrap(),
        guests: Vec::new(),
        switches: Vec::new(),
    };
    let lan = VdeSwitch::start(&SwitchSpec::new("lan"), dir.path().join("switches")).unwrap();
    lab.switches.push(lan.clone());

    let hosts = [("alice", "10.0.0.1", "bob"), ("bob", "10.0.0.2", "alice")];
    let mut cows: Vec<PathBuf> = Vec::new();
    for (name, addr, peer) in hosts {
        let cow = Overlay::create(
            &template.image,
            dir.path().join(format!("{name}.cow")),
            CowFormat::Uml,
        )
        .unwrap();
        cows.push(cow.path.clone());
        let mac = MacAddr::derived(&format!("lab/{name}/eth0"));
        let mut cfg = GuestConfig::new(name);
        let mut eth0 = GuestInterface::fixed("eth0", addr.parse().unwrap(), 24);
        eth0.mac = Some(mac);
        cfg.interfaces.push(eth0);
        for (h, a, _) in hosts {
            cfg.hosts.push(HostsEntry {
                address: a.parse().unwrap(),
                names: vec![h.to_string()],
            });
        }
        cfg.users.push(GuestUser {
            name: "carol".into(),
            password_hash: "$6$salt$abc".into(),
            home: None,
            uid: Some(1234),
        });
        cfg.startup.push(format!(
            "for i in $(seq 60); do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && \
             echo MLN-PING-OK $(hostname) to {peer} && break; done"
        ));
        cfg.startup
            .push("grep -q '^carol:x:1234:' /etc/passwd && echo MLN-USER-OK".to_string());
        cfg.shutdown.push(format!(
            "echo MLN-SHUTDOWN-RAN-{name} > /root/shutdown-marker; sync"
        ));
        let cfg_disk = dir.path().join(format!("{name}.config"));
        cfg.write_disk(&cfg_disk).unwrap();

        let mut spec = DomainSpec::new(
            name,
            48 << 20,
            Boot::Kernel {
                kernel: Uml::DEFAULT_KERNEL.into(),
                ramdisk: None,
                cmdline: format!("{} quiet", template.cmdline),
            },
        );
        spec.disks.push(cow.disk_spec("ubda"));
        spec.disks.push(DiskSpec {
            path: cfg_disk,
            target: "ubdb".into(),
            readonly: true,
        });
        spec.interfaces.push(InterfaceSpec {
            name: "eth0".into(),
            mac,
            attach: lan.attachment(),
        });
        lab.uml.create(&spec).unwrap();
        lab.guests.push(name.to_string());
    }
    for (name, _, _) in hosts {
        lab.uml.start(name).unwrap();
    }
    for (name, _, peer) in hosts {
        let log = wait_for_log(
            &lab.uml,
            name,
            &format!("MLN-PING-OK {name} to {peer}"),
            "mln: boot finished",
        );
        assert!(
            log.contains(&format!("MLN-PING-OK {name} to {peer}")),
            "{name} could not ping {peer}:\n{log}"
        );
        let log = wait_for_log(&lab.uml, name, "mln: boot finished", "never");
        assert!(log.contains("MLN-USER-OK"), "{name}: user missing:\n{log}");
    }
    // A clean shutdown runs the guests' shutdown lines, whose output lands
    // in their copy-on-write disks (never in the template).
    let template_mtime = std::fs::metadata(&template.image)
        .unwrap()
        .modified()
        .unwrap();
    std::thread::scope(|s| {
        for (name, _, _) in hosts {
            let uml = &lab.uml;
            s.spawn(move || uml.shutdown(name, Duration::from_secs(30)).unwrap());
        }
    });
    lab.guests.clear();
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
