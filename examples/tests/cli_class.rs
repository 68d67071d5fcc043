//! `mln class`: a copy of a lab per student of a roster, on real UML
//! guests and vde switches, as a teacher runs it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testkit::{output_text, run_within, Dialog, KillUnder};

/// Every `mln` call here ends within this, or fails the test.
const LIMIT: Duration = Duration::from_secs(240);

/// The `mln` a test runs: the copy beside its state folder when it made
/// one (students must be able to run the program that runs as them, and
/// cargo's target folder may be one they cannot enter), else cargo's.
fn mln_bin(state: &Path) -> PathBuf {
    state
        .parent()
        .map(|d| d.join("bin/mln"))
        .filter(|b| b.is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mln")))
}

/// The UML kernel the test's folder chose for students, if it did.
fn student_kernel(state: &Path) -> Option<String> {
    let chosen = state.parent()?.join("uml-kernel");
    std::fs::read_to_string(chosen).ok()
}

fn mln(state: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(mln_bin(state));
    if let Some(kernel) = student_kernel(state) {
        cmd.env("MLN_UML_KERNEL", kernel);
    }
    run_within(
        cmd.args(args)
            .arg("--state-dir")
            .arg(state)
            .env("NO_COLOR", "1"),
        LIMIT,
    )
}

use testkit::assert_ok as ok;

/// Send a line to 127.0.0.1:`port` and read what comes back until the
/// other side closes (or 10 s pass); the guest's `nc` may take a moment
/// to listen, so an empty answer is tried again for a few seconds.
fn echo_once(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut got = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(b"hello\n");
            let mut buf = [0u8; 64];
            if let Ok(n) = s.read(&mut buf) {
                got = String::from_utf8_lossy(&buf[..n]).into_owned();
            }
        }
        if !got.is_empty() || std::time::Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn lab() -> String {
    format!("{}/../projects/lab.mln", env!("CARGO_MANIFEST_DIR"))
}

/// Removes every copy when dropped, then kills what still runs under the
/// test's folder: a failing assertion leaves nothing behind.
struct Cleanup<'a> {
    state: &'a Path,
    file: &'a str,
    roster: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = mln(
            self.state,
            &["class", "remove", self.file, "--roster", self.roster],
        );
    }
}

/// The MAC the neighbour table of `host` in `project` holds for `address`.
fn neighbour_mac(state: &Path, project: &str, host: &str, address: &str) -> String {
    let exec = |command: &[&str]| {
        let mut argv = vec!["exec", "-p", project, host, "--"];
        argv.extend_from_slice(command);
        run_within(
            Command::new(env!("CARGO_BIN_EXE_mln"))
                .args(["exec", "--state-dir"])
                .arg(state)
                .args(&argv[1..]),
            LIMIT,
        )
    };
    let ping = exec(&["ping", "-c", "1", "-W", "5", address]);
    ok(&ping);
    let arp = exec(&["cat", "/proc/net/arp"]);
    ok(&arp);
    let table = String::from_utf8_lossy(&arp.stdout).into_owned();
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(address))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("{address} not in {project}/{host}'s table: {table}"))
        .to_string()
}

/// Unix users for a class's students, made for the test (root only) and
/// deleted after it, with whatever still runs as them.
struct Users(Vec<String>);

impl Users {
    fn make(names: &[&str]) -> Users {
        for name in names {
            let _ = Command::new("userdel").arg(name).output();
            testkit::run_ok(&[
                "useradd",
                "-M",
                "-d",
                "/nonexistent",
                "-s",
                "/usr/sbin/nologin",
                name,
            ]);
        }
        Users(names.iter().map(|n| n.to_string()).collect())
    }

    fn uid(name: &str) -> u32 {
        let o = testkit::run_ok(&["id", "-u", name]);
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("pkill").args(["-KILL", "-u", name]).output();
            let _ = Command::new("userdel").arg(name).output();
        }
    }
}

/// `mln ARGS --state-dir STATE` run as `user` (the option before a `--`
/// and the command after it).
fn as_user(user: &str, state: &Path, args: &[&str]) -> Output {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let (args, command) = args.split_at(split);
    run_within(
        Command::new("setpriv")
            .args([
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
                "--",
            ])
            .arg(mln_bin(state))
            .args(args)
            .arg("--state-dir")
            .arg(state)
            .args(command)
            .env("HOME", "/nonexistent")
            .env("NO_COLOR", "1")
            .envs(student_kernel(state).map(|k| ("MLN_UML_KERNEL", k))),
        LIMIT,
    )
}

/// Make the test's folder a place students can use: they pass through it,
/// run a copy of `mln` there, read the project file there, and boot a
/// UML kernel they can run (the one the tests use, else one fetched into
/// the folder). Returns the project file.
fn open_to_students(dir: &Path, student: &str) -> String {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_mln"), bin.join("mln")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("lab.mln");
    std::fs::copy(lab(), &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let kernel = testkit::uml_kernel();
    let runs = Command::new("setpriv")
        .args([
            &format!("--reuid={student}"),
            &format!("--regid={student}"),
            "--init-groups",
            "--",
        ])
        .args(["test", "-x"])
        .arg(&kernel)
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        // The kernel lies where students cannot reach (a checkout under
        // /root): fetch one into the folder, as a teacher's site would.
        let kstate = dir.join("kernels-state");
        let o = run_within(
            Command::new(bin.join("mln"))
                .args(["kernel", "fetch", "--state-dir"])
                .arg(&kstate),
            LIMIT,
        );
        ok(&o);
        let shown = run_within(
            Command::new(bin.join("mln"))
                .args(["kernel", "show", "--format", "json", "--state-dir"])
                .arg(&kstate),
            LIMIT,
        );
        let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        let fetched = shown["fetched"]["path"].as_str().unwrap().to_string();
        let mut opened = Path::new(&fetched);
        while let Some(parent) = opened.parent().filter(|p| p.starts_with(dir)) {
            let mode = std::fs::metadata(parent).unwrap().permissions().mode();
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o755))
                .unwrap();
            opened = parent;
        }
        std::fs::write(dir.join("uml-kernel"), &fetched).unwrap();
    }
    file.to_string_lossy().into_owned()
}

/// Log in as root on `host`'s console in `project` with `password`;
/// whether that worked must be `works`.
fn log_in(state: &Path, project: &str, host: &str, password: &str, works: bool) {
    let wait = Duration::from_secs(60);
    let mut c = Dialog::spawn(
        Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(["console", "--state-dir"])
            .arg(state)
            .args(["-p", project, host]),
    )
    .expect("run mln console");
    c.send(b"\n").unwrap();
    c.expect(&format!("{host} login:"), wait).unwrap();
    c.send(b"root\n").unwrap();
    c.expect("Password:", wait).unwrap();
    // login turns echo off just after its prompt: type after that.
    std::thread::sleep(Duration::from_millis(300));
    c.send(format!("{password}\n").as_bytes()).unwrap();
    if works {
        c.expect("#", wait).unwrap();
        c.send(b"echo in-as-$(id -u)\n").unwrap();
        c.expect("in-as-0", wait).unwrap();
        c.send(b"exit\n").unwrap();
    } else {
        c.expect("Login incorrect", wait).unwrap();
    }
    c.send(b"\x1d").unwrap();
    let status = c.wait(wait).unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_class_of_ten_comes_up_isolated_and_goes_away() {
    if !testkit::uml_ready("a_class_of_ten_comes_up_isolated_and_goes_away") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _kill = KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let roster = dir.path().join("class.csv");
    let students = [
        "mlnc-alice",
        "mlnc-bob",
        "mlnc-carol",
        "mlnc-dave",
        "mlnc-erin",
        "mlnc-frank",
        "mlnc-grace",
        "mlnc-heidi",
        "mlnc-ivan",
        "mlnc-judy",
    ];
    // alice gives her SSH key; everyone gets a generated password.
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q alice@home";
    let rows: Vec<String> = students
        .iter()
        .map(|s| format!("{s},{}", if *s == "mlnc-alice" { key } else { "" }))
        .collect();
    std::fs::write(&roster, format!("student,ssh_key\n{}\n", rows.join("\n"))).unwrap();
    // Run by root, each copy belongs to its student's Unix user.
    let root = rustix::process::geteuid().is_root();
    let _users = root.then(|| Users::make(&students));
    let file = if root {
        open_to_students(dir.path(), students[0])
    } else {
        lab()
    };
    let roster = roster.to_string_lossy().into_owned();
    let _cleanup = Cleanup {
        state: &state,
        file: &file,
        roster: &roster,
    };
    let class = |verb: &str, extra: &[&str]| {
        let mut argv = vec!["class", verb, &file, "--roster", &roster];
        argv.extend_from_slice(extra);
        mln(&state, &argv)
    };

    // A port of this machine per student, to port 22 of their router.
    let base = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .min(65500);
    let up = class(
        "up",
        &[
            "--forward-from",
            &base.to_string(),
            "--forward-host",
            "router",
            "--forward-listen",
            "127.0.0.1",
        ],
    );
    ok(&up);
    let said = String::from_utf8_lossy(&up.stdout);
    for s in students {
        assert!(
            said.contains(&format!("lab-{s}: up (14 action(s) done")),
            "{said}"
        );
    }
    assert!(said.contains("class: up 10 of 10 copies"), "{said}");

    let status = class("status", &["--format", "json"]);
    ok(&status);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for (row, s) in rows.iter().zip(students) {
        assert_eq!(row["project"], format!("lab-{s}"));
        assert_eq!(row["state"], "up", "{row}");
        assert_eq!(
            (row["hosts_up"].as_u64(), row["hosts"].as_u64()),
            (Some(3), Some(3))
        );
    }

    // Each port leads into its own student's copy: an echo server on
    // alice's router answers through her port; bob's reaches his router,
    // where nothing listens.
    let said = String::from_utf8_lossy(&up.stdout);
    assert!(
        said.contains("lab-mlnc-alice: up (14 action(s) done"),
        "{said}"
    );
    assert!(said.contains(&format!(", port {base}\n")), "{said}");
    assert!(said.contains(&format!(", port {}\n", base + 9)), "{said}");
    ok(&run_within(
        Command::new(env!("CARGO_BIN_EXE_mln"))
            .args(["exec", "--state-dir"])
            .arg(&state)
            .args(["-p", "lab-mlnc-alice", "router", "--", "sh", "-c"])
            .arg("nc -ll -p 22 -e /bin/cat </dev/null >/dev/null 2>&1 &"),
        LIMIT,
    ));
    assert_eq!(echo_once(base), "hello\n");
    assert_eq!(echo_once(base + 1), "");

    if root {
        // alice's copy is hers: her folder, her guests; bob is kept out by
        // the operating system, alice works on it herself.
        let folder = state.join("lab-mlnc-alice");
        let alice = Users::uid("mlnc-alice");
        let meta = std::fs::metadata(&folder).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (alice, 0o700));
        let running = testkit::processes_under(&folder);
        assert!(!running.is_empty());
        for pid in running {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .map(str::to_string);
            if !status.is_empty() {
                assert_eq!(uid, Some(alice.to_string()), "process {pid}: {status}");
            }
        }
        let bob = as_user("mlnc-bob", &state, &["stop", "-p", "lab-mlnc-alice"]);
        assert!(!bob.status.success());
        assert!(
            output_text(&bob).contains("project lab-mlnc-alice belongs to mlnc-alice"),
            "{}",
            output_text(&bob)
        );
        let peek = run_within(
            Command::new("setpriv")
                .args([
                    "--reuid=mlnc-bob",
                    "--regid=mlnc-bob",
                    "--init-groups",
                    "--",
                    "ls",
                ])
                .arg(&folder),
            LIMIT,
        );
        assert!(
            output_text(&peek).contains("Permission denied"),
            "{}",
            output_text(&peek)
        );
        ok(&as_user(
            "mlnc-alice",
            &state,
            &["stop", "-p", "lab-mlnc-alice"],
        ));
        ok(&as_user(
            "mlnc-alice",
            &state,
            &["up", "-p", "lab-mlnc-alice"],
        ));
        // From the server, alice is one more machine on her own lab's
        // network (a tap in a namespace of her own, no root): her router
        // answers. bob cannot plug into her switch.
        let ping = [
            "switch-exec",
            "-p",
            "lab-mlnc-alice",
            "left",
            "--",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            "192.168.1.1",
        ];
        let seen = as_user("mlnc-alice", &state, &ping);
        ok(&seen);
        assert!(
            output_text(&seen).contains("1 packets received"),
            "{}",
            output_text(&seen)
        );
        let bob = as_user("mlnc-bob", &state, &ping);
        assert!(!bob.status.success(), "{}", output_text(&bob));
    }

    // Each student's password, kept readable by the teacher only.
    let logins = dir.path().join("class-logins.csv");
    assert!(said.contains(&logins.display().to_string()), "{said}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&logins).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&logins).unwrap();
    let password = |student: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{student},lab-{student},")))
            .unwrap_or_else(|| panic!("{student} not in {text}"))
            .to_string()
    };
    assert_eq!(text.lines().count(), 11, "{text}");
    assert_ne!(password("mlnc-alice"), password("mlnc-bob"));
    // alice logs in to her router with her password; bob's is refused.
    log_in(
        &state,
        "lab-mlnc-alice",
        "router",
        &password("mlnc-alice"),
        true,
    );
    log_in(
        &state,
        "lab-mlnc-alice",
        "router",
        &password("mlnc-bob"),
        false,
    );
    // Her key is root's on her hosts, and on nobody else's.
    let keys = |project: &str| {
        let o = run_within(
            Command::new(env!("CARGO_BIN_EXE_mln"))
                .args(["exec", "--state-dir"])
                .arg(&state)
                .args([
                    "-p",
                    project,
                    "bob",
                    "--",
                    "cat",
                    "/root/.ssh/authorized_keys",
                ]),
            LIMIT,
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        keys("lab-mlnc-alice").contains(key),
        "{}",
        keys("lab-mlnc-alice")
    );
    assert!(!keys("lab-mlnc-bob").contains("alice@home"));

    // Every copy has the file's addresses; alice's client reaches her
    // own router, never bob's, though both answer to 192.168.1.1.
    let alice_router = neighbour_mac(&state, "lab-mlnc-alice", "alice", "192.168.1.1");
    let bob_router = neighbour_mac(&state, "lab-mlnc-bob", "alice", "192.168.1.1");
    assert_eq!(
        alice_router,
        mln_lang::plan::derived_mac("lab-mlnc-alice", "router", "eth0").to_string()
    );
    assert_eq!(
        bob_router,
        mln_lang::plan::derived_mac("lab-mlnc-bob", "router", "eth0").to_string()
    );
    assert_ne!(alice_router, bob_router);

    // Resetting one host of one copy: its disk is fresh, the copy's
    // other hosts keep running, and no other copy is touched.
    let exec = |project: &str, command: &[&str]| {
        let mut argv = vec!["exec", "-p", project, "alice", "--"];
        argv.extend_from_slice(command);
        run_within(
            Command::new(env!("CARGO_BIN_EXE_mln"))
                .args(["exec", "--state-dir"])
                .arg(&state)
                .args(&argv[1..]),
            LIMIT,
        )
    };
    for project in ["lab-mlnc-alice", "lab-mlnc-bob"] {
        ok(&exec(project, &["sh", "-c", "echo mine > /marker && sync"]));
    }
    let ids = |project: &str| -> Vec<(String, u64)> {
        let o = mln(&state, &["status", "--json", "-p", project]);
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        s[0]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["host"].as_str().unwrap().to_string(),
                    h["id"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let (before, bob_before) = (ids("lab-mlnc-alice"), ids("lab-mlnc-bob"));
    let reset = mln(&state, &["reset", "lab-mlnc-alice", "alice"]);
    ok(&reset);
    assert!(
        String::from_utf8_lossy(&reset.stdout).contains("lab-mlnc-alice: reset (1 action(s) done)"),
        "{}",
        output_text(&reset)
    );
    let after = ids("lab-mlnc-alice");
    for ((host, id), (_, id_after)) in before.iter().zip(&after) {
        assert_eq!(
            host != "alice",
            id == id_after,
            "{host}: {before:?} → {after:?}"
        );
    }
    assert_eq!(ids("lab-mlnc-bob"), bob_before);
    let gone = exec("lab-mlnc-alice", &["cat", "/marker"]);
    assert!(!gone.status.success(), "{}", output_text(&gone));
    let kept = exec("lab-mlnc-bob", &["cat", "/marker"]);
    ok(&kept);
    assert_eq!(String::from_utf8_lossy(&kept.stdout).trim(), "mine");
    let unknown = mln(&state, &["reset", "lab-mlnc-alice", "nosuch"]);
    assert!(output_text(&unknown).contains("project lab-mlnc-alice: no host nosuch"));

    // One copy stopped by its own name; the others stay up.
    ok(&mln(&state, &["stop", "-p", "lab-mlnc-carol"]));
    let status = class("status", &[]);
    assert_eq!(status.status.code(), Some(1), "{}", output_text(&status));
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lab-mlnc-carol") && l.contains("0/3")),
        "{table}"
    );
    assert_eq!(table.matches("3/3 hosts up").count(), 9, "{table}");

    ok(&class("stop", &[]));
    // The class's stop ended the forwarded ports with the copies.
    for port in [base, base + 9] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
    ok(&class("remove", &[]));
    for s in students {
        assert!(
            !state.join(format!("lab-{s}")).exists(),
            "lab-{s} left behind"
        );
    }
    assert_eq!(testkit::processes_under(dir.path()), Vec::<u32>::new());
}

#[test]
fn one_students_failure_is_named_and_the_others_come_up() {
    if !testkit::uml_ready("one_students_failure_is_named_and_the_others_come_up") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _kill = KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let file = dir.path().join("duo.mln");
    std::fs::write(
        &file,
        "global { project duo; $mem = 64M }\nswitch lan {\n}\n\
         host a { memory $mem; network eth0 { switch lan; address 10.0.0.1; netmask 255.255.255.0 } }\n",
    )
    .unwrap();
    // ben's copy asks for more memory than any test machine has.
    let roster = dir.path().join("duo.csv");
    std::fs::write(&roster, "student,mem\nann,64M\nben,4000G\ncid,48M\n").unwrap();
    let (file, roster) = (
        file.to_string_lossy().into_owned(),
        roster.to_string_lossy().into_owned(),
    );
    let _cleanup = Cleanup {
        state: &state,
        file: &file,
        roster: &roster,
    };
    let up = mln(
        &state,
        &["class", "up", &file, "--roster", &roster, "--no-owners"],
    );
    assert_eq!(up.status.code(), Some(1), "{}", output_text(&up));
    let text = output_text(&up);
    assert!(text.contains("duo-ben: FAILED"), "{text}");
    assert!(text.contains("not enough memory"), "{text}");
    assert!(text.contains("error: failed for ben"), "{text}");
    assert!(text.contains("class: up 2 of 3 copies"), "{text}");
    let status = mln(
        &state,
        &[
            "class", "status", &file, "--roster", &roster, "--format", "json",
        ],
    );
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let states: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["up", "not built", "up"]);
    // Each copy has its own memory, from the roster.
    let cid = rows[2]["status"]["hosts"][0]["memory"].as_u64();
    assert_eq!(cid, Some(48 << 20));
}

#[test]
fn a_bad_roster_or_a_bad_copy_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let roster = dir.path().join("class.csv");
    let file = lab();
    std::fs::write(&roster, "student\nalice\nBob/1\n").unwrap();
    let roster_arg = roster.to_string_lossy().into_owned();
    let o = mln(&state, &["class", "up", &file, "--roster", &roster_arg]);
    assert_eq!(o.status.code(), Some(1));
    let text = output_text(&o);
    assert!(
        text.contains(&format!("{}:3: student `Bob/1`", roster.display())),
        "{text}"
    );

    // A roster column that makes one copy invalid names that student.
    std::fs::write(&roster, "student,mem\nann,64M\nben,lots\n").unwrap();
    let duo = dir.path().join("duo.mln");
    std::fs::write(
        &duo,
        "global { project duo; $mem = 64M }\nhost a { memory $mem }\n",
    )
    .unwrap();
    let o = mln(
        &state,
        &[
            "class",
            "up",
            duo.to_str().unwrap(),
            "--roster",
            &roster_arg,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let text = output_text(&o);
    assert!(text.contains("ben's copy (duo-ben)"), "{text}");
    assert!(text.contains("lots"), "{text}");
    assert!(!text.contains("duo-ann: up"), "{text}");
    let recorded: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !recorded
            .iter()
            .any(|n| n.to_string_lossy().starts_with("duo")),
        "{recorded:?}"
    );
}

/// MemAvailable of the host, bytes.
fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        << 10
}

/// A class at the size of a real one: 30 copies of the sample lab (90
/// guests). Behind a flag (`cargo nextest run -p examples --test cli_class
/// --run-ignored only`); prints its figures for benches/README.md.
#[test]
#[ignore = "30 copies, 90 guests: run with --run-ignored only"]
fn a_class_of_thirty() {
    if !testkit::uml_ready("a_class_of_thirty") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _kill = KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let roster = dir.path().join("class.csv");
    let students: Vec<String> = (1..=30).map(|i| format!("s{i:02}")).collect();
    std::fs::write(&roster, format!("student\n{}\n", students.join("\n"))).unwrap();
    let (file, roster) = (lab(), roster.to_string_lossy().into_owned());
    let _cleanup = Cleanup {
        state: &state,
        file: &file,
        roster: &roster,
    };
    // The template is built before the clock starts.
    ok(&mln(&state, &["build", &file, "--name", "warm"]));
    ok(&mln(&state, &["remove", "-p", "warm"]));
    let before = mem_available();
    let started = std::time::Instant::now();
    let up = mln(
        &state,
        &["class", "up", &file, "--roster", &roster, "--no-owners"],
    );
    let up_time = started.elapsed();
    ok(&up);
    let used = before.saturating_sub(mem_available());
    let started = std::time::Instant::now();
    let status = mln(
        &state,
        &[
            "class", "status", &file, "--roster", &roster, "--format", "json",
        ],
    );
    let status_time = started.elapsed();
    ok(&status);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let up_copies = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "up")
        .count();
    let started = std::time::Instant::now();
    ok(&mln(
        &state,
        &["class", "remove", &file, "--roster", &roster, "--no-owners"],
    ));
    let remove_time = started.elapsed();
    eprintln!(
        "class of 30 (90 guests): up {:.1} s, {up_copies}/30 copies up, host memory +{} MiB \
         ({} MiB a guest), class status {:.2} s, remove {:.1} s",
        up_time.as_secs_f64(),
        used >> 20,
        (used >> 20) / 90,
        status_time.as_secs_f64(),
        remove_time.as_secs_f64()
    );
    assert_eq!(up_copies, 30);
    assert_eq!(testkit::processes_under(dir.path()), Vec::<u32>::new());
}

/// MLN's `owner` on a host and a switch: root's `mln up` gives the project
/// to that user, whose processes the guests and the switch are; another
/// user cannot stop it, its owner can; two owners in one file are refused
/// naming where each is written.
#[test]
fn a_project_whose_hosts_name_an_owner_is_theirs() {
    if !testkit::uml_ready("a_project_whose_hosts_name_an_owner_is_theirs") {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        return testkit::skip(
            "a_project_whose_hosts_name_an_owner_is_theirs",
            "giving a project to a user needs root",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let _kill = KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let (owner, other) = ("mlno-carol", "mlno-dave");
    let _users = Users::make(&[owner, other]);
    let lab_file = open_to_students(dir.path(), owner);
    let _ = std::fs::remove_file(&lab_file);
    let file = dir.path().join("owned.mln");
    let write = |text: String| {
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    write(format!(
        "global {{ project owned }}\nswitch lan {{\n    owner {owner}\n}}\n\
         host a {{\n    owner {owner}\n    memory 64M\n    network eth0 {{ switch lan; address 10.0.0.1/24 }}\n}}\n\
         host b {{\n    memory 64M\n    network eth0 {{ switch lan; address 10.0.0.2/24 }}\n}}\n"
    ));
    let path = file.to_string_lossy().into_owned();
    ok(&mln(&state, &["up", &path]));
    let uid = Users::uid(owner);
    let folder = state.join("owned");
    let meta = std::fs::metadata(&folder).unwrap();
    assert_eq!(meta.uid(), uid, "the project folder is the owner's");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    // Every guest and the switch run as the owner (the host without the
    // key too: a project has one owner).
    let running: Vec<(String, u32)> = testkit::processes_under(&state)
        .into_iter()
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let runs = cmd.contains("linux.uml") || cmd.contains("vde_switch");
            let who = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
            runs.then_some((cmd, who))
        })
        .collect();
    assert!(
        running
            .iter()
            .filter(|(c, _)| c.contains("vde_switch"))
            .count()
            >= 1
            && running
                .iter()
                .filter(|(c, _)| c.contains("linux.uml"))
                .count()
                >= 2,
        "{running:?}"
    );
    assert!(running.iter().all(|(_, who)| *who == uid), "{running:?}");
    // Another user cannot touch it; its owner can.
    let refused = as_user(other, &state, &["stop", "-p", "owned"]);
    assert_ne!(refused.status.code(), Some(0), "{}", output_text(&refused));
    assert!(
        output_text(&refused).contains(&format!("belongs to {owner}")),
        "{}",
        output_text(&refused)
    );
    ok(&as_user(owner, &state, &["stop", "-p", "owned"]));
    ok(&mln(&state, &["remove", "-p", "owned"]));
    assert!(!folder.exists(), "the project folder is removed");

    // Two owners: refused before anything is made, naming both places.
    write(format!(
        "global {{ project mixed }}\nswitch lan {{\n}}\n\
         host a {{\n    owner {owner}\n    network eth0 {{ switch lan; address 10.0.0.1/24 }}\n}}\n\
         host b {{\n    sudo {other}\n    network eth0 {{ switch lan; address 10.0.0.2/24 }}\n}}\n"
    ));
    let mixed = mln(&state, &["up", &path]);
    assert_eq!(mixed.status.code(), Some(1), "{}", output_text(&mixed));
    let said = output_text(&mixed);
    assert!(said.contains("E0026"), "{said}");
    assert!(said.contains("owned.mln:9:"), "{said}");
    assert!(said.contains("host `a` has `mlno-carol` here"), "{said}");
    assert!(!state.join("mixed").exists());
}
