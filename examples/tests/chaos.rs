//! `mln` killed anywhere (issue #18): SIGKILL at random moments of `up`,
//! `upgrade` and `remove`, each followed by the same verb run again, must
//! converge every time: exit 0, exactly one guest per host, every host
//! running (or, after `remove`, nothing at all), and after the last
//! `remove` nothing is left (processes, sockets, state).
//!
//! `MLN_CHAOS_POINTS` sets the number of kills (default 30);
//! `MLN_CHAOS_SEED` replays a run (the seed is printed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PROJECT: &str = "chaos";

/// Four hosts on two switches; `v2` changes two hosts' memory (a restart
/// on UML), drops one and adds another.
fn lab(v2: bool) -> String {
    let mut s = format!("global {{ project {PROJECT} }}\nsuperclass g {{ memory 64M }}\n");
    s.push_str("switch s0 { }\nswitch s1 { }\n");
    let hosts: &[(&str, &str, &str)] = if v2 {
        &[
            ("a0", "s0", "96M"),
            ("a1", "s0", "64M"),
            ("a2", "s1", "96M"),
            ("a4", "s1", "64M"),
        ]
    } else {
        &[
            ("a0", "s0", "64M"),
            ("a1", "s0", "64M"),
            ("a2", "s1", "64M"),
            ("a3", "s1", "64M"),
        ]
    };
    for (i, (name, sw, mem)) in hosts.iter().enumerate() {
        s.push_str(&format!(
            "host {name} {{\n  superclass g\n  memory {mem}\n  network eth0 {{\n    switch {sw}\n    address 10.7.0.{}\n    netmask 255.255.0.0\n  }}\n}}\n",
            i + 1
        ));
    }
    s
}

/// A small deterministic generator, so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn mln(state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mln"));
    cmd.args(args)
        .env("MLN_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run mln")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Start `cmd`, let it run for `after`, then SIGKILL it (if it has not
/// finished by then).
fn kill_after(cmd: &mut Command, after: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run mln");
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

/// Guest main processes (session leaders) per host of the project.
fn guests(state: &Path) -> BTreeMap<String, usize> {
    let prefix = format!("uml_dir={}/{PROJECT}/uml/{PROJECT}.", state.display());
    let mut out = BTreeMap::new();
    for pid in testkit::processes_under(state) {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 1)..]
            .split_whitespace()
            .collect();
        // Field 6 (the 4th after the name and state) is the session.
        if fields.get(3).and_then(|s| s.parse::<u32>().ok()) != Some(pid) {
            continue;
        }
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if let Some(rest) = cmdline.split(' ').find_map(|w| w.strip_prefix(&prefix)) {
            *out.entry(rest.to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn converged(state: &Path, file: &Path, hosts: &[&str]) {
    let o = run(&mut mln(state, &["status", "--json", "-p", PROJECT]));
    let status: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("status: {}", text(&o)));
    for h in hosts {
        let entry = status[0]["hosts"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["host"] == *h))
            .unwrap_or_else(|| panic!("{h} missing after {}: {status}", file.display()));
        assert_eq!(entry["state"], "running", "{h}: {status}");
    }
    let running = guests(state);
    let want: BTreeMap<String, usize> = hosts.iter().map(|h| (h.to_string(), 1)).collect();
    assert_eq!(running, want, "one guest per host after {}", file.display());
}

#[test]
fn mln_killed_anywhere_converges_and_leaves_nothing() {
    let kernel = testkit::uml_kernel();
    let kernel = kernel.to_str().unwrap_or("/usr/bin/linux.uml");
    if let Some(why) = testkit::missing_tool(&[kernel, "/usr/bin/vde_switch"]) {
        return testkit::skip("chaos", &why);
    }
    let points: usize = std::env::var("MLN_CHAOS_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("MLN_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("chaos: {points} kills, MLN_CHAOS_SEED={seed}");
    let mut rng = Lcg(seed);
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let v1: PathBuf = dir.path().join("v1.mln");
    let v2: PathBuf = dir.path().join("v2.mln");
    std::fs::write(&v1, lab(false)).unwrap();
    std::fs::write(&v2, lab(true)).unwrap();
    let (f1, f2) = (v1.to_str().unwrap(), v2.to_str().unwrap());
    let v1_hosts = ["a0", "a1", "a2", "a3"];
    let v2_hosts = ["a0", "a1", "a2", "a4"];
    // Where the project is: nothing, v1 or v2.
    let mut at: Option<bool> = None;
    for point in 0..points {
        // What to interrupt, from where the project is.
        let verb = match (at, rng.below(3)) {
            (None, _) => "up",
            (Some(_), 0) => "remove",
            (Some(false), _) => "upgrade-v2",
            (Some(true), _) => "upgrade-v1",
        };
        let args: Vec<&str> = match verb {
            "up" => vec!["up", f1],
            "remove" => vec!["remove", "-p", PROJECT],
            "upgrade-v2" => vec!["upgrade", "--yes", f2],
            _ => vec!["upgrade", "--yes", f1],
        };
        let after = Duration::from_millis(50 + rng.below(3000));
        let killed = kill_after(&mut mln(&state, &args), after);
        eprintln!("chaos {point}: {verb}, killed after {after:?}: {killed}");
        // The same verb again finishes the job. (A remove that got to the
        // end before the kill leaves nothing to remove: `mln` says so.)
        let o = run(&mut mln(&state, &args));
        let gone = verb == "remove"
            && !state.join(PROJECT).exists()
            && text(&o).contains("nothing recorded");
        assert!(
            o.status.success() || gone,
            "{verb} again after the kill: {}",
            text(&o)
        );
        match verb {
            "remove" => {
                assert!(!state.join(PROJECT).exists(), "state left after remove");
                assert!(guests(&state).is_empty(), "guests left after remove");
                at = None;
            }
            "up" | "upgrade-v1" => {
                converged(&state, &v1, &v1_hosts);
                at = Some(false);
            }
            _ => {
                converged(&state, &v2, &v2_hosts);
                at = Some(true);
            }
        }
    }
    let o = run(&mut mln(&state, &["remove", "-p", PROJECT]));
    // Removing what is not there is an error: the project may be gone.
    assert!(
        o.status.success() || !state.join(PROJECT).exists(),
        "{}",
        text(&o)
    );
    assert!(!state.join(PROJECT).exists());
    assert_eq!(testkit::processes_under(dir.path()), Vec::<u32>::new());
}
