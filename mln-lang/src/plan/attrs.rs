//! Classifying each attribute change of a host.

use super::render::{server, size};
use super::spec::{HostInterface, HostSpec};
use super::types::{AttrChange, ChangeClass};

/// What the planner knows about a host's domain when comparing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Running {
    /// The domain runs and is meant to keep running.
    pub live: bool,
    /// Its memory ceiling, bytes.
    pub max_memory: u64,
    /// Its vCPU ceiling.
    pub max_vcpus: u32,
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_string())
}

fn push(out: &mut Vec<AttrChange>, attr: &str, from: String, to: String, class: ChangeClass) {
    out.push(AttrChange {
        attr: attr.to_string(),
        from,
        to,
        class,
    });
}

/// Every difference between the applied spec `a` and the desired `d`, each
/// with how it must be applied given how the domain runs.
pub(super) fn diff_host(a: &HostSpec, d: &HostSpec, run: Running) -> Vec<AttrChange> {
    use ChangeClass::*;
    let mut out = Vec::new();
    if a == d {
        return out;
    }
    if a.platform != d.platform {
        push(
            &mut out,
            "platform",
            a.platform.keyword().into(),
            d.platform.keyword().into(),
            Rebuild,
        );
    }
    if a.service_host != d.service_host {
        push(
            &mut out,
            "service_host",
            server(&a.service_host),
            server(&d.service_host),
            Move,
        );
    }
    if a.template != d.template {
        push(
            &mut out,
            "template",
            opt(&a.template),
            opt(&d.template),
            Rebuild,
        );
    }
    let osize = |v: Option<u64>| v.map_or_else(|| "-".to_string(), size);
    if a.disk_size != d.disk_size {
        push(
            &mut out,
            "size",
            osize(a.disk_size),
            osize(d.disk_size),
            Rebuild,
        );
    }
    if a.swap != d.swap {
        push(&mut out, "swap", osize(a.swap), osize(d.swap), Rebuild);
    }
    if a.disk != d.disk {
        push(
            &mut out,
            "disk",
            "placement as recorded".into(),
            "new placement".into(),
            Rebuild,
        );
    }
    let same_platform = a.platform == d.platform && d.platform.live_resize();
    if a.memory != d.memory {
        let class = if run.live && same_platform && d.memory <= run.max_memory {
            Live
        } else {
            Restart
        };
        push(&mut out, "memory", size(a.memory), size(d.memory), class);
    }
    if a.vcpus != d.vcpus {
        let class =
            if run.live && same_platform && d.platform.live_vcpus() && d.vcpus <= run.max_vcpus {
                Live
            } else {
                Restart
            };
        push(
            &mut out,
            "vcpus",
            a.vcpus.to_string(),
            d.vcpus.to_string(),
            class,
        );
    }
    if a.kernel != d.kernel {
        push(&mut out, "kernel", opt(&a.kernel), opt(&d.kernel), Restart);
    }
    if a.ramdisk != d.ramdisk {
        push(
            &mut out,
            "ramdisk",
            opt(&a.ramdisk),
            opt(&d.ramdisk),
            Restart,
        );
    }
    if a.cmdline != d.cmdline {
        push(&mut out, "extra", opt(&a.cmdline), opt(&d.cmdline), Restart);
    }
    if a.domain_extra != d.domain_extra {
        push(
            &mut out,
            "xen_extra",
            a.domain_extra.join("; "),
            d.domain_extra.join("; "),
            Restart,
        );
    }
    diff_interfaces(&a.interfaces, &d.interfaces, &mut out);
    if a.guest != d.guest {
        push(
            &mut out,
            "guest",
            "configuration as recorded".into(),
            "changed configuration".into(),
            Restart,
        );
    }
    out
}

fn diff_interfaces(a: &[HostInterface], d: &[HostInterface], out: &mut Vec<AttrChange>) {
    for di in d {
        let Some(ai) = a.iter().find(|i| i.name == di.name) else {
            push(
                out,
                &di.name,
                "-".into(),
                format!("on {}", opt(&di.switch.clone().or(di.bridge.clone()))),
                ChangeClass::Restart,
            );
            continue;
        };
        if ai == di {
            continue;
        }
        let fields: [(&str, String, String); 6] = [
            ("switch", opt(&ai.switch), opt(&di.switch)),
            ("bridge", opt(&ai.bridge), opt(&di.bridge)),
            ("mac", ai.mac.to_string(), di.mac.to_string()),
            ("address", opt(&ai.address), opt(&di.address)),
            ("netmask", opt(&ai.netmask), opt(&di.netmask)),
            ("gateway", opt(&ai.gateway), opt(&di.gateway)),
        ];
        for (field, from, to) in fields {
            if from != to {
                push(
                    out,
                    &format!("{}.{field}", di.name),
                    from,
                    to,
                    ChangeClass::Restart,
                );
            }
        }
    }
    for ai in a {
        if !d.iter().any(|i| i.name == ai.name) {
            push(
                out,
                &ai.name,
                format!("on {}", opt(&ai.switch.clone().or(ai.bridge.clone()))),
                "-".into(),
                ChangeClass::Restart,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Platform;

    fn xen(mem: u64) -> HostSpec {
        let mut h = HostSpec::new("api");
        h.platform = Platform::Xen;
        h.memory = mem << 20;
        h
    }

    const RUNNING: Running = Running {
        live: true,
        max_memory: 256 << 20,
        max_vcpus: 2,
    };

    #[test]
    fn memory_within_max_on_running_xen_is_live() {
        let c = diff_host(&xen(128), &xen(256), RUNNING);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class, ChangeClass::Live);
        assert_eq!((c[0].from.as_str(), c[0].to.as_str()), ("128M", "256M"));
    }

    #[test]
    fn memory_beyond_max_needs_a_restart() {
        let c = diff_host(&xen(128), &xen(512), RUNNING);
        assert_eq!(c[0].class, ChangeClass::Restart);
    }

    #[test]
    fn memory_on_uml_or_a_stopped_guest_needs_a_restart() {
        let mut a = xen(128);
        let mut d = xen(256);
        a.platform = Platform::Uml;
        d.platform = Platform::Uml;
        assert_eq!(diff_host(&a, &d, RUNNING)[0].class, ChangeClass::Restart);
        let stopped = Running {
            live: false,
            ..RUNNING
        };
        assert_eq!(
            diff_host(&xen(128), &xen(256), stopped)[0].class,
            ChangeClass::Restart
        );
    }

    #[test]
    fn template_size_platform_rebuild_and_service_host_moves() {
        let a = xen(128);
        let mut d = xen(128);
        d.template = Some("debian".into());
        d.disk_size = Some(1 << 30);
        d.platform = Platform::Uml;
        d.service_host = Some("server-b".into());
        let c = diff_host(&a, &d, RUNNING);
        let class = |attr: &str| c.iter().find(|x| x.attr == attr).unwrap().class;
        assert_eq!(class("template"), ChangeClass::Rebuild);
        assert_eq!(class("size"), ChangeClass::Rebuild);
        assert_eq!(class("platform"), ChangeClass::Rebuild);
        assert_eq!(class("service_host"), ChangeClass::Move);
    }

    #[test]
    fn kernel_cmdline_and_interfaces_need_a_restart() {
        let a = xen(128);
        let mut d = xen(128);
        d.kernel = Some("/boot/vmlinuz".into());
        d.cmdline = Some("quiet".into());
        d.interfaces.push(HostInterface {
            name: "eth0".into(),
            switch: Some("lan".into()),
            bridge: None,
            mac: mln_core::MacAddr::derived("x"),
            address: None,
            netmask: None,
            gateway: None,
        });
        let c = diff_host(&a, &d, RUNNING);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|x| x.class == ChangeClass::Restart));
    }
}
