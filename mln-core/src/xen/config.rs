//! `DomainSpec` → `libxl_domain_config`: a pure function, the same choices
//! `xl create` makes for the equivalent xl.cfg.

use std::path::Path;

use xenlight_sys as sys;

use super::idl::{bitmap_first, c_string, calloc_array, DomainConfig};
use crate::domain::{Attachment, Boot, DomainSpec};
use crate::error::{Error, Result};

fn path_str<'a>(p: &'a Path, what: &str) -> Result<&'a str> {
    p.to_str().ok_or_else(|| Error::Backend {
        what: what.to_string(),
        message: format!("path {} is not UTF-8", p.display()),
    })
}

/// Build the libxl config for `spec` (PV for [`Boot::Kernel`], HVM for
/// [`Boot::Disk`]), as `xl` would from this xl.cfg:
///
/// ```text
/// name = NAME; type = "pv"|"hvm"; memory = MiB; maxmem = MiB
/// vcpus = N; maxvcpus = M; kernel/ramdisk/extra (PV) or boot = "c" (HVM)
/// vif = [ "mac=..,bridge=.." ]; disk = [ "PATH,raw,VDEV,rw|ro" ]
/// on_poweroff = "destroy"; on_reboot = "restart"; on_crash = "destroy"
/// ```
///
/// No hypervisor is touched; the UUID is left nil (the backend generates
/// one when it creates the domain).
pub fn domain_config(spec: &DomainSpec) -> Result<DomainConfig> {
    config_as(spec, &spec.name)
}

/// [`domain_config`] for the domain to be called `name` for now (a restore
/// takes `NAME--incoming` until it is complete); its agent's channel is
/// the spec's own.
pub(super) fn config_as(spec: &DomainSpec, name: &str) -> Result<DomainConfig> {
    crate::name::SafeName::new(&spec.name)?;
    crate::name::SafeName::new(name)?;
    let mut cfg = DomainConfig::new();
    let raw = cfg.raw_mut();

    let dtype = match spec.boot {
        Boot::Kernel { .. } => sys::LIBXL_DOMAIN_TYPE_PV,
        Boot::Disk => sys::LIBXL_DOMAIN_TYPE_HVM,
    };
    raw.c_info.type_ = dtype;
    raw.c_info.name = c_string(name, name)?;
    // SAFETY: b_info was initialised (type INVALID) by libxl_domain_config_init
    // and is typed exactly once here, as libxl requires.
    unsafe { sys::libxl_domain_build_info_init_type(&mut raw.b_info, dtype) };

    let max_vcpus = spec.effective_max_vcpus();
    if spec.vcpus == 0 {
        return Err(Error::Backend {
            what: name.to_string(),
            message: "a domain needs at least one vCPU".to_string(),
        });
    }
    raw.b_info.max_vcpus = i32::try_from(max_vcpus).map_err(|_| Error::Backend {
        what: name.to_string(),
        message: format!("{max_vcpus} vCPUs is too many"),
    })?;
    raw.b_info.avail_vcpus = bitmap_first(max_vcpus, spec.vcpus)?;
    raw.b_info.target_memkb = spec.memory / 1024;
    raw.b_info.max_memkb = spec.effective_max_memory() / 1024;

    match &spec.boot {
        Boot::Kernel {
            kernel,
            ramdisk,
            cmdline,
        } => {
            raw.b_info.kernel = c_string(path_str(kernel, name)?, name)?;
            if let Some(rd) = ramdisk {
                raw.b_info.ramdisk = c_string(path_str(rd, name)?, name)?;
            }
            // The kernel's console and the template's login prompt go on
            // the PV console, where `xl console` attaches and xenconsoled
            // logs (see `crate::attach`): without `console=`, a Debian
            // kernel would print to a tty nobody sees.
            let console = if cmdline
                .split_whitespace()
                .any(|w| w.starts_with("console="))
            {
                String::new()
            } else {
                " console=hvc0".to_string()
            };
            let cmdline = format!("{cmdline}{console} {}", crate::attach::console_word("hvc0"));
            raw.b_info.cmdline = c_string(cmdline.trim_start(), name)?;
        }
        Boot::Disk => {
            // The build info was typed HVM above, so `u.hvm` is the active
            // member of libxl's keyed union.
            raw.b_info.u.hvm.boot = c_string("c", name)?;
        }
    }

    if !spec.disks.is_empty() {
        // SAFETY: libxl_device_disk_init is the init function of the element.
        raw.disks = unsafe { calloc_array(spec.disks.len(), sys::libxl_device_disk_init)? };
        raw.num_disks = spec.disks.len() as i32;
        for (i, d) in spec.disks.iter().enumerate() {
            // SAFETY: `raw.disks` holds `num_disks` initialised elements.
            let disk = unsafe { &mut *raw.disks.add(i) };
            disk.pdev_path = c_string(path_str(&d.path, name)?, name)?;
            disk.vdev = c_string(&d.target, name)?;
            disk.format = match d.path.extension().and_then(|e| e.to_str()) {
                Some("qcow2") => sys::LIBXL_DISK_FORMAT_QCOW2,
                _ => sys::LIBXL_DISK_FORMAT_RAW,
            };
            disk.readwrite = i32::from(!d.readonly);
        }
    }

    if !spec.interfaces.is_empty() {
        // SAFETY: libxl_device_nic_init is the init function of the element.
        raw.nics = unsafe { calloc_array(spec.interfaces.len(), sys::libxl_device_nic_init)? };
        raw.num_nics = spec.interfaces.len() as i32;
        for (i, iface) in spec.interfaces.iter().enumerate() {
            // SAFETY: `raw.nics` holds `num_nics` initialised elements.
            let nic = unsafe { &mut *raw.nics.add(i) };
            nic.devid = i as i32;
            nic.mac = iface.mac.0;
            match &iface.attach {
                Attachment::Bridge(br) => {
                    // The bridge name reaches the vif hotplug script.
                    crate::name::SafeName::interface(br)?;
                    nic.bridge = c_string(br, name)?
                }
                Attachment::None => {}
                Attachment::Vde(_) => {
                    return Err(Error::Unsupported {
                        backend: "xen",
                        op: "attaching an interface to a vde_switch",
                    })
                }
            }
        }
    }

    if spec.agent && dtype == sys::LIBXL_DOMAIN_TYPE_PV {
        add_agent_channel(raw, spec, name)?;
    }

    // xl's defaults for the life-cycle actions.
    raw.on_poweroff = sys::LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
    raw.on_reboot = sys::LIBXL_ACTION_ON_SHUTDOWN_RESTART;
    raw.on_watchdog = sys::LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
    raw.on_crash = sys::LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
    raw.on_soft_reset = sys::LIBXL_ACTION_ON_SHUTDOWN_SOFT_RESET;
    Ok(cfg)
}

/// The channel to the guest's agent (see [`super::agent`]), as xl makes it
/// from `channel = [ "name=org.mln.agent,connection=socket,path=…" ]`.
fn add_agent_channel(
    raw: &mut sys::libxl_domain_config,
    spec: &DomainSpec,
    name: &str,
) -> Result<()> {
    let path = super::agent::socket(&spec.name);
    let path = c_string(path_str(&path, name)?, name)?;
    // SAFETY: libxl_device_channel_init is the init function of the element.
    raw.channels = unsafe { calloc_array(1, sys::libxl_device_channel_init)? };
    raw.num_channels = 1;
    // SAFETY: `raw.channels` holds one initialised element.
    let channel = unsafe { &mut *raw.channels };
    channel.name = c_string(super::agent::CHANNEL_NAME, name)?;
    // SAFETY: an initialised channel whose connection is typed exactly
    // once, here, as libxl's keyed unions require.
    unsafe {
        sys::libxl_device_channel_init_connection(channel, sys::LIBXL_CHANNEL_CONNECTION_SOCKET)
    };
    // The union was typed SOCKET just above: `u.socket` is its active
    // member, and the string is libxl's to free (as every other here).
    channel.u.socket.path = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DiskSpec, InterfaceSpec, MacAddr};
    use serde_json::{json, Value};

    fn pv_spec() -> DomainSpec {
        let mut s = DomainSpec::new(
            "guest",
            128 << 20,
            Boot::Kernel {
                kernel: "/vmlinuz".into(),
                ramdisk: Some("/guest.cpio.gz".into()),
                cmdline: "console=hvc0 quiet".into(),
            },
        );
        s.max_memory = Some(192 << 20);
        s.max_vcpus = Some(2);
        s
    }

    fn render(spec: &DomainSpec) -> Value {
        let mut cfg = domain_config(spec).unwrap();
        serde_json::from_str(&cfg.to_json().unwrap()).unwrap()
    }

    #[test]
    fn pv_guest_renders_like_xl_create() {
        // What `xl -N create` prints for reference guest.cfg with maxvcpus=2,
        // less what xl adds from xl.conf (uuid, claim_mode, hotplug scripts).
        let expected = json!({
            "c_info": { "type": "pv", "name": "guest" },
            "b_info": {
                "max_vcpus": 2,
                "avail_vcpus": [0],
                "max_memkb": 196608,
                "target_memkb": 131072,
                "kernel": "/vmlinuz",
                "cmdline": "console=hvc0 quiet mln.console=hvc0",
                "ramdisk": "/guest.cpio.gz",
                "sched_params": {},
                "arch_arm": {},
                "arch_x86": {},
                "type.pv": {}
            },
            // destroy (poweroff, crash, watchdog) is libxl's default: not rendered.
            "on_reboot": "restart",
            "on_soft_reset": "soft_reset"
        });
        assert_eq!(render(&pv_spec()), expected);
    }

    #[test]
    fn a_guest_with_mlns_agent_gets_its_channel_under_its_own_name() {
        // The one channel, named for the agent, a socket at its path (as
        // libxl renders it: the union's member under `connection.socket`).
        fn assert_channel(v: &Value) {
            let channels = v["channels"].as_array().expect("channels");
            assert_eq!(channels.len(), 1, "{v}");
            assert_eq!(channels[0]["name"], "org.mln.agent", "{v}");
            let text = channels[0].to_string();
            assert!(text.contains("socket"), "{text}");
            assert!(text.contains("\"/run/mln/xen/guest.agent\""), "{text}");
        }
        let mut s = pv_spec();
        assert!(render(&s).get("channels").is_none(), "none unless asked");
        s.agent = true;
        assert_channel(&render(&s));
        // Restored under a passing name, it keeps its channel.
        let mut cfg = config_as(&s, "guest--incoming").unwrap();
        let v: Value = serde_json::from_str(&cfg.to_json().unwrap()).unwrap();
        assert_eq!(v["c_info"]["name"], "guest--incoming");
        assert_channel(&v);
        // An HVM guest would need PV drivers for it: none.
        let mut hvm = DomainSpec::new("web1", 256 << 20, Boot::Disk);
        hvm.agent = true;
        assert!(render(&hvm).get("channels").is_none());
    }

    #[test]
    fn vcpus_and_memory_default_to_their_maximum() {
        let mut s = pv_spec();
        s.max_memory = None;
        s.max_vcpus = None;
        s.vcpus = 1;
        let v = render(&s);
        assert_eq!(v["b_info"]["max_memkb"], 131072);
        assert_eq!(v["b_info"]["target_memkb"], 131072);
        assert_eq!(v["b_info"]["max_vcpus"], 1);
    }

    #[test]
    fn hvm_guest_boots_from_disk_with_nic_on_bridge() {
        let mut s = DomainSpec::new("web1", 256 << 20, Boot::Disk);
        s.vcpus = 2;
        s.disks.push(DiskSpec {
            path: "/var/lib/mln/web1.img".into(),
            target: "xvda".into(),
            readonly: false,
        });
        s.disks.push(DiskSpec {
            path: "/var/lib/mln/data.qcow2".into(),
            target: "xvdb".into(),
            readonly: true,
        });
        s.interfaces.push(InterfaceSpec {
            name: "eth0".into(),
            mac: "00:16:3e:01:02:03".parse::<MacAddr>().unwrap(),
            attach: Attachment::Bridge("br-lan".into()),
        });
        let v = render(&s);
        assert_eq!(v["c_info"]["type"], "hvm");
        assert_eq!(v["b_info"]["avail_vcpus"], json!([0, 1]));
        assert_eq!(v["b_info"]["type.hvm"]["boot"], "c");
        assert_eq!(
            v["disks"],
            json!([
                {"pdev_path": "/var/lib/mln/web1.img", "vdev": "xvda", "format": "raw", "readwrite": 1},
                {"pdev_path": "/var/lib/mln/data.qcow2", "vdev": "xvdb", "format": "qcow2"}
            ])
        );
        assert_eq!(
            v["nics"],
            json!([{"devid": 0, "mac": "00:16:3e:01:02:03", "bridge": "br-lan"}])
        );
    }

    #[test]
    fn refuses_unsafe_names_vde_and_zero_vcpus() {
        let mut s = pv_spec();
        s.name = "../etc".into();
        assert!(matches!(domain_config(&s), Err(Error::InvalidName { .. })));
        let mut s = pv_spec();
        s.vcpus = 0;
        assert!(matches!(domain_config(&s), Err(Error::Backend { .. })));
        let mut s = pv_spec();
        s.interfaces.push(InterfaceSpec {
            name: "eth0".into(),
            mac: MacAddr::derived("x"),
            attach: Attachment::Vde("/tmp/sw".into()),
        });
        assert!(matches!(domain_config(&s), Err(Error::Unsupported { .. })));
    }
}
