//! The executor against the real thing: User-Mode Linux guests from the
//! busybox template, real `vde_switch` switches, copy-on-write disks and
//! configuration disks, in a temporary state folder. Every test leaves no
//! process behind (checked through /proc).

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use testkit::{processes_under, KillUnder};

use mln_core::template::Template;
use mln_lang::apply::{status, ApplyError, LocalBackends, Outcome, Progress, Run, RunOptions};
use mln_lang::model::Project;
use mln_lang::plan::{Action, ChangeClass, Goal, HostChangeKind};
use mln_lang::state::StateStore;

/// The busybox template, built once per test run under target/.
fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        Template::default_in(&base).expect("busybox template")
    })
    .clone()
}

/// These tests start and kill real guests, switches and a child executor
/// in one process; run them one at a time so that one test's children
/// (which inherit descriptors between fork and exec) never hold another
/// test's project lock.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn project(name: &str) -> Project {
    let path = format!("{}/../projects/{name}", env!("CARGO_MANIFEST_DIR"));
    mln_lang::load(&path)
        .unwrap_or_else(|r| panic!("{}", r.render(false)))
        .project()
        .clone()
}

fn backends(store: &StateStore) -> LocalBackends {
    LocalBackends::new(store.dir())
        .unwrap()
        .with_default_template(template())
        .with_template("alt", template())
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn started(&self, action: &Action) {
        self.0.lock().unwrap().push(action.op.describe());
    }
}

fn verb(root: &Path, name: &str, p: Option<&Project>, goal: Goal) -> Result<Outcome, ApplyError> {
    let store = StateStore::open(root, name).unwrap();
    let b = backends(&store);
    // Before anything stops guests, let every running one finish booting:
    // a guest asked to halt while its init is not up yet only reboots, and
    // waits out the whole stop timeout before being killed.
    if let Ok(st) = status(&store, &b) {
        for h in st.hosts.iter().filter(|h| h.state == "running") {
            wait_for_console(&b, &format!("{name}.{}", h.host), "mln: boot finished");
        }
    }
    let mut opts = RunOptions::new(goal);
    opts.stop_timeout = Duration::from_secs(30);
    {
        let run = Run::new(store, &b, opts.clone());
        match p {
            Some(p) => run.project(p),
            None => run,
        }
        .run()
    }
}

fn assert_success(out: &Outcome) {
    let report = out.report.as_ref().expect("not a dry run");
    assert!(
        report.is_success(),
        "plan:\n{}\nfailed: {:#?}\nnot run: {:?}",
        out.plan.render_actions(),
        report.failed,
        report.not_run
    );
}

fn wait_for_console(b: &LocalBackends, domain: &str, marker: &str) -> String {
    let log = b.uml().console_log(domain).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(marker) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_hosts_up_status_stop_start_upgrade_remove() {
    let _one_at_a_time = serial();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let mut p = project("two-hosts.mln");
    // Proof that the network really joins them: `one` pings `two` by name.
    p.hosts[0].startup.push(
        "for i in $(seq 60); do ping -c 1 -W 1 two >/dev/null 2>&1 && \
         echo MLN-PING-OK && break; done"
            .into(),
    );

    // Hooks run on this machine around the start, with the project's name.
    let hook_file = root.path().join("hooks.log");
    p.hooks.before_hosts_start.push(format!(
        "echo before $MLN_PROJECT >> {}",
        hook_file.display()
    ));
    p.hooks.after_hosts_start.push(format!(
        "echo after $MLN_PROJECT >> {}",
        hook_file.display()
    ));

    // up
    let store = StateStore::open(root.path(), "twohosts").unwrap();
    let b = backends(&store);
    let progress = Recorder::default();
    let out = Run::new(store.clone(), &b, RunOptions::new(Goal::Up))
        .project(&p)
        .progress(&progress)
        .run()
        .unwrap();
    assert_success(&out);
    assert!(progress
        .0
        .lock()
        .unwrap()
        .contains(&"start one".to_string()));
    let st = status(&store, &b).unwrap();
    assert_eq!(st.hosts.len(), 2);
    for h in &st.hosts {
        assert_eq!(h.state, "running", "{st:#?}");
        assert!(h.id.is_some_and(|pid| pid > 0));
    }
    assert_eq!(st.switches.len(), 1);
    assert_eq!(st.switches[0].state, "up");
    let log = wait_for_console(&b, "twohosts.one", "MLN-PING-OK");
    assert!(
        log.contains("MLN-PING-OK"),
        "one could not ping two:\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&hook_file).unwrap(),
        "before twohosts\nafter twohosts\n"
    );
    assert_eq!(
        b.console_log("twohosts", "one").unwrap(),
        b.uml().console_log("twohosts.one").unwrap()
    );

    // up again: nothing to do
    let out = verb(root.path(), "twohosts", Some(&p), Goal::Up).unwrap();
    assert!(out.plan.is_empty(), "{}", out.plan.render_actions());

    // stop (by project name only, as `mln stop -p twohosts`)
    let pids: Vec<u32> = st.hosts.iter().filter_map(|h| h.id).collect();
    let out = verb(root.path(), "twohosts", None, Goal::Stop).unwrap();
    assert_success(&out);
    let st = status(&store, &b).unwrap();
    assert!(st.hosts.iter().all(|h| h.state == "built"), "{st:#?}");
    assert_eq!(st.switches[0].state, "absent");
    for pid in &pids {
        assert!(!processes_under(root.path()).contains(pid));
    }

    // start
    let out = verb(root.path(), "twohosts", None, Goal::Up).unwrap();
    assert_success(&out);
    assert!(out
        .plan
        .hosts
        .iter()
        .all(|h| h.kind == HostChangeKind::Start));
    let st = status(&store, &b).unwrap();
    assert!(st.hosts.iter().all(|h| h.state == "running"), "{st:#?}");

    // upgrade: more memory for `one` (a restart on UML), `two` untouched
    let two_pid = st.hosts.iter().find(|h| h.host == "two").unwrap().id;
    p.hosts[0].memory = 96 << 20;
    let out = verb(root.path(), "twohosts", Some(&p), Goal::Upgrade).unwrap();
    assert_success(&out);
    assert_eq!(out.plan.hosts.len(), 1, "{}", out.plan.render_diff());
    assert_eq!(
        out.plan.hosts[0].kind,
        HostChangeKind::Update(ChangeClass::Restart)
    );
    let st = status(&store, &b).unwrap();
    let one = st.hosts.iter().find(|h| h.host == "one").unwrap();
    let two = st.hosts.iter().find(|h| h.host == "two").unwrap();
    assert_eq!(one.state, "running");
    assert_eq!(one.memory, 96 << 20);
    assert_eq!(two.id, two_pid, "two must not have been restarted");

    // remove
    let out = verb(root.path(), "twohosts", None, Goal::Remove).unwrap();
    assert_success(&out);
    assert!(!store.dir().exists(), "state folder left behind");
    assert!(
        processes_under(root.path()).is_empty(),
        "processes left running"
    );
}

/// Runs `up` of lab.mln for the kill test below, in the folder it is given;
/// does nothing when run on its own.
#[test]
#[ignore = "run as a child process by kill_9_in_the_middle_of_up_then_up_converges"]
fn child_up_for_kill_test() {
    let Some(root) = std::env::var_os("MLN_APPLY_UML_CHILD_ROOT") else {
        return;
    };
    let store = StateStore::open(&root, "lab").unwrap();
    let b = backends(&store);
    let mut opts = RunOptions::new(Goal::Up);
    // One at a time, so the parent finds it half way.
    opts.parallelism = 1;
    let _ = Run::new(store, &b, opts).project(&project("lab.mln")).run();
}

#[test]
fn kill_9_in_the_middle_of_up_then_up_converges() {
    let _one_at_a_time = serial();
    template();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_up_for_kill_test",
            "--ignored",
            "--nocapture",
        ])
        .env("MLN_APPLY_UML_CHILD_ROOT", root.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a first guest exists but before the plan is done.
    let state = root.path().join("lab/state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        if text.contains("\"domain\": {") || Instant::now() >= deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = StateStore::open(root.path(), "lab").unwrap();
    let b = backends(&store);
    let recorded = store.load().unwrap().expect("the child recorded progress");
    assert!(
        recorded.hosts.values().any(|h| h.domain.is_some()),
        "the child was killed before creating anything"
    );

    let p = project("lab.mln");
    let out = verb(root.path(), "lab", Some(&p), Goal::Up).unwrap();
    assert_success(&out);
    let st = status(&store, &b).unwrap();
    let consoles: String = st
        .hosts
        .iter()
        .filter(|h| h.state != "running")
        .map(|h| {
            let log = b.console_log("lab", &h.host).unwrap();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            format!(
                "--- {} ---\n{}\n",
                h.host,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect();
    assert!(
        st.hosts.iter().all(|h| h.state == "running"),
        "{st:#?}\n{consoles}"
    );
    // No duplicates: exactly one guest per host, one switch per switch.
    use mln_core::Hypervisor;
    let guests: Vec<String> = b
        .uml()
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(guests, vec!["lab.alice", "lab.bob", "lab.router"]);
    let switches = std::fs::read_dir(store.dir().join("switches"))
        .unwrap()
        .count();
    assert_eq!(switches, 2);
    // And a third run has nothing to do.
    let out = verb(root.path(), "lab", Some(&p), Goal::Up).unwrap();
    assert!(out.plan.is_empty(), "{}", out.plan.render_actions());

    let out = verb(root.path(), "lab", None, Goal::Remove).unwrap();
    assert_success(&out);
    assert!(!store.dir().exists());
    assert!(processes_under(root.path()).is_empty());
}

#[test]
fn upgrade_removes_a_host_and_adds_another_on_real_guests() {
    let _one_at_a_time = serial();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let v1 = project("two-hosts.mln");
    assert_success(&verb(root.path(), "twohosts", Some(&v1), Goal::Up).unwrap());
    let store = StateStore::open(root.path(), "twohosts").unwrap();
    let b = backends(&store);
    let one_pid = status(&store, &b).unwrap().hosts[0].id;

    // v2: `two` is gone, `three` takes a new address on the same switch.
    let mut v2 = v1.clone();
    let mut three = v2.hosts.remove(1);
    three.name = "three".into();
    three.interfaces[0].address = Some(mln_lang::model::Address::Static {
        addr: "10.0.0.3".parse().unwrap(),
        prefix: None,
    });
    v2.hosts.push(three);
    let out = verb(root.path(), "twohosts", Some(&v2), Goal::Upgrade).unwrap();
    assert_success(&out);
    let kinds: Vec<(&str, HostChangeKind)> = out
        .plan
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("three", HostChangeKind::Create),
            ("two", HostChangeKind::Destroy)
        ]
    );
    let st = status(&store, &b).unwrap();
    let names: Vec<(&str, &str)> = st
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.state.as_str()))
        .collect();
    assert_eq!(names, vec![("one", "running"), ("three", "running")]);
    assert_eq!(st.hosts[0].id, one_pid, "one must not have been touched");
    let disks: Vec<String> = std::fs::read_dir(store.dir().join("disks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("two."))
        .collect();
    assert!(disks.is_empty(), "two's disks leaked: {disks:?}");

    assert_success(&verb(root.path(), "twohosts", None, Goal::Remove).unwrap());
    assert!(processes_under(root.path()).is_empty());
}

#[test]
fn a_template_change_rebuilds_one_host_and_leaves_its_peer_running() {
    let _one_at_a_time = serial();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let mut p = project("two-hosts.mln");
    assert_success(&verb(root.path(), "twohosts", Some(&p), Goal::Up).unwrap());
    let store = StateStore::open(root.path(), "twohosts").unwrap();
    let b = backends(&store);
    let before = status(&store, &b).unwrap();

    p.hosts[0].template = Some("alt".into());
    let out = verb(root.path(), "twohosts", Some(&p), Goal::Upgrade).unwrap();
    assert_success(&out);
    assert_eq!(out.plan.hosts.len(), 1, "{}", out.plan.render_diff());
    let one = &out.plan.hosts[0];
    assert_eq!(one.kind, HostChangeKind::Rebuild);
    assert_eq!(one.changes[0].attr, "template");
    assert_eq!(one.changes[0].class, ChangeClass::Rebuild);
    assert_eq!(one.links[0].switch, "lan");
    assert_eq!(one.links[0].peers, vec!["two"]);

    let after = status(&store, &b).unwrap();
    assert!(
        after.hosts.iter().all(|h| h.state == "running"),
        "{after:#?}"
    );
    assert_ne!(after.hosts[0].id, before.hosts[0].id, "one was not rebuilt");
    assert_eq!(after.hosts[1].id, before.hosts[1].id, "two was touched");
    let recorded = store.load().unwrap().unwrap();
    assert_eq!(recorded.hosts["one"].spec.template.as_deref(), Some("alt"));

    assert_success(&verb(root.path(), "twohosts", None, Goal::Remove).unwrap());
    assert!(processes_under(root.path()).is_empty());
}

#[test]
fn a_switch_started_but_never_recorded_is_adopted() {
    let _one_at_a_time = serial();
    use mln_lang::apply::Backends;
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let p = project("two-hosts.mln");
    let store = StateStore::open(root.path(), "twohosts").unwrap();
    let b = backends(&store);
    // What a run killed right after starting the switch leaves.
    let spec = mln_lang::plan::DesiredProject::from_project(&p).switches["lan"].clone();
    let first = b.create_switch("twohosts", &spec).unwrap();
    let out = verb(root.path(), "twohosts", Some(&p), Goal::Up).unwrap();
    assert_success(&out);
    let recorded = store.load().unwrap().unwrap();
    assert_eq!(
        recorded.switches["lan"].pid, first.pid,
        "a second switch was started"
    );
    let st = status(&store, &b).unwrap();
    assert!(st.hosts.iter().all(|h| h.state == "running"), "{st:#?}");
    assert_success(&verb(root.path(), "twohosts", None, Goal::Remove).unwrap());
    assert!(processes_under(root.path()).is_empty());
}

#[test]
fn a_dead_switch_is_recreated_and_its_guests_replugged() {
    let _one_at_a_time = serial();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let mut p = project("two-hosts.mln");
    p.hosts[0].startup.push(
        "(while true; do ping -c 1 -W 1 two >/dev/null 2>&1 && echo MLN-PING-OK; \
         sleep 1; done) &"
            .into(),
    );
    let store = StateStore::open(root.path(), "twohosts").unwrap();
    let b = backends(&store);
    assert_success(&verb(root.path(), "twohosts", Some(&p), Goal::Up).unwrap());
    let log_path = b.uml().console_log("twohosts.one").unwrap();
    let log = wait_for_console(&b, "twohosts.one", "MLN-PING-OK");
    assert!(log.contains("MLN-PING-OK"), "{log}");

    // The switch dies under the running guests.
    let sw = store.load().unwrap().unwrap().switches["lan"].pid.unwrap();
    Command::new("kill")
        .args(["-9", &sw.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&store, &b).unwrap().switches[0].state == "up" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    // The next run sees it, starts it again and plugs both guests back in.
    let out = verb(root.path(), "twohosts", Some(&p), Goal::Up).unwrap();
    assert_success(&out);
    let ops: Vec<String> = out.plan.actions.iter().map(|a| a.op.describe()).collect();
    assert_eq!(
        ops,
        vec![
            "create switch lan",
            "re-plug one.eth0 into lan",
            "re-plug two.eth0 into lan"
        ]
    );
    // Pings get through again after the re-plug.
    let offset = std::fs::metadata(&log_path).unwrap().len() as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut after = String::new();
    while Instant::now() < deadline {
        let text = std::fs::read(&log_path).unwrap_or_default();
        after = String::from_utf8_lossy(&text[offset.min(text.len())..]).into_owned();
        if after.contains("MLN-PING-OK") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        after.contains("MLN-PING-OK"),
        "no ping after re-plug:\n{after}"
    );

    assert_success(&verb(root.path(), "twohosts", None, Goal::Remove).unwrap());
    assert!(processes_under(root.path()).is_empty());
}

#[test]
fn concurrent_ups_never_corrupt_the_state() {
    let _one_at_a_time = serial();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let p = project("two-hosts.mln");
    let results: Vec<Result<Outcome, ApplyError>> = std::thread::scope(|s| {
        let a = s.spawn(|| verb(root.path(), "twohosts", Some(&p), Goal::Up));
        let b = s.spawn(|| verb(root.path(), "twohosts", Some(&p), Goal::Up));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    // One wins; the other either waited its turn (nothing left to do) or was
    // refused with the lock message. Never both building.
    let mut ok = 0;
    for r in &results {
        match r {
            Ok(out) => {
                ok += 1;
                assert!(out.report.as_ref().unwrap().is_success());
            }
            // The pid is read without the lock, so it may not be written yet.
            Err(e) => assert!(e.to_string().contains("is locked by"), "{e}"),
        }
    }
    assert!(ok >= 1);
    let store = StateStore::open(root.path(), "twohosts").unwrap();
    let b = backends(&store);
    let st = status(&store, &b).unwrap();
    assert!(st.hosts.iter().all(|h| h.state == "running"), "{st:#?}");
    let out = verb(root.path(), "twohosts", None, Goal::Remove).unwrap();
    assert_success(&out);
    assert!(processes_under(root.path()).is_empty());
}
