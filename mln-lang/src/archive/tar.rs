//! Just enough of the POSIX tar format (ustar) for a project archive:
//! regular files written one after the other to a seekable file, each
//! member's size filled in once its content is written, and read back in
//! order. `tar tvf` and `tar xf` read what this writes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

const BLOCK: u64 = 512;

/// Writes members into an archive file.
pub(crate) struct Writer {
    file: File,
}

impl Writer {
    pub(crate) fn new(file: File) -> Self {
        Writer { file }
    }

    /// Add member `name` (mode 0600) whose content `fill` writes; the
    /// header's size is filled in afterwards.
    pub(crate) fn member(
        &mut self,
        name: &str,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        let start = self.file.stream_position()?;
        self.file.write_all(&[0u8; BLOCK as usize])?;
        fill(&mut self.file)?;
        let end = self.file.stream_position()?;
        let size = end - start - BLOCK;
        let pad = (BLOCK - size % BLOCK) % BLOCK;
        self.file.write_all(&vec![0u8; pad as usize])?;
        let next = self.file.stream_position()?;
        self.file.seek(SeekFrom::Start(start))?;
        self.file.write_all(&header(name, size)?)?;
        self.file.seek(SeekFrom::Start(next))?;
        Ok(())
    }

    /// Write the end of the archive (two zero blocks) and make it durable.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.file.write_all(&[0u8; 2 * BLOCK as usize])?;
        self.file.sync_all()
    }
}

fn header(name: &str, size: u64) -> io::Result<[u8; 512]> {
    let mut h = [0u8; 512];
    if name.len() > 100 {
        return Err(invalid(format!("member name {name} is too long for tar")));
    }
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o600);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size < 8u64.pow(11) {
        octal(&mut h[124..136], size);
    } else {
        // GNU's base-256 for members of 8 GiB and more.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    octal(&mut h[136..148], now);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

/// `value` as zero-padded octal filling `field` but its last byte (NUL).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    field[width] = 0;
}

/// One member of an archive being read: its name, and where its content
/// is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

impl Member {
    /// Where the next header is.
    fn next(&self) -> u64 {
        self.offset + self.size.div_ceil(BLOCK) * BLOCK
    }
}

/// Reads the members of an archive file in order.
pub(crate) struct Reader {
    file: File,
    at: u64,
}

impl Reader {
    pub(crate) fn new(file: File) -> Self {
        Reader { file, at: 0 }
    }

    /// The next member (`None` at the end), the file positioned at its
    /// content.
    pub(crate) fn next_member(&mut self) -> io::Result<Option<Member>> {
        self.file.seek(SeekFrom::Start(self.at))?;
        let mut h = [0u8; 512];
        match self.file.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(invalid("the archive ends without its end mark (truncated)"))
            }
            Err(e) => return Err(e),
        }
        if h.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if &h[257..262] != b"ustar" {
            return Err(invalid("not a tar archive (no ustar header)"));
        }
        let stored = parse_octal(&h[148..156])?;
        let mut sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        sum -= h[148..156].iter().map(|&b| u64::from(b)).sum::<u64>();
        sum += 8 * u64::from(b' ');
        if sum != stored {
            return Err(invalid(
                "a tar header's checksum is wrong (corrupt archive)",
            ));
        }
        let end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..end]).into_owned();
        let size = if h[124] & 0x80 != 0 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[128..136]);
            u64::from_be_bytes(b)
        } else {
            parse_octal(&h[124..136])?
        };
        let member = Member {
            name,
            offset: self.at + BLOCK,
            size,
        };
        self.at = member.next();
        Ok(Some(member))
    }

    /// The content of `member` (which [`Reader::next_member`] just gave).
    pub(crate) fn content(&mut self, member: &Member) -> io::Result<io::Take<&mut File>> {
        self.file.seek(SeekFrom::Start(member.offset))?;
        Ok((&mut self.file).take(member.size))
    }
}

fn parse_octal(field: &[u8]) -> io::Result<u64> {
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| invalid("a tar header's number is not octal"))
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_tar_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut w = Writer::new(File::create(&path).unwrap());
        w.member("one.json", |f| f.write_all(b"{}")).unwrap();
        w.member("disks/x", |f| f.write_all(&[7u8; 1000])).unwrap();
        w.finish().unwrap();
        let mut r = Reader::new(File::open(&path).unwrap());
        let a = r.next_member().unwrap().unwrap();
        assert_eq!((a.name.as_str(), a.size), ("one.json", 2));
        let mut text = String::new();
        r.content(&a).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{}");
        let b = r.next_member().unwrap().unwrap();
        assert_eq!((b.name.as_str(), b.size), ("disks/x", 1000));
        assert!(r.next_member().unwrap().is_none());
        if let Ok(out) = std::process::Command::new("tar")
            .arg("tf")
            .arg(&path)
            .output()
        {
            assert!(out.status.success(), "{out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "one.json\ndisks/x\n");
        }
    }
}
