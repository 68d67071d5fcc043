//! A guest's `files` on its configuration disk: each source file becomes
//! `files/NAME` on the disk and is copied to its destination at boot. A
//! source folder is copied whole (as MLN 1.0.8's `cp -fr` did): every file
//! under it gets a disk name of its own, every folder is made.

use std::path::{Path, PathBuf};

use super::GuestFile;
use crate::error::{Error, Result};

/// Mode of a copied file when neither the line nor a source folder's file
/// gives one.
const DEFAULT_MODE: u32 = 0o644;

/// One thing the boot script places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Copy `files/NAME` (read from `source`) to `dest` with `mode`.
    File {
        source: PathBuf,
        name: String,
        dest: String,
        mode: u32,
    },
    /// Make the folder `dest` with `mode`.
    Dir { dest: String, mode: u32 },
}

/// Everything `files` places, in order: the `i`th line's file is named
/// `i`, the files under the `i`th line's folder `i.1`, `i.2`, ... (sorted
/// by path, so the names are the same on every run). A line's mode, when
/// given, is every placed file's and folder's (MLN ran `chmod -R`);
/// otherwise a folder's files keep their own permission bits.
pub(crate) fn placed(host: &str, files: &[GuestFile]) -> Result<Vec<Placed>> {
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let meta = std::fs::metadata(&f.source).map_err(|e| Error::io(&f.source, e))?;
        if !meta.is_dir() {
            out.push(Placed::File {
                source: f.source.clone(),
                name: i.to_string(),
                dest: f.dest.clone(),
                mode: f.mode.unwrap_or(DEFAULT_MODE),
            });
            continue;
        }
        out.push(Placed::Dir {
            dest: f.dest.clone(),
            mode: f.mode.unwrap_or(mode_of(&meta)),
        });
        let mut next = 0;
        walk(host, &f.source, &f.dest, f.mode, i, &mut next, &mut out)?;
    }
    Ok(out)
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// Add what is under the folder `dir` (placed at `dest`); symbolic links
/// to files are followed, those to folders are not descended into.
fn walk(
    host: &str,
    dir: &Path,
    dest: &str,
    mode: Option<u32>,
    line: usize,
    next: &mut usize,
    out: &mut Vec<Placed>,
) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.contains(['\n', '\r', '\0']) {
            return Err(Error::InvalidGuestConfig {
                host: host.to_string(),
                field: format!("file {}", path.display()),
                reason: "a file name under a copied folder has a line break".into(),
            });
        }
        let to = format!("{}/{name}", dest.trim_end_matches('/'));
        let link = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            if link.file_type().is_symlink() {
                continue;
            }
            out.push(Placed::Dir {
                dest: to.clone(),
                mode: mode.unwrap_or(mode_of(&meta)),
            });
            walk(host, &path, &to, mode, line, next, out)?;
        } else if meta.is_file() {
            *next += 1;
            out.push(Placed::File {
                source: path.clone(),
                name: format!("{line}.{next}"),
                dest: to,
                mode: mode.unwrap_or(mode_of(&meta)),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_placed_whole_with_its_files_named_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("conf.d")).unwrap();
        std::fs::write(site.join("index.html"), "hi").unwrap();
        std::fs::write(site.join("conf.d/a.conf"), "a").unwrap();
        let single = dir.path().join("motd");
        std::fs::write(&single, "m").unwrap();
        let files = [
            GuestFile {
                source: single.clone(),
                dest: "/etc/motd".into(),
                mode: None,
            },
            GuestFile {
                source: site.clone(),
                dest: "/var/www/".into(),
                mode: Some(0o755),
            },
        ];
        let placed = placed("web", &files).unwrap();
        let file = |source: PathBuf, name: &str, dest: &str, mode| Placed::File {
            source,
            name: name.into(),
            dest: dest.into(),
            mode,
        };
        let folder = |dest: &str| Placed::Dir {
            dest: dest.into(),
            mode: 0o755,
        };
        assert_eq!(
            placed,
            [
                file(single, "0", "/etc/motd", 0o644),
                folder("/var/www/"),
                folder("/var/www/conf.d"),
                file(
                    site.join("conf.d/a.conf"),
                    "1.1",
                    "/var/www/conf.d/a.conf",
                    0o755
                ),
                file(site.join("index.html"), "1.2", "/var/www/index.html", 0o755),
            ]
        );
    }

    #[test]
    fn a_missing_source_names_its_path() {
        let files = [GuestFile {
            source: "/nonexistent/mln-src".into(),
            dest: "/x".into(),
            mode: None,
        }];
        let err = placed("web", &files).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/mln-src"), "{err}");
    }
}
