//! The planner: desired project + recorded state + observed state → a
//! [`Plan`].
//!
//! Planning is pure. [`plan`] compares, for every host and switch, what the
//! state store recorded and what the backends report with what the project
//! file and the [`Goal`] want, and returns the actions between the two:
//! each with the objects it touches and the actions it waits for, so the
//! executor can run independent ones at once. Every attribute change is
//! classed ([`ChangeClass`]: live, restart, rebuild, move) and shown in the
//! per-host summary ([`HostChange`]); a rebuilt or moved host carries the
//! [`LinkEffect`]s on its switch neighbours. MAC addresses come from the
//! project or from [`derived_mac`], never from the order of things, so they
//! survive every change.
//!
//! ```
//! use mln_lang::plan::{plan, DesiredProject, Goal, HostSpec, Observed, PlanOptions};
//! let mut p = DesiredProject::new("lab");
//! p.add_host(HostSpec::new("web"));
//! let plan = plan(&p, None, &Observed::default(), &PlanOptions::new(Goal::Up));
//! assert!(plan.render_diff().contains("1 to create"));
//! ```

mod attrs;
mod build;
mod from_model;
pub mod recorded;
pub(crate) mod render;
mod spec;
mod types;
mod versions;

pub use build::{plan, PlanOptions, HEADROOM};
pub use from_model::{root_password, with_hashed_passwords};
pub use recorded::{DomainRecord, HostRecord, StaleCopy, State, SwitchRecord};
pub use render::Counts;
pub use spec::{
    derived_mac, domain_name, DesiredProject, GuestSpec, HookPoint, HostInterface, HostSpec,
    Ownership, Platform, SwitchSpec, WrittenFile,
};
pub use types::{
    Action, ActionId, AttrChange, ChangeClass, Goal, HostChange, HostChangeKind, LinkEffect,
    ObjectRef, Observed, ObservedDomain, ObservedSwitch, Op, Plan, SwitchChange, SwitchChangeKind,
    UnknownGoal,
};
pub use versions::{diff, DiffError};

#[cfg(test)]
mod tests;
