//! Every place mln-core turns a name into a path, a process argument, a
//! socket or an interface name refuses a hostile name itself, whatever the
//! checker upstream let through: nothing is made outside (or inside) the
//! state folder and no process starts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use testkit::processes_under;

use mln_core::guest::{GuestConfig, GuestFile, GuestGroup, GuestUser};
use mln_core::net::{SwitchConfig, VdeSwitch};
use mln_core::uml::Uml;
use mln_core::{Boot, DomainSpec, Error, Hypervisor};

/// `../`, `/`, NUL, a leading `-`, shell metacharacters, a space and a
/// name one longer than the limit.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> = ["../x", "/etc", "a/b", "a\0b", "-rf", "a;b", "$(x)", "a b"]
        .map(String::from)
        .to_vec();
    v.push("x".repeat(64));
    v
}

/// As [`hostile`], plus a 16-character name (one more than Linux allows
/// for an interface).
fn hostile_interfaces() -> Vec<String> {
    let mut v = hostile();
    v.push("x".repeat(16));
    v
}

/// Every path under `dir`, recursively.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
            out.insert(e.path());
        }
    }
    out
}

/// A temporary folder `root` holding the state folder `root/state`; the
/// assertions check `root` (the state folder's parent) as a whole.
struct Sandbox {
    root: tempfile::TempDir,
    before: BTreeSet<PathBuf>,
    etc: BTreeSet<PathBuf>,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("state")).unwrap();
        let before = tree(root.path());
        Sandbox {
            root,
            before,
            etc: top_level("/etc"),
        }
    }

    fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// Nothing new anywhere under the parent folder, nothing new in `/etc`,
    /// no process started.
    fn assert_untouched(&self, what: &str) {
        assert_eq!(
            tree(self.root.path()),
            self.before,
            "{what}: something was made"
        );
        assert_eq!(top_level("/etc"), self.etc, "{what}: /etc changed");
        assert!(
            processes_under(self.root.path()).is_empty(),
            "{what}: a process was started"
        );
    }
}

fn top_level(dir: &str) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// `r` failed with [`Error::InvalidName`] naming `bad`.
fn assert_refused<T: std::fmt::Debug>(r: mln_core::Result<T>, bad: &str, what: &str) {
    match r {
        Err(Error::InvalidName { ref name, .. }) if name == bad => {
            let msg = r.unwrap_err().to_string();
            assert!(
                msg.contains(&format!("{bad:?}")),
                "{what}: message does not name {bad:?}: {msg}"
            );
        }
        other => panic!("{what}: {bad:?} not refused as a name: {other:?}"),
    }
}

#[test]
fn uml_domain_names_never_become_paths_or_arguments() {
    let sb = Sandbox::new();
    let uml = Uml::new(sb.state()).unwrap();
    for bad in hostile() {
        let spec = DomainSpec::new(&bad, 64 << 20, Boot::kernel(Uml::default_kernel()));
        // umid folder, uml_dir= argument, pid and console files.
        assert_refused(uml.create(&spec), &bad, "create");
        assert_refused(uml.command_line(&spec), &bad, "command line");
        assert_refused(uml.start(&bad), &bad, "start");
        assert_refused(uml.console_log(&bad), &bad, "console log");
        assert_refused(uml.mconsole(&bad).map(drop), &bad, "mconsole");
        assert_refused(uml.destroy(&bad), &bad, "destroy");
        assert_refused(
            uml.shutdown(&bad, std::time::Duration::from_secs(1)),
            &bad,
            "shutdown",
        );
        assert_refused(uml.info(&bad), &bad, "info");
        sb.assert_untouched(&format!("uml domain {bad:?}"));
    }
    assert!(uml.list().unwrap().is_empty());
}

#[test]
fn switch_names_never_become_socket_folders() {
    let sb = Sandbox::new();
    for bad in hostile() {
        assert_refused(
            VdeSwitch::start(&SwitchConfig::new(&bad), sb.state()),
            &bad,
            "vde switch start",
        );
        assert_refused(VdeSwitch::open(&bad, sb.state()), &bad, "vde switch open");
        sb.assert_untouched(&format!("switch {bad:?}"));
    }
}

#[test]
fn tap_names_are_refused_before_anything_is_made() {
    let sb = Sandbox::new();
    for bad in hostile_interfaces() {
        let mut spec = SwitchConfig::new("lan");
        spec.tap = Some(bad.clone());
        assert_refused(VdeSwitch::start(&spec, sb.state()), &bad, "tap");
        sb.assert_untouched(&format!("tap {bad:?}"));
    }
    // 15 characters is a valid interface name.
    assert!(mln_core::SafeName::interface(&"x".repeat(15)).is_ok());
}

#[cfg(feature = "xen")]
#[test]
fn xen_domain_and_bridge_names_are_refused_before_libxl_sees_them() {
    use mln_core::{Attachment, InterfaceSpec, MacAddr};
    for bad in hostile() {
        let spec = DomainSpec::new(&bad, 64 << 20, Boot::kernel("/boot/vmlinuz"));
        assert_refused(
            mln_core::xen::domain_config(&spec).map(drop),
            &bad,
            "xen name",
        );
    }
    for bad in hostile_interfaces() {
        let mut spec = DomainSpec::new("web", 64 << 20, Boot::kernel("/boot/vmlinuz"));
        spec.interfaces.push(InterfaceSpec {
            name: "eth0".into(),
            mac: MacAddr::derived("web/eth0"),
            attach: Attachment::Bridge(bad.clone()),
        });
        assert_refused(
            mln_core::xen::domain_config(&spec).map(drop),
            &bad,
            "xen bridge",
        );
    }
}

fn guest_error(cfg: &GuestConfig, path: &Path) -> String {
    match cfg.write_disk(path) {
        Err(e @ (Error::InvalidGuestConfig { .. } | Error::InvalidName { .. })) => e.to_string(),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn guest_host_user_and_group_names_are_refused_before_the_disk_is_written() {
    let sb = Sandbox::new();
    let disk = sb.state().join("a.config");
    for bad in hostile() {
        assert_refused(
            GuestConfig::new(&bad).write_disk(&disk),
            &bad,
            "guest hostname",
        );

        let mut cfg = GuestConfig::new("alice");
        cfg.users.push(GuestUser {
            name: bad.clone(),
            password_hash: "*".into(),
            home: None,
            uid: None,
        });
        let msg = guest_error(&cfg, &disk);
        assert!(
            msg.contains("guest alice") && msg.contains(&format!("user {bad}")),
            "{msg}"
        );

        let mut cfg = GuestConfig::new("alice");
        cfg.groups.push(GuestGroup {
            name: "staff".into(),
            members: vec![bad.clone()],
        });
        let msg = guest_error(&cfg, &disk);
        assert!(msg.contains("group staff"), "{msg}");
        sb.assert_untouched(&format!("guest name {bad:?}"));
    }
}

#[test]
fn guest_file_destinations_stay_inside_the_guest() {
    let sb = Sandbox::new();
    let src = sb.root.path().join("motd");
    std::fs::write(&src, "hello\n").unwrap();
    let disk = sb.state().join("a.config");

    // Not absolute, or more than one line: refused, nothing written.
    for bad in ["etc/motd", "../etc/motd", "-rf", "/etc/motd\n/x", "/a\0b"] {
        let mut cfg = GuestConfig::new("alice");
        cfg.files.push(GuestFile {
            source: src.clone(),
            dest: bad.into(),
            mode: None,
        });
        let msg = guest_error(&cfg, &disk);
        assert!(msg.contains("guest alice") && msg.contains("file"), "{msg}");
        assert!(!disk.exists(), "{bad:?}: the disk was written");
    }

    // An absolute destination with `..` or shell syntax in it: the
    // archive names its content `files/N` (never the destination), and the
    // guest's script gets the destination as one quoted word, which the
    // guest resolves inside its own root (`/..` is `/`).
    let mut cfg = GuestConfig::new("alice");
    for dest in ["/../../etc/motd", "/tmp/$(reboot)", "/tmp/a b;c"] {
        cfg.files.push(GuestFile {
            source: src.clone(),
            dest: dest.into(),
            mode: None,
        });
    }
    cfg.write_disk(&disk).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&disk)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for name in names.lines() {
        assert!(
            !name.contains("..") && !name.starts_with('/') && !name.contains("etc"),
            "{name}"
        );
    }
    let script = cfg.apply_script().unwrap();
    assert!(script.contains("mln_file /run/mln/files/0 '/../../etc/motd' 644"));
    assert!(script.contains("mln_file /run/mln/files/1 '/tmp/$(reboot)' 644"));
    assert!(script.contains("mln_file /run/mln/files/2 '/tmp/a b;c' 644"));
    // Only the disk itself was made.
    let mut expected = sb.before.clone();
    expected.insert(src);
    expected.insert(disk);
    assert_eq!(tree(sb.root.path()), expected);
}
