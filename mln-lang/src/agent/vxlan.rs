//! A switch's VXLAN links on one machine, for the agent's `create_vxlan`,
//! `remove_vxlan` and `vxlan_up` and for the managing machine's own end of
//! a link (see `mln_core::net::vxlan` and `crate::apply::ClusterBackends`).

use std::path::Path;

use mln_core::net::{LinuxBridge, Vxlan, VxlanSpec};
use mln_core::{Error, Result};

use super::protocol::Underlay;

/// Make `spec` a link of the bridge of `switch` recorded under
/// `switch_dir` (a project's `switches/`); [`Error::NotFound`] when the
/// switch has no bridge there.
pub fn create(switch_dir: &Path, switch: &str, spec: &VxlanSpec) -> Result<()> {
    let bridge = LinuxBridge::open(switch, switch_dir)?;
    Vxlan::create(spec, &bridge, switch_dir).map(drop)
}

/// Remove the link `device` of `switch`, if there is one.
pub fn remove(switch_dir: &Path, switch: &str, device: &str) -> Result<()> {
    if !switch_dir.exists() {
        return Ok(());
    }
    match Vxlan::open(switch, device, switch_dir) {
        Ok(link) => link.remove(),
        Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the link `device` of `switch` is recorded and up.
pub fn is_up(switch_dir: &Path, switch: &str, device: &str) -> bool {
    switch_dir.exists() && Vxlan::open(switch, device, switch_dir).is_ok_and(|l| l.is_up())
}

/// Whether a link `device` of `switch` is recorded (up or not).
pub fn is_recorded(switch_dir: &Path, switch: &str, device: &str) -> bool {
    switch_dir.exists() && Vxlan::open(switch, device, switch_dir).is_ok()
}

/// The ends of the ssh connection this process was started over, from
/// `SSH_CONNECTION`; `None` when it was not started by sshd.
pub fn this_underlay() -> Option<Underlay> {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| Underlay::from_ssh_connection(&v))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mln_core::net::{LinuxBridge, Switch, SwitchConfig, Vxlan, VxlanSpec};

    use crate::agent::protocol::Request;
    use crate::agent::Agent;
    use crate::machine::LocalBackends;

    /// A bridge and a link it may have, gone when dropped.
    struct Made(Option<LinuxBridge>, std::path::PathBuf, String);

    impl Drop for Made {
        fn drop(&mut self) {
            let _ = super::remove(&self.1, "lan", &self.2);
            if let Some(br) = &self.0 {
                let _ = br.stop();
            }
        }
    }

    #[test]
    fn the_agent_makes_reports_and_removes_a_link_of_a_bridged_switch() {
        if !LinuxBridge::can_manage() {
            return testkit::skip(
                "the_agent_makes_reports_and_removes_a_link_of_a_bridged_switch",
                "bridges and VXLAN devices need root (CAP_NET_ADMIN)",
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let project = format!("vxagent{}", std::process::id());
        let switches = dir.path().join(&project).join("switches");
        let device = Vxlan::derived_name(&project, "lan", "server-a");
        let mut made = Made(None, switches.clone(), device.clone());
        // The bridge LocalBackends makes where Xen is configured.
        let bridge_name = LinuxBridge::derived_name(&project, "lan");
        made.0 =
            Some(LinuxBridge::start(&SwitchConfig::new("lan"), &bridge_name, &switches).unwrap());
        let agent = Agent::new(dir.path(), Box::new(|d: &Path| LocalBackends::new(d)));
        let spec = VxlanSpec {
            device: device.clone(),
            vni: Vxlan::derived_vni(&project, "lan", "server-a"),
            local: "198.51.100.1".parse().unwrap(),
            remote: "198.51.100.2".parse().unwrap(),
        };
        let up = |agent: &Agent| {
            agent.handle(Request::VxlanUp {
                project: project.clone(),
                switch: "lan".into(),
                device: device.clone(),
            })
        };
        let remove = |agent: &Agent| {
            agent.handle(Request::RemoveVxlan {
                project: project.clone(),
                switch: "lan".into(),
                device: device.clone(),
            })
        };
        assert_eq!(up(&agent), Ok(serde_json::json!(false)));
        let created = agent.handle(Request::CreateVxlan {
            project: project.clone(),
            switch: "lan".into(),
            spec: spec.clone(),
        });
        assert_eq!(created, Ok(serde_json::json!(null)));
        assert!(Path::new("/sys/class/net")
            .join(&bridge_name)
            .join("brif")
            .join(&device)
            .exists());
        assert_eq!(up(&agent), Ok(serde_json::json!(true)));

        assert_eq!(remove(&agent), Ok(serde_json::json!(null)));
        assert!(!Path::new("/sys/class/net").join(&device).exists());
        assert_eq!(up(&agent), Ok(serde_json::json!(false)));
        // Removing what is not there is not an error; the bridge stays.
        assert_eq!(remove(&agent), Ok(serde_json::json!(null)));
        assert!(made.0.as_ref().is_some_and(|b| b.status().is_up()));

        // A switch without a bridge here has nothing to link.
        let err = agent
            .handle(Request::CreateVxlan {
                project: project.clone(),
                switch: "other".into(),
                spec,
            })
            .unwrap_err();
        assert_eq!(err.kind, "not_found", "{err:?}");
        // Asking about a project the server does not have creates nothing.
        assert_eq!(
            agent.handle(Request::VxlanUp {
                project: "nothere".into(),
                switch: "lan".into(),
                device,
            }),
            Ok(serde_json::json!(false))
        );
        assert!(!dir.path().join("nothere").exists());
    }
}
