//! What the guest does with its disks at boot: grow its root file system
//! to fill a root disk made larger than the template
//! ([`crate::disk::Overlay::create_sized`]), turn on its swap disk, mount
//! the file systems the project lists. All of it is lines of the generated
//! `apply` script, each value single-quoted.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{quote, GuestConfig};
use crate::error::Result;

/// A file system the guest mounts at boot (a project's `mount` line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestMount {
    /// What is mounted, as the guest names it: a device (`/dev/ubdc`), a
    /// remote path (`server:/export`), `tmpfs`, ...
    pub source: String,
    /// Where (absolute).
    pub point: String,
    /// The file system type (`ext4`, `nfs`, `tmpfs`, ...).
    pub fstype: String,
    /// `mount -o` options (none: `defaults`).
    pub options: Option<String>,
}

/// Shell helpers for the lines below, appended to the `apply` prelude.
pub(super) const PRELUDE: &str = r#"mln_grow_root() { # grow / to fill its disk
    dev=
    for w in $(cat /proc/cmdline); do case "$w" in root=/dev/*) dev=${w#root=} ;; esac; done
    [ -b "$dev" ] || { echo "mln: no root device on the kernel command line to grow"; return 0; }
    if command -v resize2fs >/dev/null 2>&1; then
        resize2fs "$dev" >/dev/null 2>&1 || echo "mln: could not grow the root file system on $dev"
    else
        echo "mln: this template has no resize2fs: the root file system keeps its size"
    fi
}
mln_swap() { # DEVICE
    swapon "$1" || echo "mln: could not turn on swap on $1"
}
mln_mount() { # SOURCE POINT TYPE OPTIONS
    mkdir -p "$2" && mount -t "$3" -o "$4" "$1" "$2" || echo "mln: could not mount $1 on $2"
}
"#;

impl GuestConfig {
    /// Check the storage settings: mount points absolute, every value on
    /// one line, file system types and options plain words.
    pub(super) fn validate_storage(&self) -> Result<()> {
        if let Some(dev) = &self.swap {
            if !dev.starts_with("/dev/") || !one_word(dev) {
                return Err(self.invalid("swap", "the swap device is a /dev path"));
            }
        }
        for m in &self.mounts {
            let field = format!("mount {}", m.point);
            if !m.point.starts_with('/') || m.point.contains(['\n', '\0']) {
                return Err(self.invalid(field, "the mount point must be an absolute path"));
            }
            if m.source.is_empty() || m.source.contains(['\n', '\0']) {
                return Err(self.invalid(field, "the source must be one line"));
            }
            let plain = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            };
            if !plain(&m.fstype) {
                return Err(self.invalid(field, "the file system type is a plain word"));
            }
            if m.options.as_deref().is_some_and(|o| !one_word(o)) {
                return Err(self.invalid(field, "mount options are one word (a,b,c=d)"));
            }
        }
        Ok(())
    }

    /// The `apply` lines that grow the root file system and turn swap on
    /// (run before anything else).
    pub(super) fn disk_lines(&self, s: &mut String) {
        if self.grow_root {
            s.push_str("mln_grow_root\n");
        }
        if let Some(dev) = &self.swap {
            let _ = writeln!(s, "mln_swap {}", quote(dev));
        }
    }

    /// The `apply` lines that mount the project's file systems (run once
    /// the network is up: a source may be remote).
    pub(super) fn mount_lines(&self, s: &mut String) {
        for m in &self.mounts {
            let _ = writeln!(
                s,
                "mln_mount {} {} {} {}",
                quote(&m.source),
                quote(&m.point),
                quote(&m.fstype),
                quote(m.options.as_deref().unwrap_or("defaults"))
            );
        }
    }
}

fn one_word(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_become_quoted_apply_lines_in_order() {
        let mut c = GuestConfig::new("web");
        c.grow_root = true;
        c.swap = Some("/dev/ubdc".into());
        c.mounts.push(GuestMount {
            source: "/dev/ubdd".into(),
            point: "/srv/my data".into(),
            fstype: "ext4".into(),
            options: None,
        });
        let s = c.apply_script().unwrap();
        let grow = s.find("\nmln_grow_root\n").unwrap();
        let swap = s.find("mln_swap '/dev/ubdc'").unwrap();
        let mount = s
            .find("mln_mount '/dev/ubdd' '/srv/my data' 'ext4' 'defaults'")
            .unwrap();
        assert!(grow < swap && swap < mount, "{s}");
    }

    #[test]
    fn unsafe_mount_settings_are_refused() {
        let mut c = GuestConfig::new("web");
        c.mounts.push(GuestMount {
            source: "/dev/ubdc".into(),
            point: "relative".into(),
            fstype: "ext4".into(),
            options: None,
        });
        assert!(c.validate().is_err());
        c.mounts[0].point = "/mnt".into();
        c.mounts[0].fstype = "ext4; reboot".into();
        assert!(c.validate().is_err());
        c.mounts[0].fstype = "ext4".into();
        c.mounts[0].options = Some("ro\nreboot".into());
        assert!(c.validate().is_err());
        c.mounts[0].options = Some("ro,noatime".into());
        assert!(c.validate().is_ok());
        c.swap = Some("ubdc".into());
        assert!(c.validate().is_err());
    }
}
