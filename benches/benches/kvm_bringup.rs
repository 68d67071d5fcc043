//! KVM host bring-up: N QEMU guests (N = 1, 4) through the library against
//! the same `qemu-system-x86_64` command lines spawned directly, in one
//! process run (target: library / raw ≤ 1.05).
//!
//! Every guest is what `mln` makes of a `kvm` host: the busybox template
//! under a qcow2 overlay (`vda`), a guest configuration disk (`vdb`:
//! hostname, one address, a startup line), one virtio interface on a
//! `vde_switch`, booted by the guest kernel (Debian's, with MLN's
//! initramfs; [`GuestKernel`]) with 128 MiB and one vCPU, under the
//! accelerator the library picks (KVM only where a probe boot under KVM
//! works, else TCG). A guest is up when its console shows
//! [`BOOT_FINISHED`]. Overlays, configuration disks and the switch are made
//! before the clock starts; the teardown is not timed.
//!
//! - `library`: per guest [`Hypervisor::create`], [`Hypervisor::start`]
//!   (QEMU starts paused, `start` returns once its QMP socket answers and
//!   it has been told to run) and [`Qemu::wait_console`], one thread per
//!   guest.
//! - `raw`: each guest's [`Qemu::command_line`] (the very argv `start`
//!   runs, computed before the clock) without its `-S` (the library starts
//!   QEMU paused and lets it run over QMP; a command line typed by hand
//!   runs at once), spawned with [`Command`] under `setsid` as the library
//!   spawns it (each guest leads a session of its own, so the scheduler's
//!   autogroups treat both contenders alike; see the README's UML
//!   section), output appended to the same console log, and the logs
//!   polled for the marker every 50 ms (as `wait_console` polls).
//!
//! In every round both run back to back, which goes first alternating;
//! figures are medians over the rounds, and `paired` is the median of each
//! round's library / raw ratio. `cpu` is the same for the CPU time a
//! bring-up cost (every QEMU's until its marker was seen, plus this
//! process's own): whether the library made more work rather than waited
//! longer. On a VM it moves with the load too (a TCG guest's CPU time
//! follows its wall time, the host's steal included). `MLN_BENCH_ROUNDS` sets the rounds
//! (default 3), `MLN_BENCH_SIZES` the guest counts (default `1,4`);
//! `MLN_KERNELS_DIR` where the guest kernel is kept (fetched there once).
//!
//!     cargo bench -p benches --bench kvm_bringup

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benches::guests::{self, list, median, BenchResult};
use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{GuestConfig, GuestInterface};
use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
use mln_core::qemu::{self, GuestKernel, Qemu};
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::{DomainSpec, Hypervisor, InterfaceSpec, MacAddr};

const SIZES: [usize; 2] = [1, 4];
const MEMORY: u64 = 128 << 20;
const SWITCH: &str = "lan";
/// A guest that has not finished booting by then is an error (killed).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the raw contender reads the consoles (`wait_console`'s
/// interval).
const POLL: Duration = Duration::from_millis(50);
/// The target: the library at most 5% slower than the raw command lines.
const TARGET: f64 = 1.05;
/// What `start` wraps QEMU in (util-linux's, execs it in the same process).
const SETSID: &str = "setsid";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Library,
    Raw,
}

/// One bring-up: when the last guest was up, and per guest when it had
/// been started (the library's `start` returned, or the raw process was
/// spawned) and when its marker was seen.
struct Run {
    total: Duration,
    started: Vec<Duration>,
    booted: Vec<Duration>,
    /// The CPU time each guest's QEMU had used when its marker was seen.
    cpu: Vec<Duration>,
    /// The CPU time this process (the contender's own work: starting,
    /// watching) used while the clock ran.
    own_cpu: Duration,
}

/// The files of N guests: configuration disks, overlays, state folders.
struct Bed {
    dir: PathBuf,
    template: Template,
    kernel: GuestKernel,
    guests: usize,
}

impl Bed {
    fn new(
        root: &Path,
        template: &Template,
        kernel: &GuestKernel,
        guests: usize,
    ) -> BenchResult<Self> {
        let dir = root.join(format!("n{guests}"));
        fs::create_dir_all(&dir)?;
        let bed = Bed {
            dir: dir.canonicalize()?,
            template: template.clone(),
            kernel: kernel.clone(),
            guests,
        };
        for i in 0..guests {
            let mut cfg = GuestConfig::new(&bed.name(i));
            let mut eth0 =
                GuestInterface::fixed("eth0", IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 24);
            eth0.mac = Some(bed.mac(i));
            cfg.interfaces.push(eth0);
            cfg.startup.push(format!("echo guest {i} up"));
            cfg.write_disk(&bed.config_disk(i))?;
        }
        Ok(bed)
    }

    fn name(&self, i: usize) -> String {
        format!("g{i}")
    }

    fn mac(&self, i: usize) -> MacAddr {
        MacAddr::derived(&format!("kvm-bench/g{i}/eth0"))
    }

    fn overlay_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("g{i}.qcow2"))
    }

    fn config_disk(&self, i: usize) -> PathBuf {
        self.dir.join(format!("g{i}.config"))
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join("qemu")
    }

    fn switch_dir(&self) -> PathBuf {
        self.dir.join("switches")
    }

    fn qemu(&self) -> BenchResult<Qemu> {
        Ok(Qemu::new(self.state_dir())?
            .with_guest_kernel(&self.kernel)
            .with_boot_timeout(BOOT_TIMEOUT))
    }

    /// Remove every file a run makes (overlays, guest state, switch).
    fn clear(&self) -> BenchResult<()> {
        for i in 0..self.guests {
            match fs::remove_file(self.overlay_path(i)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        for dir in [self.state_dir(), self.switch_dir()] {
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Fresh overlays and a running switch; the guests' specs.
    fn prepare(&self, switch: &VdeSwitch) -> BenchResult<Vec<DomainSpec>> {
        (0..self.guests)
            .map(|i| {
                let root =
                    Overlay::create(&self.template.image, self.overlay_path(i), CowFormat::Qcow2)?;
                let nic = InterfaceSpec {
                    name: "eth0".into(),
                    mac: self.mac(i),
                    attach: switch.attachment(),
                };
                Ok(qemu::host_spec(
                    &self.name(i),
                    MEMORY,
                    &self.kernel,
                    &root,
                    &self.config_disk(i),
                    vec![nic],
                    "quiet",
                ))
            })
            .collect()
    }

    fn run(&self, who: Contender) -> BenchResult<Run> {
        self.clear()?;
        let mut children = Vec::new();
        let result = VdeSwitch::start(&SwitchConfig::new(SWITCH), self.switch_dir())
            .map_err(Into::into)
            .and_then(|switch| {
                let specs = self.prepare(&switch)?;
                match who {
                    Contender::Library => self.library(&specs),
                    Contender::Raw => self.raw(&specs, &mut children),
                }
            });
        let cleanup = self.teardown(&mut children);
        let run = result?;
        cleanup?;
        Ok(run)
    }

    fn library(&self, specs: &[DomainSpec]) -> BenchResult<Run> {
        let qemu = self.qemu()?;
        let own = own_cpu();
        let clock = Instant::now();
        let per_guest = std::thread::scope(|s| {
            let handles: Vec<_> = specs
                .iter()
                .map(|spec| {
                    let qemu = &qemu;
                    s.spawn(move || -> BenchResult<(Duration, Duration, Duration)> {
                        qemu.create(spec)?;
                        qemu.start(&spec.name)?;
                        let started = clock.elapsed();
                        qemu.wait_console(&spec.name, BOOT_FINISHED, BOOT_TIMEOUT)?;
                        let booted = clock.elapsed();
                        Ok((started, booted, library_cpu(qemu, &spec.name)))
                    })
                })
                .collect();
            // Every thread is joined by the scope, even after a failure.
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("guest thread panicked".into()))
                })
                .collect::<BenchResult<Vec<_>>>()
        })?;
        let total = clock.elapsed();
        Ok(Run {
            total,
            started: per_guest.iter().map(|g| g.0).collect(),
            booted: per_guest.iter().map(|g| g.1).collect(),
            cpu: per_guest.iter().map(|g| g.2).collect(),
            own_cpu: own_cpu().saturating_sub(own),
        })
    }

    fn raw(&self, specs: &[DomainSpec], children: &mut Vec<Child>) -> BenchResult<Run> {
        let qemu = self.qemu()?;
        let mut lines = Vec::new();
        for spec in specs {
            let (program, args) = qemu.command_line(spec)?;
            lines.push((program, running_at_once(args)?));
        }
        let logs: Vec<PathBuf> = specs
            .iter()
            .map(|s| qemu.console_log(&s.name))
            .collect::<Result<_, _>>()?;
        let own = own_cpu();
        let clock = Instant::now();
        let mut started = Vec::new();
        for ((program, args), log_path) in lines.iter().zip(&logs) {
            let dir = log_path.parent().ok_or("a console log without a folder")?;
            fs::create_dir_all(dir)?;
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)?;
            let log2 = log.try_clone()?;
            let child = Command::new(SETSID)
                .arg("--")
                .arg(program)
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()?;
            children.push(child);
            started.push(clock.elapsed());
        }
        let deadline = clock + BOOT_TIMEOUT;
        let mut booted: Vec<Option<Duration>> = vec![None; specs.len()];
        let mut cpu = vec![Duration::ZERO; specs.len()];
        loop {
            for (i, log) in logs.iter().enumerate() {
                if booted[i].is_none() && console_has(log, BOOT_FINISHED) {
                    booted[i] = Some(clock.elapsed());
                    cpu[i] = guests::cpu_time(children[i].id()).unwrap_or_default();
                }
            }
            if booted.iter().all(Option::is_some) {
                break;
            }
            for (i, child) in children.iter_mut().enumerate() {
                if booted[i].is_none() {
                    if let Some(status) = child.try_wait()? {
                        let text = fs::read_to_string(&logs[i]).unwrap_or_default();
                        return Err(format!(
                            "{}: QEMU exited ({status}) before {BOOT_FINISHED:?}; console:\n{}",
                            specs[i].name,
                            last_lines(&text, 20)
                        )
                        .into());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("raw guests not up within {BOOT_TIMEOUT:?}").into());
            }
            std::thread::sleep(POLL);
        }
        let total = clock.elapsed();
        Ok(Run {
            total,
            started,
            booted: booted.into_iter().flatten().collect(),
            cpu,
            own_cpu: own_cpu().saturating_sub(own),
        })
    }

    /// End every guest (the library's through the library, the raw ones
    /// as our children), the switch, anything else still running under
    /// the bed's folder; then remove the run's files.
    fn teardown(&self, children: &mut Vec<Child>) -> BenchResult<()> {
        if let Ok(qemu) = self.qemu() {
            for i in 0..self.guests {
                // Not found for the raw guests (no record) and for ones
                // never created: nothing to do.
                let _ = qemu.destroy(&self.name(i));
            }
        }
        for mut child in children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(sw) = VdeSwitch::open(SWITCH, self.switch_dir()) {
            let _ = sw.stop();
        }
        guests::kill_under(&self.dir, Duration::from_secs(10))?;
        self.clear()
    }
}

/// The library's argv without `-S` (start paused): the guest runs from
/// the start, as a command line typed by hand does.
fn running_at_once(mut args: Vec<OsString>) -> BenchResult<Vec<OsString>> {
    let at = args
        .iter()
        .position(|a| a == "-S")
        .ok_or("the library's QEMU command line has no -S")?;
    args.remove(at);
    Ok(args)
}

/// The CPU time this process has used so far.
fn own_cpu() -> Duration {
    guests::cpu_time(std::process::id()).unwrap_or_default()
}

/// The CPU time of the library's QEMU for guest `name` (its pid is the
/// first word of `STATE/NAME/pid`); zero when unknown.
fn library_cpu(qemu: &Qemu, name: &str) -> Duration {
    qemu.console_log(name)
        .ok()
        .and_then(|log| fs::read_to_string(log.with_file_name("pid")).ok())
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .and_then(guests::cpu_time)
        .unwrap_or_default()
}

fn console_has(log: &Path, needle: &str) -> bool {
    fs::read(log).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn secs(d: &[Duration]) -> Vec<f64> {
    d.iter().map(Duration::as_secs_f64).collect()
}

fn main() -> BenchResult<()> {
    // `cargo test --benches` runs bench targets without `--bench`; only
    // `cargo bench` (which passes it) runs the measurement.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kvm_bringup: run with `cargo bench -p benches --bench kvm_bringup`");
        return Ok(());
    }
    guests::require(
        "kvm_bringup",
        &[Qemu::PROGRAM, VdeSwitch::PROGRAM, "qemu-img", SETSID],
    )?;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (template, kernel) = guests::template_and_kernel(base)?;
    let root = base.join(format!("kvm-bringup-{}", std::process::id()));
    let result = measure(&root, &template, &kernel, guests::rounds(3));
    let cleanup = guests::kill_under(&root, Duration::from_secs(10));
    let _ = fs::remove_dir_all(&root);
    result.and(cleanup)
}

fn measure(
    root: &Path,
    template: &Template,
    kernel: &GuestKernel,
    rounds: usize,
) -> BenchResult<()> {
    // The accelerator (a probe boot under KVM where /dev/kvm opens), asked
    // once before any clock runs; both contenders get its answer.
    let accel = Qemu::new(root.join("probe"))?
        .with_guest_kernel(kernel)
        .chosen_acceleration();
    println!(
        "kvm_bringup: {rounds} rounds, {} CPUs, {accel}, kernel {}, load average {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.version,
        guests::loadavg()
    );
    // Warm the page cache (kernel, initramfs, template, QEMU) first.
    let warm = Bed::new(root, template, kernel, 1)?;
    for who in [Contender::Library, Contender::Raw] {
        let run = warm.run(who)?;
        println!("warm-up {who:?}: {:.2} s", run.total.as_secs_f64());
    }
    println!(
        "{:>2}  {:>9}  {:>9}  {:>6}  {:>6}  {:>6}  target (library / raw <= {TARGET})",
        "N", "library", "raw", "ratio", "paired", "cpu"
    );
    for n in guests::sizes(&SIZES) {
        let bed = Bed::new(root, template, kernel, n)?;
        let mut lib: Vec<Run> = Vec::new();
        let mut raw: Vec<Run> = Vec::new();
        for round in 0..rounds {
            // Back to back, so a change in the machine's load between
            // rounds hits both.
            let order = if round % 2 == 0 {
                [Contender::Library, Contender::Raw]
            } else {
                [Contender::Raw, Contender::Library]
            };
            for who in order {
                let run = bed.run(who)?;
                match who {
                    Contender::Library => lib.push(run),
                    Contender::Raw => raw.push(run),
                }
            }
        }
        let totals = |runs: &[Run]| secs(&runs.iter().map(|r| r.total).collect::<Vec<_>>());
        let (lt, rt) = (totals(&lib), totals(&raw));
        let ratios: Vec<f64> = lt.iter().zip(&rt).map(|(l, r)| l / r).collect();
        let (lm, rm) = (median(&lt), median(&rt));
        let ratio = lm / rm;
        // The CPU time a bring-up cost (the QEMUs' until their markers,
        // plus this process's): the median of each round's library / raw
        // ratio.
        let cpu = |r: &Run| r.cpu.iter().sum::<Duration>() + r.own_cpu;
        let cpu_ratios: Vec<f64> = lib
            .iter()
            .zip(&raw)
            .map(|(l, r)| cpu(l).as_secs_f64() / cpu(r).as_secs_f64())
            .collect();
        println!(
            "{n:>2}  {lm:>8.2}s  {rm:>8.2}s  {ratio:>6.3}  {:>6.3}  {:>6.3}  {}",
            median(&ratios),
            median(&cpu_ratios),
            if ratio <= TARGET { "met" } else { "NOT met" }
        );
        println!(
            "    samples (s): library [{}]  raw [{}]",
            list(&lt, 2),
            list(&rt, 2)
        );
        // Where the time goes, per guest over all rounds: until the guest
        // was started (the library's `start` returned: QEMU up, QMP
        // answered, told to run; raw: spawned), and until its marker.
        let per = |runs: &[Run], f: fn(&Run) -> &Vec<Duration>| {
            median(&secs(
                &runs
                    .iter()
                    .flat_map(|r| f(r).iter().copied())
                    .collect::<Vec<_>>(),
            ))
        };
        println!(
            "    per guest (median s): started library {:.3} raw {:.3}; booted library {:.2} raw {:.2}",
            per(&lib, |r| &r.started),
            per(&raw, |r| &r.started),
            per(&lib, |r| &r.booted),
            per(&raw, |r| &r.booted),
        );
        println!(
            "    QEMU CPU time at boot (median s per guest): library {:.2} raw {:.2}",
            per(&lib, |r| &r.cpu),
            per(&raw, |r| &r.cpu),
        );
        // How far apart the guests of one run finished (s), and what this
        // process itself spent (s of CPU) per run.
        let spread = |runs: &[Run]| {
            let v: Vec<f64> = runs
                .iter()
                .map(|r| {
                    let (lo, hi) = guests::min_max(&secs(&r.booted));
                    hi - lo
                })
                .collect();
            list(&v, 2)
        };
        let own = |runs: &[Run]| {
            list(
                &secs(&runs.iter().map(|r| r.own_cpu).collect::<Vec<_>>()),
                2,
            )
        };
        println!(
            "    finish spread (s): library [{}] raw [{}]; bench CPU (s): library [{}] raw [{}]",
            spread(&lib),
            spread(&raw),
            own(&lib),
            own(&raw)
        );
        fs::remove_dir_all(&bed.dir)?;
    }
    println!("load average {} at end", guests::loadavg());
    Ok(())
}
