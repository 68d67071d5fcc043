//! The Xen hypervisor the lab boots: Debian's Xen 4.17, built from
//! Debian's own source package with one option changed, shadow paging.
//!
//! Debian builds its hypervisor without `CONFIG_SHADOW_PAGING`. Xen's
//! Kconfig says what that costs: shadow paging "is required for ... live
//! migration of PV guests". Without it Xen cannot put a PV guest's memory
//! in log-dirty mode, so libxl's live migration of a PV guest fails before
//! the guest is ever asked to suspend (libxl then reports "domain did not
//! respond to suspend request", and the resume it tries on the guest that
//! never suspended logs `Dom N not suspended: (shutdown 0, reason 255)`).
//! Stock Debian servers have the same limit; the lab builds the hypervisor
//! a Xen server that migrates PV guests runs.
//!
//! `apt-get source` (through a private sources list made from this
//! machine's own: the host's apt is not touched) fetches Debian's `xen`
//! source, `dpkg-source -x` unpacks it with Debian's patches, Debian's
//! hypervisor configuration (from the binary package) gets
//! `CONFIG_SHADOW_PAGING=y`, and `make -C xen` builds it (a few minutes on
//! two cores; needs gcc, make, flex, bison, python3). The result is kept
//! in the lab cache, keyed by the source version and the configuration,
//! and reused.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, run_checked};

/// The one change to Debian's hypervisor configuration.
const SHADOW_OFF: &str = "# CONFIG_SHADOW_PAGING is not set";
const SHADOW_ON: &str = "CONFIG_SHADOW_PAGING=y";
/// Programs the build needs, with the package that has each.
const BUILD_TOOLS: &[(&str, &str)] = &[
    ("gcc", "gcc"),
    ("make", "make"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("python3", "python3"),
    ("dpkg-source", "dpkg-dev"),
];

/// `(mirror, suite)` of the first Debian archive this machine's apt
/// sources name (deb822 `.sources` files first, then `sources.list`).
fn host_archive() -> Result<(String, String), String> {
    let mut texts = Vec::new();
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "sources"))
        {
            texts.push(fs::read_to_string(f).unwrap_or_default());
        }
    }
    for text in &texts {
        if let Some(found) = deb822_archive(text) {
            return Ok(found);
        }
    }
    let list = fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    one_line_archive(&list).ok_or_else(|| "no Debian archive in this machine's apt sources".into())
}

/// The first stanza of binary packages in deb822 `text` whose archive is
/// not the security one: its first URI and first suite.
fn deb822_archive(text: &str) -> Option<(String, String)> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .map(str::to_string)
        };
        let types = field("Types:")?;
        let (uri, suite) = (field("URIs:")?, field("Suites:")?);
        if types == "deb" && !suite.contains("security") {
            return Some((uri, suite));
        }
    }
    None
}

/// The same from a one-line-style `sources.list`.
fn one_line_archive(text: &str) -> Option<(String, String)> {
    text.lines().find_map(|l| {
        let words: Vec<&str> = l
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        match words[..] {
            ["deb", uri, suite, ..] if !suite.contains("security") => {
                Some((uri.to_string(), suite.to_string()))
            }
            _ => None,
        }
    })
}

/// Whether `program` is in a folder of `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn check_tools() -> Result<(), String> {
    let missing: Vec<&str> = BUILD_TOOLS
        .iter()
        .filter(|(t, _)| !on_path(t))
        .map(|(_, p)| *p)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "building the lab's hypervisor needs: apt-get install {}",
            missing.join(" ")
        ))
    }
}

/// Fetch and unpack Debian's `xen` source under `work`; the unpacked tree.
fn fetch_source(work: &Path) -> Result<PathBuf, String> {
    let (uri, suite) = host_archive()?;
    let parts = work.join("apt/sources");
    let lists = work.join("apt/lists");
    let cache = work.join("apt/cache");
    for d in [
        &parts,
        &lists.join("partial"),
        &cache.join("archives/partial"),
    ] {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let sources = parts.join("xen-src.sources");
    fs::write(
        &sources,
        format!(
            "Types: deb-src\nURIs: {uri}\nSuites: {suite}\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )
    .map_err(io_err(&sources))?;
    let opts = [
        "-o".to_string(),
        "Dir::Etc::sourcelist=/dev/null".into(),
        "-o".into(),
        format!("Dir::Etc::sourceparts={}", parts.display()),
        "-o".into(),
        format!("Dir::State::Lists={}", lists.display()),
        "-o".into(),
        format!("Dir::Cache={}", cache.display()),
    ];
    eprintln!("xen-test: apt-get source xen ({uri} {suite})");
    run_checked(Command::new("apt-get").args(&opts).args(["-qq", "update"]))?;
    let dl = work.join("download");
    let _ = fs::remove_dir_all(&dl);
    fs::create_dir_all(&dl).map_err(io_err(&dl))?;
    run_checked(
        Command::new("apt-get")
            .args(&opts)
            .args(["-qq", "source", "--download-only", "xen"])
            .current_dir(&dl),
    )?;
    let dsc = fs::read_dir(&dl)
        .map_err(io_err(&dl))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "dsc"))
        .ok_or("apt-get source fetched no .dsc for xen")?;
    let tree = work.join("src");
    let _ = fs::remove_dir_all(&tree);
    run_checked(
        Command::new("dpkg-source")
            .args(["--no-check", "-x"])
            .arg(&dsc)
            .arg(&tree),
    )?;
    Ok(tree)
}

/// Debian's hypervisor configuration with shadow paging on.
fn shadow_config(debian: &str) -> Result<String, String> {
    if debian.contains(SHADOW_ON) {
        return Ok(debian.to_string());
    }
    if !debian.contains(SHADOW_OFF) {
        return Err(
            "Debian's hypervisor configuration does not mention CONFIG_SHADOW_PAGING".into(),
        );
    }
    Ok(debian.replace(SHADOW_OFF, SHADOW_ON))
}

/// The hypervisor (the multiboot ELF QEMU loads) built with shadow
/// paging, from the cache under `cache` or built there now; `pkgs` is the
/// unpacked binary packages (for Debian's configuration).
pub fn with_shadow_paging(cache: &Path, pkgs: &Path) -> Result<PathBuf, String> {
    let debian_cfg = pkgs.join("boot/xen-4.17-amd64.config");
    let config = shadow_config(&fs::read_to_string(&debian_cfg).map_err(io_err(&debian_cfg))?)?;
    let work = cache.join("hypervisor");
    let built = work.join("xen");
    let stamp = work.join(".config-built");
    if built.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(config.as_str()) {
        eprintln!(
            "xen-test: reusing the hypervisor built in {}",
            work.display()
        );
        return Ok(built);
    }
    check_tools()?;
    fs::create_dir_all(&work).map_err(io_err(&work))?;
    let tree = fetch_source(&work)?;
    let xen = tree.join("xen");
    fs::write(xen.join(".config"), &config).map_err(io_err(&xen))?;
    eprintln!("xen-test: building Xen with shadow paging (a few minutes, once)");
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    run_checked(Command::new("make").arg("-C").arg(&xen).arg("olddefconfig"))?;
    let cfg = fs::read_to_string(xen.join(".config")).map_err(io_err(&xen))?;
    if !cfg.contains(SHADOW_ON) {
        return Err("Xen's olddefconfig dropped CONFIG_SHADOW_PAGING".into());
    }
    run_checked(
        Command::new("make")
            .arg("-C")
            .arg(&xen)
            .arg(format!("-j{jobs}"))
            .arg("XEN_TARGET_ARCH=x86_64"),
    )?;
    super::copy(&xen.join("xen"), &built)?;
    fs::write(&stamp, &config).map_err(io_err(&stamp))?;
    // The tree is large and rebuilt from scratch when the stamp changes.
    let _ = fs::remove_dir_all(&tree);
    let _ = fs::remove_dir_all(work.join("download"));
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_comes_from_the_hosts_sources_not_the_security_one() {
        let deb822 = "Types: deb\nURIs: http://deb.example/debian-security\n\
                      Suites: bookworm-security\n\n\
                      Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\n";
        assert_eq!(
            deb822_archive(deb822),
            Some(("http://deb.example/debian".into(), "bookworm".into()))
        );
        let list = "# comment\ndeb [arch=amd64] http://m.example/debian bookworm main\n";
        assert_eq!(
            one_line_archive(list),
            Some(("http://m.example/debian".into(), "bookworm".into()))
        );
        assert_eq!(one_line_archive("deb-src http://x y main"), None);
    }

    #[test]
    fn shadow_paging_is_switched_on_and_nothing_else() {
        let cfg = "CONFIG_PV=y\n# CONFIG_SHADOW_PAGING is not set\nCONFIG_HVM=y\n";
        assert_eq!(
            shadow_config(cfg).unwrap(),
            "CONFIG_PV=y\nCONFIG_SHADOW_PAGING=y\nCONFIG_HVM=y\n"
        );
        assert_eq!(
            shadow_config("CONFIG_SHADOW_PAGING=y\n").unwrap(),
            "CONFIG_SHADOW_PAGING=y\n"
        );
        assert!(shadow_config("CONFIG_PV=y\n").is_err());
    }
}
