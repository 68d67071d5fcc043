//! Why a UML guest died, read from its console: the causes seen often
//! enough to name, each with what fixes it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A known reason for a guest to die while booting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashCause {
    /// The host's CPU state (its XSAVE area, large on Intel CPUs with AMX)
    /// does not fit the kernel's buffer: UML kernels before 6.13 or so
    /// die at the first user process with `ptrace set fp regs failed`.
    HostCpuStateTooLarge,
    /// The guest ran out of memory while booting.
    OutOfMemory,
    /// The kernel could not load the root file system's journal (`EXT4-fs
    /// (ubda): error loading journal`): seen twice, on healthy disks, in
    /// some hundreds of UML 7.2 boots, the guest booting on the next try.
    JournalUnreadable,
    /// The kernel found no root file system on the root disk.
    NoRootFileSystem,
    /// The root file system has no init program the kernel could run.
    NoInit,
    /// Another process holds the lock on the guest's disk (`ubda: Can't
    /// open ...: errno = 11`): an earlier run of the guest, or another
    /// guest on the same disk file, still runs.
    DiskInUse,
}

impl CrashCause {
    /// The cause a console shows, if it is a known one.
    pub fn diagnose(console: &str) -> Option<CrashCause> {
        let has = |s: &str| console.contains(s);
        if has("ptrace set fp regs failed") || has("ptrace set regs failed") {
            Some(CrashCause::HostCpuStateTooLarge)
        } else if console
            .lines()
            .any(|l| l.contains("Can't open") && l.contains("errno = 11"))
        {
            Some(CrashCause::DiskInUse)
        } else if has("System is deadlocked on memory") || has("Out of memory and no killable") {
            Some(CrashCause::OutOfMemory)
        } else if has("error loading journal") {
            Some(CrashCause::JournalUnreadable)
        } else if has("Unable to mount root fs") {
            Some(CrashCause::NoRootFileSystem)
        } else if has("No working init found") || has("Requested init") {
            Some(CrashCause::NoInit)
        } else {
            None
        }
    }

    /// Is this a fault known to pass, met before the guest changed
    /// anything on its disks, so that starting it again is safe? Only the
    /// journal fault: the kernel dies before it mounts its root disk, and
    /// the next boot of the same disk has always gone through.
    pub fn is_transient(self) -> bool {
        self == CrashCause::JournalUnreadable
    }

    /// What to do about it, in one line.
    pub fn fix(self) -> &'static str {
        match self {
            CrashCause::HostCpuStateTooLarge => {
                "this UML kernel cannot run on this CPU; `mln kernel fetch` gets one that can \
                 (or name another with the host's `kernel`, --uml-kernel or MLN_UML_KERNEL)"
            }
            CrashCause::OutOfMemory => "give the host more `memory` (32M boots reliably)",
            CrashCause::JournalUnreadable => {
                "a fault of the UML kernel seen now and then on healthy disks, met before the \
                 guest mounted its disk, so nothing of it changed: mln starts such a guest once \
                 more by itself; should it fail the same way again, the disk's journal is \
                 damaged: `mln reset` makes the host afresh"
            }
            CrashCause::NoRootFileSystem => {
                "if other guests of the same template booted, this one most likely ran short \
                 of memory while many booted at once (guests under 32M do): give it more \
                 `memory`; otherwise its root disk holds no file system the kernel can mount: \
                 check the template"
            }
            CrashCause::DiskInUse => {
                "find what else runs with this disk (`mln status`, `ps`) and stop it, then start again"
            }
            CrashCause::NoInit => {
                "the init program is missing: the template's /sbin/init, or what `init=` in `extra` names"
            }
        }
    }
}

impl fmt::Display for CrashCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CrashCause::HostCpuStateTooLarge => {
                "the UML kernel cannot restore this host's CPU state (XSAVE area too large, \
                 e.g. Intel AMX)"
            }
            CrashCause::OutOfMemory => "the guest ran out of memory while booting",
            CrashCause::JournalUnreadable => {
                "the guest kernel could not load its root file system's journal"
            }
            CrashCause::NoRootFileSystem => "the guest kernel could not mount its root disk",
            CrashCause::NoInit => "the guest kernel found no init program to run",
            CrashCause::DiskInUse => "another process holds the lock on the guest's disk",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_amx_crash_is_named_with_its_fix() {
        let console = "Run /sbin/init as init process\n\
                       userspace - ptrace set fp regs failed, errno = 14\n\
                       Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n";
        let cause = CrashCause::diagnose(console);
        assert_eq!(cause, Some(CrashCause::HostCpuStateTooLarge));
        assert!(cause.unwrap().fix().contains("mln kernel fetch"));
    }

    #[test]
    fn other_causes_and_none() {
        assert_eq!(
            CrashCause::diagnose("Kernel panic - not syncing: System is deadlocked on memory"),
            Some(CrashCause::OutOfMemory)
        );
        assert_eq!(
            CrashCause::diagnose(
                "Kernel panic - not syncing: Requested init /x failed (error -2)."
            ),
            Some(CrashCause::NoInit)
        );
        assert_eq!(
            CrashCause::diagnose(
                "ubda: Can't open \"/s/lab/disks/alice.cow\": errno = 11\n\
                 Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(98,0)"
            ),
            Some(CrashCause::DiskInUse)
        );
        // As CI saw it once: the journal, not the disk, is named.
        let journal = CrashCause::diagnose(
            "EXT4-fs (ubda): error loading journal\n\
             List of all bdev filesystems:\n ext4\n\n\
             Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(98,0)",
        );
        assert_eq!(journal, Some(CrashCause::JournalUnreadable));
        assert!(journal.unwrap().fix().contains("once more by itself"));
        assert_eq!(CrashCause::diagnose("mln: boot finished"), None);
    }
}
