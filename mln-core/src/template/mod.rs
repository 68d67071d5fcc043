//! Guest templates: the root file system every host's copy-on-write disk is
//! made over, and how MLN's guest configuration gets into it.
//!
//! - [`BusyboxTemplate`]: the default, a small busybox root built without
//!   root privileges from Debian's `busybox-static` (module `busybox`).
//! - [`DebianTemplate`]: Debian (12 by default) with systemd, OpenSSH and
//!   iproute2, bootstrapped by `mmdebstrap` (module `debian`).
//! - [`import`]: any other ext2/3/4 root image (an old MLN template, a
//!   distribution's image), copied and given MLN's guest-configuration
//!   step ([`GuestStep`]) with `debugfs`, without root.
//! - [`register`]: a template MLN made elsewhere (an image that carries
//!   the guest step already) added to a templates folder unchanged, as a
//!   link or a copy.
//! - [`list`]: what a templates folder holds, with sizes and checksums.
//!
//! Every template MLN makes or imports carries `/etc/mln/template`, which
//! names its boot marker; [`Template::inspect`] reads it back from the
//! image.
//!
//! ```no_run
//! use mln_core::template::{BusyboxSource, BusyboxTemplate};
//! let t = BusyboxTemplate::new(BusyboxSource::find("/tmp/scratch")?).build("/var/lib/mln/templates")?;
//! println!("{} (boot with `{}`)", t.image.display(), t.cmdline);
//! # Ok::<(), mln_core::Error>(())
//! ```

mod busybox;
mod catalog;
mod debian;
mod image;
mod import;
mod register;
mod step;

pub use busybox::{BusyboxSource, BusyboxTemplate};
pub use catalog::{list, TemplateFile};
pub use debian::{DebianBuild, DebianTemplate, DEFAULT_SUITE, PACKAGES as DEBIAN_PACKAGES};
pub use image::{Edit, Entry, Ext4Image};
pub use import::{import, Imported};
pub use register::register;
pub use step::{GuestStep, InitSystem};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// `/etc/mln/template` in every template MLN makes or imports: what MLN
/// reads back from the image ([`Template::inspect`]).
const TEMPLATE_CONF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/template"
));

/// Where a template says what MLN needs to know about it.
pub const TEMPLATE_CONF_PATH: &str = "/etc/mln/template";

/// The kernel arguments a template boots with as a UML guest's first disk.
pub const ROOT_CMDLINE: &str = "root=/dev/ubda rw";

/// What MLN's templates (busybox, Debian, imported) print on the console when boot,
/// configuration and startup lines are done.
pub const BOOT_FINISHED: &str = "mln: boot finished";

/// A built template: an ext4 image and the kernel arguments that boot it as
/// the first disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The image (never written to: hosts get copy-on-write disks over it).
    pub image: PathBuf,
    /// Kernel arguments for a guest whose first disk is a COW over `image`
    /// (`root=/dev/ubda rw` on UML).
    pub cmdline: String,
    /// The line the template's init prints on the console once boot,
    /// configuration and startup lines are done ([`BOOT_FINISHED`] for the
    /// busybox template); `None` for an image that prints none, whose
    /// guests count as booted once they answer and stay up a moment.
    pub boot_marker: Option<String>,
}

impl Template {
    /// An existing image booted with `cmdline`, which prints no boot
    /// marker.
    pub fn image(image: impl Into<PathBuf>, cmdline: impl Into<String>) -> Self {
        Template {
            image: image.into(),
            cmdline: cmdline.into(),
            boot_marker: None,
        }
    }

    /// The image at `image` as a template, booted with [`ROOT_CMDLINE`],
    /// with the boot marker its `/etc/mln/template` names (read with
    /// `debugfs`, no root needed); an image without that file, or that is
    /// no ext2/3/4 image (a whole disk, a qcow2), prints none. An image
    /// that cannot be read (unreadable, cut short, `debugfs` missing or
    /// failing) is an error, never taken for one without a marker: its
    /// guests' boots could not be confirmed nor `mln exec` reach them.
    pub fn inspect(image: impl Into<PathBuf>) -> Result<Self> {
        let image = image.into();
        let boot_marker = match Ext4Image::open(&image) {
            Ok(ext) => ext
                .read(TEMPLATE_CONF_PATH)?
                .and_then(|text| boot_marker(&String::from_utf8_lossy(&text))),
            Err(Error::Template { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(Template {
            image,
            cmdline: ROOT_CMDLINE.to_string(),
            boot_marker,
        })
    }

    /// The default busybox template kept in `dir`, built there on first use
    /// (an unchanged template is not rebuilt); busybox comes from
    /// `/bin/busybox` or is fetched into `dir/download`.
    pub fn default_in(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let source = BusyboxSource::find(dir.join("download"))?;
        BusyboxTemplate::new(source).build(dir)
    }
}

/// The `boot_marker=` line of a template's `/etc/mln/template`.
fn boot_marker(conf: &str) -> Option<String> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("boot_marker="))
        .map(str::trim)
        .find(|m| !m.is_empty())
        .map(str::to_string)
}

/// Run a command (argv, no shell), return its stdout, or an error with the
/// end of its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Spawn {
            program: program.clone(),
            source: e,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let start = stderr.len().saturating_sub(2000);
        let start = (start..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        return Err(Error::Command {
            program,
            status: out.status.to_string(),
            stderr: stderr[start..].trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// FNV-1a, 64 bit: a stable hash for cache names.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_marker_comes_from_the_template_file() {
        assert_eq!(boot_marker(TEMPLATE_CONF).as_deref(), Some(BOOT_FINISHED));
        assert_eq!(boot_marker("# nothing\nboot_marker=\n"), None);
    }
}
