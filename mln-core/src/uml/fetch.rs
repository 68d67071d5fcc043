//! Fetching a UML kernel that boots on this host: Debian's newer
//! `user-mode-linux` and the C library it needs, downloaded with
//! `apt-get download` from a newer suite of the archive the host's own apt
//! sources name (through a private sources list, lists folder and cache:
//! the host's apt configuration is not touched, and no root is needed
//! where apt allows it), unpacked with `dpkg-deb -x`, and made to run
//! here by pointing its ELF interpreter and library path at that C
//! library (`patchelf`; the host's, or the host suite's package unpacked
//! alongside when it is not installed).
//!
//! Running the kernel as `ld-linux-x86-64.so.2 linux.uml` instead would
//! not do: UML computes its memory layout from where it was loaded, and
//! gets it wrong when started through the loader.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kernel::UmlKernel;
use super::sources::{archive_for, read_sources};
use crate::bounded::checked_within;
use crate::error::{Error, Result};

const NETWORK: Duration = Duration::from_secs(600);
const LOCAL: Duration = Duration::from_secs(120);

/// Where to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSource {
    /// The archive (`http://deb.debian.org/debian`).
    pub archive: String,
    /// The host's own suite (`bookworm`), for `patchelf`.
    pub host_suite: String,
    /// The newer suite the kernel comes from (`unstable`).
    pub suite: String,
}

impl FetchSource {
    /// The archive this host's apt sources use for its own suite (read
    /// from `/etc/os-release` and `/etc/apt`), and `suite` from it.
    pub fn from_host(suite: &str) -> Result<FetchSource> {
        let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
        let host_suite = os
            .lines()
            .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
            .map(|v| v.trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Backend {
                what: "/etc/os-release".into(),
                message: "names no VERSION_CODENAME: is this Debian?".into(),
            })?;
        let sources = read_sources(Path::new("/etc/apt"));
        let archive = archive_for(&sources, &host_suite).ok_or_else(|| Error::Backend {
            what: "/etc/apt".into(),
            message: format!(
                "no apt source carries the host's suite {host_suite} with `main`: \
                 cannot tell which Debian archive to fetch from"
            ),
        })?;
        Ok(FetchSource {
            archive,
            host_suite,
            suite: suite.to_string(),
        })
    }
}

/// A kernel fetched and made runnable here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedKernel {
    /// The runnable kernel.
    pub path: PathBuf,
    /// Its version (`--version`).
    pub version: String,
    /// The Debian package version it came from (`7.2um1`).
    pub package: String,
    /// The archive and suite it came from.
    pub archive: String,
    /// The suite.
    pub suite: String,
}

/// Download, unpack and patch into `dir/uml-PACKAGEVERSION/` (`dir` is
/// created); `scratch` holds apt's lists and the packages meanwhile and
/// is removed afterwards. `say` hears each step.
pub fn fetch_kernel(dir: &Path, source: &FetchSource, say: &dyn Fn(&str)) -> Result<FetchedKernel> {
    // apt takes relative paths in its options as relative to /etc/apt, and
    // the kernel's interpreter must be found from anywhere.
    let dir = &std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    let scratch = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let result = fetch_into(dir, &scratch, source, say);
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn fetch_into(
    dir: &Path,
    scratch: &Path,
    source: &FetchSource,
    say: &dyn Fn(&str),
) -> Result<FetchedKernel> {
    let apt = Apt::new(scratch, source)?;
    say(&format!(
        "reading {} {} and {} from {}",
        "package lists of", source.suite, source.host_suite, source.archive
    ));
    apt.run(&["update"], NETWORK)?;
    let want_patchelf = which("patchelf").is_none();
    let mut packages = vec![
        format!("user-mode-linux/{}", source.suite),
        format!("libc6/{}", source.suite),
    ];
    if want_patchelf {
        packages.push(format!("patchelf/{}", source.host_suite));
    }
    say(&format!("downloading {}", packages.join(" ")));
    let mut args = vec!["download"];
    args.extend(packages.iter().map(String::as_str));
    apt.run(&args, NETWORK)?;

    let deb = |prefix: &str| -> Result<PathBuf> {
        fs::read_dir(&apt.debs)
            .map_err(|e| Error::io(&apt.debs, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
            })
            .ok_or_else(|| Error::MissingFile {
                what: "downloaded package",
                path: apt.debs.join(format!("{prefix}*.deb")),
            })
    };
    let uml_deb = deb("user-mode-linux_")?;
    let package = uml_deb
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').nth(1))
        .unwrap_or("unknown")
        .to_string();
    let safe: String = package
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let target = dir.join(format!("uml-{safe}"));
    let staging = dir.join(format!(".uml-{safe}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let root = staging.join("root");
    fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    say(&format!("unpacking into {}", target.display()));
    for d in [uml_deb, deb("libc6_")?] {
        checked_within(
            Command::new("dpkg-deb").arg("-x").arg(&d).arg(&root),
            "dpkg-deb",
            LOCAL,
        )?;
    }
    let patchelf = if want_patchelf {
        let tools = scratch.join("tools");
        checked_within(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb("patchelf_")?)
                .arg(&tools),
            "dpkg-deb",
            LOCAL,
        )?;
        tools.join("usr/bin/patchelf")
    } else {
        PathBuf::from("patchelf")
    };

    let loader = find_file(&root, "ld-linux-x86-64.so.2").ok_or_else(|| Error::MissingFile {
        what: "dynamic loader in the unpacked libc6",
        path: root.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    })?;
    let libdir = loader
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.clone());
    // Paths as they will be once staging is renamed into place.
    let final_root = target.join("root");
    let final_loader = final_root.join(loader.strip_prefix(&root).unwrap_or(&loader));
    let final_libdir = final_root.join(libdir.strip_prefix(&root).unwrap_or(&libdir));
    let kernel = staging.join("linux.uml");
    let shipped = root.join("usr/bin/linux.uml");
    fs::copy(&shipped, &kernel).map_err(|e| Error::io(&shipped, e))?;
    checked_within(
        Command::new(&patchelf)
            .arg("--set-interpreter")
            .arg(&final_loader)
            .arg("--set-rpath")
            .arg(&final_libdir)
            .arg(&kernel),
        "patchelf",
        LOCAL,
    )?;
    // The unpacked copy is not needed once patched.
    let _ = fs::remove_file(&shipped);
    let _ = fs::remove_dir_all(&target);
    fs::rename(&staging, &target).map_err(|e| Error::io(&target, e))?;
    let path = target.join("linux.uml");
    let version = UmlKernel::inspect(&path)?.version;
    Ok(FetchedKernel {
        path,
        version,
        package,
        archive: source.archive.clone(),
        suite: source.suite.clone(),
    })
}

/// apt-get with a private sources list, lists folder and cache.
struct Apt {
    options: Vec<String>,
    debs: PathBuf,
}

impl Apt {
    fn new(scratch: &Path, source: &FetchSource) -> Result<Apt> {
        let lists = scratch.join("lists");
        let parts = scratch.join("sources.list.d");
        let cache = scratch.join("cache");
        let debs = scratch.join("debs");
        for d in [
            parts.clone(),
            lists.join("partial"),
            cache.join("archives/partial"),
            debs.clone(),
        ] {
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let list = scratch.join("sources.list");
        fs::write(
            &list,
            format!(
                "deb {a} {s} main\ndeb {a} {h} main\n",
                a = source.archive,
                s = source.suite,
                h = source.host_suite
            ),
        )
        .map_err(|e| Error::io(&list, e))?;
        let mut options = vec![
            format!("Dir::Etc::sourcelist={}", list.display()),
            format!("Dir::Etc::sourceparts={}", parts.display()),
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            "Debug::NoLocking=true".to_string(),
        ];
        if rustix::process::geteuid().is_root() {
            // apt's download sandbox user cannot write into our folders.
            options.push("APT::Sandbox::User=root".to_string());
        }
        Ok(Apt { options, debs })
    }

    fn run(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let mut cmd = Command::new("apt-get");
        cmd.arg("-q");
        for o in &self.options {
            cmd.arg("-o").arg(o);
        }
        cmd.args(args).current_dir(&self.debs);
        checked_within(&mut cmd, "apt-get", timeout)
    }
}

/// The first file named `name` under `dir` (depth first, sorted).
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut entries: Vec<_> = fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in &entries {
        let p = e.path();
        let ft = e.file_type().ok()?;
        // A regular file: a link may point at the host's own loader.
        if e.file_name() == name && ft.is_file() {
            return Some(p);
        }
    }
    for e in entries {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(found) = find_file(&e.path(), name) {
                return Some(found);
            }
        }
    }
    None
}

/// The program `name` on `PATH`, if any.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
