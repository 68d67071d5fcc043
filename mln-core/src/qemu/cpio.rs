//! A `newc` cpio writer, gzip-compressed: what the Linux kernel unpacks as
//! an initramfs. Entries are added one by one (folders, files from memory
//! or from disk, symbolic links, character devices), so no `cpio` program
//! and no staging folder with root-owned device nodes is needed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

const DIR: u32 = 0o040_000;
const FILE: u32 = 0o100_000;
const SYMLINK: u32 = 0o120_000;
const CHAR: u32 = 0o020_000;

/// A gzip-compressed newc archive being written.
pub(super) struct CpioWriter {
    out: GzEncoder<BufWriter<File>>,
    ino: u32,
    written: u64,
}

impl CpioWriter {
    /// Start an archive at `path` (replaced if present).
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(CpioWriter {
            out: GzEncoder::new(BufWriter::new(File::create(path)?), Compression::default()),
            ino: 0,
            written: 0,
        })
    }

    /// A folder (parents first: the archive is unpacked in order).
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, DIR | 0o755, &[], (0, 0))
    }

    /// A file with `data` and permission bits `mode`.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, FILE | (mode & 0o7777), data, (0, 0))
    }

    /// A symbolic link `name` pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, SYMLINK | 0o777, target.as_bytes(), (0, 0))
    }

    /// A character device node.
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, CHAR | 0o600, &[], (major, minor))
    }

    /// The trailer, and the end of the gzip stream.
    pub fn finish(mut self) -> io::Result<()> {
        self.entry("TRAILER!!!", 0, &[], (0, 0))?;
        let mut out = self.out.finish()?;
        out.flush()
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> io::Result<()> {
        self.ino += 1;
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::other(format!("{name}: too large for cpio newc")))?;
        let nlink = if mode & 0o170_000 == DIR { 2 } else { 1 };
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            if name == "TRAILER!!!" { 0 } else { self.ino },
            mode,
            0, // uid: root
            0, // gid: root
            nlink,
            0, // mtime: fixed, so the same inputs give the same archive
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.write(&[0u8; 3][..pad])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_reads_the_archive_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cpio.gz");
        let mut w = CpioWriter::create(&path).unwrap();
        w.dir("bin").unwrap();
        w.file("bin/hello", 0o755, b"hi\n").unwrap();
        w.symlink("bin/sh", "hello").unwrap();
        w.dir("dev").unwrap();
        w.char_device("dev/console", 5, 1).unwrap();
        w.finish().unwrap();
        let gz = std::fs::read(&path).unwrap();
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert!(raw.starts_with(b"070701"));
        assert_eq!(raw.len() % 4, 0);
        let cpio = std::path::Path::new("/usr/bin/cpio");
        if !cpio.exists() {
            return;
        }
        let raw_path = dir.path().join("a.cpio");
        std::fs::write(&raw_path, &raw).unwrap();
        let out = std::process::Command::new(cpio)
            .args(["-t", "-v", "-F"])
            .arg(&raw_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        for want in ["bin/hello", "bin/sh -> hello", "dev/console"] {
            assert!(listed.contains(want), "{want} not in {listed}");
        }
        assert!(listed.contains("crw-------"), "{listed}");
    }
}
