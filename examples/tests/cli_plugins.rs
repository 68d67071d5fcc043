//! Plugins (`docs/plugins.md`) through `mln`: the worked example
//! `examples/plugins/motd` and the built-in `hostsFile` on real UML guests,
//! and plugins that fail stopping `check`, `build` and `remove` with
//! their message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Every `mln` here may take this long (a boot is a few seconds).
const LIMIT: Duration = Duration::from_secs(240);

/// The worked example's folder.
fn example_plugins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins")
}

/// `mln ARGS` with `home` as `$HOME` (so no user's own plugins or
/// settings count), the state and templates under it, bounded.
fn mln(home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mln"));
    cmd.args(args)
        .env("HOME", home)
        .env("MLN_STATE_DIR", home.join("state"))
        .env("MLN_TEMPLATE_DIR", home.join("templates"))
        .env("MOTD_KEEP_DIR", home)
        .env("NO_COLOR", "1")
        .env_remove("MLN_PLUGINS_DIR")
        .env_remove("MLN_KERNELS_DIR");
    testkit::run_within(&mut cmd, LIMIT)
}

#[track_caller]
fn ok(o: &Output) -> String {
    let text = testkit::output_text(o);
    assert!(o.status.success(), "{text}");
    text
}

#[track_caller]
fn refused(o: &Output, says: &str) {
    let text = testkit::output_text(o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains(says), "{says:?} not in: {text}");
}

fn write_plugin(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A router `gw` between `wan` and `lan`, and `pc` on `lan`: over `lan`,
/// `pc` reaches `gw` at 10.0.0.1, not at its first address.
const LAB: &str = "global {
  project plugs
  plugins { hostsFile }
}
switch wan { }
switch lan { }
host gw {
  memory 64M
  network eth0 { switch wan; address 192.168.50.1; netmask 255.255.255.0 }
  network eth1 { switch lan; address 10.0.0.1; netmask 255.255.255.0 }
}
host pc {
  memory 64M
  network eth0 { switch lan; address 10.0.0.2; netmask 255.255.255.0 }
}
";

#[test]
fn failing_plugins_stop_check_and_build_with_their_message() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let project = home.join("plugs.mln");
    std::fs::write(&project, LAB).unwrap();
    let file = project.to_str().unwrap();
    let plugins = home.join("plugins");
    write_plugin(
        &plugins,
        "puppet",
        r#"case "$1" in
resolved) echo '{"diagnostics":[{"severity":"warning","message":"no puppet master named"}]}' ;;
guest_config) echo "cannot reach the puppet master for $MLN_HOST" >&2; exit 2 ;;
esac"#,
    );
    let dir_arg = plugins.to_str().unwrap();
    // A warning: check passes and shows it.
    let text = ok(&mln(home, &["check", file, "--plugins-dir", dir_arg]));
    assert!(
        text.contains("warning[W0008]: plugin puppet at resolved: no puppet master named"),
        "{text}"
    );
    // Failing while writing a guest's configuration: nothing is made.
    refused(
        &mln(home, &["build", "-s", file, "--plugins-dir", dir_arg]),
        "error: plugin puppet at guest_config for host gw failed (exit status: 2): \
         cannot reach the puppet master for gw",
    );
    // The same through the user's folder, found with no flag.
    std::fs::create_dir_all(home.join(".mln.d")).unwrap();
    std::fs::rename(&plugins, home.join(".mln.d/plugins")).unwrap();
    refused(
        &mln(home, &["build", "-s", file]),
        "plugin puppet at guest_config",
    );
    ok(&mln(home, &["build", "-s", file, "--no-plugins"]));
    // An error diagnostic fails check (E0025).
    write_plugin(
        &home.join(".mln.d/plugins"),
        "puppet",
        r#"echo '{"diagnostics":[{"severity":"error","message":"host gw has no puppet class"}]}'"#,
    );
    refused(
        &mln(home, &["check", file]),
        "error[E0025]: plugin puppet at resolved: host gw has no puppet class",
    );
}

fn uml_available(test: &str) -> bool {
    let kernel = testkit::uml_kernel();
    let kernel = kernel.to_str().unwrap_or("/usr/bin/linux.uml");
    match testkit::missing_tool(&[kernel, "/usr/bin/vde_switch", "/bin/busybox"]) {
        Some(why) => {
            testkit::skip(test, &why);
            false
        }
        None => true,
    }
}

/// `mln exec -p plugs HOST -- COMMAND...`: its stdout.
fn in_guest(home: &Path, host: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", "-p", "plugs", host, "--"];
    args.extend_from_slice(command);
    let o = mln(home, &args);
    ok(&o);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Up the lab with the worked example: each guest has its `/etc/motd` and
/// ran its startup line, and with `hostsFile` on, `pc` knows `gw` by its
/// LAN address. The example then refuses `remove` (its keep file exists):
/// nothing is removed; without the keep file it goes.
#[test]
fn the_motd_example_and_hostsfile_reach_real_guests_and_a_plugin_can_refuse_remove() {
    if !uml_available("plugins_on_uml") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let home = dir.path();
    let project = home.join("plugs.mln");
    std::fs::write(&project, LAB).unwrap();
    let examples = example_plugins();
    let with_example = |verb: &str, target: &[&str]| {
        let mut args = vec![verb];
        args.extend_from_slice(target);
        args.extend(["--plugins-dir", examples.to_str().unwrap()]);
        mln(home, &args)
    };
    ok(&with_example("up", &[project.to_str().unwrap()]));
    for host in ["gw", "pc"] {
        assert_eq!(
            in_guest(home, host, &["cat", "/etc/motd"]),
            format!("Welcome to {host}, a guest of project plugs.\n")
        );
        assert_eq!(
            in_guest(home, host, &["cat", "/root/motd-startup"]),
            format!("motd plugin: startup ran on {host}\n")
        );
    }
    let hosts = in_guest(home, "pc", &["cat", "/etc/hosts"]);
    assert!(hosts.contains("10.0.0.1\tgw\n"), "{hosts}");
    assert!(!hosts.contains("192.168.50.1"), "{hosts}");
    let hosts = in_guest(home, "gw", &["cat", "/etc/hosts"]);
    assert!(hosts.contains("10.0.0.2\tpc\n"), "{hosts}");

    std::fs::write(home.join("keep-plugs"), "").unwrap();
    refused(
        &with_example("remove", &["-p", "plugs"]),
        &format!(
            "plugin motd at removing failed (exit status: 1): {} exists: not removing plugs",
            home.join("keep-plugs").display()
        ),
    );
    // Still there, still running.
    assert_eq!(in_guest(home, "pc", &["hostname"]), "pc\n");
    std::fs::remove_file(home.join("keep-plugs")).unwrap();
    ok(&with_example("remove", &["-p", "plugs"]));
    assert!(!home.join("state/plugs").exists());
}
