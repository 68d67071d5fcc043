//! Finding plugin programs: the executables in the site's, the user's and
//! the given plugins folders, by file name, a later folder's over an
//! earlier one's, and the built-ins under them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::builtin::Builtin;
use super::PluginError;
use crate::site::{SiteConfig, SITE_FILE};

/// The site's plugins folder when `/etc/mln/mln.conf` names none (MLN
/// 1.0.8's own).
pub const SITE_PLUGINS: &str = "/etc/mln/plugins";

/// The user's plugins folder, under `$HOME`, when `~/.mln` names none.
pub const USER_PLUGINS: &str = ".mln.d/plugins";

/// The environment variable naming one more plugins folder (as
/// `--plugins-dir` does).
pub const PLUGINS_DIR_ENV: &str = "MLN_PLUGINS_DIR";

/// Where a plugin was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Built into `mln`.
    Builtin,
    /// The site's folder.
    Site,
    /// The user's folder.
    User,
    /// A folder given on the command line or in the environment.
    Given,
}

/// What runs for a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Program {
    /// A built-in, which runs in `mln` itself.
    Builtin(Builtin),
    /// An executable file.
    Executable(PathBuf),
}

/// One plugin: its name (the file name), what runs and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plugin {
    /// The file name (`motd`, `hostsFile`); names it in messages.
    pub name: String,
    /// What runs.
    pub program: Program,
    /// Where it was found.
    pub origin: Origin,
}

/// The folders plugins are looked for in, earliest first: a plugin in a
/// later folder overrides one of the same name in an earlier folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginFolders {
    /// The site's folder (`plugins_dir` of `/etc/mln/mln.conf`, else
    /// [`SITE_PLUGINS`]).
    pub site: Option<PathBuf>,
    /// The user's folder (`plugins_dir` of `~/.mln`, else
    /// `~/`[`USER_PLUGINS`]).
    pub user: Option<PathBuf>,
    /// Folders given by the caller (`--plugins-dir`, [`PLUGINS_DIR_ENV`]),
    /// the last one winning.
    pub given: Vec<PathBuf>,
}

impl PluginFolders {
    /// The site's and the user's folders, as `/etc/mln/mln.conf` and
    /// `~/.mln` say (the user's file naming a `plugins_dir` names the
    /// user's folder; it does not replace the site's), plus the folder
    /// in [`PLUGINS_DIR_ENV`] when set.
    pub fn from_settings() -> PluginFolders {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let site = SiteConfig::load_files(&[PathBuf::from(SITE_FILE)]);
        let user = home
            .as_ref()
            .map(|h| SiteConfig::load_files(&[h.join(".mln")]))
            .unwrap_or_default();
        let mut folders = PluginFolders::from_configs(&site, &user, home.as_deref());
        if let Some(dir) = std::env::var_os(PLUGINS_DIR_ENV).filter(|d| !d.is_empty()) {
            folders.given.push(PathBuf::from(dir));
        }
        folders
    }

    /// The folders the site's and the user's settings name, `home` being
    /// the user's home folder (none: no user folder unless named).
    ///
    /// ```
    /// use mln_lang::plugin::PluginFolders;
    /// use mln_lang::site::SiteConfig;
    /// let site = SiteConfig::parse_text("mln.conf", "plugins_dir /srv/mln/plugins\n");
    /// let f = PluginFolders::from_configs(&site, &SiteConfig::default(), Some("/home/me".as_ref()));
    /// assert_eq!(f.site.unwrap(), std::path::Path::new("/srv/mln/plugins"));
    /// assert_eq!(f.user.unwrap(), std::path::Path::new("/home/me/.mln.d/plugins"));
    /// ```
    pub fn from_configs(site: &SiteConfig, user: &SiteConfig, home: Option<&Path>) -> Self {
        PluginFolders {
            site: Some(
                site.path("plugins_dir")
                    .unwrap_or_else(|| PathBuf::from(SITE_PLUGINS)),
            ),
            user: user
                .path("plugins_dir")
                .or_else(|| home.map(|h| h.join(USER_PLUGINS))),
            given: Vec::new(),
        }
    }

    fn in_order(&self) -> impl Iterator<Item = (&Path, Origin)> {
        self.site
            .iter()
            .map(|p| (p.as_path(), Origin::Site))
            .chain(self.user.iter().map(|p| (p.as_path(), Origin::User)))
            .chain(self.given.iter().map(|p| (p.as_path(), Origin::Given)))
    }
}

/// Every plugin, by name: the built-ins, then each folder's executables
/// over them in folder order; sorted by name. A folder that does not
/// exist holds none; one that cannot be read is an error (a plugin that
/// should stop an action must not be skipped silently).
pub(crate) fn discover(folders: &PluginFolders) -> Result<Vec<Plugin>, PluginError> {
    let mut by_name: BTreeMap<String, Plugin> = Builtin::ALL
        .iter()
        .map(|b| {
            (
                b.name().to_string(),
                Plugin {
                    name: b.name().to_string(),
                    program: Program::Builtin(*b),
                    origin: Origin::Builtin,
                },
            )
        })
        .collect();
    for (dir, origin) in folders.in_order() {
        for (name, path) in executables(dir)? {
            let plugin = Plugin {
                name: name.clone(),
                program: Program::Executable(path),
                origin,
            };
            if let Some(old) = by_name.insert(name, plugin) {
                log::info!(
                    "plugin {}: the {:?} one overrides the {:?} one",
                    old.name,
                    origin,
                    old.origin
                );
            }
        }
    }
    Ok(by_name.into_values().collect())
}

/// The executable files in `dir` by file name: not hidden, not editor
/// backups (`~`), following symbolic links; other files are skipped.
fn executables(dir: &Path) -> Result<Vec<(String, PathBuf)>, PluginError> {
    use std::os::unix::fs::PermissionsExt;
    let folder_error = |source| PluginError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(folder_error(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(folder_error)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        // `metadata` follows a link: a link to a program is that program.
        let Ok(meta) = std::fs::metadata(&path) else {
            log::info!("plugin {}: a broken link, skipped", path.display());
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            log::info!("{}: not an executable file, skipped", path.display());
            continue;
        }
        found.push((name.to_string(), path));
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn program(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn later_folders_override_by_name_and_the_list_is_sorted() {
        let t = tempfile::tempdir().unwrap();
        let (site, user, given) = (t.path().join("s"), t.path().join("u"), t.path().join("g"));
        for d in [&site, &user, &given] {
            std::fs::create_dir(d).unwrap();
        }
        program(&site, "zeta", 0o755);
        program(&site, "motd", 0o755);
        let user_motd = program(&user, "motd", 0o700);
        program(&user, "alpha", 0o755);
        let given_hosts = program(&given, "hostsFile", 0o755);
        let found = discover(&PluginFolders {
            site: Some(site),
            user: Some(user),
            given: vec![given],
        })
        .unwrap();
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["alpha", "hostsFile", "motd", "zeta"]);
        let motd = &found[2];
        assert_eq!(motd.origin, Origin::User);
        assert_eq!(motd.program, Program::Executable(user_motd));
        assert_eq!(found[1].program, Program::Executable(given_hosts));
    }

    #[test]
    fn only_visible_executables_count_and_missing_folders_hold_none() {
        let t = tempfile::tempdir().unwrap();
        program(t.path(), "README", 0o644);
        program(t.path(), ".hidden", 0o755);
        program(t.path(), "motd~", 0o755);
        std::fs::create_dir(t.path().join("sub")).unwrap();
        program(t.path(), "motd", 0o755);
        std::os::unix::fs::symlink(t.path().join("motd"), t.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(t.path().join("gone"), t.path().join("broken")).unwrap();
        let found = discover(&PluginFolders {
            site: Some(t.path().join("missing")),
            user: Some(t.path().to_path_buf()),
            given: Vec::new(),
        })
        .unwrap();
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["hostsFile", "linked", "motd"]);
        assert_eq!(found[0].origin, Origin::Builtin);
    }

    #[test]
    fn an_unreadable_folder_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let file = program(t.path(), "not-a-folder", 0o644);
        let e = discover(&PluginFolders {
            given: vec![file.clone()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    }

    #[test]
    fn the_users_file_names_the_users_folder_only() {
        let site = SiteConfig::default();
        let user = SiteConfig::parse_text("~/.mln", "plugins_dir /home/me/p\n");
        let f = PluginFolders::from_configs(&site, &user, Some(Path::new("/home/me")));
        assert_eq!(f.site.as_deref(), Some(Path::new(SITE_PLUGINS)));
        assert_eq!(f.user.as_deref(), Some(Path::new("/home/me/p")));
        let f = PluginFolders::from_configs(&site, &SiteConfig::default(), None);
        assert_eq!(f.user, None);
    }
}
