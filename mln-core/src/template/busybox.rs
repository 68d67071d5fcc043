//! The default template: a small busybox root, built without root
//! privileges from Debian's `busybox-static` package. The files are staged
//! in a folder, `mkfs.ext4 -d` (e2fsprogs) turns the folder into an ext4
//! image, and `debugfs -w` gives every file to root and adds the device
//! nodes that an unprivileged user cannot create. Its init is busybox
//! `init` with the scripts in the repository's `templates/busybox/`, which
//! read MLN's guest configuration (see [`crate::guest`]) at boot, apply it
//! and run the shutdown lines at halt.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, Fnv, Template, BOOT_FINISHED, TEMPLATE_CONF};
use crate::error::{Error, Result};

const INITTAB: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/busybox/inittab"
));
const RC_BOOT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/busybox/rc.boot"
));
const RC_HALT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/busybox/rc.halt"
));
/// The vecN → ethN renaming, also installed by the guest-configuration
/// step of other templates.
pub(super) const HOTPLUG: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/busybox/hotplug"
));
pub(super) const AGENT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/busybox/agent"
));
const GETTY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/busybox/getty"
));
pub(super) const POWER_BUTTON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/busybox/powerbutton"
));
/// busybox acpid's action table: the power button runs `powerbutton`
/// (relative to acpid's configuration folder, /etc/mln).
pub(super) const ACPID_CONF: &str = "PWRF powerbutton\n";

/// Where the busybox binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusyboxSource {
    /// A statically linked busybox already on this machine (Debian's
    /// `busybox-static` installs `/bin/busybox`).
    Binary(PathBuf),
}

impl BusyboxSource {
    /// `/bin/busybox` when it is installed and static; otherwise Debian's
    /// `busybox-static` package, fetched with `apt-get download` into
    /// `scratch` and unpacked there with `dpkg -x` (no root needed).
    pub fn find(scratch: impl AsRef<Path>) -> Result<Self> {
        let installed = Path::new("/bin/busybox");
        if is_static_elf(installed) {
            return Ok(BusyboxSource::Binary(installed.to_path_buf()));
        }
        Self::download(scratch)
    }

    /// Fetch and unpack Debian's `busybox-static` into `scratch`.
    pub fn download(scratch: impl AsRef<Path>) -> Result<Self> {
        let scratch = scratch.as_ref();
        fs::create_dir_all(scratch).map_err(|e| Error::io(scratch, e))?;
        run(Command::new("apt-get")
            .args(["download", "busybox-static"])
            .current_dir(scratch))?;
        let deb = fs::read_dir(scratch)
            .map_err(|e| Error::io(scratch, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("busybox-static_") && n.ends_with(".deb"))
            })
            .ok_or_else(|| Error::MissingFile {
                what: "downloaded busybox-static package",
                path: scratch.join("busybox-static_*.deb"),
            })?;
        let root = scratch.join("busybox-static");
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
        let bin = root.join("bin/busybox");
        if !is_static_elf(&bin) {
            return Err(Error::MissingFile {
                what: "static busybox in the package",
                path: bin,
            });
        }
        Ok(BusyboxSource::Binary(bin))
    }

    fn path(&self) -> &Path {
        match self {
            BusyboxSource::Binary(p) => p,
        }
    }
}

/// Builder of the default busybox template.
#[derive(Debug, Clone)]
pub struct BusyboxTemplate {
    source: BusyboxSource,
    size: u64,
}

impl BusyboxTemplate {
    /// A builder using busybox from `source`; the image is 64 MiB (sparse).
    pub fn new(source: BusyboxSource) -> Self {
        BusyboxTemplate {
            source,
            size: 64 << 20,
        }
    }

    /// Set the image size, bytes (the free space guests see on `/`).
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = bytes;
        self
    }

    /// The file name the image gets in the output folder: it carries a hash
    /// of everything the image is made of, so a changed busybox or init
    /// script never reuses a stale image and an unchanged one is reused.
    pub fn image_name(&self) -> Result<String> {
        let mut h = Fnv::new();
        let bb = self.source.path();
        let mut f = fs::File::open(bb).map_err(|e| Error::io(bb, e))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(bb, e))?;
            if n == 0 {
                break;
            }
            h.feed(&buf[..n]);
        }
        // The recipe's own version: bump when `stage` or `make_ext4` change.
        // The `resize2fs` it copies is the building machine's and is left
        // out of the name, so that every server finds a template built
        // elsewhere and copied to it (one without `ldd` or e2fsprogs makes
        // none of its own).
        h.feed(b"recipe 5, resize2fs");
        for part in [
            INITTAB,
            RC_BOOT,
            RC_HALT,
            HOTPLUG,
            POWER_BUTTON,
            ACPID_CONF,
            TEMPLATE_CONF,
            AGENT,
            GETTY,
        ] {
            h.feed(part.as_bytes());
        }
        h.feed(&self.size.to_le_bytes());
        Ok(format!("busybox-{:016x}.ext4", h.0))
    }

    /// Build the template into `out_dir`, or reuse the image already built
    /// there from the same inputs. The image appears atomically (built
    /// under a temporary name, then linked to its name), and once: when
    /// several processes build it at the same time, the first image stays
    /// and the others are dropped, so no guest's overlay ever sees its
    /// template replaced.
    pub fn build(&self, out_dir: impl AsRef<Path>) -> Result<Template> {
        let out_dir = out_dir.as_ref();
        fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let out_dir = out_dir.canonicalize().map_err(|e| Error::io(out_dir, e))?;
        let image = out_dir.join(self.image_name()?);
        let template = Template {
            image: image.clone(),
            cmdline: "root=/dev/ubda rw".to_string(),
            boot_marker: Some(BOOT_FINISHED.to_string()),
        };
        if image.exists() {
            return Ok(template);
        }
        let unique = format!(
            ".build-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
            "",
        );
        let staging = out_dir.join(format!("{unique}.root"));
        let tmp_image = out_dir.join(format!("{unique}.ext4"));
        let result = self
            .stage(&staging)
            .and_then(|()| make_ext4(&staging, &tmp_image, self.size))
            .and_then(|()| match fs::hard_link(&tmp_image, &image) {
                Ok(()) => Ok(()),
                // Another builder got there first: its image is ours.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(Error::io(&image, e)),
            });
        let _ = fs::remove_dir_all(&staging);
        let _ = fs::remove_file(&tmp_image);
        result.map(|()| template)
    }

    /// Lay the root file system out in `root`.
    fn stage(&self, root: &Path) -> Result<()> {
        let _ = fs::remove_dir_all(root);
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "etc/mln", "proc", "sys", "dev", "run", "tmp",
            "root", "home", "mnt", "var/log",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        set_mode(&root.join("tmp"), 0o1777)?;
        set_mode(&root.join("root"), 0o700)?;
        let bb = root.join("bin/busybox");
        fs::copy(self.source.path(), &bb).map_err(|e| Error::io(&bb, e))?;
        set_mode(&bb, 0o755)?;
        // `--list-full` names every applet with its usual folder.
        let out = run(Command::new(self.source.path()).arg("--list-full"))?;
        for applet in out.lines().map(str::trim) {
            if applet.is_empty()
                || applet == "bin/busybox"
                || applet.starts_with('/')
                || applet.split('/').any(|c| c.is_empty() || c == "..")
            {
                continue;
            }
            let link = root.join(applet);
            if let Some(parent) = link.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            if !link.exists() {
                symlink("/bin/busybox", &link).map_err(|e| Error::io(&link, e))?;
            }
        }
        for file in resize2fs_files()? {
            let relative = file.strip_prefix("/").unwrap_or(&file);
            let to = root.join(relative);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            let _ = fs::remove_file(&to);
            fs::copy(&file, &to).map_err(|e| Error::io(&file, e))?;
            set_mode(&to, 0o755)?;
        }
        let init = root.join("sbin/init");
        let _ = fs::remove_file(&init);
        symlink("/bin/busybox", &init).map_err(|e| Error::io(&init, e))?;
        let files: [(&str, &str, u32); 17] = [
            ("etc/mln/template", TEMPLATE_CONF, 0o644),
            ("etc/inittab", INITTAB, 0o644),
            ("etc/mln/rc.boot", RC_BOOT, 0o755),
            ("etc/mln/rc.halt", RC_HALT, 0o755),
            ("etc/mln/hotplug", HOTPLUG, 0o755),
            ("etc/mln/agent", AGENT, 0o755),
            ("etc/mln/getty", GETTY, 0o755),
            ("etc/mln/powerbutton", POWER_BUTTON, 0o755),
            ("etc/mln/acpid.conf", ACPID_CONF, 0o644),
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
            ("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600),
            ("etc/group", "root:x:0:\n", 0o644),
            ("etc/hosts", "127.0.0.1\tlocalhost\n", 0o644),
            ("etc/hostname", "mln\n", 0o644),
            ("etc/resolv.conf", "", 0o644),
            ("etc/fstab", "", 0o644),
            ("etc/shells", "/bin/sh\n/bin/ash\n", 0o644),
        ];
        for (path, text, mode) in files {
            let p = root.join(path);
            fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
            set_mode(&p, mode)?;
        }
        Ok(())
    }
}

/// The host's `resize2fs`, from the e2fsprogs that builds the image.
const RESIZE2FS: &str = "/sbin/resize2fs";

/// `resize2fs` and the shared libraries and loader it runs with, as this
/// machine has them (`ldd`): copied into the image at the same paths, so
/// that a guest whose disk is larger than the template grows its root
/// file system at boot (busybox has no `resize2fs`). None where this
/// machine lacks either (a minimal server): its guests then keep the
/// template's size, and say so at boot.
fn resize2fs_files() -> Result<Vec<PathBuf>> {
    let listed = match run(Command::new("ldd").arg(RESIZE2FS)) {
        Ok(text) => text,
        Err(e) => {
            log::info!("busybox template without resize2fs: {e}");
            return Ok(Vec::new());
        }
    };
    let mut files = vec![PathBuf::from(RESIZE2FS)];
    for line in listed.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            files.push(PathBuf::from(path));
        }
    }
    Ok(files)
}

/// `mkfs.ext4 -d staging` into a sparse image of `size` bytes, then
/// `debugfs -w` to hand every file to root and add `/dev/console` and
/// `/dev/null`.
fn make_ext4(staging: &Path, image: &Path, size: u64) -> Result<()> {
    let _ = fs::remove_file(image);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "mln-root", "-E", "root_owner=0:0", "-d"])
        .arg(staging)
        .arg(image)
        .arg(format!("{}k", size / 1024)))?;
    // debugfs's mknod links the name as given into the current folder and
    // leaves the permission bits clear: change into /dev, then set them.
    let mut script = String::from(
        "cd /dev\nmknod console c 5 1\nsif console mode 020600\n\
         mknod null c 1 3\nsif null mode 020666\ncd /\n",
    );
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = staging.join(&rel);
        for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            let rel = rel.join(entry.file_name());
            if kind.is_symlink() {
                continue;
            }
            let Some(guest_path) = rel.to_str() else {
                continue;
            };
            script.push_str(&format!(
                "sif /{guest_path} uid 0\nsif /{guest_path} gid 0\n"
            ));
            if kind.is_dir() {
                stack.push(rel);
            }
        }
    }
    let cmds = image.with_extension("debugfs");
    fs::write(&cmds, script).map_err(|e| Error::io(&cmds, e))?;
    let r = run(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&cmds)
        .arg(image));
    let _ = fs::remove_file(&cmds);
    r.map(drop)
}

/// True for an x86-64/any ELF file without a `PT_INTERP` program header,
/// i.e. one that runs without a dynamic loader (inside any guest root).
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap_or([0; 8])) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != 3)
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_from_dynamic_binaries() {
        assert!(!is_static_elf(Path::new("/bin/sh")));
        assert!(!is_static_elf(Path::new("/etc/hostname")));
        if Path::new("/bin/busybox").exists() {
            assert!(is_static_elf(Path::new("/bin/busybox")));
        }
    }
}
