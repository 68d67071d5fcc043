//! The QEMU backend on real guests (TCG here; KVM where a probe shows it
//! works): the busybox template as a qcow2 overlay, a guest configuration
//! disk on `vdb`, an interface on a real `vde_switch`, booted by Debian's
//! kernel with MLN's initramfs ([`GuestKernel`], fetched from Debian's
//! archive on first use). Boot confirmation, pause and resume, the
//! balloon, clean shutdown, destroy, save and restore, migration between
//! two backends, a QEMU guest pinging a UML guest on one switch, and one
//! on a Linux bridge through its tap (as root).
//!
//! Guests run a counter from a startup line (`MLN-COUNT n MemTotal: ...`
//! once a second on the console): it stops while a guest is paused and
//! goes on, not from 1, after a restore or a migration.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{GuestConfig, GuestInterface};
use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
use mln_core::qemu::{self, GuestKernel, Qemu};
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::uml::{self, Uml};
use mln_core::{BootStatus, DomainSpec, DomainState, Error, Hypervisor, InterfaceSpec, MacAddr};
use testkit::{processes_under, KillUnder};

const MIB: u64 = 1 << 20;
/// Every wait on a guest is bounded by this (TCG on a busy 2-core machine
/// boots in 5 to 20 s).
const WAIT: Duration = Duration::from_secs(180);

/// Startup line: a counter, with the guest's memory, once a second.
const COUNTER: &str = "(i=0; while true; do i=$((i+1)); \
     echo \"MLN-COUNT $i $(grep MemTotal /proc/meminfo)\"; sleep 1; done) &";

fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        Template::default_in(&base).expect("busybox template")
    })
    .clone()
}

fn kernel() -> GuestKernel {
    static K: OnceLock<GuestKernel> = OnceLock::new();
    K.get_or_init(|| {
        let store = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-kernels");
        let fetching = GuestKernel::find(&store).is_none();
        let started = Instant::now();
        let kernel = GuestKernel::fetch(&store).expect("guest kernel");
        if fetching {
            eprintln!("guest kernel fetched and built in {:?}", started.elapsed());
        }
        kernel
    })
    .clone()
}

/// Why this test cannot run here, if it cannot.
fn missing() -> Option<String> {
    testkit::missing_tool(&[
        "/usr/bin/qemu-system-x86_64",
        "/usr/bin/qemu-img",
        "/usr/bin/vde_switch",
        "/usr/bin/apt-get",
    ])
}

/// Guests, backends and a switch in one temporary folder, destroyed on
/// every way out (and whatever still runs under the folder is killed).
struct Lab {
    dir: tempfile::TempDir,
    switch: VdeSwitch,
    guests: Vec<(Box<dyn Hypervisor>, String)>,
    _kill: KillUnder,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let switch =
            VdeSwitch::start(&SwitchConfig::new("lan"), dir.path().join("switches")).unwrap();
        Lab {
            _kill: KillUnder(dir.path().to_path_buf()),
            switch,
            guests: Vec::new(),
            dir,
        }
    }

    fn backend(&self, folder: &str) -> Qemu {
        Qemu::new(self.dir.path().join(folder))
            .unwrap()
            .with_guest_kernel(&kernel())
    }

    /// Create QEMU guest `name` on `qemu`: memory up to 256 MiB, address
    /// 10.0.0.`host`/24 on the switch, `startup` and `shutdown` lines.
    fn create(
        &self,
        qemu: &Qemu,
        name: &str,
        host: u8,
        startup: &[&str],
        shutdown: &[&str],
    ) -> DomainSpec {
        self.create_with(qemu, name, host, startup, shutdown, |_| {})
    }

    /// [`Lab::create`] with `edit` applied to the spec first.
    fn create_with(
        &self,
        qemu: &Qemu,
        name: &str,
        host: u8,
        startup: &[&str],
        shutdown: &[&str],
        edit: impl FnOnce(&mut DomainSpec),
    ) -> DomainSpec {
        let cow = self.dir.path().join(format!("{name}.qcow2"));
        let root = Overlay::create(template().image, &cow, CowFormat::Qcow2).unwrap();
        let config = self.config(name, host, startup, shutdown);
        let mut spec = qemu::host_spec(
            name,
            256 * MIB,
            &kernel(),
            &root,
            &config,
            vec![self.nic(name)],
            "quiet",
        );
        edit(&mut spec);
        qemu.create(&spec).unwrap();
        spec
    }

    fn nic(&self, name: &str) -> InterfaceSpec {
        InterfaceSpec {
            name: "eth0".into(),
            mac: MacAddr::derived(&format!("qemu-test/{name}/eth0")),
            attach: self.switch.attachment(),
        }
    }

    fn config(&self, name: &str, host: u8, startup: &[&str], shutdown: &[&str]) -> PathBuf {
        let mut cfg = GuestConfig::new(name);
        let mut eth0 = GuestInterface::fixed("eth0", [10, 0, 0, host].into(), 24);
        eth0.mac = Some(MacAddr::derived(&format!("qemu-test/{name}/eth0")));
        cfg.interfaces.push(eth0);
        cfg.startup = startup.iter().map(|s| s.to_string()).collect();
        cfg.shutdown = shutdown.iter().map(|s| s.to_string()).collect();
        let path = self.dir.path().join(format!("{name}.config"));
        cfg.write_disk(&path).unwrap();
        path
    }

    /// Destroy `name` on its backend when the lab goes.
    fn guard(&mut self, backend: Box<dyn Hypervisor>, name: &str) {
        self.guests.push((backend, name.to_string()));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (backend, name) in &self.guests {
            let _ = backend.destroy(name);
        }
        let _ = self.switch.stop();
    }
}

/// Poll `boot_status` until the guest confirms its boot.
fn wait_booted(backend: &dyn Hypervisor, name: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match backend.boot_status(name).unwrap() {
            BootStatus::Booted => return,
            BootStatus::Booting => {}
            failed => panic!("{name} did not boot: {failed:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not boot within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The counter lines of the guest's current console: (count, MemTotal KiB).
fn counts(qemu: &Qemu, name: &str) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(qemu.console_log(name).unwrap()).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split("MLN-COUNT ").nth(1))
        .filter_map(|rest| {
            let w: Vec<&str> = rest.split_whitespace().collect();
            Some((w.first()?.parse().ok()?, w.get(2)?.parse().ok()?))
        })
        .collect()
}

/// Wait until the counter passes `above`; returns the last line.
fn wait_count(qemu: &Qemu, name: &str, above: u64) -> (u64, u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(&last) = counts(qemu, name).last() {
            if last.0 > above {
                return last;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name}: the counter never passed {above}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pause_resume_balloon_and_clean_shutdown() {
    if let Some(why) = missing() {
        return testkit::skip("pause_resume_balloon_and_clean_shutdown", &why);
    }
    let started = Instant::now();
    let mut lab = Lab::new();
    let qemu = lab.backend("qemu");
    // Pinned to the first CPU, as Xen's `cpus=` pins (the whole QEMU
    // process: its vCPU threads and its I/O).
    lab.create_with(
        &qemu,
        "life",
        1,
        &[COUNTER],
        &["echo MLN-SHUTDOWN-RAN"],
        |s| s.cpus = vec![0],
    );
    lab.guard(Box::new(qemu.clone()), "life");
    let info = qemu.info("life").unwrap();
    assert_eq!((info.state, info.id), (DomainState::Paused, 0));
    assert_eq!(qemu.acceleration("life").unwrap(), None);

    qemu.start("life").unwrap();
    wait_booted(&qemu, "life");
    let info = qemu.info("life").unwrap();
    assert_eq!(info.state, DomainState::Running);
    assert_eq!(info.backend.to_string(), "qemu");
    assert!(qemu.acceleration("life").unwrap().is_some());
    let status = std::fs::read_to_string(format!("/proc/{}/status", info.id)).unwrap();
    assert!(
        status.contains("\nCpus_allowed_list:\t0\n"),
        "QEMU is not pinned to CPU 0:\n{status}"
    );
    assert!(matches!(qemu.start("life"), Err(Error::WrongState { .. })));

    // A second backend over the same folder (a later process) sees it.
    let later = Qemu::new(qemu.state_dir()).unwrap();
    let listed = later.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].id), ("life", info.id));

    // Paused, the counter stands still; resumed, it goes on.
    let (before, _) = wait_count(&qemu, "life", 1);
    qemu.pause("life").unwrap();
    assert_eq!(later.info("life").unwrap().state, DomainState::Paused);
    assert!(matches!(qemu.pause("life"), Err(Error::WrongState { .. })));
    let frozen = counts(&qemu, "life").last().unwrap().0;
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(counts(&qemu, "life").last().unwrap().0, frozen);
    assert!(frozen <= before + 1);
    later.resume("life").unwrap();
    assert_eq!(qemu.info("life").unwrap().state, DomainState::Running);
    wait_count(&qemu, "life", frozen);

    // The balloon: 96 MiB out, seen by the guest and reported by info.
    let (count, total_before) = *counts(&qemu, "life").last().unwrap();
    qemu.set_memory("life", 160 * MIB).unwrap();
    let deadline = Instant::now() + WAIT;
    while qemu.info("life").unwrap().memory != 160 * MIB {
        assert!(
            Instant::now() < deadline,
            "the balloon never reached 160 MiB"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + WAIT;
    let total_after = loop {
        let (n, total) = wait_count(&qemu, "life", count);
        if total + 80 * 1024 < total_before {
            break total;
        }
        assert!(
            Instant::now() < deadline,
            "MemTotal stayed {total} KiB (was {total_before}) at count {n}"
        );
    };
    assert!(total_after < total_before);
    assert!(qemu.set_memory("life", 512 * MIB).is_err());
    assert!(matches!(
        qemu.set_vcpus("life", 2),
        Err(Error::Unsupported { .. })
    ));

    // Clean shutdown: the power button, the guest's shutdown lines, power
    // off; nothing killed, nothing left.
    let pid = info.id;
    let mut log = std::fs::File::open(qemu.console_log("life").unwrap()).unwrap();
    let asked = Instant::now();
    qemu.shutdown("life", Duration::from_secs(90)).unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(80),
        "killed, not shut down"
    );
    let mut console = String::new();
    std::io::Read::read_to_string(&mut log, &mut console).unwrap();
    let at = |needle: &str| {
        console
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} on the console:\n{console}"))
    };
    assert!(at(BOOT_FINISHED) < at("MLN-SHUTDOWN-RAN"));
    assert!(at("MLN-SHUTDOWN-RAN") < at("mln: halting"));
    assert!(at("mln: halting") < at("reboot: Power down"));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(matches!(qemu.info("life"), Err(Error::NotFound { .. })));
    assert!(qemu.list().unwrap().is_empty());
    assert_eq!(processes_under(qemu.state_dir()), Vec::<u32>::new());
    eprintln!(
        "pause_resume_balloon_and_clean_shutdown: {:?}",
        started.elapsed()
    );
}

#[test]
fn save_restore_and_destroy_keep_the_guest_going() {
    if let Some(why) = missing() {
        return testkit::skip("save_restore_and_destroy_keep_the_guest_going", &why);
    }
    let started = Instant::now();
    let mut lab = Lab::new();
    let qemu = lab.backend("qemu");
    let spec = lab.create(&qemu, "saved", 2, &[COUNTER], &[]);
    lab.guard(Box::new(qemu.clone()), "saved");
    qemu.start("saved").unwrap();
    wait_booted(&qemu, "saved");
    let (before, _) = wait_count(&qemu, "saved", 3);
    let pid = qemu.info("saved").unwrap().id;

    let state = lab.dir.path().join("saved.state");
    qemu.save("saved", &state).unwrap();
    assert!(matches!(qemu.info("saved"), Err(Error::NotFound { .. })));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(std::fs::metadata(&state).unwrap().len() > MIB);

    let info = qemu.restore(&spec, &state).unwrap();
    assert_eq!(info.state, DomainState::Running);
    assert_ne!(info.id, pid);
    // The counter goes on from where it was: no new boot, no new count.
    let first = wait_count(&qemu, "saved", 0).0;
    let all = counts(&qemu, "saved");
    assert!(
        all[0].0 >= before,
        "counter restarted: {all:?} after {before}"
    );
    assert!(first >= before);
    let log = std::fs::read_to_string(qemu.console_log("saved").unwrap()).unwrap();
    assert!(
        !log.contains(BOOT_FINISHED),
        "the restored guest booted anew"
    );

    let pid = info.id;
    qemu.destroy("saved").unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "{:?}",
        std::fs::read_to_string(format!("/proc/{pid}/status"))
    );
    assert!(matches!(qemu.info("saved"), Err(Error::NotFound { .. })));
    assert_eq!(processes_under(qemu.state_dir()), Vec::<u32>::new());
    eprintln!(
        "save_restore_and_destroy_keep_the_guest_going: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_guest_migrates_between_two_backends_over_a_socketpair() {
    if let Some(why) = missing() {
        return testkit::skip(
            "a_guest_migrates_between_two_backends_over_a_socketpair",
            &why,
        );
    }
    let started = Instant::now();
    let mut lab = Lab::new();
    let source = lab.backend("source");
    let target = lab.backend("target");
    let spec = lab.create(&source, "mover", 3, &[COUNTER], &[]);
    lab.guard(Box::new(source.clone()), "mover");
    lab.guard(Box::new(target.clone()), "mover");
    source.start("mover").unwrap();
    wait_booted(&source, "mover");
    let (before, _) = wait_count(&source, "mover", 3);

    let (send_end, receive_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let received = std::thread::scope(|s| {
        let receiver = s.spawn(|| target.migrate_receive(&spec, receive_end.as_fd()));
        let sent = source.migrate_send("mover", send_end.as_fd());
        let received = receiver.join().unwrap();
        sent.unwrap();
        received.unwrap()
    });
    assert_eq!(received.state, DomainState::Running);
    assert!(matches!(source.info("mover"), Err(Error::NotFound { .. })));
    assert_eq!(processes_under(source.state_dir()), Vec::<u32>::new());
    assert_eq!(target.info("mover").unwrap().id, received.id);
    let now = wait_count(&target, "mover", before).0;
    assert!(
        counts(&target, "mover")[0].0 >= before,
        "counter restarted after {before}"
    );
    assert!(now > before);
    target.destroy("mover").unwrap();
    assert_eq!(processes_under(target.state_dir()), Vec::<u32>::new());
    eprintln!(
        "a_guest_migrates_between_two_backends_over_a_socketpair: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_qemu_guest_and_a_uml_guest_ping_each_other_on_one_switch() {
    if let Some(why) = missing().or_else(|| testkit::missing_tool(&["/usr/bin/linux.uml"])) {
        return testkit::skip(
            "a_qemu_guest_and_a_uml_guest_ping_each_other_on_one_switch",
            &why,
        );
    }
    let started = Instant::now();
    let mut lab = Lab::new();
    let qemu = lab.backend("qemu");
    let uml = Uml::new(lab.dir.path().join("uml")).unwrap();
    let ping = |peer: &str| {
        format!(
            "ok=no; for i in $(seq 90); do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && ok=yes && break; done; \
             echo MLN-PING-$ok $(hostname) to {peer}"
        )
    };
    lab.create(&qemu, "kvmguest", 1, &[&ping("10.0.0.2")], &[]);
    lab.guard(Box::new(qemu.clone()), "kvmguest");
    let cow = Overlay::create(
        template().image,
        lab.dir.path().join("umlguest.cow"),
        CowFormat::Uml,
    )
    .unwrap();
    let config = lab.config("umlguest", 2, &[&ping("10.0.0.1")], &[]);
    let spec = uml::host_spec(
        "umlguest",
        64 * MIB,
        &cow,
        &config,
        vec![lab.nic("umlguest")],
        "quiet",
    );
    uml.create(&spec).unwrap();
    lab.guard(Box::new(uml.clone()), "umlguest");
    // UML first, and booted far enough to hold its disks (and a lock on
    // the template both overlays share): QEMU must start all the same.
    uml.start("umlguest").unwrap();
    uml.wait_console("umlguest", "mln: applying the guest configuration", WAIT)
        .unwrap();
    qemu.start("kvmguest").unwrap();
    let from_qemu = qemu.wait_console("kvmguest", BOOT_FINISHED, WAIT).unwrap();
    let from_uml = uml.wait_console("umlguest", BOOT_FINISHED, WAIT).unwrap();
    assert!(
        from_qemu.contains("MLN-PING-yes kvmguest to 10.0.0.2"),
        "{from_qemu}"
    );
    assert!(
        from_uml.contains("MLN-PING-yes umlguest to 10.0.0.1"),
        "{from_uml}"
    );
    qemu.destroy("kvmguest").unwrap();
    uml.destroy("umlguest").unwrap();
    eprintln!(
        "a_qemu_guest_and_a_uml_guest_ping_each_other_on_one_switch: {:?}",
        started.elapsed()
    );
}

#[test]
fn the_doctor_probes_kvm_with_the_guest_kernel_and_names_what_guests_get() {
    if let Some(why) = missing() {
        return testkit::skip("the_doctor_probes_kvm_with_the_guest_kernel", &why);
    }
    let kernel = kernel();
    let store = kernel.kernel.parent().unwrap().parent().unwrap();
    let started = Instant::now();
    let report = mln_core::doctor::diagnose(&mln_core::doctor::DoctorOptions::new(store));
    let kvm = report.checks.iter().find(|c| c.subject == "kvm").unwrap();
    let chosen = Qemu::new(tempfile::tempdir().unwrap().path())
        .unwrap()
        .with_guest_kernel(&kernel)
        .chosen_acceleration();
    assert_eq!(
        kvm.summary,
        format!("QEMU guests run here with {chosen} acceleration")
    );
    let probe_kernel = format!("probe kernel: {}", kernel.kernel.display());
    assert!(kvm.details.contains(&probe_kernel), "{:?}", kvm.details);
    if mln_core::qemu::accel::kvm_device_opens() {
        assert!(
            kvm.details
                .iter()
                .any(|d| d.starts_with("probe: a Linux guest under -accel kvm")),
            "{:?}",
            kvm.details
        );
    }
    eprintln!(
        "doctor: {} ({:?}): {:?}",
        kvm.summary,
        started.elapsed(),
        kvm.details
    );
    // The probe's own initramfs really says its marker (here under TCG),
    // so a KVM that boots it is seen as one.
    let out = std::process::Command::new("timeout")
        .args(["60", "qemu-system-x86_64", "-accel", "tcg", "-m", "128"])
        .args(["-display", "none", "-nodefaults", "-no-user-config"])
        .args(["-serial", "stdio", "-no-reboot", "-kernel"])
        .arg(&kernel.kernel)
        .arg("-initrd")
        .arg(&kernel.probe_initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(mln_core::qemu::accel::PROBE_MARKER), "{said}");
}

#[test]
fn a_guest_that_cannot_boot_fails_with_its_console() {
    if let Some(why) = missing() {
        return testkit::skip("a_guest_that_cannot_boot_fails_with_its_console", &why);
    }
    let mut lab = Lab::new();
    let qemu = lab.backend("qemu");
    let mut spec = lab.create(&qemu, "broken", 4, &[], &[]);
    qemu.destroy("broken").unwrap();
    // Its initramfs looks for a root disk it does not have, for a second
    // rather than the default ten.
    spec.boot = kernel().boot("root=/dev/vdk rw quiet mln.rootwait=1");
    qemu.create(&spec).unwrap();
    lab.guard(Box::new(qemu.clone()), "broken");
    qemu.start("broken").unwrap();
    let deadline = Instant::now() + WAIT;
    let (state, console) = loop {
        match qemu.boot_status("broken").unwrap() {
            BootStatus::Failed { state, console, .. } => break (state, console),
            BootStatus::Booted => panic!("booted without a root disk"),
            BootStatus::Booting => {}
        }
        assert!(Instant::now() < deadline, "never failed");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state, DomainState::Shutdown);
    assert!(
        console.contains("mln-initramfs: the root disk /dev/vdk never appeared"),
        "{console}"
    );
    assert!(matches!(
        qemu.wait_console("broken", BOOT_FINISHED, WAIT),
        Err(Error::Backend { .. })
    ));
    qemu.destroy("broken").unwrap();
    assert_eq!(processes_under(qemu.state_dir()), Vec::<u32>::new());
}

/// A QEMU guest on a Linux bridge (a switch that serves Xen guests, where
/// `mln` is root): QEMU makes a tap of its own, the backend plugs it into
/// the bridge, and this machine, with an address on the bridge, reaches
/// the guest. The tap goes with the guest.
#[test]
fn a_qemu_guest_on_a_linux_bridge_is_reached_through_its_tap() {
    if let Some(why) = missing() {
        return testkit::skip("a_qemu_guest_on_a_linux_bridge", &why);
    }
    if !mln_core::net::LinuxBridge::can_manage() {
        return testkit::skip(
            "a_qemu_guest_on_a_linux_bridge",
            "making a bridge and a tap needs root (CAP_NET_ADMIN)",
        );
    }
    let mut lab = Lab::new();
    let bridges = lab.dir.path().join("bridges");
    let name = format!("mlnqt{}", std::process::id() % 100_000);
    /// Deletes the bridge on every way out.
    struct Deleted(mln_core::net::LinuxBridge);
    impl Drop for Deleted {
        fn drop(&mut self) {
            let _ = self.0.stop();
        }
    }
    let bridge = Deleted(
        mln_core::net::LinuxBridge::start(&SwitchConfig::new("lan"), &name, &bridges).unwrap(),
    );
    // The host's side of the bridge: 10.203.0.1, the guest 10.203.0.2
    // (a network nothing else here uses).
    testkit::run_ok(&["ip", "addr", "add", "10.203.0.1/24", "dev", &name]);
    let qemu = lab.backend("qemu");
    let cow = lab.dir.path().join("bridged.qcow2");
    let root = Overlay::create(template().image, &cow, CowFormat::Qcow2).unwrap();
    let mut cfg = GuestConfig::new("bridged");
    let mut eth0 = GuestInterface::fixed("eth0", [10, 203, 0, 2].into(), 24);
    let mac = MacAddr::derived("qemu-test/bridged/eth0");
    eth0.mac = Some(mac);
    cfg.interfaces.push(eth0);
    let config = lab.dir.path().join("bridged.config");
    cfg.write_disk(&config).unwrap();
    let nic = InterfaceSpec {
        name: "eth0".into(),
        mac,
        attach: mln_core::Attachment::Bridge(name.clone()),
    };
    let spec = qemu::host_spec(
        "bridged",
        128 * MIB,
        &kernel(),
        &root,
        &config,
        vec![nic],
        "quiet",
    );
    qemu.create(&spec).unwrap();
    lab.guard(Box::new(qemu.clone()), "bridged");
    qemu.start("bridged").unwrap();
    wait_booted(&qemu, "bridged");
    let ports: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{name}/brif"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(ports.len(), 1, "the guest's tap in the bridge: {ports:?}");
    let tap = ports[0].clone();
    // busybox's ping (the templates need busybox; iputils may be absent).
    let ping = std::process::Command::new("busybox")
        .args(["ping", "-c", "3", "-W", "5", "10.203.0.2"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "this machine does not reach the guest over the bridge: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    qemu.destroy("bridged").unwrap();
    assert!(
        !Path::new("/sys/class/net").join(&tap).exists(),
        "the tap {tap} outlived its guest"
    );
    drop(bridge);
    assert!(!Path::new("/sys/class/net").join(&name).exists());
}
