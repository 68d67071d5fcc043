//! A host's disks on this machine and what its guest calls them: the root
//! disk (`a`, an overlay over the template, as large as `size` or the
//! template plus `free_space` asks), the configuration disk (`b`), then its
//! swap disk when it has `swap`, then every `mount` whose source is an
//! image file on this machine, in project order.

use std::fs;
use std::path::{Path, PathBuf};

use mln_core::guest::GuestMount;
use mln_core::{Error, Result};

use crate::plan::{HostSpec, Platform};

/// How the platform names a guest's disks: `ubd`, `xvd`, `vd`.
pub(super) fn device_prefix(platform: Platform) -> &'static str {
    match platform {
        Platform::Uml => "ubd",
        Platform::Xen | Platform::Hvm => "xvd",
        Platform::Kvm => "vd",
    }
}

/// The size the root disk of `host` must have over a template of
/// `template_size` bytes: `size`, else the template plus `free_space`;
/// `None` when neither is given (the template's size).
pub(super) fn wanted_root_size(host: &HostSpec, template_size: u64) -> Option<u64> {
    host.disk_size.or_else(|| {
        host.free_space()
            .map(|free| template_size.saturating_add(free))
    })
}

/// Whether a `mount` source is a disk image on this machine to attach
/// (an absolute path outside `/dev`), rather than something the guest
/// finds itself (its own device, a remote path, `tmpfs`).
fn is_image(source: &str) -> bool {
    source.starts_with('/') && !source.starts_with("/dev/")
}

/// A disk besides root and configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExtraDisk {
    /// The file on this machine.
    pub path: PathBuf,
    /// Its name in the guest, without `/dev/` (`ubdc`).
    pub target: String,
    /// Attached read-only (a mount with the `ro` option).
    pub readonly: bool,
}

/// The extra disks of `host`, in device order: the swap disk (`swap_path`)
/// when it has swap, then each image its `mount` lines name.
pub(super) fn extra_disks(host: &HostSpec, swap_path: &Path) -> Result<Vec<ExtraDisk>> {
    let prefix = device_prefix(host.platform);
    let mut letters = b'c'..=b'z';
    let mut next = |host: &str| {
        letters
            .next()
            .map(|l| format!("{prefix}{}", l as char))
            .ok_or_else(|| Error::InvalidGuestConfig {
                host: host.to_string(),
                field: "mount".into(),
                reason: "more disks than the guest has names for".into(),
            })
    };
    let mut out = Vec::new();
    if host.swap.is_some() {
        out.push(ExtraDisk {
            path: swap_path.to_path_buf(),
            target: next(&host.name)?,
            readonly: false,
        });
    }
    for m in &host.guest.mounts {
        if is_image(&m.src) {
            let readonly = m
                .options
                .as_deref()
                .is_some_and(|o| o.split(',').any(|opt| opt == "ro"));
            out.push(ExtraDisk {
                path: PathBuf::from(&m.src),
                target: next(&host.name)?,
                readonly,
            });
        }
    }
    Ok(out)
}

/// The images `host`'s `mount` lines name, checked to be there.
pub(super) fn check_mount_images(host: &HostSpec) -> Result<()> {
    for m in &host.guest.mounts {
        if is_image(&m.src) && !fs::metadata(&m.src).is_ok_and(|meta| meta.is_file()) {
            return Err(Error::MissingFile {
                what: "mount image",
                path: PathBuf::from(&m.src),
            });
        }
    }
    Ok(())
}

/// What the guest of `host` does with its disks: grow its root file
/// system when the root disk may be larger than the template, turn on its
/// swap disk, mount its `mount` lines (an attached image by its device).
pub(super) fn guest_disks(
    host: &HostSpec,
    swap_path: &Path,
) -> Result<(bool, Option<String>, Vec<GuestMount>)> {
    let grow = host.disk_size.is_some() || host.free_space().is_some();
    let extra = extra_disks(host, swap_path)?;
    let mut attached = extra.iter();
    let swap = match host.swap {
        Some(_) => attached.next().map(|d| format!("/dev/{}", d.target)),
        None => None,
    };
    let mut mounts = Vec::new();
    for m in &host.guest.mounts {
        let source = if is_image(&m.src) {
            attached
                .next()
                .map(|d| format!("/dev/{}", d.target))
                .unwrap_or_else(|| m.src.clone())
        } else {
            m.src.clone()
        };
        mounts.push(GuestMount {
            source,
            point: m.point.clone(),
            fstype: m.fstype.clone(),
            options: m.options.clone(),
        });
    }
    Ok((grow, swap, mounts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mount;

    fn mount(src: &str, options: Option<&str>) -> Mount {
        Mount {
            src: src.into(),
            point: format!("/mnt{}", src.replace('/', "-")),
            fstype: "ext4".into(),
            options: options.map(str::to_string),
        }
    }

    #[test]
    fn swap_then_mounted_images_take_the_next_disk_names() {
        let mut h = HostSpec::new("web");
        h.swap = Some(64 << 20);
        h.guest.mounts = vec![
            mount("/srv/data.img", None),
            mount("server:/export", None),
            mount("/srv/ro.img", Some("ro,noatime")),
            mount("/dev/ubdz", None),
        ];
        let swap = Path::new("/p/disks/web.swap");
        let extra = extra_disks(&h, swap).unwrap();
        let names: Vec<_> = extra.iter().map(|d| d.target.as_str()).collect();
        assert_eq!(names, ["ubdc", "ubdd", "ubde"]);
        assert_eq!(extra[0].path, swap);
        assert!(!extra[1].readonly && extra[2].readonly);
        let (grow, swap_dev, mounts) = guest_disks(&h, swap).unwrap();
        assert!(!grow);
        assert_eq!(swap_dev.as_deref(), Some("/dev/ubdc"));
        let sources: Vec<_> = mounts.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(
            sources,
            ["/dev/ubdd", "server:/export", "/dev/ubde", "/dev/ubdz"]
        );
        h.platform = Platform::Kvm;
        h.swap = None;
        assert_eq!(extra_disks(&h, swap).unwrap()[0].target, "vdc");
    }

    #[test]
    fn the_root_disk_is_size_or_template_plus_free_space() {
        let mut h = HostSpec::new("web");
        assert_eq!(wanted_root_size(&h, 100), None);
        h.disk = r#"{"free_space":50}"#.into();
        assert_eq!(wanted_root_size(&h, 100), Some(150));
        h.disk_size = Some(1000);
        assert_eq!(wanted_root_size(&h, 100), Some(1000));
    }
}
