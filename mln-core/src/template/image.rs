//! Reading and changing the files inside an ext2/3/4 image without root
//! and without mounting it: `debugfs` (e2fsprogs) does the work.
//!
//! `debugfs -w` does not fail when one command of a script fails, so every
//! change is read back and compared before [`Edit::apply`] reports success.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::bounded;
use crate::error::{Error, Result};

/// How long one `debugfs` run may take (a script over a large image).
const DEBUGFS_TIMEOUT: Duration = Duration::from_secs(300);

/// An ext2/3/4 file system image, read and changed through `debugfs`.
///
/// ```no_run
/// use mln_core::template::Ext4Image;
/// let image = Ext4Image::open("/var/lib/mln/templates/debian-12.ext4")?;
/// let hostname = image.read("/etc/hostname")?;
/// let init = image.link_target("/sbin/init")?;
/// # Ok::<(), mln_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ext4Image {
    path: PathBuf,
}

/// One file system object inside an image, as `debugfs stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link (its target is read with [`Ext4Image::link_target`]).
    Symlink,
    /// Anything else (a device node, a socket, a FIFO).
    Other,
}

impl Ext4Image {
    /// The image at `path`; fails unless it holds an ext2/3/4 superblock
    /// (a partitioned disk image does not: its root partition must be
    /// taken out first).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut head = [0u8; 1082];
        fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(|e| Error::io(path, e))?;
        // The superblock starts at byte 1024; its magic 0xEF53 at 56.
        if head[1080..1082] != [0x53, 0xef] {
            return Err(Error::Template {
                path: path.to_path_buf(),
                reason: "not an ext2/3/4 file system image (a whole disk with a partition \
                         table? take its root partition out first)"
                    .into(),
            });
        }
        Ok(Ext4Image {
            path: path.to_path_buf(),
        })
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run one read-only `debugfs` request; its stdout and stderr.
    /// (`debugfs` exits 0 also when it could not open the image: its
    /// stderr tells.)
    fn request(&self, request: &str) -> Result<(String, String)> {
        let out = bounded::output_within(
            Command::new("debugfs")
                .arg("-R")
                .arg(request)
                .arg(&self.path),
            "debugfs",
            DEBUGFS_TIMEOUT,
        )?;
        if !out.status.success() {
            return Err(Error::Command {
                program: "debugfs".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// What `path` is in the image, or `None` when nothing is there.
    /// Symbolic links on the way are followed, the last one is not.
    pub fn entry(&self, path: &str) -> Result<Option<Entry>> {
        check_guest_path(path)?;
        let (stat, complaint) = self.request(&format!("stat \"{path}\""))?;
        let Some(kind) = stat
            .lines()
            .find_map(|l| l.split("Type: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        else {
            if complaint.contains("File not found by ext2_lookup") {
                return Ok(None);
            }
            // Not the image's answer but debugfs's failure to read it
            // (cannot open it, a short read of a cut file): said, never
            // taken for "nothing there".
            return Err(Error::Template {
                path: self.path.clone(),
                reason: format!(
                    "debugfs could not read {path} in it: {}",
                    debugfs_complaint(&complaint).unwrap_or_else(|| "it said nothing".into())
                ),
            });
        };
        Ok(Some(match kind {
            "regular" => Entry::File,
            "directory" => Entry::Dir,
            "symlink" => Entry::Symlink,
            _ => Entry::Other,
        }))
    }

    /// The content of the regular file `path`, or `None` when there is no
    /// regular file there.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if self.entry(path)? != Some(Entry::File) {
            return Ok(None);
        }
        let out = bounded::output_within(
            Command::new("debugfs")
                .arg("-R")
                .arg(format!("cat \"{path}\""))
                .arg(&self.path),
            "debugfs",
            DEBUGFS_TIMEOUT,
        )?;
        if let Some(complaint) = debugfs_complaint(&String::from_utf8_lossy(&out.stderr)) {
            return Err(Error::Template {
                path: self.path.clone(),
                reason: format!("debugfs could not read {path} in it: {complaint}"),
            });
        }
        Ok(Some(out.stdout))
    }

    /// The target of the symbolic link `path`, or `None` when `path` is
    /// no symbolic link.
    pub fn link_target(&self, path: &str) -> Result<Option<String>> {
        if self.entry(path)? != Some(Entry::Symlink) {
            return Ok(None);
        }
        let (stat, _) = self.request(&format!("stat \"{path}\""))?;
        if let Some(fast) = stat
            .lines()
            .find_map(|l| l.trim().strip_prefix("Fast link dest: "))
        {
            return Ok(Some(fast.trim_matches('"').to_string()));
        }
        // A long target lives in a data block: `cat` of the link's own
        // inode prints it.
        let out = bounded::output_within(
            Command::new("debugfs")
                .arg("-R")
                .arg(format!("cat \"{path}\""))
                .arg(&self.path),
            "debugfs",
            DEBUGFS_TIMEOUT,
        )?;
        Ok(Some(
            String::from_utf8_lossy(&out.stdout)
                .trim_end_matches('\0')
                .to_string(),
        ))
    }

    /// Start a set of changes, made by [`Edit::apply`].
    pub fn edit(&self) -> Edit<'_> {
        Edit {
            image: self,
            steps: Vec::new(),
        }
    }
}

/// What debugfs said on stderr, without its version banner; `None` when
/// that is all it said.
fn debugfs_complaint(stderr: &str) -> Option<String> {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("debugfs 1."))
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

/// A change to make in an image.
#[derive(Debug, Clone)]
enum Step {
    Dir(String),
    File {
        path: String,
        content: Vec<u8>,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// Changes to an [`Ext4Image`], made together by [`Edit::apply`]: folders
/// (with their parents), regular files owned by root, symbolic links.
/// Existing files and links at those paths are replaced.
#[derive(Debug)]
pub struct Edit<'a> {
    image: &'a Ext4Image,
    steps: Vec<Step>,
}

impl Edit<'_> {
    /// Make folder `path` and its parents (mode 0755, owned by root) where
    /// missing.
    pub fn dir(mut self, path: &str) -> Self {
        self.steps.push(Step::Dir(path.to_string()));
        self
    }

    /// Write the regular file `path` (its folder made where missing),
    /// owned by root, with permission bits `mode`.
    pub fn file(mut self, path: &str, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.steps.push(Step::File {
            path: path.to_string(),
            content: content.into(),
            mode,
        });
        self
    }

    /// Make `path` a symbolic link to `target` (its folder made where
    /// missing).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.steps.push(Step::Symlink {
            path: path.to_string(),
            target: target.to_string(),
        });
        self
    }

    /// Make every change with one `debugfs -w` run, then read each back:
    /// an error names the first path that is not as asked (a full image,
    /// a read-only one, a folder where a file should go).
    pub fn apply(self) -> Result<()> {
        let image = &self.image.path;
        let scratch = scratch_dir(image);
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
        let result = self.run_in(&scratch).and_then(|()| self.verify());
        let _ = fs::remove_dir_all(&scratch);
        result
    }

    fn run_in(&self, scratch: &Path) -> Result<()> {
        let mut script = String::new();
        let mut dirs = Folders::default();
        let mut mkdir_p = |script: &mut String, path: &str| dirs.make(self.image, script, path);
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Dir(path) => mkdir_p(&mut script, path)?,
                Step::File {
                    path,
                    content,
                    mode,
                } => {
                    let (dir, name) = split(path)?;
                    mkdir_p(&mut script, dir)?;
                    let local = scratch.join(i.to_string());
                    fs::write(&local, content).map_err(|e| Error::io(&local, e))?;
                    let local = script_path(&local)?;
                    let _ = writeln!(script, "cd \"{dir}\"\nrm \"{name}\"");
                    let _ = writeln!(script, "write \"{local}\" \"{name}\"");
                    let _ = writeln!(script, "sif \"{name}\" uid 0\nsif \"{name}\" gid 0");
                    let _ = writeln!(script, "sif \"{name}\" mode 0{:o}", 0o100000 | mode);
                    script.push_str("cd /\n");
                }
                Step::Symlink { path, target } => {
                    check_guest_path(target)?;
                    let (dir, name) = split(path)?;
                    mkdir_p(&mut script, dir)?;
                    let _ = writeln!(script, "cd \"{dir}\"\nrm \"{name}\"");
                    let _ = writeln!(script, "symlink \"{name}\" \"{target}\"\ncd /");
                }
            }
        }
        let commands = scratch.join("commands");
        fs::write(&commands, script).map_err(|e| Error::io(&commands, e))?;
        bounded::checked_within(
            Command::new("debugfs")
                .arg("-w")
                .arg("-f")
                .arg(&commands)
                .arg(&self.image.path),
            "debugfs -w",
            DEBUGFS_TIMEOUT,
        )
        .map(drop)
    }

    fn verify(&self) -> Result<()> {
        let wrong = |path: &str, what: &str| Error::Template {
            path: self.image.path.clone(),
            reason: format!(
                "{path} is not {what} after writing it (is the image full or read-only?)"
            ),
        };
        for step in &self.steps {
            match step {
                Step::Dir(path) => {
                    if self.image.entry(path)? != Some(Entry::Dir) {
                        return Err(wrong(path, "a folder"));
                    }
                }
                Step::File { path, content, .. } => {
                    if self.image.read(path)?.as_ref() != Some(content) {
                        return Err(wrong(path, "the file written"));
                    }
                }
                Step::Symlink { path, target } => {
                    if self.image.link_target(path)?.as_deref() != Some(target.as_str()) {
                        return Err(wrong(path, "the link made"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The folders an edit has made sure of.
#[derive(Default)]
struct Folders(std::collections::BTreeSet<String>);

impl Folders {
    /// `mkdir` for `path` and each of its parents that is not there yet.
    /// Never for one that is: debugfs 1.47's `mkdir` of an existing name
    /// leaves a new, unconnected folder inode behind (e2fsck finds it).
    fn make(&mut self, image: &Ext4Image, script: &mut String, path: &str) -> Result<()> {
        check_guest_path(path)?;
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            if self.0.contains(&at) {
                continue;
            }
            match image.entry(&at)? {
                None => {
                    let _ = writeln!(script, "mkdir \"{at}\"");
                }
                Some(Entry::Dir | Entry::Symlink) => {}
                Some(_) => {
                    return Err(Error::Template {
                        path: image.path.clone(),
                        reason: format!("{at} is there, and is no folder"),
                    })
                }
            }
            self.0.insert(at.clone());
        }
        Ok(())
    }
}

/// `/etc/mln/boot` as (`/etc/mln`, `boot`).
fn split(path: &str) -> Result<(&str, &str)> {
    check_guest_path(path)?;
    match path.rsplit_once('/') {
        Some((dir, name)) if !name.is_empty() => Ok((if dir.is_empty() { "/" } else { dir }, name)),
        _ => Err(Error::InvalidName {
            name: path.to_string(),
            reason: "a file in an image is an absolute path to a name",
        }),
    }
}

/// A path inside an image must be absolute and fit in one quoted word of
/// a debugfs command.
fn check_guest_path(path: &str) -> Result<()> {
    if !path.starts_with('/') || path.contains(['"', '\n', '\r', '\0']) || path.contains("/../") {
        return Err(Error::InvalidName {
            name: path.to_string(),
            reason: "a path in an image is absolute, without `\"`, `..` or line breaks",
        });
    }
    Ok(())
}

/// A path on this machine as one quoted word of a debugfs command.
fn script_path(path: &Path) -> Result<String> {
    match path.to_str() {
        Some(s) if !s.contains(['"', '\n', '\r']) => Ok(s.to_string()),
        _ => Err(Error::UnusablePath {
            path: path.to_path_buf(),
            what: "a file debugfs reads",
            reason: "not UTF-8, or contains `\"` or a line break",
        }),
    }
}

/// The scratch folder beside `image` for the files an edit writes in.
fn scratch_dir(image: &Path) -> PathBuf {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    image.with_file_name(format!(".{name}.edit-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_folder_and_name() {
        assert_eq!(split("/etc/mln/boot").unwrap(), ("/etc/mln", "boot"));
        assert_eq!(split("/init").unwrap(), ("/", "init"));
        assert!(split("/etc/").is_err());
        assert!(split("etc/x").is_err());
        assert!(split("/etc/\"x").is_err());
    }
}
