//! Ways into a running lab from the server, on real UML guests and a real
//! vde switch: `mln switch-exec` (a command as one more machine on a
//! switch), `mln forward` (a port of this machine to a guest's port), and
//! `mln ssh`'s refusals. Each goes through a tap in a network namespace of
//! its own; none leaves a process or a device behind.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MLN: &str = env!("CARGO_BIN_EXE_mln");
/// The tap an entry makes in its own namespace.
const DEVICE: &str = mln_core::net::entry::DEVICE;
const LIMIT: Duration = Duration::from_secs(240);
/// `mln forward` from a port of this machine's loopback to port 7 of
/// host a (`--port` to add).
const FORWARD_TO_A: [&str; 6] = ["forward", "reach/a", "--listen", "127.0.0.1", "--to", "7"];

const LAB: &str = "global { project reach }
switch lan { }
host a { memory 64M; network eth0 { switch lan; address 10.77.0.1/24 } }
host b { memory 64M; network eth0 { switch lan; address 10.77.0.2/24; gateway 10.77.0.254 } }
";

/// `mln ARGS --state-dir STATE` with the options before a `--` and the
/// command after it.
fn mln(state: &Path, args: &[&str]) -> Output {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let (args, command) = args.split_at(split);
    testkit::run_within(
        Command::new(MLN)
            .args(args)
            .arg("--state-dir")
            .arg(state)
            .args(command)
            .env("NO_COLOR", "1"),
        LIMIT,
    )
}

/// This machine's network devices: an entry's tap ([`DEVICE`]) is never
/// among them (other tests running beside this one add their own).
fn devices() -> Vec<String> {
    std::fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .collect()
}

/// `mln switch-exec -p reach lan -- COMMAND...`.
fn on_lan(state: &Path, command: &[&str]) -> Output {
    mln(
        state,
        &[&["switch-exec", "-p", "reach", "lan", "--"][..], command].concat(),
    )
}

/// Lines sent to 127.0.0.1:`port` come back (an echo server behind it),
/// on three connections in turn.
fn echo_through(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0..3 {
        let mut s = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("port {port}: {e}"),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let line = format!("hello {n}\n");
        s.write_all(line.as_bytes()).unwrap();
        let mut got = vec![0u8; line.len()];
        // The guest's nc may not listen yet on the first try: then the
        // connection is closed at once, and the next one tries again.
        match s.read_exact(&mut got) {
            Ok(()) => assert_eq!(String::from_utf8_lossy(&got), line),
            Err(e) if n == 0 => eprintln!("first try: {e}"),
            Err(e) => panic!("connection {n}: {e}"),
        }
    }
}

/// A free port of this machine's loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tap plugs and namespace entries still running for `state`'s
/// switches.
fn entry_processes(state: &Path) -> Vec<String> {
    testkit::processes_under(state)
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("vde_plug2tap") || c.contains("enter-switch"))
        .collect()
}

#[test]
fn switch_exec_and_forward_reach_guests_and_leave_nothing() {
    if !testkit::uml_ready("switch_exec_and_forward") {
        return;
    }
    if let Some(why) = testkit::missing_tool(&["/usr/bin/unshare", "/usr/bin/vde_plug2tap"]) {
        return testkit::skip("switch_exec_and_forward", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let _kill = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let file = dir.path().join("reach.mln");
    std::fs::write(&file, LAB).unwrap();
    testkit::assert_ok(&mln(&state, &["up", file.to_str().unwrap()]));
    assert!(!devices().iter().any(|d| d == DEVICE));

    // One more machine on the switch: it takes the highest address no
    // host has (b's gateway .254 is taken) and pings both guests.
    let o = mln(
        &state,
        &[
            "switch-exec", "-p", "reach", "lan", "--", "sh", "-c",
            "ip -4 -o addr show mln0; busybox ping -c 1 -W 5 10.77.0.1 && busybox ping -c 1 -W 5 10.77.0.2",
        ],
    );
    testkit::assert_ok(&o);
    let said = testkit::output_text(&o);
    assert!(said.contains("inet 10.77.0.253/24"), "{said}");
    assert_eq!(said.matches("1 packets received").count(), 2, "{said}");
    // Its exit status is the command's.
    let o = on_lan(&state, &["sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", testkit::output_text(&o));

    // A port of this machine to a port of guest a: an echo server there.
    testkit::assert_ok(&mln(
        &state,
        &[
            "exec",
            "-p",
            "reach",
            "a",
            "--",
            "sh",
            "-c",
            "nc -ll -p 7 -e /bin/cat </dev/null >/dev/null 2>&1 &",
        ],
    ));
    let port = free_port();
    let mut forward = Command::new(MLN)
        .args(FORWARD_TO_A)
        .args(["--port", &port.to_string()])
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    echo_through(port);
    // Ended (as a service manager ends it), it takes its namespace's
    // processes with it.
    let _ = Command::new("kill").arg(forward.id().to_string()).status();
    let _ = forward.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !entry_processes(&state).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left: {:?}",
            entry_processes(&state)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The listener goes with the last of them (`forward-inside`, which
    // the parent-death signal ends a moment after its parent).
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still listening");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !devices().iter().any(|d| d == DEVICE),
        "a tap in this machine's network: {:?}",
        devices()
    );

    // In the background, recorded with the project: one per port, and
    // the project's stop ends it.
    let port = free_port();
    let port_arg = port.to_string();
    let background = [&FORWARD_TO_A[..], &["--background", "--port", &port_arg]].concat();
    let o = mln(&state, &background);
    testkit::assert_ok(&o);
    echo_through(port);
    // Side by side, entries never share an address: the forward holds
    // .253, so a command run meanwhile gets .252.
    let o = on_lan(&state, &["ip", "-4", "-o", "addr", "show", "mln0"]);
    testkit::assert_ok(&o);
    assert!(
        testkit::output_text(&o).contains("inet 10.77.0.252/24"),
        "{}",
        testkit::output_text(&o)
    );
    let again = mln(&state, &background);
    assert!(
        testkit::output_text(&again).contains("already runs on port"),
        "{}",
        testkit::output_text(&again)
    );
    // `mln status` shows it, in words and as JSON.
    let o = mln(&state, &["status", "-p", "reach"]);
    let said = testkit::output_text(&o);
    assert!(
        said.lines()
            .any(|l| l.contains(&format!("forward {port_arg}"))
                && l.contains("running")
                && l.contains("reach/a")
                && l.contains(":7")),
        "{said}"
    );
    let o = mln(&state, &["status", "-p", "reach", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", testkit::output_text(&o)));
    let forwards = &status[0]["forwards"];
    assert_eq!(
        forwards[0]["listen"],
        format!("127.0.0.1:{port}"),
        "{status:#}"
    );
    assert_eq!(forwards[0]["host"], "reach/a", "{status:#}");
    assert_eq!(forwards[0]["state"], "running", "{status:#}");
    let o = mln(&state, &["stop", "-p", "reach"]);
    testkit::assert_ok(&o);
    assert!(
        testkit::output_text(&o).contains("1 forwarded port(s) ended"),
        "{}",
        testkit::output_text(&o)
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
    assert!(
        entry_processes(&state).is_empty(),
        "{:?}",
        entry_processes(&state)
    );
    assert!(!state.join("reach/forwards").exists());
    assert!(!state.join("reach/switches/lan/entries").exists());

    // Refusals name what is wrong.
    let o = mln(&state, &["ssh", "reach/nobody"]);
    assert!(
        testkit::output_text(&o).contains("project reach has no host nobody"),
        "{}",
        testkit::output_text(&o)
    );
    let o = mln(&state, &["ssh", "a"]);
    assert!(
        testkit::output_text(&o).contains("which project?"),
        "{}",
        testkit::output_text(&o)
    );
    let o = mln(&state, &["switch-exec", "-p", "reach", "wan", "--", "true"]);
    assert!(
        testkit::output_text(&o).contains("project reach has no switch wan"),
        "{}",
        testkit::output_text(&o)
    );

    testkit::assert_ok(&mln(&state, &["remove", "-p", "reach"]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}
