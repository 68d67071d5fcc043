//! Both UML kernel generations on a real `vde_switch`: Debian 12's 6.1
//! (`ethN=vde`) where it boots on this host, and a kernel `mln kernel
//! fetch` got (the vector driver, `vecN`), named by
//! `MLN_UML_FETCHED_KERNEL` (`.ci/test` sets it; with `CI` set it must be
//! there). For each: the guest sees its interfaces as `eth0`, `eth1`,
//! pings its peer, and an interface re-plugged into a restarted switch
//! through the management console comes back under its MLN name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{GuestConfig, GuestInterface};
use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
use mln_core::template::{BusyboxSource, Template};
use mln_core::uml::{self, KernelStore, NetDriver, Uml, UmlKernel};
use mln_core::{Boot, Hypervisor, InterfaceSpec, MacAddr};

/// The env variable naming a fetched (vector driver) kernel.
const FETCHED: &str = "MLN_UML_FETCHED_KERNEL";

fn template() -> Template {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
    Template::default_in(&base).expect("busybox template")
}

/// The kernels to try here: Debian's when a probe boot shows it runs on
/// this CPU, and the fetched one.
fn kernels() -> Vec<PathBuf> {
    let scratch = tempfile::tempdir().unwrap();
    let store = KernelStore::new(scratch.path());
    let BusyboxSource::Binary(busybox) =
        BusyboxSource::find(scratch.path().join("download")).expect("busybox");
    let mut out = Vec::new();
    let distro = Path::new(Uml::DEFAULT_KERNEL);
    match store.probe(distro, &busybox) {
        Ok(o) if o.boots() => out.push(distro.to_path_buf()),
        Ok(o) => eprintln!("{}: {o} on this CPU, not tried", distro.display()),
        Err(e) => testkit::skip("uml_kernels", &format!("{}: {e}", distro.display())),
    }
    match std::env::var_os(FETCHED) {
        Some(k) => out.push(PathBuf::from(k)),
        None => testkit::skip(
            "uml_kernels (vector driver)",
            &format!(
                "{FETCHED} names no fetched kernel (`mln kernel fetch`, then `mln kernel show`)"
            ),
        ),
    }
    out
}

/// Two guests on `lan` (alice also on `spare`, an interface her
/// configuration leaves down), booted with `kernel`.
struct Pair {
    dir: tempfile::TempDir,
    uml: Uml,
    lan: VdeSwitch,
    spare: Option<VdeSwitch>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for g in ["alice", "bob"] {
            let _ = self.uml.destroy(g);
        }
        let _ = self.lan.stop();
        if let Some(s) = &self.spare {
            let _ = s.stop();
        }
    }
}

fn mac(host: &str, nic: &str) -> MacAddr {
    MacAddr::derived(&format!("kernels/{host}/{nic}"))
}

impl Pair {
    fn boot(kernel: &Path) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let switches = dir.path().join("switches");
        let lan = VdeSwitch::start(&SwitchConfig::new("lan"), &switches).unwrap();
        let spare = VdeSwitch::start(&SwitchConfig::new("spare"), &switches).unwrap();
        let uml = Uml::new(dir.path().join("uml")).unwrap();
        let template = template();
        for (name, addr, peer) in [("alice", "10.0.0.1", "10.0.0.2"), ("bob", "10.0.0.2", "")] {
            let cow = Overlay::create(
                &template.image,
                dir.path().join(format!("{name}.cow")),
                CowFormat::Uml,
            )
            .unwrap();
            let mut cfg = GuestConfig::new(name);
            let mut eth0 = GuestInterface::fixed("eth0", addr.parse().unwrap(), 24);
            eth0.mac = Some(mac(name, "eth0"));
            cfg.interfaces.push(eth0);
            let mut nics = vec![InterfaceSpec {
                name: "eth0".into(),
                mac: mac(name, "eth0"),
                attach: lan.attachment(),
            }];
            if !peer.is_empty() {
                // A watcher printing eth1's name each time it changes, and
                // a ping over eth0 once bob answers.
                cfg.startup.push(
                    "(last=x; while sleep 0.2; do now=$(ls /sys/class/net | tr '\\n' ' '); \
                     [ \"$now\" != \"$last\" ] && echo \"MLN-NETDEVS: $now\"; last=$now; done) &"
                        .into(),
                );
                cfg.startup.push(format!(
                    "ok=no; for i in $(seq 60); do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && ok=yes && break; done; \
                     echo MLN-PING-$ok"
                ));
                nics.push(InterfaceSpec {
                    name: "eth1".into(),
                    mac: mac(name, "eth1"),
                    attach: spare.attachment(),
                });
            }
            let cfg_disk = dir.path().join(format!("{name}.config"));
            cfg.write_disk(&cfg_disk).unwrap();
            let mut spec = uml::host_spec(name, 64 << 20, &cow, &cfg_disk, nics, "quiet");
            if let Boot::Kernel { kernel: k, .. } = &mut spec.boot {
                *k = kernel.to_path_buf();
            }
            spec.boot_marker = template.boot_marker.clone();
            uml.create(&spec).unwrap();
            uml.start(name).unwrap();
        }
        Pair {
            dir,
            uml,
            lan,
            spare: Some(spare),
        }
    }
}

#[test]
fn every_kernel_generation_names_interfaces_eth_pings_and_replugs() {
    for kernel in kernels() {
        let k = UmlKernel::inspect(&kernel).unwrap();
        eprintln!("{}: UML {} ({:?})", kernel.display(), k.version, k.net);
        let mut pair = Pair::boot(&kernel);
        let log = pair
            .uml
            .wait_console("alice", "MLN-PING-", Duration::from_secs(120))
            .unwrap();
        assert!(log.contains("MLN-PING-yes"), "{}: {log}", k.version);
        // The watcher's first line comes 0.2 s after it starts: the ping
        // may answer before it.
        let log = pair
            .uml
            .wait_console("alice", "MLN-NETDEVS:", Duration::from_secs(30))
            .unwrap();
        let devs = log
            .lines()
            .rfind(|l| l.starts_with("MLN-NETDEVS:"))
            .unwrap_or_default()
            .to_string();
        assert!(
            devs.contains("eth0") && devs.contains("eth1") && !devs.contains("vec"),
            "{}: the guest's devices are {devs}",
            k.version
        );

        // The spare switch dies and comes back; alice's eth1 (down in the
        // guest) is plugged into it again without a restart.
        let pid = pair.uml.info("alice").unwrap().id;
        let spare = pair.spare.take().unwrap();
        spare.stop().unwrap();
        let switches = pair.dir.path().join("switches");
        let spare = VdeSwitch::start(&SwitchConfig::new("spare"), &switches).unwrap();
        let socket = match spare.attachment() {
            mln_core::Attachment::Vde(s) => s,
            other => panic!("{other:?}"),
        };
        pair.spare = Some(spare);
        let before = std::fs::metadata(pair.uml.console_log("alice").unwrap())
            .unwrap()
            .len() as usize;
        pair.uml
            .replug("alice", "eth1", &socket, mac("alice", "eth1"))
            .unwrap();
        assert_eq!(pair.uml.info("alice").unwrap().id, pid, "not restarted");
        let mut after = String::new();
        for _ in 0..if k.net == NetDriver::Vector { 100 } else { 20 } {
            let text = std::fs::read(pair.uml.console_log("alice").unwrap()).unwrap();
            after = String::from_utf8_lossy(&text[before.min(text.len())..]).into_owned();
            // The rename is printed first and the watcher (every 0.2 s)
            // reports the renamed devices after it: wait for both.
            let settled = match k.net {
                NetDriver::Vector => {
                    after.contains("mln: network device vec1 is eth1")
                        && after
                            .lines()
                            .rfind(|l| l.starts_with("MLN-NETDEVS:"))
                            .is_some_and(|l| !l.contains("vec"))
                }
                // Same name throughout: give the watcher time to see any change.
                NetDriver::Eth => false,
            };
            if settled {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let seen: Vec<&str> = after
            .lines()
            .filter(|l| l.starts_with("MLN-NETDEVS:"))
            .collect();
        if k.net == NetDriver::Vector {
            // The kernel's new device appeared and the template's hot-plug
            // helper renamed it.
            assert!(
                after.contains("mln: network device vec1 is eth1"),
                "{}: no rename after the re-plug: {after}",
                k.version
            );
        }
        // The devices now (the watcher prints only changes).
        let now = seen.last().copied().unwrap_or(devs.as_str());
        assert!(
            now.contains("eth1") && !now.contains("vec"),
            "{}: after the re-plug the devices are {now} ({seen:?})",
            k.version
        );
    }
}
