//! `xen-bench`: how long a PV domain takes from nothing to running through
//! mln-core (`create` + `start` over libxl) against `xl create` of the
//! equivalent xl.cfg, and how long N domains take when mln-core creates
//! them in parallel threads (with N `xl create` processes at once beside).
//!
//! "Running" is the point both paths reach when they return: the domain
//! is built and unpaused (checked with `info`). The guest's own boot is not
//! part of the figure; the warm-up domain waits for `--marker` on its
//! console to show that the guest really boots. Domains are destroyed
//! before the next measurement so guests never compete for the CPU with it.
//!
//! Run in a Xen dom0 as root; `cargo xtask xen-test --bench` runs it in
//! the QEMU lab. Exit status: 0 when every measurement was made, 1 on an
//! error, 2 when this is not a dom0 (or the binary lacks the `xen` feature).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Time PV domain creation through mln-core against `xl create`.
#[derive(Debug, Parser)]
#[command(name = "xen-bench")]
struct Args {
    /// The PV guest's kernel.
    #[arg(long)]
    kernel: PathBuf,
    /// The guest's initramfs.
    #[arg(long)]
    ramdisk: Option<PathBuf>,
    /// The guest kernel's command line.
    #[arg(long, default_value = "console=hvc0 quiet")]
    cmdline: String,
    /// Guest memory, MiB.
    #[arg(long, default_value_t = 128)]
    memory: u64,
    /// Measured rounds of one mln-core creation and one `xl create` (after
    /// one warm-up round).
    #[arg(long, default_value_t = 4)]
    reps: usize,
    /// Domain counts for the parallel measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    parallel: Vec<usize>,
    /// The `xl` program.
    #[arg(long, default_value = "xl")]
    xl: PathBuf,
    /// Folder for the xl.cfg files and xl's stderr.
    #[arg(long, default_value = "/tmp")]
    work_dir: PathBuf,
    /// What the warm-up guest prints on its console once booted ("" skips
    /// the wait).
    #[arg(long, default_value = "GUEST-ALIVE")]
    marker: String,
    /// Where xenconsoled writes guest consoles (`--log=guest`).
    #[arg(long, default_value = "/var/log/xen/console")]
    console_dir: PathBuf,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    run(&args)
}

#[cfg(not(feature = "xen"))]
fn run(_args: &Args) -> ExitCode {
    eprintln!("xen-bench: built without the `xen` feature of the examples package");
    ExitCode::from(2)
}

#[cfg(feature = "xen")]
fn run(args: &Args) -> ExitCode {
    match bench::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(bench::Failure::NoXen(e)) => {
            eprintln!("xen-bench: {e}; run it in a Xen dom0 (`cargo xtask xen-test --bench`)");
            ExitCode::from(2)
        }
        Err(bench::Failure::Error(e)) => {
            eprintln!("xen-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "xen")]
mod bench {
    use std::fs::File;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use mln_core::xen::XenHypervisor;
    use mln_core::{Boot, DomainSpec, DomainState, Error, Hypervisor};

    use super::Args;

    const MIB: u64 = 1 << 20;
    /// A bound on waiting for a guest's console marker under QEMU's TCG on
    /// a busy machine (not an assertion on speed).
    const MARKER_WAIT: Duration = Duration::from_secs(600);

    pub enum Failure {
        NoXen(String),
        Error(String),
    }

    impl From<Error> for Failure {
        fn from(e: Error) -> Self {
            Failure::Error(e.to_string())
        }
    }

    impl From<String> for Failure {
        fn from(e: String) -> Self {
            Failure::Error(e)
        }
    }

    /// Destroys, on every way out, the domains still listed.
    struct Live<'a> {
        xen: &'a XenHypervisor,
        names: Vec<String>,
    }

    impl Live<'_> {
        fn forget(&mut self, name: &str) {
            self.names.retain(|n| n != name);
        }
    }

    impl Drop for Live<'_> {
        fn drop(&mut self) {
            for name in self.names.drain(..) {
                match self.xen.destroy(&name) {
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => eprintln!("xen-bench: cleaning up {name}: {e}"),
                }
            }
        }
    }

    fn secs(d: Duration) -> String {
        format!("{:.2} s", d.as_secs_f64())
    }

    /// Median, minimum and maximum.
    fn stats(samples: &[Duration]) -> (Duration, Duration, Duration) {
        let mut s = samples.to_vec();
        s.sort();
        let n = s.len();
        if n == 0 {
            return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        }
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2
        };
        (median, s[0], s[n - 1])
    }

    fn spec(args: &Args, name: &str) -> DomainSpec {
        DomainSpec::new(
            name,
            args.memory * MIB,
            Boot::Kernel {
                kernel: args.kernel.clone(),
                ramdisk: args.ramdisk.clone(),
                cmdline: args.cmdline.clone(),
            },
        )
    }

    /// The xl.cfg `xl` turns into the same libxl configuration as `spec`
    /// (the shape mln-core's `xen_lifecycle` test compares with `xl -N`).
    fn xl_cfg(spec: &DomainSpec) -> Result<String, String> {
        let Boot::Kernel {
            kernel,
            ramdisk,
            cmdline,
        } = &spec.boot
        else {
            return Err("only PV kernel boots are benchmarked".to_string());
        };
        let quoted = |v: &str| -> Result<String, String> {
            if v.contains(['"', '\\', '\n']) {
                Err(format!("{v:?} cannot be written into an xl.cfg string"))
            } else {
                Ok(format!("\"{v}\""))
            }
        };
        let mut cfg = format!(
            "name = {}\ntype = \"pv\"\nkernel = {}\n",
            quoted(&spec.name)?,
            quoted(&kernel.to_string_lossy())?
        );
        if let Some(rd) = ramdisk {
            cfg += &format!("ramdisk = {}\n", quoted(&rd.to_string_lossy())?);
        }
        cfg += &format!(
            "extra = {}\nmemory = {}\nvcpus = {}\n",
            quoted(cmdline)?,
            spec.memory / MIB,
            spec.vcpus
        );
        Ok(cfg)
    }

    /// Run `xl ARGS` with stderr in a file (shown when it fails).
    /// `xl create` leaves a daemonised monitor behind, so nothing may wait
    /// for its pipes to close: no pipes are given to it.
    fn xl(args: &Args, words: &[&str], err_file: &Path) -> Result<(), String> {
        let err = File::create(err_file).map_err(|e| format!("{}: {e}", err_file.display()))?;
        let status = Command::new(&args.xl)
            .args(words)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", args.xl.display()))?;
        if status.success() {
            Ok(())
        } else {
            let text = std::fs::read_to_string(err_file).unwrap_or_default();
            Err(format!(
                "xl {} failed ({status}): {}",
                words.join(" "),
                text.trim()
            ))
        }
    }

    fn expect_running(xen: &XenHypervisor, name: &str) -> Result<(), Failure> {
        let info = xen.info(name)?;
        if info.state != DomainState::Running {
            return Err(Failure::Error(format!(
                "{name} is {} right after creation, not running",
                info.state
            )));
        }
        Ok(())
    }

    fn wait_marker(args: &Args, name: &str) -> Result<(), String> {
        if args.marker.is_empty() {
            return Ok(());
        }
        let log = args.console_dir.join(format!("guest-{name}.log"));
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(&args.marker) {
                return Ok(());
            }
            if start.elapsed() > MARKER_WAIT {
                return Err(format!(
                    "{name}: {} never appeared in {}",
                    args.marker,
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One domain through mln-core: (create -> running, one `info` of the
    /// running domain, destroy). `create` builds such a report too, so the
    /// `info` time shows what the report adds to libxl's own work.
    fn one_mln(
        args: &Args,
        live: &mut Live<'_>,
        name: &str,
        marker: bool,
    ) -> Result<(Duration, Duration, Duration), Failure> {
        let xen = live.xen;
        let s = spec(args, name);
        live.names.push(name.to_string());
        let begun = Instant::now();
        xen.create(&s)?;
        xen.start(name)?;
        let up = begun.elapsed();
        let t = Instant::now();
        expect_running(xen, name)?;
        let report = t.elapsed();
        if marker {
            wait_marker(args, name)?;
            println!(
                "  {name}: guest printed {:?} {} after creation began",
                args.marker,
                secs(begun.elapsed())
            );
        }
        let t = Instant::now();
        xen.destroy(name)?;
        let down = t.elapsed();
        live.forget(name);
        Ok((up, report, down))
    }

    /// One domain through `xl create`: (create -> running, `xl destroy`).
    fn one_xl(
        args: &Args,
        live: &mut Live<'_>,
        name: &str,
    ) -> Result<(Duration, Duration), Failure> {
        let cfg_path = args.work_dir.join(format!("{name}.cfg"));
        std::fs::write(&cfg_path, xl_cfg(&spec(args, name))?)
            .map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        let err = args.work_dir.join(format!("{name}.xl-err"));
        let cfg = cfg_path.to_string_lossy().into_owned();
        live.names.push(name.to_string());
        let t = Instant::now();
        xl(args, &["create", &cfg], &err)?;
        let up = t.elapsed();
        expect_running(live.xen, name)?;
        let t = Instant::now();
        xl(args, &["destroy", name], &err)?;
        let down = t.elapsed();
        live.forget(name);
        Ok((up, down))
    }

    /// `n` domains created and started by `n` threads over one context:
    /// (wall time until all run, each domain's own time).
    /// With `own_context`, each thread connects its own libxl context first
    /// (inside its timing), as each `xl` process does; otherwise all share
    /// the bench's one context.
    fn parallel_mln(
        args: &Args,
        live: &mut Live<'_>,
        n: usize,
        own_context: bool,
    ) -> Result<(Duration, Vec<Duration>), Failure> {
        let xen = live.xen;
        let tag = if own_context { "own" } else { "mln" };
        let names: Vec<String> = (1..=n).map(|k| format!("bench-p{n}-{tag}-{k}")).collect();
        live.names.extend(names.iter().cloned());
        let t = Instant::now();
        let each: Vec<Result<Duration, Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .iter()
                .map(|name| {
                    let s = spec(args, name);
                    scope.spawn(move || {
                        let mine = Instant::now();
                        let own;
                        let hv = if own_context {
                            own = XenHypervisor::connect()?;
                            &own
                        } else {
                            xen
                        };
                        hv.create(&s)?;
                        hv.start(&s.name)?;
                        Ok(mine.elapsed())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Backend {
                            what: "xen-bench".to_string(),
                            message: "a creating thread panicked".to_string(),
                        })
                    })
                })
                .collect()
        });
        let wall = t.elapsed();
        let each = each.into_iter().collect::<Result<Vec<_>, _>>()?;
        for name in &names {
            expect_running(xen, name)?;
        }
        for name in &names {
            xen.destroy(name)?;
            live.forget(name);
        }
        Ok((wall, each))
    }

    /// `n` `xl create` processes started at once: wall time until all
    /// returned.
    fn parallel_xl(args: &Args, live: &mut Live<'_>, n: usize) -> Result<Duration, Failure> {
        let names: Vec<String> = (1..=n).map(|k| format!("bench-p{n}-xl-{k}")).collect();
        let mut cfgs = Vec::new();
        for name in &names {
            let path = args.work_dir.join(format!("{name}.cfg"));
            std::fs::write(&path, xl_cfg(&spec(args, name))?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            cfgs.push(path.to_string_lossy().into_owned());
        }
        live.names.extend(names.iter().cloned());
        let t = Instant::now();
        let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .iter()
                .zip(&cfgs)
                .map(|(name, cfg)| {
                    let err = args.work_dir.join(format!("{name}.xl-err"));
                    scope.spawn(move || xl(args, &["create", cfg], &err))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("an xl thread panicked".to_string()))
                })
                .collect()
        });
        let wall = t.elapsed();
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        for name in &names {
            expect_running(live.xen, name)?;
        }
        for name in &names {
            live.xen.destroy(name)?;
            live.forget(name);
        }
        Ok(wall)
    }

    pub fn run(args: &Args) -> Result<(), Failure> {
        if args.reps == 0 {
            return Err(Failure::Error("--reps must be at least 1".to_string()));
        }
        // A fresh libxl context, as every `xl` process allocates one.
        let mut connects = Vec::new();
        for _ in 0..args.reps {
            let t = Instant::now();
            match XenHypervisor::connect() {
                Ok(x) => drop(x),
                Err(Error::XenUnavailable { reason }) => return Err(Failure::NoXen(reason)),
                Err(e) => return Err(e.into()),
            }
            connects.push(t.elapsed());
        }
        let xen = XenHypervisor::connect()?;
        let mut live = Live {
            xen: &xen,
            names: Vec::new(),
        };
        println!(
            "xen-bench: PV guest {} MiB, 1 vCPU, kernel {}, {} measured rounds",
            args.memory,
            args.kernel.display(),
            args.reps
        );
        println!("warm-up:");
        let (up, _, _) = one_mln(args, &mut live, "bench-warm-mln", true)?;
        println!("  mln-core create->running {}", secs(up));
        let (up, _) = one_xl(args, &mut live, "bench-warm-xl")?;
        println!("  xl create {}", secs(up));

        let (mut mln_up, mut mln_info, mut mln_down, mut xl_up, mut xl_down) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 1..=args.reps {
            // Alternate which goes first, so a drift in the machine's load
            // does not favour one side.
            let mln_first = round % 2 == 1;
            let mut mln = None;
            let mut xl_round = None;
            for side in 0..2 {
                if (side == 0) == mln_first {
                    mln = Some(one_mln(
                        args,
                        &mut live,
                        &format!("bench-mln-{round}"),
                        false,
                    )?);
                } else {
                    xl_round = Some(one_xl(args, &mut live, &format!("bench-xl-{round}"))?);
                }
            }
            if let (Some((mu, mi, md)), Some((xu, xd))) = (mln, xl_round) {
                println!(
                    "round {round}: mln-core {} (info {}, destroy {}), xl create {} (xl destroy {})",
                    secs(mu),
                    secs(mi),
                    secs(md),
                    secs(xu),
                    secs(xd)
                );
                mln_up.push(mu);
                mln_info.push(mi);
                mln_down.push(md);
                xl_up.push(xu);
                xl_down.push(xd);
            }
        }

        let mut rows = Vec::new();
        for &n in &args.parallel {
            if n == 0 {
                continue;
            }
            let (wall, each) = parallel_mln(args, &mut live, n, false)?;
            let (each_med, _, _) = stats(&each);
            println!(
                "parallel {n}: mln-core, one context: all running after {} (each: median {})",
                secs(wall),
                secs(each_med),
            );
            // With one domain, a context of its own is the sequential case.
            let own = if n > 1 {
                let (wall, each) = parallel_mln(args, &mut live, n, true)?;
                let (med, _, _) = stats(&each);
                println!(
                    "parallel {n}: mln-core, a context per thread: all running after {} \
                     (each: median {})",
                    secs(wall),
                    secs(med),
                );
                format!("{} (each {})", secs(wall), secs(med))
            } else {
                "-".to_string()
            };
            let xl_wall = parallel_xl(args, &mut live, n)?;
            println!(
                "parallel {n}: {n} x xl create: all returned after {}",
                secs(xl_wall)
            );
            rows.push((n, wall, each_med, own, xl_wall));
        }

        let (c, _, _) = stats(&connects);
        let (mu, mu_min, mu_max) = stats(&mln_up);
        let (xu, xu_min, xu_max) = stats(&xl_up);
        let (md, _, _) = stats(&mln_down);
        let (mi, _, _) = stats(&mln_info);
        let (xd, _, _) = stats(&xl_down);
        let ratio = mu.as_secs_f64() / xu.as_secs_f64().max(1e-9);
        let ratio_connect = (mu + c).as_secs_f64() / xu.as_secs_f64().max(1e-9);
        println!();
        println!("RESULTS (median of {} rounds, min..max)", args.reps);
        println!("| path | create -> running | destroy |");
        println!("|---|---|---|");
        println!(
            "| mln-core `create` + `start` (context open) | {} ({}..{}) | {} |",
            secs(mu),
            secs(mu_min),
            secs(mu_max),
            secs(md)
        );
        println!(
            "| mln-core, plus a fresh `XenHypervisor::connect` | {} | |",
            secs(mu + c)
        );
        println!(
            "| mln-core `info` of a running domain (`create` builds one such report) | {} | |",
            secs(mi)
        );
        println!(
            "| `xl create` of the equivalent xl.cfg | {} ({}..{}) | {} (`xl destroy`) |",
            secs(xu),
            secs(xu_min),
            secs(xu_max),
            secs(xd)
        );
        println!(
            "ratio mln-core / xl create: {ratio:.2} (context open), {ratio_connect:.2} (with connect; target <= 1.0)"
        );
        println!();
        println!(
            "| N in parallel | mln-core, one context: all running (each, median) \
             | mln-core, a context per thread | N x `xl create`: all returned |"
        );
        println!("|---|---|---|---|");
        for (n, wall, each, own, xl_wall) in rows {
            println!(
                "| {n} | {} ({}) | {own} | {} |",
                secs(wall),
                secs(each),
                secs(xl_wall)
            );
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use std::path::PathBuf;

        use super::*;

        #[test]
        fn xl_cfg_names_the_same_guest() {
            let args = Args {
                kernel: PathBuf::from("/vmlinuz"),
                ramdisk: Some(PathBuf::from("/guest.cpio")),
                cmdline: "console=hvc0 quiet".to_string(),
                memory: 128,
                reps: 1,
                parallel: vec![1],
                xl: PathBuf::from("xl"),
                work_dir: PathBuf::from("/tmp"),
                marker: String::new(),
                console_dir: PathBuf::from("/var/log/xen/console"),
            };
            let cfg = xl_cfg(&spec(&args, "b1")).unwrap();
            assert_eq!(
                cfg,
                "name = \"b1\"\ntype = \"pv\"\nkernel = \"/vmlinuz\"\nramdisk = \"/guest.cpio\"\n\
                 extra = \"console=hvc0 quiet\"\nmemory = 128\nvcpus = 1\n"
            );
            let mut bad = spec(&args, "b2");
            bad.boot = Boot::Disk;
            assert!(xl_cfg(&bad).is_err());
        }

        #[test]
        fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
            let d = |ms| Duration::from_millis(ms);
            assert_eq!(
                stats(&[d(4), d(1), d(3), d(2)]),
                (Duration::from_micros(2500), d(1), d(4))
            );
            assert_eq!(stats(&[d(5), d(1), d(3)]), (d(3), d(1), d(5)));
        }
    }
}
