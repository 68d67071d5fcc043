//! Per-host disks: a copy-on-write overlay over a shared, never-written
//! template, so a host's disk costs only what the host changes.
//!
//! Two overlay formats:
//! - [`CowFormat::Uml`]: UML's own COW file (version 3), written here: a
//!   header naming the template, a bitmap of changed sectors, then the
//!   changed sectors; sparse, so it starts at a few KiB. Attach it alone
//!   (`ubda=host.cow`): UML reads the template's path from the header.
//! - [`CowFormat::Qcow2`]: a qcow2 overlay made by `qemu-img create -b`
//!   (for Xen's qdisk backend and QEMU).
//!
//! The overlay records the template's absolute path (and, for UML, its
//! modification time): the template must stay where it is and unchanged for
//! as long as overlays over it exist. A host that moves to another server
//! takes its overlay along ([`transfer`]); [`Overlay::rebase`] then points
//! it at that server's copy of the template.
//!
//! ```no_run
//! use mln_core::disk::{CowFormat, Overlay};
//! let disk = Overlay::create("/var/lib/mln/t/busybox.ext4", "/var/lib/mln/lab/alice.cow", CowFormat::Uml)?;
//! let spec = disk.disk_spec("ubda");
//! # Ok::<(), mln_core::Error>(())
//! ```

mod sized;
mod swap;
pub mod transfer;

pub use sized::{remove_unused_bases, BASES};
pub use swap::make_swap;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::domain::DiskSpec;
use crate::error::{Error, Result};

const COW_MAGIC: u32 = 0x4f4f_4f4d;
const COW_VERSION: u32 = 3;
const PATH_LEN: usize = 4096;
/// magic, version, mtime (u32 each), size (u64), sectorsize, alignment,
/// cow_format (u32 each), backing file path.
const HEADER_LEN: usize = 4 + 4 + 4 + 8 + 4 + 4 + 4 + PATH_LEN;
const SECTOR: u64 = 512;
const ALIGN: u64 = 4096;

/// The format of a copy-on-write overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CowFormat {
    /// UML's COW file (version 3, bitmap format).
    Uml,
    /// qcow2 over a raw template, made with `qemu-img`.
    Qcow2,
}

/// A host's copy-on-write disk over a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// The overlay file.
    pub path: PathBuf,
    /// The template it reads unchanged blocks from (absolute).
    pub template: PathBuf,
    /// Its format.
    pub format: CowFormat,
    /// The disk's size as the guest sees it, bytes (the template's size).
    pub size: u64,
}

impl Overlay {
    /// Create an overlay at `path` over `template`. Fails if `path` already
    /// exists (an existing overlay holds a host's changes: use
    /// [`Overlay::open`]), or if the template is missing.
    pub fn create(
        template: impl AsRef<Path>,
        path: impl AsRef<Path>,
        format: CowFormat,
    ) -> Result<Self> {
        let (template, path) = (template.as_ref(), path.as_ref());
        let (template, meta) = usable_template(template)?;
        match format {
            CowFormat::Uml => write_uml_cow(path, &template, meta.len(), meta.mtime())?,
            CowFormat::Qcow2 => {
                if path.exists() {
                    return Err(exists_error(path));
                }
                crate::template::run(
                    Command::new("qemu-img")
                        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                        .arg(&template)
                        .arg(path),
                )?;
            }
        }
        Ok(Overlay {
            path: path.to_path_buf(),
            template,
            format,
            size: meta.len(),
        })
    }

    /// Read an existing UML COW overlay back (template and size from its
    /// header), checking that the template is still there and unchanged.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let header = read_uml_header(path)?;
        let meta = fs::metadata(&header.template).map_err(|_| Error::MissingFile {
            what: "template",
            path: header.template.clone(),
        })?;
        if meta.mtime() as u32 != header.mtime {
            return Err(Error::Backend {
                what: path.display().to_string(),
                message: format!(
                    "template {} changed since the overlay was made",
                    header.template.display()
                ),
            });
        }
        Ok(Overlay {
            path: path.to_path_buf(),
            template: header.template,
            format: CowFormat::Uml,
            size: header.size,
        })
    }

    /// Point the UML COW overlay at `path` to `template`, another copy of
    /// the template it was made over (the one on this server, after the
    /// overlay was moved here with [`transfer`]); returns it opened.
    ///
    /// Rewrites the template's path and modification time in the header, in
    /// place (UML refuses a template whose time differs from the recorded
    /// one). Refuses, leaving the overlay as it was, a template whose size
    /// differs from the recorded one: it cannot be the same image.
    ///
    /// ```no_run
    /// use mln_core::disk::Overlay;
    /// let disk = Overlay::rebase("/srv/mln/lab/alice.cow", "/srv/mln/templates/busybox.ext4")?;
    /// assert_eq!(disk.format, mln_core::disk::CowFormat::Uml);
    /// # Ok::<(), mln_core::Error>(())
    /// ```
    pub fn rebase(path: impl AsRef<Path>, template: impl AsRef<Path>) -> Result<Self> {
        let (path, template) = (path.as_ref(), template.as_ref());
        let header = read_uml_header(path)?;
        let (template, meta) = usable_template(template)?;
        if meta.len() != header.size {
            return Err(Error::Backend {
                what: path.display().to_string(),
                message: format!(
                    "template {} has {} bytes, the overlay was made over {} bytes",
                    template.display(),
                    meta.len(),
                    header.size
                ),
            });
        }
        let backing = template.as_os_str().as_encoded_bytes();
        if backing.len() >= PATH_LEN {
            return Err(Error::UnusablePath {
                path: template.clone(),
                what: "template of a UML COW file",
                reason: "longer than 4095 bytes",
            });
        }
        let mut name = backing.to_vec();
        name.resize(PATH_LEN, 0);
        let mut f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        // mtime at byte 8, the path at byte 32 (see HEADER_LEN).
        f.seek(SeekFrom::Start(8))
            .and_then(|_| f.write_all(&(meta.mtime() as u32).to_be_bytes()))
            .and_then(|()| f.seek(SeekFrom::Start(32)))
            .and_then(|_| f.write_all(&name))
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(path, e))?;
        Self::open(path)
    }

    /// The disk as a domain's disk at `target` (`ubda`, `xvda`, ...).
    pub fn disk_spec(&self, target: &str) -> DiskSpec {
        DiskSpec {
            path: self.path.clone(),
            target: target.to_string(),
            readonly: false,
        }
    }

    /// Delete the overlay (the host's changes); the template stays.
    pub fn remove(self) -> Result<()> {
        fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

fn exists_error(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "an overlay is already there (it holds a host's changes)",
        ),
    )
}

/// Where the bitmap and the data start in a UML COW file over `size` bytes.
fn uml_layout(size: u64) -> (u64, u64) {
    let bitmap_offset = (HEADER_LEN as u64).div_ceil(ALIGN) * ALIGN;
    let sectors = size.div_ceil(SECTOR);
    let bitmap_len = sectors.div_ceil(8);
    let data_offset = (bitmap_offset + bitmap_len).div_ceil(ALIGN) * ALIGN;
    (bitmap_offset, data_offset)
}

fn write_uml_cow(path: &Path, template: &Path, size: u64, mtime: i64) -> Result<()> {
    let backing = template.as_os_str().as_encoded_bytes();
    if backing.len() >= PATH_LEN {
        return Err(Error::UnusablePath {
            path: template.to_path_buf(),
            what: "template of a UML COW file",
            reason: "longer than 4095 bytes",
        });
    }
    let mut h = Vec::with_capacity(HEADER_LEN);
    // UML stores the header in network byte order.
    h.extend_from_slice(&COW_MAGIC.to_be_bytes());
    h.extend_from_slice(&COW_VERSION.to_be_bytes());
    h.extend_from_slice(&(mtime as u32).to_be_bytes());
    h.extend_from_slice(&size.to_be_bytes());
    h.extend_from_slice(&(SECTOR as u32).to_be_bytes());
    h.extend_from_slice(&(ALIGN as u32).to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(backing);
    h.resize(HEADER_LEN, 0);
    let (_, data_offset) = uml_layout(size);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => exists_error(path),
            _ => Error::io(path, e),
        })?;
    f.write_all(&h).map_err(|e| Error::io(path, e))?;
    // The bitmap (all clear: every sector comes from the template) and the
    // data area stay holes in a sparse file.
    f.set_len(data_offset + size)
        .map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

struct UmlHeader {
    template: PathBuf,
    mtime: u32,
    size: u64,
}

fn read_uml_header(path: &Path) -> Result<UmlHeader> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = vec![0u8; HEADER_LEN];
    f.read_exact(&mut h).map_err(|e| Error::io(path, e))?;
    let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if u32_at(0) != COW_MAGIC || u32_at(4) != COW_VERSION {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a UML COW file (version 3)",
            ),
        ));
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&h[12..20]);
    let name = &h[32..];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let template = PathBuf::from(String::from_utf8_lossy(&name[..end]).into_owned());
    Ok(UmlHeader {
        template,
        mtime: u32_at(8),
        size: u64::from_be_bytes(size),
    })
}

/// `template` as an absolute path to a regular file, with its metadata;
/// a clear error naming it otherwise.
fn usable_template(template: &Path) -> Result<(PathBuf, fs::Metadata)> {
    if !template.exists() {
        return Err(Error::MissingFile {
            what: "template",
            path: template.to_path_buf(),
        });
    }
    let template = template
        .canonicalize()
        .map_err(|e| Error::io(template, e))?;
    let meta = fs::metadata(&template).map_err(|e| Error::io(&template, e))?;
    if !meta.is_file() {
        return Err(Error::UnusablePath {
            path: template,
            what: "template",
            reason: "not a regular file",
        });
    }
    Ok((template, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_what_uml_writes() {
        // Observed in a COW file linux.uml 6.1 made over a 16 MiB image:
        // bitmap at 8192, data at 12288.
        assert_eq!(uml_layout(16 << 20), (8192, 12288));
        assert_eq!(HEADER_LEN, 4128);
    }
}
