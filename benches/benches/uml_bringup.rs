//! UML bring-up: N guests (N = 1, 4, 8) through the library against the
//! same `linux.uml` command lines started from a plain shell script, in one
//! process run (target: library / script ≤ 1.05).
//!
//! Every guest boots the busybox template from its own copy-on-write
//! overlay, with a guest configuration disk (hostname, one address, a
//! startup line) and one interface on a `vde_switch`; it is up when its
//! console shows [`BOOT_FINISHED`]. Timed, for both contenders: start the
//! switch, start the N guests, wait until every console shows the marker.
//! Overlays and configuration disks are made before the clock starts (the
//! shell has no way to write a UML COW header); the teardown is not timed.
//!
//! - `library`: [`VdeSwitch::start`], then per guest [`Uml::create`],
//!   [`Uml::start`] (which returns once the guest's management console
//!   answers) and [`Uml::wait_console`], one thread per guest.
//! - `library, one by one`: the same from one thread, each guest started
//!   after the previous one's `start` returned, then all waited for.
//! - `script`: a generated `sh` script that runs the `vde_switch` command
//!   line the library runs and each guest's [`Uml::command_line`] (the same
//!   argv, same folders, same files), as background jobs, without address
//!   space randomisation (`setarch -R`, as the library does through
//!   `setarch --addr-no-randomize`), output appended to the same console
//!   log, then polls the logs for the marker every 50 ms (as `wait_console`
//!   does). Each `linux.uml` makes itself a session leader (its `main`
//!   calls `setsid()`), as the library's guests are made by `setsid(1)`
//!   before the kernel runs. It is the one place in the project where argv
//!   becomes shell text, on purpose: every argument is single-quoted.
//!
//! In every round `library` and `script` run back to back (which goes
//! first alternates), then `library, one by one`; each figure is the median
//! of the rounds, and `paired` is the median of each round's library /
//! script ratio, which the machine's load drifting between rounds moves
//! less. `MLN_BENCH_ROUNDS` sets the number of rounds (default 5),
//! `MLN_BENCH_SIZES` the guest counts (default `1,4,8`).
//!
//!     cargo bench -p benches --bench uml_bringup

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{GuestConfig, GuestInterface};
use mln_core::net::{Switch, SwitchConfig, VdeSwitch};
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::uml::{host_spec, Uml};
use mln_core::{Attachment, DomainSpec, Hypervisor, InterfaceSpec, MacAddr};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SIZES: [usize; 3] = [1, 4, 8];
const MEMORY: u64 = 64 << 20;
const SWITCH: &str = "lan";
/// Bounds a run on a busy machine; a guest that needs longer is a failure.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// One contender's way of bringing the guests up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Library,
    LibraryOneByOne,
    Script,
}

impl Contender {
    const ALL: [Contender; 3] = [
        Contender::Library,
        Contender::LibraryOneByOne,
        Contender::Script,
    ];
}

/// The files of N guests: overlays, configuration disks, state folders.
struct Bed {
    dir: PathBuf,
    template: Template,
    guests: usize,
}

impl Bed {
    fn new(root: &Path, template: &Template, guests: usize) -> BenchResult<Self> {
        let dir = root.join(format!("n{guests}"));
        fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        let bed = Bed {
            dir,
            template: template.clone(),
            guests,
        };
        for i in 0..guests {
            let mut cfg = GuestConfig::new(&bed.name(i));
            cfg.interfaces.push(GuestInterface::fixed(
                "eth0",
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
                24,
            ));
            cfg.startup.push(format!("echo guest {i} up"));
            cfg.write_disk(&bed.config_disk(i))?;
        }
        Ok(bed)
    }

    fn name(&self, i: usize) -> String {
        format!("g{i}")
    }

    fn overlay_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("g{i}.cow"))
    }

    fn config_disk(&self, i: usize) -> PathBuf {
        self.dir.join(format!("g{i}.config"))
    }

    fn uml(&self) -> BenchResult<Uml> {
        Ok(Uml::new(self.dir.join("uml"))?.with_boot_timeout(BOOT_TIMEOUT))
    }

    fn switch_dir(&self) -> PathBuf {
        self.dir.join("switches")
    }

    /// Where the switch's control folder is (what `VdeSwitch::ctl_dir`
    /// returns once it runs).
    fn ctl_dir(&self) -> PathBuf {
        self.switch_dir().join(SWITCH).join("ctl")
    }

    /// Fresh overlays (a run's guests write to theirs) and no state left
    /// from the previous run.
    fn reset(&self) -> BenchResult<()> {
        for i in 0..self.guests {
            let path = self.overlay_path(i);
            if path.exists() {
                fs::remove_file(&path)?;
            }
            Overlay::create(&self.template.image, &path, CowFormat::Uml)?;
        }
        for dir in [self.dir.join("uml"), self.switch_dir()] {
            if dir.exists() {
                fs::remove_dir_all(&dir)?;
            }
        }
        Ok(())
    }

    fn spec(&self, i: usize) -> BenchResult<DomainSpec> {
        let root = Overlay::open(self.overlay_path(i))?;
        let iface = InterfaceSpec {
            name: "eth0".into(),
            mac: MacAddr::derived(&format!("bench/g{i}/eth0")),
            attach: Attachment::Vde(self.ctl_dir()),
        };
        Ok(host_spec(
            &self.name(i),
            MEMORY,
            &root,
            &self.config_disk(i),
            vec![iface],
            "quiet",
        ))
    }

    fn run(&self, who: Contender) -> BenchResult<Duration> {
        self.reset()?;
        let result = match who {
            Contender::Library => self.library(true),
            Contender::LibraryOneByOne => self.library(false),
            Contender::Script => self.script(),
        };
        let cleanup = self.teardown();
        let elapsed = result?;
        cleanup?;
        Ok(elapsed)
    }

    fn library(&self, parallel: bool) -> BenchResult<Duration> {
        let uml = self.uml()?;
        let specs = (0..self.guests)
            .map(|i| self.spec(i))
            .collect::<BenchResult<Vec<_>>>()?;
        let start = Instant::now();
        let switch = VdeSwitch::start(&SwitchConfig::new(SWITCH), self.switch_dir())?;
        debug_assert_eq!(switch.ctl_dir(), self.ctl_dir());
        let up = |spec: &DomainSpec| -> BenchResult<()> {
            uml.create(spec)?;
            uml.start(&spec.name)?;
            Ok(())
        };
        let booted = |spec: &DomainSpec| -> BenchResult<()> {
            uml.wait_console(&spec.name, BOOT_FINISHED, BOOT_TIMEOUT)?;
            Ok(())
        };
        if parallel {
            std::thread::scope(|s| {
                let handles: Vec<_> = specs
                    .iter()
                    .map(|spec| s.spawn(move || up(spec).and_then(|()| booted(spec))))
                    .collect();
                // Every thread is joined by the scope, even after a failure.
                handles.into_iter().try_for_each(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("guest thread panicked".into()))
                })
            })?;
        } else {
            specs.iter().try_for_each(up)?;
            specs.iter().try_for_each(booted)?;
        }
        Ok(start.elapsed())
    }

    fn script(&self) -> BenchResult<Duration> {
        let uml = self.uml()?;
        let path = self.dir.join("bringup.sh");
        fs::write(&path, self.script_text(&uml)?)?;
        let start = Instant::now();
        let mut child = Command::new("sh")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let deadline = start + BOOT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    return Err(format!("{} failed: {status}", path.display()).into());
                }
                return Ok(start.elapsed());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(
                    format!("{} still waiting after {BOOT_TIMEOUT:?}", path.display()).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The baseline: the library's command lines as a shell script.
    fn script_text(&self, uml: &Uml) -> BenchResult<String> {
        let ctl = self.ctl_dir();
        let switch_dir = self.switch_dir().join(SWITCH);
        let mut s = String::from(
            "#!/bin/sh\n\
             # Generated by benches/benches/uml_bringup.rs: the library's command\n\
             # lines, every argument single-quoted.\n\
             set -e\n",
        );
        let q = |p: &Path| quote(p.as_os_str());
        writeln!(s, "mkdir -p {}", q(&switch_dir)?)?;
        writeln!(
            s,
            "{} --sock {} --mode 0600 --dirmode 0700 --pidfile {} --daemon",
            VdeSwitch::PROGRAM,
            q(&ctl)?,
            q(&switch_dir.join("daemon.pid"))?
        )?;
        writeln!(
            s,
            "while [ ! -S {} ]; do sleep 0.01; done",
            q(&ctl.join("ctl"))?
        )?;
        let mut logs = Vec::new();
        for i in 0..self.guests {
            let spec = self.spec(i)?;
            let (kernel, args) = uml.command_line(&spec)?;
            let dir = uml.state_dir().join(&spec.name);
            let log = dir.join("console.log");
            writeln!(s, "mkdir -p {}", q(&dir)?)?;
            write!(
                s,
                "(cd {} && exec setarch \"$(uname -m)\" -R {}",
                q(&dir)?,
                q(&kernel)?
            )?;
            for arg in &args {
                write!(s, " {}", quote(arg)?)?;
            }
            writeln!(s, " </dev/null >>{} 2>&1) &", q(&log)?)?;
            writeln!(s, "pid{i}=$!")?;
            logs.push(log);
        }
        for (i, log) in logs.iter().enumerate() {
            writeln!(
                s,
                "until grep -qF {} {} 2>/dev/null; do\n  \
                 kill -0 \"$pid{i}\" 2>/dev/null || {{ echo 'guest {i} died' >&2; exit 1; }}\n  \
                 sleep 0.05\ndone",
                quote(OsStr::new(BOOT_FINISHED))?,
                q(log)?
            )?;
        }
        Ok(s)
    }

    /// End every process this bed's runs started (guests, their helpers,
    /// the switch): each has the bed's folder on its command line.
    fn teardown(&self) -> BenchResult<()> {
        if let Ok(uml) = self.uml() {
            for i in 0..self.guests {
                let _ = uml.destroy(&self.name(i));
            }
        }
        if let Ok(sw) = VdeSwitch::open(SWITCH, self.switch_dir()) {
            let _ = sw.stop();
        }
        // The script's guests and switch are not recorded by the library.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = processes_under(&self.dir);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(
                    format!("processes left under {}: {left:?}", self.dir.display()).into(),
                );
            }
            // Their command lines name this benchmark's private folder: they
            // are processes this benchmark started.
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(left.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Live processes (not this one, not zombies) whose command line
/// mentions `dir`, found by the library's own walk of `/proc`.
fn processes_under(dir: &Path) -> Vec<u32> {
    mln_core::uml::processes_mentioning(dir)
}

/// `word` as one single-quoted shell word.
fn quote(word: &OsStr) -> BenchResult<String> {
    let text = word
        .to_str()
        .ok_or_else(|| format!("{word:?} is not UTF-8"))?;
    Ok(format!("'{}'", text.replace('\'', r"'\''")))
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

/// `MLN_BENCH_SIZES` (e.g. `1,8`), else 1, 4 and 8 guests.
fn sizes() -> Vec<usize> {
    std::env::var("MLN_BENCH_SIZES")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| SIZES.to_vec())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> BenchResult<()> {
    // `cargo test --benches` runs bench targets with `--test`-less args too;
    // only `cargo bench` (which passes `--bench`) runs the measurement.
    if !std::env::args().any(|a| a == "--bench") {
        println!("uml_bringup: run with `cargo bench -p benches --bench uml_bringup`");
        return Ok(());
    }
    let rounds: usize = std::env::var("MLN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let templates = base.join("mln-templates");
    let template = Template::default_in(&templates)?;
    let root = base.join(format!("uml-bringup-{}", std::process::id()));
    let result = measure(&root, &template, rounds);
    let _ = fs::remove_dir_all(&root);
    result
}

fn measure(root: &Path, template: &Template, rounds: usize) -> BenchResult<()> {
    println!(
        "uml_bringup: {rounds} rounds, {} CPUs, load average {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    // Warm the page cache with the kernel and template before measuring.
    let warm = Bed::new(root, template, 1)?;
    for who in Contender::ALL {
        warm.run(who)?;
    }
    println!(
        "{:>2}  {:>12}  {:>12}  {:>12}  {:>7}  {:>7}  {:>7}",
        "N", "library", "lib 1-by-1", "script", "ratio", "paired", "1-by-1"
    );
    for n in sizes() {
        let bed = Bed::new(root, template, n)?;
        let mut times: [Vec<Duration>; 3] = Default::default();
        let mut ratios = Vec::new();
        for round in 0..rounds {
            // The two contenders compared run next to each other, so a
            // change in the machine's load between rounds hits both.
            let order = if round % 2 == 0 {
                [Contender::Library, Contender::Script]
            } else {
                [Contender::Script, Contender::Library]
            };
            for who in order.into_iter().chain([Contender::LibraryOneByOne]) {
                let t = bed.run(who)?;
                let slot = Contender::ALL.iter().position(|c| *c == who).unwrap_or(0);
                times[slot].push(t);
            }
            let lib = times[0][round].as_secs_f64();
            let sh = times[2][round].as_secs_f64();
            ratios.push(lib / sh);
        }
        let samples: Vec<String> = times
            .iter()
            .map(|t| {
                t.iter()
                    .map(|d| format!("{:.2}", d.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let [lib, seq, sh] = times.map(|mut t| median(&mut t));
        ratios.sort_by(f64::total_cmp);
        let paired = match ratios.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => ratios[n / 2],
            n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
        };
        println!(
            "{n:>2}  {:>11.3}s  {:>11.3}s  {:>11.3}s  {:>7.3}  {:>7.3}  {:>7.3}",
            lib.as_secs_f64(),
            seq.as_secs_f64(),
            sh.as_secs_f64(),
            lib.as_secs_f64() / sh.as_secs_f64(),
            paired,
            seq.as_secs_f64() / sh.as_secs_f64()
        );
        println!(
            "    samples (s): library [{}]  1-by-1 [{}]  script [{}]",
            samples[0], samples[1], samples[2]
        );
    }
    println!("load average {} at end", loadavg());
    Ok(())
}
