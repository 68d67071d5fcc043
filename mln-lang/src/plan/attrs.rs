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
    // A root disk grows in place while the guest is down (a restart); a
    // smaller one is made anew (a rebuild: what the guest wrote is lost).
    let growth = |from: Option<u64>, to: Option<u64>| match (from, to) {
        (Some(f), Some(t)) if t > f => Restart,
        (None, Some(_)) => Restart,
        _ => Rebuild,
    };
    if a.disk_size != d.disk_size {
        push(
            &mut out,
            "size",
            osize(a.disk_size),
            osize(d.disk_size),
            growth(a.disk_size, d.disk_size),
        );
    }
    // `free_space` only counts where `size` is not given.
    let (af, df) = (a.free_space(), d.free_space());
    if af != df && d.disk_size.is_none() {
        let class = match a.disk_size {
            // From a fixed size to template + free space: how they compare
            // is only known on the disk's server; a new disk is sure.
            Some(_) => Rebuild,
            None => growth(af, df),
        };
        push(&mut out, "free_space", osize(af), osize(df), class);
    }
    if a.swap != d.swap {
        // Swap is made again at every start: nothing in it outlives a run.
        push(&mut out, "swap", osize(a.swap), osize(d.swap), Restart);
    }
    if a.placement() != d.placement() {
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
    if a.cpus != d.cpus {
        // Pinned when the domain is made.
        let list = |c: &[u32]| c.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        push(&mut out, "cpus", list(&a.cpus), list(&d.cpus), Restart);
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
    fn new_cpu_pinning_needs_a_restart() {
        let mut d = xen(128);
        d.cpus = vec![0, 2, 3];
        let c = diff_host(&xen(128), &d, RUNNING);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class, ChangeClass::Restart);
        assert_eq!((c[0].attr.as_str(), c[0].to.as_str()), ("cpus", "0,2,3"));
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
        assert_eq!(class("size"), ChangeClass::Restart);
        assert_eq!(class("platform"), ChangeClass::Rebuild);
        assert_eq!(class("service_host"), ChangeClass::Move);
    }

    #[test]
    fn a_growing_disk_is_a_restart_a_shrinking_one_a_rebuild() {
        let sized = |size: Option<u64>, free: Option<u64>, swap: Option<u64>| {
            let mut h = xen(128);
            h.disk_size = size;
            h.swap = swap;
            h.disk = format!(
                r#"{{"free_space":{},"lvm":false}}"#,
                free.map_or("null".to_string(), |f| f.to_string())
            );
            h
        };
        let class = |a: &HostSpec, d: &HostSpec| {
            let c = diff_host(a, d, RUNNING);
            assert_eq!(c.len(), 1, "{c:?}");
            (c[0].attr.clone(), c[0].class)
        };
        let g = 1 << 30;
        let one = |attr: &str, class| (attr.to_string(), class);
        assert_eq!(
            class(&sized(Some(g), None, None), &sized(Some(2 * g), None, None)),
            one("size", ChangeClass::Restart)
        );
        assert_eq!(
            class(&sized(Some(2 * g), None, None), &sized(Some(g), None, None)),
            one("size", ChangeClass::Rebuild)
        );
        assert_eq!(
            class(&sized(Some(g), None, None), &sized(None, None, None)),
            one("size", ChangeClass::Rebuild)
        );
        assert_eq!(
            class(&sized(None, Some(g), None), &sized(None, Some(2 * g), None)),
            one("free_space", ChangeClass::Restart)
        );
        assert_eq!(
            class(&sized(None, Some(2 * g), None), &sized(None, None, None)),
            one("free_space", ChangeClass::Rebuild)
        );
        assert_eq!(
            class(&sized(None, None, Some(g)), &sized(None, None, None)),
            one("swap", ChangeClass::Restart)
        );
        // free_space under a fixed size changes nothing.
        assert!(diff_host(
            &sized(Some(g), None, None),
            &sized(Some(g), Some(g), None),
            RUNNING
        )
        .is_empty());
        // A recorded placement without free_space is the same placement.
        let mut old = sized(None, None, None);
        old.disk = r#"{"lvm":false}"#.into();
        assert!(diff_host(&old, &sized(None, None, None), RUNNING).is_empty());
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
