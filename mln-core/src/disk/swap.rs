//! A guest's swap disk: a sparse file of the size asked for, given a swap
//! signature with `mkswap` (no root needed); the guest's boot step turns
//! it on with `swapon`.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::bounded;
use crate::error::{Error, Result};

/// The smallest swap disk made: `mkswap` wants ten pages at least, and
/// less than a MiB of swap is no use to a guest.
const MIN_SWAP: u64 = 1 << 20;

/// Make (or make again) the swap disk at `path`: `size` bytes, sparse,
/// with a fresh swap signature. Whatever was there is replaced: swap
/// holds nothing that outlives a guest's run.
///
/// ```no_run
/// mln_core::disk::make_swap("/var/lib/mln/lab/disks/web.swap".as_ref(), 256 << 20)?;
/// # Ok::<(), mln_core::Error>(())
/// ```
pub fn make_swap(path: &Path, size: u64) -> Result<()> {
    if size < MIN_SWAP {
        return Err(Error::DiskSize {
            path: path.to_path_buf(),
            reason: format!("swap of {size} bytes is too small (at least 1M)"),
        });
    }
    let _ = fs::remove_file(path);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.set_len(size).map_err(|e| Error::io(path, e))?;
    drop(f);
    let made = bounded::checked_within(
        Command::new("mkswap").arg("-q").arg(path),
        "mkswap",
        Duration::from_secs(120),
    );
    if made.is_err() {
        let _ = fs::remove_file(path);
    }
    made.map(drop)
}
