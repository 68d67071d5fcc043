//! Replacing a file so that readers see the old or the new content, never a
//! mix, whatever moment the writer dies at.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replace `dir/name` with what `write` puts in a fresh file: the content
/// goes to `dir/.name.tmp.PID` (mode 0600), is fsynced, renamed over
/// `dir/name`, and the folder is fsynced so the rename itself survives a
/// power cut. When `write` (or any step) fails, the temporary file is
/// removed and `dir/name` is untouched. Temporary files left by writers
/// that died are removed first (call this only while holding the lock
/// that serialises writers of `dir/name`).
///
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir().unwrap();
/// mln_lang::state::write_atomic(dir.path(), "x.json", |f| f.write_all(b"{}")).unwrap();
/// assert_eq!(std::fs::read(dir.path().join("x.json")).unwrap(), b"{}");
/// ```
pub fn write_atomic(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    remove_stale_temporaries(dir, name)?;
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsync a folder, making renames and deletions in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_stale_temporaries(dir: &Path, name: &str) -> io::Result<()> {
    let prefix = format!(".{name}.tmp.");
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix));
        if is_stale && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
