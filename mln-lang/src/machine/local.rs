//! The real backends of the managing machine: User-Mode Linux guests on
//! `vde_switch` switches with copy-on-write disks over a template and a
//! configuration disk each; Xen when a Xen hypervisor is handed in.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::{
    GuestConfig, GuestFile, GuestGroup, GuestInterface, GuestSshKey, GuestText, GuestUser,
    HostsEntry, InterfaceAddress,
};
use mln_core::net::{JoinedSwitch, Switch, SwitchConfig, SwitchStatus, VdeSwitch};
use mln_core::qemu::{GuestKernel, Qemu};
use mln_core::template::Template;
use mln_core::uml::{KernelStore, Uml};
use mln_core::{Attachment, Boot, DiskSpec, DomainSpec, Error, Hypervisor, InterfaceSpec, Result};

use super::disks::{self, wanted_root_size};
use super::Backends;
use crate::plan::SwitchRecord;
use crate::plan::{domain_name, DesiredProject, HostSpec, Platform, SwitchSpec, HEADROOM};

/// This machine's backends for one project, keeping everything (guests,
/// switches, disks) in the project's folder:
///
/// ```text
/// DIR/uml/PROJECT.HOST/   UML guests (see mln_core::uml)
/// DIR/switches/NAME/      vde switches (see mln_core::net)
/// DIR/disks/HOST.cow      copy-on-write root disks
/// DIR/disks/HOST.config   configuration disks
/// DIR/disks/HOST.swap     swap disks
/// DIR/disks/bases/        padded templates under UML disks larger than
///                         their template (mln_core::disk)
/// ```
///
/// Other service hosts are reached over SSH by a later layer; here they
/// are refused with an [`Error::Backend`] naming the host or switch and
/// the server.
pub struct LocalBackends {
    dir: PathBuf,
    uml: Uml,
    uml_kernel: PathBuf,
    /// Where fetched kernels live (UML's and the QEMU guests').
    kernels: PathBuf,
    /// QEMU guests, made on first use: with the guest kernel's probe of
    /// KVM when that kernel is there, else plain (TCG).
    qemu: OnceLock<Qemu>,
    templates: BTreeMap<String, Template>,
    default_template: Option<Template>,
    xen: Option<Box<dyn Hypervisor>>,
}

impl LocalBackends {
    /// Backends keeping their files in `dir` (usually the project's state
    /// folder, [`crate::state::StateStore::dir`]).
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        // The kernels store is the state folder's, beside the projects
        // (or MLN_KERNELS_DIR's).
        let kernels = KernelStore::new(mln_core::uml::kernels_dir(dir.parent().unwrap_or(&dir)));
        Ok(LocalBackends {
            uml: Uml::new(dir.join("uml"))?,
            uml_kernel: kernels.choose(None).path,
            kernels: kernels.dir().to_path_buf(),
            qemu: OnceLock::new(),
            dir,
            templates: BTreeMap::new(),
            default_template: None,
            xen: None,
        })
    }

    /// Boot UML hosts without a `kernel` of their own with `kernel`
    /// (default: [`KernelStore::choose`] of the `kernels` folder beside
    /// the project's: `MLN_UML_KERNEL`, a fetched kernel where the
    /// distribution's crashes, or the distribution's).
    pub fn with_uml_kernel(mut self, kernel: impl Into<PathBuf>) -> Self {
        self.uml_kernel = kernel.into();
        self
    }

    /// The kernel UML hosts without a `kernel` of their own boot with.
    pub fn uml_kernel(&self) -> &Path {
        &self.uml_kernel
    }

    /// The template hosts without `template` get.
    pub fn with_default_template(mut self, template: Template) -> Self {
        self.default_template = Some(template);
        self
    }

    /// The template a host's `template NAME` means.
    pub fn with_template(mut self, name: impl Into<String>, template: Template) -> Self {
        self.templates.insert(name.into(), template);
        self
    }

    /// Run `xen` and `hvm` hosts on this Xen hypervisor.
    pub fn with_xen(mut self, xen: Box<dyn Hypervisor>) -> Self {
        self.xen = Some(xen);
        self
    }

    /// The folder everything of the project is kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The UML backend (for console logs and the management console).
    pub fn uml(&self) -> &Uml {
        &self.uml
    }

    /// The console log of `host` of `project` (`mln log -p PROJECT HOST`);
    /// it is kept while the host's domain exists. A Xen guest's is the one
    /// `xenconsoled` keeps, when it keeps one ([`xen_console_log`]).
    pub fn console_log(&self, project: &str, host: &str) -> Result<PathBuf> {
        let name = domain_name(project, host);
        let qemu = self.qemu()?.console_log(&name)?;
        if qemu.exists() {
            return Ok(qemu);
        }
        let uml = self.uml.console_log(&name)?;
        if uml.exists() {
            return Ok(uml);
        }
        Ok(xen_console_log(Path::new(XEN_CONSOLE_LOGS), &name).unwrap_or(uml))
    }

    /// The QEMU backend (KVM where a probe boot shows it works, else TCG).
    pub fn qemu(&self) -> Result<&Qemu> {
        if let Some(q) = self.qemu.get() {
            return Ok(q);
        }
        let mut qemu = Qemu::new(self.dir.join("qemu"))?;
        if let Some(kernel) = GuestKernel::find(&self.kernels) {
            qemu = qemu.with_guest_kernel(&kernel);
        }
        Ok(self.qemu.get_or_init(|| qemu))
    }

    /// The kernel and initramfs QEMU and Xen PV guests boot the template
    /// with, fetched into the kernels folder on first use.
    fn guest_kernel(&self) -> Result<GuestKernel> {
        GuestKernel::fetch(&self.kernels)
    }

    /// `host`'s guest configuration disk, made here (where the `files`
    /// sources are) for a server to put in place
    /// ([`LocalBackends::put_guest_config`]).
    pub fn guest_config_disk(&self, project: &DesiredProject, host: &HostSpec) -> Result<Vec<u8>> {
        guest_config(project, host, &self.swap_path(&host.name)?)?.disk_bytes()
    }

    /// Put `host`'s guest configuration disk, made by the managing
    /// machine ([`LocalBackends::guest_config_disk`]), in its place.
    pub fn put_guest_config(&self, host: &HostSpec, disk: &[u8]) -> Result<()> {
        Self::local(host.service_host.as_deref(), &host.name, "disks")?;
        let path = self.config_path(&host.name)?;
        let dir = self.disk_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // Whole or not at all: a half-written disk is never the config.
        let tmp = path.with_extension("config.part");
        fs::write(&tmp, disk).map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    fn switch_dir(&self) -> PathBuf {
        self.dir.join("switches")
    }

    fn disk_dir(&self) -> PathBuf {
        self.dir.join("disks")
    }

    /// UML reads its own COW format; Xen's qdisk reads qcow2. The host
    /// name becomes a file name here, so it is checked here too.
    pub(super) fn cow(&self, host: &HostSpec) -> Result<(PathBuf, CowFormat)> {
        let name = mln_core::SafeName::new(&host.name)?;
        Ok(match host.platform {
            Platform::Uml => (self.disk_dir().join(format!("{name}.cow")), CowFormat::Uml),
            _ => (
                self.disk_dir().join(format!("{name}.qcow2")),
                CowFormat::Qcow2,
            ),
        })
    }

    fn config_path(&self, host: &str) -> Result<PathBuf> {
        let name = mln_core::SafeName::new(host)?;
        Ok(self.disk_dir().join(format!("{name}.config")))
    }

    fn swap_path(&self, host: &str) -> Result<PathBuf> {
        let name = mln_core::SafeName::new(host)?;
        Ok(self.disk_dir().join(format!("{name}.swap")))
    }

    /// The root disk size `host` asks for over its template, if any (the
    /// template is looked at only for `free_space`).
    fn root_size(&self, host: &HostSpec, template: &Template) -> Result<Option<u64>> {
        if host.disk_size.is_none() && host.free_space().is_none() {
            return Ok(None);
        }
        let len = fs::metadata(&template.image)
            .map_err(|_| Error::MissingFile {
                what: "template",
                path: template.image.clone(),
            })?
            .len();
        Ok(wanted_root_size(host, len))
    }

    /// Refuse work for `what` (a host or switch) on another server, saying
    /// which server and why.
    fn local(service_host: Option<&str>, what: &str, op: &'static str) -> Result<()> {
        match service_host {
            None => Ok(()),
            Some(server) => Err(Error::Backend {
                what: what.to_string(),
                message: format!(
                    "service host {server} cannot be reached: this machine manages only \
                     its own {op} (remote service hosts are not supported yet)"
                ),
            }),
        }
    }

    /// The template `host` is made over here (its `template NAME`, else
    /// the default), or why there is none.
    pub fn template_of(&self, host: &HostSpec) -> Result<&Template> {
        self.template(host)
    }

    fn template(&self, host: &HostSpec) -> Result<&Template> {
        let found = match &host.template {
            Some(name) => self.templates.get(name),
            None => self.default_template.as_ref(),
        };
        found.ok_or_else(|| Error::Backend {
            what: host.name.clone(),
            message: match &host.template {
                Some(name) => format!("no template called {name} is known"),
                None => "no default template is configured".to_string(),
            },
        })
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// How long a new `vde_switch`'s tap may take to appear: the switch makes
/// it after its control socket, and the command returns once that is there.
const TAP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether network interface `tap` is there, waiting up to [`TAP_WAIT`]
/// for a switch just started (an adopted one has had its time).
fn tap_appears(tap: &str, adopted: bool) -> bool {
    let path = Path::new("/sys/class/net").join(tap);
    let deadline = std::time::Instant::now()
        + if adopted {
            Default::default()
        } else {
            TAP_WAIT
        };
    loop {
        if path.exists() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How a host boots on its platform: kernel, ramdisk and command line,
/// and the names its root and configuration disks have there.
struct GuestBoot {
    boot: Boot,
    root: &'static str,
    config: &'static str,
}

impl LocalBackends {
    fn guest_boot(&self, host: &HostSpec, template: &Template) -> Result<GuestBoot> {
        let (root, config, device) = match host.platform {
            Platform::Uml => ("ubda", "ubdb", "/dev/ubda"),
            Platform::Xen | Platform::Hvm => ("xvda", "xvdb", "/dev/xvda"),
            Platform::Kvm => ("vda", "vdb", "/dev/vda"),
        };
        // The template names its root disk as UML sees it.
        let mut cmdline = format!("{} quiet", template.cmdline.replace("/dev/ubda", device));
        let (kernel, ramdisk) = match (host.platform, &host.kernel) {
            (_, Some(k)) => (PathBuf::from(k), host.ramdisk.as_ref().map(PathBuf::from)),
            (Platform::Uml, None) => {
                // UML kernels with btrfs built in time their RAID6
                // algorithms at boot: about 0.85 s of a 1.8 s boot, for a
                // file system profile no guest uses.
                cmdline.push_str(" initcall_blacklist=raid6_select_algo");
                (self.uml_kernel.clone(), None)
            }
            // Debian's kernel with MLN's initramfs boots a template on
            // QEMU (virtio) and as a Xen PV guest (Xen's front ends) alike.
            (Platform::Kvm | Platform::Xen, None) => {
                let k = self.guest_kernel()?;
                (k.kernel, Some(k.initrd))
            }
            (Platform::Hvm, None) => {
                return Err(Error::Backend {
                    what: host.name.clone(),
                    message: "a Xen HVM guest needs `kernel` (and `ramdisk`), or the site's \
                              `xen_kernel`"
                        .into(),
                })
            }
        };
        if let Some(extra) = &host.cmdline {
            cmdline.push(' ');
            cmdline.push_str(extra);
        }
        Ok(GuestBoot {
            boot: Boot::Kernel {
                kernel,
                ramdisk,
                cmdline,
            },
            root,
            config,
        })
    }
}

fn guest_config(project: &DesiredProject, host: &HostSpec, swap: &Path) -> Result<GuestConfig> {
    let mut cfg = GuestConfig::new(&host.name);
    (cfg.grow_root, cfg.swap, cfg.mounts) = disks::guest_disks(host, swap)?;
    for iface in &host.interfaces {
        cfg.interfaces.push(GuestInterface {
            name: iface.name.clone(),
            mac: Some(iface.mac),
            address: iface.guest_address(&host.name)?,
            gateway: iface.gateway.as_deref().and_then(|g| g.parse().ok()),
        });
    }
    // Every host of the project by name, so guests reach each other.
    for other in project.hosts.values() {
        for iface in &other.interfaces {
            if let Ok(InterfaceAddress::Static { address, .. }) = iface.guest_address(&other.name) {
                cfg.hosts.push(HostsEntry {
                    address,
                    names: vec![other.name.clone()],
                });
                break;
            }
        }
    }
    let g = &host.guest;
    cfg.nameservers = g
        .nameservers
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    cfg.root_password_hash = g.root_passwd.clone();
    // `USER KEY` lines; the checker reported any other (see `resolve`).
    cfg.ssh_keys = g
        .sshkeys
        .iter()
        .filter_map(|l| GuestSshKey::from_line(l))
        .collect();
    cfg.users = g
        .users
        .iter()
        .map(|u| GuestUser {
            name: u.name.clone(),
            password_hash: u.hash.clone(),
            home: u.home.clone(),
            uid: u.uid,
        })
        .collect();
    cfg.groups = g
        .groups
        .iter()
        .map(|gr| GuestGroup {
            name: gr.name.clone(),
            members: gr.members.clone(),
        })
        .collect();
    cfg.files = g
        .files
        .iter()
        .map(|f| GuestFile {
            source: PathBuf::from(&f.src),
            dest: f.dest.clone(),
            mode: f
                .mode
                .as_deref()
                .and_then(|m| u32::from_str_radix(m, 8).ok()),
        })
        .collect();
    cfg.startup = g.startup.iter().chain(&g.plugin_startup).cloned().collect();
    cfg.shutdown = g.shutdown.clone();
    cfg.written = g
        .written
        .iter()
        .map(|w| GuestText {
            dest: w.path.clone(),
            content: w.content.clone(),
            mode: w.mode,
        })
        .collect();
    cfg.validate()?;
    Ok(cfg)
}

impl Backends for LocalBackends {
    fn acceleration(&self, service_host: Option<&str>, domain: &str) -> Option<String> {
        if service_host.is_some() {
            return None;
        }
        let accel = self.qemu().and_then(|q| q.acceleration(domain));
        accel.ok().flatten().map(|a| a.to_string())
    }

    fn hypervisor(
        &self,
        service_host: Option<&str>,
        platform: Platform,
    ) -> Result<&dyn Hypervisor> {
        if let Some(server) = service_host {
            Self::local(Some(server), "guests", "guests")?;
        }
        match platform {
            Platform::Uml => Ok(&self.uml),
            Platform::Xen | Platform::Hvm => match &self.xen {
                Some(x) => Ok(x.as_ref()),
                None => Err(Error::XenUnavailable {
                    reason: "no Xen hypervisor was configured for this project".into(),
                }),
            },
            Platform::Kvm => Ok(self.qemu()?),
        }
    }

    fn platforms(&self, service_host: Option<&str>) -> Vec<Platform> {
        if service_host.is_some() {
            return Vec::new();
        }
        let mut out = vec![Platform::Uml];
        if self.xen.is_some() {
            out.push(Platform::Xen);
        }
        if self.dir.join("qemu").is_dir() {
            out.push(Platform::Kvm);
        }
        out
    }

    /// A `vde_switch` for UML guests. Where Xen guests can run too (a Xen
    /// hypervisor is configured and this process may make bridges, i.e.
    /// root), also a Linux bridge for them (`bridge NAME`, else one named
    /// after project and switch), joined to the `vde_switch` by a tap port
    /// of the switch plugged into the bridge: a switch's spec does not say
    /// which platforms its hosts run on, and so made it serves both.
    fn create_switch(&self, project: &str, spec: &SwitchSpec) -> Result<SwitchRecord> {
        use mln_core::net::LinuxBridge;
        Self::local(spec.service_host.as_deref(), &spec.name, "switches")?;
        if let Some(socket) = &spec.socket {
            return join_switch(spec, socket, &self.switch_dir());
        }
        let bridged = self.xen.is_some() && LinuxBridge::can_manage();
        let join = bridged.then(|| LinuxBridge::derived_join_name(project, &spec.name));
        let vde = SwitchConfig {
            name: spec.name.clone(),
            hub: spec.hub,
            ports: (spec.ports > 0).then_some(spec.ports),
            // A bridge takes the project's own tap; the switch's tap port
            // is then the join.
            tap: if bridged {
                join.clone()
            } else {
                spec.tap.clone()
            },
        };
        let (sw, adopted) = match VdeSwitch::start(&vde, self.switch_dir()) {
            Ok(sw) => (sw, false),
            // Left running by an earlier run: adopt it.
            Err(Error::AlreadyExists { .. }) => {
                (VdeSwitch::open(&spec.name, self.switch_dir())?, true)
            }
            Err(e) => return Err(e),
        };
        let pid = match sw.status() {
            SwitchStatus::Running { pid } => Some(pid),
            SwitchStatus::Up | SwitchStatus::Gone => None,
        };
        let mut record = SwitchRecord {
            spec: spec.clone(),
            socket: Some(sw.ctl_dir()),
            bridge: None,
            pid,
        };
        let Some(join) = join else {
            return Ok(record);
        };
        let bridge = (|| {
            if !tap_appears(&join, adopted) {
                return Err(Error::Backend {
                    what: format!("switch {}", spec.name),
                    message: if adopted {
                        format!(
                            "its vde_switch runs without the tap {join} that joins it to the \
                             Linux bridge of its Xen guests (it was started before Xen was \
                             available here); stop the project and start it again"
                        )
                    } else {
                        format!(
                            "its vde_switch started, but the tap {join} that joins it to the \
                             Linux bridge of its Xen guests did not appear within \
                             {TAP_WAIT:?} (is the tun module loaded?)"
                        )
                    },
                });
            }
            let name = spec
                .bridge
                .clone()
                .unwrap_or_else(|| LinuxBridge::derived_name(project, &spec.name));
            let br_spec = SwitchConfig {
                tap: spec.tap.clone(),
                ..vde.clone()
            };
            let br = LinuxBridge::start(&br_spec, &name, self.switch_dir())?;
            br.plug(&join)?;
            Ok(br)
        })();
        match bridge {
            Ok(br) => {
                record.bridge = Some(br.bridge_name().to_string());
                Ok(record)
            }
            Err(e) => {
                // Half a switch is none: the vde_switch started here goes.
                if !adopted {
                    let _ = sw.stop();
                }
                Err(e)
            }
        }
    }

    /// Stops the `vde_switch` (its tap leaves the bridge with it), then
    /// deletes the bridge, if either is recorded; a bridge `mln` did not
    /// make is never deleted (see `mln_core::net::LinuxBridge`).
    fn remove_switch(&self, _project: &str, spec: &SwitchSpec) -> Result<()> {
        use mln_core::net::LinuxBridge;
        Self::local(spec.service_host.as_deref(), &spec.name, "switches")?;
        match JoinedSwitch::open(&spec.name, self.switch_dir()) {
            Ok(joined) => return joined.stop(),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let vde = match VdeSwitch::open(&spec.name, self.switch_dir()) {
            Ok(sw) => sw.stop(),
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        let bridge = match LinuxBridge::open(&spec.name, self.switch_dir()) {
            Ok(br) => br.stop(),
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        vde.and(bridge)
    }

    /// Every recorded switch; it works when each of its parts (its
    /// `vde_switch`, its bridge) does.
    fn list_switches(
        &self,
        _project: &str,
        service_host: Option<&str>,
    ) -> Result<Vec<(String, bool)>> {
        use mln_core::net::LinuxBridge;
        if service_host.is_some() {
            return Ok(Vec::new());
        }
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        let vdes = VdeSwitch::list(self.switch_dir())?;
        let bridges = LinuxBridge::list(self.switch_dir())?;
        let joined = JoinedSwitch::list(self.switch_dir())?;
        let parts = vdes
            .iter()
            .map(|sw| (sw.name(), sw.status()))
            .chain(bridges.iter().map(|br| (br.name(), br.status())))
            .chain(joined.iter().map(|j| (j.name(), j.status())));
        for (name, status) in parts {
            let up = out.entry(name.to_string()).or_insert(true);
            *up &= status.is_up();
        }
        Ok(out.into_iter().collect())
    }

    fn prepare_disk(&self, _project: &str, host: &HostSpec) -> Result<Vec<PathBuf>> {
        Self::local(host.service_host.as_deref(), &host.name, "disks")?;
        let template = self.template(host)?;
        let (cow, format) = self.cow(host)?;
        let config = self.config_path(&host.name)?;
        let dir = self.disk_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // Only planned when no finished disk is recorded: whatever is
        // there is a leftover of an interrupted attempt.
        remove_file(&cow)?;
        let overlay = match self.root_size(host, template)? {
            Some(size) => Overlay::create_sized(&template.image, &cow, format, size)?,
            None => Overlay::create(&template.image, &cow, format)?,
        };
        Ok(vec![overlay.path, config])
    }

    /// Grows the root overlay (see `mln_core::disk::Overlay::grow`), makes
    /// the swap disk afresh (or removes it), and checks that the images
    /// `mount` lines attach are there.
    fn fit_disks(&self, _project: &str, host: &HostSpec) -> Result<()> {
        Self::local(host.service_host.as_deref(), &host.name, "disks")?;
        let template = self.template(host)?;
        let (cow, format) = self.cow(host)?;
        if let Some(size) = self.root_size(host, template)? {
            let overlay = Overlay::open_as(&cow, format)?;
            if size != overlay.size {
                overlay.grow(&template.image, size)?;
                if format == CowFormat::Uml {
                    mln_core::disk::remove_unused_bases(&self.disk_dir())?;
                }
            }
        }
        let swap = self.swap_path(&host.name)?;
        match host.swap {
            Some(size) => mln_core::disk::make_swap(&swap, size)?,
            None => remove_file(&swap)?,
        }
        disks::check_mount_images(host)
    }

    fn write_guest_config(&self, project: &DesiredProject, host: &HostSpec) -> Result<()> {
        Self::local(host.service_host.as_deref(), &host.name, "disks")?;
        let path = self.config_path(&host.name)?;
        let config = guest_config(project, host, &self.swap_path(&host.name)?)?;
        let dir = self.disk_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        config.write_disk(&path)
    }

    fn remove_disk(&self, _project: &str, host: &HostSpec) -> Result<()> {
        Self::local(host.service_host.as_deref(), &host.name, "disks")?;
        remove_file(&self.cow(host)?.0)?;
        remove_file(&self.swap_path(&host.name)?)?;
        remove_file(&self.config_path(&host.name)?)?;
        super::home::forget(self, host)?;
        mln_core::disk::remove_unused_bases(&self.disk_dir())
    }

    fn domain_spec(
        &self,
        project: &str,
        host: &HostSpec,
        switches: &BTreeMap<String, SwitchRecord>,
    ) -> Result<DomainSpec> {
        let template = self.template(host)?;
        let boot = self.guest_boot(host, template)?;
        let mut spec = DomainSpec::new(domain_name(project, &host.name), host.memory, boot.boot);
        spec.vcpus = host.vcpus;
        spec.cpus = host.cpus.clone();
        spec.boot_marker = template.boot_marker.clone();
        // A template that prints MLN's boot marker runs MLN's guest step,
        // its command agent among it: a Xen guest gets it a channel.
        spec.agent = template.boot_marker.is_some();
        if host.platform.live_resize() {
            // Room to grow live (see plan::HEADROOM).
            spec.max_memory = Some(host.memory.saturating_mul(HEADROOM));
        }
        if host.platform.live_vcpus() {
            spec.max_vcpus = Some(host.vcpus.saturating_mul(HEADROOM as u32));
        }
        spec.disks.push(DiskSpec {
            path: self.cow(host)?.0,
            target: boot.root.into(),
            readonly: false,
        });
        spec.disks.push(DiskSpec {
            path: self.config_path(&host.name)?,
            target: boot.config.into(),
            readonly: true,
        });
        for extra in disks::extra_disks(host, &self.swap_path(&host.name)?)? {
            spec.disks.push(DiskSpec {
                path: extra.path,
                target: extra.target,
                readonly: extra.readonly,
            });
        }
        let xen = matches!(host.platform, Platform::Xen | Platform::Hvm);
        for iface in &host.interfaces {
            let attach = match (&iface.switch, &iface.bridge) {
                (Some(sw), _) => {
                    let rec = switches.get(sw).ok_or_else(|| Error::NotFound {
                        domain: format!("switch {sw}"),
                    })?;
                    match (&rec.socket, &rec.bridge) {
                        (Some(sock), _) if !xen => Attachment::Vde(sock.clone()),
                        (_, Some(br)) => Attachment::Bridge(br.clone()),
                        (Some(sock), None) => Attachment::Vde(sock.clone()),
                        (None, None) => Attachment::None,
                    }
                }
                (None, Some(br)) => Attachment::Bridge(br.clone()),
                (None, None) => Attachment::None,
            };
            spec.interfaces.push(InterfaceSpec {
                name: iface.name.clone(),
                mac: iface.mac,
                attach,
            });
        }
        Ok(spec)
    }

    fn replug(
        &self,
        project: &str,
        host: &HostSpec,
        interface: &str,
        switch: &SwitchRecord,
    ) -> Result<()> {
        if host.platform != Platform::Uml {
            return Err(Error::Unsupported {
                backend: "local",
                op: "re-plugging a Xen guest",
            });
        }
        let sock = switch.socket.as_ref().ok_or_else(|| Error::NotFound {
            domain: format!("switch {} socket", switch.spec.name),
        })?;
        let mac = host
            .interfaces
            .iter()
            .find(|i| i.name == interface)
            .map(|i| i.mac)
            .ok_or_else(|| Error::NotFound {
                domain: format!("{}.{interface}", host.name),
            })?;
        self.uml
            .replug(&domain_name(project, &host.name), interface, sock, mac)
    }
}

/// `socket PATH`: the guests plug into that `vde_switch`, which is
/// someone else's (never started nor stopped here). Xen guests, which
/// need a bridge, are not served by it: give them `bridge` instead.
fn join_switch(spec: &SwitchSpec, socket: &str, dir: &Path) -> Result<SwitchRecord> {
    let joined = JoinedSwitch::join(&spec.name, socket, dir).map_err(|e| Error::Backend {
        what: format!("switch {}", spec.name),
        message: format!("cannot join the switch at `socket {socket}`: {e}"),
    })?;
    Ok(SwitchRecord {
        spec: spec.clone(),
        socket: Some(joined.socket().to_path_buf()),
        bridge: None,
        pid: None,
    })
}
/// Where `xenconsoled` writes guests' consoles when it runs with
/// `--log=guest` (Debian: `XENCONSOLED_TRACE=guest` in
/// `/etc/default/xencommons`).
pub const XEN_CONSOLE_LOGS: &str = "/var/log/xen/console";

/// The console log `xenconsoled` keeps in `dir` for Xen domain `name`:
/// `guest-NAME.log`, or for a guest that moved in live, the log of its
/// name during the move (`guest-NAME--incoming.log`), whichever was
/// written last. `None` when it keeps neither.
pub fn xen_console_log(dir: &Path, name: &str) -> Option<PathBuf> {
    [
        format!("guest-{name}.log"),
        format!("guest-{name}--incoming.log"),
    ]
    .into_iter()
    .map(|f| dir.join(f))
    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
    .max_by_key(|(modified, _)| *modified)
    .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_xen_guests_console_log_is_the_one_written_last_under_either_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(xen_console_log(dir.path(), "p.web"), None);
        let own = dir.path().join("guest-p.web.log");
        std::fs::write(&own, "booted here\n").unwrap();
        assert_eq!(xen_console_log(dir.path(), "p.web"), Some(own.clone()));
        // It moved away and came back in live: the incoming log is newer.
        let incoming = dir.path().join("guest-p.web--incoming.log");
        std::fs::write(&incoming, "moved in\n").unwrap();
        let older = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&own)
            .unwrap()
            .set_modified(older)
            .unwrap();
        assert_eq!(xen_console_log(dir.path(), "p.web"), Some(incoming));
        assert_eq!(xen_console_log(dir.path(), "p.db"), None);
    }
}
