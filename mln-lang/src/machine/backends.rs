//! What the executor needs from the machines a project runs on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mln_core::{DomainSpec, Error, Hypervisor, Result};

use crate::plan::SwitchRecord;
use crate::plan::{DesiredProject, HostSpec, Platform, SwitchSpec};

/// The backends of every service host a project uses: hypervisors, switches
/// and disks. [`super::LocalBackends`] is the real one for this machine;
/// tests may use a double.
///
/// Every method is called from the executor's worker threads, several at a
/// time for different objects, never twice at once for one object.
pub trait Backends: Sync {
    /// The hypervisor that runs `platform` guests on `service_host`
    /// (`None`: this machine).
    fn hypervisor(&self, service_host: Option<&str>, platform: Platform)
        -> Result<&dyn Hypervisor>;

    /// The platforms whose hypervisors can be asked on `service_host`, for
    /// observing; unreachable ones are simply left out.
    fn platforms(&self, service_host: Option<&str>) -> Vec<Platform>;

    /// For a QEMU guest `domain` running on `service_host`, the
    /// accelerator its current run got (`KVM`, `TCG`); `None` when it is
    /// not known there (another platform, not running, a remote server).
    fn acceleration(&self, service_host: Option<&str>, domain: &str) -> Option<String> {
        let _ = (service_host, domain);
        None
    }

    /// Start project switch `spec`; a switch of that name left over and
    /// still running is adopted.
    fn create_switch(&self, project: &str, spec: &SwitchSpec) -> Result<SwitchRecord>;

    /// Stop project switch `spec` and remove its files; nothing to do is
    /// not an error.
    fn remove_switch(&self, project: &str, spec: &SwitchSpec) -> Result<()>;

    /// The project's switches on `service_host`: name and whether it works.
    fn list_switches(
        &self,
        project: &str,
        service_host: Option<&str>,
    ) -> Result<Vec<(String, bool)>>;

    /// Make the disks of `host` (replacing any partial leftovers of an
    /// interrupted attempt); returns their paths.
    fn prepare_disk(&self, project: &str, host: &HostSpec) -> Result<Vec<PathBuf>>;

    /// Write the guest configuration of `host` (its view of `project`).
    fn write_guest_config(&self, project: &DesiredProject, host: &HostSpec) -> Result<()>;

    /// Bring the disks of `host`, which is not running, to what its spec
    /// asks before its domain is made: a root disk grown to its `size` (or
    /// template plus `free_space`), the swap disk made again at its size or
    /// removed. Called before every domain is made from a spec.
    fn fit_disks(&self, project: &str, host: &HostSpec) -> Result<()> {
        let _ = (project, host);
        Ok(())
    }

    /// Delete the disks and configuration of `host`; nothing to do is not
    /// an error.
    fn remove_disk(&self, project: &str, host: &HostSpec) -> Result<()>;

    /// Mark `host`'s disks where they are now as placed by its service
    /// host (a mark beside its root disk, `disks/.HOST.home`), so that an
    /// evacuation can tell a server that sees the very files. Backends of
    /// one machine, which is never lost, have nothing to mark.
    fn claim_disks(&self, project: &str, host: &HostSpec) -> Result<()> {
        let _ = (project, host);
        Ok(())
    }

    /// Whether `to`'s server sees the very disk files `from`, a host of a
    /// server given up for lost, ran from (storage both mount): then it
    /// starts from them instead of afresh.
    fn sees_disks_of(&self, project: &str, from: &HostSpec, to: &HostSpec) -> Result<bool> {
        let _ = (project, from, to);
        Ok(false)
    }

    /// Remove what a server kept of `host` while it was lost (see
    /// [`crate::plan::StaleCopy`]): its disks, unless they are the very
    /// files the host runs from now (`now`: shared storage), and, where
    /// nothing else there uses them, its switches' instances. Its domain
    /// is destroyed first, through its hypervisor.
    fn remove_stale(&self, project: &str, host: &HostSpec, now: Option<&HostSpec>) -> Result<()> {
        let _ = now;
        self.remove_disk(project, host)
    }

    /// The domain that runs `host`, attached to `switches`.
    fn domain_spec(
        &self,
        project: &str,
        host: &HostSpec,
        switches: &BTreeMap<String, SwitchRecord>,
    ) -> Result<DomainSpec>;

    /// Plug a running guest's interface into its switch again after the
    /// switch was recreated.
    fn replug(
        &self,
        project: &str,
        host: &HostSpec,
        interface: &str,
        switch: &SwitchRecord,
    ) -> Result<()> {
        let _ = (project, host, interface, switch);
        Err(Error::Unsupported {
            backend: "mln",
            op: "re-plugging a running guest",
        })
    }

    /// Carry a stopped host's disks from its old service host to its new
    /// one (`from` is its recorded spec, `to` the desired one).
    fn move_disk(&self, project: &str, from: &HostSpec, to: &HostSpec) -> Result<()> {
        if from.service_host == to.service_host {
            return Ok(());
        }
        let _ = project;
        Err(Error::Unsupported {
            backend: "mln",
            op: "moving disks between service hosts",
        })
    }

    /// Migrate running `host` from its old service host to the new one
    /// (`project` for what the new server must write of it, such as its
    /// guest configuration, when its disks travel with it).
    fn migrate(&self, project: &DesiredProject, from: &HostSpec, to: &HostSpec) -> Result<()> {
        let _ = (project, from, to);
        Err(Error::Unsupported {
            backend: "mln",
            op: "live migration between service hosts",
        })
    }
}
