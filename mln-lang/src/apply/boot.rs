//! Boot confirmation: an action that starts guests is done only when each
//! has confirmed its boot (its template's marker on the console, see
//! [`mln_core::Hypervisor::boot_status`]). The executor keeps a
//! [`BootWatch`] per such action and asks its guests, without holding a
//! worker, until each has booted, stopped, or run out of time.

use std::time::{Duration, Instant};

use mln_core::{BootStatus, DomainState, Error as CoreError};

use super::{ApplyError, Backends};
use crate::plan::{domain_name, DesiredProject, HostSpec, Plan};

/// Guests an action started, waiting for their boot confirmation.
#[derive(Clone)]
pub(super) struct BootWatch {
    /// The action (its index in the plan).
    pub action: usize,
    /// The hosts still booting.
    pub hosts: Vec<HostSpec>,
    /// When the action started them.
    pub since: Instant,
}

/// A guest that died of a fault known to pass and was started once more.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BootRetry {
    /// The host.
    pub host: String,
    /// How its first boot ended.
    pub why: String,
}

/// What asking a watch's guests found.
pub(super) struct Verdict {
    /// The action.
    pub action: usize,
    /// Hosts that confirmed their boot.
    pub booted: Vec<String>,
    /// `Some` once the action is over: done, or failed (a guest stopped,
    /// or ran out of time).
    pub result: Option<Result<(), ApplyError>>,
    /// Hosts started once more in this round.
    pub retried: Vec<BootRetry>,
}

impl BootWatch {
    /// Ask each guest still booting how far it got. A guest in
    /// `restarted` was already started once more after a passing fault
    /// (see [`BootStatus::Failed`]'s `transient`): a second such death
    /// fails it.
    pub fn judge(
        &self,
        plan: &Plan,
        desired: &DesiredProject,
        backends: &dyn Backends,
        timeout: Duration,
        restarted: &[String],
    ) -> Verdict {
        let describe = || plan.actions[self.action].op.describe();
        let mut booted = Vec::new();
        let mut retried = Vec::new();
        for host in &self.hosts {
            let failure = match boot_status(backends, desired, host) {
                Ok(BootStatus::Booted) => {
                    booted.push(host.name.clone());
                    continue;
                }
                Ok(BootStatus::Booting) if self.since.elapsed() < timeout => continue,
                Ok(BootStatus::Booting) => ApplyError::Boot {
                    action: describe(),
                    host: host.name.clone(),
                    why: format!(
                        "did not confirm its boot within {} s (it is left running; \
                         `mln log` shows its console)",
                        timeout.as_secs()
                    ),
                    console: String::new(),
                },
                Ok(BootStatus::Failed {
                    state,
                    reason,
                    console,
                    transient,
                }) => {
                    let why = match reason {
                        Some(r) => format!("{state} while booting: {r}"),
                        None => format!("{state} while booting"),
                    };
                    let again = restarted.contains(&host.name);
                    if transient && !again {
                        match start_again(backends, desired, host) {
                            Ok(()) => {
                                retried.push(BootRetry {
                                    host: host.name.clone(),
                                    why,
                                });
                                continue;
                            }
                            Err(e) => ApplyError::Backend {
                                action: describe(),
                                source: once_more(e),
                            },
                        }
                    } else {
                        ApplyError::Boot {
                            action: describe(),
                            host: host.name.clone(),
                            why: if again {
                                format!("{why} (it was started once more and died again)")
                            } else {
                                why
                            },
                            console,
                        }
                    }
                }
                Err(e) => ApplyError::Backend {
                    action: describe(),
                    source: e,
                },
            };
            return Verdict {
                action: self.action,
                booted,
                result: Some(Err(failure)),
                retried,
            };
        }
        let done = booted.len() == self.hosts.len();
        Verdict {
            action: self.action,
            booted,
            result: done.then_some(Ok(())),
            retried,
        }
    }
}

/// Start `host`'s guest once more, after it died of a passing fault.
fn start_again(
    backends: &dyn Backends,
    desired: &DesiredProject,
    host: &HostSpec,
) -> Result<(), CoreError> {
    let hv = backends.hypervisor(host.service_host.as_deref(), host.platform)?;
    hv.start(&domain_name(&desired.name, &host.name))
}

/// How far `host`'s guest got; an agent too old to say is asked for the
/// domain's state instead.
fn boot_status(
    backends: &dyn Backends,
    desired: &DesiredProject,
    host: &HostSpec,
) -> Result<BootStatus, CoreError> {
    let hv = backends.hypervisor(host.service_host.as_deref(), host.platform)?;
    let name = domain_name(&desired.name, &host.name);
    match hv.boot_status(&name) {
        Err(CoreError::Unsupported { .. }) => Ok(match hv.info(&name)?.state {
            DomainState::Running | DomainState::Paused => BootStatus::Booted,
            state @ (DomainState::Crashed | DomainState::Shutdown) => BootStatus::Failed {
                state,
                reason: None,
                console: String::new(),
                transient: false,
            },
            DomainState::Dying | DomainState::Unknown => BootStatus::Booting,
        }),
        other => other,
    }
}

/// The error of a guest started once more after a passing fault.
pub(super) fn once_more(e: CoreError) -> CoreError {
    match e {
        CoreError::BootCrash {
            domain, message, ..
        } => CoreError::BootCrash {
            domain,
            message: format!("started once more after a passing fault, it died again: {message}"),
            transient: false,
        },
        other => other,
    }
}
