//! The test servers for real: namespaces, bridge, one `sshd` each, reached
//! with `ssh -F` and host keys checked, and nothing left after drop.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::{processes_under, TestServers};

fn start(names: &[&str]) -> Option<TestServers> {
    match TestServers::start(names) {
        Ok(s) => Some(s),
        Err(skip) => {
            testkit::skip("servers", &skip.to_string());
            None
        }
    }
}

fn ssh(servers: &TestServers, server: &str, command: &[&str]) -> Output {
    Command::new("ssh")
        .arg("-F")
        .arg(servers.ssh_config())
        .arg(server)
        .args(command)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn ip(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().expect("run ip");
    stdout(&o)
}

/// `ping`, or busybox's where iputils is not installed (.ci/setup
/// installs busybox-static for the guest template).
fn ping_argv() -> Vec<&'static str> {
    let found = |p: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|d| d.join(p).is_file())
    };
    if found("ping") {
        vec!["ping"]
    } else {
        assert!(found("busybox"), "neither ping nor busybox installed");
        vec!["busybox", "ping"]
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has no command line left; it is gone for our purpose.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

#[test]
fn two_servers_answer_ssh_reach_each_other_stop_and_start_and_leave_nothing() {
    let started = Instant::now();
    let Some(mut servers) = start(&["server-a", "server-b"]) else {
        return;
    };
    eprintln!("two servers up in {:?}", started.elapsed());
    let (a, b) = (servers.address("server-a"), servers.address("server-b"));
    assert_ne!(a, b);

    // Each session runs in its server's namespace, host keys checked
    // (StrictHostKeyChecking yes, known_hosts pre-filled).
    for name in ["server-a", "server-b"] {
        let ns = stdout(&ssh(&servers, name, &["ip", "netns", "identify"]));
        assert_eq!(ns, servers.namespace(name));
        let addr = stdout(&ssh(
            &servers,
            name,
            &["ip", "-4", "-o", "addr", "show", "eth0"],
        ));
        assert!(
            addr.contains(&format!("{}/24", servers.address(name))),
            "{addr}"
        );
        // MLN_STATE_DIR is that server's own folder; MLN_SSH_CONFIG lets
        // it reach the others.
        let env = stdout(&ssh(
            &servers,
            name,
            &["printenv", "MLN_STATE_DIR", "MLN_SSH_CONFIG"],
        ));
        let env: Vec<&Path> = env.lines().map(Path::new).collect();
        assert_eq!(env, [&servers.state_dir(name), servers.ssh_config()]);
        assert!(servers.state_dir(name).is_dir());
    }
    assert_ne!(servers.state_dir("server-a"), servers.state_dir("server-b"));
    assert_eq!(
        servers.env(),
        vec![(
            "MLN_SSH_CONFIG".to_string(),
            servers.ssh_config().as_os_str().to_owned()
        )]
    );

    // The servers reach each other through the bridge, and one server
    // reaches another over ssh with the same configuration.
    let ping = ping_argv();
    let o = Command::new("ip")
        .args(["netns", "exec", servers.namespace("server-a")])
        .args(&ping)
        .args(["-c", "1", "-W", "2", &b.to_string()])
        .output()
        .unwrap();
    stdout(&o);
    let o = Command::new("ip")
        .args(["netns", "exec", servers.namespace("server-b")])
        .args(&ping)
        .args(["-c", "1", "-W", "2", &a.to_string()])
        .output()
        .unwrap();
    stdout(&o);
    let hop = ssh(
        &servers,
        "server-a",
        &[
            "ssh",
            "-F",
            "\"$MLN_SSH_CONFIG\"",
            "server-b",
            "ip",
            "netns",
            "identify",
        ],
    );
    assert_eq!(stdout(&hop), servers.namespace("server-b"));

    // A stopped sshd refuses at once; started again, it answers.
    let pids_before: Vec<u32> = ["server-a", "server-b"]
        .iter()
        .filter_map(|n| servers.sshd_pid(n))
        .collect();
    servers.stop_sshd("server-b");
    assert_eq!(servers.sshd_pid("server-b"), None);
    let t = Instant::now();
    let refused = ssh(&servers, "server-b", &["true"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("Connection refused"), "{said}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    stdout(&ssh(&servers, "server-a", &["true"]));
    servers.start_sshd("server-b");
    assert_eq!(
        stdout(&ssh(&servers, "server-b", &["ip", "netns", "identify"])),
        servers.namespace("server-b")
    );

    // Drop: nothing left.
    let prefix = servers.prefix().to_string();
    let dir = servers.dir().to_path_buf();
    let mut pids = pids_before;
    pids.extend(servers.sshd_pid("server-b"));
    let t = Instant::now();
    drop(servers);
    eprintln!("torn down in {:?}", t.elapsed());
    let spaces = ip(&["netns", "list"]);
    assert!(!spaces.contains(&prefix), "namespaces left:\n{spaces}");
    let links = ip(&["-o", "link", "show"]);
    assert!(!links.contains(&prefix), "links left:\n{links}");
    let left: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "sshd left running: {left:?}");
    assert!(processes_under(&dir).is_empty());
    assert!(!dir.exists(), "{} left", dir.display());
    eprintln!("whole test {:?}", started.elapsed());
}

#[test]
fn a_run_killed_before_its_teardown_is_cleared_by_the_next() {
    if start(&[]).is_none() {
        return;
    }
    // The leftovers of a test process that is gone: a namespace with a
    // process in it, a root link, a folder.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let prefix = format!("mlnt{dead:06x}00");
    let ns = format!("{prefix}-server-a");
    ip(&["netns", "add", &ns]);
    let sleeper = Command::new("ip")
        .args(["netns", "exec", &ns, "sleep", "600"])
        .spawn()
        .unwrap();
    let peer = format!("{prefix}-p");
    ip(&[
        "link", "add", &prefix, "type", "veth", "peer", "name", &peer,
    ]);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(dir.join("server-a")).unwrap();

    let servers = start(&["server-a"]).expect("root was enough a moment ago");
    assert!(!ip(&["netns", "list"]).contains(&prefix));
    assert!(!ip(&["-o", "link", "show"]).contains(&prefix));
    assert!(!dir.exists());
    let mut sleeper = sleeper;
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the leftover process was not killed");
    // A live run is never taken for a stale one.
    assert!(ip(&["netns", "list"]).contains(servers.prefix()));
}
