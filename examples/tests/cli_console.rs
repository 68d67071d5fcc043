//! `mln console` on real guests, the way a student uses it: the login
//! prompt of a UML guest and of a QEMU guest, root's password from the
//! project, a command typed and its answer read, Ctrl-] to leave; the
//! session found as it was left when attached again, and `mln exec` still
//! answering after sessions come and go.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::Dialog;

const PROJECT: &str = "consoles";
const PASSWORD: &str = "Cl4ss-room";
const DETACH: &[u8] = &[0x1d];
const WAIT: Duration = Duration::from_secs(30);

fn mln(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mln"));
    cmd.env("MLN_STATE_DIR", state).env("NO_COLOR", "1");
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run mln");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?}: {text}");
    text
}

fn project(with_kvm: bool) -> String {
    let kvm = if with_kvm {
        "host vm {\n  platform kvm\n  memory 128M\n  superclass pc\n}\n"
    } else {
        ""
    };
    format!(
        "global {{ project {PROJECT} }}\n\
         superclass pc {{\n  root_passwd {PASSWORD}\n}}\n\
         host uml {{\n  memory 64M\n  superclass pc\n}}\n{kvm}"
    )
}

fn console(state: &Path, host: &str) -> Dialog {
    Dialog::spawn(mln(state).args(["console", "-p", PROJECT, host])).expect("run mln console")
}

/// Log in as root on `host`'s console, run a command, leave with Ctrl-].
fn log_in_and_run(state: &Path, host: &str) {
    let mut c = console(state, host);
    c.send(b"\n").unwrap();
    c.expect(&format!("{host} login:"), WAIT).unwrap();
    c.send(b"root\n").unwrap();
    c.expect("Password:", WAIT).unwrap();
    // login turns echo off just after its prompt: type after that.
    std::thread::sleep(Duration::from_millis(300));
    c.send(format!("{PASSWORD}\n").as_bytes()).unwrap();
    c.expect("#", WAIT).unwrap();
    c.send(b"echo sum-$((20+22)) on $(hostname)\n").unwrap();
    c.expect(&format!("sum-42 on {host}"), WAIT).unwrap();
    c.send(DETACH).unwrap();
    let status = c.wait(WAIT).unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn students_log_in_on_uml_and_qemu_consoles_and_leave_them_as_they_were() {
    let kernel = testkit::uml_kernel();
    let kernel = kernel.to_str().unwrap_or("/usr/bin/linux.uml");
    if let Some(why) = testkit::missing_tool(&[kernel]) {
        return testkit::skip("cli_console", &why);
    }
    let with_kvm = testkit::missing_tool(&["/usr/bin/qemu-system-x86_64"]).is_none();
    if !with_kvm {
        testkit::skip("cli_console (QEMU part)", "no /usr/bin/qemu-system-x86_64");
        assert!(!testkit::in_ci(), "CI must test the QEMU console too");
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let file = dir.path().join("consoles.mln");
    std::fs::write(&file, project(with_kvm)).unwrap();
    ok(mln(&state).args(["up"]).arg(&file));

    let hosts: &[&str] = if with_kvm { &["uml", "vm"] } else { &["uml"] };
    for host in hosts {
        log_in_and_run(&state, host);
        // The session stays as it was left (logged in), as on a real
        // console: the next attach gets the shell, not a new login.
        let mut c = console(&state, host);
        c.send(b"echo again-$((6*7))\n").unwrap();
        c.expect("again-42", WAIT).unwrap();
        c.send(b"exit\n").unwrap();
        c.expect("login:", WAIT).unwrap();
        // A wrong password is refused.
        c.send(b"root\n").unwrap();
        c.expect("Password:", WAIT).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.send(b"not-the-password\n").unwrap();
        c.expect("Login incorrect", Duration::from_secs(60))
            .unwrap();
        c.send(DETACH).unwrap();
        assert!(c.wait(WAIT).unwrap().success());
        // Sessions coming and going leave `mln exec`'s line working.
        let out = ok(mln(&state).args(["exec", "-p", PROJECT, host, "--", "echo", "exec-ok"]));
        assert_eq!(out, "exec-ok\n");
    }

    // Input that ends (a pipe) ends the session too, with status 0.
    let c = console(&state, "uml");
    assert!(c.finish(WAIT).unwrap().success());
    // A host the project does not have is named.
    let o = mln(&state)
        .args(["console", "-p", PROJECT, "nosuch"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no host nosuch"), "{err}");

    ok(mln(&state).args(["remove", "-p", PROJECT]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}
