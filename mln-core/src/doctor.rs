//! Can this host run guests, and if not, why and what fixes it: one check
//! per backend (User-Mode Linux, Xen, KVM/QEMU) and for switches, each
//! answered by trying the real thing with a bound on its time (a probe
//! boot of the UML kernel, a libxl context, a QEMU guest under KVM), never
//! by the host's name. The probes run side by side: the whole takes about
//! as long as the slowest, a UML boot of about a second, or, where KVM
//! hangs, the 1.5 s a KVM guest may stay quiet ([`kvm_runs_linux`]). The kvm
//! check says which accelerator QEMU guests get, by the backend's own rule
//! ([`crate::qemu::accel::choose`]), probing again rather than trusting a
//! kept answer ([`crate::qemu::accel::probe_again`]).
//!
//! ```no_run
//! use mln_core::doctor::{diagnose, DoctorOptions};
//! let report = diagnose(&DoctorOptions::new("/var/lib/mln/kernels"));
//! for check in &report.checks {
//!     println!("{}: {} {}", check.subject, if check.works { "ok" } else { "NO" }, check.summary);
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::qemu::accel::{probe_again, Acceleration, PROBE_TIMEOUT};
use crate::template::BusyboxSource;
use crate::uml::{cpu, KernelStore, ProbeOutcome, UmlKernel};

/// What to look at.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The kernels store (`STATE/kernels`).
    pub kernels: PathBuf,
    /// A UML kernel named explicitly (`--uml-kernel`), if any.
    pub uml_kernel: Option<PathBuf>,
    /// A Linux kernel and initramfs to probe KVM with; without one, the
    /// QEMU guest kernel fetched into `kernels` (see
    /// [`crate::qemu::GuestKernel`]), and without that, the check only
    /// shows whether `/dev/kvm` opens (and KVM is not trusted).
    pub kvm_probe: Option<(PathBuf, PathBuf)>,
}

impl DoctorOptions {
    /// Look with the kernels store in `kernels` and nothing else named.
    pub fn new(kernels: impl Into<PathBuf>) -> Self {
        DoctorOptions {
            kernels: kernels.into(),
            uml_kernel: None,
            kvm_probe: None,
        }
    }
}

/// The answer for one backend or facility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked: `uml`, `xen`, `kvm`, `switches`, `privileges`.
    pub subject: String,
    /// Whether it works here.
    pub works: bool,
    /// One line: what was found.
    pub summary: String,
    /// What was looked at, one fact a line.
    pub details: Vec<String>,
    /// The one command (or step) that fixes it, when it does not work.
    pub fix: Option<String>,
}

/// Every check, and the host they ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// The CPU (AMX noted: old UML kernels cannot run there).
    pub cpu: String,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
    /// How long it all took, milliseconds.
    pub millis: u64,
}

/// Run every check (see the module documentation).
pub fn diagnose(options: &DoctorOptions) -> DoctorReport {
    let started = Instant::now();
    let (uml, kvm) = std::thread::scope(|s| {
        let uml = s.spawn(|| uml(options));
        let kvm = s.spawn(|| kvm(options));
        (
            uml.join().unwrap_or_else(|_| panicked("uml")),
            kvm.join().unwrap_or_else(|_| panicked("kvm")),
        )
    });
    let checks = vec![uml, switches(), xen(), kvm, privileges()];
    DoctorReport {
        cpu: cpu(),
        checks,
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

fn panicked(subject: &str) -> Check {
    Check {
        subject: subject.into(),
        works: false,
        summary: "the check itself failed".into(),
        details: Vec::new(),
        fix: None,
    }
}

fn uml(options: &DoctorOptions) -> Check {
    let store = KernelStore::new(&options.kernels);
    let choice = store.choose(options.uml_kernel.as_deref());
    let mut details = vec![format!(
        "kernel: {} ({})",
        choice.path.display(),
        choice.source
    )];
    let check = |works: bool, summary: String, fix: Option<String>, details: Vec<String>| Check {
        subject: "uml".into(),
        works,
        summary,
        details,
        fix,
    };
    let kernel = match UmlKernel::inspect(&choice.path) {
        Ok(k) => k,
        Err(e) => {
            return check(
                false,
                format!("no usable UML kernel: {e}"),
                Some("apt-get install user-mode-linux (or name one with MLN_UML_KERNEL)".into()),
                details,
            )
        }
    };
    details.push(format!(
        "version {}, network driver {:?}",
        kernel.version, kernel.net
    ));
    let busybox = match BusyboxSource::find(options.kernels.join("download")) {
        Ok(BusyboxSource::Binary(b)) => b,
        Err(e) => {
            return check(
                false,
                format!("no static busybox to probe with: {e}"),
                Some("apt-get install busybox-static".into()),
                details,
            )
        }
    };
    match store.probe(&kernel.path, &busybox) {
        Ok(ProbeOutcome::Boots { millis }) => {
            details.push(format!(
                "probe boot: ran a user process and powered off in {:.1} s",
                millis as f64 / 1e3
            ));
            check(
                true,
                format!("UML {} boots here", kernel.version),
                None,
                details,
            )
        }
        Ok(outcome) => {
            let fix = match &outcome {
                ProbeOutcome::Crashes {
                    cause: Some(cause), ..
                } => cause.fix().to_string(),
                _ => "mln kernel fetch (a newer UML kernel), or name one with MLN_UML_KERNEL"
                    .to_string(),
            };
            if let ProbeOutcome::Crashes { console, .. } | ProbeOutcome::TimedOut { console } =
                &outcome
            {
                details.extend(
                    crate::uml::last_lines(console, 4)
                        .lines()
                        .map(|l| format!("console: {l}")),
                );
            }
            check(
                false,
                format!("UML {} {outcome} on this host", kernel.version),
                Some(fix),
                details,
            )
        }
        Err(e) => check(false, format!("probe boot failed: {e}"), None, details),
    }
}

fn switches() -> Check {
    let missing: Vec<&str> = ["vde_switch", "vde_plug", "dpipe"]
        .into_iter()
        .filter(|t| crate::uml::which(t).is_none())
        .collect();
    let works = missing.is_empty();
    Check {
        subject: "switches".into(),
        works,
        summary: if works {
            "vde_switch, vde_plug and dpipe are installed".into()
        } else {
            format!("missing: {}", missing.join(", "))
        },
        details: Vec::new(),
        fix: (!works).then(|| "apt-get install vde2 vdeplug".to_string()),
    }
}

fn xen() -> Check {
    let dom0 =
        std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"));
    let mut details = vec![if dom0 {
        "this is a Xen dom0 (/proc/xen/capabilities says control_d)".to_string()
    } else {
        "not a Xen dom0 (no control_d in /proc/xen/capabilities)".to_string()
    }];
    let context = xen_context();
    if let Err(why) = &context {
        details.push(format!("libxl: {why}"));
    }
    let works = dom0 && context.is_ok();
    Check {
        subject: "xen".into(),
        works,
        summary: if works {
            "Xen guests run here (libxl context open)".into()
        } else {
            "Xen guests cannot run here".into()
        },
        details,
        fix: (!works).then(|| {
            "boot this machine into Xen (apt-get install xen-system-amd64, reboot), \
             or run the hosts as UML guests with --backend uml"
                .to_string()
        }),
    }
}

#[cfg(feature = "xen")]
fn xen_context() -> Result<(), String> {
    crate::xen::XenHypervisor::connect()
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "xen"))]
fn xen_context() -> Result<(), String> {
    Err("mln-core was built without its `xen` feature".into())
}

fn kvm(options: &DoctorOptions) -> Check {
    let mut details = Vec::new();
    let qemu = crate::uml::which("qemu-system-x86_64");
    match &qemu {
        Some(q) => details.push(format!("QEMU: {}", q.display())),
        None => {
            return Check {
                subject: "kvm".into(),
                works: false,
                summary: "QEMU is not installed".into(),
                details,
                fix: Some("apt-get install qemu-system-x86".into()),
            }
        }
    }
    let dev = Path::new("/dev/kvm");
    let opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .is_ok();
    details.push(match (dev.exists(), opens) {
        (false, _) => "/dev/kvm: absent".to_string(),
        (true, false) => "/dev/kvm: present, not accessible to this user".to_string(),
        (true, true) => "/dev/kvm: present and accessible".to_string(),
    });
    // The kernel to probe with: the one named, else the guest kernel
    // fetched into the kernels store (`qemu::GuestKernel`).
    let fetched = crate::qemu::GuestKernel::find(&options.kernels);
    let probe = options.kvm_probe.clone().or_else(|| {
        fetched
            .as_ref()
            .map(|k| (k.kernel.clone(), k.probe_initrd.clone()))
    });
    match &probe {
        Some((kernel, _)) => details.push(format!("probe kernel: {}", kernel.display())),
        None => details.push(format!(
            "no guest kernel in {} to probe KVM with",
            options.kernels.display()
        )),
    }
    let accel = match (&probe, opens) {
        (Some((kernel, initrd)), true) => {
            let accel = probe_again(kernel, initrd);
            details.push(format!(
                "probe: a Linux guest under -accel kvm {}",
                if accel == Acceleration::Kvm {
                    "booted".to_string()
                } else {
                    format!(
                        "hung (quiet for {:.1} s) or did not boot within {} s (nested \
                         hosts hang there)",
                        KVM_SILENCE.as_secs_f64(),
                        PROBE_TIMEOUT.as_secs()
                    )
                }
            ));
            accel
        }
        (None, true) => {
            details.push(
                "probe: no guest kernel to boot yet, so KVM is not trusted \
                 (on nested hosts /dev/kvm opens and guests hang)"
                    .into(),
            );
            Acceleration::Tcg
        }
        (_, false) => Acceleration::Tcg,
    };
    Check {
        subject: "kvm".into(),
        works: true,
        summary: format!("QEMU guests run here with {accel} acceleration"),
        details,
        fix: (probe.is_none() && opens).then(|| {
            "mln kernel fetch-guest (the QEMU guest kernel; with it, KVM is probed)".to_string()
        }),
    }
}

/// How long a guest booting under KVM may print nothing before it counts
/// as hung: with early printing on, a kernel that runs prints its boot
/// log line after line; one that hangs (as on nested hosts, right after
/// the decompressor's lines) goes quiet for good. The longest gap seen in
/// a nested guest's boot was 0.75 s (decompressing the kernel).
const KVM_SILENCE: Duration = Duration::from_millis(1500);

/// Boot `kernel` with `initrd` (whose init prints `MLN-PROBE-OK`) under
/// KVM; true when the marker appears in time. A guest that goes quiet for
/// 1.5 s is taken as hung then, not waited for to `timeout`.
pub fn kvm_runs_linux(kernel: &Path, initrd: &Path, timeout: Duration) -> bool {
    let watched = crate::bounded::watch_within(
        Command::new("qemu-system-x86_64")
            .args(["-accel", "kvm", "-m", "128", "-display", "none"])
            .args(["-nodefaults", "-no-user-config", "-serial", "stdio"])
            .arg("-no-reboot")
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1"]),
        "MLN-PROBE-OK",
        timeout,
        KVM_SILENCE,
    );
    matches!(watched, Ok(crate::bounded::Watched::Printed))
}

fn privileges() -> Check {
    let root = rustix::process::geteuid().is_root();
    Check {
        subject: "privileges".into(),
        works: true,
        summary: if root {
            "running as root: Linux bridges, taps and VXLAN links can be made".into()
        } else {
            "not root: UML guests and vde switches run; Linux bridges, taps and VXLAN \
             links (Xen switches, switches across servers by VXLAN) need root"
                .into()
        },
        details: Vec::new(),
        fix: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_guest_kernel_kvm_is_not_trusted_and_the_fix_says_why() {
        if crate::uml::which("qemu-system-x86_64").is_none() {
            eprintln!("SKIPPED: QEMU is not installed");
            return;
        }
        let store = tempfile::tempdir().unwrap();
        let check = kvm(&DoctorOptions::new(store.path()));
        assert!(check.works);
        assert_eq!(check.summary, "QEMU guests run here with TCG acceleration");
        assert!(check
            .details
            .iter()
            .any(|d| d.starts_with("no guest kernel in")));
        if crate::qemu::accel::kvm_device_opens() {
            assert!(check.fix.unwrap().contains("mln kernel fetch-guest"));
        }
    }
}
