//! Every place mln-lang's state store and local backends turn a project,
//! host, switch, tap, interface or template name into a path, an argument
//! or a console request refuses a hostile name itself (the checker's E0008
//! is not the only guard): nothing appears outside, or even inside, the
//! state folder and no process starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use testkit::processes_under;

use mln_core::template::Template;
use mln_core::Error;
use mln_lang::apply::{Backends, LocalBackends, Run, RunOptions};
use mln_lang::plan::{DesiredProject, Goal, HostInterface, HostSpec, SwitchSpec};
use mln_lang::state::{StateError, StateStore, SwitchRecord};

fn hostile() -> Vec<String> {
    let mut v: Vec<String> = ["../x", "/etc", "a/b", "a\0b", "-rf", "a;b", "$(x)", "a b"]
        .map(String::from)
        .to_vec();
    v.push("x".repeat(64));
    v
}

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

/// `root/` with a fake template image and the project `p`'s state folder
/// under `root/state/`, with its local backends.
struct Sandbox {
    root: tempfile::TempDir,
    store: StateStore,
    backends: LocalBackends,
    before: BTreeSet<PathBuf>,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let image = root.path().join("template.ext4");
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        let store = StateStore::open(root.path().join("state"), "p").unwrap();
        let template = Template::image(image, "root=/dev/ubda rw");
        let backends = LocalBackends::new(store.dir())
            .unwrap()
            .with_default_template(template.clone())
            .with_template("busybox", template);
        let before = tree(root.path());
        Sandbox {
            root,
            store,
            backends,
            before,
        }
    }

    fn assert_untouched(&self, what: &str) {
        assert_eq!(
            tree(self.root.path()),
            self.before,
            "{what}: something was made or removed"
        );
        assert!(
            processes_under(self.root.path()).is_empty(),
            "{what}: a process was started"
        );
    }
}

fn assert_refused<T: std::fmt::Debug>(r: mln_core::Result<T>, bad: &str, what: &str) {
    match r {
        Err(Error::InvalidName { ref name, .. }) if name == bad => {
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{what}: {msg}");
        }
        other => panic!("{what}: {bad:?} not refused as a name: {other:?}"),
    }
}

#[test]
fn project_names_never_become_state_folders() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let before = tree(root.path());
    for bad in hostile() {
        match StateStore::open(&state, &bad) {
            Err(e @ StateError::Name(Error::InvalidName { .. })) => {
                assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
            }
            other => panic!("project {bad:?} not refused: {other:?}"),
        }
        assert_eq!(tree(root.path()), before, "project {bad:?}: something made");
    }
}

#[test]
fn host_names_never_become_disk_or_config_paths() {
    let sb = Sandbox::new();
    // A file a `../x` host's disk would land on (or be removed from).
    let bait = sb.store.dir().join("x.cow");
    std::fs::write(&bait, "keep").unwrap();
    let sb = Sandbox {
        before: tree(sb.root.path()),
        ..sb
    };
    let desired = DesiredProject::new("p");
    for bad in hostile() {
        let host = HostSpec::new(&bad);
        assert_refused(sb.backends.prepare_disk("p", &host), &bad, "disk overlay");
        assert_refused(
            sb.backends.write_guest_config(&desired, &host),
            &bad,
            "guest config disk",
        );
        assert_refused(sb.backends.remove_disk("p", &host), &bad, "remove disk");
        assert_refused(
            sb.backends.domain_spec("p", &host, &BTreeMap::new()),
            &bad,
            "domain spec",
        );
        sb.assert_untouched(&format!("host {bad:?}"));
    }
    assert_eq!(std::fs::read_to_string(&bait).unwrap(), "keep");
}

#[test]
fn switch_and_tap_names_never_become_sockets_or_interfaces() {
    let sb = Sandbox::new();
    for bad in hostile() {
        assert_refused(
            sb.backends.create_switch("p", &SwitchSpec::new(&bad)),
            &bad,
            "switch",
        );
        assert_refused(
            sb.backends.remove_switch("p", &SwitchSpec::new(&bad)),
            &bad,
            "remove switch",
        );
        sb.assert_untouched(&format!("switch {bad:?}"));
    }
    let mut taps = hostile();
    taps.push("x".repeat(16));
    for bad in taps {
        let mut spec = SwitchSpec::new("lan");
        spec.tap = Some(bad.clone());
        assert_refused(sb.backends.create_switch("p", &spec), &bad, "tap");
        sb.assert_untouched(&format!("tap {bad:?}"));
    }
}

#[test]
fn template_names_are_only_looked_up() {
    let sb = Sandbox::new();
    for bad in hostile() {
        let mut host = HostSpec::new("web");
        host.template = Some(bad.clone());
        let msg = match sb.backends.prepare_disk("p", &host) {
            Err(e @ Error::Backend { .. }) => e.to_string(),
            other => panic!("template {bad:?}: {other:?}"),
        };
        assert!(
            msg.starts_with("web: ") && msg.contains(&format!("no template called {bad} ")),
            "{msg}"
        );
        sb.assert_untouched(&format!("template {bad:?}"));
    }
}

#[test]
fn interface_names_never_reach_the_management_console() {
    let sb = Sandbox::new();
    let mut host = HostSpec::new("web");
    let switch = SwitchRecord {
        spec: SwitchSpec::new("lan"),
        socket: Some(sb.store.dir().join("switches/lan/ctl")),
        bridge: None,
        pid: None,
    };
    for bad in ["eth0 x", "eth0=vde,/tmp/s", "../eth0", "eth", "-rf"] {
        host.interfaces = vec![HostInterface {
            name: bad.into(),
            switch: Some("lan".into()),
            bridge: None,
            mac: mln_lang::plan::derived_mac("p", "web", bad),
            address: None,
            netmask: None,
            gateway: None,
        }];
        assert_refused(sb.backends.replug("p", &host, bad, &switch), bad, "replug");
    }
    sb.assert_untouched("replug");
}

#[test]
fn a_whole_run_with_hostile_names_fails_cleanly() {
    for bad in hostile() {
        let sb = Sandbox::new();
        let mut desired = DesiredProject::new("p");
        desired.add_switch(SwitchSpec::new(&bad));
        let mut host = HostSpec::new(&bad);
        host.interfaces.push(HostInterface {
            name: "eth0".into(),
            switch: Some(bad.clone()),
            bridge: None,
            mac: mln_lang::plan::derived_mac("p", &bad, "eth0"),
            address: None,
            netmask: None,
            gateway: None,
        });
        desired.add_host(host);
        let out = Run::new(sb.store.clone(), &sb.backends, RunOptions::new(Goal::Up))
            .desired(&desired, None)
            .run();
        let report = match out {
            Ok(out) => out.report.expect("not a dry run"),
            Err(e) => {
                // Refused before planning is as good.
                assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
                continue;
            }
        };
        assert!(!report.is_success(), "{bad:?}: the run succeeded");
        for f in &report.failed {
            assert!(
                f.error.contains(&format!("invalid name {bad:?}")),
                "{bad:?}: failed for another reason: {}",
                f.error
            );
        }
        // Only the project's state and lock files may have appeared.
        let new: Vec<PathBuf> = tree(sb.root.path())
            .difference(&sb.before)
            .filter(|p| *p != &sb.store.dir().join("state.json"))
            .filter(|p| *p != &sb.store.dir().join("lock"))
            .cloned()
            .collect();
        assert!(new.is_empty(), "{bad:?}: made {new:?}");
        assert!(processes_under(sb.root.path()).is_empty());
    }
}
