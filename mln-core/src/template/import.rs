//! Taking an existing root image (an old MLN template, a distribution's
//! image) into a templates folder: a copy, given MLN's guest-configuration
//! step ([`GuestStep`]); the original is never written to.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::image::Ext4Image;
use super::step::{GuestStep, InitSystem};
use super::Template;
use crate::bounded;
use crate::error::{Error, Result};

/// How long copying and checking an image may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(1800);

/// A template [`import`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The copy in the templates folder, as a template.
    pub template: Template,
    /// How the image starts its services (what the step was hooked into).
    pub init: InitSystem,
}

/// Copy the ext2/3/4 root image `image` into `dir` as `name` (default: the
/// image's own file name) and install MLN's guest-configuration step into
/// the copy, so that addresses, routes, resolver, host name, `/etc/hosts`,
/// accounts, files, disks, startup and shutdown lines of a project work on
/// it. No root is needed: the copy is sparse (`cp --sparse=always`),
/// checked and repaired with `e2fsck -fy` (a journal left to replay, say),
/// then changed with `debugfs`. The template appears under its name only
/// once it is complete; a template of that name already there is never
/// replaced (guests' disks may be made over it).
///
/// What the step needs in the image: a POSIX `sh`, `tar`, `ip`
/// (iproute2 or busybox), `grep`, `cut`, `cp`, `mount`; `udhcpc` for DHCP,
/// `resize2fs` to grow a root disk, `swapon` for swap.
///
/// ```no_run
/// let t = mln_core::template::import("debian-12-genericcloud.raw".as_ref(), "/var/lib/mln/templates".as_ref(), Some("cloud.ext4"))?;
/// println!("{} ({})", t.template.image.display(), t.init.as_str());
/// # Ok::<(), mln_core::Error>(())
/// ```
pub fn import(image: &Path, dir: &Path, name: Option<&str>) -> Result<Imported> {
    Ext4Image::open(image)?;
    let (name, target) = free_place(
        image,
        dir,
        name,
        "hosts' disks may be made over it): import under another name, or remove it first",
    )?;
    let staging = dir.join(format!(".{name}.import-{}", std::process::id()));
    let result = copy_and_install(image, &staging);
    let result = result.and_then(|init| {
        fs::rename(&staging, &target).map_err(|e| Error::io(&target, e))?;
        Ok(init)
    });
    if result.is_err() {
        let _ = fs::remove_file(&staging);
    }
    let init = result?;
    Ok(Imported {
        template: Template::inspect(target)?,
        init,
    })
}

fn copy_and_install(image: &Path, staging: &Path) -> Result<InitSystem> {
    let _ = fs::remove_file(staging);
    bounded::checked_within(
        Command::new("cp")
            .arg("--sparse=always")
            .arg("--")
            .arg(image)
            .arg(staging),
        "copying the image",
        COPY_TIMEOUT,
    )?;
    e2fsck(staging)?;
    GuestStep::install(&Ext4Image::open(staging)?)
}

/// `e2fsck -fy`: exit codes 0 (clean) and 1 (errors fixed) are fine.
fn e2fsck(image: &Path) -> Result<()> {
    let out = bounded::output_within(
        Command::new("e2fsck").arg("-fy").arg(image),
        "e2fsck",
        COPY_TIMEOUT,
    )?;
    match out.status.code() {
        Some(0 | 1) => Ok(()),
        _ => Err(Error::Template {
            path: image.to_path_buf(),
            reason: format!(
                "e2fsck could not repair the copy ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ),
        }),
    }
}

/// A template's name is its file name in the templates folder.
/// The name and path of a new template from `image` in `dir`: `name`, or
/// the image's file name; checked, and not taken (`hint` says what to do
/// when it is, after "a template of that name is already there (").
pub(super) fn free_place(
    image: &Path,
    dir: &Path,
    name: Option<&str>,
    hint: &str,
) -> Result<(String, std::path::PathBuf)> {
    let name = match name {
        Some(n) => n.to_string(),
        None => image
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| Error::UnusablePath {
                path: image.to_path_buf(),
                what: "template image",
                reason: "it has no file name to name the template by",
            })?,
    };
    check_name(&name)?;
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let target = dir.join(&name);
    if target.exists() || target.is_symlink() {
        return Err(Error::Template {
            path: target,
            reason: format!("a template of that name is already there ({hint}"),
        });
    }
    Ok((name, target))
}

pub(super) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason: "a template name is a file name: letters, digits, `-`, `_`, `.`, `+`, \
                     not starting with `.`",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_are_plain_file_names() {
        assert!(check_name("debian-12.ext4").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("a b").is_err());
    }
}
