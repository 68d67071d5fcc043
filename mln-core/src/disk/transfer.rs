//! Moving a stopped host's disks (its COW disk and configuration disk)
//! between servers as one checksummed, compressed stream.
//!
//! The stream:
//!
//! ```text
//! MLN-DISKS 1\n                         magic and version
//! {"files":[{"name":..,"size":..,"sha256":".."},..]}\n   the manifest, one line
//! gzip(                                  one gzip member holding, per file
//!   ( 'D' len:u32be bytes                in manifest order, its content as
//!   | 'Z' len:u64be )* 'E'               data and zero runs, then an end mark
//! )
//! ```
//!
//! Runs of zero blocks travel as a length only, so a sparse COW file of
//! gigabytes costs what it holds, and [`import`] seeks over them, so the
//! copy is sparse too. Memory stays bounded (one 1 MiB buffer each way).
//! The manifest's SHA-256 is of each file's whole content (holes read as
//! zeros), so `sha256sum` on either server agrees with it; computing it
//! first means [`export`] reads each file twice (holes cost almost nothing).
//!
//! [`import`] writes to hidden temporary files, checks every size and
//! checksum, fsyncs, and only then links the files into place, refusing to
//! replace one that exists: on any mismatch, truncation or error nothing is
//! left behind, and the error ([`Error::Io`] with `InvalidData`) names the
//! file.
//!
//! ```no_run
//! use mln_core::disk::transfer;
//! let files = ["/var/lib/mln/lab/alice.cow", "/var/lib/mln/lab/alice.config"];
//! let mut stream = Vec::new();
//! let sent = transfer::export(&files, &mut stream)?;
//! let got = transfer::import(&mut &stream[..], "/srv/mln/lab")?;
//! assert_eq!(sent, got);
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::name::SafeName;

const MAGIC: &[u8] = b"MLN-DISKS 1\n";
/// The longest manifest line accepted (a few files' names and checksums).
const MAX_MANIFEST: u64 = 64 << 10;
/// Read and data-record size.
const CHUNK: usize = 1 << 20;
/// Zero runs are found at this granularity (the file system's block size).
const BLOCK: usize = 4096;
const DATA: u8 = b'D';
const ZEROS: u8 = b'Z';
const END: u8 = b'E';

/// What a stream carries: its files, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The files.
    pub files: Vec<FileEntry>,
}

/// One file of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name (a [`SafeName`]; no folder: [`import`] puts it in its
    /// destination folder).
    pub name: String,
    /// Its size in bytes (holes included).
    pub size: u64,
    /// SHA-256 of its content, lower-case hex.
    pub sha256: String,
}

/// Write `files` (regular files with distinct, safe names) to `out` as a
/// stream for [`import`]; returns the manifest sent. The files must not
/// change meanwhile (the host is stopped): [`import`] would refuse them.
pub fn export<P: AsRef<Path>>(files: &[P], mut out: impl Write) -> Result<Manifest> {
    let mut entries = Vec::with_capacity(files.len());
    let mut names = HashSet::new();
    for path in files {
        let path = path.as_ref();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid(path, "no usable file name"))?;
        let name = SafeName::new(name)?.to_string();
        if !names.insert(name.clone()) {
            return Err(invalid(path, "a second file of that name in one stream"));
        }
        let (size, sha256) = checksum(path)?;
        entries.push(FileEntry { name, size, sha256 });
    }
    let manifest = Manifest { files: entries };
    let stream = Path::new("disk stream");
    let mut line = serde_json::to_vec(&manifest).map_err(|e| invalid(stream, &e.to_string()))?;
    line.push(b'\n');
    out.write_all(MAGIC)
        .and_then(|()| out.write_all(&line))
        .map_err(|e| Error::io(stream, e))?;
    let mut gz = GzEncoder::new(out, Compression::fast());
    let mut buf = vec![0u8; CHUNK];
    for (path, entry) in files.iter().zip(&manifest.files) {
        let path = path.as_ref();
        send_file(path, entry.size, &mut buf, &mut gz)?;
    }
    gz.finish()
        .and_then(|mut out| out.flush())
        .map_err(|e| Error::io(stream, e))?;
    Ok(manifest)
}

/// Read a stream made by [`export`] from `input` and put its files into
/// `dest_dir`, each under its own name, once all of them arrived whole and
/// match their checksums. Reads exactly the stream: whatever follows it
/// stays in `input`.
///
/// Fails, leaving nothing in `dest_dir`, on a malformed or truncated
/// stream, a size or checksum mismatch (the error names the file), or a
/// file of that name already in `dest_dir` (it is never replaced).
pub fn import(input: &mut impl BufRead, dest_dir: impl AsRef<Path>) -> Result<Manifest> {
    let dest_dir = dest_dir.as_ref();
    let stream = Path::new("disk stream");
    let mut magic = [0u8; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            invalid(stream, "it ends before its header (truncated)")
        } else {
            Error::io(stream, e)
        }
    })?;
    if magic != MAGIC {
        return Err(invalid(stream, "not an MLN disk stream (version 1)"));
    }
    let mut line = Vec::new();
    Read::take(&mut *input, MAX_MANIFEST)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io(stream, e))?;
    if line.pop() != Some(b'\n') {
        return Err(invalid(stream, "manifest line missing, cut or too long"));
    }
    let manifest: Manifest =
        serde_json::from_slice(&line).map_err(|e| invalid(stream, &e.to_string()))?;
    let mut names = HashSet::new();
    for f in &manifest.files {
        SafeName::new(&f.name)?;
        if !names.insert(f.name.as_str()) {
            return Err(invalid(
                &dest_dir.join(&f.name),
                "named twice in the stream",
            ));
        }
        let target = dest_dir.join(&f.name);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(Error::io(
                &target,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already there"),
            ));
        }
    }
    let mut staged = Staged {
        temps: Vec::new(),
        placed: Vec::new(),
    };
    let mut gz = GzDecoder::new(input);
    let mut buf = vec![0u8; CHUNK];
    for f in &manifest.files {
        let target = dest_dir.join(&f.name);
        let temp = dest_dir.join(format!(".{}.mln-import-{}", f.name, std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(&temp, e))?;
        staged.temps.push(temp.clone());
        receive_file(&mut gz, file, f, &target, &temp, &mut buf)?;
    }
    // The gzip trailer (its CRC and length) is read only past the last
    // byte: a stream cut there is refused too.
    let mut rest = [0u8; 1];
    match gz.read(&mut rest) {
        Ok(0) => {}
        Ok(_) => return Err(invalid(stream, "data after the last file")),
        Err(e) => return Err(Error::io(stream, e)),
    }
    for (f, temp) in manifest.files.iter().zip(staged.temps.clone()) {
        let target = dest_dir.join(&f.name);
        // A link, unlike a rename, never replaces a file that appeared
        // meanwhile.
        fs::hard_link(&temp, &target).map_err(|e| Error::io(&target, e))?;
        staged.placed.push(target);
    }
    File::open(dest_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dest_dir, e))?;
    staged.placed.clear();
    Ok(manifest)
}

/// The manifest entry [`export`] would send for the file at `path` (its
/// own name, size and SHA-256, holes read as zeros), to compare a copy
/// with its original without sending either.
pub fn describe(path: impl AsRef<Path>) -> Result<FileEntry> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| invalid(path, "no usable file name"))?;
    let (size, sha256) = checksum(path)?;
    Ok(FileEntry {
        name: name.to_string(),
        size,
        sha256,
    })
}

/// Files an unfinished import made; removed on drop unless it finished.
struct Staged {
    temps: Vec<PathBuf>,
    placed: Vec<PathBuf>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Best effort on the way out of an error that is already reported.
        for p in self.placed.iter().chain(&self.temps) {
            let _ = fs::remove_file(p);
        }
    }
}

/// Size and SHA-256 (hex) of the file at `path`.
fn checksum(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(invalid(path, "not a regular file"));
    }
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hash.finalize())))
}

/// Write the records of the file at `path` (`size` bytes when checksummed).
fn send_file(path: &Path, size: u64, buf: &mut [u8], out: &mut impl Write) -> Result<()> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let werr = |e| Error::io(Path::new("disk stream"), e);
    let mut zeros = 0u64;
    let mut sent = 0u64;
    loop {
        let n = read_full(&mut f, buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        sent += n as u64;
        let mut at = 0;
        while at < n {
            let end = (at + BLOCK).min(n);
            if is_zero(&buf[at..end]) {
                zeros += (end - at) as u64;
                at = end;
                continue;
            }
            if zeros > 0 {
                out.write_all(&[ZEROS]).map_err(werr)?;
                out.write_all(&zeros.to_be_bytes()).map_err(werr)?;
                zeros = 0;
            }
            let mut stop = end;
            while stop < n && !is_zero(&buf[stop..(stop + BLOCK).min(n)]) {
                stop = (stop + BLOCK).min(n);
            }
            let len = (stop - at) as u32;
            out.write_all(&[DATA]).map_err(werr)?;
            out.write_all(&len.to_be_bytes()).map_err(werr)?;
            out.write_all(&buf[at..stop]).map_err(werr)?;
            at = stop;
        }
    }
    if sent != size {
        return Err(invalid(path, "changed while it was being sent"));
    }
    if zeros > 0 {
        out.write_all(&[ZEROS]).map_err(werr)?;
        out.write_all(&zeros.to_be_bytes()).map_err(werr)?;
    }
    out.write_all(&[END]).map_err(werr)
}

/// Read one file's records into `file` (at `temp`), checking them against
/// `entry`; errors name `target`, the file being imported.
fn receive_file(
    input: &mut impl Read,
    mut file: File,
    entry: &FileEntry,
    target: &Path,
    temp: &Path,
    buf: &mut [u8],
) -> Result<()> {
    let cut = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            invalid(target, "the stream ends inside this file (truncated)")
        } else {
            invalid(target, &format!("unreadable stream: {e}"))
        }
    };
    let too_long = || invalid(target, "more content than the manifest's size");
    let mut hash = Sha256::new();
    let mut at = 0u64;
    loop {
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag).map_err(cut)?;
        match tag[0] {
            DATA => {
                let mut len = [0u8; 4];
                input.read_exact(&mut len).map_err(cut)?;
                let len = u32::from_be_bytes(len) as usize;
                if len > buf.len() {
                    return Err(invalid(target, "a data record longer than allowed"));
                }
                if at + len as u64 > entry.size {
                    return Err(too_long());
                }
                input.read_exact(&mut buf[..len]).map_err(cut)?;
                hash.update(&buf[..len]);
                file.write_all(&buf[..len])
                    .map_err(|e| Error::io(temp, e))?;
                at += len as u64;
            }
            ZEROS => {
                let mut len = [0u8; 8];
                input.read_exact(&mut len).map_err(cut)?;
                let len = u64::from_be_bytes(len);
                if len > entry.size - at {
                    return Err(too_long());
                }
                let zero = [0u8; BLOCK];
                let mut left = len;
                while left > 0 {
                    let n = left.min(BLOCK as u64) as usize;
                    hash.update(&zero[..n]);
                    left -= n as u64;
                }
                // A hole: nothing written, nothing allocated.
                file.seek(SeekFrom::Current(len as i64))
                    .map_err(|e| Error::io(temp, e))?;
                at += len;
            }
            END => break,
            _ => return Err(invalid(target, "corrupt stream (unknown record)")),
        }
    }
    if at != entry.size {
        return Err(invalid(
            target,
            &format!("{at} bytes arrived, the manifest says {}", entry.size),
        ));
    }
    let got = hex(&hash.finalize());
    if got != entry.sha256 {
        return Err(invalid(
            target,
            &format!("SHA-256 mismatch: sent {}, arrived {got}", entry.sha256),
        ));
    }
    // Trailing holes need the length set; then make it durable.
    file.set_len(entry.size)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(temp, e))
}

/// Fill `buf` as far as the file goes; the count read (short only at EOF).
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn is_zero(block: &[u8]) -> bool {
    // A memcmp, fast even in an unoptimised build.
    static ZERO: [u8; BLOCK] = [0; BLOCK];
    block == &ZERO[..block.len()]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn invalid(path: &Path, why: &str) -> Error {
    Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs_and_data_round_trip_with_the_same_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.img");
        let mut content = vec![0u8; 3 * CHUNK + 5];
        content[BLOCK + 7] = 1;
        content[2 * CHUNK..2 * CHUNK + 3 * BLOCK].fill(9);
        *content.last_mut().unwrap() = 3;
        fs::write(&src, &content).unwrap();
        let mut stream = Vec::new();
        let sent = export(&[&src], &mut stream).unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let got = import(&mut &stream[..], &out).unwrap();
        assert_eq!(sent, got);
        assert_eq!(fs::read(out.join("a.img")).unwrap(), content);
        assert_eq!(sent.files[0].size, content.len() as u64);
    }

    #[test]
    fn a_foreign_stream_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = import(&mut &b"GIF89a..."[..], dir.path()).unwrap_err();
        assert!(err.to_string().contains("disk stream"), "{err}");
    }
}
