//! A `newc` cpio writer: enough for an initramfs of folders, regular files
//! and a few device nodes, without running `cpio` through a shell.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A character device node to add (no root needed to describe one).
pub struct CharDev {
    /// Path inside the archive, e.g. `dev/console`.
    pub name: &'static str,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

struct Writer<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        self.ino += 1;
        let size = u32::try_from(size)
            .map_err(|_| io::Error::other(format!("{name}: too large for cpio newc")))?;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let h = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.written += h.len() as u64 + name.len() as u64 + 1;
        self.pad()
    }

    fn tree(&mut self, root: &Path, rel: &str) -> io::Result<()> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut entries: Vec<_> = fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let fname = e.file_name();
            let fname = fname
                .to_str()
                .ok_or_else(|| io::Error::other(format!("{}: non-UTF-8 name", dir.display())))?;
            let name = if rel.is_empty() {
                fname.to_string()
            } else {
                format!("{rel}/{fname}")
            };
            let meta = fs::metadata(e.path())?; // follows symlinks: copies their target
            let perm = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                self.header(&name, 0o040000 | perm, 0, (0, 0))?;
                self.tree(root, &name)?;
            } else if meta.is_file() {
                self.header(&name, 0o100000 | perm, meta.len(), (0, 0))?;
                let n = io::copy(&mut File::open(e.path())?, &mut self.out)?;
                if n != meta.len() {
                    return Err(io::Error::other(format!("{name}: changed while archiving")));
                }
                self.written += n;
                self.pad()?;
            }
        }
        Ok(())
    }
}

/// Write every folder and file under `root` (symlinks followed) plus `devs`
/// into a newc archive at `dest`.
pub fn write_tree(root: &Path, devs: &[CharDev], dest: &Path) -> io::Result<()> {
    let mut w = Writer {
        out: BufWriter::new(File::create(dest)?),
        ino: 0,
        written: 0,
    };
    w.tree(root, "")?;
    for d in devs {
        w.header(d.name, 0o020000 | 0o600, 0, (d.major, d.minor))?;
    }
    w.header("TRAILER!!!", 0, 0, (0, 0))?;
    // Round the archive up to a 512-byte block, as cpio(1) does.
    let pad = (512 - (w.written % 512) as usize) % 512;
    w.out.write_all(&vec![0u8; pad])?;
    w.out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lists_folders_files_and_devices_in_newc_format() {
        let dir = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("tree/bin")).unwrap();
        fs::write(dir.join("tree/bin/hello"), b"hi\n").unwrap();
        let dest = dir.join("out.cpio");
        let devs = [CharDev {
            name: "dev/console",
            major: 5,
            minor: 1,
        }];
        write_tree(&dir.join("tree"), &devs, &dest).unwrap();
        let bytes = fs::read(&dest).unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("070701"));
        for name in [
            "bin\0",
            "bin/hello\0",
            "hi\n",
            "dev/console\0",
            "TRAILER!!!\0",
        ] {
            assert!(text.contains(name), "{name:?} missing");
        }
        // Where cpio(1) is installed, it must read the archive back.
        if let Ok(out) = std::process::Command::new("cpio")
            .args(["-t", "-F"])
            .arg(&dest)
            .output()
        {
            let listed = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                listed.lines().collect::<Vec<_>>(),
                ["bin", "bin/hello", "dev/console"]
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
