//! The scaffolding of the tests that run a project across two servers
//! through the real `mln`: two test servers (network namespaces each
//! running its own sshd, `testkit::TestServers`) where the same `mln`
//! binary is the agent, a managing state folder in this machine's root
//! namespace, and the checks that nothing is left behind.
//!
//! Included by each such test file with `mod server_lab;`; each uses only
//! part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::{processes_under, TestServers};

/// The `mln` under test: the managing side and every server's agent.
pub const MLN: &str = env!("CARGO_BIN_EXE_mln");

/// A sample project of the repository's `projects/` folder.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../projects")
        .join(name)
}

/// Fails the test with what `o` printed unless it succeeded.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "{:?}\n{}", o.status, text(o));
}

pub use testkit::{output_text as text, run_within as run};

/// The servers a lab has unless it names its own.
const SERVERS: [&str; 2] = ["server-a", "server-b"];

/// Test servers (two unless named), a managing state folder, and cleanup on every way
/// out: `mln remove`, then whatever still runs under the state folder; the
/// servers' own teardown then kills what runs in their namespaces.
pub struct Lab {
    /// The project the lab's commands name.
    pub project: &'static str,
    /// The managing side's `MLN_STATE_DIR`; its parent is a scratch folder
    /// the test may write project files to.
    pub state: PathBuf,
    /// server-a and server-b, or those [`Lab::with_servers`] named.
    pub servers: TestServers,
    /// The servers' names.
    pub names: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// The lab for `project`, or `None` (with the reason printed) where it
    /// cannot run.
    pub fn new(project: &'static str) -> Option<Lab> {
        Lab::with_servers(project, &SERVERS)
    }

    /// The lab for `project` on the servers `names`.
    pub fn with_servers(project: &'static str, names: &[&str]) -> Option<Lab> {
        let kernel = testkit::uml_kernel();
        let uml = [
            kernel.to_str().unwrap_or("/usr/bin/linux.uml"),
            "/usr/bin/vde_switch",
            "/usr/bin/dpipe",
        ];
        if let Some(why) = testkit::missing_tool(&uml) {
            testkit::skip(project, &why);
            return None;
        }
        // Each server runs this very binary as its agent, and a server
        // cabling a switch to another one starts it there too.
        let agent = std::ffi::OsStr::new(MLN);
        // Both servers use one copy of the template, built here first: a
        // moved COW disk only makes sense over the same image (each server
        // building its own would make different file systems).
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        mln_core::template::Template::default_in(&templates).expect("build the template");
        // The agents boot guests with the kernel this test would, and
        // share one kernels folder: a server's namespace reaches no
        // archive to fetch a QEMU guest kernel from.
        let kernel = testkit::uml_kernel();
        let kernels = kernels_dir();
        let env = [
            ("MLN_AGENT", agent),
            ("MLN_TEMPLATE_DIR", templates.as_os_str()),
            (mln_core::uml::KERNEL_ENV, kernel.as_os_str()),
            (mln_core::uml::KERNELS_DIR_ENV, kernels.as_os_str()),
        ];
        let servers = match TestServers::start_with_env(names, &env) {
            Ok(s) => s,
            Err(skip) => {
                testkit::skip(project, &skip.to_string());
                return None;
            }
        };
        Some(Lab {
            project,
            state: dir.path().join("state"),
            servers,
            names: names.iter().map(|n| n.to_string()).collect(),
            _dir: dir,
        })
    }

    /// `mln ARGS` as the managing side, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(MLN);
        cmd.args(args)
            .envs(self.servers.env())
            .env("MLN_AGENT", MLN)
            .env("MLN_STATE_DIR", &self.state)
            .env(mln_core::uml::KERNELS_DIR_ENV, kernels_dir())
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs `mln ARGS` as the managing side, within `limit`.
    pub fn mln(&self, args: &[&str], limit: Duration) -> Output {
        run(&mut self.command(args), limit)
    }

    /// `mln status --format json`: the output, and the project's status
    /// when stdout parses.
    pub fn status(&self) -> (Output, Option<serde_json::Value>) {
        let o = self.mln(
            &["status", "--format", "json", "-p", self.project],
            Duration::from_secs(60),
        );
        let json = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()
            .map(|v| v[0].clone());
        (o, json)
    }

    /// The project's status, the test failed with what `mln` said when it
    /// cannot be had. (`mln status -p` exits 1, as MLN's does, when
    /// something is down: the JSON tells what.)
    pub fn status_ok(&self) -> serde_json::Value {
        let (o, status) = self.status();
        status.unwrap_or_else(|| panic!("status JSON: {}", text(&o)))
    }

    /// Polls `mln log -p PROJECT HOST` until `done` holds for it.
    pub fn console_until(&self, host: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let o = self.mln(&["log", "-p", self.project, host], Duration::from_secs(60));
            let log = String::from_utf8_lossy(&o.stdout).into_owned();
            if done(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{host}'s console never got there:\n{log}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Pids of processes in server `name`'s namespace other than its
    /// listening sshd whose command line mentions `needle`.
    pub fn processes_on(&self, name: &str, needle: &str) -> Vec<u32> {
        let listener = self.servers.sshd_pid(name);
        let out = Command::new("ip")
            .args(["netns", "pids", self.servers.namespace(name)])
            .output()
            .expect("run ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|p| Some(*p) != listener)
            .filter(|p| {
                let cmdline = cmdline(*p);
                !cmdline.is_empty() && cmdline.contains(needle)
            })
            .collect()
    }

    /// Nothing of the project anywhere: no state on the managing side or
    /// on either server (templates may stay), no process in either
    /// namespace but its listening sshd, none under the state folders.
    pub fn assert_nothing_left(&self) {
        assert!(
            !self.state.join(self.project).exists(),
            "managing state left behind"
        );
        for name in self.names.iter().map(String::as_str) {
            let left: Vec<_> = std::fs::read_dir(self.servers.state_dir(name))
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(
                left.iter().all(|n| n == "templates"),
                "{name} keeps {left:?}"
            );
            // Sessions closing and their children exiting take a moment.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let procs = self.processes_on(name, "");
                if procs.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "processes left on {name}: {:?}",
                    procs.iter().map(|p| cmdline(*p)).collect::<Vec<_>>()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        assert_eq!(processes_under(&self.state), Vec::<u32>::new());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.state.join(self.project).exists() {
            // A panic here would abort the test run: catch it, and let the
            // servers' teardown kill what is left.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for name in &self.names {
                    self.servers.start_sshd(name);
                }
                self.mln(&["remove", "-p", self.project], Duration::from_secs(120))
            }));
        }
        for pid in processes_under(&self.state) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// The kernels folder the lab's servers and its managing side share
/// (under the target folder, kept between runs).
pub fn kernels_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-kernels")
}

/// Process `pid`'s command line, arguments joined by spaces; empty when
/// it is gone (or a zombie).
pub fn cmdline(pid: u32) -> String {
    let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&c).replace('\0', " ")
}

/// Host `name`'s entry in a project's status.
pub fn host<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["hosts"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["host"] == name))
        .unwrap_or_else(|| panic!("{name} missing from {status}"))
}
