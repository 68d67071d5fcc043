//! A project's state file is damaged under running guests (issue #18):
//! `mln` refuses to guess, says so and names `mln recover`, which keeps
//! the damaged file aside, finds the project's guests and switches from
//! what runs, ends them and forgets the project. Nothing is stranded.

use std::path::Path;
use std::process::{Command, Output};

const MLN: &str = env!("CARGO_BIN_EXE_mln");

const PROJECT: &str = r#"global { project broken }
switch lan {
}
host one { memory 48M; network eth0 { switch lan; address 10.0.0.1; netmask 255.255.255.0 } }
host two { memory 48M; network eth0 { switch lan; address 10.0.0.2; netmask 255.255.255.0 } }
"#;

fn mln(state: &Path, args: &[&str]) -> Output {
    Command::new(MLN)
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env("NO_COLOR", "1")
        .output()
        .expect("run mln")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", testkit::output_text(o));
    testkit::output_text(o)
}

/// Up, then the state file cut in half, as a crash of the disk might.
fn up_and_damage(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let state = dir.join("state");
    let file = dir.join("broken.mln");
    std::fs::write(&file, PROJECT).unwrap();
    ok(&mln(&state, &["up", file.to_str().unwrap()]));
    assert!(!testkit::processes_under(&state).is_empty());
    let state_file = state.join("broken/state.json");
    let bytes = std::fs::read(&state_file).unwrap();
    std::fs::write(&state_file, &bytes[..bytes.len() / 2]).unwrap();
    (state, file)
}

fn uml() -> bool {
    let kernel = testkit::uml_kernel();
    let tools = [
        kernel.to_str().unwrap_or("/usr/bin/linux.uml"),
        "/usr/bin/vde_switch",
    ];
    match testkit::missing_tool(&tools) {
        Some(why) => {
            testkit::skip("recover", &why);
            false
        }
        None => true,
    }
}

/// Nothing of the project anywhere, the damaged file kept.
fn assert_recovered(state: &Path, said: &str) {
    assert!(said.contains("damaged state file is kept at"), "{said}");
    assert!(said.contains("recovered and forgotten"), "{said}");
    assert_eq!(testkit::processes_under(state), Vec::<u32>::new());
    assert!(!state.join("broken").exists(), "the project folder is left");
    let kept: Vec<_> = std::fs::read_dir(state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("broken.damaged-state-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let o = mln(state, &["status", "-p", "broken"]);
    assert!(!o.status.success(), "{}", testkit::output_text(&o));
}

#[test]
fn a_damaged_state_is_refused_and_recover_ends_what_runs() {
    if !uml() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let (state, _) = up_and_damage(dir.path());

    for verb in [["status", "-p", "broken"], ["remove", "-p", "broken"]] {
        let o = mln(&state, &verb);
        assert!(!o.status.success(), "{verb:?} on a damaged state");
        let said = testkit::output_text(&o);
        assert!(
            said.contains("corrupt state") && said.contains("mln recover"),
            "{said}"
        );
    }
    // The guests were left alone meanwhile.
    assert!(!testkit::processes_under(&state).is_empty());

    let said = ok(&mln(&state, &["recover", "-p", "broken"]));
    assert!(said.contains("ended"), "{said}");
    assert_recovered(&state, &said);
}

#[test]
fn recover_with_the_project_file_removes_the_project_as_if_it_were_up() {
    if !uml() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let (state, file) = up_and_damage(dir.path());
    let said = ok(&mln(&state, &["recover", "-f", file.to_str().unwrap()]));
    assert!(said.contains("broken: remove"), "{said}");
    assert_recovered(&state, &said);
    // A readable state is not recovered: `remove` is the verb for it.
    ok(&mln(&state, &["up", file.to_str().unwrap()]));
    let o = mln(&state, &["recover", "-p", "broken"]);
    assert!(!o.status.success());
    assert!(
        testkit::output_text(&o).contains("mln remove -p broken"),
        "{}",
        testkit::output_text(&o)
    );
    ok(&mln(&state, &["remove", "-p", "broken"]));
}
