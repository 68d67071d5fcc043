//! Switches that span servers: each server a switch's hosts run on has
//! an instance of it, joined to the home instance by a vde cable or, between
//! Linux bridges, a VXLAN link; instances and joins are made, checked and
//! removed here.

use std::path::PathBuf;

use mln_core::{Error, Result};

use super::{lock, ClusterBackends};
use crate::agent::protocol::{Request, Underlay};
use crate::agent::vxlan;
use crate::machine::Backends;
use crate::plan::{HostSpec, SwitchSpec};
use crate::state::SwitchRecord;

/// How a switch's instance on another server is joined to its home one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// A vde cable run from this machine (`mln_core::net::Cable`).
    Cable,
    /// A VXLAN link between the two Linux bridges
    /// (`mln_core::net::Vxlan`), between this machine and that server.
    Vxlan,
}

/// VXLAN when both instances are Linux bridges and one of them is on
/// this machine; the cable otherwise. Each bridged instance is also a
/// `vde_switch` joined to its bridge by a tap, so UML guests meet through
/// the link too. The two never join the same pair: with the taps they
/// would close a loop. Only between this machine and a server are both
/// ends' addresses known (the server's `SSH_CONNECTION`); between two
/// other servers the cable stays.
fn transport(
    home: Option<&str>,
    home_rec: &SwitchRecord,
    other: Option<&str>,
    other_rec: &SwitchRecord,
) -> Transport {
    let bridged = home_rec.bridge.is_some() && other_rec.bridge.is_some();
    if bridged && vxlan_server(home, other).is_some() {
        Transport::Vxlan
    } else {
        Transport::Cable
    }
}

/// The server a VXLAN link of `home` and `other` would run to: the one
/// that is not this machine, when the other one is.
fn vxlan_server<'a>(home: Option<&'a str>, other: Option<&'a str>) -> Option<&'a str> {
    match (home, other) {
        (None, Some(server)) | (Some(server), None) => Some(server),
        _ => None,
    }
}

impl ClusterBackends {
    pub(super) fn here_switch(spec: &SwitchSpec) -> SwitchSpec {
        let mut s = spec.clone();
        s.service_host = None;
        s
    }

    /// Start `spec`'s instance on `at` (`None`: here).
    pub(super) fn switch_instance(
        &self,
        project: &str,
        spec: &SwitchSpec,
        at: Option<&str>,
    ) -> Result<SwitchRecord> {
        match at {
            None => self.local.create_switch(project, &Self::here_switch(spec)),
            Some(server) => self.link(server)?.call(&Request::CreateSwitch {
                project: project.to_string(),
                spec: spec.clone(),
            }),
        }
    }

    pub(super) fn remove_instance(
        &self,
        project: &str,
        spec: &SwitchSpec,
        at: Option<&str>,
    ) -> Result<()> {
        match at {
            None => self.local.remove_switch(project, &Self::here_switch(spec)),
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::RemoveSwitch {
                    project: project.to_string(),
                    spec: spec.clone(),
                })
                .map(drop),
        }
    }

    pub(super) fn cable_dir(&self) -> PathBuf {
        self.local.dir().join("cables")
    }

    /// The cable joining `switch`'s instance on `other` to its home one.
    pub(super) fn cable_name(switch: &str, other: Option<&str>) -> String {
        let other: String = other
            .unwrap_or("local")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{switch}--{other}")
    }

    /// The command that plugs into `switch`'s instance on `at`: `vde_plug`
    /// here, `mln agent plug PROJECT SWITCH` over ssh on another server.
    pub(super) fn plug_side(
        &self,
        project: &str,
        switch: &str,
        at: Option<&str>,
    ) -> Result<Vec<std::ffi::OsString>> {
        match at {
            None => Ok(
                mln_core::net::VdeSwitch::open(switch, self.local.dir().join("switches"))?
                    .plug_argv(),
            ),
            Some(server) => {
                mln_core::SafeName::new(project)?;
                mln_core::SafeName::new(switch)?;
                Ok(self.access.argv(server, &["plug", project, switch])?)
            }
        }
    }

    /// Join the instances of a switch that spans servers: a
    /// `mln_core::net::Cable` run from this machine between the home
    /// instance and the one on `other` (each side `vde_plug` here or over
    /// ssh). A cable still alive is kept.
    pub(super) fn cable(
        &self,
        project: &str,
        switch: &str,
        home: Option<&str>,
        other: Option<&str>,
    ) -> Result<()> {
        let left = self.plug_side(project, switch, home)?;
        let right = self.plug_side(project, switch, other)?;
        match mln_core::net::Cable::start(
            self.cable_dir(),
            &Self::cable_name(switch, other),
            &left,
            &right,
        ) {
            Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Join `switch`'s instance on `other` to its home one, as
    /// [`transport`] decides; with the home instance unknown (`None`: the
    /// switch was not created by this process), by cable. A VXLAN link
    /// that cannot be made (an address a link cannot use, a VNI taken on
    /// either end) is logged and the cable used instead; the cable is
    /// stopped before a link is made, and a link removed before a cable
    /// starts, so never both run.
    pub(super) fn join(
        &self,
        project: &str,
        switch: &str,
        (home, home_rec): (Option<&str>, Option<&SwitchRecord>),
        (other, other_rec): (Option<&str>, &SwitchRecord),
    ) -> Result<()> {
        let wanted = home_rec.map_or(Transport::Cable, |h| transport(home, h, other, other_rec));
        if let (Transport::Vxlan, Some(server)) = (wanted, vxlan_server(home, other)) {
            self.uncable(switch, other)?;
            match self.vxlan(project, switch, server) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    log::warn!("switch {switch}: no VXLAN link to {server} ({e}); cabled instead");
                    self.unlink(project, switch, server)?;
                }
            }
        } else if let Some(server) = vxlan_server(home, other) {
            self.unlink(project, switch, server)?;
        }
        self.cable(project, switch, home, other)
    }

    /// Undo [`Self::join`]: the cable, and the link when there may be one.
    pub(super) fn unjoin(&self, project: &str, switch: &str, other: Option<&str>) -> Result<()> {
        self.uncable(switch, other)?;
        let home = self.homes.get(switch).cloned().flatten();
        match vxlan_server(home.as_deref(), other) {
            Some(server) => self.unlink(project, switch, server),
            None => Ok(()),
        }
    }

    /// The local switch folder (`LocalBackends`' `switches/`).
    pub(super) fn switch_dir(&self) -> PathBuf {
        self.local.dir().join("switches")
    }

    /// Make the VXLAN link of `switch` between this machine and `server`:
    /// the addresses are the two ends of the agent's ssh connection as the
    /// server sees them, device name and VNI derived from project, switch
    /// and server (the same on both ends).
    pub(super) fn vxlan(&self, project: &str, switch: &str, server: &str) -> Result<()> {
        let link = self.link(server)?;
        let ends: Underlay = link.call(&Request::Underlay)?;
        let device = mln_core::net::Vxlan::derived_name(project, switch, server);
        let vni = mln_core::net::Vxlan::derived_vni(project, switch, server);
        let here = mln_core::net::VxlanSpec {
            device: device.clone(),
            vni,
            local: ends.client,
            remote: ends.server,
        };
        let there = mln_core::net::VxlanSpec {
            device,
            vni,
            local: ends.server,
            remote: ends.client,
        };
        vxlan::create(&self.switch_dir(), switch, &here)?;
        let made = link.call::<serde_json::Value>(&Request::CreateVxlan {
            project: project.to_string(),
            switch: switch.to_string(),
            spec: there,
        });
        if let Err(e) = made {
            let _ = vxlan::remove(&self.switch_dir(), switch, &here.device);
            return Err(e);
        }
        Ok(())
    }

    /// Remove both ends of the VXLAN link of `switch` to `server`, if any.
    pub(super) fn unlink(&self, project: &str, switch: &str, server: &str) -> Result<()> {
        let device = mln_core::net::Vxlan::derived_name(project, switch, server);
        vxlan::remove(&self.switch_dir(), switch, &device)?;
        match self
            .link(server)?
            .call::<serde_json::Value>(&Request::RemoveVxlan {
                project: project.to_string(),
                switch: switch.to_string(),
                device,
            }) {
            // An older agent makes no links, so has none to remove.
            Ok(_) | Err(Error::Unsupported { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether `switch`'s instance on `other` is joined to its home one
    /// now: a VXLAN link up at both ends where this machine's end is
    /// recorded, else a live cable.
    pub(super) fn joined(&self, switch: &str, other: Option<&str>) -> bool {
        let home = self.homes.get(switch).cloned().flatten();
        if let Some(server) = vxlan_server(home.as_deref(), other) {
            let device = mln_core::net::Vxlan::derived_name(&self.project, switch, server);
            if vxlan::is_recorded(&self.switch_dir(), switch, &device) {
                return vxlan::is_up(&self.switch_dir(), switch, &device)
                    && self
                        .link(server)
                        .and_then(|l| {
                            l.call::<bool>(&Request::VxlanUp {
                                project: self.project.clone(),
                                switch: switch.to_string(),
                                device,
                            })
                        })
                        .unwrap_or(false);
            }
        }
        mln_core::net::Cable::open(self.cable_dir(), &Self::cable_name(switch, other))
            .is_ok_and(|c| c.is_alive())
    }

    /// Whether `switch`'s instance on `at` runs now.
    pub(super) fn instance_up(&self, project: &str, switch: &str, at: Option<&str>) -> bool {
        let found: Result<Vec<(String, bool)>> = match at {
            None => self.local.list_switches(project, None),
            Some(server) => self.link(server).and_then(|l| {
                l.call(&Request::ListSwitches {
                    project: project.to_string(),
                })
            }),
        };
        found.is_ok_and(|v| v.iter().any(|(n, up)| n == switch && *up))
    }

    /// Start `spec`'s instance on `at`, or adopt it when it runs; notes
    /// which (see [`Backends::replug`] below).
    pub(super) fn ensure_instance(
        &self,
        project: &str,
        spec: &SwitchSpec,
        at: Option<&str>,
    ) -> Result<SwitchRecord> {
        let was_up = self.instance_up(project, &spec.name, at);
        let rec = self.switch_instance(project, spec, at)?;
        let key = (spec.name.clone(), at.map(str::to_string));
        let mut adopted = lock(&self.adopted);
        if was_up {
            adopted.insert(key.clone());
        } else {
            adopted.remove(&key);
        }
        drop(adopted);
        Ok(rec)
    }

    /// Whether `switch`'s instance on every server its recorded hosts run
    /// on is joined to the home one ([`Self::joined`]). A cable is down
    /// for good once either end went (see `mln_core::net::Cable`): the
    /// switch then needs creating again.
    pub(super) fn cables_up(&self, switch: &str) -> bool {
        self.recorded_spans
            .get(switch)
            .into_iter()
            .flatten()
            .filter(|s| s.as_ref().map_or(true, |s| !self.lost.contains(s)))
            .all(|other| self.joined(switch, other.as_deref()))
    }

    /// Give a guest of `host` on its server an instance of each of its
    /// switches homed elsewhere, cabled to the home one, where this
    /// process has not made sure of it yet: a host moved to a server none
    /// of the switch's members ran on needs one.
    pub(super) fn ensure_spans(&self, project: &str, host: &HostSpec) -> Result<()> {
        let at = self
            .remote(host.service_host.as_deref())
            .map(str::to_string);
        for sw in host.interfaces.iter().filter_map(|i| i.switch.as_ref()) {
            let (Some(home), Some(spec)) = (self.homes.get(sw), self.switch_specs.get(sw)) else {
                continue;
            };
            let key = (sw.clone(), at.clone());
            if *home == at || lock(&self.ensured).contains(&key) {
                continue;
            }
            self.joined_instance(project, spec, at.as_deref())?;
        }
        Ok(())
    }

    /// `spec`'s instance on `at`, started or adopted
    /// ([`Self::ensure_instance`]) and, where the switch is homed
    /// elsewhere and the two are not joined already, joined to its home
    /// instance; only then is it noted as made sure of, so that
    /// [`Self::ensure_spans`] never skips a join.
    pub(super) fn joined_instance(
        &self,
        project: &str,
        spec: &SwitchSpec,
        at: Option<&str>,
    ) -> Result<SwitchRecord> {
        let rec = self.ensure_instance(project, spec, at)?;
        let key = (spec.name.clone(), at.map(str::to_string));
        let home = self.homes.get(&spec.name).filter(|h| **h != key.1);
        // A join that is up stays as it is: making it again would take a
        // VXLAN link down under the guests using it.
        if let Some(home) = home.filter(|_| !self.joined(&spec.name, at)) {
            let home_rec = lock(&self.home_records).get(&spec.name).cloned();
            self.join(
                project,
                &spec.name,
                (home.as_deref(), home_rec.as_ref()),
                (at, &rec),
            )?;
        }
        lock(&self.ensured).insert(key);
        Ok(rec)
    }

    /// After `host` left `at`: stop the instances there of its switches
    /// that no desired host on `at` uses any more, and their cables. Best
    /// effort: the move itself is done.
    pub(super) fn leave_server(&self, project: &str, host: &HostSpec, at: Option<&str>) {
        for sw in host.interfaces.iter().filter_map(|i| i.switch.as_ref()) {
            let (Some(home), Some(spec)) = (self.homes.get(sw), self.switch_specs.get(sw)) else {
                continue;
            };
            let still_used = self
                .desired_members
                .get(sw)
                .is_some_and(|m| m.iter().any(|(s, h)| s.as_deref() == at && *h != host.name));
            if home.as_deref() == at || still_used {
                continue;
            }
            // A lost server is not asked: only this machine's cable end
            // stops.
            let lost = at.is_some_and(|s| self.lost.contains(s));
            let done = self.unjoin(project, sw, at).and_then(|()| match lost {
                true => Ok(()),
                false => self.remove_instance(project, spec, at),
            });
            match done {
                Ok(()) => {
                    lock(&self.ensured).remove(&(sw.clone(), at.map(str::to_string)));
                }
                Err(e) => log::warn!(
                    "switch {sw} on {}: left running after {} moved away: {e}",
                    at.unwrap_or("this machine"),
                    host.name
                ),
            }
        }
    }

    pub(super) fn uncable(&self, switch: &str, other: Option<&str>) -> Result<()> {
        match mln_core::net::Cable::open(self.cable_dir(), &Self::cable_name(switch, other)) {
            Ok(c) => c.stop(),
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bridge: Option<&str>) -> SwitchRecord {
        SwitchRecord {
            spec: SwitchSpec::new("lan"),
            socket: Some(PathBuf::from("/var/lib/mln/lab/switches/lan/ctl")),
            bridge: bridge.map(str::to_string),
            pid: Some(1),
        }
    }

    #[test]
    fn bridges_between_here_and_a_server_get_vxlan_everything_else_a_cable() {
        let (br, vde) = (record(Some("mlnaaaa")), record(None));
        let (here, s2, s3) = (None, Some("s2"), Some("s3"));
        // Both bridged, one end here: VXLAN, to the other end's server.
        assert_eq!(transport(here, &br, s2, &br), Transport::Vxlan);
        assert_eq!(transport(s2, &br, here, &br), Transport::Vxlan);
        assert_eq!(vxlan_server(here, s2), Some("s2"));
        assert_eq!(vxlan_server(s2, here), Some("s2"));
        // Either end without a bridge (no Xen, or not root there): cable.
        assert_eq!(transport(here, &br, s2, &vde), Transport::Cable);
        assert_eq!(transport(here, &vde, s2, &br), Transport::Cable);
        assert_eq!(transport(here, &vde, s2, &vde), Transport::Cable);
        // Two other servers: their addresses for each other are unknown.
        assert_eq!(transport(s2, &br, s3, &br), Transport::Cable);
        assert_eq!(vxlan_server(s2, s3), None);
        assert_eq!(vxlan_server(here, here), None);
    }
}
