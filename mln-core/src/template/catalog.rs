//! What a templates folder holds: every regular file (and link to one) by
//! its name, with its size and SHA-256, as `mln template list` shows it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Template;
use crate::disk::transfer;
use crate::error::{Error, Result};

/// One template in a templates folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateFile {
    /// Its name: the file name, what a project's `template NAME` says.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// For a link (`debian-12.ext4` naming the image built last), the
    /// name it points to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The image's size, bytes (as the guest sees its disk).
    pub size: u64,
    /// What it takes on disk (the image is sparse), bytes.
    pub allocated: u64,
    /// SHA-256 of its content, hex (holes read as zeros).
    pub sha256: String,
    /// The line its guests print once booted, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_marker: Option<String>,
}

/// Every template in `dir`, by name: regular files and links to them,
/// hidden files (names starting with `.`, a build or import under way)
/// left out. A folder that does not exist holds none. Each image is read
/// whole once for its checksum, so this takes about a second per GB.
///
/// ```no_run
/// for t in mln_core::template::list("/var/lib/mln/templates".as_ref())? {
///     println!("{} {} {}", t.name, t.size, t.sha256);
/// }
/// # Ok::<(), mln_core::Error>(())
/// ```
pub fn list(dir: &Path) -> Result<Vec<TemplateFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with('.') && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    // A link and the image it names are read once.
    let mut sums: BTreeMap<PathBuf, (String, Option<String>)> = BTreeMap::new();
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let real = path.canonicalize().map_err(|e| Error::io(&path, e))?;
        let meta = fs::metadata(&real).map_err(|e| Error::io(&real, e))?;
        let link = fs::read_link(&path)
            .ok()
            .map(|t| t.to_string_lossy().into_owned());
        let (sha256, boot_marker) = match sums.get(&real) {
            Some(known) => known.clone(),
            None => {
                let sum = transfer::describe(&real)?.sha256;
                let marker = Template::inspect(&real)?.boot_marker;
                sums.insert(real.clone(), (sum.clone(), marker.clone()));
                (sum, marker)
            }
        };
        out.push(TemplateFile {
            name,
            path,
            link,
            size: meta.len(),
            allocated: std::os::unix::fs::MetadataExt::blocks(&meta) * 512,
            sha256,
            boot_marker,
        });
    }
    Ok(out)
}
