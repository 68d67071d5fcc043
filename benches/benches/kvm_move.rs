//! The downtime of a KVM host's live move: one running QEMU guest migrated
//! back and forth between two QEMU backends (two state folders, as two
//! servers have) on this machine, through mln-core, with the figures QEMU
//! reports for each migration (`query-migrate`: `downtime`, how long the
//! guest was stopped, and `total-time`).
//!
//! The guest is what `mln` makes of a `kvm` host (see `kvm_bringup`):
//! 128 MiB, one vCPU, the busybox template under a qcow2 overlay, a
//! configuration disk, one interface on a `vde_switch`, and a startup line
//! that prints a tick on the console every 20 ms or so (an idle guest
//! otherwise). Each round moves it twice, the two ways a live move goes:
//!
//! - `shared`: the receiver sees the guest's disks (one machine, or
//!   shared storage): [`Qemu::migrate_send_measured`] into
//!   [`Hypervisor::migrate_receive`] of the same spec; only memory and
//!   devices travel.
//! - `disks`: the receiver has its own copy of the template but not the
//!   guest's overlay (servers without shared storage, what `mln upgrade`
//!   does for a `kvm` host whose `service_host` changes):
//!   [`Qemu::migrate_send_with_disks`] into a fresh overlay over the same
//!   template; what the overlay holds travels in the stream too.
//!
//! The stream goes through a socket pair, as `mln`'s agent hands QEMU one
//! end of its connection. After every move the guest's ticks must go on
//! on the receiving side (bounded), so each move starts from a guest that
//! runs. Also printed:
//!
//! - `seen stopped`: how long the guest was seen to stand still from
//!   outside: from the last tick read on the sender's console log to the
//!   first on the receiver's (both read every 2 ms during the move). It
//!   adds to QEMU's downtime what QEMU's figure leaves out (the receiver
//!   loading the last of the state and letting the guest run; under TCG
//!   also, presumably, translating the guest's code anew) and up to one
//!   tick period.
//! - `wall`: the caller's time of the whole move (the receiver's QEMU
//!   started, the stream, the sender's QEMU ended).
//!
//! `MLN_BENCH_ROUNDS` sets the rounds (default 5), `MLN_KERNELS_DIR` where
//! the guest kernel is kept.
//!
//!     cargo bench -p benches --bench kvm_move

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use benches::guests::{self, list, median, min_max, BenchResult};
use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{GuestConfig, GuestInterface};
use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
use mln_core::qemu::{self, GuestKernel, MigrationFigures, Qemu};
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::{DomainSpec, DomainState, Hypervisor, InterfaceSpec, MacAddr};

const NAME: &str = "mover";
const MEMORY: u64 = 128 << 20;
/// Every wait on the guest is bounded by this.
const WAIT: Duration = Duration::from_secs(120);
/// What the guest prints on its console, as often as it can (a `usleep`
/// of 20 ms between two, plus the fork and exec of `usleep` under TCG).
const TICK: &str = "MLN-TICK";
/// Startup line: the ticks.
const TICKER: &str = "(while true; do echo MLN-TICK; usleep 20000; done) &";
/// How often the console logs are read for ticks during a move.
const WATCH_EVERY: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Shared,
    Disks,
}

/// What one move measured.
struct Move {
    /// QEMU's figures.
    figures: MigrationFigures,
    /// The caller's time, from the call until both sides returned.
    wall: Duration,
    /// From the last tick read on the sender's console to the first on
    /// the receiver's: how long the guest was seen to stand still.
    gap: Duration,
    /// The usual time between two ticks before the move (the gap's
    /// resolution).
    period: Duration,
}

/// A console log read as it grows, with the time each tick was read.
struct TickLog {
    file: File,
    partial: Vec<u8>,
    ticks: Vec<Instant>,
}

impl TickLog {
    /// Open `path`, counting what is written from now on, or (`whole`)
    /// everything in it.
    fn open(path: &Path, whole: bool) -> std::io::Result<TickLog> {
        let mut file = File::open(path)?;
        if !whole {
            file.seek(SeekFrom::End(0))?;
        }
        Ok(TickLog {
            file,
            partial: Vec::new(),
            ticks: Vec::new(),
        })
    }

    /// Read what was appended; every complete tick line is stamped now.
    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = self.file.read(&mut buf) {
            self.partial.extend_from_slice(&buf[..n]);
        }
        let now = Instant::now();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if String::from_utf8_lossy(&line).trim() == TICK {
                self.ticks.push(now);
            }
        }
    }
}

/// The median time between two consecutive instants.
fn median_interval(at: &[Instant]) -> Duration {
    let gaps: Vec<f64> = at
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]).as_secs_f64())
        .collect();
    Duration::from_secs_f64(median(&gaps).max(0.0))
}

/// Two backends, a switch, and the guest's files, in one folder.
struct Lab {
    dir: PathBuf,
    template: Template,
    kernel: GuestKernel,
    switch: VdeSwitch,
    sides: [Qemu; 2],
    config: PathBuf,
    /// Overlays made so far (a `disks` move makes a fresh one).
    overlays: usize,
}

impl Lab {
    fn new(dir: &Path, template: &Template, kernel: &GuestKernel) -> BenchResult<Lab> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let switch = VdeSwitch::start(&SwitchConfig::new("lan"), dir.join("switches"))?;
        let side = |name: &str| -> BenchResult<Qemu> {
            Ok(Qemu::new(dir.join(name))?
                .with_guest_kernel(kernel)
                .with_boot_timeout(WAIT))
        };
        let sides = [side("server-a")?, side("server-b")?];
        let mut cfg = GuestConfig::new(NAME);
        let mut eth0 = GuestInterface::fixed("eth0", [10, 0, 0, 1].into(), 24);
        eth0.mac = Some(mac());
        cfg.interfaces.push(eth0);
        cfg.startup.push(TICKER.into());
        let config = dir.join("mover.config");
        cfg.write_disk(&config)?;
        Ok(Lab {
            dir,
            template: template.clone(),
            kernel: kernel.clone(),
            switch,
            sides,
            config,
            overlays: 0,
        })
    }

    /// The guest's spec over a fresh overlay of the template.
    fn fresh_spec(&mut self) -> BenchResult<DomainSpec> {
        self.overlays += 1;
        let path = self.dir.join(format!("mover-{}.qcow2", self.overlays));
        let root = Overlay::create(&self.template.image, path, CowFormat::Qcow2)?;
        let nic = InterfaceSpec {
            name: "eth0".into(),
            mac: mac(),
            attach: self.switch.attachment(),
        };
        Ok(qemu::host_spec(
            NAME,
            MEMORY,
            &self.kernel,
            &root,
            &self.config,
            vec![nic],
            "quiet",
        ))
    }

    /// Move the guest (running on side `from`) to the other side as
    /// `to_spec`; waits until it runs there.
    fn migrate(&self, from: usize, to_spec: &DomainSpec, mode: Mode) -> BenchResult<Move> {
        let (source, target) = (&self.sides[from], &self.sides[1 - from]);
        let (send_end, receive_end) = UnixStream::pair()?;
        // Opened now: the sender's folder goes with its guest.
        let mut source_log = TickLog::open(&source.console_log(NAME)?, false)?;
        // A new file, made by the receiver's QEMU.
        let target_log = target.console_log(NAME)?;
        let watching = AtomicBool::new(true);
        let clock = Instant::now();
        let (sent, received, gap, wall) = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                // The target's log appears when its QEMU starts; it is
                // opened once, and read on until told to stop.
                let mut target = None;
                while watching.load(Ordering::Relaxed) {
                    source_log.read();
                    if target.is_none() {
                        target = TickLog::open(&target_log, true).ok();
                    }
                    if let Some(t) = target.as_mut() {
                        t.read();
                    }
                    std::thread::sleep(WATCH_EVERY);
                }
                let last_here = source_log.ticks.last().copied();
                let first_there = target.and_then(|t| t.ticks.first().copied());
                let period = median_interval(&source_log.ticks);
                match (last_here, first_there) {
                    (Some(a), Some(b)) => Some((b.saturating_duration_since(a), period)),
                    _ => None,
                }
            });
            let receiver = s.spawn(move || {
                let got = target.migrate_receive(to_spec, receive_end.as_fd());
                drop(receive_end);
                got
            });
            let sent = match mode {
                Mode::Shared => source.migrate_send_measured(NAME, send_end.as_fd()),
                Mode::Disks => source.migrate_send_with_disks(NAME, send_end.as_fd()),
            };
            // A failed sender's end closes, so the receiver sees the end
            // of the stream rather than wait for more.
            drop(send_end);
            let received = receiver.join().unwrap_or_else(|_| {
                Err(mln_core::Error::Backend {
                    what: NAME.into(),
                    message: "the receiving thread panicked".into(),
                })
            });
            let wall = clock.elapsed();
            // It runs on: its ticks go on on the new side's console.
            let ticking = received
                .as_ref()
                .ok()
                .map(|_| target.wait_console(NAME, TICK, WAIT));
            // A few more ticks' time, so the watcher has read the first.
            std::thread::sleep(Duration::from_millis(100));
            watching.store(false, Ordering::Relaxed);
            let gap = watcher.join().ok().flatten();
            (
                sent,
                received.and_then(|r| ticking.transpose().map(|_| r)),
                gap,
                wall,
            )
        });
        let figures = sent?;
        let info = received?;
        if info.state != DomainState::Running {
            return Err(format!("{NAME} is {} after the move", info.state).into());
        }
        let (gap, period) = gap.ok_or("no ticks seen on one side of the move")?;
        Ok(Move {
            figures,
            wall,
            gap,
            period,
        })
    }

    fn teardown(&self) -> BenchResult<()> {
        for side in &self.sides {
            let _ = side.destroy(NAME);
        }
        let _ = self.switch.stop();
        guests::kill_under(&self.dir, Duration::from_secs(10))
    }
}

fn mac() -> MacAddr {
    MacAddr::derived("kvm-move-bench/mover/eth0")
}

/// Bounded wait for `needle` in the guest's console on `side`.
fn wait_console(side: &Qemu, needle: &str) -> BenchResult<()> {
    side.wait_console(NAME, needle, WAIT)?;
    Ok(())
}

fn main() -> BenchResult<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("kvm_move: run with `cargo bench -p benches --bench kvm_move`");
        return Ok(());
    }
    guests::require("kvm_move", &[Qemu::PROGRAM, VdeSwitch::PROGRAM, "qemu-img"])?;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (template, kernel) = guests::template_and_kernel(base)?;
    let root = base.join(format!("kvm-move-{}", std::process::id()));
    let (result, cleanup) = match Lab::new(&root, &template, &kernel) {
        Ok(mut lab) => (measure(&mut lab, guests::rounds(5)), lab.teardown()),
        Err(e) => (Err(e), guests::kill_under(&root, Duration::from_secs(10))),
    };
    let _ = std::fs::remove_dir_all(&root);
    result.and(cleanup)
}

fn measure(lab: &mut Lab, rounds: usize) -> BenchResult<()> {
    let mut spec = lab.fresh_spec()?;
    let mut here = 0;
    lab.sides[here].create(&spec)?;
    lab.sides[here].start(NAME)?;
    let booting = Instant::now();
    wait_console(&lab.sides[here], BOOT_FINISHED)?;
    wait_console(&lab.sides[here], TICK)?;
    println!(
        "kvm_move: {rounds} rounds, {} CPUs, {}, {} MiB guest booted in {:.1} s, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        lab.sides[here]
            .acceleration(NAME)?
            .map_or_else(|| "?".to_string(), |a| a.to_string()),
        MEMORY >> 20,
        booting.elapsed().as_secs_f64(),
        guests::loadavg()
    );
    let mut moves: [Vec<Move>; 2] = Default::default();
    for _ in 0..rounds {
        for (slot, mode) in [Mode::Shared, Mode::Disks].into_iter().enumerate() {
            let to_spec = match mode {
                Mode::Shared => spec.clone(),
                Mode::Disks => lab.fresh_spec()?,
            };
            let m = lab.migrate(here, &to_spec, mode)?;
            if to_spec.disks[0].path != spec.disks[0].path {
                // The sender's overlay is of no use any more.
                std::fs::remove_file(&spec.disks[0].path)?;
            }
            spec = to_spec;
            here = 1 - here;
            moves[slot].push(m);
        }
    }
    println!(
        "{:>6}  {:>20}  {:>20}  {:>20}  {:>18}  {:>5}",
        "mode", "downtime ms (QEMU)", "total ms (QEMU)", "seen stopped ms", "wall s", "tick"
    );
    let spread = |v: &[f64], d: usize| {
        let (lo, hi) = min_max(v);
        format!("{:.d$} ({lo:.d$}-{hi:.d$})", median(v))
    };
    for (slot, mode) in ["shared", "disks"].into_iter().enumerate() {
        // QEMU's figures of the moves it measured: a few report a
        // completed migration of 0 ms in all (seen once in over 100
        // moves, under load), which is no measurement; counted apart.
        let measured: Vec<(f64, f64)> = moves[slot]
            .iter()
            .filter_map(|m| match (m.figures.downtime_ms, m.figures.total_ms) {
                (Some(d), Some(t)) if t > 0 => Some((d as f64, t as f64)),
                _ => None,
            })
            .collect();
        let unmeasured = moves[slot].len() - measured.len();
        let down: Vec<f64> = measured.iter().map(|m| m.0).collect();
        let total: Vec<f64> = measured.iter().map(|m| m.1).collect();
        let of = |f: fn(&Move) -> Duration, scale: f64| -> Vec<f64> {
            moves[slot]
                .iter()
                .map(|m| f(m).as_secs_f64() * scale)
                .collect()
        };
        let gap = of(|m| m.gap, 1e3);
        let wall = of(|m| m.wall, 1.0);
        let period = of(|m| m.period, 1e3);
        println!(
            "{mode:>6}  {:>20}  {:>20}  {:>20}  {:>18}  {:>3.0}ms",
            spread(&down, 0),
            spread(&total, 0),
            spread(&gap, 0),
            spread(&wall, 2),
            median(&period)
        );
        println!(
            "        downtime [{}] total [{}] seen [{}] ms{}",
            list(&down, 0),
            list(&total, 0),
            list(&gap, 0),
            if unmeasured > 0 {
                format!("; {unmeasured} move(s) without QEMU figures")
            } else {
                String::new()
            }
        );
    }
    println!("load average {} at end", guests::loadavg());
    Ok(())
}
