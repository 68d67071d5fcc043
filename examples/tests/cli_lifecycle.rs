//! `mln start/status/upgrade/stop/remove` on real UML guests and real
//! vde switches, the way a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
    let ok = Path::new("/usr/bin/linux.uml").exists() && Path::new("/usr/bin/vde_switch").exists();
    if !ok {
        eprintln!(
            "SKIPPED: linux.uml or vde_switch missing (apt-get install user-mode-linux vde2)"
        );
    }
    ok
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

    ok(&mln(&state, &["upgrade", v2.to_str().unwrap()]));
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
