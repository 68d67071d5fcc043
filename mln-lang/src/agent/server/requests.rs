//! Answering one request: a hypervisor call on a domain, a switch or link,
//! or a host's disks and files; each kind in a function of its own, which
//! hands on what is not its kind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mln_core::net::{JoinedSwitch, LinuxBridge, VdeSwitch};
use mln_core::{Error, Hypervisor, SafeName};
use serde_json::Value;

use super::super::disks::{self, HostDisks};
use super::super::migrate;
use super::super::protocol::Request;
use super::super::vxlan;
use super::{console_tail, here_host, here_switch, meminfo, Agent};
use crate::machine::{home, Backends, LocalBackends};
use crate::plan::{Platform, SwitchRecord};

type Answer = mln_core::Result<Value>;

/// What a request handler did with a request: answered it, or handed it
/// back as not its kind.
enum Routed {
    Answered(Answer),
    Passed(Box<Request>),
}

fn json<T: serde::Serialize>(v: T) -> Answer {
    serde_json::to_value(v).map_err(|e| Error::Backend {
        what: "agent".into(),
        message: format!("cannot encode the answer: {e}"),
    })
}

impl Agent {
    /// Run `req` here.
    pub(super) fn run(&self, req: Request) -> Answer {
        let req = match self.domain_request(req) {
            Routed::Answered(answer) => return answer,
            Routed::Passed(req) => *req,
        };
        let req = match self.switch_request(req) {
            Routed::Answered(answer) => return answer,
            Routed::Passed(req) => *req,
        };
        self.host_request(req)
    }

    /// The backends of `project` when this server has its folder; `None`
    /// when it has never had any of it (nothing to list or remove).
    fn existing(&self, project: &str) -> mln_core::Result<Option<Arc<LocalBackends>>> {
        if self.root.join(SafeName::new(project)?.as_str()).exists() {
            self.backends(project).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `f` on the `platform` hypervisor of `project`.
    fn on_hypervisor(
        &self,
        project: &str,
        platform: Platform,
        f: impl FnOnce(&dyn Hypervisor) -> Answer,
    ) -> Answer {
        let b = self.backends(project)?;
        f(Self::hypervisor(&b, platform)?)
    }

    /// A hypervisor call on one domain (or the list of them); any other
    /// request is handed back.
    fn domain_request(&self, req: Request) -> Routed {
        use Request as R;
        Routed::Answered(match req {
            R::Create {
                project,
                platform,
                spec,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.create(&spec)?)),
            R::Start {
                project,
                platform,
                name,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.start(&name)?)),
            R::Pause {
                project,
                platform,
                name,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.pause(&name)?)),
            R::Resume {
                project,
                platform,
                name,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.resume(&name)?)),
            R::Shutdown {
                project,
                platform,
                name,
                timeout_ms,
            } => self.on_hypervisor(&project, platform, |hv| {
                json(hv.shutdown(&name, Duration::from_millis(timeout_ms))?)
            }),
            R::Reboot {
                project,
                platform,
                name,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.reboot(&name)?)),
            R::Destroy {
                project,
                platform,
                name,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.destroy(&name)?)),
            R::Info {
                project,
                platform,
                name,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.info(&name)?)),
            R::BootStatus {
                project,
                platform,
                name,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.boot_status(&name)?)),
            R::Exec {
                project,
                platform,
                name,
                argv,
                timeout_ms,
            } => self.on_hypervisor(&project, platform, |hv| {
                json(hv.exec(&name, &argv, Duration::from_millis(timeout_ms))?)
            }),
            R::SetMemory {
                project,
                platform,
                name,
                bytes,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.set_memory(&name, bytes)?)),
            R::SetVcpus {
                project,
                platform,
                name,
                count,
            } => self.on_hypervisor(&project, platform, |hv| json(hv.set_vcpus(&name, count)?)),
            R::List { project, platform } => match self.existing(&project) {
                Ok(Some(b)) => Self::hypervisor(&b, platform)
                    .and_then(|hv| hv.list())
                    .and_then(json),
                Ok(None) => json(Vec::<()>::new()),
                Err(e) => Err(e),
            },
            other => return Routed::Passed(Box::new(other)),
        })
    }

    /// A project switch, or a link joining one across servers; any other
    /// request is handed back.
    fn switch_request(&self, req: Request) -> Routed {
        use Request as R;
        let switches = |b: &LocalBackends| b.dir().join("switches");
        Routed::Answered(match req {
            R::CreateSwitch { project, spec } => self
                .backends(&project)
                .and_then(|b| b.create_switch(&project, &here_switch(spec)))
                .and_then(json),
            R::RemoveSwitch { project, spec } => match self.existing(&project) {
                Ok(Some(b)) => b.remove_switch(&project, &here_switch(spec)).and_then(json),
                Ok(None) => json(()),
                Err(e) => Err(e),
            },
            R::ListSwitches { project } => match self.existing(&project) {
                Ok(Some(b)) => b.list_switches(&project, None).and_then(json),
                Ok(None) => json(Vec::<()>::new()),
                Err(e) => Err(e),
            },
            R::Underlay => match vxlan::this_underlay() {
                Some(u) => json(u),
                None => Err(Error::Unsupported {
                    backend: "agent",
                    op: "underlay: not started by sshd (no SSH_CONNECTION)",
                }),
            },
            R::CreateVxlan {
                project,
                switch,
                spec,
            } => self
                .backends(&project)
                .and_then(|b| vxlan::create(&switches(&b), &switch, &spec))
                .and_then(json),
            R::RemoveVxlan {
                project,
                switch,
                device,
            } => match self.existing(&project) {
                Ok(Some(b)) => vxlan::remove(&switches(&b), &switch, &device).and_then(json),
                Ok(None) => json(()),
                Err(e) => Err(e),
            },
            R::VxlanUp {
                project,
                switch,
                device,
            } => match self.existing(&project) {
                Ok(Some(b)) => json(vxlan::is_up(&switches(&b), &switch, &device)),
                Ok(None) => json(false),
                Err(e) => Err(e),
            },
            other => return Routed::Passed(Box::new(other)),
        })
    }

    /// A host's disks, configuration, domain spec or console; the server's
    /// capacity and projects.
    fn host_request(&self, req: Request) -> Answer {
        use Request as R;
        match req {
            R::Capacity => {
                let mut cap = meminfo()?;
                if let Some((free, total)) = self.xen_memory.as_ref().and_then(|f| f()) {
                    cap.xen_free = Some(free);
                    cap.xen_total = Some(total);
                }
                json(cap)
            }
            R::Projects => json(self.server_projects()?),
            R::PrepareDisk { project, host } => {
                let b = self.backends(&project)?;
                json(b.prepare_disk(&project, &here_host(host))?)
            }
            R::WriteGuestConfig { project, host } => {
                let b = self.backends(&project.name)?;
                json(b.write_guest_config(&project, &here_host(host))?)
            }
            R::PutGuestConfig {
                project,
                host,
                disk,
            } => {
                let b = self.backends(&project)?;
                let bytes = mln_core::base64::decode(&disk).ok_or_else(|| Error::Backend {
                    what: host.name.clone(),
                    message: "its guest configuration disk came as something that is not base64"
                        .into(),
                })?;
                json(b.put_guest_config(&here_host(host), &bytes)?)
            }
            R::FitDisks { project, host } => {
                let b = self.backends(&project)?;
                json(b.fit_disks(&project, &here_host(host))?)
            }
            R::RemoveDisk { project, host } => match self.existing(&project)? {
                Some(b) => {
                    disks::clear(&b, &host)?;
                    json(b.remove_disk(&project, &here_host(host))?)
                }
                None => json(()),
            },
            R::DomainSpec {
                project,
                host,
                mut switches,
            } => {
                let b = self.backends(&project)?;
                // Guests here plug into this server's instance of each
                // switch, not the managing machine's.
                for rec in switches.values_mut() {
                    this_servers_instance(rec, &b.dir().join("switches"));
                }
                json(b.domain_spec(&project, &here_host(host), &switches)?)
            }
            R::Replug {
                project,
                host,
                interface,
                mut switch,
            } => {
                let b = self.backends(&project)?;
                this_servers_instance(&mut switch, &b.dir().join("switches"));
                json(b.replug(&project, &here_host(host), &interface, &switch)?)
            }
            R::ConsoleTail {
                project,
                host,
                bytes,
            } => {
                let b = self.backends(&project)?;
                json(console_tail(&b, &project, &host, bytes)?)
            }
            R::HostDisks { project, host } => match self.existing(&project)? {
                Some(b) => json(disks::state(&b, &host)?),
                None => json(HostDisks::default()),
            },
            R::EndMove { project, host } => match self.existing(&project)? {
                Some(b) => json(disks::end_move(&b, &host)?),
                None => json(()),
            },
            R::StorageMark {
                project,
                host,
                token,
            } => match self.existing(&project)? {
                Some(b) => json(migrate::mark(
                    &b,
                    &project,
                    &here_host(host),
                    token.as_deref(),
                )?),
                None => json(None::<PathBuf>),
            },
            R::StorageCheck {
                project,
                host,
                token,
            } => match self.existing(&project)? {
                Some(b) => json(migrate::marked(&b, &project, &here_host(host), &token)?),
                None => json(false),
            },
            R::ClaimDisks {
                project,
                host,
                server,
            } => match self.existing(&project)? {
                Some(b) => json(home::claim(&b, &here_host(host), &server)?),
                None => json(()),
            },
            R::DisksPlacedBy { project, host } => match self.existing(&project)? {
                Some(b) => json(home::placed_by(&b, &here_host(host))?),
                None => json(None::<String>),
            },
            other => Err(Error::Backend {
                what: "agent".into(),
                message: format!("no handler for {other:?}"),
            }),
        }
    }
}

/// `rec` as this server's instance of its switch (under `dir`): its
/// `vde_switch` socket (or the switch it joined), and its Linux bridge,
/// which Xen guests plug into; a bridge only the managing machine has is
/// none here.
fn this_servers_instance(rec: &mut SwitchRecord, dir: &Path) {
    let name = &rec.spec.name;
    if let Ok(sw) = VdeSwitch::open(name, dir) {
        rec.socket = Some(sw.ctl_dir());
    } else if let Ok(joined) = JoinedSwitch::open(name, dir) {
        rec.socket = Some(joined.socket().to_path_buf());
    }
    rec.bridge = LinuxBridge::open(name, dir)
        .ok()
        .map(|br| br.bridge_name().to_string());
}
