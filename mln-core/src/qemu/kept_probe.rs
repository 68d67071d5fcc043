//! The KVM probe's answer, kept beside the kernel it booted
//! (`KERNEL.kvm-probe`) so that every `mln` process after the first
//! skips the probe: up to [`super::accel::PROBE_TIMEOUT`] where KVM hangs.
//!
//! An answer holds for the boot of the host it was found on (the kernel's
//! `boot_id`: a module loaded, a reboot into another kernel or nested
//! setting) and for the kernel file it booted (its size and modification
//! time); anything else probes again. Not being able to keep it only costs
//! the next process a probe.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::accel::Acceleration;

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// What is written beside the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    boot_id: String,
    kernel_size: u64,
    kernel_mtime_ns: i128,
    answer: Acceleration,
}

/// Where the answer for `kernel` is kept.
pub(super) fn path_for(kernel: &Path) -> PathBuf {
    let mut name = kernel.file_name().unwrap_or_default().to_os_string();
    name.push(".kvm-probe");
    kernel.with_file_name(name)
}

/// The kept answer for `kernel`, if one holds for this boot and this
/// kernel file.
pub(super) fn read(kernel: &Path) -> Option<Acceleration> {
    let text = std::fs::read_to_string(path_for(kernel)).ok()?;
    let kept: Kept = serde_json::from_str(&text).ok()?;
    (Some(&kept) == describe(kernel, kept.answer).as_ref()).then_some(kept.answer)
}

/// Keep `answer` for `kernel`; a failure is logged and otherwise ignored.
pub(super) fn write(kernel: &Path, answer: Acceleration) {
    let Some(kept) = describe(kernel, answer) else {
        return;
    };
    let target = path_for(kernel);
    let written = serde_json::to_vec(&kept)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            // Written aside, then renamed: a reader sees a whole answer or none.
            let mut aside = target.clone().into_os_string();
            aside.push(format!(".{}", std::process::id()));
            let aside = PathBuf::from(aside);
            std::fs::write(&aside, bytes)?;
            std::fs::rename(&aside, &target).inspect_err(|_| {
                let _ = std::fs::remove_file(&aside);
            })
        });
    if let Err(e) = written {
        log::warn!(
            "cannot keep the KVM probe's answer in {}: {e}",
            target.display()
        );
    }
}

/// This boot and this kernel file, with `answer`.
fn describe(kernel: &Path, answer: Acceleration) -> Option<Kept> {
    let boot_id = std::fs::read_to_string(BOOT_ID).ok()?.trim().to_string();
    let meta = std::fs::metadata(kernel).ok()?;
    let mtime = meta.modified().ok()?;
    let kernel_mtime_ns = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    Some(Kept {
        boot_id,
        kernel_size: meta.len(),
        kernel_mtime_ns,
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_holds_for_this_boot_and_this_kernel_only() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"kernel one").unwrap();
        assert_eq!(read(&kernel), None, "nothing kept yet");
        write(&kernel, Acceleration::Kvm);
        assert!(path_for(&kernel).ends_with("vmlinuz.kvm-probe"));
        assert_eq!(read(&kernel), Some(Acceleration::Kvm));
        write(&kernel, Acceleration::Tcg);
        assert_eq!(read(&kernel), Some(Acceleration::Tcg));

        // Another kernel file in its place: probe again.
        std::fs::write(&kernel, b"another kernel").unwrap();
        assert_eq!(read(&kernel), None);

        // Another boot of the host: probe again.
        write(&kernel, Acceleration::Kvm);
        let path = path_for(&kernel);
        let mut kept: Kept = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        kept.boot_id = "00000000-0000-0000-0000-000000000000".into();
        std::fs::write(&path, serde_json::to_vec(&kept).unwrap()).unwrap();
        assert_eq!(read(&kernel), None);

        // A damaged file is no answer.
        std::fs::write(&path, b"{").unwrap();
        assert_eq!(read(&kernel), None);
    }
}
