//! MLN's admin verbs on real UML guests: `export`/`import`, `clean`,
//! `down --force`, `template register`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Every `mln` here may take this long (a boot is a few seconds).
const LIMIT: Duration = Duration::from_secs(240);

/// `mln ARGS --state-dir STATE --template-dir TEMPLATES`, bounded.
fn mln(state: &Path, templates: &Path, args: &[&str]) -> Output {
    mln_raw(args, &[state, templates])
}

fn mln_raw(args: &[&str], dirs: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mln"));
    // The kernels folder is the state folder's (CI names a shared one,
    // which `clean` would look at instead).
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("MLN_KERNELS_DIR");
    if let Some(state) = dirs.first() {
        cmd.arg("--state-dir").arg(state);
    }
    if let Some(templates) = dirs.get(1) {
        cmd.arg("--template-dir").arg(templates);
    }
    testkit::run_within(&mut cmd, LIMIT)
}

/// `mln exec -p PROJECT HOST -- COMMAND...` (the flags before `--`).
fn exec(state: &Path, project: &str, host: &str, command: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mln"));
    cmd.args(["exec", "--state-dir"])
        .arg(state)
        .args(["-p", project, host, "--"])
        .args(command);
    testkit::run_within(&mut cmd, LIMIT)
}

#[track_caller]
fn ok(o: &Output) {
    assert!(o.status.success(), "{}", testkit::output_text(o));
}

#[track_caller]
fn refused(o: &Output, says: &str) {
    let text = testkit::output_text(o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains(says), "{says:?} not in: {text}");
}

/// A one-host UML project of 64M on a switch, written to `dir`.
fn one_host(dir: &Path, project: &str) -> PathBuf {
    let path = dir.join(format!("{project}.mln"));
    std::fs::write(
        &path,
        format!(
            "global {{\n  project {project}\n}}\n\
             host solo {{\n  memory 64M\n  network eth0 {{\n    switch lan\n    \
             address 10.0.0.1\n    netmask 255.255.255.0\n  }}\n}}\n\
             switch lan {{\n}}\n"
        ),
    )
    .unwrap();
    path
}

/// The project `carry`: [`one_host`]'s UML host and a KVM host on its
/// switch.
fn uml_and_kvm_host(dir: &Path) -> PathBuf {
    let path = one_host(dir, "carry");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "host vm {\n  kvm\n  memory 128M\n  network eth0 {\n    switch lan\n    \
         address 10.0.0.2\n    netmask 255.255.255.0\n  }\n}\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Up a project of a UML and a KVM host, write a file in each guest,
/// down, export; the archive is refused while the hosts run, never
/// replaces a file, is refused over an existing project and without the
/// template; imported into a fresh state folder it comes up with the
/// files still there.
#[test]
fn an_exported_project_comes_back_up_elsewhere_with_its_guests_files() {
    if !testkit::uml_ready("export_import") {
        return;
    }
    if let Some(why) = testkit::missing_tool(&["/usr/bin/qemu-system-x86_64"]) {
        return testkit::skip("export_import", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let templates = dir.path().join("templates");
    let file = uml_and_kvm_host(dir.path());
    let archive = dir.path().join("carry.tar");
    let archive_arg = archive.to_str().unwrap();

    ok(&mln(&first, &templates, &["up", file.to_str().unwrap()]));
    for host in ["solo", "vm"] {
        ok(&exec(
            &first,
            "carry",
            host,
            &[
                "sh",
                "-c",
                &format!("echo data of {host} > /root/f && sync"),
            ],
        ));
    }
    // Running: refused, naming the hosts and the way out.
    refused(
        &mln_raw(&["export", "-p", "carry", archive_arg], &[&first]),
        "host(s) solo, vm still run; stop them first (`mln down -p carry`)",
    );
    assert!(!archive.exists());
    ok(&mln(&first, &templates, &["down", "-p", "carry"]));
    ok(&mln_raw(&["export", "-p", "carry", archive_arg], &[&first]));
    // A tar file `tar` reads, holding the record and the disks only.
    let listing = testkit::run_ok(&["tar", "tf", archive_arg]);
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "mln-export.json\nstate.json\ndisks/solo.disks\ndisks/vm.disks\n"
    );
    // The disks travel compressed and sparse: far below the 64 MiB the
    // overlays claim.
    assert!(std::fs::metadata(&archive).unwrap().len() < 8 << 20);
    refused(
        &mln_raw(&["export", "-p", "carry", archive_arg], &[&first]),
        "already there; not replaced",
    );
    // Over the project itself: refused.
    refused(
        &mln(&first, &templates, &["import", archive_arg]),
        "project carry already exists",
    );
    // Into a folder whose templates lack the one the disk was made over
    // (an empty image of that name): refused, leaving nothing.
    let other_templates = dir.path().join("other-templates");
    std::fs::create_dir_all(&other_templates).unwrap();
    refused(
        &mln(&second, &other_templates, &["import", archive_arg]),
        "template",
    );
    assert!(!second.join("carry").exists());

    ok(&mln(&first, &templates, &["remove", "-p", "carry"]));
    assert!(!first.join("carry").exists());
    let o = mln(&second, &templates, &["import", archive_arg]);
    ok(&o);
    // The record's paths are the new folder's.
    let state = std::fs::read_to_string(second.join("carry/state.json")).unwrap();
    assert!(!state.contains(first.to_str().unwrap()), "{state}");
    // The overlay stayed sparse.
    let cow = second.join("carry/disks/solo.cow");
    let meta = std::fs::metadata(&cow).unwrap();
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&meta) * 512 < meta.len() / 4,
        "{meta:?}"
    );
    // The KVM host's qcow2 overlay names a template that is there.
    let info = testkit::run_ok(&[
        "qemu-img",
        "info",
        "--output=json",
        second.join("carry/disks/vm.qcow2").to_str().unwrap(),
    ]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let backing = info["full-backing-filename"].as_str().unwrap_or_default();
    assert!(Path::new(backing).is_file(), "{info}");
    ok(&mln(&second, &templates, &["up", "-p", "carry"]));
    for host in ["solo", "vm"] {
        let o = exec(&second, "carry", host, &["cat", "/root/f"]);
        ok(&o);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("data of {host}\n")
        );
    }
    ok(&mln(&second, &templates, &["remove", "-p", "carry"]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}

/// A project whose record is gone (a run that died before recording, say)
/// while its guest and switch run on, and a scratch folder of a gone
/// process: `clean -n` lists them and touches nothing; `clean` ends the
/// processes and removes both; a recorded project running beside them is
/// untouched.
#[test]
fn clean_removes_what_no_record_owns_and_leaves_a_running_project_be() {
    if !testkit::uml_ready("clean") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let templates = dir.path().join("templates");
    // Its folder's name begins the lost one's: matching folders by prefix
    // would end its guest too.
    let keep = one_host(dir.path(), "lost2");
    let lost = one_host(dir.path(), "lost");
    ok(&mln(&state, &templates, &["up", keep.to_str().unwrap()]));
    ok(&mln(&state, &templates, &["up", lost.to_str().unwrap()]));
    std::fs::remove_file(state.join("lost/state.json")).unwrap();
    let lost_dir = state.join("lost");
    let running = testkit::processes_under(&lost_dir.join(""));
    assert!(running.len() >= 2, "guest and switch: {running:?}");
    let scratch = state
        .join("kernels")
        .join(format!(".fetch-{}", 0x7fff_fffe_u32));
    std::fs::create_dir_all(&scratch).unwrap();

    let o = mln(&state, &templates, &["clean", "-n"]);
    ok(&o);
    let text = testkit::output_text(&o);
    assert!(
        text.contains(&format!(
            "would remove {}: project folder without a record",
            lost_dir.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("would remove {}: scratch", scratch.display())),
        "{text}"
    );
    assert!(!text.contains("lost2"), "{text}");
    assert_eq!(testkit::processes_under(&lost_dir.join("")), running);
    assert!(scratch.exists() && lost_dir.exists());

    let o = mln(&state, &templates, &["clean"]);
    ok(&o);
    assert!(
        testkit::output_text(&o).contains("2 leftover(s)"),
        "{}",
        testkit::output_text(&o)
    );
    assert!(testkit::processes_under(&lost_dir.join("")).is_empty());
    assert!(!scratch.exists() && !lost_dir.exists());
    // The recorded project runs on.
    let o = exec(&state, "lost2", "solo", &["echo", "alive"]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "alive\n");
    ok(&mln(&state, &templates, &["remove", "-p", "lost2"]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}

/// MLN's `stop --force`: the guest is destroyed at once, so its
/// `shutdown` lines, which a clean `down` runs, do not run.
#[test]
fn down_force_stops_without_the_guests_shutdown() {
    if !testkit::uml_ready("down_force") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let templates = dir.path().join("templates");
    let file = dir.path().join("halt.mln");
    std::fs::write(
        &file,
        "global {\n  project halt\n}\nhost solo {\n  memory 64M\n  \
         shutdown {\n    echo bye > /root/shut\n  }\n}\n",
    )
    .unwrap();
    let shut = || {
        exec(
            &state,
            "halt",
            "solo",
            &["sh", "-c", "cat /root/shut; rm -f /root/shut; sync"],
        )
    };
    ok(&mln(&state, &templates, &["up", file.to_str().unwrap()]));
    // A clean stop runs the shutdown lines.
    ok(&mln(&state, &templates, &["down", "-p", "halt"]));
    ok(&mln(&state, &templates, &["up", "-p", "halt"]));
    let o = shut();
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "bye\n");
    // A forced one does not, and is quick.
    let started = std::time::Instant::now();
    ok(&mln(&state, &templates, &["down", "--force", "-p", "halt"]));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(testkit::processes_under(&state.join("halt/")).is_empty());
    ok(&mln(&state, &templates, &["up", "-p", "halt"]));
    let o = shut();
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    // MLN's spelling, `stop -H`.
    ok(&mln(&state, &templates, &["stop", "-H", "-p", "halt"]));
    assert!(testkit::processes_under(&state.join("halt/")).is_empty());
    ok(&mln(&state, &templates, &["remove", "-p", "halt"]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}

/// MLN's `template register`: a template MLN built elsewhere joins the
/// templates folder unchanged, as a link or (`--copy`) a copy, and hosts
/// boot from it by name; an image without MLN's guest step is refused
/// and pointed at `mln template import`.
#[test]
fn a_registered_template_is_linked_or_copied_and_hosts_boot_from_it() {
    if !testkit::uml_ready("template_register") {
        return;
    }
    if let Some(why) = testkit::missing_tool(&["/sbin/mkfs.ext4"]) {
        return testkit::skip("template_register", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let templates = dir.path().join("templates");
    let elsewhere = dir.path().join("elsewhere");
    let o = mln(
        &state,
        &templates,
        &[
            "template",
            "build",
            "busybox",
            "--out",
            elsewhere.to_str().unwrap(),
        ],
    );
    ok(&o);
    let built = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(built.starts_with(&elsewhere), "{built:?}");
    let built_arg = built.to_str().unwrap();

    ok(&mln(
        &state,
        &templates,
        &["template", "register", built_arg, "linked.ext4"],
    ));
    let linked = templates.join("linked.ext4");
    assert_eq!(std::fs::read_link(&linked).unwrap(), built);
    ok(&mln(
        &state,
        &templates,
        &["template", "register", "--copy", built_arg, "copied.ext4"],
    ));
    let copied = templates.join("copied.ext4");
    let meta = std::fs::symlink_metadata(&copied).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(&built).unwrap()
    );
    // A name taken: refused.
    refused(
        &mln(
            &state,
            &templates,
            &["template", "register", built_arg, "linked.ext4"],
        ),
        "already there",
    );
    // An ext4 image without MLN's step: refused, nothing registered.
    let plain = dir.path().join("plain.ext4");
    std::fs::write(&plain, b"").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&plain)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    testkit::run_ok(&["/sbin/mkfs.ext4", "-q", "-F", plain.to_str().unwrap()]);
    refused(
        &mln(
            &state,
            &templates,
            &["template", "register", plain.to_str().unwrap()],
        ),
        "mln template import",
    );
    assert!(!templates.join("plain.ext4").exists());
    // Both are listed with the boot marker MLN's templates print.
    let o = mln(
        &state,
        &templates,
        &["template", "list", "--format", "json"],
    );
    ok(&o);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["boot_marker"].is_string())
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"linked.ext4") && names.contains(&"copied.ext4"),
        "{list}"
    );
    // A host boots from the linked one by name.
    let file = dir.path().join("reg.mln");
    std::fs::write(
        &file,
        "global {\n  project reg\n}\nhost solo {\n  memory 64M\n  template linked.ext4\n}\n",
    )
    .unwrap();
    ok(&mln(&state, &templates, &["up", file.to_str().unwrap()]));
    let o = exec(&state, "reg", "solo", &["echo", "booted"]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "booted\n");
    ok(&mln(
        &state,
        &templates,
        &["remove", "--force", "-p", "reg"],
    ));
    assert!(testkit::processes_under(dir.path()).is_empty());
}

/// MLN's `stop -a` and `start -a` act on every recorded project; `--wait`
/// waits for whoever holds a project's lock instead of failing.
#[test]
fn stop_a_and_start_a_cover_every_project_and_wait_outlasts_a_lock() {
    if !testkit::uml_ready("all_projects") {
        return;
    }
    if let Some(why) = testkit::missing_tool(&["/usr/bin/flock"]) {
        return testkit::skip("all_projects", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = testkit::KillUnder(dir.path().to_path_buf());
    let state = dir.path().join("state");
    let templates = dir.path().join("templates");
    for name in ["east", "west"] {
        let file = one_host(dir.path(), name);
        ok(&mln(&state, &templates, &["up", file.to_str().unwrap()]));
    }
    let runs = |name: &str| !testkit::processes_under(&state.join(format!("{name}/"))).is_empty();
    ok(&mln(&state, &templates, &["stop", "-a"]));
    assert!(!runs("east") && !runs("west"));
    ok(&mln(&state, &templates, &["start", "-a"]));
    for name in ["east", "west"] {
        ok(&exec(&state, name, "solo", &["true"]));
    }
    // Someone holds east's lock for a few seconds (flock(1) takes the
    // same lock as mln).
    let lock = state.join("east/lock");
    let mut holder = Command::new("/usr/bin/flock")
        .arg(&lock)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    refused(&mln(&state, &templates, &["stop", "-p", "east"]), "locked");
    assert!(runs("east"));
    ok(&mln(&state, &templates, &["stop", "--wait", "-p", "east"]));
    assert!(!runs("east"));
    let _ = holder.wait();
    ok(&mln(&state, &templates, &["remove", "--force", "-a"]));
    assert!(testkit::processes_under(dir.path()).is_empty());
}
