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
        "kvm-lab.mln",
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
    // Nothing there: an empty line and success, as MLN answers.
    let o = mln(&["parse", "-f", &f, "-S", "/host/nosuch/memory"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "\n");
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

#[test]
fn diff_of_the_upgrade_sample_is_api_live_batch_move_cache_create() {
    let state = tempfile::tempdir().unwrap();
    let (v1, v2) = (project("upgrade/v1.mln"), project("upgrade/v2.mln"));
    let run = |extra: &[&str]| {
        let mut args = vec!["diff", v1.as_str(), v2.as_str()];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(&args)
            .env("NO_COLOR", "1")
            .env("MLN_STATE_DIR", state.path())
            .output()
            .expect("run mln");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };

    let text = run(&[]);
    assert!(text.contains("~ host api update live"), "{text}");
    assert!(text.contains("memory: 128M → 256M (live)"), "{text}");
    assert!(
        text.contains("→ host batch move server-a → server-b"),
        "{text}"
    );
    assert!(text.contains("+ host cache create on server-a"), "{text}");
    assert!(!text.contains("host front"), "front is untouched: {text}");
    assert!(text.contains("1 to create, 1 to update, 0 to rebuild, 1 to move, 0 to destroy"));

    let v: serde_json::Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    let hosts: Vec<(String, String)> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_string(),
                h["kind"].to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = hosts.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(names, ["api", "batch", "cache"], "{v}");
    let actions = v["actions"].as_array().unwrap();
    assert!(actions.iter().all(|a| a["host"] != "front"), "{v}");
    assert!(actions
        .iter()
        .any(|a| a["op"] == "set_memory" && a["host"] == "api" && a["to"] == 256u64 << 20));
    assert!(actions
        .iter()
        .any(|a| a["op"] == "move" && a["host"] == "batch" && a["to"] == "server-b"));
    assert!(actions
        .iter()
        .any(|a| a["op"] == "create_domain" && a["host"] == "cache"));

    // Pure: no state was read or written.
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn diff_refuses_files_of_two_different_projects() {
    let o = mln(&["diff", &project("lab.mln"), &project("upgrade/v2.mln")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("two versions of one project"));
}

#[test]
fn graph_of_the_lab_has_every_host_switch_and_link() {
    let o = mln(&["graph", &project("lab.mln"), "--format", "dot"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dot = stdout(&o);
    assert!(dot.starts_with("graph \"lab\" {"), "{dot}");
    for node in [
        "\"host:router\"",
        "\"host:alice\"",
        "\"host:bob\"",
        "\"switch:left\"",
        "\"switch:right\"",
    ] {
        assert!(dot.contains(&format!("  {node} [label=")), "{node}: {dot}");
    }
    for link in [
        r#""host:router" -- "switch:left" [label="eth0\n192.168.1.1/24"]"#,
        r#""host:router" -- "switch:right" [label="eth1\n192.168.2.1/24"]"#,
        r#""host:alice" -- "switch:left" [label="eth0\n192.168.1.10/24"]"#,
        r#""host:bob" -- "switch:right" [label="eth0\n192.168.2.10/24"]"#,
    ] {
        assert!(dot.contains(link), "{link}: {dot}");
    }
    assert_eq!(dot.matches(" -- ").count(), 4, "{dot}");

    let o = mln(&["graph", &project("lab.mln"), "--format", "mermaid"]);
    assert!(o.status.success());
    let mm = stdout(&o);
    assert!(mm.contains("flowchart LR"), "{mm}");
    // Ids are positional; find each node's id by its label.
    let id = |label: &str| -> String {
        let line = mm
            .lines()
            .find(|l| l.contains(&format!("\"{label}")) && !l.contains("---"))
            .unwrap_or_else(|| panic!("{label} missing: {mm}"));
        line.trim()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap()
            .to_string()
    };
    for (host, iface, addr, switch) in [
        ("router", "eth0", "192.168.1.1/24", "left"),
        ("router", "eth1", "192.168.2.1/24", "right"),
        ("alice", "eth0", "192.168.1.10/24", "left"),
        ("bob", "eth0", "192.168.2.10/24", "right"),
    ] {
        let edge = format!(
            "{} ---|\"{iface}<br/>{addr}\"| {}",
            id(&format!("{host}<br/>")),
            id(switch)
        );
        assert!(mm.contains(&edge), "{edge}: {mm}");
    }
    assert_eq!(mm.matches(" ---|").count(), 4, "{mm}");
}

#[test]
fn help_documents_exit_codes_and_every_verb() {
    let o = mln(&["--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("Exit codes:"), "{help}");
    for verb in [
        "build", "up", "start", "down", "stop", "upgrade", "remove", "plan", "diff", "status",
        "list", "log", "graph",
    ] {
        assert!(
            help.lines().any(|l| l
                .split_whitespace()
                .any(|w| w.trim_matches(|c| c == '[' || c == ']') == verb)),
            "{verb}: {help}"
        );
    }
}

/// The answers MLN 1.0.8 gives on the same file, each produced by
/// `perl mln parse -f projects/lab.mln -S PATH` (MLN's own source,
/// `kybeg/mln`, with a `~/.mln` naming `template_dir`, `projects` and
/// `files`): every one printed the line shown and exited 0.
#[test]
fn parse_answers_as_mln_1_0_8_does() {
    let lab = project("lab.mln");
    for (path, mln_1_0_8) in [
        ("/switch/left/hosts/router", "eth0\n"),
        ("/switch/right/hosts/bob", "eth0\n"),
        ("/switch/left/bridge", "\n"),
        ("/switch/left/xen", "\n"),
        ("/host/router/nonexistent", "\n"),
        ("/host/alice/network/eth0/address", "192.168.1.10\n"),
        ("/host/router/memory", "64M\n"),
    ] {
        let o = mln(&["parse", "-f", &lab, "-S", path]);
        assert!(o.status.success(), "{path}: exit {:?}", o.status.code());
        assert_eq!(stdout(&o), mln_1_0_8, "{path}");
    }
}

#[test]
fn parse_reads_the_project_from_standard_input() {
    let text = std::fs::read(project("lab.mln")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(["parse", "-f", "-", "-S", "/host/bob/memory"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "64M\n");
}
