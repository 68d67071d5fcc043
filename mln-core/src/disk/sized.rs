//! Root disks larger than their template: the overlay's disk is bigger, and
//! the guest grows its file system to fill it at boot (`resize2fs` on its
//! mounted root, see [`crate::guest::GuestConfig::grow_root`]). No root
//! and no mounting on the managing machine.
//!
//! - qcow2: the overlay's virtual size is simply larger than its raw
//!   template (`qemu-img create -b TEMPLATE ... SIZE`, or `qemu-img
//!   resize` to grow it later); what lies beyond the template reads as
//!   zeros.
//! - UML: a COW file's disk is exactly as large as its backing file (the
//!   kernel refuses a header whose size differs from the backing file's).
//!   So a larger UML disk is a COW over a *padded base*: a sparse copy of
//!   the template with zeros up to the size, made once per template and
//!   size in the `bases` folder beside the overlays and shared by every
//!   overlay of that size. Its content is the template's bytes and zeros,
//!   the same on every server, so a host's disk still moves between
//!   servers as a small COW ([`super::transfer`]). Growing a COW later
//!   rewrites it over a larger base, keeping every sector the guest wrote.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::{
    read_uml_header, uml_layout, usable_template, write_uml_cow, CowFormat, Overlay, SECTOR,
};
use crate::bounded;
use crate::error::{Error, Result};

/// The folder of padded bases, beside the overlays.
pub const BASES: &str = "bases";

/// Held while padded bases are made, used or removed: the hosts of a
/// project are prepared on several threads at once, and one host's clean
/// up must not remove a base another is being made over.
static BASES_LOCK: Mutex<()> = Mutex::new(());

/// How long copying a template or resizing an overlay may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(1800);

impl Overlay {
    /// Create an overlay at `path` over `template` whose disk is `size`
    /// bytes, at least the template's size (the guest grows its file
    /// system into the rest). A UML overlay larger than its template reads
    /// from a padded base in the `bases` folder beside `path` (made here
    /// when missing); see the module docs.
    ///
    /// ```no_run
    /// use mln_core::disk::{CowFormat, Overlay};
    /// let disk = Overlay::create_sized("/t/debian-12.ext4", "/p/lab/disks/web.cow", CowFormat::Uml, 2 << 30)?;
    /// assert_eq!(disk.size, 2 << 30);
    /// # Ok::<(), mln_core::Error>(())
    /// ```
    pub fn create_sized(
        template: impl AsRef<Path>,
        path: impl AsRef<Path>,
        format: CowFormat,
        size: u64,
    ) -> Result<Self> {
        let (template, path) = (template.as_ref(), path.as_ref());
        let (template, meta) = usable_template(template)?;
        check_not_smaller(path, size, meta.len(), "its template")?;
        if size == meta.len() {
            return Overlay::create(&template, path, format);
        }
        match format {
            CowFormat::Uml => {
                let _held = BASES_LOCK.lock().unwrap_or_else(|p| p.into_inner());
                let base = padded_base(&template, &bases_dir(path)?, size)?;
                Overlay::create(&base, path, format)
            }
            CowFormat::Qcow2 => {
                if path.exists() {
                    return Err(super::exists_error(path));
                }
                bounded::checked_within(
                    Command::new("qemu-img")
                        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                        .arg(&template)
                        .arg(path)
                        .arg(size.to_string()),
                    "qemu-img create",
                    COPY_TIMEOUT,
                )?;
                Ok(Overlay {
                    path: path.to_path_buf(),
                    template,
                    format,
                    size,
                })
            }
        }
    }

    /// The overlay at `path` in `format`, read back: a UML COW's header,
    /// or `qemu-img info` of a qcow2 (its backing file and virtual size).
    pub fn open_as(path: impl AsRef<Path>, format: CowFormat) -> Result<Self> {
        let path = path.as_ref();
        match format {
            CowFormat::Uml => Overlay::open(path),
            CowFormat::Qcow2 => {
                let info = bounded::checked_within(
                    Command::new("qemu-img")
                        .args(["info", "-U", "--output=json"])
                        .arg(path),
                    "qemu-img info",
                    Duration::from_secs(60),
                )?;
                let v: serde_json::Value =
                    serde_json::from_str(&info).map_err(|e| Error::DiskSize {
                        path: path.to_path_buf(),
                        reason: format!("qemu-img info answered no JSON: {e}"),
                    })?;
                let template = v["full-backing-filename"]
                    .as_str()
                    .or_else(|| v["backing-filename"].as_str())
                    .map(PathBuf::from)
                    .unwrap_or_default();
                Ok(Overlay {
                    path: path.to_path_buf(),
                    template,
                    format,
                    size: v["virtual-size"].as_u64().unwrap_or_default(),
                })
            }
        }
    }

    /// Grow the overlay's disk to `size` bytes; `template` is the template
    /// it was made over (for a UML COW, the larger padded base is made
    /// from it). Every sector the guest wrote is kept. The guest must not
    /// run. Growing to the size it has is nothing to do; shrinking is
    /// refused (a smaller disk is a new one).
    pub fn grow(&self, template: impl AsRef<Path>, size: u64) -> Result<Overlay> {
        check_not_smaller(&self.path, size, self.size, "the disk now")?;
        if size == self.size {
            return Ok(self.clone());
        }
        match self.format {
            CowFormat::Qcow2 => {
                bounded::checked_within(
                    Command::new("qemu-img")
                        .args(["resize", "-q", "-f", "qcow2"])
                        .arg(&self.path)
                        .arg(size.to_string()),
                    "qemu-img resize",
                    COPY_TIMEOUT,
                )?;
                Ok(Overlay {
                    size,
                    ..self.clone()
                })
            }
            CowFormat::Uml => {
                let (template, _) = usable_template(template.as_ref())?;
                let _held = BASES_LOCK.lock().unwrap_or_else(|p| p.into_inner());
                let base = padded_base(&template, &bases_dir(&self.path)?, size)?;
                rewrite_cow(&self.path, &base, size)?;
                Overlay::open(&self.path)
            }
        }
    }
}

/// Remove the padded bases in the `bases` folder of `dir` (a folder of
/// UML overlays) that no overlay there reads from any more.
pub fn remove_unused_bases(dir: &Path) -> Result<()> {
    let _held = BASES_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let bases = dir.join(BASES);
    let Ok(entries) = fs::read_dir(&bases) else {
        return Ok(());
    };
    let mut used = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
        if let Ok(header) = read_uml_header(&e.path()) {
            used.push(header.template);
        }
    }
    for e in entries.flatten() {
        let p = e.path();
        let canonical = p.canonicalize().unwrap_or_else(|_| p.clone());
        if !used.iter().any(|u| *u == canonical || *u == p) {
            fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let _ = fs::remove_dir(&bases);
    Ok(())
}

fn check_not_smaller(path: &Path, size: u64, have: u64, what: &str) -> Result<()> {
    if size < have {
        return Err(Error::DiskSize {
            path: path.to_path_buf(),
            reason: format!(
                "{size} bytes asked for, smaller than {what} ({have} bytes): a disk only grows \
                 (a smaller one is made anew)"
            ),
        });
    }
    Ok(())
}

fn bases_dir(overlay: &Path) -> Result<PathBuf> {
    let parent = overlay.parent().ok_or_else(|| Error::UnusablePath {
        path: overlay.to_path_buf(),
        what: "overlay",
        reason: "it has no folder",
    })?;
    Ok(parent.join(BASES))
}

/// The padded base of `template` for disks of `size` bytes in `dir`:
/// the template's bytes, then zeros; read-only; named after the template,
/// its modification time and the size, so a replaced template never
/// reuses a stale base. Made atomically when missing.
fn padded_base(template: &Path, dir: &Path, size: u64) -> Result<PathBuf> {
    let meta = fs::metadata(template).map_err(|e| Error::io(template, e))?;
    let name = template
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = dir.join(format!("{name}.{}.{size}", meta.mtime()));
    if fs::metadata(&base).is_ok_and(|m| m.len() == size) {
        return Ok(base);
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(".{name}.{size}.part-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let made = (|| {
        bounded::checked_within(
            Command::new("cp")
                .arg("--sparse=always")
                .arg("--")
                .arg(template)
                .arg(&tmp),
            "copying the template",
            COPY_TIMEOUT,
        )?;
        let f = OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        f.set_len(size).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))
            .map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &base).map_err(|e| Error::io(&base, e))
    })();
    if made.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    made.map(|()| base)
}

/// Rewrite the UML COW at `path` over `base` (`size` bytes): a new header
/// and bitmap, the written sectors copied to where the larger layout puts
/// them, then the new file renamed over the old one.
fn rewrite_cow(path: &Path, base: &Path, size: u64) -> Result<()> {
    let old = read_uml_header(path)?;
    let base_meta = fs::metadata(base).map_err(|e| Error::io(base, e))?;
    let tmp = path.with_extension("cow-grow");
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        write_uml_cow(&tmp, base, size, base_meta.mtime())?;
        let src = File::open(path).map_err(|e| Error::io(path, e))?;
        let dst = OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        let (old_bitmap, old_data) = uml_layout(old.size);
        let (new_bitmap, new_data) = uml_layout(size);
        let bitmap_len = old.size.div_ceil(SECTOR).div_ceil(8) as usize;
        let mut bitmap = vec![0u8; bitmap_len];
        src.read_exact_at(&mut bitmap, old_bitmap)
            .map_err(|e| Error::io(path, e))?;
        dst.write_all_at(&bitmap, new_bitmap)
            .map_err(|e| Error::io(&tmp, e))?;
        // Sector i is bit i % 8 of byte i / 8; copy runs of set bits.
        let sectors = old.size.div_ceil(SECTOR);
        let set = |i: u64| bitmap[(i / 8) as usize] & (1 << (i % 8)) != 0;
        let mut buf = Vec::new();
        let mut i = 0;
        while i < sectors {
            if !set(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < sectors && set(i) && i - start < 2048 {
                i += 1;
            }
            let len = ((i - start) * SECTOR) as usize;
            buf.resize(len, 0);
            src.read_exact_at(&mut buf, old_data + start * SECTOR)
                .map_err(|e| Error::io(path, e))?;
            dst.write_all_at(&buf, new_data + start * SECTOR)
                .map_err(|e| Error::io(&tmp, e))?;
        }
        dst.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the guest reads at sector `i` of a UML COW: the COW's sector
    /// when its bit is set, else the backing file's.
    fn read_sector(cow: &Path, i: u64) -> Vec<u8> {
        let h = read_uml_header(cow).unwrap();
        let (bitmap, data) = uml_layout(h.size);
        let f = File::open(cow).unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, bitmap + i / 8).unwrap();
        let mut out = vec![0u8; SECTOR as usize];
        if byte[0] & (1 << (i % 8)) != 0 {
            f.read_exact_at(&mut out, data + i * SECTOR).unwrap();
        } else {
            File::open(&h.template)
                .unwrap()
                .read_exact_at(&mut out, i * SECTOR)
                .unwrap();
        }
        out
    }

    /// Write `fill` into sector `i` the way UML does.
    fn write_sector(cow: &Path, i: u64, fill: u8) {
        let h = read_uml_header(cow).unwrap();
        let (bitmap, data) = uml_layout(h.size);
        let f = OpenOptions::new().read(true).write(true).open(cow).unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, bitmap + i / 8).unwrap();
        byte[0] |= 1 << (i % 8);
        f.write_all_at(&byte, bitmap + i / 8).unwrap();
        f.write_all_at(&vec![fill; SECTOR as usize], data + i * SECTOR)
            .unwrap();
    }

    #[test]
    fn a_uml_disk_grows_over_a_padded_base_keeping_what_the_guest_wrote() {
        let dir = std::env::temp_dir().join(format!("mln-sized-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let template = dir.join("t.ext4");
        let mut bytes = vec![7u8; 1 << 20];
        bytes[..4].copy_from_slice(b"TMPL");
        fs::write(&template, &bytes).unwrap();
        let cow = dir.join("host.cow");

        let disk = Overlay::create_sized(&template, &cow, CowFormat::Uml, 4 << 20).unwrap();
        assert_eq!(disk.size, 4 << 20);
        assert!(disk.template.starts_with(dir.join(BASES)));
        assert_eq!(fs::metadata(&disk.template).unwrap().len(), 4 << 20);
        assert_eq!(&read_sector(&cow, 0)[..4], b"TMPL");
        assert_eq!(read_sector(&cow, 5000), vec![0u8; 512]);
        write_sector(&cow, 3, 0xaa);
        write_sector(&cow, 4, 0xbb);
        write_sector(&cow, 8000, 0xcc);

        let grown = disk.grow(&template, 64 << 20).unwrap();
        assert_eq!(grown.size, 64 << 20);
        assert_eq!(Overlay::open(&cow).unwrap(), grown);
        assert_eq!(read_sector(&cow, 3), vec![0xaa; 512]);
        assert_eq!(read_sector(&cow, 4), vec![0xbb; 512]);
        assert_eq!(read_sector(&cow, 8000), vec![0xcc; 512]);
        assert_eq!(&read_sector(&cow, 0)[..4], b"TMPL");
        assert_eq!(read_sector(&cow, 100_000), vec![0u8; 512]);
        assert!(matches!(
            grown.grow(&template, 8 << 20),
            Err(Error::DiskSize { .. })
        ));
        assert!(matches!(
            Overlay::create_sized(&template, dir.join("b.cow"), CowFormat::Uml, 1000),
            Err(Error::DiskSize { .. })
        ));

        // The smaller base is no one's now: it goes; the one in use stays.
        remove_unused_bases(&dir).unwrap();
        let bases: Vec<_> = fs::read_dir(dir.join(BASES)).unwrap().collect();
        assert_eq!(bases.len(), 1);
        fs::remove_file(&cow).unwrap();
        remove_unused_bases(&dir).unwrap();
        assert!(!dir.join(BASES).exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
