//! A Debian template: Debian's minimal root (`mmdebstrap --variant=minbase`,
//! from the archive the host's apt sources name) with systemd, OpenSSH,
//! iproute2, ping, udev, busybox, udhcpc and e2fsprogs, made into an ext4
//! image, then given MLN's guest-configuration step ([`GuestStep`]).
//!
//! How rootless: as root, mmdebstrap's `root` mode and a plain `tar -x`
//! before `mkfs.ext4 -d`. As a normal user, mmdebstrap's `unshare` mode
//! (it needs unprivileged user namespaces and `/etc/subuid` and
//! `/etc/subgid` ranges for the user), and `fakeroot` around `tar -x` and
//! `mkfs.ext4 -d`, so the image's files still belong to root and its
//! device nodes are real; `debugfs` writes the step.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::image::Ext4Image;
use super::step::{self, GuestStep, InitSystem};
use super::{Fnv, Template};
use crate::bounded;
use crate::error::{Error, Result};

/// The packages besides Debian's minimal base: what MLN's step and a
/// usable lab host need (`busybox` and `udhcpc` for DHCP, `e2fsprogs` for
/// growing the root disk).
pub const PACKAGES: [&str; 8] = [
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "systemd-sysv",
    "udev",
    "busybox",
    "udhcpc",
    "e2fsprogs",
];

/// Debian 12.
pub const DEFAULT_SUITE: &str = "bookworm";

/// Documentation and translations stay out of the image (licences stay).
const DPKG_OPTIONS: [&str; 7] = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
];

const SETUP_HOOK: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/debian/setup"
));
const CUSTOMIZE_HOOK: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/debian/customize"
));

/// How long mmdebstrap may take (it downloads about 70 MB).
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(2400);
/// How long unpacking and `mkfs.ext4 -d` may take.
const IMAGE_TIMEOUT: Duration = Duration::from_secs(900);

/// Builder of the Debian template.
///
/// ```no_run
/// use mln_core::template::DebianTemplate;
/// let built = DebianTemplate::new().build("/var/lib/mln/templates", &|step| eprintln!("{step}"))?;
/// // `template debian-12.ext4` in a project names it.
/// println!("{} -> {}", built.link.display(), built.template.image.display());
/// # Ok::<(), mln_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianTemplate {
    suite: String,
    packages: Vec<String>,
    size: u64,
}

/// What [`DebianTemplate::build`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianBuild {
    /// The image (its name carries a hash of its inputs), as a template.
    pub template: Template,
    /// The stable name projects use (`debian-12.ext4`), a link to the
    /// image built last.
    pub link: PathBuf,
    /// An image of the same inputs was there already: nothing was built.
    pub reused: bool,
    /// mmdebstrap's mode (`root` or `unshare`), when it ran.
    pub mode: Option<&'static str>,
    /// How long the build took.
    pub elapsed: Duration,
}

impl Default for DebianTemplate {
    fn default() -> Self {
        Self::new()
    }
}

impl DebianTemplate {
    /// Debian 12 (bookworm) with [`PACKAGES`], in a 1 GiB image (sparse:
    /// it takes what the files take, about 250 MB).
    pub fn new() -> Self {
        DebianTemplate {
            suite: DEFAULT_SUITE.to_string(),
            packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
            size: 1 << 30,
        }
    }

    /// Another Debian suite (`trixie`, `bullseye`, ...), from the archive
    /// the host's apt sources name.
    pub fn suite(mut self, suite: &str) -> Self {
        self.suite = suite.to_string();
        self
    }

    /// Install these packages too.
    pub fn with_packages<I, S>(mut self, packages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for p in packages {
            let p = p.into();
            if !self.packages.contains(&p) {
                self.packages.push(p);
            }
        }
        self
    }

    /// The image's size, bytes (what a guest's root disk holds unless its
    /// host asks for more with `size`).
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = bytes;
        self
    }

    /// The packages installed besides the minimal base.
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    /// `debian-12` for bookworm, `debian-13` for trixie, ... (`debian-SUITE`
    /// for a suite without a number here).
    pub fn base_name(&self) -> String {
        let number = match self.suite.as_str() {
            "buster" => "10",
            "bullseye" => "11",
            "bookworm" => "12",
            "trixie" => "13",
            "forky" => "14",
            other => other,
        };
        format!("debian-{number}")
    }

    /// The stable name projects use: `debian-12.ext4`.
    pub fn link_name(&self) -> String {
        format!("{}.ext4", self.base_name())
    }

    /// The image's file name, `debian-12-HASH.ext4`: the hash covers the
    /// suite, the packages and the versions of them the host's apt
    /// candidates name (for the host's own suite), the build recipe, MLN's
    /// scripts and the size, so a changed input never reuses a stale image
    /// and an unchanged one is not built again.
    pub fn image_name(&self) -> String {
        let mut h = Fnv::new();
        // The recipe's own version: bump when `build` changes what it makes.
        h.feed(b"debian recipe 1\0");
        h.feed(self.suite.as_bytes());
        for p in &self.packages {
            h.feed(b"\0");
            h.feed(p.as_bytes());
        }
        for part in DPKG_OPTIONS
            .iter()
            .chain([&SETUP_HOOK, &CUSTOMIZE_HOOK])
            .chain(step::PARTS.iter())
        {
            h.feed(b"\0");
            h.feed(part.as_bytes());
        }
        h.feed(&self.size.to_le_bytes());
        if host_codename().as_deref() == Some(self.suite.as_str()) {
            for v in candidate_versions(&self.packages) {
                h.feed(v.as_bytes());
            }
        }
        format!("{}-{:016x}.ext4", self.base_name(), h.0)
    }

    /// Build the template into `out_dir` (or reuse the image built there
    /// from the same inputs), and point [`DebianTemplate::link_name`] at
    /// it. `say` hears each step. The image appears atomically; a failed
    /// build leaves nothing but mmdebstrap's package cache
    /// (`out_dir/.debian-packages`, which makes the next build download
    /// only what changed).
    pub fn build(&self, out_dir: impl AsRef<Path>, say: &dyn Fn(&str)) -> Result<DebianBuild> {
        let started = Instant::now();
        let out_dir = out_dir.as_ref();
        fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let out_dir = out_dir.canonicalize().map_err(|e| Error::io(out_dir, e))?;
        let name = self.image_name();
        let image = out_dir.join(&name);
        let link = out_dir.join(self.link_name());
        let mut mode = None;
        let mut reused = image.exists();
        // One build at a time in a folder (several `mln`, tests in
        // parallel): the others wait for it (mmdebstrap's own time is
        // bounded), then find its image.
        let _lock = match reused {
            true => None,
            false => Some(build_lock(&out_dir)?),
        };
        reused |= image.exists();
        if !reused {
            let scratch = out_dir.join(format!(".{name}.build-{}", std::process::id()));
            let tmp_image = out_dir.join(format!(".{name}.part-{}", std::process::id()));
            let result = self.build_into(&out_dir, &scratch, &tmp_image, say);
            let result = result.and_then(|m| {
                fs::rename(&tmp_image, &image).map_err(|e| Error::io(&image, e))?;
                Ok(m)
            });
            remove_tree(&scratch);
            let _ = fs::remove_file(&tmp_image);
            mode = Some(result?);
        }
        point_link(&link, &name)?;
        Ok(DebianBuild {
            template: Template::inspect(image)?,
            link,
            reused,
            mode,
            elapsed: started.elapsed(),
        })
    }

    fn build_into(
        &self,
        out_dir: &Path,
        scratch: &Path,
        image: &Path,
        say: &dyn Fn(&str),
    ) -> Result<&'static str> {
        remove_tree(scratch);
        let hooks = scratch.join("hooks");
        fs::create_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
        for (file, text) in [
            ("setup00-mln", SETUP_HOOK),
            ("customize50-mln", CUSTOMIZE_HOOK),
        ] {
            let p = hooks.join(file);
            fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(&p, e))?;
        }
        let as_root = rustix::process::geteuid().is_root();
        let mode = if as_root { "root" } else { "unshare" };
        let tar = scratch.join("root.tar");
        say(&format!(
            "bootstrapping Debian {} with mmdebstrap (mode {mode}; the host's apt sources)",
            self.suite
        ));
        self.bootstrap(out_dir, &hooks, &tar, mode)?;
        say("making the ext4 image (mkfs.ext4 -d)");
        tar_to_ext4(&tar, &scratch.join("root"), image, self.size, as_root)?;
        say("installing MLN's guest-configuration step (debugfs)");
        let init = GuestStep::install(&Ext4Image::open(image)?)?;
        if init != InitSystem::Systemd {
            return Err(Error::Template {
                path: image.to_path_buf(),
                reason: format!(
                    "the bootstrapped root starts with {}, not systemd",
                    init.as_str()
                ),
            });
        }
        Ok(mode)
    }

    /// `mmdebstrap` into the tar file `tar`, with the package cache of
    /// `out_dir` synchronised in and out.
    fn bootstrap(&self, out_dir: &Path, hooks: &Path, tar: &Path, mode: &str) -> Result<()> {
        let mut cmd = Command::new("mmdebstrap");
        cmd.arg("--variant=minbase")
            .arg(format!("--mode={mode}"))
            .arg(format!("--include={}", self.packages.join(",")));
        for opt in DPKG_OPTIONS {
            cmd.arg(format!("--dpkgopt={opt}"));
        }
        // The hook folder's setup script first: it makes the folder the
        // package cache is synchronised into.
        cmd.arg(format!("--hook-directory={}", hooks.display()));
        let cache = out_dir.join(".debian-packages");
        // Special hooks split their arguments at white space.
        let cache_text = cache.to_string_lossy();
        if !cache_text.contains(char::is_whitespace) && fs::create_dir_all(&cache).is_ok() {
            cmd.arg("--skip=essential/unlink")
                .arg(format!(
                    "--setup-hook=sync-in {cache_text} /var/cache/apt/archives/"
                ))
                .arg(format!(
                    "--customize-hook=sync-out /var/cache/apt/archives {cache_text}"
                ));
        }
        cmd.arg(&self.suite).arg(tar);
        let out = bounded::output_within(&mut cmd, "mmdebstrap", BOOTSTRAP_TIMEOUT)?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let hint = if mode == "unshare" {
            "\nAs a normal user, mmdebstrap needs unprivileged user namespaces and \
             ranges of subordinate ids for you in /etc/subuid and /etc/subgid \
             (`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`, \
             as root); or build the template as root."
        } else {
            ""
        };
        Err(Error::Template {
            path: tar.to_path_buf(),
            reason: format!(
                "mmdebstrap --mode={mode} failed ({}):\n{}{hint}",
                out.status,
                tail.join("\n")
            ),
        })
    }
}

/// Unpack the root file system in `tar` into `staging` and make it the
/// ext4 image `image` of `size` bytes. As a normal user, `fakeroot` keeps
/// the owners and device nodes of the archive between `tar` and `mkfs`.
fn tar_to_ext4(tar: &Path, staging: &Path, image: &Path, size: u64, as_root: bool) -> Result<()> {
    remove_tree(staging);
    fs::create_dir_all(staging).map_err(|e| Error::io(staging, e))?;
    let fake_db = staging.with_extension("fakeroot");
    // As a normal user: `fakeroot -s DB -- tar ...`, then `fakeroot -i DB
    // -- mkfs.ext4 ...` sees the owners and device nodes tar made.
    let tool = |program: &str, save: bool| {
        if as_root {
            return Command::new(program);
        }
        let mut c = Command::new("fakeroot");
        c.arg(if save { "-s" } else { "-i" })
            .arg(&fake_db)
            .arg("--")
            .arg(program);
        c
    };
    let mut unpack = tool("tar", true);
    unpack
        .args(["--numeric-owner", "-xpf"])
        .arg(tar)
        .arg("-C")
        .arg(staging);
    bounded::checked_within(&mut unpack, "unpacking the root", IMAGE_TIMEOUT)?;
    let _ = fs::remove_file(image);
    let mut mkfs = tool("mkfs.ext4", false);
    mkfs.args(["-q", "-F", "-L", "mln-root", "-d"])
        .arg(staging)
        .arg(image)
        .arg(format!("{}k", size / 1024));
    let made = bounded::checked_within(&mut mkfs, "mkfs.ext4", IMAGE_TIMEOUT);
    let _ = fs::remove_file(&fake_db);
    remove_tree(staging);
    made.map(drop)
}

/// An exclusive lock on the folder's `.debian-build.lock`, held until the
/// file is dropped.
fn build_lock(out_dir: &Path) -> Result<fs::File> {
    let path = out_dir.join(".debian-build.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io(&path, e.into()))?;
    Ok(lock)
}

/// Point the link `link` at `target` (a name in the same folder),
/// atomically.
fn point_link(link: &Path, target: &str) -> Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == Path::new(target)) {
        return Ok(());
    }
    let tmp = link.with_file_name(format!(
        ".{}.link-{}",
        link.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, link).map_err(|e| Error::io(link, e))
}

/// Remove a folder tree, making read-only folders in it writable first
/// where that is what stops a normal user (an unpacked root has some).
fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    let _ = fs::remove_dir_all(path);
}

/// This host's Debian suite (`VERSION_CODENAME` of /etc/os-release).
fn host_codename() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// `package=version` of each of `packages` that apt would install now
/// (`apt-cache policy`'s candidates, from the host's package lists; none
/// where they cannot be read).
fn candidate_versions(packages: &[String]) -> Vec<String> {
    let Ok(out) = bounded::checked_within(
        Command::new("apt-cache").arg("policy").args(packages),
        "apt-cache policy",
        Duration::from_secs(60),
    ) else {
        return Vec::new();
    };
    parse_policy(&out)
}

fn parse_policy(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut package = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            package = line.strip_suffix(':').map(str::to_string);
        } else if let (Some(p), Some(v)) = (&package, line.trim().strip_prefix("Candidate: ")) {
            out.push(format!("{p}={v}"));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_which_debian_and_change_with_the_inputs() {
        let t = DebianTemplate::new();
        assert_eq!(t.link_name(), "debian-12.ext4");
        assert!(t.image_name().starts_with("debian-12-"));
        assert_eq!(t.image_name(), DebianTemplate::new().image_name());
        assert_ne!(t.image_name(), t.clone().size(2 << 30).image_name());
        assert_ne!(
            t.image_name(),
            t.clone().with_packages(["curl"]).image_name()
        );
        assert_eq!(
            DebianTemplate::new().suite("sid").link_name(),
            "debian-sid.ext4"
        );
    }

    #[test]
    fn candidate_versions_come_from_apt_cache_policy() {
        let text = "iproute2:\n  Installed: (none)\n  Candidate: 6.1.0-3\n  Version table:\n\
                    udev:\n  Installed: 252.39-1\n  Candidate: 252.39-1~deb12u2\n";
        assert_eq!(
            parse_policy(text),
            vec!["iproute2=6.1.0-3", "udev=252.39-1~deb12u2"]
        );
    }
}
