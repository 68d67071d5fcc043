//! A plain-text `root_passwd` never reaches what `mln` prints: `show` (JSON
//! masks it, MLN text carries its hash), `plan`, `up --dry-run`, `diff`,
//! and the source lines quoted by warnings, verbose or not.

use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "Sup3rSecret";

/// `b` has no interface, so loading the project warns about a line that
/// holds the password.
const PROJECT: &str = "global { project sec }\n\
    switch lan { }\n\
    host a {\n  root_passwd Sup3rSecret\n  network eth0 {\n    switch lan\n    address 10.0.0.1\n  }\n}\n\
    host b { root_passwd \"Sup3rSecret\" }\n";

fn mln(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("MLN_STATE_DIR", state)
        .output()
        .expect("run mln")
}

fn assert_no_secret(what: &str, o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what} failed: {err}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "{what} printed the password:\n{out}\n{err}"
    );
    out + &err
}

#[test]
fn show_plan_and_diff_never_print_a_plain_root_password() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("sec.mln");
    std::fs::write(&file, PROJECT).unwrap();
    let other = dir.path().join("sec2.mln");
    std::fs::write(&other, PROJECT.replace("10.0.0.1", "10.0.0.2")).unwrap();
    let f = file.to_str().unwrap();

    let json = assert_no_secret("show", &mln(&state, &["show", f]));
    assert!(json.contains("\"root_passwd\": \"********\""), "{json}");

    let o = mln(&state, &["show", "--format", "mln", f]);
    assert_no_secret("show --format mln", &o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("root_passwd $6$"), "{text}");
    // The hashed text is still a project (the guest gets the same password).
    let again = dir.path().join("again.mln");
    std::fs::write(&again, text.as_bytes()).unwrap();
    assert_no_secret(
        "check of show's text",
        &mln(&state, &["check", again.to_str().unwrap()]),
    );

    let plan = assert_no_secret("plan", &mln(&state, &["plan", f]));
    assert!(plan.contains("host b"), "{plan}");
    assert!(
        plan.contains("root_passwd ***"),
        "the warning lost its line: {plan}"
    );
    assert_no_secret("plan -v", &mln(&state, &["-v", "plan", f]));
    assert_no_secret("up --dry-run", &mln(&state, &["up", "--dry-run", f]));
    assert_no_secret("diff", &mln(&state, &["diff", f, other.to_str().unwrap()]));
    assert!(
        !state.join("sec").join("state.json").exists(),
        "a dry run recorded state"
    );
}
