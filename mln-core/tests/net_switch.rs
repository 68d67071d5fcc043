//! Real `vde_switch` processes: hub versus learning switch, observed through
//! ports this test plugs in itself (the vde wire protocol: a control stream
//! to `ctl/ctl`, then Ethernet frames as unix datagrams), and a killed
//! switch reported as gone.

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mln_core::net::{JoinedSwitch, Switch, SwitchConfig, SwitchStatus, VdeSwitch};
use mln_core::uml::Uml;
use mln_core::{Attachment, Boot, DomainSpec, Error, Hypervisor, InterfaceSpec, MacAddr};

/// One switch port: the control connection (the port lives as long as it
/// is open) and the datagram socket frames come and go on.
struct Port {
    _control: UnixStream,
    data: UnixDatagram,
    switch_data: PathBuf,
    mac: [u8; 6],
}

impl Port {
    fn plug(ctl_dir: &Path, own: &Path, mac: [u8; 6]) -> Port {
        let data = UnixDatagram::bind(own).unwrap();
        data.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut control = UnixStream::connect(ctl_dir.join("ctl")).unwrap();
        // struct request_v3 { u32 magic, u32 version, u32 type,
        //   struct sockaddr_un sock, char description[128] }, packed.
        let mut req = Vec::new();
        req.extend_from_slice(&0xfeed_faceu32.to_ne_bytes());
        req.extend_from_slice(&3u32.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&sockaddr_un(own));
        let mut descr = b"mln net test".to_vec();
        descr.resize(128, 0);
        req.extend_from_slice(&descr);
        control.write_all(&req).unwrap();
        let mut reply = [0u8; 110];
        control.read_exact(&mut reply).unwrap();
        let path = &reply[2..];
        let end = path.iter().position(|&b| b == 0).unwrap();
        let switch_data = PathBuf::from(String::from_utf8(path[..end].to_vec()).unwrap());
        Port {
            _control: control,
            data,
            switch_data,
            mac,
        }
    }

    fn send(&self, dst: [u8; 6], payload: &str) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&self.mac);
        frame.extend_from_slice(&[0x88, 0xb5]);
        frame.extend_from_slice(payload.as_bytes());
        frame.resize(60, 0);
        self.data.send_to(&frame, &self.switch_data).unwrap();
    }

    /// The payload of the next frame (panics when none comes at all).
    fn recv(&self) -> String {
        let mut buf = [0u8; 1600];
        let n = self.data.recv(&mut buf).expect("no frame arrived");
        let payload = &buf[14..n];
        let end = payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(payload.len());
        String::from_utf8_lossy(&payload[..end]).into_owned()
    }
}

fn sockaddr_un(path: &Path) -> [u8; 110] {
    let mut a = [0u8; 110];
    a[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    let p = path.to_str().unwrap().as_bytes();
    a[2..2 + p.len()].copy_from_slice(p);
    a
}

/// Stops the switch on every way out of a test.
struct Running(VdeSwitch);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

const BROADCAST: [u8; 6] = [0xff; 6];
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];

/// What port C sees after A sends B a unicast frame and then a broadcast
/// marker, once the switch knows where B is.
fn third_port_sees(hub: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SwitchConfig::new("lan");
    spec.hub = hub;
    let sw = Running(VdeSwitch::start(&spec, dir.path()).unwrap());
    assert!(matches!(sw.0.status(), SwitchStatus::Running { .. }));
    let Attachment::Vde(ctl) = sw.0.attachment() else {
        panic!("a vde switch attaches through a socket folder")
    };
    let a = Port::plug(&ctl, &dir.path().join("a"), MAC_A);
    let b = Port::plug(&ctl, &dir.path().join("b"), MAC_B);
    let c = Port::plug(&ctl, &dir.path().join("c"), MAC_C);
    // B announces itself; once A has it, the switch has learned B's port.
    b.send(BROADCAST, "hello from b");
    assert_eq!(a.recv(), "hello from b");
    assert_eq!(c.recv(), "hello from b");
    a.send(MAC_B, "unicast for b");
    a.send(BROADCAST, "marker");
    assert_eq!(b.recv(), "unicast for b");
    // Frames from one port are forwarded in order: C's next frame is the
    // unicast if it was flooded, else the marker.
    c.recv()
}

#[test]
fn hub_floods_unicast_to_every_port() {
    assert_eq!(third_port_sees(true), "unicast for b");
}

#[test]
fn switch_forwards_unicast_only_to_its_owner() {
    assert_eq!(third_port_sees(false), "marker");
}

#[test]
fn killed_switch_is_reported_gone_and_stop_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let started = VdeSwitch::start(&SwitchConfig::new("lan"), dir.path()).unwrap();
    let _guard = Running(started.clone());
    // Found again from the state folder, as a later process would.
    let found = VdeSwitch::open("lan", dir.path()).unwrap();
    let SwitchStatus::Running { pid } = found.status() else {
        panic!("switch not running")
    };
    assert_eq!(VdeSwitch::list(dir.path()).unwrap().len(), 1);
    assert!(matches!(
        VdeSwitch::start(&SwitchConfig::new("lan"), dir.path()),
        Err(Error::AlreadyExists { .. })
    ));
    // SAFETY: signalling the switch process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let mut reported = found.status();
    for _ in 0..500 {
        if reported == SwitchStatus::Gone {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        reported = found.status();
    }
    assert_eq!(reported, SwitchStatus::Gone);
    // A guest is not started onto a dead switch (its socket file is still
    // there, but nobody answers).
    let uml = Uml::new(dir.path().join("uml")).unwrap();
    let mut spec = DomainSpec::new("g", 64 << 20, Boot::kernel(Uml::default_kernel()));
    spec.interfaces.push(InterfaceSpec {
        name: "eth0".into(),
        mac: MacAddr::derived("t/g/eth0"),
        attach: found.attachment(),
    });
    match uml.create(&spec) {
        Err(Error::Backend { message, .. }) => assert!(message.contains("does not answer")),
        other => panic!("{other:?}"),
    }
    // A dead switch can be started again in place, and stopped for good.
    let again = VdeSwitch::start(&SwitchConfig::new("lan"), dir.path()).unwrap();
    assert!(matches!(again.status(), SwitchStatus::Running { .. }));
    again.stop().unwrap();
    assert!(!dir.path().join("lan").exists());
    assert!(matches!(
        VdeSwitch::open("lan", dir.path()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn tap_port_appears_on_the_host_and_goes_with_the_switch() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if !root || !Path::new("/dev/net/tun").exists() {
        return testkit::skip(
            "tap_port_appears_on_the_host_and_goes_with_the_switch",
            "a tap port needs root and /dev/net/tun",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let tap = format!("mlnt{}", std::process::id() % 100_000);
    let mut spec = SwitchConfig::new("lan");
    spec.tap = Some(tap.clone());
    let sw = Running(VdeSwitch::start(&spec, dir.path()).unwrap());
    assert!(Path::new("/sys/class/net").join(&tap).exists());
    sw.0.stop().unwrap();
    assert!(!Path::new("/sys/class/net").join(&tap).exists());
}

/// MLN's `switch NAME { socket PATH }`: a project's switch that is
/// another one's socket carries frames to it, and forgetting it never
/// stops the other switch.
#[test]
fn a_joined_switch_is_the_other_switch_and_never_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let theirs =
        Running(VdeSwitch::start(&SwitchConfig::new("lab"), dir.path().join("lab")).unwrap());
    let ours = dir.path().join("project");
    let lan = JoinedSwitch::join("lan", theirs.0.ctl_dir(), &ours).unwrap();
    assert_eq!(lan.status(), SwitchStatus::Up);
    let Attachment::Vde(ctl) = lan.attachment() else {
        panic!("a joined switch attaches through the other's socket folder")
    };
    assert_eq!(ctl, theirs.0.ctl_dir());
    // A port on the project's switch and one on the lab's see each other.
    let a = Port::plug(&ctl, &dir.path().join("a"), MAC_A);
    let b = Port::plug(&theirs.0.ctl_dir(), &dir.path().join("b"), MAC_B);
    a.send(BROADCAST, "from the project");
    assert_eq!(b.recv(), "from the project");
    // Listed as the project's, and not as a vde_switch it runs.
    let listed = JoinedSwitch::list(&ours).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].socket(), theirs.0.ctl_dir());
    assert!(VdeSwitch::list(&ours).unwrap().is_empty());

    lan.stop().unwrap();
    assert!(JoinedSwitch::list(&ours).unwrap().is_empty());
    assert!(theirs.0.status().is_up(), "the other switch was stopped");

    // Seen gone once the other switch stops.
    let again = JoinedSwitch::join("lan", theirs.0.ctl_dir(), &ours).unwrap();
    theirs.0.stop().unwrap();
    assert_eq!(again.status(), SwitchStatus::Gone);
}
