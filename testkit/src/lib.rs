//! Helpers shared by the integration tests that run real guests and
//! switches: find what a test left running, and end it on every way out;
//! make test servers (network namespaces running `sshd`) for projects
//! across several servers.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod dialog;
mod servers;

pub use dialog::Dialog;
pub use servers::{Skip, TestServers};

/// Pids of live processes (not this one) whose command line mentions
/// `dir`: the guests and switches a test started under its folder. A
/// zombie never counts. The walk of `/proc` is mln-core's, the one the
/// library uses to find what a guest or cable left running.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    mln_core::uml::processes_mentioning(dir)
}

/// Kills (SIGKILL) whatever still runs under its folder when dropped, so a
/// failing assertion never leaves guests or switches behind.
pub struct KillUnder(pub PathBuf);

impl Drop for KillUnder {
    fn drop(&mut self) {
        for pid in processes_under(&self.0) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// Run `argv` (no shell) and return its output; panics, with its stderr,
/// when it cannot be started or fails: for the set-up steps of a test
/// (`ip netns add`, `ip link set`, ...), where a failure is the test's.
pub fn run_ok(argv: &[&str]) -> Output {
    let Some((program, args)) = argv.split_first() else {
        panic!("run_ok: an empty command");
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `cmd` (standard input closed, its output kept), killed and the
/// test failed when it outlasts `limit`: a hanging `mln` or agent must
/// not hang the test run.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} took over {limit:?}");
        }
    }
}

/// What `o` printed, standard output then standard error.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fails the test, with what `o` printed, unless it exited 0.
pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", output_text(o));
}

/// True when the test suite runs in CI (`CI` set to anything but empty,
/// `0` or `false`), where every test must really run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Say that `test` cannot run here because `why` (a missing tool, no
/// root, no Xen): on a developer's machine the test is skipped with a
/// message; in CI ([`in_ci`]) a missing prerequisite is a failure, so
/// nothing passes by skipping.
///
/// ```no_run
/// if !std::path::Path::new("/usr/bin/vde_switch").exists() {
///     return testkit::skip("switch_pings", "vde_switch is missing (apt-get install vde2)");
/// }
/// ```
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: cannot run here: {why} (with CI set, a missing prerequisite fails)");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// The first of `tools` (absolute paths) that is missing, as a reason for
/// [`skip`].
pub fn missing_tool(tools: &[&str]) -> Option<String> {
    tools
        .iter()
        .find(|t| !Path::new(t).exists())
        .map(|t| format!("{t} is missing (.ci/setup installs it)"))
}

/// Whether UML guests on vde switches can run here (the kernel of
/// [`uml_kernel`] and `vde_switch`); when not, [`skip`]s `test` (which
/// fails it under CI) and answers false.
pub fn uml_ready(test: &str) -> bool {
    let kernel = uml_kernel();
    let kernel = kernel.to_str().unwrap_or("/usr/bin/linux.uml");
    match missing_tool(&[kernel, "/usr/bin/vde_switch"]) {
        Some(why) => {
            skip(test, &why);
            false
        }
        None => true,
    }
}

/// The UML kernel the tests boot guests with: `MLN_UML_KERNEL` (which
/// `.ci/test` sets to one that boots on the host) or Debian's.
pub fn uml_kernel() -> PathBuf {
    mln_core::uml::Uml::default_kernel()
}
