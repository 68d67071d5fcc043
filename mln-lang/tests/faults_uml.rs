//! Faults from outside, against the real UML backend: a guest killed under
//! the executor's feet, a full disk while the state is written, a template
//! deleted after a build, a service host that cannot be reached. (A
//! `vde_switch` killed under running guests is
//! `apply_uml.rs::a_dead_switch_is_recreated_and_its_guests_replugged`.)
//! Every test leaves no process and no mount behind; each skips, saying
//! so, where what it needs is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use testkit::{processes_under, KillUnder};

use mln_core::template::{BusyboxSource, BusyboxTemplate, Template};
use mln_lang::apply::{status, ApplyError, LocalBackends, Outcome, Run, RunOptions};
use mln_lang::model::Project;
use mln_lang::plan::Goal;
use mln_lang::state::{State, StateStore};

/// Why the UML tests cannot run here, if they cannot.
fn missing_tools() -> Option<String> {
    let kernel = testkit::uml_kernel();
    testkit::missing_tool(&[kernel.to_str()?, "/usr/bin/vde_switch"])
}

macro_rules! skip_unless_uml {
    () => {
        if let Some(why) = missing_tools() {
            return testkit::skip(module_path!(), &why);
        }
    };
}

/// The busybox template, built once per test run under target/ (shared
/// with apply_uml.rs).
fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        let source = BusyboxSource::find(base.join("download")).expect("busybox");
        BusyboxTemplate::new(source)
            .build(&base)
            .expect("template build")
    })
    .clone()
}

/// One host, `one`, alone (no switch: the fastest real guest).
fn one_host(project: &str, extra: &str) -> Project {
    let text = format!("global {{ project {project} }}\nhost one {{\n{extra}\n}}\n");
    mln_lang::load_str("faults.mln", &text)
        .unwrap_or_else(|r| panic!("{}", r.render(false)))
        .project()
        .clone()
}

fn verb(
    store: &StateStore,
    b: &LocalBackends,
    p: Option<&Project>,
    goal: Goal,
) -> Result<Outcome, ApplyError> {
    // A guest asked to halt before its init is up waits out the whole
    // stop timeout: let running ones finish booting first.
    if goal == Goal::Remove || goal == Goal::Stop {
        if let Ok(st) = status(store, b) {
            for h in st.hosts.iter().filter(|h| h.state == "running") {
                let domain = format!("{}.{}", store.project(), h.host);
                let _ = b.uml().wait_console(
                    &domain,
                    mln_core::template::BOOT_FINISHED,
                    Duration::from_secs(60),
                );
            }
        }
    }
    let mut opts = RunOptions::new(goal);
    opts.stop_timeout = Duration::from_secs(30);
    {
        let run = Run::new(store.clone(), b, opts.clone());
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

fn host_state(store: &StateStore, b: &LocalBackends, host: &str) -> (String, Option<u32>) {
    let st = status(store, b).unwrap();
    let h = st.hosts.iter().find(|h| h.host == host).expect("host");
    (h.state.clone(), h.id)
}

#[test]
fn a_guest_killed_from_outside_shows_as_crashed_and_up_brings_it_back() {
    skip_unless_uml!();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let p = one_host("killed", "");
    let store = StateStore::open(root.path(), "killed").unwrap();
    let b = LocalBackends::new(store.dir())
        .unwrap()
        .with_default_template(template());
    assert_success(&verb(&store, &b, Some(&p), Goal::Up).unwrap());
    let (state, pid) = host_state(&store, &b, "one");
    assert_eq!(state, "running");
    let pid = pid.expect("a running guest has a pid");

    // SIGKILL to the guest's main process, from outside.
    let pid_file = b.uml().state_dir().join("killed.one/pid");
    assert!(
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .contains(&pid.to_string()),
        "status and the pid file disagree"
    );
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut state = String::new();
    while Instant::now() < deadline {
        state = host_state(&store, &b, "one").0;
        if state != "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(state, "crashed", "status after SIGKILL");

    // `up` starts it again.
    let out = verb(&store, &b, Some(&p), Goal::Up).unwrap();
    assert_success(&out);
    let (state, new_pid) = host_state(&store, &b, "one");
    assert_eq!(state, "running", "{}", out.plan.render_actions());
    assert_ne!(new_pid, Some(pid));

    assert_success(&verb(&store, &b, None, Goal::Remove).unwrap());
    assert!(processes_under(root.path()).is_empty());
}

/// A copy of the template's image at `to` (sparse, same times).
fn copy_of_template(to: &Path) -> PathBuf {
    let ok = Command::new("cp")
        .args(["--sparse=always", "--preserve=timestamps"])
        .arg(&template().image)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
    to.to_path_buf()
}

/// A copy of the template whose journal names a feature no kernel knows:
/// every boot of it dies at the root file system's journal. Kernels before
/// 6.5 say "error loading journal", as UML 7.2 says now and then of a
/// healthy disk; later ones say "Could not load journal inode".
fn template_with_unloadable_journal(dir: &Path) -> Template {
    let image = copy_of_template(&dir.join("journal.ext4"));
    let out = Command::new("debugfs")
        .args(["-R", "bmap <8> 0"])
        .arg(&image)
        .output()
        .expect("debugfs");
    let block: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the journal's first block");
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(&image)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let block_size: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("block size");
    // The journal superblock's s_feature_incompat (big-endian, at 40):
    // a bit no jbd2 knows.
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    f.seek(SeekFrom::Start(block * block_size + 40)).unwrap();
    f.write_all(&0x8000_0000u32.to_be_bytes()).unwrap();
    drop(f);
    Template {
        image,
        ..template()
    }
}

#[test]
fn a_damaged_journal_is_started_at_most_twice_and_named() {
    skip_unless_uml!();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let damaged = template_with_unloadable_journal(root.path());
    let p = one_host("journal", "");
    let store = StateStore::open(root.path(), "journal").unwrap();
    let b = LocalBackends::new(store.dir())
        .unwrap()
        .with_default_template(damaged);
    let out = verb(&store, &b, Some(&p), Goal::Up).unwrap();
    let report = out.report.as_ref().unwrap();
    assert_eq!(report.failed.len(), 1, "{report:#?}");
    let error = &report.failed[0].error;
    // It dies before or after its management console answers (`start` or
    // the boot watch tells): worded the same either way.
    assert!(error.contains("one crashed while booting"), "{error}");
    assert!(error.contains("journal"), "{error}");
    // Where the kernel's words are those of the passing fault, the guest
    // was started once more, said so, and no third time.
    let console =
        std::fs::read_to_string(b.uml().state_dir().join("journal.one/console.log")).unwrap();
    let runs = console.matches("Kernel panic").count();
    assert!(report.boot_retries.len() <= 1, "{report:#?}");
    assert_eq!(runs, 1 + report.boot_retries.len(), "{console}");
    if console.contains("error loading journal") {
        assert_eq!(report.boot_retries.len(), 1, "{report:#?}");
        assert_eq!(report.boot_retries[0].host, "one");
        assert!(
            error.contains("died again") && error.contains("mln reset"),
            "{error}"
        );
    } else {
        assert!(report.boot_retries.is_empty(), "{report:#?}");
    }
    // Nothing runs, and remove leaves nothing behind.
    assert!(processes_under(root.path()).is_empty());
    assert_success(&verb(&store, &b, None, Goal::Remove).unwrap());
    assert!(processes_under(root.path()).is_empty());
}

#[test]
fn a_template_deleted_after_build_is_named_when_starting() {
    skip_unless_uml!();
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    // A template of this test's own, so deleting it harms no other test.
    let image = copy_of_template(&root.path().join("mine.ext4"));
    let mine = Template {
        image: image.clone(),
        ..template()
    };
    let p = one_host("tmpl", "");
    let store = StateStore::open(root.path(), "tmpl").unwrap();
    let b = LocalBackends::new(store.dir())
        .unwrap()
        .with_default_template(mine);
    assert_success(&verb(&store, &b, Some(&p), Goal::Build).unwrap());
    assert_eq!(host_state(&store, &b, "one").0, "built");
    let cow = store.dir().join("disks/one.cow");
    let cow_before = std::fs::read(&cow).unwrap();
    let state_before = store.load().unwrap();

    // The template goes away (moved, so it can come back unchanged).
    let away = root.path().join("moved.ext4");
    std::fs::rename(&image, &away).unwrap();
    let out = verb(&store, &b, Some(&p), Goal::Up).unwrap();
    let report = out.report.as_ref().unwrap();
    assert!(!report.is_success(), "started without its template");
    let errors: Vec<&str> = report.failed.iter().map(|f| f.error.as_str()).collect();
    assert!(
        errors.iter().any(|e| e.contains("template")
            && e.contains(&*image.to_string_lossy())
            && e.contains("does not exist")),
        "{errors:#?}"
    );
    // Nothing else changed: still built, same disk, no guest, same record
    // of the host.
    assert_eq!(host_state(&store, &b, "one").0, "built");
    assert_eq!(std::fs::read(&cow).unwrap(), cow_before);
    assert!(processes_under(root.path()).is_empty());
    let after = store.load().unwrap().unwrap();
    let before = state_before.unwrap();
    assert_eq!(after.hosts["one"].spec, before.hosts["one"].spec);
    assert_eq!(
        after.hosts["one"].disk_ready,
        before.hosts["one"].disk_ready
    );

    // Back in place, the same disk starts.
    std::fs::rename(&away, &image).unwrap();
    assert_success(&verb(&store, &b, Some(&p), Goal::Up).unwrap());
    assert_eq!(host_state(&store, &b, "one").0, "running");
    assert_success(&verb(&store, &b, None, Goal::Remove).unwrap());
    assert!(processes_under(root.path()).is_empty());
}

#[test]
fn an_unreachable_service_host_is_named_and_nothing_is_made() {
    let root = tempfile::tempdir().unwrap();
    let p = one_host("far", "service_host nowhere");
    let store = StateStore::open(root.path(), "far").unwrap();
    // No guest is started, so the template need not be real.
    let b = LocalBackends::new(store.dir())
        .unwrap()
        .with_default_template(Template::image(
            root.path().join("none.ext4"),
            "root=/dev/ubda rw",
        ));
    let before: Vec<PathBuf> = walk(root.path());
    let out = verb(&store, &b, Some(&p), Goal::Up).unwrap();
    let report = out.report.as_ref().unwrap();
    assert!(!report.is_success());
    let first = &report.failed[0].error;
    assert!(
        first.contains("one") && first.contains("nowhere") && first.contains("cannot be reached"),
        "{first}"
    );
    // Only the state (recording what was tried) and its lock.
    let made: Vec<PathBuf> = walk(root.path())
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter(|p| !p.ends_with("state.json") && !p.ends_with("lock"))
        .collect();
    assert!(made.is_empty(), "{made:?}");
    assert!(processes_under(root.path()).is_empty());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// A tmpfs mounted for one test, unmounted however the test ends.
struct Mount(PathBuf);

impl Mount {
    /// `None` (the test skips) when not root or mounting fails.
    fn tmpfs(at: &Path, size: &str) -> Option<Mount> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: mounting a small tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs at {}", at.display());
            return None;
        }
        Some(Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_while_writing_state_keeps_the_previous_state() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = KillUnder(root.path().to_path_buf());
    let states = root.path().join("states");
    let Some(_mount) = Mount::tmpfs(&states, "64k") else {
        return;
    };
    let store = StateStore::open(&states, "full").unwrap();
    {
        let lock = store.lock().unwrap();
        store.save(&lock, &State::new("full")).unwrap();
    }
    let state_file = store.dir().join("state.json");
    let before = std::fs::read(&state_file).unwrap();

    // Fill what is left of the file system, holding the lock (whose file
    // keeps the page with the holder's pid).
    let lock = store.lock().unwrap();
    let filler = states.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xa5u8; 4096];
        while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
    }
    let assert_intact = |what: &str| {
        assert_eq!(
            std::fs::read(&state_file).unwrap(),
            before,
            "{what}: the previous state was damaged"
        );
        let tmp: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(tmp.is_empty(), "{what}: temporary files left: {tmp:?}");
    };

    // Writing a new state fails, naming the file and the cause.
    let mut bigger = State::new("full");
    bigger.model = Some(serde_json::json!({ "padding": "x".repeat(20_000) }));
    let err = store.save(&lock, &bigger).unwrap_err().to_string();
    assert!(
        err.contains("state.json") && err.contains("No space left on device"),
        "not a clear error: {err}"
    );
    assert_intact("save");
    drop(lock);

    // A whole `up` on the full disk fails the same clear way, before it
    // makes anything.
    let p = one_host("full", "");
    let b = LocalBackends::new(store.dir())
        .unwrap()
        .with_default_template(Template::image(
            root.path().join("none.ext4"),
            "root=/dev/ubda rw",
        ));
    let message = match verb(&store, &b, Some(&p), Goal::Up) {
        Err(e) => e.to_string(),
        Ok(out) => format!("{:?}", out.report.as_ref().map(|r| &r.failed)),
    };
    assert!(
        message.contains("No space left on device"),
        "not a clear error: {message}"
    );
    assert_intact("up");
    assert!(processes_under(root.path()).is_empty());

    // With room again, the same store works.
    std::fs::remove_file(&filler).unwrap();
    let lock = store.lock().unwrap();
    store.save(&lock, &bigger).unwrap();
    assert!(store.load().unwrap().unwrap().model.is_some());
}
