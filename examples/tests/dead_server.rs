//! A server dies under a running project (issue #18): its sshd stopped
//! and its guests killed. `status` says so within a bounded time, `up`
//! fails naming it while the other server's guests stay up, `mln
//! evacuate` makes its host afresh on the other server (where it reaches
//! its peers again), and once the server answers again the next run
//! removes what it kept (but not, on shared storage, the disk files the
//! host runs from now); `remove` then leaves nothing anywhere.

mod server_lab;

use std::process::Command;
use std::time::{Duration, Instant};

use server_lab::{host, ok, text, Lab};

const PROJECT: &str = "spread";
const PING_OK: &str = "MLN-MULTI-PING-OK";

/// The boot ids app2 reported reaching `peer` from.
fn ping_boots(log: &str, peer: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once(PING_OK).map(|(_, rest)| rest.trim()))
        .filter_map(|rest| rest.strip_prefix(peer))
        .map(|rest| rest.trim().trim_start_matches("boot").trim().to_string())
        .collect()
}

fn kill(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Kill every process in `server`'s namespace but its listening sshd,
/// again until none of `needle`'s is left (a killed guest takes a moment
/// to go, and may have forked meanwhile); at most 10 s.
fn kill_all_on(lab: &Lab, server: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        kill(&lab.processes_on(server, ""));
        std::thread::sleep(Duration::from_millis(100));
        let left = lab.processes_on(server, needle);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle} still runs on {server}: {left:?}"
        );
    }
}

#[test]
fn a_dead_server_is_reported_refused_evacuated_and_cleared_when_it_returns() {
    let Some(mut lab) = Lab::new(PROJECT) else {
        return;
    };
    let file = server_lab::sample("multi-server-uml.mln");
    ok(&lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(300)));
    let log = lab.console_until("app2", |l| !ping_boots(l, "10.9.0.1").is_empty());
    let first_boot = ping_boots(&log, "10.9.0.1")[0].clone();

    // server-b dies: no sshd, its guests and switch instance killed.
    lab.servers.stop_sshd("server-b");
    kill_all_on(&lab, "server-b", "spread.app2");

    // status answers in bounded time, naming the server.
    let t = Instant::now();
    let (o, status) = lab.status();
    assert!(t.elapsed() < Duration::from_secs(45), "{:?}", t.elapsed());
    let said = text(&o);
    assert!(
        said.contains("server-b") && said.contains("unreachable"),
        "{said}"
    );
    let status = status.unwrap_or_else(|| panic!("status JSON: {said}"));
    assert_eq!(host(&status, "db")["state"], "running", "{status}");
    assert_ne!(host(&status, "app2")["state"], "running", "{status}");

    // up fails naming server-b; server-a's guests stay up.
    let o = lab.mln(&["up", "-p", PROJECT], Duration::from_secs(180));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("server-b"), "{}", text(&o));
    let status = lab.status_ok();
    assert_eq!(host(&status, "db")["state"], "running", "{status}");
    assert_eq!(host(&status, "app1")["state"], "running", "{status}");

    // Evacuated: app2 made afresh on server-a, where it reaches its peers.
    let o = lab.mln(
        &["evacuate", "server-b", "-p", PROJECT, "--yes"],
        Duration::from_secs(300),
    );
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("app2: server-b → server-a"), "{said}");
    assert!(said.contains("is lost"), "{said}");
    let status = lab.status_ok();
    let app2 = host(&status, "app2");
    assert_eq!(app2["state"], "running", "{status}");
    assert_eq!(app2["service_host"], "server-a", "{status}");
    assert!(!lab.processes_on("server-a", "spread.app2").is_empty());
    let log = lab.console_until("app2", |l| {
        ping_boots(l, "10.9.0.1").iter().any(|b| *b != first_boot)
    });
    assert!(
        ping_boots(&log, "10.9.0.2")
            .iter()
            .any(|b| *b != first_boot),
        "{log}"
    );

    // server-b answers again: the next run clears what it kept of app2.
    lab.servers.start_sshd("server-b");
    let kept = lab.servers.state_dir("server-b").join(PROJECT);
    assert!(kept.join("disks").exists(), "server-b kept no disks?");
    let o = lab.mln(&["up", "-p", PROJECT], Duration::from_secs(180));
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("kept of app2"), "{said}");
    let left: Vec<_> = std::fs::read_dir(kept.join("disks"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "server-b still keeps {left:?}");

    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(300)));
    lab.assert_nothing_left();
}

/// What `command` prints in app2, run with `mln exec`.
fn in_app2(lab: &Lab, command: &str) -> String {
    let out = lab.mln(
        &["exec", "-p", PROJECT, "app2", "--", "sh", "-c", command],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{command}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The same failure on storage both servers see (each server's disks
/// folder of the project is one shared folder, as an NFS export mounted on
/// both would be): `evacuate` starts app2 on server-a from the very disk
/// it ran from on server-b, so what it wrote there is kept; when server-b
/// answers again, what it kept of app2 is cleared without deleting the
/// disk files app2 now runs from, and a cold move back to server-b over
/// the same storage carries nothing and loses nothing.
#[test]
fn on_shared_storage_a_lost_servers_host_starts_from_its_disk_and_keeps_what_it_wrote() {
    let Some(mut lab) = Lab::new(PROJECT) else {
        return;
    };
    let shared = lab.servers.dir().join("shared-disks");
    std::fs::create_dir_all(&shared).unwrap();
    for server in ["server-a", "server-b"] {
        let dir = lab.servers.state_dir(server).join(PROJECT);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&shared, dir.join("disks")).unwrap();
    }
    let file = server_lab::sample("multi-server-uml.mln");
    ok(&lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(300)));
    lab.console_until("app2", |l| !ping_boots(l, "10.9.0.1").is_empty());
    let first_boot = in_app2(&lab, "cat /proc/sys/kernel/random/boot_id");
    assert_eq!(
        in_app2(&lab, "echo kept > /root/before && sync && cat /root/before"),
        "kept"
    );

    lab.servers.stop_sshd("server-b");
    kill_all_on(&lab, "server-b", "spread.app2");
    let o = lab.mln(
        &["evacuate", "server-b", "-p", PROJECT, "--yes"],
        Duration::from_secs(300),
    );
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("app2: server-b → server-a, started from the disks it ran from"),
        "{said}"
    );
    assert!(
        said.contains("app2 starts from the disks it ran from"),
        "{said}"
    );
    assert!(!said.contains("made afresh"), "{said}");
    // A new boot, of the same disk: what app2 wrote on server-b is there.
    assert_ne!(
        in_app2(&lab, "cat /proc/sys/kernel/random/boot_id"),
        first_boot
    );
    assert_eq!(in_app2(&lab, "cat /root/before"), "kept");
    let app2_disks = || -> Vec<String> {
        std::fs::read_dir(&shared)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with("app2"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = app2_disks();
    assert!(!before.is_empty(), "no disk of app2 in the shared folder");

    // server-b answers again; the run that clears its copy of app2 leaves
    // the shared files alone, and app2 runs on from them.
    lab.servers.start_sshd("server-b");
    let o = lab.mln(&["up", "-p", PROJECT], Duration::from_secs(180));
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("kept of app2"), "{said}");
    assert_eq!(app2_disks(), before, "{said}");
    let status = lab.status_ok();
    assert_eq!(host(&status, "app2")["state"], "running", "{status}");
    assert_eq!(
        host(&status, "app2")["service_host"],
        "server-a",
        "{status}"
    );
    assert_eq!(
        in_app2(
            &lab,
            "echo written > /root/after && sync && cat /root/after"
        ),
        "written"
    );

    // The project file places app2 on server-b: back there, cold (UML),
    // over the same storage. Nothing is carried and nothing deleted.
    let o = lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(300));
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    let status = lab.status_ok();
    assert_eq!(
        host(&status, "app2")["service_host"],
        "server-b",
        "{status}"
    );
    assert_eq!(app2_disks(), before, "{said}");
    assert_eq!(
        in_app2(&lab, "cat /root/before /root/after"),
        "kept\nwritten"
    );

    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(300)));
}

#[test]
fn an_up_that_fails_on_an_unreachable_server_leaves_nothing_after_remove() {
    let Some(mut lab) = Lab::new(PROJECT) else {
        return;
    };
    // server-b does not answer from the start: the switch spanning both
    // servers is started here and on server-a, then fails to reach it.
    lab.servers.stop_sshd("server-b");
    let file = server_lab::sample("multi-server-uml.mln");
    let o = lab.mln(&["up", file.to_str().unwrap()], Duration::from_secs(300));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("server-b"), "{}", text(&o));
    lab.servers.start_sshd("server-b");
    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(300)));
    lab.assert_nothing_left();
}
