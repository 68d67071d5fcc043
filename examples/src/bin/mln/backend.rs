//! Which backend runs which host: what this machine can run, the
//! project's platforms and the `--backend` override.

use mln_lang::apply::LocalBackends;
use mln_lang::check::minimum_memory;
use mln_lang::model::Project;
use mln_lang::plan::{DesiredProject, Platform};

use crate::cli::BackendChoice;

/// What this machine can run: UML always (the kernel is checked when a
/// guest starts), Xen when this is a Xen dom0.
pub struct Machine {
    xen: Result<Box<dyn mln_core::Hypervisor>, String>,
}

impl Machine {
    /// Look at this machine (connects to Xen when built with it).
    pub fn detect() -> Self {
        Machine { xen: connect_xen() }
    }

    /// The backend hosts run on by default here: Xen on a Xen dom0, else
    /// UML.
    pub fn default_backend(&self) -> BackendChoice {
        if self.xen.is_ok() {
            BackendChoice::Xen
        } else {
            BackendChoice::Uml
        }
    }

    /// Hand this machine's Xen, if any, to `backends`.
    pub fn attach(self, backends: LocalBackends) -> LocalBackends {
        match self.xen {
            Ok(xen) => backends.with_xen(xen),
            Err(_) => backends,
        }
    }

    /// Decide the platform of every host in `hosts` (name, platform as the
    /// project says, and whether it runs on this machine rather than on
    /// another service host): `None` keeps them all, `Some(p)` runs them
    /// all as `p`. Fails, saying what to do, when a host would need a
    /// backend this machine lacks (Xen: only for hosts that run here).
    fn placement<'a>(
        &self,
        project: &str,
        hosts: impl Iterator<Item = (&'a str, Platform, bool)>,
        choice: Option<BackendChoice>,
    ) -> Result<Option<BackendChoice>, String> {
        let qemu = qemu_installed();
        match (choice, &self.xen) {
            (Some(BackendChoice::Xen), Err(why)) => {
                Err(format!("--backend xen: Xen cannot run here ({why})"))
            }
            (Some(BackendChoice::Kvm), _) if !qemu => {
                Err("--backend kvm: QEMU is not installed (apt-get install qemu-system-x86)".into())
            }
            (Some(c), _) => Ok(Some(c)),
            (None, xen) => {
                let hosts: Vec<(&str, Platform, bool)> = hosts.collect();
                let named = |want: fn(Platform) -> bool| -> Vec<&str> {
                    hosts
                        .iter()
                        .filter(|(_, p, _)| want(*p))
                        .map(|(n, _, _)| *n)
                        .collect()
                };
                let kvm = named(|p| p == Platform::Kvm);
                if !kvm.is_empty() && !qemu {
                    return Err(format!(
                        "project {project} asks for kvm hosts ({}), but QEMU is not installed \
                         (apt-get install qemu-system-x86); or add --backend {} to run them on {}",
                        kvm.join(", "),
                        self.default_backend().name(),
                        self.default_backend().label(),
                    ));
                }
                let xen_hosts: Vec<&str> = hosts
                    .iter()
                    .filter(|(_, p, here)| *here && p.backend() == Some(mln_core::BackendKind::Xen))
                    .map(|(n, _, _)| *n)
                    .collect();
                match xen {
                    Err(why) if !xen_hosts.is_empty() => Err(format!(
                        "project {project} asks for Xen hosts ({}), but Xen cannot run here ({why}); \
                         add --backend uml to run them as User-Mode Linux guests",
                        xen_hosts.join(", ")
                    )),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Put every host of a resolved project on its backend (see
    /// [`Machine::placement`]).
    pub fn place_project(
        &self,
        project: &mut Project,
        choice: Option<BackendChoice>,
    ) -> Result<(), String> {
        let hosts = project.hosts.iter().map(|h| {
            (
                h.name.as_str(),
                h.platform,
                runs_here(h.service_host.as_deref()),
            )
        });
        if let Some(to) = self.placement(&project.name, hosts, choice)? {
            for h in &mut project.hosts {
                h.platform = to.platform(h.platform);
            }
        }
        enough_memory(
            &project.name,
            project
                .hosts
                .iter()
                .map(|h| (h.name.as_str(), h.platform, h.memory)),
        )
    }

    /// [`Machine::place_project`] for a project as last applied.
    pub fn place_desired(
        &self,
        project: &mut DesiredProject,
        choice: Option<BackendChoice>,
    ) -> Result<(), String> {
        let hosts = project.hosts.values().map(|h| {
            (
                h.name.as_str(),
                h.platform,
                runs_here(h.service_host.as_deref()),
            )
        });
        if let Some(to) = self.placement(&project.name, hosts, choice)? {
            for h in project.hosts.values_mut() {
                h.platform = to.platform(h.platform);
            }
        }
        enough_memory(
            &project.name,
            project
                .hosts
                .values()
                .map(|h| (h.name.as_str(), h.platform, h.memory)),
        )
    }
}

/// Whether a host with this `service_host` runs on this machine (as
/// `ClusterBackends` decides: no service host, `localhost` or this
/// machine's name).
fn runs_here(service_host: Option<&str>) -> bool {
    service_host.map_or(true, |s| {
        s == "localhost" || mln_lang::agent::this_hostname().as_deref() == Some(s)
    })
}

impl BackendChoice {
    fn name(self) -> &'static str {
        match self {
            BackendChoice::Uml => "uml",
            BackendChoice::Xen => "xen",
            BackendChoice::Kvm => "kvm",
        }
    }

    fn label(self) -> &'static str {
        match self {
            BackendChoice::Uml => "User-Mode Linux",
            BackendChoice::Xen => "Xen",
            BackendChoice::Kvm => "QEMU/KVM",
        }
    }

    /// The platform a host written as `written` runs as on this backend
    /// (an `hvm` host stays fully virtualised on Xen).
    fn platform(self, written: Platform) -> Platform {
        match (self, written) {
            (BackendChoice::Uml, _) => Platform::Uml,
            (BackendChoice::Xen, Platform::Hvm) => Platform::Hvm,
            (BackendChoice::Xen, _) => Platform::Xen,
            (BackendChoice::Kvm, _) => Platform::Kvm,
        }
    }
}

/// Refuse hosts with less memory than their platform boots with (a
/// project checked as UML hosts may run as QEMU guests with `--backend
/// kvm`), naming them: nothing is made for a guest that cannot boot.
fn enough_memory<'a>(
    project: &str,
    hosts: impl Iterator<Item = (&'a str, Platform, u64)>,
) -> Result<(), String> {
    let short: Vec<String> = hosts
        .filter(|(_, platform, memory)| *memory < minimum_memory(*platform))
        .map(|(name, platform, memory)| {
            format!(
                "{name} ({} MiB as a {platform} guest, which needs {} MiB)",
                memory >> 20,
                minimum_memory(platform) >> 20
            )
        })
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    Err(format!(
        "project {project}: too little memory to boot: {}",
        short.join(", ")
    ))
}

/// Whether QEMU can run guests here (`qemu-system-x86_64` on the PATH).
pub fn qemu_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| d.join(mln_core::qemu::Qemu::PROGRAM).is_file())
    })
}

#[cfg(feature = "xen")]
pub(crate) fn connect_xen() -> Result<Box<dyn mln_core::Hypervisor>, String> {
    match mln_core::xen::XenHypervisor::connect() {
        Ok(xen) => Ok(Box::new(xen)),
        Err(e) => {
            log::info!("Xen guests cannot run here: {e}");
            Err(e.to_string())
        }
    }
}

#[cfg(not(feature = "xen"))]
pub(crate) fn connect_xen() -> Result<Box<dyn mln_core::Hypervisor>, String> {
    Err("mln was built without Xen support".to_string())
}
