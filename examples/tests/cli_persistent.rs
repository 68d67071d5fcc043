//! `global { persistent }` and `mln check-persistent` (MLN's
//! `check_persistent`): after the server restarts, a persistent project
//! comes back up and the others stay down. A restart is played by killing
//! every process the projects ran (their records stay, as on disk).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use testkit::{output_text, run_within, KillUnder};

const LIMIT: Duration = Duration::from_secs(180);

fn mln(state: &Path, args: &[&str]) -> Output {
    run_within(
        Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(args)
            .arg("--state-dir")
            .arg(state)
            .env("NO_COLOR", "1"),
        LIMIT,
    )
}

use testkit::assert_ok as ok;

/// `(hosts, running)` of each recorded project, from `mln list`.
fn running(state: &Path) -> Vec<(String, String)> {
    let o = mln(state, &["list"]);
    ok(&o);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(": ")?;
            Some((name.to_string(), rest.split(", ").nth(1)?.to_string()))
        })
        .collect()
}

fn project(name: &str, persistent: bool) -> String {
    format!(
        "global {{\n  project {name}\n{}}}\nswitch lan {{\n}}\n\
         host a {{ memory 48M; network eth0 {{ switch lan; address 10.0.0.1; netmask 255.255.255.0 }} }}\n\
         host b {{ memory 48M; network eth0 {{ switch lan; address 10.0.0.2; netmask 255.255.255.0 }} }}\n",
        if persistent { "  persistent\n" } else { "" }
    )
}

#[test]
fn after_a_restart_check_persistent_brings_back_only_persistent_projects() {
    if !testkit::uml_ready("check_persistent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _kill = KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    for (name, persistent) in [("kept", true), ("plain", false)] {
        let file = dir.path().join(format!("{name}.mln"));
        std::fs::write(&file, project(name, persistent)).unwrap();
        ok(&mln(&state, &["up", "-q", file.to_str().unwrap()]));
    }
    assert_eq!(
        running(&state),
        [
            ("kept".into(), "2 running".into()),
            ("plain".into(), "2 running".into())
        ]
    );

    // The server "restarts": every guest and switch is gone, the records
    // stay.
    for pid in testkit::processes_under(&state) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !testkit::processes_under(&state).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "guests outlived kill -9"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        running(&state),
        [
            ("kept".into(), "0 running".into()),
            ("plain".into(), "0 running".into())
        ]
    );

    let check = mln(&state, &["check-persistent"]);
    ok(&check);
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("1 persistent project(s) checked"),
        "{}",
        output_text(&check)
    );
    assert_eq!(
        running(&state),
        [
            ("kept".into(), "2 running".into()),
            ("plain".into(), "0 running".into())
        ]
    );
    // Run again with everything up, it changes nothing (MLN's name too).
    ok(&mln(&state, &["check_persistent"]));
    assert_eq!(running(&state)[0], ("kept".into(), "2 running".into()));

    // The boot-time unit.
    let units = dir.path().join("units");
    let install = mln(
        &state,
        &[
            "check-persistent",
            "--install",
            "--unit-dir",
            units.to_str().unwrap(),
        ],
    );
    ok(&install);
    let unit = std::fs::read_to_string(units.join("mln-persistent.service")).unwrap();
    assert!(unit.contains(&format!(
        "check-persistent --state-dir \"{}\"",
        state.display()
    )));

    for name in ["kept", "plain"] {
        ok(&mln(&state, &["remove", "-q", "-p", name]));
    }
    assert_eq!(testkit::processes_under(dir.path()), Vec::<u32>::new());
}
