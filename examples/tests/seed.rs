//! The seed's own case (issue #18): identical guests spread two per
//! server over many servers, handled as one unit. One project: `up`, a
//! ping between guests on different servers through the switch that
//! spans them all, one `upgrade` that moves a fifth of the guests to
//! other servers and changes every guest's memory, then `remove`, after
//! which nothing is left on any server.
//!
//! CI runs it at a reduced size, 10 guests over 5 servers; the seed's
//! full size, 50 guests over 25 servers, is `MLN_SEED_FULL=1` (or
//! `MLN_SEED_SERVERS=N` for any other). Each step's time and action count
//! are printed: figures, not asserts.

mod server_lab;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use server_lab::{host, ok, text, Lab};

const PROJECT: &str = "seed";
/// Written by the last guest once it reaches the first.
const PING_OK: &str = "MLN-SEED-PING-OK";
const GUESTS_PER_SERVER: usize = 2;

fn server_count() -> usize {
    if let Some(n) = std::env::var("MLN_SEED_SERVERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.clamp(2, 100);
    }
    if std::env::var_os("MLN_SEED_FULL").is_some() {
        25
    } else {
        5
    }
}

fn server(i: usize) -> String {
    format!("server-{i}")
}

/// The project: `servers × 2` guests `g0…`, guest `g` on server
/// `placement(g)`, all on one switch spanning every server, each with
/// `memory`. The last guest pings the first and says so on its console.
fn project(servers: usize, memory: &str, placement: impl Fn(usize) -> usize) -> String {
    let guests = servers * GUESTS_PER_SERVER;
    let mut t = format!(
        "global {{\n    project {PROJECT}\n}}\n\n\
         superclass guest {{\n    uml\n    memory {memory}\n    \
         network eth0 {{\n        switch seed\n        netmask 255.255.0.0\n    }}\n}}\n\n\
         switch seed {{\n}}\n"
    );
    for g in 0..guests {
        let _ = write!(
            t,
            "\nhost g{g} {{\n    superclass guest\n    service_host {}\n    \
             network eth0 {{\n        address 10.50.{}.{}\n    }}\n",
            server(placement(g)),
            g / 200,
            g % 200 + 1
        );
        if g + 1 == guests {
            let _ = write!(
                t,
                "    startup {{\n        (\n        until ping -c 1 -W 1 10.50.0.1 >/dev/null 2>&1\n        \
                 do sleep 1\n        done\n        \
                 echo {PING_OK} boot \"$(cat /proc/sys/kernel/random/boot_id)\"\n        ) &\n    }}\n"
            );
        }
        t.push_str("}\n");
    }
    t
}

/// Where guest `g` starts: two per server, in order.
fn first_placement(g: usize) -> usize {
    g / GUESTS_PER_SERVER
}

/// After the upgrade: every fifth guest (the last among them too, so the
/// ping is proven again after a move) goes to the next server.
fn moved(servers: usize, g: usize) -> bool {
    let guests = servers * GUESTS_PER_SERVER;
    g % 5 == 4 || g + 1 == guests
}

fn second_placement(servers: usize, g: usize) -> usize {
    if moved(servers, g) {
        (first_placement(g) + 1) % servers
    } else {
        first_placement(g)
    }
}

/// The boot ids the last guest reported reaching the first from.
fn ping_boots(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once(PING_OK).map(|(_, rest)| rest.trim()))
        .filter_map(|rest| rest.strip_prefix("boot "))
        .map(str::to_owned)
        .collect()
}

/// What `mln` said ran at once ("at most N action(s) at once over ..."),
/// for the figures.
fn at_once(said: &str) -> &str {
    said.lines()
        .find_map(|l| l.split_once(": at most ").map(|(_, rest)| rest))
        .unwrap_or("(not said)")
}

/// The number in "(N action(s) done)".
fn actions_done(said: &str) -> usize {
    said.split_once(" action(s) done")
        .and_then(|(before, _)| before.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Every guest runs where `placement` puts it, and nowhere else.
fn assert_placed(lab: &Lab, servers: usize, placement: impl Fn(usize) -> usize) {
    let status = lab.status_ok();
    for g in 0..servers * GUESTS_PER_SERVER {
        let name = format!("g{g}");
        let h = host(&status, &name);
        let home = server(placement(g));
        assert_eq!(h["state"], "running", "{name}: {status}");
        assert_eq!(h["service_host"], home.as_str(), "{name}: {status}");
        let umid = format!("{PROJECT}.{name} ");
        for s in 0..servers {
            let on = !lab.processes_on(&server(s), &umid).is_empty();
            assert_eq!(
                on,
                server(s) == home,
                "{name} runs on {}: {on}, placed on {home}",
                server(s)
            );
        }
    }
}

#[test]
fn the_seed_comes_up_over_many_servers_moves_a_fifth_changes_memory_and_is_removed() {
    let servers = server_count();
    let guests = servers * GUESTS_PER_SERVER;
    let names: Vec<String> = (0..servers).map(server).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let Some(lab) = Lab::with_servers(PROJECT, &names) else {
        return;
    };
    let dir = lab.state.parent().expect("scratch folder").to_path_buf();
    let v1 = dir.join("seed.mln");
    let v2 = dir.join("seed-v2.mln");
    std::fs::write(&v1, project(servers, "64M", first_placement)).expect("write v1");
    std::fs::write(
        &v2,
        project(servers, "80M", |g| second_placement(servers, g)),
    )
    .expect("write v2");
    let limit = Duration::from_secs(120 + 12 * guests as u64);
    let mut figures = Vec::new();

    let t = Instant::now();
    let o = lab.mln(&["up", v1.to_str().expect("utf-8 path")], limit);
    ok(&o);
    let busy_servers = at_once(&text(&o))
        .split_once(" over ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok());
    assert!(
        busy_servers.is_some_and(|n| n >= servers),
        "the servers did not all work at once: {}",
        at_once(&text(&o))
    );
    figures.push(format!(
        "up: {:.1} s, {} actions; at most {}",
        t.elapsed().as_secs_f64(),
        actions_done(&text(&o)),
        at_once(&text(&o))
    ));
    assert_placed(&lab, servers, first_placement);
    let last = format!("g{}", guests - 1);
    let log = lab.console_until(&last, |l| !ping_boots(l).is_empty());
    let first_boot = ping_boots(&log)[0].clone();
    figures.push(format!(
        "{last} on {} reached g0 on {} after {:.1} s",
        server(first_placement(guests - 1)),
        server(0),
        t.elapsed().as_secs_f64()
    ));

    // The plan says what moves and what only restarts, before anything.
    let plan = lab.mln(&["plan", v2.to_str().expect("utf-8 path")], limit);
    ok(&plan);
    let plan = text(&plan);
    let moves = (0..guests).filter(|&g| moved(servers, g)).count();
    assert!(
        plan.contains(&format!("{moves} to move")),
        "{moves} moves planned:\n{plan}"
    );

    let t = Instant::now();
    let o = lab.mln(
        &["upgrade", "--yes", "-f", v2.to_str().expect("utf-8 path")],
        limit,
    );
    ok(&o);
    figures.push(format!(
        "upgrade ({moves} moved, every guest's memory 64M → 80M): {:.1} s, {} actions; \
         at most {}",
        t.elapsed().as_secs_f64(),
        actions_done(&text(&o)),
        at_once(&text(&o))
    ));
    assert_placed(&lab, servers, |g| second_placement(servers, g));
    let status = lab.status_ok();
    for g in 0..guests {
        let h = host(&status, &format!("g{g}"));
        assert_eq!(h["memory"], 80 * 1024 * 1024, "g{g}: {status}");
    }
    // The moved last guest reaches the first again from its new server.
    lab.console_until(&last, |l| ping_boots(l).iter().any(|b| *b != first_boot));

    let t = Instant::now();
    ok(&lab.mln(&["remove", "-p", PROJECT], limit));
    figures.push(format!("remove: {:.1} s", t.elapsed().as_secs_f64()));
    lab.assert_nothing_left();
    eprintln!("seed, {guests} guests over {servers} servers:");
    for f in figures {
        eprintln!("  {f}");
    }
}

#[test]
fn the_seed_project_checks_and_plans_its_moves_without_servers() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let (v1, v2) = (dir.path().join("v1.mln"), dir.path().join("v2.mln"));
    std::fs::write(&v1, project(25, "64M", first_placement)).expect("write v1");
    std::fs::write(&v2, project(25, "80M", |g| second_placement(25, g))).expect("write v2");
    let o = server_lab::run(
        std::process::Command::new(server_lab::MLN).args([
            "diff",
            v1.to_str().expect("utf-8"),
            v2.to_str().expect("utf-8"),
        ]),
        Duration::from_secs(60),
    );
    ok(&o);
    let plan = text(&o);
    // 50 guests: every fifth moves (10, g49 among them), the other 40 restart
    // for their memory.
    assert!(plan.contains("10 to move"), "{plan}");
    assert!(
        plan.contains("host g49 move server-24 → server-0 (cold)"),
        "{plan}"
    );
    assert!(plan.contains("memory: 64M → 80M"), "{plan}");
}
