//! `mln up/status/log/remove` of a host on another server, through the
//! real `mln agent` run as a child process. `MLN_SSH` is a stand-in for
//! ssh that drops ssh's options and the server name, gives the server its
//! own `MLN_STATE_DIR` (as sshd does for the namespace servers of
//! `multi_server.rs`, which test the real ssh) and runs the rest: the
//! agent command the managing `mln` asked for.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::processes_under;

const MLN: &str = env!("CARGO_BIN_EXE_mln");

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{:?}\n{}", o.status, text(o));
}

struct Lab {
    dir: tempfile::TempDir,
    ssh: PathBuf,
}

impl Lab {
    fn new() -> Option<Lab> {
        let kernel = testkit::uml_kernel();
        let kernel = kernel.to_str().unwrap_or("/usr/bin/linux.uml");
        if let Some(why) = testkit::missing_tool(&[kernel, "/usr/bin/vde_switch"]) {
            testkit::skip("agent_local", &why);
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("fake-ssh");
        let servers = dir.path().join("servers");
        std::fs::write(
            &ssh,
            format!(
                "#!/bin/sh\n\
                 while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
                 shift\n\
                 MLN_STATE_DIR='{}'/\"$1\"; export MLN_STATE_DIR\n\
                 shift\n\
                 exec \"$@\"\n",
                servers.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(Lab { dir, ssh })
    }

    fn server_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("servers").join(name)
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn mln_with(&self, ssh: &Path, args: &[&str]) -> Output {
        let templates = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        let mut cmd = Command::new(MLN);
        cmd.args(args)
            .env("MLN_SSH", ssh)
            .env("MLN_AGENT", MLN)
            .env_remove("MLN_SSH_CONFIG")
            .env("MLN_STATE_DIR", self.state())
            .env("MLN_TEMPLATE_DIR", templates)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(240)) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("mln {args:?} hung");
            }
        }
    }

    fn mln(&self, args: &[&str]) -> Output {
        self.mln_with(&self.ssh, args)
    }

    /// `solo` on server-a; with `near`, a host on this machine on the same
    /// switch, which pings `solo` across the cable and says so.
    fn project(&self, name: &str, memory: &str, near: bool) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.mln"));
        let mut text = format!(
            "global {{\n project {name}\n}}\n\
             switch lan {{\n}}\n\
             host solo {{\n uml\n service_host server-a\n memory {memory}\n \
             network eth0 {{\n  switch lan\n  address 10.7.0.1\n  netmask 255.255.255.0\n }}\n}}\n"
        );
        if near {
            text.push_str(
                "host near {\n uml\n memory 64M\n \
                 network eth0 {\n  switch lan\n  address 10.7.0.2\n  netmask 255.255.255.0\n }\n \
                 startup {\n  (\n  until ping -c 1 -W 1 10.7.0.1 >/dev/null 2>&1\n  do sleep 1\n  done\n  \
                 echo MLN-AGENT-PING-OK\n  ) &\n }\n}\n",
            );
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Polls `mln log -p PROJECT HOST` until it shows `needle`.
    fn console_until(&self, project: &str, host: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let o = self.mln(&["log", "-p", project, host]);
            if String::from_utf8_lossy(&o.stdout).contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{host} never showed {needle}: {}",
                text(&o)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pid in processes_under(self.dir.path()) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

#[test]
fn a_host_on_server_a_comes_up_through_the_agent_shows_in_status_and_is_removed() {
    let Some(lab) = Lab::new() else {
        return;
    };
    let file = lab.project("faraway", "64M", true);
    ok(&lab.mln(&["up", file.to_str().unwrap()]));

    // The guest runs with server-a's files, none of it on this side.
    let server_a = lab.server_dir("server-a");
    assert!(!processes_under(&server_a.join("faraway")).is_empty());
    assert!(server_a.join("faraway/disks/solo.cow").exists());
    assert!(!lab.state().join("faraway/disks/solo.cow").exists());

    let o = lab.mln(&["status", "--json", "-p", "faraway"]);
    ok(&o);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let solo = &st[0]["hosts"][1];
    assert_eq!(solo["state"], "running", "{st}");
    assert_eq!(solo["service_host"], "server-a", "{st}");
    let a = st[0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == "server-a")
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(a["reachable"], true, "{st}");
    assert_eq!(a["vms"], 1, "{st}");

    // near (here) reaches solo (server-a) through the switch's two
    // instances and the cable between them.
    assert!(lab
        .state()
        .join("faraway/cables/lan--server-a.pid")
        .exists());
    lab.console_until("faraway", "near", "MLN-AGENT-PING-OK");
    assert!(a["memory_free"].as_u64().unwrap() > 0, "{st}");

    // The console, read through the agent: wait for the boot to finish
    // before stopping, or the guest only reboots when asked to halt.
    lab.console_until("faraway", "solo", mln_core::template::BOOT_FINISHED);
    lab.console_until("faraway", "near", mln_core::template::BOOT_FINISHED);

    // server-a unreachable: status says so, and still answers.
    let broken = lab.dir.path().join("broken-ssh");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'ssh: connect to host 10.0.0.2 port 22: Connection refused' >&2\nexit 255\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = lab.mln_with(&broken, &["status", "--json", "-p", "faraway"]);
    // MLN's exit status: 1, a host being down (unreachable).
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains(
            "server-a: unreachable: ssh: connect to host 10.0.0.2 port 22: Connection refused"
        ),
        "{said}"
    );
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st[0]["hosts"][1]["state"], "unreachable", "{st}");
    assert_eq!(st[0]["hosts"][0]["state"], "running", "{st}");
    // An upgrade that must touch it fails, naming the server.
    let o = lab.mln_with(&broken, &["down", "-p", "faraway"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("server-a: unreachable"), "{}", text(&o));

    ok(&lab.mln(&["remove", "-p", "faraway"]));
    assert!(processes_under(lab.dir.path()).is_empty());
    assert!(!lab.state().join("faraway").exists());
    assert!(
        !server_a.join("faraway").exists(),
        "server-a keeps the project's folder"
    );
}

#[test]
fn a_host_larger_than_server_a_memory_is_refused_before_anything_is_made() {
    let Some(lab) = Lab::new() else {
        return;
    };
    let file = lab.project("toobig", "4096G", false);
    let o = lab.mln(&["up", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("server-a: not enough memory"),
        "the refusal names the server: {said}"
    );
    assert!(
        !lab.server_dir("server-a").join("toobig").exists(),
        "{said}"
    );
    assert!(processes_under(lab.dir.path()).is_empty());
}
