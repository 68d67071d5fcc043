//! The machines a project runs on, as the executor and the agent see
//! them: the [`Backends`] trait (hypervisors, switches, disks of every
//! service host) and [`LocalBackends`], this machine's real ones (User-Mode
//! Linux guests on `vde_switch` switches with copy-on-write disks, Xen
//! when handed a hypervisor). Both the executor ([`crate::apply`]) and a
//! server's agent ([`crate::agent`]) build on these.

mod backends;
mod disks;
pub(crate) mod home;
mod local;

pub use backends::Backends;
pub use local::{xen_console_log, LocalBackends, XEN_CONSOLE_LOGS};
