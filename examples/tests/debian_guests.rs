//! Debian guests the way a user makes and runs them, on real UML guests
//! and vde switches: `mln template build debian` (once per test run, kept
//! under the target folder and reused while its inputs stay the same), a
//! router lab of Debian guests, a host whose root disk is larger than the
//! template with swap and a mounted image, and an image this project never
//! built, imported with `mln template import` and booted.
//!
//! The guests are checked through their consoles: their startup lines
//! print what a user would look at.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MLN: &str = env!("CARGO_BIN_EXE_mln");

/// `mln ARGS --state-dir STATE [--template-dir T]`, killed after `limit`
/// (`testkit::run_within`).
/// `mln ARGS --state-dir STATE [--template-dir DIR]`, the options before
/// a `--` and the command after it.
fn mln_within(args: &[&str], state: &Path, templates: Option<&Path>, limit: Duration) -> Output {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let (args, command) = args.split_at(split);
    let mut cmd = Command::new(MLN);
    cmd.args(args)
        .arg("--state-dir")
        .arg(state)
        .env("NO_COLOR", "1");
    if let Some(t) = templates {
        cmd.arg("--template-dir").arg(t);
    }
    cmd.args(command);
    testkit::run_within(&mut cmd, limit)
}

fn mln(args: &[&str], state: &Path, templates: Option<&Path>) -> Output {
    mln_within(args, state, templates, Duration::from_secs(300))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What this machine lacks to run the tests here, if anything.
fn missing() -> Option<String> {
    let kernel = testkit::uml_kernel();
    testkit::missing_tool(&[
        kernel.to_str().unwrap_or("/usr/bin/linux.uml"),
        "/usr/bin/vde_switch",
        "/usr/bin/mmdebstrap",
        "/usr/sbin/debugfs",
        "/usr/sbin/mkfs.ext4",
        "/usr/sbin/mkswap",
    ])
}

/// The folder of the Debian template shared by this run's tests (and the
/// next runs': an unchanged template is not built again).
fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates")
}

/// `mln template build debian` into [`templates_dir`], once per process;
/// tests in other processes wait on the builder's lock and reuse its image.
fn debian_template() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = templates_dir();
        let scratch = tempfile::tempdir().unwrap();
        let out = mln_within(
            &[
                "template",
                "build",
                "debian",
                "--out",
                dir.to_str().unwrap(),
                "--format",
                "json",
            ],
            scratch.path(),
            None,
            Duration::from_secs(1800),
        );
        let built: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
        assert_eq!(built["name"], "debian-12.ext4", "{built}");
        assert_eq!(built["boot_marker"], mln_core::template::BOOT_FINISHED);
        eprintln!(
            "Debian template {} ({} MiB, {}, {:.0} s)",
            built["image"],
            built["size"].as_u64().unwrap_or(0) >> 20,
            if built["reused"] == true {
                "reused".to_string()
            } else {
                format!(
                    "built, mmdebstrap mode {}",
                    built["mode"].as_str().unwrap_or("?")
                )
            },
            built["seconds"].as_f64().unwrap_or(0.0)
        );
        dir
    })
}

/// Removes the project, then kills whatever still runs under the test's
/// folder, on every way out of a test.
struct Cleanup {
    state: PathBuf,
    project: &'static str,
    _kill: testkit::KillUnder,
}

impl Cleanup {
    fn new(dir: &Path, project: &'static str) -> Self {
        Cleanup {
            state: dir.join("state"),
            project,
            _kill: testkit::KillUnder(dir.to_path_buf()),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.state.join(self.project).exists() {
            let _ = mln_within(
                &["remove", "-p", self.project],
                &self.state,
                None,
                Duration::from_secs(120),
            );
        }
    }
}

/// The console of `host`, what its startup lines printed with systemd's
/// `boot[PID]: ` taken off.
fn console(state: &Path, project: &str, host: &str) -> String {
    let log = ok(&mln(&["log", "-p", project, host], state, None));
    log.lines()
        .map(|l| match l.split_once("]: ") {
            Some((head, rest)) if head.starts_with("boot[") => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const LAB: &str = r#"global { project deblab }
superclass debian {
    template debian-12
    memory 160M
}
switch left { }
switch right { }
host router {
    superclass debian
    network eth0 { switch left; address 192.168.1.1; netmask 255.255.255.0 }
    network eth1 { switch right; address 192.168.2.1; netmask 255.255.255.0 }
    startup {
        echo 1 > /proc/sys/net/ipv4/ip_forward
    }
}
host alice {
    superclass debian
    network eth0 { switch left; address 192.168.1.10; netmask 255.255.255.0; gateway 192.168.1.1 }
    users { student $6$mlnsalt$n5IgoQ/ptpISVdj7/ZUybyrK/eBCuAGhX/8rlJ32uum8FPwYKBV8Ii9iVMtykbZsIosxF53FD6zvtEDWKFFrR/ }
    files { @KEYFILE@ /root/.ssh/id_ed25519 0600 }
}
host bob {
    superclass debian
    network eth0 { switch right; address 192.168.2.10; netmask 255.255.255.0; gateway 192.168.2.1 }
    sshkey { root @KEY@ }
}
"#;

/// What `mln exec -p PROJECT HOST -- sh -c SCRIPT` printed, asserting
/// that the script succeeded.
fn exec(state: &Path, project: &str, host: &str, script: &str) -> String {
    let out = testkit::run_within(
        Command::new(MLN)
            .args([
                "exec",
                "-p",
                project,
                host,
                "--timeout",
                "60",
                "--state-dir",
            ])
            .arg(state)
            .args(["--", "sh", "-c", script]),
        Duration::from_secs(90),
    );
    ok(&out)
}

/// The router lab on `backend` (UML without one): up, then checked from
/// inside the guests with `mln exec` (no console grepping), a login prompt
/// on `mln console`, and down.
fn router_lab(backend: Option<&str>) {
    let templates = debian_template();
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup::new(dir.path(), "deblab");
    let state = dir.path().join("state");
    // alice gets a private key (`files`), bob the public one (`sshkey`).
    let key = dir.path().join("alice-key");
    testkit::run_ok(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "alice@deblab",
        "-f",
        key.to_str().unwrap(),
    ]);
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let lab = LAB
        .replace("@KEYFILE@", key.to_str().unwrap())
        .replace("@KEY@", public.trim());
    let file = dir.path().join("deblab.mln");
    std::fs::write(&file, lab).unwrap();
    let mut args = vec!["up", file.to_str().unwrap()];
    // Where a newer UML kernel was fetched (CI does), the lab runs on it:
    // its vector driver names interfaces vecN, which the template's udev
    // rule renames to MLN's ethN.
    let fetched = std::env::var("MLN_UML_FETCHED_KERNEL").ok();
    match (backend, &fetched) {
        (Some(b), _) => args.extend(["--backend", b]),
        (None, Some(k)) => args.extend(["--uml-kernel", k.as_str()]),
        (None, None) => {}
    }
    let started = Instant::now();
    ok(&mln(&args, &state, Some(templates)));
    eprintln!(
        "deblab ({}) up in {:.0} s",
        backend.unwrap_or("uml"),
        started.elapsed().as_secs_f64()
    );

    let ping = exec(&state, "deblab", "alice", "ping -c 2 -W 2 192.168.2.10");
    assert!(ping.contains("2 received"), "{ping}");
    let ssh = exec(
        &state,
        "deblab",
        "alice",
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=10 \
         root@192.168.2.10 'echo \"logged into $(hostname) as $(id -un)\"'",
    );
    assert_eq!(ssh.trim(), "logged into bob as root", "{ssh}");
    // From this machine: `mln ssh` through a tap of its own on bob's
    // switch, with the key bob takes.
    let here = mln(
        &[
            "ssh",
            "deblab/bob",
            "-i",
            key.to_str().unwrap(),
            "--",
            "echo",
            "in",
            "$(hostname)",
        ],
        &state,
        None,
    );
    assert_eq!(ok(&here).trim(), "in bob", "{}", text(&here));
    // From outside the server: a port of this machine forwarded to bob's
    // sshd (`mln forward`), reached with plain ssh.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut forward = Command::new(MLN)
        .args(["forward", "deblab/bob", "--listen", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--state-dir")
        .arg(&state)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let outside = testkit::run_within(
        Command::new("ssh")
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectionAttempts=10",
                "-p",
                &port.to_string(),
                "-i",
            ])
            .arg(&key)
            .args(["root@127.0.0.1", "hostname"]),
        Duration::from_secs(60),
    );
    let _ = forward.kill();
    let _ = forward.wait();
    assert_eq!(ok(&outside).trim(), "bob", "{}", text(&outside));
    // No root_passwd: root's password stays locked.
    let alice = exec(
        &state,
        "deblab",
        "alice",
        "grep '^root:' /etc/shadow | cut -d: -f2; id student; hostname",
    );
    assert_eq!(
        alice.lines().collect::<Vec<_>>(),
        [
            "*",
            "uid=1000(student) gid=1000(student) groups=1000(student)",
            "alice"
        ],
        "{alice}"
    );
    let bob = exec(
        &state,
        "deblab",
        "bob",
        "systemctl is-active ssh; ip -4 -o addr show eth0; \
         test -s /etc/ssh/ssh_host_ed25519_key.pub && echo host keys",
    );
    assert!(bob.starts_with("active\n"), "{bob}");
    assert!(bob.contains("inet 192.168.2.10/24"), "{bob}");
    assert!(bob.contains("host keys"), "{bob}");
    let router = exec(
        &state,
        "deblab",
        "router",
        "cat /proc/sys/net/ipv4/ip_forward",
    );
    assert_eq!(router.trim(), "1", "the router's startup line: {router}");
    assert!(
        console(&state, "deblab", "alice").contains(mln_core::template::BOOT_FINISHED),
        "no boot marker on alice's console"
    );
    // A login prompt where `mln console` attaches (agetty may start just
    // after the boot marker: Enter until it answers).
    let mut c = testkit::Dialog::spawn(
        Command::new(MLN)
            .args(["console", "-p", "deblab", "bob", "--state-dir"])
            .arg(&state),
    )
    .expect("run mln console");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.send(b"\n").unwrap();
        match c.expect("bob login:", Duration::from_secs(2)) {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => panic!("no login prompt on bob's console: {e}"),
            Err(_) => {}
        }
    }
    c.send(&[0x1d]).unwrap();
    assert!(c.wait(Duration::from_secs(10)).unwrap().success());

    let down = Instant::now();
    let out = mln(&["down", "-p", "deblab"], &state, None);
    ok(&out);
    eprintln!("deblab down in {:.0} s", down.elapsed().as_secs_f64());
    // Each guest halted itself (UML: Ctrl-Alt-Del, QEMU: the power
    // button), none had to be ended.
    assert!(!text(&out).contains("no clean shutdown"), "{}", text(&out));
}

#[test]
fn a_router_lab_of_debian_guests_routes_pings_and_runs_sshd() {
    if let Some(why) = missing() {
        return testkit::skip("debian lab", &why);
    }
    router_lab(None);
}

/// The same project, one option changed: its hosts run as QEMU guests
/// (KVM where it runs, TCG here) on the Debian kernel.
#[test]
fn the_same_debian_lab_runs_as_kvm_guests() {
    if let Some(why) = missing().or_else(|| testkit::missing_tool(&["/usr/bin/qemu-system-x86_64"]))
    {
        return testkit::skip("debian lab on kvm", &why);
    }
    router_lab(Some("kvm"));
}

const DISKS: &str = r#"global { project debdisks }
switch lan { }
host store {
    template debian-12
    memory 160M
    size 2G
    swap 256M
    mount {
        DATA /srv/data ext4 defaults
    }
    network eth0 { switch lan; address 10.0.0.1; netmask 255.255.255.0 }
    startup {
        df -k / | tail -1 | sed 's/^/root-fs: /'
        cat /proc/swaps
        ls /srv/data
    }
}
"#;

/// The size in KiB of the root file system the `df -k` line shows.
fn root_kib(console: &str) -> u64 {
    let line = console
        .lines()
        .rfind(|l| l.starts_with("root-fs: "))
        .unwrap_or_else(|| panic!("no df line: {console}"));
    line.split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {line:?}"))
}

#[test]
fn a_debian_host_gets_its_disk_size_swap_and_mounted_image_and_grows_with_a_restart() {
    if let Some(why) = missing() {
        return testkit::skip("debian disks", &why);
    }
    let templates = debian_template();
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup::new(dir.path(), "debdisks");
    let state = dir.path().join("state");
    let data = dir.path().join("data.img");
    testkit::run_ok(&["mkfs.ext4", "-q", "-F", data.to_str().unwrap(), "16M"]);
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "on the data disk\n").unwrap();
    testkit::run_ok(&[
        "debugfs",
        "-w",
        "-R",
        &format!("write {} marker-file", marker.display()),
        data.to_str().unwrap(),
    ]);
    let project = DISKS.replace("DATA", data.to_str().unwrap());
    let file = dir.path().join("disks.mln");
    std::fs::write(&file, &project).unwrap();
    ok(&mln(
        &["up", file.to_str().unwrap()],
        &state,
        Some(templates),
    ));

    let c = console(&state, "debdisks", "store");
    // About 2 GB: the template's file system is 1 GB.
    let kib = root_kib(&c);
    assert!((1_900_000..=2_097_152).contains(&kib), "{kib} KiB: {c}");
    let swap = c
        .lines()
        .find(|l| l.starts_with("/dev/ubdc"))
        .unwrap_or_else(|| panic!("no swap in /proc/swaps: {c}"));
    let swap_kib: u64 = swap.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!((250_000..=262_144).contains(&swap_kib), "{swap}");
    assert!(c.contains("marker-file"), "{c}");

    // Growing the disk is a restart; the guest keeps its disk and grows
    // its file system again.
    let bigger = dir.path().join("bigger.mln");
    std::fs::write(&bigger, project.replace("size 2G", "size 3G")).unwrap();
    let plan = ok(&mln(
        &["plan", bigger.to_str().unwrap()],
        &state,
        Some(templates),
    ));
    assert!(plan.contains("size: 2G → 3G (restart)"), "{plan}");
    ok(&mln(
        &["upgrade", "--yes", bigger.to_str().unwrap()],
        &state,
        Some(templates),
    ));
    let c = console(&state, "debdisks", "store");
    let kib = root_kib(&c);
    assert!((2_900_000..=3_145_728).contains(&kib), "{kib} KiB: {c}");

    // Shrinking it is a rebuild, and the plan says what that costs.
    let smaller = dir.path().join("smaller.mln");
    std::fs::write(&smaller, project.replace("size 2G", "size 1536M")).unwrap();
    let plan = ok(&mln(
        &["plan", smaller.to_str().unwrap()],
        &state,
        Some(templates),
    ));
    assert!(plan.contains("(rebuild)"), "{plan}");
    assert!(
        plan.contains("what the guest wrote on it is lost"),
        "{plan}"
    );
}

/// A Debian root made the plain way, without MLN: mmdebstrap into a tar
/// (reusing the template's package cache), `mkfs.ext4 -d` of it. Kept
/// under the target folder for the next runs.
fn plain_debian_image() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plain-debian");
    let image = dir.join("plain-debian.ext4");
    if image.exists() {
        return image;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let tar = dir.join("root.tar");
    let cache = debian_template().join(".debian-packages");
    let hooks = tempfile::tempdir().unwrap();
    let setup = hooks.path().join("setup00-cache");
    std::fs::write(
        &setup,
        "#!/bin/sh\nmkdir -p \"$1/var/cache/apt/archives\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&setup, std::fs::Permissions::from_mode(0o755)).unwrap();
    testkit::run_ok(&[
        "mmdebstrap",
        "--variant=minbase",
        "--include=openssh-server,iproute2,iputils-ping,systemd-sysv,udev",
        "--skip=essential/unlink",
        &format!("--hook-directory={}", hooks.path().display()),
        &format!(
            "--setup-hook=sync-in {} /var/cache/apt/archives/",
            cache.display()
        ),
        "bookworm",
        tar.to_str().unwrap(),
    ]);
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    testkit::run_ok(&[
        "tar",
        "--numeric-owner",
        "-xpf",
        tar.to_str().unwrap(),
        "-C",
        root.to_str().unwrap(),
    ]);
    let part = dir.join("plain-debian.ext4.part");
    testkit::run_ok(&[
        "mkfs.ext4",
        "-q",
        "-F",
        "-d",
        root.to_str().unwrap(),
        part.to_str().unwrap(),
        "1G",
    ]);
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_file(&tar).unwrap();
    std::fs::rename(&part, &image).unwrap();
    image
}

/// A bare busybox root made the plain way, without MLN: busybox and its
/// applet links, an inittab of its own, `/dev/console`; `mkfs.ext4 -d`.
fn plain_busybox_image(dir: &Path) -> PathBuf {
    let root = dir.join("busybox-root");
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let list = testkit::run_ok(&["/bin/busybox", "--list-full"]);
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = root.join(applet.trim());
        if !applet.trim().is_empty() && !link.exists() && !link.is_symlink() {
            std::os::unix::fs::symlink("/bin/busybox", &link).unwrap();
        }
    }
    for (path, text) in [
        (
            "etc/inittab",
            "::sysinit:/bin/mount -o remount,rw /\n::shutdown:/bin/umount -a -r\n",
        ),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/shadow", "root:*:19000:0:99999:7:::\n"),
        ("etc/group", "root:x:0:\n"),
    ] {
        std::fs::write(root.join(path), text).unwrap();
    }
    testkit::run_ok(&[
        "mknod",
        root.join("dev/console").to_str().unwrap(),
        "c",
        "5",
        "1",
    ]);
    let image = dir.join("plain-busybox.ext4");
    testkit::run_ok(&[
        "mkfs.ext4",
        "-q",
        "-F",
        "-d",
        root.to_str().unwrap(),
        image.to_str().unwrap(),
        "64M",
    ]);
    image
}

const FOREIGN: &str = r#"global { project foreign }
switch lan { }
host tiny {
    template tiny.ext4
    memory 64M
    network eth0 { switch lan; address 10.0.5.6; netmask 255.255.255.0 }
    users { visitor $6$mlnsalt$n5IgoQ/ptpISVdj7/ZUybyrK/eBCuAGhX/8rlJ32uum8FPwYKBV8Ii9iVMtykbZsIosxF53FD6zvtEDWKFFrR/ }
    startup {
        ip -4 -o addr show eth0
        id visitor
    }
}
host guest {
    template plain.ext4
    memory 160M
    network eth0 { switch lan; address 10.0.5.5; netmask 255.255.255.0 }
    users { visitor $6$mlnsalt$n5IgoQ/ptpISVdj7/ZUybyrK/eBCuAGhX/8rlJ32uum8FPwYKBV8Ii9iVMtykbZsIosxF53FD6zvtEDWKFFrR/ }
    startup {
        ip -4 -o addr show eth0
        id visitor
        hostname
    }
}
"#;

#[test]
fn an_image_mln_never_built_is_imported_listed_and_boots_with_its_address_and_user() {
    if let Some(why) = missing() {
        return testkit::skip("template import", &why);
    }
    if !rustix::process::geteuid().is_root() {
        // Unpacking a root with its owners and device nodes needs root
        // (MLN itself uses fakeroot there; this stand-in for a distro's
        // image does not).
        return testkit::skip("template import", "making the plain image needs root");
    }
    let plain = plain_debian_image();
    let before = mln_core::disk::transfer::describe(&plain).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup::new(dir.path(), "foreign");
    let state = dir.path().join("state");
    let templates = dir.path().join("templates");

    let out = ok(&mln(
        &["template", "import", plain.to_str().unwrap(), "plain.ext4"],
        &state,
        Some(&templates),
    ));
    assert!(out.contains("systemd"), "{out}");
    // The original is as it was.
    assert_eq!(mln_core::disk::transfer::describe(&plain).unwrap(), before);
    // Importing over an existing template is refused.
    let again = mln(
        &["template", "import", plain.to_str().unwrap(), "plain.ext4"],
        &state,
        Some(&templates),
    );
    assert!(!again.status.success());

    let tiny = plain_busybox_image(dir.path());
    let out = ok(&mln(
        &["template", "import", tiny.to_str().unwrap(), "tiny.ext4"],
        &state,
        Some(&templates),
    ));
    assert!(out.contains("busybox"), "{out}");

    let list = ok(&mln(
        &["template", "list", "--format", "json"],
        &state,
        Some(&templates),
    ));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "plain.ext4")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(entry["size"], 1u64 << 30);
    assert_eq!(entry["sha256"].as_str().unwrap().len(), 64);
    assert_ne!(entry["sha256"], before.sha256.as_str());
    assert_eq!(entry["boot_marker"], mln_core::template::BOOT_FINISHED);
    let table = ok(&mln(&["template", "list"], &state, Some(&templates)));
    assert!(table.contains(entry["sha256"].as_str().unwrap()), "{table}");

    let file = dir.path().join("foreign.mln");
    std::fs::write(&file, FOREIGN).unwrap();
    ok(&mln(
        &["up", file.to_str().unwrap()],
        &state,
        Some(&templates),
    ));
    let c = console(&state, "foreign", "guest");
    assert!(c.contains("inet 10.0.5.5/24"), "{c}");
    assert!(c.contains("uid=1000(visitor)"), "{c}");
    assert!(c.contains("\nguest\n"), "{c}");
    // The busybox one too, through its inittab.
    let tiny = console(&state, "foreign", "tiny");
    assert!(tiny.contains("inet 10.0.5.6/24"), "{tiny}");
    assert!(tiny.contains("uid=1000(visitor)"), "{tiny}");
    // `mln exec` reaches both through the agent the import installed (a
    // systemd unit in one, started by the inittab line in the other).
    for (host, address) in [("guest", "10.0.5.5/24"), ("tiny", "10.0.5.6/24")] {
        let out = exec(&state, "foreign", host, "hostname; ip -4 -o addr show eth0");
        assert!(out.starts_with(&format!("{host}\n")), "{out}");
        assert!(out.contains(address), "{out}");
    }
    ok(&mln(&["down", "-p", "foreign"], &state, None));
}
