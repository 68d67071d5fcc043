//! The Debian archive this host's apt already uses, read from its sources
//! (`/etc/apt/sources.list`, `sources.list.d/*.list` one-line entries and
//! `*.sources` deb822 stanzas), so that a newer suite is fetched from the
//! same mirror: no archive host name is written into `mln`.

use std::fs;
use std::path::Path;

/// One `deb` entry: an archive and its suites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// The archive's address (`http://deb.debian.org/debian`).
    pub uri: String,
    /// Its suites (`bookworm`, `bookworm-updates`).
    pub suites: Vec<String>,
    /// Its components (`main`).
    pub components: Vec<String>,
}

/// Every enabled binary (`deb`) entry under `etc_apt` (normally
/// `/etc/apt`), in the order apt reads them.
pub fn read_sources(etc_apt: &Path) -> Vec<AptSource> {
    let mut out = Vec::new();
    if let Ok(text) = fs::read_to_string(etc_apt.join("sources.list")) {
        out.extend(parse_one_line(&text));
    }
    let mut parts: Vec<_> = fs::read_dir(etc_apt.join("sources.list.d"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    parts.sort();
    for p in parts {
        let Ok(text) = fs::read_to_string(&p) else {
            continue;
        };
        match p.extension().and_then(|e| e.to_str()) {
            Some("list") => out.extend(parse_one_line(&text)),
            Some("sources") => out.extend(parse_deb822(&text)),
            _ => {}
        }
    }
    out
}

/// The archive that carries `suite` itself (not its `-updates` or
/// `-security` companions) with `main`: the Debian mirror of this host.
pub fn archive_for(sources: &[AptSource], suite: &str) -> Option<String> {
    sources
        .iter()
        .find(|s| s.suites.iter().any(|x| x == suite) && s.components.iter().any(|c| c == "main"))
        .map(|s| s.uri.trim_end_matches('/').to_string())
}

fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        // Options: `[arch=amd64 signed-by=...]`, possibly several words.
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptSource {
            uri: uri.to_string(),
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
        });
    }
    out
}

fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut components = Vec::new();
        let mut enabled = true;
        for line in stanza.lines() {
            if line.starts_with('#') || line.starts_with(' ') || line.starts_with('\t') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let words = || {
                value
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types = words(),
                "uris" => uris = words(),
                "suites" => suites = words(),
                "components" => components = words(),
                "enabled" => enabled = !value.trim().eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if !enabled || !types.iter().any(|t| t == "deb") {
            continue;
        }
        for uri in uris {
            out.push(AptSource {
                uri,
                suites: suites.clone(),
                components: components.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_and_one_line_entries_name_the_mirror() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("sources.list.d")).unwrap();
        fs::write(
            d.join("sources.list.d/debian.sources"),
            "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\n\
             Suites: bookworm bookworm-updates\nComponents: main contrib\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://mirror.example/debian-security\n\
             Suites: bookworm-security\nComponents: main\n",
        )
        .unwrap();
        fs::write(
            d.join("sources.list.d/other.list"),
            "deb [arch=amd64 signed-by=/k.gpg] https://vendor.example/apt stable main\n",
        )
        .unwrap();
        fs::write(
            d.join("sources.list.d/off.sources"),
            "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\n\
             Components: main\nEnabled: no\n",
        )
        .unwrap();
        let sources = read_sources(d);
        assert_eq!(sources.len(), 3, "{sources:?}");
        assert_eq!(
            archive_for(&sources, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(archive_for(&sources, "trixie"), None);
    }

    #[test]
    fn classic_sources_list() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("sources.list"),
            "# deb http://old.example/debian bookworm main\n\
             deb http://ftp.example.org/debian bookworm main non-free-firmware\n\
             deb-src http://ftp.example.org/debian bookworm main\n",
        )
        .unwrap();
        let sources = read_sources(dir.path());
        assert_eq!(
            archive_for(&sources, "bookworm").as_deref(),
            Some("http://ftp.example.org/debian")
        );
    }
}
