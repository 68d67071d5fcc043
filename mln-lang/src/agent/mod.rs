//! Several servers: `mln agent` runs a server's part of a plan, and the
//! managing `mln` talks to it over `ssh` in JSON lines
//! ([`protocol`], documented in `docs/agent-protocol.md`).
//!
//! - [`server`]: the agent (`mln agent` on a server).
//! - [`client`]: [`AgentClient`], one ssh connection per server, several
//!   requests in flight at once.
//! - [`remote`]: [`RemoteHypervisor`], a server's hypervisor through its
//!   agent.
//! - [`disks`]: each side of a host's disks moving between servers;
//!   [`carry`] joins the two from the managing machine.
//! - [`migrate`]: a running Xen guest moving between servers over
//!   libxl's migration stream, when its disks are on shared storage.
//! - [`vxlan`]: a switch's VXLAN links on one machine, for the agent and
//!   the managing machine's own end.

pub mod carry;
pub mod client;
pub mod disks;
pub mod migrate;
pub mod protocol;
pub mod remote;
pub mod server;
pub mod vxlan;

pub use client::{AgentClient, AgentError, ServerAccess};
pub use remote::{Connection, RemoteHypervisor};
pub use server::Agent;

/// This machine's host name (`/proc/sys/kernel/hostname`).
pub fn this_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
