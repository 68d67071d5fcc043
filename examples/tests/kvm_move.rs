//! A running QEMU guest moves live between two servers through `mln
//! upgrade` (issue #12): its `service_host` changes from server-a to
//! server-b, which do not share storage, so what its overlay holds travels
//! in QEMU's migration stream with its memory. A UML guest on server-a
//! pings it five times a second throughout; the mover prints its boot id
//! every second. Proven: the plan says `live`, the guest then runs on
//! server-b under the same boot id (never rebooted), the pings go on (the
//! lost ones are counted and printed), server-a keeps nothing of it, and
//! `remove` leaves nothing anywhere.
//!
//! The servers are `server_lab::Lab`'s: network namespaces each running
//! its own sshd, with this very `mln` as the agent.

mod server_lab;

use std::time::{Duration, Instant};

use server_lab::{host, ok, text, Lab};

const PROJECT: &str = "kmove";

fn project(mover_on: &str) -> String {
    format!(
        "global {{ project {PROJECT} }}\n\
         switch net {{ service_host server-a }}\n\
         host watcher {{ uml; memory 64M; service_host server-a\n\
           network eth0 {{ switch net; address 10.6.0.1/24 }}\n\
           startup {{ ping -i 0.2 10.6.0.2 > /dev/console 2>&1 & }} }}\n\
         host mover {{ kvm; memory 128M; service_host {mover_on}\n\
           network eth0 {{ switch net; address 10.6.0.2/24 }}\n\
           startup {{ ( while sleep 1; do echo MOVE-BOOT-ID $(cat /proc/sys/kernel/random/boot_id); done ) > /dev/console 2>&1 & }} }}\n"
    )
}

/// The `seq` of every ping reply on a console.
fn replies(console: &str) -> Vec<u64> {
    console
        .lines()
        .filter(|l| l.contains("bytes from 10.6.0.2"))
        .filter_map(|l| {
            l.split("seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn boot_ids(console: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MOVE-BOOT-ID "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_qemu_guest_moves_live_between_servers_without_shared_storage() {
    if let Some(why) = testkit::missing_tool(&["/usr/bin/qemu-system-x86_64"]) {
        return testkit::skip("kvm_move", &why);
    }
    // The guest kernel, fetched here (the servers' namespaces reach no
    // archive) into the folder the lab shares.
    mln_core::qemu::GuestKernel::fetch(server_lab::kernels_dir()).expect("guest kernel");
    let Some(lab) = Lab::new(PROJECT) else {
        return;
    };
    let started = Instant::now();
    let dir = lab.state.parent().unwrap();
    let (v1, v2) = (dir.join("v1.mln"), dir.join("v2.mln"));
    std::fs::write(&v1, project("server-a")).unwrap();
    std::fs::write(&v2, project("server-b")).unwrap();

    ok(&lab.mln(&["up", v1.to_str().unwrap()], Duration::from_secs(300)));
    eprintln!("up in {:?}", started.elapsed());
    let before = lab.status_ok();
    let pid = host(&before, "mover")["id"].as_u64().unwrap();
    assert!(lab
        .processes_on("server-a", "kmove.mover")
        .contains(&(pid as u32)));
    let boot_id = boot_ids(&lab.console_until("mover", |l| !boot_ids(l).is_empty()))[0].clone();
    // The watcher reaches the mover before the move.
    let log = lab.console_until("watcher", |l| replies(l).len() >= 10);
    let last_before = *replies(&log).last().unwrap();

    let plan = lab.mln(&["plan", v2.to_str().unwrap()], Duration::from_secs(120));
    ok(&plan);
    assert!(
        text(&plan).contains("host mover move server-a → server-b (live)"),
        "{}",
        text(&plan)
    );
    let t = Instant::now();
    let o = lab.mln(
        &["upgrade", "--yes", v2.to_str().unwrap()],
        Duration::from_secs(600),
    );
    ok(&o);
    eprintln!("moved in {:?}", t.elapsed());
    let moved = text(&o);
    let report = moved
        .lines()
        .find(|l| l.contains("moved live:") && l.contains("stopped for"))
        .unwrap_or_else(|| panic!("no report of QEMU's figures: {moved}"));
    eprintln!("QEMU: {report}");

    let after = lab.status_ok();
    let mover = host(&after, "mover");
    assert_eq!(mover["service_host"], "server-b", "{after}");
    assert_eq!(mover["state"], "running", "{after}");
    let new_pid = mover["id"].as_u64().unwrap() as u32;
    assert!(lab
        .processes_on("server-b", "kmove.mover")
        .contains(&new_pid));
    assert!(
        lab.processes_on("server-a", "kmove.mover").is_empty(),
        "the old QEMU still runs on server-a"
    );
    // Same boot: the console on server-b shows the boot id of the first.
    let ids = boot_ids(&lab.console_until("mover", |l| !boot_ids(l).is_empty()));
    assert!(
        ids.iter().all(|id| *id == boot_id),
        "rebooted: {ids:?} vs {boot_id}"
    );
    // The pings go on; count the ones lost while it moved.
    let log = lab.console_until("watcher", |l| {
        replies(l).iter().filter(|s| **s > last_before).count() >= 25
    });
    let seqs: Vec<u64> = replies(&log)
        .into_iter()
        .filter(|s| *s > last_before)
        .collect();
    let span = seqs.last().unwrap() - last_before;
    let lost = span - seqs.len() as u64;
    eprintln!(
        "pings at 5/s across the move: {} sent, {lost} lost ({:.1} s without answer)",
        span,
        lost as f64 / 5.0
    );

    ok(&lab.mln(&["remove", "-p", PROJECT], Duration::from_secs(300)));
    lab.assert_nothing_left();
    eprintln!("whole test {:?}", started.elapsed());
}
