//! The two-server lab of `cargo xtask xen-test`: two Xen machines under
//! QEMU, booted in parallel, each dom0 with sshd on a forwarded local port
//! (its management NIC, QEMU's user network, nothing routed out), both on
//! one LAN (a `vde_switch` here, bridged as `xenbr0` in each dom0), both
//! seeing one folder of this machine as shared storage (9p, at
//! `/srv/shared`), where the guests' template is.
//!
//! Phases, each bounded, in this order:
//! 1. [`HOST_TEST`] on this machine, every test but [`FAILOVER_TEST`]:
//!    `mln` reaching both servers through real `ssh` with the lab's key
//!    (`MLN_XEN_LAB_SSH_CONFIG` names the configuration);
//! 2. [`FAILOVER_TEST`], which kills server-a's QEMU (its pid in
//!    `MLN_XEN_LAB_KILL`);
//! 3. the in-dom0 tests on server-b (`/run-tests` over ssh), with the
//!    machine's CPUs no longer shared with server-a.
//!
//! QEMU, the switch and the lab's processes are ended on every path.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
use mln_core::template::{BusyboxSource, BusyboxTemplate};

use super::qemu::{self, Boot, Machine, Outcome};
use super::servers::{self, Keys, Server};
use super::{host_load, io_err};

/// The test binary run on this machine against the two servers.
pub const HOST_TEST: &str = "xen_move";
/// The test of [`HOST_TEST`] that kills server-a: run last, alone.
pub const FAILOVER_TEST: &str = "status_reports_a_dead_servers_guests_unreachable";
/// The test of [`HOST_TEST`] that runs the Debian template as Xen guests
/// (about 3 minutes under TCG): only with `--debian`.
pub const DEBIAN_TEST: &str = "the_debian_lab_runs_as_xen_guests";
/// Printed by each dom0 once sshd runs.
const READY: &str = "MLN-XEN-LAB-READY";
/// QEMU's memory and dom0's, MiB: dom0 holds the initramfs (tests, `mln`)
/// and a qdisk QEMU per guest; the rest is for guests.
const MACHINE_MIB: u32 = 2048;
const DOM0_MIB: u32 = 768;

/// A `vde_switch`, stopped when dropped.
struct Lan(VdeSwitch);

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

/// What the phases need to know about the lab.
pub struct Lab {
    pub dir: PathBuf,
    pub servers: Vec<Server>,
    pub keys: Keys,
    pub ssh_config: PathBuf,
    pub shared: PathBuf,
}

/// Keys, ssh configuration, the shared folder and its template, under
/// `dir` (the lab folder), for `busybox` (dom0's, which the agents build
/// their default template from: the same bytes give the same image name).
pub fn prepare(dir: &Path, busybox: &Path) -> Result<Lab, String> {
    let servers = servers::two()?;
    let keys = Keys::make(&dir.join("ssh"), &servers)?;
    let ssh_config = keys.client_config(&servers)?;
    let shared = dir.join("shared");
    let _ = fs::remove_dir_all(&shared);
    let templates = shared.join("templates");
    fs::create_dir_all(&templates).map_err(io_err(&templates))?;
    BusyboxTemplate::new(BusyboxSource::Binary(busybox.to_path_buf()))
        .build(&templates)
        .map_err(|e| format!("the guests' template: {e}"))?;
    Ok(Lab {
        dir: dir.to_path_buf(),
        servers,
        keys,
        ssh_config,
        shared,
    })
}

/// dom0's `/etc/mln/mln.conf` in every server: projects in dom0's own
/// folder, templates on the shared storage, guests' interfaces that name
/// no switch on `xenbr0`.
pub const MLN_CONF: &str =
    "projects /var/lib/mln\ntemplates /srv/shared/templates\nxen_bridge xenbr0\n";

fn boot_all(lab: &Lab, lan: &VdeSwitch, accel: &'static str) -> Result<Vec<Machine>, String> {
    let mut machines = Vec::new();
    for s in &lab.servers {
        let args = vec![
            "-netdev".to_string(),
            format!(
                "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{}-:22",
                s.ssh_port
            ),
            "-device".into(),
            format!("virtio-net-pci,netdev=mgmt,mac={}", s.mgmt_mac()),
            "-netdev".into(),
            format!("vde,id=lan,sock={}", lan.ctl_dir().display()),
            "-device".into(),
            format!("virtio-net-pci,netdev=lan,mac={}", s.lan_mac()),
            "-virtfs".into(),
            format!(
                "local,path={},mount_tag=shared,security_model=none,id=shared",
                lab.shared.display()
            ),
        ];
        machines.push(Machine::boot(
            &lab.dir,
            &Boot {
                name: s.name.to_string(),
                memory_mib: MACHINE_MIB,
                dom0_mib: DOM0_MIB,
                dom0_words: s.dom0_words(),
                args,
                accel,
            },
        )?);
    }
    let limit = Duration::from_secs(600);
    for m in &mut machines {
        match m.wait_for(READY, limit) {
            Outcome::Seen => {}
            other => return Err(qemu::failure(m, "booting", other, limit)),
        }
    }
    Ok(machines)
}

/// Run `cmd` (output inherited) until it exits or `limit` passes, then
/// kill it by its pid.
fn run_bounded(cmd: &mut Command, what: &str, limit: Duration) -> Result<ExitStatus, String> {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(st),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: no end within {limit:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

/// One phase's name, how it ended and how long it took.
struct Phase {
    name: &'static str,
    passed: bool,
    took: Duration,
}

fn phase(
    phases: &mut Vec<Phase>,
    name: &'static str,
    cmd: &mut Command,
    limit: Duration,
) -> Result<(), String> {
    eprintln!("xen-test: phase {name} (host load {})", host_load());
    let start = Instant::now();
    let st = run_bounded(cmd, name, limit)?;
    phases.push(Phase {
        name,
        passed: st.success(),
        took: start.elapsed(),
    });
    Ok(())
}

/// What runs beyond CI's phases.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// `xl migrate` timed beside `mln`'s live move.
    pub compare_xl: bool,
    /// [`DEBIAN_TEST`]: the Debian template's router lab as Xen guests.
    pub debian: bool,
}

/// Boot the lab and run the phases; `Ok` only when every phase passed.
pub fn run(
    lab: &Lab,
    host_test: &Path,
    mln: &Path,
    test_args: &[String],
    extras: Extras,
) -> Result<(), String> {
    let started = Instant::now();
    let switches = lab.dir.join("switches");
    // A lab killed before it could clean up leaves its LAN running: this
    // folder is the lab's own, so that one goes.
    if let Ok(old) = VdeSwitch::open("lan", &switches) {
        let _ = old.stop();
    }
    let lan = Lan(VdeSwitch::start(&SwitchConfig::new("lan"), &switches)
        .map_err(|e| format!("the lab's LAN switch: {e}"))?);
    let accel = qemu::accelerator();
    let mut machines = match boot_all(lab, &lan.0, accel) {
        Err(e) if accel == "kvm" => {
            eprintln!("xen-test: under KVM: {e}\nxen-test: booting again under TCG");
            boot_all(lab, &lan.0, "tcg")?
        }
        other => other?,
    };
    eprintln!("xen-test: both servers up after {:.0?}", started.elapsed());
    let figures = lab.dir.join("figures.txt");
    let _ = fs::remove_file(&figures);
    let host = |cmd: &mut Command| {
        cmd.env("MLN_XEN_LAB_SSH_CONFIG", &lab.ssh_config)
            .env("MLN_XEN_LAB_SHARED", &lab.shared)
            .env("MLN_XEN_LAB_FIGURES", &figures)
            .env("MLN_XEN_LAB_MLN", mln)
            .env("MLN_XEN_LAB_LAN", lan.0.ctl_dir())
            .env("CI", "true")
            .args(["--nocapture", "--test-threads=1"]);
        if extras.compare_xl {
            cmd.env("MLN_XEN_LAB_COMPARE_XL", "1");
        }
    };
    let mut phases = Vec::new();
    let mut moves = Command::new(host_test);
    host(&mut moves);
    moves.args(["--skip", FAILOVER_TEST]);
    if !extras.debian {
        moves.args(["--skip", DEBIAN_TEST]);
    }
    moves.args(test_args);
    phase(
        &mut phases,
        "two servers",
        &mut moves,
        Duration::from_secs(900),
    )?;

    let kill = machines
        .iter()
        .find(|m| m.name() == "server-a")
        .map(|m| format!("server-a:{}", m.pid()))
        .ok_or("no server-a")?;
    let mut failover = Command::new(host_test);
    host(&mut failover);
    failover
        .env("MLN_XEN_LAB_KILL", kill)
        .args(["--exact", FAILOVER_TEST]);
    phase(
        &mut phases,
        "failover",
        &mut failover,
        Duration::from_secs(600),
    )?;

    let mut in_dom0 = Command::new("ssh");
    in_dom0
        .arg("-F")
        .arg(&lab.ssh_config)
        .args(["server-b", "/run-tests"]);
    phase(
        &mut phases,
        "in dom0",
        &mut in_dom0,
        Duration::from_secs(900),
    )?;

    for m in &mut machines {
        m.kill();
    }
    drop(lan);
    if let Ok(text) = fs::read_to_string(&figures) {
        println!(
            "--- figures ({}) ---\n{}",
            figures.display(),
            text.trim_end()
        );
    }
    for p in &phases {
        eprintln!(
            "xen-test: {:<12} {} in {:.0?}",
            p.name,
            if p.passed { "passed" } else { "FAILED" },
            p.took
        );
    }
    eprintln!(
        "xen-test: the lab took {:.0?} from the first boot (host load {})",
        started.elapsed(),
        host_load()
    );
    let failed: Vec<&str> = phases
        .iter()
        .filter(|p| !p.passed)
        .map(|p| p.name)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "failed: {} (serial logs in {})",
            failed.join(", "),
            lab.dir.display()
        ))
    }
}
