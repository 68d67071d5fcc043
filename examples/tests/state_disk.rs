//! The state folder's disk fills up under a running project (issue #18):
//! `mln` says so, naming the state file, and the file still holds the
//! state from before, whole; once there is room again the same command
//! converges and `remove` leaves nothing. A small tmpfs is the full disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const MLN: &str = env!("CARGO_BIN_EXE_mln");
const PROJECT: &str = "fulldisk";

fn mln(state: &Path, templates: &Path, args: &[&str]) -> Output {
    Command::new(MLN)
        .args(args)
        .env("MLN_STATE_DIR", state)
        .env("MLN_TEMPLATE_DIR", templates)
        .env("NO_COLOR", "1")
        .output()
        .expect("run mln")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", testkit::output_text(o));
}

/// A tmpfs mounted on a folder, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        for pid in testkit::processes_under(&self.0) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the file system of `dir` with one file until it has no room.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create the filler");
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_state_disk_is_reported_and_the_state_file_stays_whole() {
    let kernel = testkit::uml_kernel();
    let tools = [
        kernel.to_str().unwrap_or("/usr/bin/linux.uml"),
        "/usr/bin/vde_switch",
    ];
    if let Some(why) = testkit::missing_tool(&tools) {
        return testkit::skip("full state disk", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    let state = dir.path().join("state");
    let _disk = match SmallDisk::mount(&state, "16m") {
        Ok(d) => d,
        Err(why) => return testkit::skip("full state disk", &why),
    };
    let file = dir.path().join("p.mln");
    std::fs::write(
        &file,
        format!(
            "global {{ project {PROJECT} }}\nswitch lan {{\n}}\n\
             host one {{ memory 48M; network eth0 {{ switch lan; address 10.0.0.1; netmask 255.255.255.0 }} }}\n"
        ),
    )
    .unwrap();
    ok(&mln(&state, &templates, &["up", file.to_str().unwrap()]));
    let state_file = state.join(PROJECT).join("state.json");
    let before = std::fs::read(&state_file).expect("state recorded");

    let filler = fill(&state);
    let o = mln(&state, &templates, &["stop", "-p", PROJECT]);
    let said = testkit::output_text(&o);
    assert!(!o.status.success(), "stop on a full disk succeeded: {said}");
    assert!(
        said.contains("No space left on device") && said.contains("state.json"),
        "{said}"
    );
    assert!(said.contains("still holds the previous state"), "{said}");
    let after = std::fs::read(&state_file).expect("state file still there");
    assert_eq!(after, before, "the state file changed");
    serde_json::from_slice::<serde_json::Value>(&after).expect("the state file is whole JSON");
    let temporaries: Vec<_> = std::fs::read_dir(state.join(PROJECT))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");

    // Room again: the same verb converges, and nothing is left.
    std::fs::remove_file(filler).unwrap();
    ok(&mln(&state, &templates, &["stop", "-p", PROJECT]));
    let status = mln(
        &state,
        &templates,
        &["status", "-p", PROJECT, "--format", "json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(json[0]["hosts"][0]["state"], "built", "{json}");
    ok(&mln(&state, &templates, &["remove", "-p", PROJECT]));
    assert!(!state.join(PROJECT).exists(), "project folder left");
    assert!(testkit::processes_under(&state).is_empty());
}
