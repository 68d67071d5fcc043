//! Reading files for the parser: size limits, text validation, and the
//! identity used to detect `#include` cycles.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The operating system refused (missing, permissions, a directory).
    Io(std::io::Error),
    /// The file is larger than the limit; nothing past the limit was read.
    TooBig,
}

/// Read `path`, refusing files longer than `max` bytes without reading them.
///
/// Only regular files are read: a FIFO, a terminal or `/dev/stdin` named by
/// an `#include` would otherwise block the parser forever. The file is
/// opened non-blocking (so opening a FIFO returns at once) and checked
/// through the open descriptor, so it cannot be swapped in between.
pub(crate) fn read_limited(path: &Path, max: usize) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(ReadError::Io)?;
    if !file.metadata().map_err(ReadError::Io)?.is_file() {
        return Err(ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > max {
        return Err(ReadError::TooBig);
    }
    Ok(bytes)
}

/// The name a file is known by when looking for include cycles: its
/// canonical path when it exists, otherwise the path as given.
pub(crate) fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Text that is not valid: where, how long (in the lossily decoded text
/// that diagnostics show), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadText {
    pub start: usize,
    pub len: usize,
    pub message: String,
}

/// Check that `bytes` is UTF-8 without NUL bytes. On failure returns the
/// first problem; the caller shows the file through `lossy`.
pub(crate) fn validate(bytes: &[u8]) -> Result<&str, BadText> {
    let (text, invalid) = match std::str::from_utf8(bytes) {
        Ok(t) => (t, None),
        Err(e) => {
            let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
            (std::str::from_utf8(valid).unwrap_or_default(), Some(e))
        }
    };
    // A NUL before the first invalid byte is the first problem.
    // `contains` is a fast memchr; the position is wanted only on failure.
    if let Some(nul) = text
        .as_bytes()
        .contains(&0)
        .then(|| text.bytes().position(|b| b == 0))
        .flatten()
    {
        return Err(BadText {
            start: nul,
            len: 1,
            message: "NUL byte in the text".to_string(),
        });
    }
    match invalid {
        None => Ok(text),
        Some(e) => {
            let at = e.valid_up_to();
            let byte = bytes.get(at).copied().unwrap_or(0);
            Err(BadText {
                start: at,
                // The bad bytes show as one U+FFFD.
                len: '\u{fffd}'.len_utf8(),
                message: format!("invalid UTF-8 (byte 0x{byte:02x})"),
            })
        }
    }
}

/// `bytes` as text, every invalid sequence replaced by U+FFFD.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_passes() {
        assert_eq!(validate("héllo".as_bytes()), Ok("héllo"));
    }

    #[test]
    fn nul_is_reported_at_its_offset() {
        let e = validate(b"ab\0c").unwrap_err();
        assert_eq!((e.start, e.len), (2, 1));
    }

    #[test]
    fn invalid_utf8_is_reported_at_its_offset() {
        let e = validate(b"ab\xffc\0").unwrap_err();
        assert_eq!((e.start, e.len), (2, 3));
        assert!(e.message.contains("0xff"), "{}", e.message);
        assert_eq!(&lossy(b"ab\xffc")[2..5], "\u{fffd}");
    }

    #[test]
    fn reading_stops_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.mln");
        std::fs::write(&p, vec![b'a'; 100]).unwrap();
        assert!(matches!(read_limited(&p, 99), Err(ReadError::TooBig)));
        assert_eq!(read_limited(&p, 100).unwrap().len(), 100);
        assert!(matches!(
            read_limited(&dir.path().join("none"), 10),
            Err(ReadError::Io(_))
        ));
    }
}
