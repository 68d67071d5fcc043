//! The read-only verbs of the `mln` binary, run as a user would run them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run mln")
}

fn project(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../projects");
    root.join(name).to_string_lossy().into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_accepts_every_sample_project() {
    for name in [
        "lab.mln",
        "two-hosts.mln",
        "superclass.mln",
        "autoenum.mln",
        "multi-server.mln",
        "upgrade/v1.mln",
        "upgrade/v2.mln",
    ] {
        let o = mln(&["check", &project(name)]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn check_rejects_unknown_switch_with_location_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.mln");
    std::fs::write(
        &file,
        "global { project p }\nswitch lan {\n}\nhost a {\n  network eth0 {\n    switch lna\n  }\n}\n",
    )
    .unwrap();
    let o = mln(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("E0004"), "{err}");
    assert!(err.contains("bad.mln:6:"), "{err}");
    assert!(err.contains("did you mean `lan`?"), "{err}");

    let o = mln(&["check", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let first = &v[0];
    assert_eq!(first["code"], "E0004");
    assert_eq!(first["location"]["line"], 6);
}

#[test]
fn show_json_has_resolved_typed_fields() {
    let o = mln(&["show", &project("superclass.mln")]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["name"], "webfarm");
    let www2 = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "www2")
        .unwrap();
    assert_eq!(www2["memory"], 256u64 << 20);
}

#[test]
fn show_mln_round_trips_through_check() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["lab.mln", "superclass.mln", "autoenum.mln"] {
        let o = mln(&["show", "--format", "mln", &project(name)]);
        assert!(o.status.success());
        let again = dir.path().join(name);
        std::fs::write(&again, &o.stdout).unwrap();
        let a = mln(&["show", &project(name)]);
        let b = mln(&["show", again.to_str().unwrap()]);
        assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
        assert_eq!(stdout(&a), stdout(&b), "{name}");
    }
}

#[test]
fn parse_queries_scalars_as_written_and_lists_by_line() {
    let f = project("superclass.mln");
    let o = mln(&["parse", "-f", &f, "-S", "/host/www2/memory"]);
    assert_eq!(stdout(&o).trim(), "256M");
    let o = mln(&["parse", "-f", &f, "-S", "/host/www1/network/eth0/address"]);
    assert_eq!(stdout(&o).trim(), "10.1.0.11");
    let o = mln(&["parse", "-f", &f, "-A", "/host/www1/startup"]);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "echo \"booted www1.example.org\" > /etc/motd",
            "service nginx start"
        ]
    );
    let o = mln(&["parse", "-f", &f, "-S", "/host/nosuch/memory"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn show_masks_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw.mln");
    std::fs::write(
        &file,
        "global { project p }\nhost a {\n root_passwd $6$salt$secrethash\n}\n",
    )
    .unwrap();
    let o = mln(&["show", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout(&o).contains("secrethash"));
}

#[test]
fn the_readme_example_project_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("```\n# projects/lab.mln")
        .expect("sample in README")
        + 4;
    let len = readme[start..].find("```").expect("end of sample");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readme.mln");
    std::fs::write(&file, &readme[start..start + len]).unwrap();
    let o = mln(&["check", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
