//! A host's `files` sources, found as MLN 1.0.8 found them, checked before
//! anything is made (`mln build -s`: a plan only, no guest boots).
//!
//! MLN 1.0.8's `copyFiles` (its Perl source, `kybeg/mln`) copies each line
//! with `cp -fr $FILES_PATH/SRC MOUNT/DEST`, `$FILES_PATH` being the
//! `files` line of `~/.mln`: a relative source is in the site's files
//! folder, and a folder is copied whole. (Not run through MLN itself: its
//! build needs root and a template image.) Where MLN printed
//! `ERROR: file ... not found` and built the host without it, `mln`
//! refuses before building, naming the host and the path.

use std::path::Path;
use std::process::{Command, Output};

fn build_simulated(home: &Path, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mln"))
        .args(["build", "-s", "-f"])
        .arg(file)
        .env("HOME", home)
        .env_remove("MLN_STATE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run mln")
}

#[test]
fn a_relative_source_is_in_the_site_files_folder_and_a_missing_one_names_host_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let (home, files, elsewhere) = (
        dir.path().join("home"),
        dir.path().join("files"),
        dir.path().join("elsewhere"),
    );
    std::fs::create_dir_all(files.join("site")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(files.join("site/index.html"), "hi\n").unwrap();
    std::fs::write(elsewhere.join("motd"), "hello\n").unwrap();
    std::fs::write(
        home.join(".mln"),
        format!(
            "files {}\nprojects {}\n",
            files.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    // The project file is not in the files folder: `site` is found there
    // all the same, and an absolute source is taken as written.
    let project = elsewhere.join("web.mln");
    let write = |extra: &str| {
        std::fs::write(
            &project,
            format!(
                "global {{ project web }}\nhost web {{\n files {{\n  site /var/www\n  {} /etc/motd\n{extra} }}\n}}\n",
                elsewhere.join("motd").display()
            ),
        )
        .unwrap()
    };
    write("");
    let o = build_simulated(&home, &project);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    write("  motd /etc/issue\n");
    let o = build_simulated(&home, &project);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "error: host web: files source `motd` not found: {}",
            files.join("motd").display()
        )) && err.contains("relative to the site's files folder"),
        "{err}"
    );
}
