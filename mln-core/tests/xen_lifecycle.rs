//! The `xen` backend against a real hypervisor.
//!
//! These tests run inside the dom0 that `cargo xtask xen-test` boots under
//! QEMU: real Xen 4.17, real libxl, real PV guests (the Debian kernel and a
//! busybox initramfs that prints `GUEST-ALIVE` on its console and stays up).
//! On any other machine each test prints why it is skipped and passes.
//!
//! Environment (set by the harness's dom0 /init):
//! `MLN_XEN_GUEST_KERNEL`, `MLN_XEN_GUEST_RAMDISK`; guest consoles are read
//! from `/var/log/xen/console/guest-NAME.log` (xenconsoled `--log=guest`).
#![cfg(feature = "xen")]

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mln_core::xen::{domain_config, XenHypervisor};
use mln_core::{Boot, DomainSpec, DomainState, Error, Hypervisor};

const MIB: u64 = 1 << 20;
/// How long to wait for a guest under QEMU's TCG on a busy 2-core machine
/// (a bound on waiting, not an assertion on speed).
const BOOT_WAIT: Duration = Duration::from_secs(600);

/// libxl's log (target `libxl`) and ours on stderr, from `MLN_XEN_TEST_LOG`
/// (`error`..`trace`, default `warn`).
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

/// The hypervisor, or `None` (with a message) when this is not a Xen dom0.
fn xen(test: &str) -> Option<XenHypervisor> {
    if log::set_logger(&LOGGER).is_ok() {
        let level = std::env::var("MLN_XEN_TEST_LOG")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(log::LevelFilter::Warn);
        log::set_max_level(level);
    }
    match XenHypervisor::connect() {
        Ok(x) => Some(x),
        Err(Error::XenUnavailable { reason }) => {
            // `.ci/test` runs these in the Xen lab only (`cargo xtask
            // xen-test`, where CI is set too): never skipped there.
            testkit::skip(
                test,
                &format!("not running on Xen ({reason}); use `cargo xtask xen-test`"),
            );
            None
        }
        Err(e) => panic!("{test}: connecting to Xen failed: {e}"),
    }
}

fn guest_file(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// A PV guest: 128 MiB (max 192), 1 vCPU (max 2).
fn spec(name: &str) -> DomainSpec {
    let mut s = DomainSpec::new(
        name,
        128 * MIB,
        Boot::Kernel {
            kernel: guest_file("MLN_XEN_GUEST_KERNEL", "/vmlinuz"),
            ramdisk: Some(guest_file("MLN_XEN_GUEST_RAMDISK", "/guest.cpio")),
            cmdline: "console=hvc0 quiet".to_string(),
        },
    );
    s.max_memory = Some(192 * MIB);
    s.max_vcpus = Some(2);
    s
}

fn console_log(name: &str) -> String {
    std::fs::read_to_string(format!("/var/log/xen/console/guest-{name}.log")).unwrap_or_default()
}

/// Wait until `name`'s console shows `marker` at least `times` times.
fn wait_console(name: &str, marker: &str, times: usize) {
    let start = Instant::now();
    while console_log(name).matches(marker).count() < times {
        assert!(
            start.elapsed() < BOOT_WAIT,
            "{name}: {marker} x{times} never appeared on the console; it shows:\n{}",
            console_log(name)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Poll `f` until it holds; fail with `what` if it never does.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < BOOT_WAIT, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Destroys the domain when a test ends, passed or not, so a failure does
/// not leave a guest eating the lab's CPU.
struct Cleanup<'a>(&'a XenHypervisor, &'static str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.destroy(self.1);
    }
}

/// Create, start and wait for the guest's marker.
fn boot(x: &XenHypervisor, name: &str) -> DomainSpec {
    let s = spec(name);
    x.create(&s).unwrap();
    x.start(name).unwrap();
    wait_console(name, "GUEST-ALIVE", 1);
    s
}

fn assert_not_found(r: mln_core::Result<impl std::fmt::Debug>, name: &str) {
    match r {
        Err(Error::NotFound { domain }) => assert_eq!(domain, name),
        other => panic!("expected NotFound for {name}, got {other:?}"),
    }
}

#[test]
fn create_start_list_info_pause_resume_destroy() {
    let Some(x) = xen("create_start_list_info_pause_resume_destroy") else {
        return;
    };
    let _cleanup = Cleanup(&x, "life");
    let s = spec("life");
    let created = x.create(&s).unwrap();
    eprintln!("life: created {created:?}");
    assert_eq!(
        created.state,
        DomainState::Paused,
        "libxl creates domains paused"
    );
    assert!(created.id > 0);
    assert!(matches!(x.create(&s), Err(Error::AlreadyExists { domain }) if domain == "life"));

    x.start("life").unwrap();
    wait_console("life", "GUEST-ALIVE", 1);
    let info = x.info("life").unwrap();
    eprintln!("life: running {info:?}");
    assert_eq!(info.state, DomainState::Running);
    assert_eq!(info.id, created.id);
    assert_eq!(info.vcpus, 1);
    assert!(
        (120 * MIB..=136 * MIB).contains(&info.memory),
        "memory {}",
        info.memory
    );
    assert!(
        (192 * MIB..=194 * MIB).contains(&info.max_memory),
        "max memory {}",
        info.max_memory
    );

    let listed = x.list().unwrap();
    let mine = listed.iter().find(|d| d.name == "life").expect("listed");
    assert_eq!(mine.id, info.id);
    assert!(listed.iter().all(|d| d.id != 0), "Domain-0 is not listed");

    x.pause("life").unwrap();
    assert_eq!(x.info("life").unwrap().state, DomainState::Paused);
    assert!(matches!(x.pause("life"), Err(Error::WrongState { .. })));
    let t1 = x.info("life").unwrap().cpu_time;
    x.resume("life").unwrap();
    assert_eq!(x.info("life").unwrap().state, DomainState::Running);
    assert!(matches!(x.resume("life"), Err(Error::WrongState { .. })));
    eventually("life uses CPU again after resume", || {
        x.info("life").unwrap().cpu_time > t1
    });

    x.destroy("life").unwrap();
    assert_not_found(x.info("life"), "life");
    assert!(x.list().unwrap().iter().all(|d| d.name != "life"));
}

#[test]
fn set_memory_and_vcpus_change_what_xen_reports() {
    let Some(x) = xen("set_memory_and_vcpus_change_what_xen_reports") else {
        return;
    };
    let _cleanup = Cleanup(&x, "balloon");
    boot(&x, "balloon");
    x.set_memory("balloon", 96 * MIB).unwrap();
    assert_eq!(x.memory_target("balloon").unwrap(), 96 * MIB);
    eventually("the balloon driver gives memory back", || {
        x.info("balloon").unwrap().memory <= 100 * MIB
    });
    eprintln!(
        "balloon: after set_memory(96M) {:?}",
        x.info("balloon").unwrap()
    );

    x.set_vcpus("balloon", 2).unwrap();
    eventually("a second vCPU comes online", || {
        x.info("balloon").unwrap().vcpus == 2
    });
    x.set_vcpus("balloon", 1).unwrap();
    eventually("the second vCPU goes offline", || {
        x.info("balloon").unwrap().vcpus == 1
    });
    eprintln!("balloon: vcpus 2 then 1 {:?}", x.info("balloon").unwrap());
    assert!(x.set_vcpus("balloon", 3).is_err(), "more than max_vcpus");
    x.destroy("balloon").unwrap();
}

#[test]
fn save_then_restore_gives_a_running_guest_again() {
    let Some(x) = xen("save_then_restore_gives_a_running_guest_again") else {
        return;
    };
    let _cleanup = Cleanup(&x, "saved");
    let s = boot(&x, "saved");
    let before = x.info("saved").unwrap();
    let file = Path::new("/tmp/saved.xen");
    x.save("saved", file).unwrap();
    assert_not_found(x.info("saved"), "saved");
    let size = std::fs::metadata(file).unwrap().len();
    assert!(
        size > 64 * MIB,
        "the save file holds the guest's memory ({size} bytes)"
    );

    let after = x.restore(&s, file).unwrap();
    eprintln!("saved: before {before:?}\nsaved: restored {after:?} from {size} bytes");
    assert_eq!(after.state, DomainState::Running);
    assert_ne!(after.id, before.id);
    let t = after.cpu_time;
    eventually("the restored guest runs", || {
        x.info("saved").unwrap().cpu_time > t
    });
    x.destroy("saved").unwrap();
    std::fs::remove_file(file).unwrap();
}

#[test]
fn migrate_over_a_socket_pair_moves_the_running_guest() {
    let Some(x) = xen("migrate_over_a_socket_pair_moves_the_running_guest") else {
        return;
    };
    // Debian's Xen 4.17 under QEMU refuses log-dirty mode for PV guests
    // (EOPNOTSUPP), so the lab migrates with the guest suspended; the live
    // attempt is covered by the next test.
    let x = x.with_live_migration(false);
    let _cleanup = Cleanup(&x, "mover");
    let s = boot(&x, "mover");
    let before = x.info("mover").unwrap();
    let (tx, rx) = UnixStream::pair().unwrap();
    let (sent, received) = std::thread::scope(|scope| {
        let send = scope.spawn(|| x.migrate_send("mover", tx.as_fd()));
        let recv = scope.spawn(|| x.migrate_receive(&s, rx.as_fd()));
        (send.join().unwrap(), recv.join().unwrap())
    });
    sent.unwrap();
    let after = received.unwrap();
    eprintln!("mover: before {before:?}\nmover: after migration {after:?}");
    assert_eq!(after.name, "mover");
    assert_eq!(after.state, DomainState::Running);
    assert_ne!(after.id, before.id);
    assert_not_found(x.info("mover--migratedaway"), "mover--migratedaway");
    assert_not_found(x.info("mover--incoming"), "mover--incoming");
    let t = after.cpu_time;
    eventually("the migrated guest runs", || {
        x.info("mover").unwrap().cpu_time > t
    });
    x.destroy("mover").unwrap();
}

#[test]
fn a_refused_live_migration_leaves_the_guest_running_under_its_name() {
    let Some(x) = xen("a_refused_live_migration_leaves_the_guest_running_under_its_name") else {
        return;
    };
    let _cleanup = Cleanup(&x, "stayer");
    boot(&x, "stayer");
    let (tx, rx) = UnixStream::pair().unwrap();
    // A receiver that only drains, so a sender that gets far never blocks.
    let drain = std::thread::spawn(move || std::io::copy(&mut &rx, &mut std::io::sink()));
    let sent = x.migrate_send("stayer", tx.as_fd());
    drop(tx);
    let drained = drain.join().unwrap().unwrap();
    match sent {
        Ok(()) => {
            eprintln!("stayer: live migration is supported here ({drained} bytes sent)");
            assert_not_found(x.info("stayer"), "stayer");
        }
        Err(e) => {
            eprintln!("stayer: live migration refused: {e}");
            let info = x.info("stayer").unwrap();
            assert_eq!(info.state, DomainState::Running);
            assert_not_found(x.info("stayer--migratedaway"), "stayer--migratedaway");
            let t = info.cpu_time;
            eventually("the guest runs on", || {
                x.info("stayer").unwrap().cpu_time > t
            });
        }
    }
}

#[test]
fn reboot_brings_the_guest_back_under_a_new_domid() {
    let Some(x) = xen("reboot_brings_the_guest_back_under_a_new_domid") else {
        return;
    };
    let _cleanup = Cleanup(&x, "rebooter");
    boot(&x, "rebooter");
    let before = x.info("rebooter").unwrap();
    x.reboot("rebooter").unwrap();
    let after = x.info("rebooter").unwrap();
    eprintln!("rebooter: before {before:?}\nrebooter: after {after:?}");
    assert_ne!(after.id, before.id);
    assert_eq!(after.state, DomainState::Running);
    // The guest's /sbin/reboot marks the console, then the new kernel boots.
    wait_console("rebooter", "GUEST-REBOOT", 1);
    wait_console("rebooter", "GUEST-ALIVE", 2);
    x.destroy("rebooter").unwrap();
}

#[test]
fn clean_shutdown_powers_the_guest_off_and_removes_it() {
    let Some(x) = xen("clean_shutdown_powers_the_guest_off_and_removes_it") else {
        return;
    };
    let _cleanup = Cleanup(&x, "stopper");
    boot(&x, "stopper");
    x.shutdown("stopper", BOOT_WAIT).unwrap();
    assert_not_found(x.info("stopper"), "stopper");
    assert!(
        console_log("stopper").contains("GUEST-POWEROFF"),
        "the guest ran its own poweroff"
    );
}

#[test]
fn shutdown_of_a_guest_that_cannot_answer_destroys_it_after_the_timeout() {
    let Some(x) = xen("shutdown_of_a_guest_that_cannot_answer_destroys_it_after_the_timeout")
    else {
        return;
    };
    // Created but never started: the guest cannot act on the request.
    let _cleanup = Cleanup(&x, "deaf");
    x.create(&spec("deaf")).unwrap();
    x.shutdown("deaf", Duration::from_secs(2)).unwrap();
    assert_not_found(x.info("deaf"), "deaf");
}

#[test]
fn two_guests_created_in_parallel_both_come_up() {
    let Some(x) = xen("two_guests_created_in_parallel_both_come_up") else {
        return;
    };
    let _cleanup = (Cleanup(&x, "twin-a"), Cleanup(&x, "twin-b"));
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| x.create(&spec("twin-a")));
        let b = scope.spawn(|| x.create(&spec("twin-b")));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_ne!(a.id, b.id);
    x.start("twin-a").unwrap();
    x.start("twin-b").unwrap();
    wait_console("twin-a", "GUEST-ALIVE", 1);
    wait_console("twin-b", "GUEST-ALIVE", 1);
    let names: Vec<String> = x.list().unwrap().into_iter().map(|d| d.name).collect();
    eprintln!("twins: listed {names:?}");
    assert!(names.contains(&"twin-a".to_string()) && names.contains(&"twin-b".to_string()));
    x.destroy("twin-a").unwrap();
    x.destroy("twin-b").unwrap();
}

#[test]
fn every_operation_on_a_missing_domain_names_it() {
    let Some(x) = xen("every_operation_on_a_missing_domain_names_it") else {
        return;
    };
    let n = "no-such-domain";
    assert_not_found(x.info(n), n);
    assert_not_found(x.start(n), n);
    assert_not_found(x.pause(n), n);
    assert_not_found(x.resume(n), n);
    assert_not_found(x.shutdown(n, Duration::from_secs(1)), n);
    assert_not_found(x.reboot(n), n);
    assert_not_found(x.destroy(n), n);
    assert_not_found(x.set_memory(n, 64 * MIB), n);
    assert_not_found(x.set_vcpus(n, 1), n);
    assert_not_found(x.save(n, Path::new("/tmp/none.xen")), n);
    let (a, _b) = UnixStream::pair().unwrap();
    assert_not_found(x.migrate_send(n, a.as_fd()), n);
    let e = x.info(n).unwrap_err();
    eprintln!("missing: {e}");
    assert_eq!(e.to_string(), "domain no-such-domain: not found");
}

#[test]
fn libxl_failures_carry_the_error_name() {
    let Some(x) = xen("libxl_failures_carry_the_error_name") else {
        return;
    };
    // Input that is not a libxl stream is refused before libxl sees it
    // (libxl 4.17 crashes on it, see `XenHypervisor::restore`).
    let junk = Path::new("/tmp/junk.xen");
    std::fs::write(junk, vec![0x5a; 4096]).unwrap();
    match x.restore(&spec("junk"), junk) {
        Err(e @ Error::Backend { .. }) => eprintln!("junk restore: {e}"),
        other => panic!("restore from junk: {other:?}"),
    }
    assert_not_found(x.info("junk"), "junk");
    let (tx, rx) = UnixStream::pair().unwrap();
    std::io::Write::write_all(&mut &tx, b"not a stream").unwrap();
    assert!(matches!(
        x.migrate_receive(&spec("junk"), rx.as_fd()),
        Err(Error::Backend { .. })
    ));

    let mut s = spec("nokernel");
    s.boot = Boot::kernel("/no/such/vmlinuz");
    match x.create(&s) {
        Err(e @ Error::Libxl { .. }) => {
            eprintln!("missing kernel: {e}");
            assert!(e.to_string().contains("nokernel") && e.to_string().contains(": ERROR_"));
        }
        other => panic!("create without a kernel: {other:?}"),
    }
    assert_not_found(x.info("nokernel"), "nokernel");
}

#[test]
fn our_config_matches_what_xl_builds_from_the_same_xl_cfg() {
    let Some(_x) = xen("our_config_matches_what_xl_builds_from_the_same_xl_cfg") else {
        return;
    };
    let s = spec("twin-cfg");
    let Boot::Kernel {
        kernel,
        ramdisk: Some(ramdisk),
        cmdline,
    } = &s.boot
    else {
        unreachable!()
    };
    // Ours appends the word that tells the guest's getty where `mln
    // console` attaches; xl is given the same command line.
    let console = mln_core::attach::console_word("hvc0");
    let cfg = format!(
        "name = \"twin-cfg\"\ntype = \"pv\"\nkernel = \"{}\"\nramdisk = \"{}\"\n\
         extra = \"{cmdline} {console}\"\nmemory = 128\nmaxmem = 192\nvcpus = 1\nmaxvcpus = 2\n",
        kernel.display(),
        ramdisk.display()
    );
    let path = Path::new("/tmp/twin-cfg.cfg");
    std::fs::write(path, cfg).unwrap();
    let out = match std::process::Command::new("xl")
        .args(["-N", "create"])
        .arg(path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            return testkit::skip("our_config_matches_what_xl_builds", &format!("no xl ({e})"));
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut xl: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ours: serde_json::Value =
        serde_json::from_str(&domain_config(&s).unwrap().to_json().unwrap()).unwrap();
    // What xl adds on its own: a fresh UUID and its xl.conf globals.
    for v in [&mut xl, &mut ours] {
        let c = v["c_info"].as_object_mut().unwrap();
        for k in ["uuid", "run_hotplug_scripts"] {
            c.remove(k);
        }
        let b = v["b_info"].as_object_mut().unwrap();
        for k in ["claim_mode", "max_grant_frames", "max_maptrack_frames"] {
            b.remove(k);
        }
    }
    eprintln!("xl -N: {xl}");
    assert_eq!(ours, xl);
}

#[test]
fn free_memory_is_at_most_what_xl_info_reports() {
    let Some(x) = xen("free_memory_is_at_most_what_xl_info_reports") else {
        return;
    };
    // Another test may create or destroy a guest meanwhile: take a reading
    // of `xl info` between two equal readings of ours.
    for _ in 0..10 {
        let before = x.free_memory().unwrap().expect("Xen reports free memory");
        let out = std::process::Command::new("xl")
            .arg("info")
            .output()
            .unwrap();
        let after = x.free_memory().unwrap().expect("Xen reports free memory");
        if before != after {
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let xl_mib: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("free_memory"))
            .and_then(|v| v.trim_start_matches([' ', ':']).trim().parse().ok())
            .unwrap_or_else(|| panic!("no free_memory in `xl info`:\n{text}"));
        // libxl keeps dom0's ballooning slack out of what it offers; `xl
        // info` shows the raw free pages.
        eprintln!(
            "free memory: ours {} MiB, xl info {xl_mib} MiB",
            before / MIB
        );
        assert!(before > 0, "no free memory at all");
        assert!(
            before <= (xl_mib + 1) * MIB,
            "ours {before} bytes is more than xl's {xl_mib} MiB"
        );
        // The whole is Xen's `total_memory`, which holds the free part
        // (dom0's own MemTotal is only its share).
        let total = x.total_memory().unwrap().expect("Xen reports its memory");
        let xl_total: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("total_memory"))
            .and_then(|v| v.trim_start_matches([' ', ':']).trim().parse().ok())
            .unwrap_or_else(|| panic!("no total_memory in `xl info`:\n{text}"));
        eprintln!(
            "total memory: ours {} MiB, xl info {xl_total} MiB",
            total / MIB
        );
        assert_eq!(total / MIB, xl_total);
        assert!(before < total, "free {before} is not part of total {total}");
        return;
    }
    panic!("Xen's free memory never held still over ten readings");
}
