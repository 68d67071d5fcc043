//! `cargo xtask scale`: how `mln` does at the size it is for (issue #18).
//! For each N: a flat lab of N busybox UML guests on switches of up to 50
//! ports ([`lab`]) brought up with the release `mln` (every guest
//! boot-confirmed), one ping per switch, `stop`, the same command lines
//! started again from a plain loop ([`plain`]), then `remove`. Printed as
//! a table: up time, the two ratios measured in the same run (against the
//! plain loop, and against the CPU floor: one guest's boot CPU × N ÷
//! cores), host CPU and memory per guest, `mln`'s own peak memory, stop
//! and remove times, and anything left behind.
//!
//! Usage: `cargo xtask scale [--sizes 50,100,200] [--memory 64M]
//! [--per-switch 50] [--no-baseline]`. Runs as whoever runs it (UML needs
//! no root); the kernel is `mln`'s choice (`MLN_UML_KERNEL` to force one).
//! Timing is reported, never asserted.

mod lab;
mod plain;
mod probe;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lab::{Lab, PING_OK};

const USAGE: &str =
    "usage: cargo xtask scale [--sizes 50,100,200] [--memory 64M] [--per-switch 50] [--no-baseline]";

struct Options {
    sizes: Vec<usize>,
    memory: String,
    per_switch: usize,
    baseline: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        sizes: vec![50, 100, 200],
        memory: "64M".into(),
        per_switch: 50,
        baseline: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value; {USAGE}"));
        match a.as_str() {
            "--sizes" => {
                o.sizes = value()?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("--sizes: {n:?}"))
                    })
                    .collect::<Result<_, _>>()?;
                if o.sizes.iter().any(|&n| n == 0 || n > 2000) {
                    return Err("--sizes: 1 to 2000 guests".into());
                }
            }
            "--memory" => o.memory = value()?.clone(),
            "--per-switch" => {
                let v = value()?;
                o.per_switch = v
                    .parse()
                    .ok()
                    .filter(|n| (2..=1000).contains(n))
                    .ok_or(format!("--per-switch {v:?}: 2 to 1000"))?;
            }
            "--no-baseline" => o.baseline = false,
            other => return Err(format!("unknown option {other:?}; {USAGE}")),
        }
    }
    Ok(o)
}

/// The release `mln`.
fn build_mln(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask scale: building mln (release)");
    let st = Command::new(cargo)
        .args(["build", "-q", "--release", "-p", "examples", "--bin", "mln"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !st.success() {
        return Err("cargo build of mln failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/mln"))
}

/// `mln` with the benchmark's state and template folders.
struct Mln {
    bin: PathBuf,
    templates: PathBuf,
    logs: PathBuf,
}

impl Mln {
    fn command(&self, state: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("MLN_STATE_DIR", state)
            .env("MLN_TEMPLATE_DIR", &self.templates)
            .env("NO_COLOR", "1");
        c
    }

    /// Run and time `mln ARGS`, its output kept in the logs folder as
    /// `name.log`; fails with the log's tail when it fails.
    fn timed(&self, state: &Path, args: &[&str], name: &str) -> Result<probe::Run, String> {
        let log = self.logs.join(format!("{name}.log"));
        let limit = Duration::from_secs(1200);
        let run = probe::run(&mut self.command(state, args), &log, limit)?;
        if !run.status.success() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            return Err(format!(
                "mln {}: {}; {}:\n{}",
                args.join(" "),
                run.status,
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        Ok(run)
    }

    /// How many of `hosts` wrote the ping marker on their console within
    /// `limit`.
    fn pinged(&self, state: &Path, project: &str, hosts: &[String], limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut waiting: Vec<&String> = hosts.iter().collect();
        while !waiting.is_empty() && Instant::now() < deadline {
            waiting.retain(|h| {
                let out = self.command(state, &["log", "-p", project, h]).output();
                !out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(PING_OK))
            });
            std::thread::sleep(Duration::from_millis(500));
        }
        hosts.len() - waiting.len()
    }
}

/// One size's figures.
struct Row {
    n: usize,
    up: probe::Run,
    mem_per_guest: f64,
    pinged: (usize, usize),
    stop: Option<Duration>,
    plain: Result<Duration, String>,
    remove: Duration,
    left: usize,
}

fn bring_up(mln: &Mln, dir: &Path, lab: &Lab) -> Result<(PathBuf, probe::Run, f64), String> {
    let state = dir.join(format!("state-{}", lab.guests));
    let _ = fs::remove_dir_all(&state);
    let file = dir.join(format!("{}.mln", lab.project));
    fs::write(&file, lab.text()).map_err(|e| format!("{}: {e}", file.display()))?;
    let before = probe::mem_available()?;
    let file = file.to_string_lossy().into_owned();
    let up = mln.timed(&state, &["up", &file], &format!("{}-up", lab.project))?;
    let after = probe::mem_available()?;
    let per_guest = before.saturating_sub(after) as f64 / lab.guests as f64;
    Ok((state, up, per_guest))
}

fn measure(mln: &Mln, dir: &Path, lab: &Lab, baseline: bool) -> Result<Row, String> {
    eprintln!("xtask scale: {} guests", lab.guests);
    let (state, up, mem_per_guest) = bring_up(mln, dir, lab)?;
    let pingers = lab.pingers();
    let pinged = (
        mln.pinged(&state, &lab.project, &pingers, Duration::from_secs(90)),
        pingers.len(),
    );
    let (mut stop, mut plain) = (None, Err("not run (--no-baseline)".to_string()));
    if baseline {
        let captured = plain::capture(&state);
        let s = mln.timed(
            &state,
            &["stop", "-p", &lab.project],
            &format!("{}-stop", lab.project),
        )?;
        stop = Some(s.wall);
        if captured.guests() != lab.guests {
            plain = Err(format!(
                "{} of {} guests' command lines read",
                captured.guests(),
                lab.guests
            ));
        } else {
            let logs = dir.join(format!("plain-{}", lab.guests));
            let marker = mln_core::template::BOOT_FINISHED;
            plain =
                plain::start(&captured, &logs, marker, Duration::from_secs(900)).map(|started| {
                    let wall = started.wall;
                    started.end(&state);
                    wall
                });
            plain::kill_all(&state);
        }
        // Up again (not timed), so that `remove` is timed on N running
        // guests as a user would run it.
        mln.timed(
            &state,
            &["up", "-p", &lab.project],
            &format!("{}-up-again", lab.project),
        )?;
    }
    let remove = mln.timed(
        &state,
        &["remove", "-p", &lab.project],
        &format!("{}-remove", lab.project),
    )?;
    let left = mln_core::uml::processes_mentioning(&state).len()
        + usize::from(state.join(&lab.project).exists());
    Ok(Row {
        n: lab.guests,
        up,
        mem_per_guest,
        pinged,
        stop,
        plain,
        remove: remove.wall,
        left,
    })
}

fn print_table(rows: &[Row], floor_cpu: f64, cores: usize, memory: &str) {
    println!(
        "\nOne guest's up: {floor_cpu:.2} CPU-s of the host; {cores} cores; guests of {memory}.\n"
    );
    println!(
        "| N | up | plain loop | up / plain | CPU floor | up / floor | host CPU / guest | \
         memory / guest | mln peak | pinged | stop | remove | left |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        let up = r.up.wall.as_secs_f64();
        let floor = floor_cpu * r.n as f64 / cores as f64;
        let (plain, ratio) = match &r.plain {
            Ok(p) => (
                format!("{:.1} s", p.as_secs_f64()),
                format!("{:.2}", up / p.as_secs_f64()),
            ),
            Err(e) => (format!("({e})"), "–".into()),
        };
        println!(
            "| {} | {up:.1} s | {plain} | {ratio} | {floor:.1} s | {:.2} | {:.2} s | {:.0} MB | {:.0} MB | {}/{} | {} | {:.1} s | {} |",
            r.n,
            up / floor,
            r.up.host_cpu / r.n as f64,
            r.mem_per_guest / 1e6,
            r.up.peak_rss as f64 / 1e6,
            r.pinged.0,
            r.pinged.1,
            r.stop.map_or("–".into(), |s| format!("{:.1} s", s.as_secs_f64())),
            r.remove.as_secs_f64(),
            r.left,
        );
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or("no workspace root")?;
    let bin = build_mln(&root)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("scale");
    let mln = Mln {
        bin,
        templates: dir.join("templates"),
        logs: dir.join("logs"),
    };
    fs::create_dir_all(&mln.logs).map_err(|e| format!("{}: {e}", mln.logs.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // The CPU floor: one guest's up, the template already built.
    let one = |project: &str| Lab {
        project: project.into(),
        guests: 1,
        per_switch: opts.per_switch,
        memory: opts.memory.clone(),
    };
    let warm = one("scalewarm");
    let (state, _, _) = bring_up(&mln, &dir, &warm)?;
    mln.timed(&state, &["remove", "-p", &warm.project], "scalewarm-remove")?;
    let single = one("scaleone");
    let (state, up, _) = bring_up(&mln, &dir, &single)?;
    mln.timed(
        &state,
        &["remove", "-p", &single.project],
        "scaleone-remove",
    )?;
    let floor_cpu = up.host_cpu;

    let mut rows = Vec::new();
    for &n in &opts.sizes {
        let lab = Lab {
            project: format!("scale{n}"),
            guests: n,
            per_switch: opts.per_switch,
            memory: opts.memory.clone(),
        };
        match measure(&mln, &dir, &lab, opts.baseline) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("xtask scale: {n} guests: {e}");
                let state = dir.join(format!("state-{n}"));
                plain::kill_all(&state);
                let _ = mln
                    .command(&state, &["remove", "-p", &lab.project])
                    .output();
            }
        }
        print_table(&rows, floor_cpu, cores, &opts.memory);
    }
    if rows.len() < opts.sizes.len() {
        return Err(format!(
            "{} of {} sizes failed (see above)",
            opts.sizes.len() - rows.len(),
            opts.sizes.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_choose_sizes_memory_and_switch_size() {
        let o = parse_args(&args(&[])).unwrap();
        assert_eq!(
            (o.sizes, o.memory.as_str(), o.per_switch, o.baseline),
            (vec![50, 100, 200], "64M", 50, true)
        );
        let o = parse_args(&args(&[
            "--sizes",
            "10, 20",
            "--memory",
            "32M",
            "--per-switch",
            "25",
            "--no-baseline",
        ]))
        .unwrap();
        assert_eq!(
            (o.sizes, o.memory.as_str(), o.per_switch, o.baseline),
            (vec![10, 20], "32M", 25, false)
        );
        assert!(parse_args(&args(&["--sizes", "0"])).is_err());
        assert!(parse_args(&args(&["--per-switch", "1"])).is_err());
        assert!(parse_args(&args(&["--sizes"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
    }
}
