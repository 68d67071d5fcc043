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

/// MLN's tree text with every block's lines and blocks sorted: MLN 1.0.8
/// prints its Perl hashes in an order that changes from run to run, so
/// only the content can be compared.
fn sorted_tree(text: &str) -> Vec<String> {
    fn block<'a>(lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>) -> Vec<String> {
        let mut items = Vec::new();
        while let Some(line) = lines.next() {
            let line = line.trim();
            if line == "}" {
                break;
            }
            match line.strip_suffix(" {") {
                Some(name) => items.push(format!("{name} {{ {} }}", block(lines).join("; "))),
                None => items.push(line.to_string()),
            }
        }
        items.sort();
        items
    }
    block(&mut text.lines().peekable())
}

/// `mln parse -f FILE` with no path prints the project as written, as
/// MLN's tree. MLN 1.0.8's answer, from
/// `perl mln parse -f projects/lab.mln` (exit 0; its block order varies
/// from run to run, ours is the file's):
const LAB_TREE_MLN_1_0_8: &str = "\
host {
\tbob {
\t\tsuperclass pc
\t\tnetwork {
\t\t\teth0 {
\t\t\t\tswitch right
\t\t\t\taddress 192.168.2.10
\t\t\t\tnetmask 255.255.255.0
\t\t\t\tgateway 192.168.2.1
\t\t\t}
\t\t}
\t}
\trouter {
\t\tsuperclass pc
\t\tstartup {
\t\t\techo 1 > /proc/sys/net/ipv4/ip_forward
\t\t}
\t\tnetwork {
\t\t\teth0 {
\t\t\t\tswitch left
\t\t\t\taddress 192.168.1.1
\t\t\t\tnetmask 255.255.255.0
\t\t\t}
\t\t\teth1 {
\t\t\t\tswitch right
\t\t\t\taddress 192.168.2.1
\t\t\t\tnetmask 255.255.255.0
\t\t\t}
\t\t}
\t}
\talice {
\t\tsuperclass pc
\t\tnetwork {
\t\t\teth0 {
\t\t\t\tswitch left
\t\t\t\taddress 192.168.1.10
\t\t\t\tnetmask 255.255.255.0
\t\t\t\tgateway 192.168.1.1
\t\t\t}
\t\t}
\t}
}
superclass {
\tpc {
\t\tmemory 64M
\t\tnameserver 192.168.1.1
\t}
}
switch {
\tleft {
\t}
\tright {
\t}
}
global {
\tproject lab
}
";

#[test]
fn parse_with_no_path_prints_the_tree_as_written_as_mln_1_0_8_does() {
    let o = mln(&["parse", "-f", &project("lab.mln")]);
    assert!(o.status.success());
    let ours = stdout(&o);
    assert_eq!(
        sorted_tree(&ours),
        sorted_tree(LAB_TREE_MLN_1_0_8),
        "{ours}"
    );
    // In the file's order, tab-indented as MLN's.
    assert!(
        ours.starts_with("global {\n\tproject lab\n}\nsuperclass {\n\tpc {\n"),
        "{ours}"
    );
}

/// `mln parse -f projects/lab.mln -H PATH`: the tree at PATH with the
/// superclass applied. Each answer from `perl mln parse -f
/// projects/lab.mln -H PATH` with MLN 1.0.8 (exit 0; compared sorted, as
/// its order varies from run to run).
#[test]
fn parse_h_prints_the_resolved_tree_as_mln_1_0_8_does() {
    let lab = project("lab.mln");
    for (path, mln_1_0_8) in [
        (
            "/host/alice",
            "memory 64M\nsuperclass pc\nnetwork {\n\teth0 {\n\t\tnetmask 255.255.255.0\n\t\t\
             gateway 192.168.1.1\n\t\tswitch left\n\t\taddress 192.168.1.10\n\t}\n}\n\
             nameserver 192.168.1.1\n",
        ),
        (
            "/switch",
            "right {\n\thosts {\n\t\tbob eth0\n\t\trouter eth1\n\t}\n}\n\
             left {\n\thosts {\n\t\trouter eth0\n\t\talice eth0\n\t}\n}\n",
        ),
        (
            "/host/router/network/eth0",
            "netmask 255.255.255.0\naddress 192.168.1.1\nswitch left\n",
        ),
        ("/global", "project lab\n"),
        // Nothing there: nothing printed, success.
        ("/host/nobody", ""),
    ] {
        let o = mln(&["parse", "-f", &lab, "-H", path]);
        assert!(o.status.success(), "{path}: exit {:?}", o.status.code());
        assert_eq!(sorted_tree(&stdout(&o)), sorted_tree(mln_1_0_8), "{path}");
    }
    // `-H /host` is every host, each under its name.
    let o = mln(&["parse", "-f", &lab, "-H", "/host"]);
    let all = stdout(&o);
    let hosts: Vec<&str> = all
        .lines()
        .filter(|l| l.ends_with(" {") && !l.starts_with('\t'))
        .collect();
    assert_eq!(hosts, ["router {", "alice {", "bob {"]);
}

/// A switch a Xen guest plugs into, as MLN 1.0.8 answers on the same
/// file (`perl mln parse -f xenlab.mln -S PATH`, the text below; every
/// answer exit 0). One deliberate difference: MLN answered
/// `/switch/lan/bridge` with `lan.xl`, the name it gave its bridges;
/// `mln` answers the bridge it makes (docs/language.md).
#[test]
fn parse_answers_about_a_xen_switch_as_mln_1_0_8_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("xenlab.mln");
    std::fs::write(
        &file,
        "global {\n    project xl\n}\nswitch lan {\n}\n\
         host a {\n    xen\n    network eth0 {\n        switch lan\n    }\n}\n\
         host b {\n    network eth0 {\n        switch lan\n    }\n}\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    for (path, mln_1_0_8) in [
        ("/switch/lan/xen", "1\n"),
        ("/switch/lan/hosts/b", "eth0\n"),
        ("/host/b/xen", "\n"),
        ("/host/a/xen", "1\n"),
    ] {
        let o = mln(&["parse", "-f", file, "-S", path]);
        assert!(o.status.success(), "{path}");
        assert_eq!(stdout(&o), mln_1_0_8, "{path}");
    }
    let o = mln(&["parse", "-f", file, "-S", "/switch/lan/bridge"]);
    let bridge = stdout(&o);
    let name = bridge.trim_end();
    assert!(
        name.len() == 15
            && name.starts_with("mln")
            && name[3..].chars().all(|c| c.is_ascii_hexdigit()),
        "{bridge:?}"
    );
    // `perl mln parse -f xenlab.mln -H /switch/lan` answered
    // "xen 1\nbridge lan.xl\nhosts {\n\ta eth0\n\tb eth0\n}\n".
    let o = mln(&["parse", "-f", file, "-H", "/switch/lan"]);
    assert_eq!(
        sorted_tree(&stdout(&o)),
        sorted_tree(&format!(
            "xen 1\nbridge {name}\nhosts {{\n\ta eth0\n\tb eth0\n}}\n"
        ))
    );
}

/// `-S` on a block that is there answers `1`, as MLN 1.0.8 does
/// (`perl mln parse -f projects/lab.mln -S /host/router/startup` printed
/// `1`, exit 0).
#[test]
fn parse_s_on_a_block_answers_1_as_mln_1_0_8_does() {
    let o = mln(&[
        "parse",
        "-f",
        &project("lab.mln"),
        "-S",
        "/host/router/startup",
    ]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "1\n");
}
