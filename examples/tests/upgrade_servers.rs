//! Issue #5's upgrade applied for real across two servers, through the
//! real `mln`: `projects/upgrade/v1.mln` (everything on server-a) goes up,
//! then `mln upgrade` to `v2.mln` (api gets more memory, batch moves to
//! server-b, cache is new, front is unchanged). The planner's side on Xen
//! is `mln-lang/tests/plan_upgrade.rs`, the live memory change
//! `examples/tests/xen_upgrade.rs`; here the samples run on User-Mode
//! Linux, where a memory change is a restart and a move is cold.
//!
//! The servers are `server_lab::Lab`'s: network namespaces each running
//! its own sshd, with this very `mln` as the agent.

mod server_lab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use server_lab::{host, ok, run, text, Lab, MLN};

const PROJECT: &str = "shop";

/// What front's console says each time batch starts or stops answering
/// its pings.
const PING: &str = "MLN-UPGRADE-PING 10.5.0.3";

/// front in the samples.
const FRONT: &str = "host front { superclass svc; network eth0 { address 10.5.0.1 } }";

/// front in the test copies: the same host, with startup lines that ping
/// batch every second for as long as front runs and say on its console
/// whenever the answer changes (`... up`, `... down`). front is the same
/// in both copies, so the upgrade leaves it (and its loop) alone, and its
/// console tells whether batch answers before and after the move. (`$name`
/// is an MLN variable, so the loop keeps its state in files rather than
/// shell variables.)
const FRONT_PINGING: &str = r#"host front {
    superclass svc
    network eth0 {
        address 10.5.0.1
    }
    startup {
        (
        echo down >/tmp/ping-was
        while sleep 1
        do
        ping -c 1 -W 1 10.5.0.3 >/dev/null 2>&1 && echo up >/tmp/ping-now || echo down >/tmp/ping-now
        cmp -s /tmp/ping-now /tmp/ping-was || echo MLN-UPGRADE-PING 10.5.0.3 "$(cat /tmp/ping-now)"
        cp /tmp/ping-now /tmp/ping-was
        done
        ) &
    }
}"#;

/// The plan from v1 to v2 on UML, exactly: api's memory is a restart (a
/// UML guest's memory is fixed at boot), batch's move is cold (it stops,
/// its disks are copied, it starts on server-b), cache is created, and
/// front has no action (it is named only as a peer of batch on `net`).
const EXPECTED_PLAN: &str = "\
Plan for project shop (upgrade):
  ~ host api update restart
      memory: 128M → 256M (restart)
  → host batch move server-a → server-b (cold)
      service_host: server-a → server-b (move)
      links on net: peers api, cache, front checked again
  + host cache create on server-a
Plan: 1 to create, 1 to update, 0 to rebuild, 1 to move, 0 to destroy, 0 to start/stop; 7 actions.
";

/// A test copy of sample `upgrade/NAME` in `dir`: on UML instead of Xen,
/// and front pinging batch ([`FRONT_PINGING`]).
fn on_uml(dir: &Path, name: &str) -> PathBuf {
    let sample = std::fs::read_to_string(server_lab::sample(&format!("upgrade/{name}"))).unwrap();
    let uml = sample.replace("\n    xen\n", "\n    uml\n");
    assert_ne!(uml, sample, "{name} names no xen");
    let pinging = uml.replace(FRONT, FRONT_PINGING);
    assert_ne!(pinging, uml, "{name} has no front line to replace");
    let path = dir.join(name);
    std::fs::write(&path, pinging).unwrap();
    path
}

/// The plan `mln upgrade` printed: from its heading to its summary line.
fn printed_plan(stdout: &str) -> String {
    let from = stdout.find("Plan for project").unwrap_or(stdout.len());
    let plan = &stdout[from..];
    let to = plan
        .find("\nPlan: ")
        .and_then(|i| plan[i + 1..].find('\n').map(|j| i + 1 + j + 1))
        .unwrap_or(plan.len());
    plan[..to].to_string()
}

/// front's ping lines, in order: `true` where batch answered.
fn pings(log: &str) -> Vec<bool> {
    log.lines()
        .filter_map(|l| l.split_once(PING).map(|(_, rest)| rest.trim()))
        .filter_map(|rest| match rest {
            "up" => Some(true),
            "down" => Some(false),
            _ => None,
        })
        .collect()
}

/// Host `name`'s guest pid in `status`.
fn pid(status: &serde_json::Value, name: &str) -> u32 {
    host(status, name)["id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .unwrap_or_else(|| panic!("{name} has no pid: {status}"))
}

#[test]
fn the_uml_copies_check_clean_and_diff_to_the_expected_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (on_uml(dir.path(), "v1.mln"), on_uml(dir.path(), "v2.mln"));
    for file in [&v1, &v2] {
        let o = run(
            Command::new(MLN).args(["check", file.to_str().unwrap()]),
            Duration::from_secs(30),
        );
        ok(&o);
        assert_eq!(text(&o), "", "{} has diagnostics", file.display());
    }
    let o = run(
        Command::new(MLN).args(["diff", v1.to_str().unwrap(), v2.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    ok(&o);
    assert_eq!(text(&o), EXPECTED_PLAN);
}

#[test]
fn upgrade_restarts_api_moves_batch_to_server_b_creates_cache_and_leaves_front_alone() {
    let Some(lab) = Lab::new(PROJECT) else {
        return;
    };
    let started = Instant::now();
    let dir = lab.state.parent().unwrap();
    let (v1, v2) = (on_uml(dir, "v1.mln"), on_uml(dir, "v2.mln"));

    ok(&lab.mln(&["up", v1.to_str().unwrap()], Duration::from_secs(300)));
    eprintln!("v1 up in {:?}", started.elapsed());
    let before = lab.status_ok();
    for name in ["front", "api", "batch"] {
        let h = host(&before, name);
        assert_eq!(h["state"], "running", "{before}");
        assert_eq!(h["service_host"], "server-a", "{before}");
        // The guest pid status reports runs in server-a's namespace.
        let on_a = lab.processes_on("server-a", &format!("{PROJECT}.{name}"));
        assert!(
            on_a.contains(&pid(&before, name)),
            "{name}: {on_a:?} {before}"
        );
    }
    assert!(lab.processes_on("server-b", PROJECT).is_empty());
    // front reaches batch, both on server-a.
    let log = lab.console_until("front", |l| pings(l).contains(&true));
    let seen = pings(&log).len();
    eprintln!("front pings batch in {:?}", started.elapsed());

    let t = Instant::now();
    let o = lab.mln(
        &["upgrade", "--yes", "-f", v2.to_str().unwrap()],
        Duration::from_secs(300),
    );
    ok(&o);
    eprintln!("upgraded in {:?}", t.elapsed());
    assert_eq!(
        printed_plan(&String::from_utf8_lossy(&o.stdout)),
        EXPECTED_PLAN,
        "{}",
        text(&o)
    );

    let after = lab.status_ok();
    for (name, server) in [
        ("front", "server-a"),
        ("api", "server-a"),
        ("batch", "server-b"),
        ("cache", "server-a"),
    ] {
        let h = host(&after, name);
        if h["state"] != "running" {
            let log = lab.mln(&["log", "-p", PROJECT, name], Duration::from_secs(60));
            panic!("{name} after the upgrade: {after}\n{}", text(&log));
        }
        assert_eq!(h["service_host"], server, "{after}");
        let on = lab.processes_on(server, &format!("{PROJECT}.{name}"));
        assert!(on.contains(&pid(&after, name)), "{name}: {on:?} {after}");
    }
    assert_eq!(host(&after, "api")["memory"], 256u64 << 20, "{after}");
    assert_eq!(host(&after, "front")["memory"], 128u64 << 20, "{after}");
    // front untouched: the same guest process; api restarted with its
    // new memory: a new one.
    assert_eq!(pid(&after, "front"), pid(&before, "front"), "{after}");
    assert_ne!(pid(&after, "api"), pid(&before, "api"), "{after}");
    assert!(lab
        .processes_on("server-a", &format!("{PROJECT}.batch"))
        .is_empty());
    assert!(lab
        .processes_on("server-b", &format!("{PROJECT}.front"))
        .is_empty());

    // front, still pinging from its first boot, lost batch while it moved
    // and reaches it again on server-b, through `net` spanning both.
    let log = lab.console_until("front", |l| {
        let new = &pings(l)[seen..];
        new.iter()
            .position(|up| !up)
            .is_some_and(|down| new[down..].contains(&true))
    });
    eprintln!(
        "front pings batch on server-b in {:?}: {:?}",
        started.elapsed(),
        pings(&log)
    );

    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(300)));
    lab.assert_nothing_left();
    eprintln!("whole test {:?}", started.elapsed());
}
