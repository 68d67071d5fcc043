//! `cargo xtask xen-test`: real Xen 4.17 inside QEMU (TCG), with the Xen
//! integration tests running in its dom0, one binary after the other
//! ([`TEST_TARGETS`]): the mln-core backend's (`mln-core/tests/xen_lifecycle.rs`)
//! and mln's executor on that backend (`examples/tests/xen_upgrade.rs`,
//! `xen_move.rs`, `xen_bridge.rs`).
//!
//! 1. `apt-get download` the Debian packages of Xen, its tools, the QEMU
//!    that serves guest disks and a kernel into `target/xen-test/debs`
//!    (reused when present), `dpkg -x` them.
//! 2. Build the test binaries (`cargo test --no-run --message-format=json`,
//!    with the Xen backend's features, [`XEN_FEATURES`]).
//! 3. Assemble dom0's initramfs: busybox, the Xen modules and daemons, what
//!    guest disks need ([`storage`]) and project switches ([`network`]),
//!    the test binaries and every library `ldd` lists, the guest kernel and
//!    guest initramfs (`xtask/xen-lab/`).
//! 4. Boot QEMU, watch the serial log for dom0's markers or a crash, kill
//!    QEMU by its pid on every path, print the tests' output, and fail
//!    unless they passed.
//!
//! Usage: `cargo xtask xen-test [--demo | --bench] [--timeout SECS] [-- ARGS...]`
//! (ARGS go to each binary run in dom0, e.g. a test name filter;
//! `MLN_XEN_TEST_LOG=debug` shows libxl's log). Exit status 0 only when
//! every test passed in dom0.
//!
//! Opt-in modes run an `examples` binary in dom0 instead of the tests
//! (`xtask/xen-lab/dom0-init-program`), in their own lab folder:
//! - `--demo`: `domain-demo --backend xen` creates, lists and destroys one
//!   PV guest;
//! - `--bench`: `xen-bench` (release build) times mln-core's domain
//!   creation against `xl create` and N domains in parallel.
//!
//! The program's output is printed and kept in `LAB/output.txt`; the exit
//! status is the program's.

mod cpio;
mod network;
mod packages;
mod qemu;
mod storage;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The integration test targets that run in dom0, in this order, as
/// (package, test).
const TEST_TARGETS: &[(&str, &str)] = &[
    ("mln-core", "xen_lifecycle"),
    ("examples", "xen_upgrade"),
    ("examples", "xen_move"),
    ("examples", "xen_bridge"),
];
/// The cargo features the Xen tests and binaries are built with: the Xen
/// backend is off by default in mln-core (each [`TEST_TARGETS`] entry
/// requires it), so it is asked for by name rather than left to the
/// examples package's defaults.
const XEN_FEATURES: &str = "mln-core/xen,examples/xen";
/// Xen tools dom0 needs, from `usr/lib/xen-4.17/bin`.
const XEN_TOOLS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xenconsole",
    "xen-init-dom0",
    "libxl-save-helper",
];
/// Kernel modules dom0 loads (paths under the kernel's `drivers`; the
/// block backends' are in [`storage::MODULES`]).
const XEN_MODULES: &[&str] = &[
    "xen/xen-evtchn.ko",
    "xen/xen-privcmd.ko",
    "xen/xen-gntdev.ko",
    "xen/xen-gntalloc.ko",
    "xen/xenfs/xenfs.ko",
];

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
    /// The [`TEST_TARGETS`] integration tests (the default; CI).
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
    timeout: Duration,
    test_args: Vec<String>,
}

const USAGE: &str = "usage: cargo xtask xen-test [--demo | --bench] [--timeout SECS] [-- ARGS]";

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        mode: Mode::Tests,
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
            "--" => {
                o.test_args = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown option {other:?}; {USAGE}")),
        }
    }
    Ok(o)
}

/// Build the [`TEST_TARGETS`] in one cargo run (one feature set, one
/// build of each crate) and return (test name, executable), in order.
fn build_test_binaries(root: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let names: Vec<&str> = TEST_TARGETS.iter().map(|(_, t)| *t).collect();
    eprintln!("xen-test: building the tests {}", names.join(", "));
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for (package, test) in TEST_TARGETS {
        cmd.args(["-p", package, "--test", test]);
    }
    cmd.args(["--features", XEN_FEATURES]);
    let out = run_checked(cmd.current_dir(root))?;
    let mut built: Vec<(String, PathBuf)> = Vec::new();
    for line in out.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        if msg["reason"] == "compiler-artifact" && names.contains(&name) {
            if let Some(exe) = msg["executable"].as_str() {
                built.push((name.to_string(), PathBuf::from(exe)));
            }
        }
    }
    names
        .iter()
        .map(|n| {
            built
                .iter()
                .find(|(b, _)| b == n)
                .cloned()
                .ok_or_else(|| format!("cargo built no executable for test {n}"))
        })
        .collect()
}

/// Build binary `bin` of the `examples` package (release when `release`)
/// and return its path.
fn build_example(root: &Path, bin: &str, release: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let profile = if release { "release" } else { "dev" };
    eprintln!("xen-test: building examples' {bin} ({profile})");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "examples", "--bin", bin])
        .args(["--features", XEN_FEATURES])
        .args(["--message-format=json-render-diagnostics"])
        .current_dir(root);
    if release {
        cmd.arg("--release");
    }
    let out = run_checked(&mut cmd)?;
    for line in out.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == bin {
            if let Some(exe) = msg["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    Err(format!("cargo built no executable for {bin}"))
}

/// What dom0 runs: binaries and where each goes in dom0's root, the file
/// their arguments go to (one per line) and the /init that runs them.
struct Payload {
    binaries: Vec<(PathBuf, String)>,
    args_file: &'static str,
    args: Vec<String>,
    init: &'static str,
}

impl Payload {
    /// `binaries` as (name, path): in [`Mode::Tests`] each goes to
    /// `/xen-tests/N-NAME`, which dom0's /init runs in that order; in the
    /// other modes the one binary is `/program`.
    fn new(mode: Mode, binaries: &[(String, PathBuf)], extra: &[String]) -> Self {
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
        let binaries = binaries
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
        Payload {
            binaries,
            args_file,
            args,
            init,
        }
    }
}

/// The libraries `ldd` lists for `binary` (resolved against the unpacked
/// packages first), as (soname, path).
fn libraries(binary: &Path, pkg_root: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let libpath = format!(
        "{}:{}",
        pkg_root.join("usr/lib/x86_64-linux-gnu").display(),
        pkg_root.join("usr/lib").display()
    );
    let out = run_checked(
        Command::new("ldd")
            .arg(binary)
            .env("LD_LIBRARY_PATH", libpath),
    )?;
    let mut libs = Vec::new();
    for line in out.lines() {
        let mut parts = line.split("=>");
        let (Some(name), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = rest.split_whitespace().next().unwrap_or("");
        if path == "not" {
            return Err(format!(
                "{}: library {} not found",
                binary.display(),
                name.trim()
            ));
        }
        if path.starts_with('/') {
            libs.push((name.trim().to_string(), PathBuf::from(path)));
        }
    }
    Ok(libs)
}

fn write_script(src: &Path, dest: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    copy(src, dest)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).map_err(io_err(dest))
}

/// Assemble `lab/`: `xen`, `vmlinuz` and `dom0.cpio`.
fn assemble(root: &Path, pkgs: &Path, lab: &Path, payload: &Payload) -> Result<(), String> {
    let files = root.join("xtask/xen-lab");
    let console = [cpio::CharDev {
        name: "dev/console",
        major: 5,
        minor: 1,
    }];

    // The hypervisor: QEMU's multiboot loader takes the unpacked 32-bit ELF.
    let xen_gz = pkgs.join("boot/xen-4.17-amd64.gz");
    let xen = fs::File::create(lab.join("xen")).map_err(io_err(&lab.join("xen")))?;
    let st = Command::new("gunzip")
        .arg("-c")
        .arg(&xen_gz)
        .stdout(xen)
        .status()
        .map_err(|e| format!("cannot run gunzip: {e}"))?;
    if !st.success() {
        return Err(format!("gunzip {} failed ({st})", xen_gz.display()));
    }
    let boot = pkgs.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .map_err(io_err(&boot))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or("no vmlinuz-* in the kernel package")?;
    copy(&vmlinuz, &lab.join("vmlinuz"))?;

    // The guest's initramfs.
    let guest = lab.join("guest");
    let _ = fs::remove_dir_all(&guest);
    for d in ["bin", "sbin", "proc", "sys", "dev"] {
        fs::create_dir_all(guest.join(d)).map_err(io_err(&guest))?;
    }
    copy(&pkgs.join("bin/busybox"), &guest.join("bin/busybox"))?;
    write_script(&files.join("guest-init"), &guest.join("init"))?;
    write_script(&files.join("guest-poweroff"), &guest.join("sbin/poweroff"))?;
    write_script(&files.join("guest-reboot"), &guest.join("sbin/reboot"))?;

    // dom0's root.
    let dom0 = lab.join("dom0");
    let _ = fs::remove_dir_all(&dom0);
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/run",
        "var/lib",
        "var/log",
        "etc/xen/scripts",
        "lib/modules",
        "lib64",
        "lib/x86_64-linux-gnu",
        "usr/lib/xen-4.17/bin",
        "usr/bin",
        "xen-tests",
    ] {
        fs::create_dir_all(dom0.join(d)).map_err(io_err(&dom0))?;
    }
    cpio::write_tree(&guest, &console, &dom0.join("guest.cpio"))
        .map_err(|e| format!("guest.cpio: {e}"))?;
    copy(&pkgs.join("bin/busybox"), &dom0.join("bin/busybox"))?;
    copy(&vmlinuz, &dom0.join("vmlinuz"))?;
    let modules = pkgs.join("lib/modules");
    let kver = fs::read_dir(&modules)
        .map_err(io_err(&modules))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .next()
        .ok_or("no kernel modules in the kernel package")?;
    for m in XEN_MODULES.iter().chain(storage::MODULES) {
        let src = kver.join("kernel/drivers").join(m);
        let name = Path::new(m).file_name().unwrap_or_default();
        copy(&src, &dom0.join("lib/modules").join(name))?;
    }
    let mut binaries = Vec::new();
    for t in XEN_TOOLS {
        let dest = dom0.join("usr/lib/xen-4.17/bin").join(t);
        copy(&pkgs.join("usr/lib/xen-4.17/bin").join(t), &dest)?;
        binaries.push(dest);
    }
    binaries.extend(storage::install(pkgs, &dom0)?);
    binaries.extend(network::install(&kver, &dom0)?);
    // The test binaries, without debug info (dom0's RAM holds the initramfs).
    for (bin, dest) in &payload.binaries {
        let dest = dom0.join(dest);
        if run_checked(
            Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&dest)
                .arg(bin),
        )
        .is_err()
        {
            copy(bin, &dest)?;
        }
        binaries.push(dest);
    }
    for b in &binaries {
        for (soname, path) in libraries(b, pkgs)? {
            let dest = if soname.starts_with('/') {
                dom0.join(soname.trim_start_matches('/'))
            } else {
                dom0.join("lib/x86_64-linux-gnu").join(&soname)
            };
            if !dest.exists() {
                copy(&path, &dest)?;
            }
        }
    }
    copy(
        Path::new("/lib64/ld-linux-x86-64.so.2"),
        &dom0.join("lib64/ld-linux-x86-64.so.2"),
    )?;
    // Without it xl aborts at exit ("libgcc_s.so.1 must be installed for pthread_cancel").
    copy(
        Path::new("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
        &dom0.join("lib/x86_64-linux-gnu/libgcc_s.so.1"),
    )?;
    fs::write(dom0.join("etc/xen/xl.conf"), "").map_err(io_err(&dom0))?;
    fs::write(dom0.join(payload.args_file), payload.args.join("\n")).map_err(io_err(&dom0))?;
    // libxl's log level inside dom0 (read by the test's logger).
    let level = std::env::var("MLN_XEN_TEST_LOG").unwrap_or_else(|_| "warn".to_string());
    if !["off", "error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
        return Err(format!(
            "MLN_XEN_TEST_LOG={level:?}: use error, warn, info, debug or trace"
        ));
    }
    fs::write(dom0.join("test-log"), level).map_err(io_err(&dom0))?;
    write_script(&files.join(payload.init), &dom0.join("init"))?;
    cpio::write_tree(&dom0, &console, &lab.join("dom0.cpio"))
        .map_err(|e| format!("dom0.cpio: {e}"))?;
    Ok(())
}

/// The lines dom0 printed between the start and exit markers.
fn test_output(log: &str) -> String {
    let from = log.find(qemu::START).map_or(0, |i| i + qemu::START.len());
    let to = log[from..].find(qemu::EXIT).map_or(log.len(), |i| from + i);
    log[from..to].replace('\r', "")
}

fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .join("\n")
        .replace('\r', "")
}

/// The host's load average (`/proc/loadavg`'s first three fields): QEMU's
/// TCG shares the host's CPUs, so timings need it beside them.
fn host_load() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The task.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let root = workspace_root();
    let cache = target_dir(&root).join("xen-test");
    let pkgs = packages::fetch_and_unpack(&cache)?;
    let binaries = match opts.mode {
        Mode::Tests => build_test_binaries(&root)?,
        Mode::Demo => vec![(
            "domain-demo".into(),
            build_example(&root, "domain-demo", false)?,
        )],
        Mode::Bench => vec![("xen-bench".into(), build_example(&root, "xen-bench", true)?)],
    };
    let lab = cache.join(opts.mode.lab());
    fs::create_dir_all(&lab).map_err(io_err(&lab))?;
    let payload = Payload::new(opts.mode, &binaries, &opts.test_args);
    assemble(&root, &pkgs, &lab, &payload)?;

    let log_path = lab.join("serial.log");
    let load_before = host_load();
    let outcome = qemu::boot(&lab, &log_path, opts.timeout)?;
    let log = String::from_utf8_lossy(&fs::read(&log_path).unwrap_or_default()).into_owned();
    if opts.mode != Mode::Tests {
        eprintln!(
            "xen-test: host load average {load_before} before the boot, {} after",
            host_load()
        );
    }
    match outcome {
        qemu::Outcome::Finished(rc) if opts.mode != Mode::Tests => {
            let output = test_output(&log);
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
                    log_path.display()
                ))
            }
        }
        qemu::Outcome::Finished(rc) => {
            println!("{}", test_output(&log).trim());
            if rc == 0 {
                eprintln!(
                    "xen-test: all tests passed on real Xen (serial log {})",
                    log_path.display()
                );
                Ok(())
            } else {
                Err(format!(
                    "the tests failed in dom0 (exit status {rc}); serial log {}",
                    log_path.display()
                ))
            }
        }
        qemu::Outcome::Crashed(line) => Err(format!(
            "crash: {line}\n--- serial log (end) ---\n{}",
            log_tail(&log, 150)
        )),
        qemu::Outcome::QemuExited(status) => Err(format!(
            "QEMU stopped ({status}) before the tests finished\n--- serial log (end) ---\n{}",
            log_tail(&log, 150)
        )),
        qemu::Outcome::TimedOut => Err(format!(
            "no result within {:?}; QEMU killed\n--- serial log (end) ---\n{}",
            opts.timeout,
            log_tail(&log, 150)
        )),
    }
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
        let p = Payload::new(
            Mode::Tests,
            &bins(&["xen_lifecycle", "xen_upgrade"]),
            &args(&["reboot"]),
        );
        let dests: Vec<&str> = p.binaries.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(
            dests,
            ["xen-tests/1-xen_lifecycle", "xen-tests/2-xen_upgrade"],
            "dom0's /init runs them in this order"
        );
        assert_eq!((p.args_file, p.init), ("test-args", "dom0-init"));
        assert_eq!(p.args, args(&["--nocapture", "--test-threads=2", "reboot"]));
        let p = Payload::new(Mode::Bench, &bins(&["xen-bench"]), &args(&["--reps", "2"]));
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
