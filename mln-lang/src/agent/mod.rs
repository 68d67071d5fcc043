//! Several servers: `mln agent` runs a server's part of a plan, and the
//! managing `mln` talks to it over `ssh` in JSON lines (the protocol is
//! documented in `docs/agent-protocol.md`; its wire types are private to
//! this module).
//!
//! Public: [`Agent`] (what `mln agent` runs on a server) and
//! [`ServerAccess`] (how the managing side reaches servers: ssh program,
//! configuration, agent program). Inside: `server` (the agent), `client`
//! (one ssh connection per server, several requests in flight),
//! `remote` (a server's hypervisor through its agent), `disks` and
//! `carry` (a host's disks moving between servers), `migrate` (a running
//! Xen guest moving over libxl's migration stream), `vxlan` (a switch's
//! VXLAN links on one machine).

pub(crate) mod carry;
pub(crate) mod client;
pub(crate) mod disks;
pub(crate) mod migrate;
pub(crate) mod protocol;
pub(crate) mod remote;
pub(crate) mod server;
pub(crate) mod vxlan;

pub(crate) use client::AgentClient;
pub use client::{AgentError, ServerAccess};
pub(crate) use remote::{Connection, RemoteHypervisor};
pub use server::Agent;

/// This machine's host name (`/proc/sys/kernel/hostname`).
pub fn this_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
