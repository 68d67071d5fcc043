//! The planner: desired project + recorded state + observed state → a plan.

mod spec;

pub use spec::{
    derived_mac, domain_name, DesiredProject, HookPoint, HostSpec, InterfaceSpec, Platform,
    SwitchSpec,
};
