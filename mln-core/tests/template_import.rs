//! `template::import` on root images MLN never built, one per init it
//! knows (systemd, sysvinit, busybox init), made here with `mkfs.ext4 -d`
//! and no root: the copy gets MLN's guest-configuration step, hooked into
//! its init, owned by root and consistent (`e2fsck`), and the original is
//! left as it was. (That such images boot and take their configuration is
//! shown by examples/tests/debian_guests.rs.)

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use mln_core::template::{self, Ext4Image, InitSystem, BOOT_FINISHED};

/// An 32 MiB ext4 image of the folder tree `files` (path → content; a
/// content starting with `->` makes a symbolic link).
fn image(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = dir.join(format!("{name}.root"));
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        match content.strip_prefix("->") {
            Some(target) => symlink(target, &p).unwrap(),
            None => std::fs::write(&p, content).unwrap(),
        }
    }
    let img = dir.join(name);
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("32M")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    img
}

fn fsck_clean(img: &Path) {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn read(img: &Path, path: &str) -> String {
    let bytes = Ext4Image::open(img).unwrap().read(path).unwrap();
    String::from_utf8(bytes.unwrap_or_else(|| panic!("{path} missing"))).unwrap()
}

fn stat(img: &Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn imported(src: &Path, dir: &Path, name: &str, init: InitSystem) -> PathBuf {
    let before = std::fs::read(src).unwrap();
    let t = template::import(src, dir, Some(name)).unwrap();
    assert_eq!(t.init, init);
    assert_eq!(std::fs::read(src).unwrap(), before, "the original changed");
    assert_eq!(t.template.boot_marker.as_deref(), Some(BOOT_FINISHED));
    fsck_clean(&t.template.image);
    let boot = stat(&t.template.image, "/etc/mln/boot");
    assert!(boot.contains("Mode:  0755"), "{boot}");
    assert!(boot.contains("User:     0   Group:     0"), "{boot}");
    assert!(read(&t.template.image, "/etc/mln/boot").contains("mln.config="));
    t.template.image
}

#[test]
fn a_systemd_image_gets_the_units_and_their_wants_links() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(
        dir.path(),
        "distro.ext4",
        &[
            ("sbin/init", "->/lib/systemd/systemd"),
            ("lib/systemd/systemd", "ELF"),
            ("lib/systemd/system/getty@.service", "[Unit]\n"),
            (
                "etc/systemd/system/multi-user.target.wants/ssh.service",
                "->/x",
            ),
        ],
    );
    let out = dir.path().join("templates");
    let img = imported(&src, &out, "distro.ext4", InitSystem::Systemd);
    let wants = "/etc/systemd/system/multi-user.target.wants";
    for unit in ["mln-config.service", "mln-startup.service"] {
        let link = Ext4Image::open(&img)
            .unwrap()
            .link_target(&format!("{wants}/{unit}"))
            .unwrap();
        assert_eq!(link, Some(format!("/etc/systemd/system/{unit}")));
        assert!(read(&img, &format!("/etc/systemd/system/{unit}")).contains("/etc/mln/boot"));
    }
    // What was there stays.
    assert!(stat(&img, &format!("{wants}/ssh.service")).contains("symlink"));
    assert!(read(
        &img,
        "/etc/systemd/system/getty@tty1.service.d/mln-uml.conf"
    )
    .contains("ConditionVirtualization=uml"));
    assert!(read(&img, "/etc/udev/rules.d/70-mln-vector-net.rules").contains("vec*"));
    let cad = Ext4Image::open(&img)
        .unwrap()
        .link_target("/etc/systemd/system/ctrl-alt-del.target")
        .unwrap();
    assert_eq!(cad.as_deref(), Some("/lib/systemd/system/poweroff.target"));

    // A second import under the same name is refused; another name works,
    // and installing the step twice leaves one of each.
    assert!(template::import(&src, &out, Some("distro.ext4")).is_err());
    let again = template::import(&img, &out, Some("again.ext4")).unwrap();
    assert_eq!(again.init, InitSystem::Systemd);
    fsck_clean(&again.template.image);
}

#[test]
fn sysvinit_and_busybox_images_get_inittab_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("templates");
    let sysv = image(
        dir.path(),
        "old-mln.ext3",
        &[
            ("sbin/init", "ELF"),
            (
                "etc/inittab",
                "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\nl0:0:wait:/etc/init.d/rc 0\n\
                 ca:12345:ctrlaltdel:/sbin/shutdown -t1 -a -r now\n",
            ),
        ],
    );
    let img = imported(&sysv, &out, "old-mln.ext3", InitSystem::Sysv);
    let tab = read(&img, "/etc/inittab");
    assert!(tab.contains("mln::sysinit:/etc/mln/boot start"), "{tab}");
    assert!(tab.contains("mlnh:06:wait:/etc/mln/boot shutdown"), "{tab}");
    assert!(!tab.contains("-r now"), "{tab}");

    // busybox with no inittab of its own: busybox's built-in table, with
    // the step's lines.
    let bb = image(
        dir.path(),
        "tiny.ext4",
        &[("sbin/init", "->/bin/busybox"), ("bin/busybox", "ELF")],
    );
    let img = imported(&bb, &out, "tiny.ext4", InitSystem::Busybox);
    let tab = read(&img, "/etc/inittab");
    assert!(tab.contains("::sysinit:/etc/mln/boot start\n"), "{tab}");
    assert!(tab.contains("::shutdown:/etc/mln/boot shutdown\n"), "{tab}");
    assert!(tab.contains("::ctrlaltdel:/sbin/poweroff\n"), "{tab}");

    // Every template of the folder, with size and checksum.
    let listed = template::list(&out).unwrap();
    let names: Vec<_> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["old-mln.ext3", "tiny.ext4"]);
    assert!(listed
        .iter()
        .all(|t| t.size == 32 << 20 && t.sha256.len() == 64));
}

#[test]
fn what_is_not_an_ext_image_or_has_no_known_init_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("templates");
    let raw = dir.path().join("disk.img");
    std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
    let err = template::import(&raw, &out, None).unwrap_err().to_string();
    assert!(err.contains("not an ext2/3/4"), "{err}");
    let bare = image(dir.path(), "bare.ext4", &[("etc/hostname", "x\n")]);
    let err = template::import(&bare, &out, None).unwrap_err().to_string();
    assert!(err.contains("cannot tell how"), "{err}");
    // Nothing is left behind by a failed import.
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn inspect_reads_the_marker_and_names_an_image_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let marked = image(
        dir.path(),
        "marked.ext4",
        &[("etc/mln/template", "boot_marker=mln: boot finished\n")],
    );
    let t = template::Template::inspect(&marked).unwrap();
    assert_eq!(t.boot_marker.as_deref(), Some(BOOT_FINISHED));
    let bare = image(dir.path(), "bare.ext4", &[("etc/hostname", "x\n")]);
    assert_eq!(
        template::Template::inspect(&bare).unwrap().boot_marker,
        None
    );
    // Not a file system image (a whole disk, a qcow2): no marker, no error.
    let raw = dir.path().join("disk.img");
    std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
    assert_eq!(template::Template::inspect(&raw).unwrap().boot_marker, None);
    // A superblock and nothing after it: debugfs cannot open it, and that
    // is said, not taken for an image without a marker.
    let cut = dir.path().join("cut.ext4");
    let head = std::fs::read(&marked).unwrap();
    std::fs::write(&cut, &head[..4096]).unwrap();
    let err = template::Template::inspect(&cut).unwrap_err().to_string();
    assert!(
        err.contains("cut.ext4") && err.contains("debugfs could not read"),
        "{err}"
    );
    // Nor can a file that is not there be inspected.
    let err = template::Template::inspect(dir.path().join("gone.ext4")).unwrap_err();
    assert!(err.to_string().contains("gone.ext4"), "{err}");
}
