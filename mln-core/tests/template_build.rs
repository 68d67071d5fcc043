//! The busybox template, built from the real busybox-static binary with
//! e2fsprogs and no root: an ext4 image whose files belong to root, with
//! busybox init and MLN's boot scripts. (That it boots is shown by the
//! uml_* tests.)

use std::process::Command;

use mln_core::template::{BusyboxSource, BusyboxTemplate};

fn debugfs(image: &std::path::Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn busybox_template_is_an_ext4_root_owned_by_root() {
    let dir = tempfile::tempdir().unwrap();
    let source = BusyboxSource::find(dir.path().join("download")).unwrap();
    let builder = BusyboxTemplate::new(source).size(16 << 20);
    let t = builder.build(dir.path()).unwrap();
    assert_eq!(t.cmdline, "root=/dev/ubda rw");
    let bytes = std::fs::read(&t.image).unwrap();
    assert_eq!(bytes.len(), 16 << 20);
    assert_eq!(&bytes[1080..1082], &[0x53, 0xef], "ext4 superblock magic");

    let busybox = debugfs(&t.image, "stat /bin/busybox");
    assert!(busybox.contains("User:     0   Group:     0"), "{busybox}");
    let init = debugfs(&t.image, "stat /sbin/init");
    assert!(init.contains("Fast link dest: \"/bin/busybox\""), "{init}");
    let mln = debugfs(&t.image, "ls -l /etc/mln");
    assert!(mln.contains("rc.boot") && mln.contains("rc.halt"), "{mln}");
    let console = debugfs(&t.image, "stat /dev/console");
    assert!(console.contains("character special"), "{console}");
    let inittab = debugfs(&t.image, "cat /etc/inittab");
    assert!(inittab.contains("::ctrlaltdel:"), "{inittab}");

    // Same inputs: the image is reused, not rebuilt.
    let modified = std::fs::metadata(&t.image).unwrap().modified().unwrap();
    let again = builder.build(dir.path()).unwrap();
    assert_eq!(again, t);
    assert_eq!(
        std::fs::metadata(&t.image).unwrap().modified().unwrap(),
        modified
    );
    assert_only_the_image_is_left(dir.path());
}

/// Nothing but the image (and the download folder) is in `dir`: no
/// scratch file of a build.
#[track_caller]
fn assert_only_the_image_is_left(dir: &std::path::Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "download")
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn builds_at_the_same_time_leave_one_image_that_is_never_replaced() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let source = BusyboxSource::find(dir.path().join("download")).unwrap();
    let builder = BusyboxTemplate::new(source).size(16 << 20);
    let image = dir.path().join(builder.image_name().unwrap());
    // Four builders start on an empty folder; whichever links its image
    // first wins, and the image never changes inode after that (an
    // overlay made on it stays valid).
    let inodes: Vec<u64> = std::thread::scope(|s| {
        let builds: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let t = builder.build(dir.path()).unwrap();
                    std::fs::metadata(&t.image).unwrap().ino()
                })
            })
            .collect();
        builds.into_iter().map(|b| b.join().unwrap()).collect()
    });
    let last = std::fs::metadata(&image).unwrap().ino();
    assert!(inodes.iter().all(|i| *i == last), "{inodes:?} then {last}");
    assert_only_the_image_is_left(dir.path());
}
