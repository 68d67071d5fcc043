//! Reducing a resolved [`Project`] to the planner's view of it.

use serde::Serialize;

use super::spec::{
    derived_mac, DesiredProject, GuestSpec, HookPoint, HostInterface, HostSpec, SwitchSpec,
};
use crate::model::{self, Host, Project};

/// Where and how the root disk is made: a change means a new disk.
#[derive(Serialize)]
struct DiskPlacement<'a> {
    free_space: &'a Option<u64>,
    lvm: bool,
    lvm_vg: &'a Option<String>,
    lvm_snapshot: &'a Option<String>,
    filepath: &'a Option<String>,
    cow_filesystem: &'a Option<String>,
}

/// The crypt(3) hash of `h`'s `root_passwd`: plain text is hashed (SHA-512
/// crypt, salt stable per project and host) here, at the boundary, so it
/// never reaches a plan, the state or the guest. Should hashing ever fail
/// the account is locked (`!`) rather than the text kept.
pub fn root_password(project: &str, h: &Host) -> Option<String> {
    h.root_passwd.as_deref().map(|p| {
        mln_core::guest::password_hash(p, &format!("{project}/{}", h.name))
            .unwrap_or_else(|_| "!".to_string())
    })
}

/// `project` as it may be recorded or shown: every `root_passwd` hashed.
pub fn with_hashed_passwords(project: &Project) -> Project {
    let mut p = project.clone();
    for h in &mut p.hosts {
        h.root_passwd = root_password(&project.name, h);
        if let (Some(hash), Some(w)) = (&h.root_passwd, h.written.get_mut("root_passwd")) {
            w.clone_from(hash);
        }
    }
    p
}

fn host_spec(project: &str, h: &Host) -> HostSpec {
    let guest = GuestSpec {
        nameservers: h.nameserver.iter().map(|n| n.to_string()).collect(),
        root_passwd: root_password(project, h),
        users: h.users.clone(),
        groups: h.groups.clone(),
        files: h.files.clone(),
        mounts: h.mount.clone(),
        modules: h.modules.clone(),
        startup: h.startup.clone(),
        shutdown: h.shutdown.clone(),
        sshkeys: h.sshkey.clone(),
        term: h.term.map(|t| t.keyword().to_string()),
        broadcast: h
            .interfaces
            .iter()
            .map(|i| i.broadcast.map(|b| b.to_string()))
            .collect(),
        written: Vec::new(),
        plugin_startup: Vec::new(),
    };
    let disk = DiskPlacement {
        free_space: &h.free_space,
        lvm: h.lvm,
        lvm_vg: &h.lvm_vg,
        lvm_snapshot: &h.lvm_snapshot,
        filepath: &h.filepath,
        cow_filesystem: &h.cow_filesystem,
    };
    let interfaces = h
        .interfaces
        .iter()
        .map(|i| HostInterface {
            name: i.name.clone(),
            switch: i.switch.clone(),
            bridge: i.bridge.clone(),
            // The checker refuses malformed MACs; should one get here, the
            // derived address keeps the host usable rather than failing.
            mac: i
                .mac
                .as_deref()
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| derived_mac(project, &h.name, &i.name)),
            address: i.address.map(|a| a.to_string()),
            netmask: i.netmask.map(|a| a.to_string()),
            gateway: i.gateway.map(|a| a.to_string()),
        })
        .collect();
    HostSpec {
        name: h.name.clone(),
        platform: h.platform,
        service_host: h.service_host.clone(),
        memory: h.memory,
        vcpus: h.vcpus,
        cpus: h
            .cpus
            .as_deref()
            .and_then(|c| crate::resolve::parse_cpu_list(c).ok())
            .unwrap_or_default(),
        template: h.template.clone(),
        disk_size: h.size,
        swap: h.swap,
        disk: serde_json::to_string(&disk).unwrap_or_default(),
        kernel: h.kernel.clone(),
        ramdisk: h.ramdisk.clone(),
        cmdline: h.extra.clone(),
        domain_extra: h.xen_extra.clone(),
        boot_order: h.boot_order,
        interfaces,
        guest,
    }
}

impl DesiredProject {
    /// The planner's view of a resolved project.
    pub fn from_project(project: &Project) -> Self {
        let mut out = DesiredProject::new(&project.name);
        out.persistent = project.persistent;
        out.ownership = super::Ownership::of(project);
        for h in &project.hosts {
            out.add_host(host_spec(&project.name, h));
        }
        for s in &project.switches {
            let interfaces = project
                .hosts
                .iter()
                .flat_map(|h| &h.interfaces)
                .filter(|i| i.switch.as_deref() == Some(s.name.as_str()))
                .count();
            out.add_switch(SwitchSpec {
                name: s.name.clone(),
                service_host: s.service_host.clone(),
                hub: s.hub,
                bridge: s.bridge.clone(),
                socket: s.socket.clone(),
                tap: s.tap.clone(),
                ports: SwitchSpec::ports_for(interfaces),
            });
        }
        for name in model::Hooks::NAMES {
            if let (Some(point), Some(lines)) =
                (HookPoint::from_name(name), project.hooks.get(name))
            {
                if !lines.is_empty() {
                    out.hooks.insert(point, lines.clone());
                }
            }
        }
        out
    }
}

impl From<&Project> for DesiredProject {
    fn from(p: &Project) -> Self {
        DesiredProject::from_project(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interface, Switch};

    #[test]
    fn macs_are_derived_and_stable_unless_given() {
        let mut p = Project {
            name: "lab".into(),
            ..Default::default()
        };
        let mut h = Host::new("a");
        h.interfaces.push(Interface::new("eth0"));
        let mut e1 = Interface::new("eth1");
        e1.mac = Some("02:00:00:00:00:01".into());
        h.interfaces.push(e1);
        p.hosts.push(h);
        p.switches.push(Switch::new("lan"));
        let d = DesiredProject::from_project(&p);
        let a = &d.hosts["a"];
        assert_eq!(a.interfaces[0].mac, derived_mac("lab", "a", "eth0"));
        assert_eq!(a.interfaces[1].mac.to_string(), "02:00:00:00:00:01");
        // Adding a startup line changes the guest config, never a MAC.
        p.hosts[0].startup.push("echo hi".into());
        let d2 = DesiredProject::from_project(&p);
        assert_eq!(d2.hosts["a"].interfaces, a.interfaces);
        assert_ne!(d2.hosts["a"].guest, a.guest);
        assert!(d.switches.contains_key("lan"));
    }
}
