//! `cargo xtask xen-test`: real Xen 4.17 inside QEMU (TCG; KVM where it
//! can run Xen), two Xen servers joined by a LAN, and the Xen tests: those
//! that reach the servers from this machine through `mln` and real ssh
//! (`examples/tests/xen_move.rs`: moves between the two dom0s, `xl
//! migrate` beside `mln`, a dead server), and those that run inside a
//! dom0 ([`IN_DOM0`]: the mln-core backend's and mln's executor on it).
//!
//! 1. `apt-get download` the Debian packages of Xen, its tools, the QEMU
//!    that serves guest disks and a kernel into the lab cache
//!    ([`lab_cache`], reused), `dpkg -x` them; build the hypervisor with
//!    shadow paging ([`hypervisor`]: PV live migration needs it; cached).
//! 2. Build the test binaries and `mln` (`cargo test --no-run`, with the
//!    Xen backend's features, [`build::XEN_FEATURES`]).
//! 3. Assemble dom0's initramfs ([`dom0`]): the toolstack, sshd, `mln`,
//!    the in-dom0 tests, the guest kernel and initramfs
//!    (`xtask/xen-lab/`).
//! 4. Boot the two servers in parallel and run the phases ([`lab`]); QEMU
//!    is killed by its pid on every path. Fail unless every phase passed.
//!
//! Usage: `cargo xtask xen-test [--demo | --bench | --figures | --debian] [--timeout SECS] [-- ARGS...]`
//! (`--debian` also runs the Debian template's router lab as Xen guests,
//! about 3 minutes more; `--figures` also times `xl migrate` beside `mln`'s live move, for
//! `benches/README.md`; ARGS go to each test binary, e.g. a test name filter;
//! `MLN_XEN_TEST_LOG=debug` shows libxl's log in dom0;
//! `MLN_XEN_LAB_ACCEL=kvm|tcg` overrides the accelerator choice).
//!
//! Opt-in modes run an `examples` binary in one dom0 instead of the tests
//! (`xtask/xen-lab/dom0-init-program`), in their own lab folder:
//! - `--demo`: `domain-demo --backend xen` creates, lists and destroys one
//!   PV guest;
//! - `--bench`: `xen-bench` (release build) times mln-core's domain
//!   creation against `xl create` and N domains in parallel.
//!
//! The program's output is printed and kept in `LAB/output.txt`; the exit
//! status is the program's.

mod build;
mod cpio;
mod dom0;
mod hypervisor;
mod lab;
mod modules;
mod network;
mod packages;
mod qemu;
mod servers;
mod storage;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The test targets that run inside a dom0 (server-b), in this order, as
/// (package, test).
const IN_DOM0: &[(&str, &str)] = &[
    ("mln-core", "xen_lifecycle"),
    ("examples", "xen_upgrade"),
    ("examples", "xen_bridge"),
];
/// The test target that runs on this machine against the two servers.
const ON_HOST: (&str, &str) = ("examples", lab::HOST_TEST);
/// Run `cmd` (an argv, never a shell line); its stdout, or an error naming
/// the program with the end of its stderr.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{program} failed ({}):\n{}",
            out.status,
            tail.join("\n")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// What runs in dom0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The two-server lab and every Xen test (the default; CI).
    Tests,
    /// `examples/src/bin/domain-demo.rs` on the Xen backend.
    Demo,
    /// `examples/src/bin/xen-bench.rs`.
    Bench,
}

impl Mode {
    /// The lab folder under `target/xen-test`: the opt-in modes keep out of
    /// the tests' folder.
    fn lab(self) -> &'static str {
        match self {
            Mode::Tests => "lab",
            Mode::Demo => "lab-demo",
            Mode::Bench => "lab-bench",
        }
    }
}

struct Options {
    mode: Mode,
    /// Also time `xl migrate` between the two servers beside `mln`'s move
    /// (`--figures`: for `benches/README.md`; not in CI).
    figures: bool,
    /// Also run the Debian template's router lab as Xen guests
    /// (`--debian`: about 3 minutes more; not in CI).
    debian: bool,
    timeout: Duration,
    test_args: Vec<String>,
}

const USAGE: &str = "usage: cargo xtask xen-test [--demo | --bench | --figures | --debian] \
     [--timeout SECS] [-- ARGS]";

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        mode: Mode::Tests,
        figures: false,
        debian: false,
        timeout: Duration::from_secs(2400),
        test_args: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs seconds")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v:?}: not seconds"))?;
                o.timeout = Duration::from_secs(secs);
            }
            "--demo" | "--bench" => {
                if o.mode != Mode::Tests {
                    return Err(format!("--demo and --bench exclude each other; {USAGE}"));
                }
                o.mode = if a == "--demo" {
                    Mode::Demo
                } else {
                    Mode::Bench
                };
            }
            "--figures" => o.figures = true,
            "--debian" => o.debian = true,
            "--" => {
                o.test_args = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown option {other:?}; {USAGE}")),
        }
    }
    Ok(o)
}

fn write_script(src: &Path, dest: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    copy(src, dest)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).map_err(io_err(dest))
}

/// The lines dom0 printed between the start and exit markers.
fn test_output(log: &str) -> String {
    let from = log.find(qemu::START).map_or(0, |i| i + qemu::START.len());
    let to = log[from..].find(qemu::EXIT).map_or(log.len(), |i| from + i);
    log[from..to].replace('\r', "")
}

/// The host's load average (`/proc/loadavg`'s first three fields): QEMU's
/// TCG shares the host's CPUs, so timings need it beside them.
fn host_load() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The machine-wide cache of the lab: the Debian packages and the
/// hypervisor built from source, kept across checkouts and CI runs
/// (`MLN_XEN_LAB_CACHE`, else `$XDG_CACHE_HOME/mln-xen-lab`, else
/// `~/.cache/mln-xen-lab`, else the target folder).
fn lab_cache(target: &Path) -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("MLN_XEN_LAB_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("mln-xen-lab")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/mln-xen-lab")))
        .unwrap_or_else(|| target.join("xen-test/cache"))
}

/// What dom0 runs in `mode`: the in-dom0 tests and `mln` (tests), or the
/// one program at `/program`.
fn payload(
    mode: Mode,
    binaries: &[(String, PathBuf)],
    mln: Option<&Path>,
    extra: &[String],
) -> dom0::Payload {
    let (args_file, init, mut args) = match mode {
        Mode::Tests => (
            "test-args",
            "dom0-init",
            vec!["--nocapture".to_string(), "--test-threads=2".to_string()],
        ),
        Mode::Demo => (
            "program-args",
            "dom0-init-program",
            [
                "--backend",
                "xen",
                "--kernel",
                "/vmlinuz",
                "--ramdisk",
                "/guest.cpio",
            ]
            .map(String::from)
            .to_vec(),
        ),
        Mode::Bench => (
            "program-args",
            "dom0-init-program",
            ["--kernel", "/vmlinuz", "--ramdisk", "/guest.cpio"]
                .map(String::from)
                .to_vec(),
        ),
    };
    args.extend(extra.iter().cloned());
    let mut placed: Vec<(PathBuf, String)> = binaries
        .iter()
        .enumerate()
        .map(|(i, (name, path))| {
            let dest = match mode {
                Mode::Tests => format!("xen-tests/{}-{name}", i + 1),
                Mode::Demo | Mode::Bench => "program".to_string(),
            };
            (path.clone(), dest)
        })
        .collect();
    if let Some(mln) = mln {
        placed.push((mln.to_path_buf(), "usr/bin/mln".to_string()));
    }
    dom0::Payload {
        binaries: placed,
        args_file,
        args,
        init,
        servers: None,
    }
}

/// `--demo` and `--bench`: one machine runs the program and powers off.
fn run_program(lab: &Path, opts: &Options) -> Result<(), String> {
    let mut m = qemu::Machine::boot(
        lab,
        &qemu::Boot {
            name: "dom0".into(),
            memory_mib: 2048,
            dom0_mib: 768,
            dom0_words: Vec::new(),
            args: Vec::new(),
            accel: qemu::accelerator(),
        },
    )?;
    let load_before = host_load();
    let outcome = m.wait_for("", opts.timeout);
    eprintln!(
        "xen-test: host load average {load_before} before the boot, {} after",
        host_load()
    );
    let qemu::Outcome::Finished(rc) = outcome else {
        return Err(qemu::failure(
            &m,
            "running the program",
            outcome,
            opts.timeout,
        ));
    };
    let output = test_output(&m.log());
    let output = output.trim();
    println!("{output}");
    let saved = lab.join("output.txt");
    fs::write(&saved, format!("{output}\n")).map_err(io_err(&saved))?;
    if rc == 0 {
        eprintln!(
            "xen-test: the program ran on real Xen; output kept in {}",
            saved.display()
        );
        Ok(())
    } else {
        Err(format!(
            "the program failed in dom0 (exit status {rc}); serial log {}",
            m.log_path().display()
        ))
    }
}

/// The task.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let root = workspace_root();
    let target = target_dir(&root);
    let cache = lab_cache(&target);
    let pkgs = packages::fetch_and_unpack(&cache)?;
    let xen = hypervisor::with_shadow_paging(&cache, &pkgs)?;
    let lab = target.join("xen-test").join(opts.mode.lab());
    fs::create_dir_all(&lab).map_err(io_err(&lab))?;
    if opts.mode != Mode::Tests {
        let bin = match opts.mode {
            Mode::Demo => build::example(&root, "domain-demo", false)?,
            _ => build::example(&root, "xen-bench", true)?,
        };
        let p = payload(opts.mode, &[("program".into(), bin)], None, &opts.test_args);
        dom0::assemble(&root, &pkgs, &xen, &lab, &p)?;
        return run_program(&lab, &opts);
    }
    let mut targets = IN_DOM0.to_vec();
    targets.push(ON_HOST);
    let built = build::tests(&root, &targets)?;
    let mln = built.mln.clone().ok_or("cargo built no mln binary")?;
    let (host_test, in_dom0) = built.tests.split_last().ok_or("cargo built no tests")?;
    let setup = lab::prepare(&lab, &pkgs.join("bin/busybox"))?;
    let mut p = payload(Mode::Tests, in_dom0, Some(&mln), &opts.test_args);
    p.servers = Some((setup.servers.clone(), setup.keys.clone()));
    dom0::assemble(&root, &pkgs, &xen, &lab, &p)?;
    let extras = lab::Extras {
        compare_xl: opts.figures,
        debian: opts.debian,
    };
    lab::run(&setup, &host_test.1, &mln, &opts.test_args, extras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_a_timeout_and_pass_test_arguments_on() {
        let args: Vec<String> = ["--timeout", "60", "--", "reboot", "--exact"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_args(&args).unwrap();
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert_eq!(o.test_args, ["reboot", "--exact"]);
        assert!(parse_args(&["--timeout".to_string()]).is_err());
        assert!(parse_args(&["--bogus".to_string()]).is_err());
        assert_eq!(o.mode, Mode::Tests);
    }

    #[test]
    fn demo_and_bench_are_opt_in_modes_with_their_own_lab() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse_args(&args(&["--demo"])).unwrap();
        assert_eq!(o.mode, Mode::Demo);
        let o = parse_args(&args(&["--bench", "--", "--reps", "2"])).unwrap();
        assert_eq!(
            (o.mode, o.test_args.as_slice()),
            (Mode::Bench, &args(&["--reps", "2"])[..])
        );
        assert!(parse_args(&args(&["--demo", "--bench"])).is_err());
        assert_eq!(Mode::Tests.lab(), "lab");
        assert_ne!(Mode::Demo.lab(), Mode::Bench.lab());
        let bins = |names: &[&str]| -> Vec<(String, PathBuf)> {
            names
                .iter()
                .map(|n| (n.to_string(), PathBuf::from(format!("/b/{n}"))))
                .collect()
        };
        let p = payload(
            Mode::Tests,
            &bins(&["xen_lifecycle", "xen_upgrade"]),
            Some(Path::new("/b/mln")),
            &args(&["reboot"]),
        );
        let dests: Vec<&str> = p.binaries.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(
            dests,
            [
                "xen-tests/1-xen_lifecycle",
                "xen-tests/2-xen_upgrade",
                "usr/bin/mln"
            ],
            "dom0's /run-tests runs the tests in this order"
        );
        assert_eq!((p.args_file, p.init), ("test-args", "dom0-init"));
        assert_eq!(p.args, args(&["--nocapture", "--test-threads=2", "reboot"]));
        let p = payload(
            Mode::Bench,
            &bins(&["xen-bench"]),
            None,
            &args(&["--reps", "2"]),
        );
        assert_eq!(
            p.binaries,
            [(PathBuf::from("/b/xen-bench"), "program".into())]
        );
        assert_eq!(p.init, "dom0-init-program");
        assert_eq!(&p.args[p.args.len() - 2..], &args(&["--reps", "2"])[..]);
    }

    #[test]
    fn test_output_is_what_dom0_printed_between_the_markers() {
        let log = "(XEN) boot\r\nMLN-XEN-TEST-START\r\ntest a ... ok\r\nMLN-XEN-TEST-EXIT rc=0\r\npower off";
        assert_eq!(test_output(log).trim(), "test a ... ok");
    }
}
