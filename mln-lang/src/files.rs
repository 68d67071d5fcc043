//! Where a host's `files { SRC DEST [MODE] }` sources are: as in MLN
//! 1.0.8, a relative `SRC` is relative to the site's files folder (the
//! `files` line of `~/.mln` or `/etc/mln/mln.conf`); where no files
//! folder is set, to the project file's folder. An absolute `SRC` is
//! taken as it is (MLN prefixed the files folder to it too). A source may
//! be a folder: it is copied whole.

use std::path::{Path, PathBuf};

use crate::model::Project;

/// A `files` source that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilesError {
    /// The source of one of a host's `files` lines does not exist.
    #[error("host {host}: files source `{written}` not found: {path} {why}")]
    Missing {
        /// The host whose `files` block names it.
        host: String,
        /// The source as written.
        written: String,
        /// Where it was looked for.
        path: PathBuf,
        /// What the file system answered, and which folder a relative
        /// source was taken from.
        why: String,
    },
}

/// The folders relative `files` sources are taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesFolders<'a> {
    /// The site's files folder (`files` in the site settings), if set.
    pub site: Option<&'a Path>,
    /// The project file's folder, used when no site folder is set.
    pub project: Option<&'a Path>,
}

impl FilesFolders<'_> {
    /// The path `src` names, and in words where a relative one was
    /// taken from.
    fn locate(&self, src: &str) -> (PathBuf, String) {
        let path = Path::new(src);
        if path.is_absolute() {
            return (path.to_path_buf(), String::new());
        }
        match (self.site, self.project) {
            (Some(site), _) => (
                site.join(path),
                format!("(relative to the site's files folder {})", site.display()),
            ),
            (None, Some(project)) => (
                project.join(path),
                format!(
                    "(relative to the project's folder {}: no files folder is set; add \
                     `files FOLDER` to ~/.mln)",
                    project.display()
                ),
            ),
            (None, None) => (
                path.to_path_buf(),
                "(relative to the current folder)".into(),
            ),
        }
    }
}

/// Make every host's `files` source an absolute path (see the module
/// documentation for where a relative one is looked for), and check that
/// each exists. The first missing source is the error; it names its host.
///
/// ```
/// use mln_lang::files::{locate_files, FilesFolders, FilesError};
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("motd"), "hi\n").unwrap();
/// let mut p = mln_lang::load_str("p.mln",
///     "global { project p }\nhost web {\n files {\n  motd /etc/motd\n }\n}\n").unwrap().project().clone();
/// let folders = FilesFolders { site: Some(dir.path()), project: None };
/// locate_files(&mut p, &folders).unwrap();
/// assert_eq!(p.hosts[0].files[0].src, dir.path().join("motd").display().to_string());
/// p.hosts[0].files[0].src = "gone".into();
/// let err = locate_files(&mut p, &folders).unwrap_err();
/// assert!(matches!(&err, FilesError::Missing { host, .. } if host == "web"), "{err}");
/// ```
pub fn locate_files(project: &mut Project, folders: &FilesFolders<'_>) -> Result<(), FilesError> {
    for host in &mut project.hosts {
        for file in &mut host.files {
            let (path, relative) = folders.locate(&file.src);
            if let Err(e) = std::fs::metadata(&path) {
                return Err(FilesError::Missing {
                    host: host.name.clone(),
                    written: file.src.clone(),
                    path,
                    why: format!(
                        "({e}){}",
                        if relative.is_empty() {
                            String::new()
                        } else {
                            format!(" {relative}")
                        }
                    ),
                });
            }
            file.src = path.display().to_string();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_with(src: &str) -> Project {
        let text =
            format!("global {{ project p }}\nhost web {{\n files {{\n  {src} /etc/x\n }}\n}}\n");
        crate::load_str("p.mln", &text).unwrap().project().clone()
    }

    #[test]
    fn without_a_site_folder_a_relative_source_is_in_the_project_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        let mut p = project_with("conf");
        let folders = FilesFolders {
            site: None,
            project: Some(dir.path()),
        };
        locate_files(&mut p, &folders).unwrap();
        assert_eq!(
            p.hosts[0].files[0].src,
            dir.path().join("conf").display().to_string()
        );
        // Missing: the error says which folder it was looked for in, and
        // how to name a files folder.
        let mut p = project_with("gone");
        let err = locate_files(&mut p, &folders).unwrap_err().to_string();
        assert!(
            err.starts_with("host web: files source `gone` not found:"),
            "{err}"
        );
        assert!(
            err.contains("relative to the project's folder") && err.contains("~/.mln"),
            "{err}"
        );
    }

    #[test]
    fn an_absolute_source_is_taken_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("motd");
        std::fs::write(&file, "hi").unwrap();
        let mut p = project_with(&file.display().to_string());
        let folders = FilesFolders {
            site: Some(Path::new("/nonexistent/site")),
            project: None,
        };
        locate_files(&mut p, &folders).unwrap();
        assert_eq!(p.hosts[0].files[0].src, file.display().to_string());
    }
}
