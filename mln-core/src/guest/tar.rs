//! A minimal ustar writer: regular files and folders, owned by root, which
//! is all a configuration disk needs (busybox `tar -x` reads it).

/// A tar archive being built in memory.
pub(crate) struct Archive {
    bytes: Vec<u8>,
}

impl Archive {
    pub fn new() -> Self {
        Archive { bytes: Vec::new() }
    }

    /// Add a regular file `name` (relative, under 100 bytes) with `data`.
    pub fn add(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.header(name, mode, data.len() as u64, b'0');
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.resize(self.bytes.len() + pad, 0);
    }

    /// Add a folder `name`.
    pub fn dir(&mut self, name: &str, mode: u32) {
        self.header(&format!("{name}/"), mode, 0, b'5');
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, kind: u8) {
        let mut h = [0u8; 512];
        let n = name.as_bytes();
        let len = n.len().min(99);
        h[..len].copy_from_slice(&n[..len]);
        octal(&mut h[100..108], u64::from(mode & 0o7777));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 0);
        h[148..156].fill(b' ');
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let field = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(field.as_bytes());
        self.bytes.extend_from_slice(&h);
    }

    /// The archive with its end marker, padded to a multiple of `block`.
    pub fn finish(mut self, block: usize) -> Vec<u8> {
        self.bytes.resize(self.bytes.len() + 1024, 0);
        let block = block.max(512);
        let pad = (block - self.bytes.len() % block) % block;
        self.bytes.resize(self.bytes.len() + pad, 0);
        self.bytes
    }
}

/// Write `value` as zero-padded octal filling `field` but its last byte (NUL).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    let s = &s.as_bytes()[s.len().saturating_sub(width)..];
    field[..width].copy_from_slice(s);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn system_tar_reads_it() {
        let mut a = Archive::new();
        a.add("apply", 0o755, b"echo hi\n");
        a.dir("files", 0o755);
        a.add("files/0", 0o600, &[7u8; 700]);
        let bytes = a.finish(4096);
        assert_eq!(bytes.len() % 4096, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg.tar");
        std::fs::write(&path, &bytes).unwrap();
        let out = Command::new("tar").arg("-tvf").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(list.contains("-rwxr-xr-x root/root         8"), "{list}");
        assert!(list.contains("files/0"), "{list}");
    }
}
