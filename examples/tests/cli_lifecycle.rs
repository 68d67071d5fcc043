//! `mln up/status/log/list/upgrade/down/remove` (and MLN's
//! `start/stop`) on real UML guests and real vde switches, the way a user
//! runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn mln(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env("NO_COLOR", "1")
        .output()
        .expect("run mln")
}

fn status(state: &Path, project: &str) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(["status", "--json", "-p", project, "--state-dir"])
        .arg(state)
        .output()
        .expect("run mln status");
    // Exit 1 (as MLN's status) when something is down: the JSON says what.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

fn host_state(status: &serde_json::Value, host: &str) -> (String, u64) {
    let h = status[0]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} missing from {status}"));
    (
        h["state"].as_str().unwrap_or_default().to_string(),
        h["memory"].as_u64().unwrap_or_default(),
    )
}

fn uml_available() -> bool {
    let kernel = testkit::uml_kernel();
    let kernel = kernel.to_str().unwrap_or("/usr/bin/linux.uml");
    match testkit::missing_tool(&[kernel, "/usr/bin/vde_switch"]) {
        Some(why) => {
            testkit::skip("cli_lifecycle", &why);
            false
        }
        None => true,
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn start_upgrade_stop_remove_a_two_host_project_on_uml() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let v1 = dir.path().join("v1.mln");
    let v2 = dir.path().join("v2.mln");
    let base = "global { project clitest }\nswitch lan {\n}\n\
        host one { memory 48M; network eth0 { switch lan; address 10.0.0.1; netmask 255.255.255.0 } }\n";
    std::fs::write(
        &v1,
        format!("{base}host two {{ memory 48M; network eth0 {{ switch lan; address 10.0.0.2; netmask 255.255.255.0 }} }}\n"),
    )
    .unwrap();
    std::fs::write(
        &v2,
        format!("{base}host two {{ memory 64M; network eth0 {{ switch lan; address 10.0.0.2; netmask 255.255.255.0 }} }}\n"),
    )
    .unwrap();

    ok(&mln(&state, &["start", v1.to_str().unwrap()]));
    let s = status(&state, "clitest");
    assert_eq!(host_state(&s, "one").0, "running");
    assert_eq!(host_state(&s, "two").0, "running");
    assert_eq!(s[0]["switches"][0]["state"], "up");

    // The plan of the change is shown before anything is done.
    let plan = mln(&state, &["plan", v2.to_str().unwrap()]);
    ok(&plan);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("two"), "{text}");
    assert!(
        !text.contains("one"),
        "an unchanged host is in the plan: {text}"
    );

    ok(&mln(&state, &["upgrade", "--yes", v2.to_str().unwrap()]));
    let s = status(&state, "clitest");
    let (two_state, two_memory) = host_state(&s, "two");
    assert_eq!(two_state, "running");
    assert_eq!(two_memory >> 20, 64);

    ok(&mln(&state, &["stop", "-p", "clitest"]));
    let s = status(&state, "clitest");
    assert_eq!(host_state(&s, "one").0, "built");

    ok(&mln(&state, &["remove", "-p", "clitest"]));
    assert!(!state.join("clitest").exists(), "state left behind");
    let again = mln(&state, &["status", "-p", "clitest"]);
    assert!(!again.status.success());
}

#[test]
fn a_broken_project_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file: PathBuf = dir.path().join("bad.mln");
    std::fs::write(
        &file,
        "global { project bad }\nhost a { network eth0 { switch nowhere } }\n",
    )
    .unwrap();
    let o = mln(&state, &["start", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("E0004"));
    assert!(!state.join("bad").exists());
}

/// The one JSON object a verb run with `--format json` prints on stdout
/// (nothing else may be there).
fn json_outcome(o: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn sample(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../projects");
    root.join(name).to_string_lossy().into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Removes the project when dropped, so a failing assertion never leaves
/// guests running.
struct Cleanup<'a> {
    state: &'a Path,
    project: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.state.join(self.project).exists() {
            let _ = mln(self.state, &["remove", "-p", self.project]);
        }
    }
}

/// Processes (not zombies) whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(cmdline);
        }
    }
    found
}

#[test]
fn up_status_log_list_upgrade_checks_down_remove_the_lab_on_uml() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _cleanup = Cleanup {
        state: &state,
        project: "lab",
    };
    let hosts = ["alice", "bob", "router"];

    ok(&mln(&state, &["up", &sample("lab.mln")]));

    // Every host runs, in JSON (`--json` is `--format json`) and in the table.
    let s = status(&state, "lab");
    for h in hosts {
        assert_eq!(host_state(&s, h).0, "running", "{s}");
    }
    let table = mln(&state, &["status", "-p", "lab", "--format", "table"]);
    ok(&table);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    // In MLN's words: a running host is `up`.
    for h in hosts {
        assert!(
            table.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.first() == Some(&h) && words.get(1) == Some(&"up")
            }),
            "{table}"
        );
    }
    let switches_up = table
        .lines()
        .filter(|l| l.trim_start().starts_with("switch ") && l.trim_end().ends_with(" up"))
        .count();
    assert_eq!(switches_up, 2, "both switches up: {table}");

    // `log --follow` prints the router's console as it boots, to its end.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(["log", "--follow", "-p", "lab", "router", "--state-dir"])
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run mln log --follow");
    let lines = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(lines).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let followed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(mln_core::template::BOOT_FINISHED) => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        followed,
        "log --follow never showed the router's boot finish"
    );

    // Each console shows the boot, to its end.
    for h in hosts {
        loop {
            let log = mln(&state, &["log", "-p", "lab", h]);
            ok(&log);
            let log = String::from_utf8_lossy(&log.stdout).into_owned();
            if log.contains(mln_core::template::BOOT_FINISHED) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{h} never finished booting: {log}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let missing = mln(&state, &["log", "-p", "lab", "carol"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).contains("no host carol"),
        "{}",
        text(&missing)
    );

    let list = mln(&state, &["list"]);
    ok(&list);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "lab: 3 host(s), 3 running, 2 switch(es)\n"
    );

    // A changed lab: the router gets more memory.
    let lab = std::fs::read_to_string(sample("lab.mln")).unwrap();
    let bigger = lab.replacen(
        "host router {\n    superclass pc\n",
        "host router {\n    superclass pc\n    memory 96M\n",
        1,
    );
    assert_ne!(lab, bigger);
    let v2 = dir.path().join("lab.mln");
    std::fs::write(&v2, bigger).unwrap();
    let recorded = std::fs::read(state.join("lab/state.json")).unwrap();

    // --dry-run shows the plan and changes nothing.
    let dry = mln(
        &state,
        &["upgrade", "--dry-run", "-f", v2.to_str().unwrap()],
    );
    ok(&dry);
    let plan = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(plan.contains("~ host router update restart"), "{plan}");
    assert!(plan.contains("memory: 64M → 96M (restart)"), "{plan}");
    assert!(!plan.contains("alice") && !plan.contains("bob"), "{plan}");
    assert_eq!(
        std::fs::read(state.join("lab/state.json")).unwrap(),
        recorded
    );

    // Without --yes and without a terminal to ask on, nothing is applied.
    let refused = mln(&state, &["upgrade", "-f", v2.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("memory: 64M → 96M"),
        "the plan is shown: {said}"
    );
    assert!(
        said.contains("not a terminal") && said.contains("--yes"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(state.join("lab/state.json")).unwrap(),
        recorded
    );
    let s = status(&state, "lab");
    assert_eq!(host_state(&s, "router"), ("running".to_string(), 64 << 20));

    ok(&mln(&state, &["down", "-p", "lab"]));
    let s = status(&state, "lab");
    for h in hosts {
        assert_eq!(host_state(&s, h).0, "built", "{s}");
    }

    ok(&mln(&state, &["remove", "-p", "lab"]));
    assert!(!state.join("lab").exists(), "state left behind");
    let list = mln(&state, &["list"]);
    ok(&list);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "");
    assert_eq!(processes_using(&state), Vec::<String>::new());
}

#[test]
fn xen_hosts_run_on_uml_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("x.mln");
    std::fs::write(
        &file,
        "global { project xenish }\nhost x { xen; memory 48M }\nhost u { memory 48M }\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let _cleanup = Cleanup {
        state: &state,
        project: "xenish",
    };

    let xen_here =
        Path::new("/dev/xen/privcmd").exists() || Path::new("/proc/xen/privcmd").exists();
    if !xen_here {
        let o = mln(&state, &["build", file]);
        assert_eq!(o.status.code(), Some(1));
        let said = text(&o);
        assert!(said.contains("asks for Xen hosts (x)"), "{said}");
        assert!(said.contains("--backend uml"), "{said}");
        assert!(
            !state.join("xenish").exists(),
            "a refused project left state"
        );
    }
    if !uml_available() {
        return;
    }
    ok(&mln(&state, &["build", "--backend", "uml", file]));
    let s = status(&state, "xenish");
    for h in ["x", "u"] {
        let line = s[0]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["host"] == h)
            .unwrap();
        assert_eq!(line["platform"], "uml", "{s}");
        assert_eq!(line["state"], "built", "{s}");
    }
    ok(&mln(&state, &["remove", "-p", "xenish"]));
    assert!(!state.join("xenish").exists());
}

/// The sample lab with one more `startup` line on alice: she pings bob,
/// on the other LAN, through the router, and says how it went.
fn lab_with_ping(dir: &Path) -> PathBuf {
    let lab = std::fs::read_to_string(sample("lab.mln")).unwrap();
    let alice = lab.find("host alice {").expect("alice in lab.mln") + "host alice {".len();
    let ping = "\n    startup {\n        \
        for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do ping -c 1 -W 1 192.168.2.10 >/dev/null 2>&1 \\&\\& echo LAB-PING-OK \\&\\& break; sleep 1; done\n        \
        echo LAB-PING-DONE\n    }\n";
    let mut text = lab.clone();
    text.insert_str(alice, ping);
    let file = dir.join("lab.mln");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn alice_pings_bob_through_the_router_then_nothing_is_left() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _cleanup = Cleanup {
        state: &state,
        project: "lab",
    };
    let file = lab_with_ping(dir.path());
    ok(&mln(&state, &["up", file.to_str().unwrap()]));

    // The ping runs from alice's startup lines; its result is read from
    // her captured console log.
    let mut log = String::new();
    for _ in 0..240 {
        let o = mln(&state, &["log", "-p", "lab", "alice"]);
        log = String::from_utf8_lossy(&o.stdout).into_owned();
        if log.contains("LAB-PING-DONE") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        log.contains("LAB-PING-OK"),
        "alice could not reach bob:\n{log}"
    );

    ok(&mln(&state, &["remove", "-p", "lab"]));
    assert!(!state.join("lab").exists(), "state folder left behind");
    let left = processes_using(&state);
    assert!(left.is_empty(), "processes left: {left:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.iter().all(|n| n == "templates"),
        "files left: {leftovers:?}"
    );
}

/// `DIR/PROJECT.mln`: hosts `one` and `two` of 64M on switch `lan`, at
/// `NET.1` and `NET.2`.
fn two_hosts(dir: &Path, project: &str, net: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{project}.mln"));
    std::fs::write(
        &file,
        format!(
            "global {{ project {project} }}\nswitch lan {{\n}}\n\
             host one {{ memory 64M; network eth0 {{ switch lan; address {net}.1/24 }} }}\n\
             host two {{ memory 64M; network eth0 {{ switch lan; address {net}.2/24 }} }}\n"
        ),
    )
    .unwrap();
    file
}

/// On a host where Debian 12's UML kernel crashes (an Intel CPU with AMX),
/// `up` with it fails naming every host, the cause and `mln kernel fetch`;
/// where it boots, `up` succeeds. Either way `up` agrees with the doctor's
/// probe boot of the same kernel, and `remove` leaves nothing.
#[test]
fn up_with_the_distributions_kernel_agrees_with_the_doctor_and_names_the_fix() {
    let distro = "/usr/bin/linux.uml";
    if let Some(why) = testkit::missing_tool(&[distro, "/usr/bin/vde_switch"]) {
        testkit::skip("cli_lifecycle", &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let with_distro = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .env("MLN_UML_KERNEL", distro)
            .env("NO_COLOR", "1")
            .output()
            .expect("run mln")
    };
    let doctor = with_distro(&["doctor", "--format", "json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&doctor.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&doctor)));
    let uml = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["subject"] == "uml"))
        .cloned()
        .unwrap_or_else(|| panic!("no uml check: {report:#}"));
    let boots = uml["works"] == true;

    let file = two_hosts(dir.path(), "pair", "10.0.0");
    let up = with_distro(&["up", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&up.stderr);
    if boots {
        assert_eq!(
            up.status.code(),
            Some(0),
            "the doctor says it boots: {stderr}"
        );
    } else {
        assert_eq!(
            up.status.code(),
            Some(1),
            "the doctor says it crashes: {stderr}"
        );
        let fix = uml["fix"].as_str().unwrap_or_default();
        assert!(fix.contains("mln kernel fetch"), "{uml:#}");
        for host in ["one", "two"] {
            let error = stderr
                .lines()
                .find(|l| l.starts_with(&format!("error: start {host}: ")))
                .unwrap_or_else(|| panic!("no error names {host}: {stderr}"));
            assert!(error.contains(fix), "{error}");
        }
        assert!(stderr.contains("Kernel panic"), "{stderr}");
    }
    ok(&with_distro(&["remove", "-p", "pair"]));
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == "templates" || n == "kernels"),
        "files left: {left:?}"
    );
}

#[test]
fn a_guest_that_crashes_at_boot_fails_up_naming_it_and_the_rest_stays_up() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let file = dir.path().join("crashy.mln");
    // `bad` runs a real kernel told to start an init that is not there: it
    // panics at boot, after its management console has answered.
    std::fs::write(
        &file,
        "global { project crashy }\nswitch lan {\n}\n\
         host good { memory 64M; network eth0 { switch lan; address 10.0.0.1/24 } }\n\
         host bad { memory 64M; extra init=/nonexistent; network eth0 { switch lan; address 10.0.0.2/24 } }\n",
    )
    .unwrap();
    let up = mln(&state, &["up", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(1), "stderr: {stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains("bad crashed while booting"), "{error}");
    // Its known cause and the fix, read from the console above the panic's
    // stack dump.
    assert!(
        error.contains(mln_core::uml::CrashCause::NoInit.fix()),
        "{error}"
    );
    assert!(
        stderr.contains("Kernel panic"),
        "the console's last lines are shown: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&up.stdout).contains(": up ("),
        "up claimed success"
    );
    // What came up stays up and recorded; the crashed guest shows so.
    let s = status(&state, "crashy");
    assert_eq!(host_state(&s, "good").0, "running");
    assert_eq!(host_state(&s, "bad").0, "crashed");
    // Said as JSON, for scripts: stdout is one object and nothing else.
    let again = mln(&state, &["up", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let said = json_outcome(&again);
    assert_eq!(said["project"], "crashy", "{said}");
    assert_eq!(said["verb"], "up", "{said}");
    assert_eq!(said["ok"], false, "{said}");
    let failed = said["failed"].as_array().unwrap();
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad crashed while booting")),
        "{said}"
    );
    let removed = mln(&state, &["remove", "-p", "crashy", "--format", "json"]);
    ok(&removed);
    let said = json_outcome(&removed);
    assert_eq!(
        (said["verb"].as_str(), said["ok"].as_bool()),
        (Some("remove"), Some(true))
    );
    assert!(said["done"].as_u64().unwrap() >= 3, "{said}");
    assert!(!state.join("crashy").exists(), "state left behind");
    assert!(testkit::processes_under(dir.path()).is_empty());
}

/// A course script written for MLN 1.0.8's command line, unchanged: build
/// with `-f` and `-r`, start, loop on `status | grep -q down` until
/// nothing is down, then notice a host that went down, stop, remove.
const MLN_SCRIPT: &str = r#"set -e
mln build -f "$PROJECT_FILE" -r
mln start -p scripted
i=0
while mln status -p scripted | grep -q down; do
    i=$((i + 1)); [ "$i" -lt 120 ] || { echo "still down after 60 s"; exit 1; }
    sleep 0.5
done
echo ALL-UP
mln stop -p scripted -h two
if mln status -p scripted | grep -q down; then echo NOTICED-DOWN; fi
mln status -p scripted -h two && exit 1
mln stop -p scripted ; mln remove -p scripted
echo SCRIPT-DONE
"#;

#[test]
fn a_script_written_for_mln_1_0_8_runs_unchanged() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_mln"), bin.join("mln")).unwrap();
    let file = two_hosts(dir.path(), "scripted", "10.9.0");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", MLN_SCRIPT])
        .env("PATH", path)
        .env("PROJECT_FILE", &file)
        .env("MLN_STATE_DIR", dir.path().join("state"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for marker in ["ALL-UP", "NOTICED-DOWN", "SCRIPT-DONE"] {
        assert!(
            stdout.contains(marker),
            "{marker} missing:\n{stdout}\n{stderr}"
        );
    }
    assert!(testkit::processes_under(dir.path()).is_empty());
}

/// The sample lab with alice as a QEMU guest (`kvm`; TCG here) and the
/// router and bob as UML guests, on shared switches.
fn mixed_lab(alice_memory: &str) -> String {
    format!(
        "global {{ project mixed }}\nswitch left {{\n}}\nswitch right {{\n}}\n\
         host router {{ memory 64M\n network eth0 {{ switch left; address 192.168.1.1/24 }}\n\
         network eth1 {{ switch right; address 192.168.2.1/24 }}\n\
         startup {{ echo 1 > /proc/sys/net/ipv4/ip_forward }} }}\n\
         host alice {{ kvm; memory {alice_memory}\n\
         network eth0 {{ switch left; address 192.168.1.10/24; gateway 192.168.1.1 }}\n\
         startup {{ ok=no; for i in $(seq 60); do ping -c 1 -W 1 192.168.2.10 >/dev/null 2>&1 && ok=yes && break; done; echo MIXED-PING-$ok }} }}\n\
         host bob {{ memory 64M\n network eth0 {{ switch right; address 192.168.2.10/24; gateway 192.168.2.1 }} }}\n"
    )
}

fn host_field(status: &serde_json::Value, host: &str, field: &str) -> serde_json::Value {
    status[0]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} missing from {status}"))[field]
        .clone()
}

#[test]
fn a_kvm_guest_and_uml_guests_share_switches_and_its_memory_changes_live() {
    if !uml_available() {
        return;
    }
    if let Some(why) = testkit::missing_tool(&["/usr/bin/qemu-system-x86_64"]) {
        return testkit::skip("mixed lab", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let v1 = dir.path().join("v1.mln");
    let v2 = dir.path().join("v2.mln");
    std::fs::write(&v1, mixed_lab("128M")).unwrap();
    std::fs::write(&v2, mixed_lab("192M")).unwrap();
    ok(&mln(&state, &["up", v1.to_str().unwrap()]));
    let s = status(&state, "mixed");
    assert_eq!(host_field(&s, "alice", "platform"), "kvm");
    assert_eq!(host_field(&s, "bob", "platform"), "uml");
    // alice (QEMU) reaches bob (UML) through the router (UML).
    let deadline = Instant::now() + Duration::from_secs(120);
    let log = loop {
        let o = mln(&state, &["log", "-p", "mixed", "alice"]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if text.contains("MIXED-PING-") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(log.contains("MIXED-PING-yes"), "{log}");

    // More memory within the ceiling: live, through the balloon, the
    // same QEMU process.
    let pid = host_field(&s, "alice", "id");
    let plan = mln(&state, &["plan", v2.to_str().unwrap()]);
    ok(&plan);
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(text.contains("memory: 128M → 192M (live)"), "{text}");
    ok(&mln(&state, &["upgrade", "--yes", v2.to_str().unwrap()]));
    let s = status(&state, "mixed");
    assert_eq!(host_field(&s, "alice", "id"), pid, "alice was restarted");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&state, "mixed");
        let mib = host_field(&s, "alice", "memory").as_u64().unwrap_or(0) >> 20;
        if mib >= 180 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the balloon never reached 192M: {mib}M"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    ok(&mln(&state, &["remove", "-p", "mixed"]));
    assert!(!state.join("mixed").exists(), "state left behind");
    assert!(testkit::processes_under(dir.path()).is_empty());
}

#[test]
fn the_kvm_lab_comes_up_as_qemu_guests_a_client_pings_across_and_remove_leaves_nothing() {
    if let Some(why) =
        testkit::missing_tool(&["/usr/bin/qemu-system-x86_64", "/usr/bin/vde_switch"])
    {
        return testkit::skip("kvm lab", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../projects/kvm-lab.mln"
    ))
    .unwrap();
    // alice pings bob on the other LAN, through the router.
    let file = dir.path().join("kvm-lab.mln");
    std::fs::write(
        &file,
        sample.replace(
            "host alice { superclass pc;",
            "host alice { superclass pc; startup { ok=no; for i in $(seq 60); do \
             ping -c 1 -W 1 192.168.2.10 >/dev/null 2>&1 && ok=yes && break; done; \
             echo KVM-PING-$ok }",
        ),
    )
    .unwrap();
    ok(&mln(&state, &["up", file.to_str().unwrap()]));
    let s = status(&state, "kvmlab");
    for h in ["router", "alice", "bob"] {
        assert_eq!(host_state(&s, h).0, "running", "{h}: {s}");
        assert_eq!(host_field(&s, h, "platform"), "kvm");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let log = loop {
        let o = mln(&state, &["log", "-p", "kvmlab", "alice"]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if text.contains("KVM-PING-") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(log.contains("KVM-PING-yes"), "{log}");
    ok(&mln(&state, &["remove", "-p", "kvmlab"]));
    assert!(!state.join("kvmlab").exists(), "state left behind");
    assert!(testkit::processes_under(dir.path()).is_empty());
}

#[test]
fn site_settings_give_defaults_and_mln_config_says_where_each_came_from() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let projects = dir.path().join("projects");
    // MLN 1.0.8's own ~/.mln keys.
    std::fs::write(
        home.join(".mln"),
        format!("projects {}\ndefault_memory 96M\n", projects.display()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(args)
            .env("HOME", &home)
            .env_remove("MLN_STATE_DIR")
            .env("NO_COLOR", "1")
            .output()
            .expect("run mln")
    };
    let o = run(&["config"]);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        said.contains(&format!("state folder   {}", projects.display())) && said.contains(".mln:1"),
        "{said}"
    );
    let file = dir.path().join("site.mln");
    std::fs::write(
        &file,
        "global { project site }\nswitch lan {\n}\n\
         host plain { network eth0 { switch lan; address 10.8.0.1/24 } }\n\
         host sized { memory 128M; network eth0 { switch lan; address 10.8.0.2/24 } }\n",
    )
    .unwrap();
    ok(&run(&["up", file.to_str().unwrap()]));
    // The project lives where the site says; `plain` got the site's
    // memory, `sized` kept its own.
    let s = status(&projects, "site");
    assert_eq!(host_state(&s, "plain").1 >> 20, 96, "{s}");
    assert_eq!(host_state(&s, "sized").1 >> 20, 128, "{s}");
    ok(&run(&["remove", "-p", "site"]));
    assert!(!projects.join("site").exists());
}

#[test]
fn mln_exec_runs_commands_in_guests_and_returns_their_output_and_status() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    ok(&mln(&state, &["up", &sample("lab.mln")]));
    // (`--state-dir` before `--`: what follows is the guest's command.)
    let exec = |host: &str, command: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(["exec", "--state-dir"])
            .arg(&state)
            .args(["-p", "lab", host, "--"])
            .args(command)
            .output()
            .expect("run mln exec")
    };
    // alice reaches bob through the router: no console read, no network
    // from here.
    let o = exec("alice", &["ping", "-c", "1", "-W", "5", "192.168.2.10"]);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 packets received"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // The status, stdout and stderr come back apart; words are passed as
    // they are (a quote, a `$`, a `;` are not the host's shell's).
    let o = exec(
        "router",
        &[
            "sh",
            "-c",
            "echo out $0; echo err >&2; exit 7",
            "it's $HOME; rm -rf /",
        ],
    );
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "out it's $HOME; rm -rf /\n"
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    ok(&mln(&state, &["remove", "-p", "lab"]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}

/// MLN's `switch NAME { socket PATH }`: a project's switch that is another
/// project's, so that their guests share one network; removing the
/// joining project never stops the other's switch.
#[test]
fn two_projects_share_a_switch_through_its_socket() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let first = write(
        "first.mln",
        "global { project first }\nswitch lan { }\n\
         host a { memory 64M\n network eth0 { switch lan; address 10.9.0.1; netmask 255.255.255.0 } }\n"
            .to_string(),
    );
    ok(&mln(&state, &["up", &first]));
    let socket = status(&state, "first")[0]["switches"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["switch"] == "lan"))
        .and_then(|s| s["socket"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            panic!(
                "first's switch has no socket: {:#}",
                status(&state, "first")
            )
        });
    let second = write(
        "second.mln",
        format!(
            "global {{ project second }}\nswitch lan {{ socket {socket} }}\n\
             host b {{ memory 64M\n network eth0 {{ switch lan; address 10.9.0.2; netmask 255.255.255.0 }} }}\n"
        ),
    );
    ok(&mln(&state, &["up", &second]));
    let ping = Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(["exec", "--state-dir"])
        .arg(&state)
        .args([
            "-p", "second", "b", "--", "ping", "-c", "2", "-W", "5", "10.9.0.1",
        ])
        .output()
        .expect("run mln exec");
    ok(&ping);
    assert!(
        String::from_utf8_lossy(&ping.stdout).contains("2 packets received"),
        "{}",
        text(&ping)
    );
    let second_status = status(&state, "second");
    assert_eq!(
        second_status[0]["switches"][0]["state"], "up",
        "{second_status:#}"
    );

    ok(&mln(&state, &["remove", "-p", "second"]));
    // a still reaches its own switch: nothing of first's was stopped.
    assert!(
        std::path::Path::new(&socket).join("ctl").exists(),
        "removing second stopped first's switch"
    );
    let first_status = status(&state, "first");
    assert_eq!(
        first_status[0]["switches"][0]["state"], "up",
        "{first_status:#}"
    );
    ok(&mln(&state, &["remove", "-p", "first"]));
}

/// The root file system's size in KiB as `df -k /` in the guest says.
fn root_kib(state: &Path, project: &str, host: &str) -> u64 {
    let o = testkit::run_within(
        Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(["exec", "--state-dir"])
            .arg(state)
            .args(["-p", project, host, "--", "df", "-k", "/"]),
        Duration::from_secs(90),
    );
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in: {text}"))
}

/// A busybox host with `size` gets a root file system of that size: the
/// template carries `resize2fs`, and the guest grows its root at boot; a
/// host without `size` keeps the template's.
#[test]
fn a_busybox_host_grows_its_root_file_system_to_its_size() {
    if !uml_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let file = dir.path().join("grow.mln");
    std::fs::write(
        &file,
        "global { project grow }\nswitch lan { }\n\
         host big { memory 64M; size 300M; network eth0 { switch lan } }\n\
         host plain { memory 64M; network eth0 { switch lan } }\n",
    )
    .unwrap();
    ok(&mln(&state, &["up", file.to_str().unwrap()]));
    let (big, plain) = (
        root_kib(&state, "grow", "big"),
        root_kib(&state, "grow", "plain"),
    );
    // ext4 keeps some of the disk for itself: 300M gives over 270 MiB.
    assert!(big > 270 * 1024, "big: {big} KiB");
    assert!(plain < 100 * 1024, "plain: {plain} KiB");
    ok(&mln(&state, &["remove", "-p", "grow"]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}
