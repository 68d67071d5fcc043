//! Which accelerator QEMU guests get: KVM only where a probe boot under
//! `-accel kvm` really runs a Linux guest, else TCG (QEMU's own CPU
//! emulation, slower but available everywhere).
//!
//! `/dev/kvm` opening is not enough: on nested hosts (the project's
//! development and CI machines) it opens and a guest under KVM hangs
//! without a word. So the answer comes from booting the guest kernel
//! ([`super::GuestKernel`]) with its probe initramfs, whose init prints
//! [`PROBE_MARKER`] and powers off, within [`PROBE_TIMEOUT`]. Without a
//! guest kernel to probe with, KVM is not trusted. The answer is kept for
//! the rest of the process and, in a file beside the kernel
//! (`vmlinuz.kvm-probe`), for the rest of the host's boot while the kernel
//! file is unchanged: one probe per kernel and boot, not one per `mln`
//! command.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kept_probe;

/// What the probe initramfs's init prints once it runs.
pub const PROBE_MARKER: &str = "MLN-PROBE-OK";

/// How long a probe boot under KVM may take. A guest under working KVM
/// reaches its init in about a second; a hanging one is killed at this
/// bound.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// How QEMU runs a guest's CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acceleration {
    /// The host kernel's KVM: near native speed.
    Kvm,
    /// QEMU's Tiny Code Generator: emulation, everywhere.
    Tcg,
}

impl Acceleration {
    /// The value of QEMU's `-accel` option.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Acceleration::Kvm => "kvm",
            Acceleration::Tcg => "tcg",
        }
    }
}

impl fmt::Display for Acceleration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acceleration::Kvm => "KVM",
            Acceleration::Tcg => "TCG",
        })
    }
}

/// Whether this process may open `/dev/kvm` for reading and writing.
pub fn kvm_device_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The accelerator for guests on this machine, probing with `kernel` and
/// `probe_initrd` (see the module documentation) once per kernel and
/// boot of the host; TCG without them or without `/dev/kvm`.
pub fn choose(probe: Option<(&Path, &Path)>) -> Acceleration {
    decide(probe, false)
}

/// As [`choose`], but boots the probe even when an answer is kept (for
/// `mln doctor`, which says what the host does now), and keeps the new
/// answer.
pub fn probe_again(kernel: &Path, probe_initrd: &Path) -> Acceleration {
    decide(Some((kernel, probe_initrd)), true)
}

fn decide(probe: Option<(&Path, &Path)>, again: bool) -> Acceleration {
    let Some((kernel, initrd)) = probe else {
        return Acceleration::Tcg;
    };
    if !kvm_device_opens() {
        return Acceleration::Tcg;
    }
    static ANSWERS: Mutex<Option<HashMap<PathBuf, Acceleration>>> = Mutex::new(None);
    // Held across the probe: two guests started at once wait for one
    // probe rather than run two.
    let mut answers = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
    let answers = answers.get_or_insert_with(HashMap::new);
    if !again {
        if let Some(answer) = answers.get(kernel) {
            return *answer;
        }
        if let Some(answer) = kept_probe::read(kernel) {
            answers.insert(kernel.to_path_buf(), answer);
            return answer;
        }
    }
    let answer = if crate::doctor::kvm_runs_linux(kernel, initrd, PROBE_TIMEOUT) {
        Acceleration::Kvm
    } else {
        Acceleration::Tcg
    };
    log::info!(
        "KVM probe with {}: {}",
        kernel.display(),
        match answer {
            Acceleration::Kvm => "boots, using KVM",
            Acceleration::Tcg => "no boot, using TCG",
        }
    );
    kept_probe::write(kernel, answer);
    answers.insert(kernel.to_path_buf(), answer);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_probe_kernel_kvm_is_not_trusted() {
        assert_eq!(choose(None), Acceleration::Tcg);
        assert_eq!(Acceleration::Kvm.qemu_name(), "kvm");
        assert_eq!(serde_json::to_value(Acceleration::Tcg).unwrap(), "tcg");
    }
}
