//! Site settings: `/etc/mln/mln.conf`, then the user's `~/.mln` (MLN
//! 1.0.8's own file), `KEY VALUE` lines, `#` comments. The user's file
//! wins over the site's; command-line flags and environment variables win
//! over both (the caller applies those). Each value remembers where it
//! came from, for `mln config`.
//!
//! The keys MLN users set that still mean something here:
//!
//! | key | meaning |
//! |---|---|
//! | `projects` | the state folder (where projects are kept) |
//! | `templates`, `template_dir` | the templates folder |
//! | `files` | the folder a host's `files` sources are relative to |
//! | `default_kernel`, `uml` | the UML kernel guests boot with |
//! | `default_memory` | memory of a host that does not say (`64M`) |
//! | `default_template` | template of a host that does not say |
//! | `xen_kernel`, `xen_ramdisk` | kernel and ramdisk of a Xen host that does not say |
//! | `xen_bridge` | the bridge of a Xen interface that names no switch |
//! | `lvm_vg` | the LVM volume group of a host with `lvm` |
//! | `plugins_dir` | the folder of plugin programs: the site's in the site file, the user's in `~/.mln` ([`crate::plugin`]) |
//!
//! Other keys are kept and shown, and used by nothing.
//!
//! ```
//! use mln_lang::site::SiteConfig;
//! let site = SiteConfig::parse_text("/etc/mln/mln.conf", "default_memory 128M\n# a comment\nprojects /srv/mln\n");
//! assert_eq!(site.get("projects"), Some("/srv/mln"));
//! assert_eq!(site.memory().unwrap(), Some(128 << 20));
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The site configuration file.
pub const SITE_FILE: &str = "/etc/mln/mln.conf";

/// One setting and the file (and line) it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The key, as written (`template_dir` is kept as such).
    pub key: String,
    /// The value, `$VAR`s of the environment expanded.
    pub value: String,
    /// `FILE:LINE`.
    pub source: String,
}

/// Every setting in force, the later files' over the earlier ones'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteConfig {
    /// The settings, one per key, in the order first seen.
    pub settings: Vec<Setting>,
}

/// Keys that name the same setting.
const ALIASES: &[(&str, &str)] = &[
    ("template_dir", "templates"),
    ("uml", "default_kernel"),
    ("plugin_dir", "plugins_dir"),
];

fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, k)| k)
}

impl SiteConfig {
    /// The site file, then `~/.mln` (`$HOME`); missing files are skipped.
    pub fn load() -> SiteConfig {
        let mut files = vec![PathBuf::from(SITE_FILE)];
        if let Some(home) = std::env::var_os("HOME") {
            files.push(Path::new(&home).join(".mln"));
        }
        Self::load_files(&files)
    }

    /// The settings of `files`, in order (later ones win).
    pub fn load_files(files: &[PathBuf]) -> SiteConfig {
        let mut site = SiteConfig::default();
        for f in files {
            if let Ok(text) = std::fs::read_to_string(f) {
                site.merge(Self::parse_text(&f.display().to_string(), &text));
            }
        }
        site
    }

    /// The settings in `text` (read from `name`).
    pub fn parse_text(name: &str, text: &str) -> SiteConfig {
        let mut site = SiteConfig::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.splitn(2, char::is_whitespace);
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            site.set(Setting {
                key: key.to_string(),
                value: expand(value.trim()),
                source: format!("{name}:{}", i + 1),
            });
        }
        site
    }

    fn merge(&mut self, other: SiteConfig) {
        for s in other.settings {
            self.set(s);
        }
    }

    fn set(&mut self, setting: Setting) {
        let key = canonical(&setting.key).to_string();
        match self.settings.iter_mut().find(|s| canonical(&s.key) == key) {
            Some(old) => *old = setting,
            None => self.settings.push(setting),
        }
    }

    /// The value of `key` (or of a key naming the same setting).
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = canonical(key);
        self.settings
            .iter()
            .find(|s| canonical(&s.key) == key)
            .map(|s| s.value.as_str())
    }

    /// Where `key` (or a key naming the same setting) was set: `FILE:LINE`.
    pub fn source(&self, key: &str) -> Option<&str> {
        let key = canonical(key);
        self.settings
            .iter()
            .find(|s| canonical(&s.key) == key)
            .map(|s| s.source.as_str())
    }

    /// `key` as a path.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(PathBuf::from)
    }

    /// `default_memory` in bytes; `Err` says why it is not a size.
    pub fn memory(&self) -> Result<Option<u64>, String> {
        match self.get("default_memory") {
            None => Ok(None),
            Some(v) => crate::resolve::parse_size_text(v)
                .map(Some)
                .ok_or_else(|| format!("default_memory {v:?} is not a size such as 64M")),
        }
    }
}

/// `$NAME` and `${NAME}` replaced by the environment's values (MLN does
/// the same with its settings).
fn expand(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(j) => (&b[..j], &b[j + 1..]),
                None => (b, ""),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&std::env::var(name).unwrap_or_default());
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_file_wins_and_aliases_name_one_setting() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("mln.conf");
        let user = dir.path().join(".mln");
        std::fs::write(
            &site,
            "templates /srv/templates\ndefault_memory 96M\nlvm_vg vg0\n",
        )
        .unwrap();
        std::fs::write(
            &user,
            "template_dir /home/me/t # mine\nprojects /home/me/p\n",
        )
        .unwrap();
        let c = SiteConfig::load_files(&[site, user.clone()]);
        assert_eq!(c.get("templates"), Some("/home/me/t"));
        assert_eq!(c.get("template_dir"), Some("/home/me/t"));
        let t = c.settings.iter().find(|s| s.key == "template_dir").unwrap();
        assert_eq!(t.source, format!("{}:1", user.display()));
        assert_eq!(c.memory().unwrap(), Some(96 << 20));
        assert_eq!(c.get("lvm_vg"), Some("vg0"));
        assert_eq!(c.get("nothing"), None);
    }

    #[test]
    fn environment_variables_are_expanded() {
        let c = SiteConfig::parse_text("x", "files $HOME/mln-files\n");
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(c.get("files"), Some(format!("{home}/mln-files").as_str()));
        assert!(SiteConfig::parse_text("x", "default_memory lots\n")
            .memory()
            .is_err());
    }
}
