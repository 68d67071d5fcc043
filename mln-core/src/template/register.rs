//! Adding an existing MLN template to a templates folder unchanged (MLN's
//! `register`): a symbolic link to the image, or a sparse copy of it.
//! Only an image that already carries MLN's guest-configuration step
//! (every template MLN builds or imports: its `/etc/mln/template`) is
//! taken; any other image needs [`super::import`], which adds the step to
//! a copy.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::image::Ext4Image;
use super::import::free_place;
use super::{Template, TEMPLATE_CONF_PATH};
use crate::bounded;
use crate::error::{Error, Result};

/// How long copying an image may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(1800);

/// Put template image `image` into `dir` as `name` (default: the image's
/// file name): a symbolic link to its absolute path, or with `copy` a
/// sparse copy. The image is never changed. Refused, leaving nothing,
/// for an image without MLN's guest step (`mln template import` is the
/// way for those) and when a template of that name is there.
///
/// ```no_run
/// let t = mln_core::template::register("/srv/old/debian.ext4".as_ref(), "/var/lib/mln/templates".as_ref(), None, false)?;
/// println!("{}", t.image.display());
/// # Ok::<(), mln_core::Error>(())
/// ```
pub fn register(image: &Path, dir: &Path, name: Option<&str>, copy: bool) -> Result<Template> {
    let ext4 = Ext4Image::open(image)?;
    if ext4.read(TEMPLATE_CONF_PATH)?.is_none() {
        return Err(Error::Template {
            path: image.to_path_buf(),
            reason: format!(
                "it carries no MLN guest-configuration step ({TEMPLATE_CONF_PATH} is missing): \
                 `mln template import` copies it and adds the step"
            ),
        });
    }
    let (name, target) = free_place(image, dir, name, "register under another name)")?;
    let source = image.canonicalize().map_err(|e| Error::io(image, e))?;
    if !copy {
        std::os::unix::fs::symlink(&source, &target).map_err(|e| Error::io(&target, e))?;
        return Template::inspect(target);
    }
    let staging = dir.join(format!(".{name}.register-{}", std::process::id()));
    let copied = bounded::checked_within(
        Command::new("cp")
            .arg("--sparse=always")
            .arg("--")
            .arg(&source)
            .arg(&staging),
        "copying the image",
        COPY_TIMEOUT,
    )
    .and_then(|_| fs::rename(&staging, &target).map_err(|e| Error::io(&target, e)));
    if let Err(e) = copied {
        // Best effort on the way out of the error being returned.
        let _ = fs::remove_file(&staging);
        return Err(e);
    }
    Template::inspect(target)
}
