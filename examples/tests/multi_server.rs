//! A project across two servers, driven through the real `mln` (issue #6):
//! `projects/multi-server-uml.mln` (projects/multi-server.mln on UML)
//! over two test servers, network namespaces each running its own sshd
//! (`testkit::TestServers`), where the same `mln` binary is the agent.
//!
//! The managing side is this machine's root namespace, with its own state
//! folder; each server keeps its files in its own `MLN_STATE_DIR`. That
//! scaffolding (`server_lab::Lab`) is shared with `upgrade_servers.rs`.

mod server_lab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use server_lab::{host, ok, run, text, Lab, MLN};

const PROJECT: &str = "spread";
/// Written by app2's startup lines once it reaches a peer.
const PING_OK: &str = "MLN-MULTI-PING-OK";

fn sample() -> PathBuf {
    server_lab::sample("multi-server-uml.mln")
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

/// Every host of the sample runs, on the server the sample places it on,
/// in that server's namespace.
fn assert_as_placed(lab: &Lab) {
    let status = lab.status_ok();
    for (name, server) in [
        ("db", "server-a"),
        ("app1", "server-a"),
        ("app2", "server-b"),
    ] {
        let h = host(&status, name);
        assert_eq!(h["state"], "running", "{status}");
        assert_eq!(h["service_host"], server, "{status}");
        let umid = format!("{PROJECT}.{name}");
        assert!(
            !lab.processes_on(server, &umid).is_empty(),
            "{name} does not run on {server}"
        );
    }
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
    let Some(mut lab) = Lab::new(PROJECT) else {
        return;
    };
    let started = Instant::now();
    let file = sample();
    ok(&lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(300)));
    eprintln!("up in {:?}", started.elapsed());

    assert_as_placed(&lab);
    assert!(lab.processes_on("server-a", "spread.app2").is_empty());

    // app2 (server-b) reaches db and app1 (server-a) through the switch
    // spanning both servers.
    let log = lab.console_until("app2", |l| {
        !ping_boots(l, "10.9.0.1").is_empty() && !ping_boots(l, "10.9.0.2").is_empty()
    });
    let first_boot = ping_boots(&log, "10.9.0.1")[0].clone();
    eprintln!("pinged across in {:?}", started.elapsed());

    // app2's console, on server-b, through ssh to its agent: its login
    // prompt comes back, and Ctrl-] ends the session (and ssh).
    let mut console = testkit::Dialog::spawn(&mut lab.command(&["console", "-p", PROJECT, "app2"]))
        .expect("run mln console");
    console.send(b"\n").unwrap();
    console
        .expect("app2 login:", Duration::from_secs(60))
        .unwrap();
    console.send(&[0x1d]).unwrap();
    let ended = console.wait(Duration::from_secs(30)).unwrap();
    assert!(ended.success(), "{ended}");

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
    let status = lab.status_ok();
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
    let Some(lab) = Lab::new(PROJECT) else {
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

/// Runs `COMMAND` in `host` through `mln exec`; its standard output.
fn exec(lab: &Lab, host: &str, command: &str) -> String {
    let o = lab.mln(
        &["exec", "-p", PROJECT, host, "--", "sh", "-c", command],
        Duration::from_secs(60),
    );
    ok(&o);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `mln export` of a project over two servers takes each host's disks
/// from its server; `mln import` (here after `mln remove`, as on a new
/// managing machine) puts them back on their servers, and what the
/// guests wrote is there when they come up again. An import that cannot
/// reach one server fails naming it and leaves nothing on the other.
#[test]
fn a_project_on_two_servers_is_exported_and_imported_back_onto_its_servers() {
    let Some(mut lab) = Lab::new(PROJECT) else {
        return;
    };
    let file = sample();
    ok(&lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(300)));
    for (name, mark) in [("db", "written-on-a"), ("app2", "written-on-b")] {
        exec(&lab, name, &format!("echo {mark} > /root/mark && sync"));
    }
    ok(&lab.mln(&["down", "-p", PROJECT], Duration::from_secs(180)));
    let archive = lab.state.parent().unwrap().join("spread.tar");
    let archive = archive.to_str().unwrap();
    let o = lab.mln(
        &["export", "-p", PROJECT, archive],
        Duration::from_secs(180),
    );
    ok(&o);
    assert!(text(&o).contains("3 host(s), 3 with disks"), "{}", text(&o));
    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(180)));
    lab.assert_nothing_left();

    // server-b cannot be reached: the import fails naming it, and what it
    // had made on server-a (app1's disks come first) is gone again.
    lab.servers.stop_sshd("server-b");
    let o = lab.mln(&["import", archive], Duration::from_secs(180));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("server-b"), "{}", text(&o));
    eprintln!("import without server-b: {}", text(&o));
    lab.assert_nothing_left();
    lab.servers.start_sshd("server-b");

    ok(&lab.mln(&["import", archive], Duration::from_secs(180)));
    // Each server marks the disks it received as placed by it (what an
    // evacuation reads on shared storage).
    for (name, server) in [("db", "server-a"), ("app2", "server-b")] {
        let mark = lab
            .servers
            .state_dir(server)
            .join(PROJECT)
            .join("disks")
            .join(format!(".{name}.home"));
        assert_eq!(
            std::fs::read_to_string(&mark).unwrap_or_default(),
            server,
            "{}",
            mark.display()
        );
    }
    ok(&lab.mln(&["up", "-p", PROJECT], Duration::from_secs(300)));
    assert_as_placed(&lab);
    assert_eq!(exec(&lab, "db", "cat /root/mark"), "written-on-a");
    assert_eq!(exec(&lab, "app2", "cat /root/mark"), "written-on-b");

    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(300)));
    lab.assert_nothing_left();
}
