//! Moving a stopped UML host between "servers" (two folders, each with its
//! own copy of the template): its COW disk and configuration disk travel as
//! one checksummed, compressed stream through a pipe, the COW is rebased on
//! the new server's template, and the host boots there with its changes.
//! Damaged streams are refused, naming the file, and leave nothing behind.

use std::fs;
use std::io::{BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use mln_core::disk::transfer::{self, Manifest};
use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::GuestConfig;
use mln_core::template::{Template, BOOT_FINISHED};
use mln_core::uml::{self, Uml};
use mln_core::{Error, Hypervisor};
use sha2::{Digest, Sha256};

fn template() -> Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mln-templates");
        Template::default_in(&base).expect("busybox template")
    })
    .clone()
}

/// A COW over the template and a configuration disk whose startup lines
/// report what an earlier boot left on the root disk, then leave a mark.
fn host_disks(dir: &Path, name: &str) -> (Overlay, PathBuf) {
    let cow = Overlay::create(
        &template().image,
        dir.join(format!("{name}.cow")),
        CowFormat::Uml,
    )
    .unwrap();
    let mut cfg = GuestConfig::new(name);
    cfg.startup = vec![
        "echo MLN-FOUND-$(cat /root/mark 2>/dev/null || echo nothing)".into(),
        "echo written-on-server-a > /root/mark; sync".into(),
    ];
    let config = dir.join(format!("{name}.config"));
    cfg.write_disk(&config).unwrap();
    (cow, config)
}

/// Boot `name` from `cow` and `config` under `uml`; its console once booted.
fn boot(uml: &Uml, name: &str, cow: &Overlay, config: &Path) -> String {
    let spec = uml::host_spec(name, 64 << 20, cow, config, Vec::new(), "quiet");
    uml.create(&spec).unwrap();
    uml.start(name).unwrap();
    uml.wait_console(name, BOOT_FINISHED, Duration::from_secs(90))
        .unwrap()
}

/// Export `files` into one end of a socket pair from another thread while
/// this one imports from the other end into `dest`: a real stream, never
/// whole in memory.
fn through_a_pipe(files: &[PathBuf], dest: &Path) -> (Manifest, Manifest) {
    let (tx, rx) = UnixStream::pair().unwrap();
    let files = files.to_vec();
    let sender = std::thread::spawn(move || {
        let sent = transfer::export(&files, &tx);
        drop(tx);
        sent
    });
    let got = transfer::import(&mut BufReader::new(rx), dest).unwrap();
    (sender.join().unwrap().unwrap(), got)
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn same_content(a: &Path, b: &Path) -> bool {
    fs::read(a).unwrap() == fs::read(b).unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_stopped_host_moves_to_another_server_and_boots_there_with_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = testkit::KillUnder(dir.path().to_path_buf());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(b.join("templates")).unwrap();

    // On server A: boot once, so the COW holds the guest's own writes.
    let (cow, config) = host_disks(&a, "mover");
    let uml_a = Uml::new(a.join("uml")).unwrap();
    let log = boot(&uml_a, "mover", &cow, &config);
    assert!(log.contains("MLN-FOUND-nothing"), "{log}");
    uml_a.shutdown("mover", Duration::from_secs(30)).unwrap();

    // Through a pipe to server B.
    let incoming = b.join("hosts");
    fs::create_dir_all(&incoming).unwrap();
    let files = [cow.path.clone(), config.clone()];
    let (sent, got) = through_a_pipe(&files, &incoming);
    assert_eq!(sent, got);
    assert_eq!(names_in(&incoming), ["mover.config", "mover.cow"]);
    for (entry, original) in got.files.iter().zip(&files) {
        let moved = incoming.join(&entry.name);
        assert_eq!(entry.sha256, sha256sum(original), "{}", entry.name);
        assert_eq!(entry.size, fs::metadata(original).unwrap().len());
        assert!(same_content(original, &moved), "{}", entry.name);
    }
    // The COW stays sparse: about what the original has allocated.
    let moved_cow = incoming.join("mover.cow");
    let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    assert!(
        allocated(&moved_cow) <= allocated(&cow.path) + (1 << 20),
        "moved COW allocates {} bytes, the original {}",
        allocated(&moved_cow),
        allocated(&cow.path)
    );

    // Server B's own copy of the template (another path, another mtime).
    let template_b = b.join("templates").join("busybox.ext4");
    fs::copy(&template().image, &template_b).unwrap();
    // Not the same image if its size differs: refused, the COW untouched.
    let wrong = b.join("templates").join("other.ext4");
    fs::write(&wrong, b"not an image").unwrap();
    let before = fs::read(&moved_cow).unwrap();
    assert!(matches!(
        Overlay::rebase(&moved_cow, &wrong),
        Err(Error::Backend { .. })
    ));
    assert!(fs::read(&moved_cow).unwrap() == before);
    let rebased = Overlay::rebase(&moved_cow, &template_b).unwrap();
    assert_eq!(rebased.template, template_b.canonicalize().unwrap());
    assert_eq!(Overlay::open(&moved_cow).unwrap(), rebased);

    // It boots on B with what it wrote on A, reading B's template.
    let uml_b = Uml::new(b.join("uml")).unwrap();
    let log = boot(&uml_b, "mover", &rebased, &incoming.join("mover.config"));
    assert!(log.contains("MLN-FOUND-written-on-server-a"), "{log}");
    let open = open_files(&b);
    assert!(open.contains(&rebased.template), "{open:?}");
    let template_a = template().image.canonicalize().unwrap();
    assert!(!open.contains(&template_a), "{open:?}");
    uml_b.destroy("mover").unwrap();
}

/// The files that processes running under `dir` hold open.
fn open_files(dir: &Path) -> Vec<PathBuf> {
    testkit::processes_under(dir)
        .into_iter()
        .filter_map(|pid| fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flat_map(|fds| fds.flatten().filter_map(|fd| fs::read_link(fd.path()).ok()))
        .collect()
}

/// A fresh COW over the template and a config disk, exported to memory.
fn exported(dir: &Path) -> (Vec<u8>, Manifest) {
    let (cow, config) = host_disks(dir, "h");
    let mut stream = Vec::new();
    let sent = transfer::export(&[cow.path, config], &mut stream).unwrap();
    (stream, sent)
}

#[test]
fn a_corrupted_stream_is_refused_naming_the_file_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (stream, sent) = exported(dir.path());
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let body = stream
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    // A byte flipped anywhere in the compressed part. Most flips change
    // what the stream decodes to, and are refused naming the file being
    // read (or the stream, past the last file). Some cannot: a match's
    // distance inside a run of zeros copies the same zeros whatever it is.
    // Whatever a flip does, what lands is exactly what was sent.
    let step = ((stream.len() - body) / 40).max(1);
    let mut refused = 0;
    let mut tried = 0;
    for at in (body + 12..stream.len()).step_by(step) {
        tried += 1;
        let mut bad = stream.clone();
        bad[at] ^= 0x55;
        match transfer::import(&mut &bad[..], &dest) {
            Err(err) => {
                refused += 1;
                let text = err.to_string();
                assert!(
                    ["h.cow", "h.config", "disk stream"]
                        .iter()
                        .any(|n| text.contains(n)),
                    "byte {at}: {text}"
                );
                assert!(
                    names_in(&dest).is_empty(),
                    "byte {at}: {:?}",
                    names_in(&dest)
                );
            }
            Ok(got) => {
                assert_eq!(got, sent, "byte {at}");
                for f in &sent.files {
                    let path = dest.join(&f.name);
                    let sum: String = Sha256::digest(fs::read(&path).unwrap())
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    assert_eq!(sum, f.sha256, "byte {at}: {} landed changed", f.name);
                    fs::remove_file(path).unwrap();
                }
            }
        }
    }
    assert!(
        refused * 2 > tried,
        "only {refused} of {tried} flipped bytes were noticed"
    );
    // Content that does not match its checksum: that file is named.
    let wrong = sent.files[1]
        .sha256
        .replace(&sent.files[1].sha256[..4], "0000");
    let bad = String::from_utf8_lossy(&stream[..body]).replace(&sent.files[1].sha256, &wrong);
    let mut bad = bad.into_bytes();
    bad.extend_from_slice(&stream[body..]);
    let err = transfer::import(&mut &bad[..], &dest).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("h.config") && text.contains("SHA-256 mismatch"),
        "{text}"
    );
    assert!(names_in(&dest).is_empty());
    // The stream itself is fine, and lands.
    transfer::import(&mut &stream[..], &dest).unwrap();
    assert_eq!(names_in(&dest), ["h.config", "h.cow"]);
}

#[test]
fn a_truncated_stream_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (stream, _) = exported(dir.path());
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    for len in [5, 40, stream.len() / 2, stream.len() - 9, stream.len() - 1] {
        let err = transfer::import(&mut &stream[..len], &dest).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "cut at {len}: {err}");
        assert!(names_in(&dest).is_empty(), "cut at {len}");
    }
}

#[test]
fn an_existing_file_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (stream, _) = exported(dir.path());
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("h.cow"), b"another host's disk").unwrap();
    let err = transfer::import(&mut &stream[..], &dest).unwrap_err();
    assert!(err.to_string().contains("h.cow"), "{err}");
    assert_eq!(
        fs::read(dest.join("h.cow")).unwrap(),
        b"another host's disk"
    );
    assert_eq!(names_in(&dest), ["h.cow"]);
}

/// A stream that ends, then more data on the same channel: import reads
/// exactly its stream and leaves the rest.
#[test]
fn import_stops_at_the_end_of_its_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (mut stream, _) = exported(dir.path());
    stream.write_all(b"{\"next\":\"request\"}\n").unwrap();
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let mut input = BufReader::new(&stream[..]);
    transfer::import(&mut input, &dest).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut input, &mut rest).unwrap();
    assert_eq!(rest, "{\"next\":\"request\"}\n");
}

/// A sparse file of a gibibyte with a few blocks of data: the stream is
/// small and the copy is sparse too.
#[test]
fn a_large_sparse_file_travels_small_and_stays_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.cow");
    let f = fs::File::create(&src).unwrap();
    f.set_len(1 << 30).unwrap();
    for at in [0u64, 12345 << 10, (1 << 30) - 4096] {
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xab; 4096], at).unwrap();
    }
    drop(f);
    let mut stream = Vec::new();
    let sent = transfer::export(&[&src], &mut stream).unwrap();
    assert!(stream.len() < 64 << 10, "stream of {} bytes", stream.len());
    assert_eq!(sent.files[0].sha256, sha256sum(&src));
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    transfer::import(&mut &stream[..], &dest).unwrap();
    let copy = dest.join("big.cow");
    assert_eq!(fs::metadata(&copy).unwrap().len(), 1 << 30);
    assert!(fs::metadata(&copy).unwrap().blocks() * 512 < 1 << 20);
    assert_eq!(sha256sum(&copy), sent.files[0].sha256);
}
