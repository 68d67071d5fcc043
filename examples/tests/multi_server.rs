//! A project across two servers, driven through the real `mln` (issue #6):
//! `projects/multi-server-uml.mln` (projects/multi-server.mln on UML)
//! over two test servers, network namespaces each running its own sshd
//! (`testkit::TestServers`), where the same `mln` binary is the agent.
//!
//! The managing side is this machine's root namespace, with its own state
//! folder; each server keeps its files in its own `MLN_STATE_DIR`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::{processes_under, TestServers};

const PROJECT: &str = "spread";
const MLN: &str = env!("CARGO_BIN_EXE_mln");
/// Written by app2's startup lines once it reaches a peer.
const PING_OK: &str = "MLN-MULTI-PING-OK";

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../projects/multi-server-uml.mln")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{:?}\n{}", o.status, text(o));
}

/// Runs `cmd`, killed (and the test failed) if it takes over `limit`:
/// a hanging agent must not hang the test run.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mln");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for mln"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} took over {limit:?}");
        }
    }
}

/// Two test servers, a managing state folder, and cleanup on every way
/// out: `mln remove`, then whatever still runs under the state folder; the
/// servers' own teardown then kills what runs in their namespaces.
struct Lab {
    state: PathBuf,
    servers: TestServers,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// The lab, or `None` (with the reason printed) where it cannot run.
    fn new() -> Option<Lab> {
        let uml = [
            "/usr/bin/linux.uml",
            "/usr/bin/vde_switch",
            "/usr/bin/dpipe",
        ];
        if let Some(missing) = uml.iter().find(|p| !Path::new(p).exists()) {
            eprintln!("SKIPPED: {missing} missing (apt-get install user-mode-linux vde2)");
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
        let servers = match TestServers::start_with_env(
            &["server-a", "server-b"],
            &[
                ("MLN_AGENT", agent),
                ("MLN_TEMPLATE_DIR", templates.as_os_str()),
            ],
        ) {
            Ok(s) => s,
            Err(skip) => {
                eprintln!("SKIPPED: {skip}");
                return None;
            }
        };
        Some(Lab {
            state: dir.path().join("state"),
            servers,
            _dir: dir,
        })
    }

    fn mln(&self, args: &[&str], limit: Duration) -> Output {
        let mut cmd = Command::new(MLN);
        cmd.args(args)
            .envs(self.servers.env())
            .env("MLN_AGENT", MLN)
            .env("MLN_STATE_DIR", &self.state)
            .env("NO_COLOR", "1");
        run(&mut cmd, limit)
    }

    /// `mln status --json`: the output, and the project's status when
    /// stdout parses.
    fn status(&self) -> (Output, Option<serde_json::Value>) {
        let o = self.mln(
            &["status", "--json", "-p", PROJECT],
            Duration::from_secs(60),
        );
        let json = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()
            .map(|v| v[0].clone());
        (o, json)
    }

    /// Polls `mln log -p spread HOST` until `done` holds for it.
    fn console_until(&self, host: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let o = self.mln(&["log", "-p", PROJECT, host], Duration::from_secs(60));
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
    fn processes_on(&self, name: &str, needle: &str) -> Vec<u32> {
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
                let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                !cmdline.is_empty() && cmdline.contains(needle)
            })
            .collect()
    }

    /// Nothing of the project anywhere: no state on the managing side or
    /// on either server (templates may stay), no process in either
    /// namespace but its listening sshd, none under the state folders.
    fn assert_nothing_left(&self) {
        assert!(
            !self.state.join(PROJECT).exists(),
            "managing state left behind"
        );
        for name in ["server-a", "server-b"] {
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
        if self.state.join(PROJECT).exists() {
            // A panic here would abort the test run: catch it, and let the
            // servers' teardown kill what is left.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.servers.start_sshd("server-b");
                self.mln(&["remove", "-p", PROJECT], Duration::from_secs(120))
            }));
        }
        for pid in processes_under(&self.state) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

fn cmdline(pid: u32) -> String {
    let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&c).replace('\0', " ")
}

fn host<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["hosts"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["host"] == name))
        .unwrap_or_else(|| panic!("{name} missing from {status}"))
}

/// The boot ids app2 reported reaching `peer` from.
fn ping_boots(log: &str, peer: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once(PING_OK).map(|(_, rest)| rest.trim()))
        .filter_map(|rest| rest.strip_prefix(peer))
        .filter_map(|rest| rest.trim().strip_prefix("boot "))
        .map(str::to_owned)
        .collect()
}

/// The sample with app2 moved to server-a.
fn with_app2_on_server_a(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(sample()).unwrap();
    let moved = text.replace("service_host server-b", "service_host server-a");
    assert_ne!(moved, text);
    let path = dir.join("multi-server-uml-v2.mln");
    std::fs::write(&path, moved).unwrap();
    path
}

#[test]
fn the_uml_sample_checks_and_moving_app2_plans_a_cold_move() {
    let o = run(
        Command::new(MLN).args(["check", sample().to_str().unwrap()]),
        Duration::from_secs(30),
    );
    ok(&o);
    assert_eq!(text(&o), "", "the sample has diagnostics");

    let graph = run(
        Command::new(MLN).args(["graph", "--format", "mermaid", sample().to_str().unwrap()]),
        Duration::from_secs(30),
    );
    ok(&graph);
    let graph = text(&graph);
    assert!(
        graph.contains("\"server-a\"") && graph.contains("\"server-b\""),
        "{graph}"
    );

    let dir = tempfile::tempdir().unwrap();
    let v2 = with_app2_on_server_a(dir.path());
    let diff = run(
        Command::new(MLN).args(["diff", sample().to_str().unwrap(), v2.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    ok(&diff);
    let plan = text(&diff);
    assert!(
        plan.contains("host app2 move server-b → server-a (cold)"),
        "{plan}"
    );
    assert!(
        !plan.contains("host db") && !plan.contains("host app1"),
        "{plan}"
    );
}

#[test]
fn spread_comes_up_on_two_servers_pings_across_survives_an_unreachable_server_moves_and_is_removed()
{
    let Some(mut lab) = Lab::new() else {
        return;
    };
    let started = Instant::now();
    let file = sample();
    ok(&lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(300)));
    eprintln!("up in {:?}", started.elapsed());

    let (o, status) = lab.status();
    ok(&o);
    let status = status.unwrap_or_else(|| panic!("status JSON: {}", text(&o)));
    for (name, server) in [
        ("db", "server-a"),
        ("app1", "server-a"),
        ("app2", "server-b"),
    ] {
        let h = host(&status, name);
        assert_eq!(h["state"], "running", "{status}");
        assert_eq!(h["service_host"], server, "{status}");
        // The guest really runs in its server's namespace.
        let umid = format!("{PROJECT}.{name}");
        assert!(
            !lab.processes_on(server, &umid).is_empty(),
            "{name} does not run on {server}"
        );
    }
    assert!(lab.processes_on("server-a", "spread.app2").is_empty());

    // app2 (server-b) reaches db and app1 (server-a) through the switch
    // spanning both servers.
    let log = lab.console_until("app2", |l| {
        !ping_boots(l, "10.9.0.1").is_empty() && !ping_boots(l, "10.9.0.2").is_empty()
    });
    let first_boot = ping_boots(&log, "10.9.0.1")[0].clone();
    eprintln!("pinged across in {:?}", started.elapsed());

    // server-b's sshd down: status says so and still reports server-a,
    // whose guests run on. (app2 itself runs on too: only sshd is down.)
    lab.servers.stop_sshd("server-b");
    let t = Instant::now();
    let (o, status) = lab.status();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let said = text(&o);
    assert!(
        said.contains("server-b") && said.contains("unreachable"),
        "{said}"
    );
    let status = status.unwrap_or_else(|| panic!("status JSON: {said}"));
    for name in ["db", "app1"] {
        assert_eq!(host(&status, name)["state"], "running", "{status}");
        assert!(!lab
            .processes_on("server-a", &format!("{PROJECT}.{name}"))
            .is_empty());
    }
    assert_ne!(host(&status, "app2")["state"], "running", "{status}");
    lab.servers.start_sshd("server-b");

    // app2 moves to server-a, and reaches its peers again from there
    // (a new boot: its disks were copied and it started there).
    let v2 = with_app2_on_server_a(lab.state.parent().unwrap());
    let t = Instant::now();
    ok(&lab.mln(
        &["upgrade", "--yes", "-f", v2.to_str().unwrap()],
        Duration::from_secs(300),
    ));
    eprintln!("moved in {:?}", t.elapsed());
    let (o, status) = lab.status();
    ok(&o);
    let status = status.unwrap_or_else(|| panic!("status JSON: {}", text(&o)));
    let app2 = host(&status, "app2");
    if app2["state"] != "running" {
        let log = lab.mln(&["log", "-p", PROJECT, "app2"], Duration::from_secs(60));
        panic!("app2 after the move: {status}\n{}", text(&log));
    }
    assert_eq!(app2["service_host"], "server-a", "{status}");
    assert!(!lab.processes_on("server-a", "spread.app2").is_empty());
    assert!(lab.processes_on("server-b", "spread.app2").is_empty());
    let log = lab.console_until("app2", |l| {
        ping_boots(l, "10.9.0.1").iter().any(|b| *b != first_boot)
    });
    assert!(
        ping_boots(&log, "10.9.0.2")
            .iter()
            .any(|b| *b != first_boot),
        "{log}"
    );

    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(300)));
    lab.assert_nothing_left();
    eprintln!("whole test {:?}", started.elapsed());
}

#[test]
fn a_project_too_big_for_server_a_is_refused_before_anything_is_touched() {
    let Some(lab) = Lab::new() else {
        return;
    };
    // db asks for far more memory than server-a (this machine) has; app2
    // would fit on server-b, and is not started either.
    let text_in = std::fs::read_to_string(sample()).unwrap();
    let huge = text_in.replacen("memory 96M", "memory 4096G", 1);
    assert_ne!(huge, text_in);
    let file = lab.state.parent().unwrap().join("too-big.mln");
    std::fs::write(&file, huge).unwrap();

    let o = lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("server-a") && said.contains("memory"),
        "the refusal names the server and memory: {said}"
    );
    lab.assert_nothing_left();
}
