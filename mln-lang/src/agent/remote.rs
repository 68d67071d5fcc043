//! A server's hypervisor, seen through its agent.

use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mln_core::{BackendKind, BootStatus, DomainInfo, DomainSpec, Error, Hypervisor, Result};

use super::protocol::Request;
use super::AgentClient;
use crate::plan::Platform;

/// Where a [`RemoteHypervisor`] gets its connection: already open, or
/// opened on first use (and the failure kept, so every later call fails
/// the same way at once).
pub trait Connection: Send + Sync {
    /// The connection, or why there is none.
    fn client(&self) -> Result<Arc<AgentClient>>;
}

impl Connection for Arc<AgentClient> {
    fn client(&self) -> Result<Arc<AgentClient>> {
        Ok(self.clone())
    }
}

/// The hypervisor that runs `platform` guests of `project` on a server,
/// every call a request to its agent.
pub struct RemoteHypervisor {
    conn: Arc<dyn Connection>,
    project: String,
    platform: Platform,
}

impl RemoteHypervisor {
    /// `platform` guests of `project` through `conn`.
    pub fn new(conn: Arc<dyn Connection>, project: impl Into<String>, platform: Platform) -> Self {
        RemoteHypervisor {
            conn,
            project: project.into(),
            platform,
        }
    }

    fn unit(&self, req: Request) -> Result<()> {
        self.conn.client()?.call(&req).map(drop)
    }

    fn named(&self, name: &str) -> (String, Platform, String) {
        (self.project.clone(), self.platform, name.to_string())
    }
}

impl Hypervisor for RemoteHypervisor {
    fn kind(&self) -> BackendKind {
        self.platform.backend().unwrap_or(BackendKind::Uml)
    }

    fn create(&self, spec: &DomainSpec) -> Result<DomainInfo> {
        self.conn.client()?.call_as(&Request::Create {
            project: self.project.clone(),
            platform: self.platform,
            spec: spec.clone(),
        })
    }

    fn start(&self, name: &str) -> Result<()> {
        let (project, platform, name) = self.named(name);
        self.unit(Request::Start {
            project,
            platform,
            name,
        })
    }

    fn pause(&self, name: &str) -> Result<()> {
        let (project, platform, name) = self.named(name);
        self.unit(Request::Pause {
            project,
            platform,
            name,
        })
    }

    fn resume(&self, name: &str) -> Result<()> {
        let (project, platform, name) = self.named(name);
        self.unit(Request::Resume {
            project,
            platform,
            name,
        })
    }

    fn shutdown(&self, name: &str, timeout: Duration) -> Result<()> {
        let (project, platform, name) = self.named(name);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.unit(Request::Shutdown {
            project,
            platform,
            name,
            timeout_ms,
        })
    }

    fn reboot(&self, name: &str) -> Result<()> {
        let (project, platform, name) = self.named(name);
        self.unit(Request::Reboot {
            project,
            platform,
            name,
        })
    }

    fn destroy(&self, name: &str) -> Result<()> {
        let (project, platform, name) = self.named(name);
        self.unit(Request::Destroy {
            project,
            platform,
            name,
        })
    }

    fn info(&self, name: &str) -> Result<DomainInfo> {
        let (project, platform, name) = self.named(name);
        self.conn.client()?.call_as(&Request::Info {
            project,
            platform,
            name,
        })
    }

    fn boot_status(&self, name: &str) -> Result<BootStatus> {
        let (project, platform, name) = self.named(name);
        self.conn.client()?.call_as(&Request::BootStatus {
            project,
            platform,
            name,
        })
    }

    fn exec(
        &self,
        name: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<mln_core::exec::ExecOutput> {
        let (project, platform, name) = self.named(name);
        self.conn.client()?.call_as(&Request::Exec {
            project,
            platform,
            name,
            argv: argv.to_vec(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    fn list(&self) -> Result<Vec<DomainInfo>> {
        self.conn.client()?.call_as(&Request::List {
            project: self.project.clone(),
            platform: self.platform,
        })
    }

    fn set_memory(&self, name: &str, bytes: u64) -> Result<()> {
        let (project, platform, name) = self.named(name);
        self.unit(Request::SetMemory {
            project,
            platform,
            name,
            bytes,
        })
    }

    fn set_vcpus(&self, name: &str, count: u32) -> Result<()> {
        let (project, platform, name) = self.named(name);
        self.unit(Request::SetVcpus {
            project,
            platform,
            name,
            count,
        })
    }

    // Save files and migration streams live on the server: they are the
    // business of a move between servers (Backends::migrate), not of
    // single calls here.
    fn save(&self, _name: &str, _path: &Path) -> Result<()> {
        Err(Error::Unsupported {
            backend: "remote",
            op: "saving a guest to a file through the agent",
        })
    }

    fn restore(&self, _spec: &DomainSpec, _path: &Path) -> Result<DomainInfo> {
        Err(Error::Unsupported {
            backend: "remote",
            op: "restoring a guest from a file through the agent",
        })
    }

    fn migrate_send(&self, _name: &str, _stream: BorrowedFd<'_>) -> Result<()> {
        Err(Error::Unsupported {
            backend: "remote",
            op: "sending a migration stream through the agent",
        })
    }

    fn migrate_receive(&self, _spec: &DomainSpec, _stream: BorrowedFd<'_>) -> Result<DomainInfo> {
        Err(Error::Unsupported {
            backend: "remote",
            op: "receiving a migration stream through the agent",
        })
    }
}
