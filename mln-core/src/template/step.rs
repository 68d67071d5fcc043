//! MLN's guest-configuration step, installed into an image whose init is
//! its own (systemd, sysvinit or busybox init), without root: the files of
//! the repository's `templates/guest-step/` written with `debugfs`, and the
//! image's init told to run them.
//!
//! What the step does in the guest (`templates/guest-step/boot`): find the
//! configuration disk (kernel argument `mln.config=DEVICE`, else the second
//! disk `ubdb`/`xvdb`/`vdb`), unpack it to `/run/mln`, run `apply`, then
//! `startup`, print [`super::BOOT_FINISHED`] on the console; at halt run
//! `shutdown`.

use super::busybox::{ACPID_CONF, AGENT, HOTPLUG, POWER_BUTTON};
use super::image::{Entry, Ext4Image};
use super::{TEMPLATE_CONF, TEMPLATE_CONF_PATH};
use crate::error::{Error, Result};

const BOOT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/boot"
));
const CONFIG_UNIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/mln-config.service"
));
const STARTUP_UNIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/mln-startup.service"
));
const AGENT_UNIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/mln-agent.service"
));
const POWER_UNIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/mln-powerbutton.service"
));
const VECTOR_RULE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/70-mln-vector-net.rules"
));
const UML_GETTY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/guest-step/uml-console-getty.conf"
));

/// The step's files, for a hash of what a template is made of.
pub(super) const PARTS: [&str; 12] = [
    BOOT,
    CONFIG_UNIT,
    STARTUP_UNIT,
    AGENT_UNIT,
    AGENT,
    POWER_UNIT,
    POWER_BUTTON,
    ACPID_CONF,
    VECTOR_RULE,
    UML_GETTY,
    HOTPLUG,
    TEMPLATE_CONF,
];

/// The command busybox and sysvinit inittab lines run.
const BOOT_PATH: &str = "/etc/mln/boot";
/// What MLN's clean shutdown (Ctrl-Alt-Del) runs under sysvinit: power
/// off, never the reboot distributions set (a UML guest would boot again).
const SYSV_POWEROFF: &str = "/sbin/shutdown -t1 -h -P now";
/// busybox init's table when an image has none (busybox's built-in one,
/// for a console without virtual terminals).
const BUSYBOX_DEFAULT_INITTAB: &str = "::sysinit:/etc/init.d/rcS\n::askfirst:-/bin/sh\n\
    ::ctrlaltdel:/sbin/reboot\n::shutdown:/sbin/swapoff -a\n::shutdown:/bin/umount -a -r\n\
    ::restart:/sbin/init\n";

/// How an image starts its services, as far as MLN's step is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitSystem {
    /// systemd: the step is two units wanted by `multi-user.target`.
    Systemd,
    /// System V init (`/etc/inittab` with run levels): inittab lines.
    Sysv,
    /// busybox init (`/etc/inittab` without run levels, or none): inittab
    /// lines.
    Busybox,
}

impl InitSystem {
    /// How the image at hand starts: `/sbin/init` pointing at systemd or
    /// busybox, else an `/etc/inittab` with run levels (sysvinit) or
    /// without (busybox), else systemd's own folder.
    pub fn detect(image: &Ext4Image) -> Result<Self> {
        let init = image.link_target("/sbin/init")?.unwrap_or_default();
        if init.contains("systemd") {
            return Ok(InitSystem::Systemd);
        }
        if init.contains("busybox") {
            return Ok(InitSystem::Busybox);
        }
        if let Some(inittab) = image.read("/etc/inittab")? {
            return Ok(if has_run_levels(&String::from_utf8_lossy(&inittab)) {
                InitSystem::Sysv
            } else {
                InitSystem::Busybox
            });
        }
        if image.entry("/lib/systemd/systemd")? == Some(Entry::File)
            && image.entry("/etc/systemd/system")? == Some(Entry::Dir)
        {
            return Ok(InitSystem::Systemd);
        }
        Err(Error::Template {
            path: image.path().to_path_buf(),
            reason: "cannot tell how this image's init starts services: /sbin/init is \
                     neither systemd nor busybox and there is no /etc/inittab"
                .into(),
        })
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            InitSystem::Systemd => "systemd",
            InitSystem::Sysv => "sysvinit",
            InitSystem::Busybox => "busybox",
        }
    }
}

/// MLN's guest-configuration step, for images with an init of their own.
///
/// ```no_run
/// use mln_core::template::{Ext4Image, GuestStep};
/// let image = Ext4Image::open("/var/lib/mln/templates/my-distro.ext4")?;
/// let init = GuestStep::install(&image)?;
/// println!("installed for {}", init.as_str());
/// # Ok::<(), mln_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GuestStep;

impl GuestStep {
    /// Write the step into `image` and hook it into the image's init
    /// ([`InitSystem::detect`]): for systemd, the units `mln-config` (the
    /// configuration, before the network) and `mln-startup` (startup lines
    /// and boot marker after everything else, shutdown lines at halt),
    /// each with its `multi-user.target.wants` link, `mln-agent` (`mln
    /// exec`), `mln-powerbutton` (a QEMU guest's clean shutdown), the
    /// kernel's interface names kept, Ctrl-Alt-Del (MLN's
    /// clean shutdown of a UML guest) powering off, a login prompt on a
    /// UML guest's console and udev's vecN → ethN renaming; for sysvinit
    /// and busybox init, `/etc/inittab` lines. Either way `mln exec`'s
    /// agent runs on the second serial line. Installing again replaces
    /// what an earlier install wrote.
    pub fn install(image: &Ext4Image) -> Result<InitSystem> {
        let init = InitSystem::detect(image)?;
        let edit = image
            .edit()
            .file(BOOT_PATH, BOOT, 0o755)
            .file("/etc/mln/hotplug", HOTPLUG, 0o755)
            .file("/etc/mln/agent", AGENT, 0o755)
            .file("/etc/mln/powerbutton", POWER_BUTTON, 0o755)
            .file("/etc/mln/acpid.conf", ACPID_CONF, 0o644)
            .file(TEMPLATE_CONF_PATH, TEMPLATE_CONF, 0o644);
        let edit = match init {
            InitSystem::Systemd => {
                let sys = "/etc/systemd/system";
                let mut edit = edit
                    .file(&format!("{sys}/mln-config.service"), CONFIG_UNIT, 0o644)
                    .file(&format!("{sys}/mln-startup.service"), STARTUP_UNIT, 0o644)
                    .symlink(
                        &format!("{sys}/multi-user.target.wants/mln-config.service"),
                        &format!("{sys}/mln-config.service"),
                    )
                    .symlink(
                        &format!("{sys}/multi-user.target.wants/mln-startup.service"),
                        &format!("{sys}/mln-startup.service"),
                    )
                    .file(&format!("{sys}/mln-powerbutton.service"), POWER_UNIT, 0o644)
                    .symlink(
                        &format!("{sys}/multi-user.target.wants/mln-powerbutton.service"),
                        &format!("{sys}/mln-powerbutton.service"),
                    )
                    .file(&format!("{sys}/mln-agent.service"), AGENT_UNIT, 0o644)
                    .symlink(
                        &format!("{sys}/multi-user.target.wants/mln-agent.service"),
                        &format!("{sys}/mln-agent.service"),
                    )
                    // Interfaces keep the kernel's names (eth0, eth1, … in
                    // the order the hypervisor gives them), which are MLN's:
                    // no `enp0s3` under QEMU.
                    .symlink("/etc/systemd/network/99-default.link", "/dev/null")
                    .symlink(
                        &format!("{sys}/ctrl-alt-del.target"),
                        "/lib/systemd/system/poweroff.target",
                    )
                    .file(
                        "/etc/udev/rules.d/70-mln-vector-net.rules",
                        VECTOR_RULE,
                        0o644,
                    );
                if image.entry("/lib/systemd/system/getty@.service")?.is_some() {
                    edit = edit
                        .symlink(
                            &format!("{sys}/getty.target.wants/getty@tty1.service"),
                            "/lib/systemd/system/getty@.service",
                        )
                        .file(
                            &format!("{sys}/getty@tty1.service.d/mln-uml.conf"),
                            UML_GETTY,
                            0o644,
                        );
                }
                edit
            }
            InitSystem::Sysv => {
                let old = image.read("/etc/inittab")?.unwrap_or_default();
                edit.file(
                    "/etc/inittab",
                    sysv_inittab(&String::from_utf8_lossy(&old)),
                    0o644,
                )
            }
            InitSystem::Busybox => {
                let old = image.read("/etc/inittab")?;
                let old = old.map(|t| String::from_utf8_lossy(&t).into_owned());
                edit.file(
                    "/etc/inittab",
                    busybox_inittab(old.as_deref().unwrap_or(BUSYBOX_DEFAULT_INITTAB)),
                    0o644,
                )
            }
        };
        edit.apply()?;
        Ok(init)
    }
}

/// An inittab line split into its four fields (`id:runlevels:action:process`),
/// or `None` for a comment or a malformed line.
fn fields(line: &str) -> Option<[&str; 4]> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let mut it = t.splitn(4, ':');
    Some([it.next()?, it.next()?, it.next()?, it.next()?])
}

/// Whether an inittab names run levels (sysvinit's `id:2345:...`); busybox
/// init's never do.
fn has_run_levels(inittab: &str) -> bool {
    inittab
        .lines()
        .filter_map(fields)
        .any(|[_, levels, _, _]| !levels.trim().is_empty())
}

/// Whether a line is one MLN's step put there.
fn is_ours(line: &str) -> bool {
    fields(line).is_some_and(|[.., process]| process.trim_start().starts_with(BOOT_PATH))
}

/// `lines` with `new` inserted after the last line whose action is
/// `after` (at the start when there is none).
fn insert_after(lines: &mut Vec<String>, after: &str, new: &[String]) {
    let at = lines
        .iter()
        .rposition(|l| fields(l).is_some_and(|f| f[2] == after))
        .map_or(0, |i| i + 1);
    for (k, line) in new.iter().enumerate() {
        lines.insert(at + k, line.clone());
    }
}

/// sysvinit's table with MLN's step: the configuration and startup lines
/// once the system's own `sysinit` script has run, the shutdown lines first
/// thing in run levels 0 and 6, and Ctrl-Alt-Del powering off.
fn sysv_inittab(old: &str) -> String {
    let mut lines: Vec<String> = old
        .lines()
        .filter(|l| !is_ours(l))
        .map(|l| match fields(l) {
            Some([id, levels, "ctrlaltdel", _]) => {
                format!("{id}:{levels}:ctrlaltdel:{SYSV_POWEROFF}")
            }
            _ => l.to_string(),
        })
        .collect();
    insert_after(
        &mut lines,
        "sysinit",
        &[
            format!("mln::sysinit:{BOOT_PATH} start"),
            format!("mlnh:06:wait:{BOOT_PATH} shutdown"),
        ],
    );
    if !lines
        .iter()
        .any(|l| fields(l).is_some_and(|f| f[2] == "ctrlaltdel"))
    {
        lines.push(format!("ca::ctrlaltdel:{SYSV_POWEROFF}"));
    }
    lines.join("\n") + "\n"
}

/// busybox init's table with MLN's step: the configuration and startup
/// lines after the image's own `sysinit` lines, the shutdown lines before
/// its other `shutdown` lines, and Ctrl-Alt-Del powering off.
fn busybox_inittab(old: &str) -> String {
    let mut lines: Vec<String> = old
        .lines()
        .filter(|l| !is_ours(l))
        .map(|l| match fields(l) {
            Some([id, levels, "ctrlaltdel", _]) => {
                format!("{id}:{levels}:ctrlaltdel:/sbin/poweroff")
            }
            _ => l.to_string(),
        })
        .collect();
    insert_after(
        &mut lines,
        "sysinit",
        &[format!("::sysinit:{BOOT_PATH} start")],
    );
    let first_shutdown = lines
        .iter()
        .position(|l| fields(l).is_some_and(|f| f[2] == "shutdown"))
        .unwrap_or(lines.len());
    lines.insert(first_shutdown, format!("::shutdown:{BOOT_PATH} shutdown"));
    if !lines
        .iter()
        .any(|l| fields(l).is_some_and(|f| f[2] == "ctrlaltdel"))
    {
        lines.push("::ctrlaltdel:/sbin/poweroff".to_string());
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_SYSV: &str = "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n\
        ~~:S:wait:/sbin/sulogin --force\nl0:0:wait:/etc/init.d/rc 0\n\
        l6:6:wait:/etc/init.d/rc 6\nca:12345:ctrlaltdel:/sbin/shutdown -t1 -a -r now\n\
        1:2345:respawn:/sbin/getty --noclear 38400 tty1\n";

    #[test]
    fn sysvinit_runs_the_step_after_rcs_and_before_run_level_0() {
        let t = sysv_inittab(DEBIAN_SYSV);
        let lines: Vec<&str> = t.lines().collect();
        let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
        assert_eq!(at("boot start"), at("/etc/init.d/rcS") + 1);
        assert!(at("boot shutdown") < at("rc 0"));
        assert!(t.contains("ca:12345:ctrlaltdel:/sbin/shutdown -t1 -h -P now"));
        assert!(!t.contains("-r now"));
        assert!(has_run_levels(&t));
        // Installing twice gives the same table.
        assert_eq!(sysv_inittab(&t), t);
    }

    #[test]
    fn busybox_init_gets_its_lines_and_powers_off_on_ctrl_alt_del() {
        let t = busybox_inittab(BUSYBOX_DEFAULT_INITTAB);
        assert_eq!(
            t,
            "::sysinit:/etc/init.d/rcS\n::sysinit:/etc/mln/boot start\n::askfirst:-/bin/sh\n\
             ::ctrlaltdel:/sbin/poweroff\n::shutdown:/etc/mln/boot shutdown\n\
             ::shutdown:/sbin/swapoff -a\n::shutdown:/bin/umount -a -r\n::restart:/sbin/init\n"
        );
        assert!(!has_run_levels(&t));
        assert_eq!(busybox_inittab(&t), t);
        // A table with neither sysinit nor shutdown lines still gets both.
        let bare = busybox_inittab("tty1::respawn:/sbin/getty 38400 tty1\n");
        assert!(
            bare.starts_with("::sysinit:/etc/mln/boot start\n"),
            "{bare}"
        );
        assert!(
            bare.contains("::shutdown:/etc/mln/boot shutdown\n"),
            "{bare}"
        );
        assert!(bare.ends_with("::ctrlaltdel:/sbin/poweroff\n"), "{bare}");
    }
}
