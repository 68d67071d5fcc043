//! The UML backend's lifecycle on real guests booted from the busybox
//! template: pause, resume, memory, info and list (also from a second
//! backend over the same state folder, as a later process would see it),
//! clean shutdown, destroy, and guests that die or power off on their own.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use testkit::processes_under;

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::GuestConfig;
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::uml::Uml;
use mln_core::{Boot, DiskSpec, DomainSpec, DomainState, Error, Hypervisor};

/// The busybox template, built once per test run under target/.
fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        Template::default_in(&base).expect("busybox template")
    })
    .clone()
}

/// A backend in a temporary folder that destroys its guest on every way
/// out of the test.
struct Guest {
    uml: Uml,
    name: String,
    _dir: tempfile::TempDir,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.uml.destroy(&self.name);
    }
}

/// Create (not start) a guest `name` with `startup` lines.
fn guest(name: &str, startup: &[&str]) -> Guest {
    guest_with_shutdown(name, startup, &[])
}

/// Create (not start) a guest `name` with `startup` and `shutdown` lines.
fn guest_with_shutdown(name: &str, startup: &[&str], shutdown: &[&str]) -> Guest {
    let template = template();
    let dir = tempfile::tempdir().unwrap();
    let uml = Uml::new(dir.path().join("uml")).unwrap();
    let cow =
        Overlay::create(&template.image, dir.path().join("root.cow"), CowFormat::Uml).unwrap();
    let mut cfg = GuestConfig::new(name);
    cfg.startup = startup.iter().map(|s| s.to_string()).collect();
    cfg.shutdown = shutdown.iter().map(|s| s.to_string()).collect();
    let cfg_disk = dir.path().join("config.tar");
    cfg.write_disk(&cfg_disk).unwrap();
    let mut spec = DomainSpec::new(
        name,
        64 << 20,
        Boot::Kernel {
            kernel: Uml::default_kernel(),
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
    uml.create(&spec).unwrap();
    Guest {
        uml,
        name: name.to_string(),
        _dir: dir,
    }
}

/// Poll `info` until the guest reaches `want` (bounded, so a wrong state
/// fails the test instead of hanging it).
fn wait_state(g: &Guest, want: DomainState) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = g.uml.info(&g.name).unwrap().state;
        if state == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} stayed {state}, never {want}; console:\n{}",
            g.name,
            std::fs::read_to_string(g.uml.console_log(&g.name).unwrap()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the guest's boot script has finished. UML answers management
/// requests from early on, but a guest whose kernel is still starting up
/// may reboot on Ctrl-Alt-Del or leave requests unanswered.
fn wait_booted(g: &Guest) {
    g.uml
        .wait_console(&g.name, BOOT_FINISHED, Duration::from_secs(60))
        .unwrap();
}

fn mem_free_kib(uml: &Uml, name: &str) -> u64 {
    let meminfo = uml.mconsole(name).unwrap().request("proc meminfo").unwrap();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemFree:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MemFree in {meminfo:?}"))
}

fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false)
}

#[test]
fn pause_resume_memory_info_list_and_clean_shutdown() {
    let g = guest("life", &["echo MLN-STARTED"]);
    let info = g.uml.info("life").unwrap();
    assert_eq!((info.state, info.id), (DomainState::Paused, 0));

    g.uml.start("life").unwrap();
    wait_booted(&g);
    let info = g.uml.info("life").unwrap();
    assert_eq!(info.state, DomainState::Running);
    assert!(process_exists(info.id));
    assert_eq!(info.max_memory, 64 << 20);
    assert!(matches!(g.uml.start("life"), Err(Error::WrongState { .. })));

    // A second backend over the same folder (a later process) sees it.
    let later = Uml::new(g.uml.state_dir()).unwrap();
    let listed = later.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].id), ("life", info.id));
    assert!(!later
        .mconsole("life")
        .unwrap()
        .request("version")
        .unwrap()
        .is_empty());

    g.uml.pause("life").unwrap();
    assert_eq!(later.info("life").unwrap().state, DomainState::Paused);
    assert!(matches!(g.uml.pause("life"), Err(Error::WrongState { .. })));
    // The management console still answers a paused guest; memory changes
    // wait until it runs again.
    assert!(!g
        .uml
        .mconsole("life")
        .unwrap()
        .request("version")
        .unwrap()
        .is_empty());
    assert!(matches!(
        g.uml.set_memory("life", 32 << 20),
        Err(Error::WrongState { .. })
    ));
    later.resume("life").unwrap();
    assert_eq!(g.uml.info("life").unwrap().state, DomainState::Running);
    assert!(matches!(
        g.uml.resume("life"),
        Err(Error::WrongState { .. })
    ));

    // The guest keeps most of its memory (UML runs without address space
    // randomisation, which would cost it up to half).
    let meminfo = g
        .uml
        .mconsole("life")
        .unwrap()
        .request("proc meminfo")
        .unwrap();
    let total: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(total > 48 * 1024, "MemTotal {total} KiB of 64 MiB");

    // Memory: unplug 24 MiB (the guest's free memory shrinks), plug it back.
    let free_before = mem_free_kib(&g.uml, "life");
    g.uml.set_memory("life", 40 << 20).unwrap();
    assert_eq!(g.uml.info("life").unwrap().memory, 40 << 20);
    let free_after = mem_free_kib(&g.uml, "life");
    assert!(
        free_after + 16 * 1024 < free_before,
        "MemFree {free_before} KiB -> {free_after} KiB"
    );
    g.uml.set_memory("life", 64 << 20).unwrap();
    assert_eq!(later.info("life").unwrap().memory, 64 << 20);
    assert!(g.uml.set_memory("life", 128 << 20).is_err());
    g.uml.set_vcpus("life", 1).unwrap();
    assert!(matches!(
        g.uml.set_vcpus("life", 2),
        Err(Error::Unsupported { .. })
    ));

    g.uml.shutdown("life", Duration::from_secs(30)).unwrap();
    assert!(!process_exists(info.id));
    assert!(matches!(g.uml.info("life"), Err(Error::NotFound { .. })));
    assert!(g.uml.list().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(g.uml.state_dir()).unwrap().count(), 0);
    assert_eq!(processes_under(g.uml.state_dir()), Vec::<u32>::new());
}

#[test]
fn shutdown_right_after_start_lets_the_guest_boot_then_halt_cleanly() {
    let g = guest_with_shutdown("hasty", &["echo MLN-STARTED"], &["echo MLN-SHUTDOWN-RAN"]);
    g.uml.start("hasty").unwrap();
    let pid = g.uml.info("hasty").unwrap().id;
    // Shutdown removes the guest's folder; an open handle still reads the
    // whole console log afterwards.
    let mut log = std::fs::File::open(g.uml.console_log("hasty").unwrap()).unwrap();
    // At once: the guest's init has not started yet. A Ctrl-Alt-Del now
    // would make the kernel reboot instead of asking init to shut down.
    g.uml.shutdown("hasty", Duration::from_secs(60)).unwrap();
    let mut console = String::new();
    std::io::Read::read_to_string(&mut log, &mut console).unwrap();

    assert!(!process_exists(pid));
    assert!(matches!(g.uml.info("hasty"), Err(Error::NotFound { .. })));
    assert_eq!(processes_under(g.uml.state_dir()), Vec::<u32>::new());
    // The guest finished booting, then its init ran the shutdown lines
    // (rc.halt) and powered off by itself: the clean path, not a reboot
    // and not a kill after the timeout.
    let at = |needle: &str| {
        console
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} on the console:\n{console}"))
    };
    assert!(at("MLN-STARTED") < at(BOOT_FINISHED));
    assert!(at(BOOT_FINISHED) < at("MLN-SHUTDOWN-RAN"));
    assert!(at("MLN-SHUTDOWN-RAN") < at("mln: halting"));
    assert!(
        console.contains("reboot: System halted") || console.contains("reboot: Power down"),
        "the kernel never halted:\n{console}"
    );
    for wrong in ["reboot: Restarting system", "Kernel panic"] {
        assert!(
            !console.contains(wrong),
            "{wrong:?} on the console:\n{console}"
        );
    }
}

#[test]
fn killed_guest_is_reported_crashed_then_destroyed() {
    let g = guest("victim", &[]);
    g.uml.start("victim").unwrap();
    let pid = g.uml.info("victim").unwrap().id;
    // SAFETY: killing the guest process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_state(&g, DomainState::Crashed);
    let listed = Uml::new(g.uml.state_dir()).unwrap().list().unwrap();
    assert_eq!(listed[0].state, DomainState::Crashed);
    // Requests to a dead guest fail at once instead of hanging; so does
    // waiting for output it will never print.
    assert!(g.uml.pause("victim").is_err());
    assert!(matches!(
        g.uml
            .wait_console("victim", "never printed", Duration::from_secs(600)),
        Err(Error::Backend { .. })
    ));
    g.uml.destroy("victim").unwrap();
    assert!(matches!(g.uml.info("victim"), Err(Error::NotFound { .. })));
    // UML's helper processes outlive a killed main process; destroy ends
    // them too.
    assert_eq!(processes_under(g.uml.state_dir()), Vec::<u32>::new());
}

#[test]
fn reboot_then_destroy_kills_a_running_guest_at_once() {
    let g = guest("doomed", &[]);
    g.uml.start("doomed").unwrap();
    wait_booted(&g);
    g.uml.reboot("doomed").unwrap();
    let log = g.uml.console_log("doomed").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&log)
        .unwrap()
        .matches(BOOT_FINISHED)
        .count()
        < 2
    {
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail = &text[text.len().saturating_sub(3000)..];
            panic!("no second boot after reboot; the console ends:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(g.uml.info("doomed").unwrap().state, DomainState::Running);
    let pid = g.uml.info("doomed").unwrap().id;
    g.uml.destroy("doomed").unwrap();
    assert!(!process_exists(pid));
    assert!(matches!(
        g.uml.destroy("doomed"),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(processes_under(g.uml.state_dir()), Vec::<u32>::new());
}

#[test]
fn guest_that_powers_itself_off_is_reported_shut_down() {
    let g = guest("quitter", &["poweroff"]);
    g.uml.start("quitter").unwrap();
    wait_state(&g, DomainState::Shutdown);
}

/// Run only as a child of `guests_outlive_the_process_that_started_them`:
/// start a guest in the folder `MLN_TEST_UML_DIR` names, then wait to be
/// killed.
#[test]
#[ignore = "helper process for guests_outlive_the_process_that_started_them"]
fn helper_start_guest_then_hang() {
    let Ok(dir) = std::env::var("MLN_TEST_UML_DIR") else {
        return;
    };
    let uml = Uml::new(&dir).unwrap();
    uml.start("orphan").unwrap();
    println!("MLN-HELPER-STARTED");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn guests_outlive_the_process_that_started_them() {
    let g = guest("orphan", &[]);
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_start_guest_then_hang",
            "--nocapture",
        ])
        .env("MLN_TEST_UML_DIR", g.uml.state_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_state(&g, DomainState::Running);
    let pid = g.uml.info("orphan").unwrap().id;
    helper.kill().unwrap();
    helper.wait().unwrap();
    // The guest runs on, and this process (a "later" one) still controls it.
    let info = g.uml.info("orphan").unwrap();
    assert_eq!((info.state, info.id), (DomainState::Running, pid));
    wait_booted(&g);
    g.uml.pause("orphan").unwrap();
    g.uml.resume("orphan").unwrap();
    g.uml.shutdown("orphan", Duration::from_secs(30)).unwrap();
    assert!(!process_exists(pid));
}
