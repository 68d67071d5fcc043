//! Copy-on-write overlays over a template: small, sparse, naming their
//! template, refusing to clobber a host's changes. (That UML boots from
//! them and writes only into them is shown by the uml_* tests.)

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use mln_core::disk::{CowFormat, Overlay};
use mln_core::Error;

fn template(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("template.img");
    let mut bytes = vec![0u8; 8 << 20];
    bytes[..12].copy_from_slice(b"template-MLN");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn uml_overlay_is_sparse_and_names_its_template() {
    let dir = tempfile::tempdir().unwrap();
    let t = template(dir.path());
    let cow = Overlay::create(&t, dir.path().join("host.cow"), CowFormat::Uml).unwrap();
    assert_eq!(cow.size, 8 << 20);
    assert_eq!(cow.template, t.canonicalize().unwrap());
    let meta = std::fs::metadata(&cow.path).unwrap();
    // Header + bitmap + the whole disk's address space...
    assert!(meta.len() > 8 << 20);
    // ...of which only the header takes room: never a full copy.
    assert!(meta.blocks() * 512 <= 64 * 1024, "{} blocks", meta.blocks());

    let reopened = Overlay::open(&cow.path).unwrap();
    assert_eq!(reopened, cow);
    assert_eq!(cow.disk_spec("ubda").path, cow.path);

    // A host's changes are never overwritten by a second create.
    assert!(Overlay::create(&t, &cow.path, CowFormat::Uml).is_err());

    // A template that changed under its overlays is reported.
    let f = std::fs::File::options().write(true).open(&t).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000))
        .unwrap();
    assert!(matches!(
        Overlay::open(&cow.path),
        Err(Error::Backend { .. })
    ));
    cow.remove().unwrap();
    assert!(t.exists());
}

#[test]
fn missing_template_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.ext4");
    for format in [CowFormat::Uml, CowFormat::Qcow2] {
        match Overlay::create(&missing, dir.path().join("host.cow"), format) {
            Err(Error::MissingFile { what, path }) => {
                assert_eq!(what, "template");
                assert_eq!(path, missing);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn qcow2_overlay_is_backed_by_the_template() {
    if Command::new("qemu-img").arg("--version").output().is_err() {
        return testkit::skip(
            "qcow2_overlay_is_backed_by_the_template",
            "qemu-img is not installed (Debian package qemu-utils)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let t = template(dir.path());
    let q = Overlay::create(&t, dir.path().join("host.qcow2"), CowFormat::Qcow2).unwrap();
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(&q.path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 8 << 20);
    assert_eq!(
        info["backing-filename"].as_str().unwrap(),
        t.canonicalize().unwrap().to_str().unwrap()
    );
    assert!(std::fs::metadata(&q.path).unwrap().len() < 1 << 20);
    assert!(Overlay::create(&t, &q.path, CowFormat::Qcow2).is_err());
}
