//! The executor: applies a [`Plan`] to the machines through [`Backends`],
//! recording every step in the project's [`crate::state::StateStore`].
//!
//! Independent actions run at once on a bounded number of threads; an
//! action starts when every action it waits for has finished. An action
//! that fails stops the actions that depend on it, the others go on, and
//! the [`ApplyReport`] says what was done, what failed and what was not run.
//! Progress goes to a [`Progress`] the caller renders; nothing is printed.
//!
//! The state is written after every action (and before the slow part of
//! an action that creates something), so after a crash or `kill -9` the
//! next run's [`observe`] + [`crate::plan::plan`] see what exists and finish
//! the job instead of duplicating or leaking it.
//!
//! [`Run`] is the whole verb (lock, load, observe, plan, apply, record) for
//! the command line: `mln build/up/start/stop/upgrade/remove` are
//! a [`Run`] with a [`crate::plan::Goal`]; `mln status` is [`status`];
//! `mln upgrade` without `--yes` uses a [`Session`] to show the plan and
//! apply that same plan under one lock.

mod boot;
pub mod clean;
mod cluster;
pub mod evacuate;
mod executor;
mod hooks;
pub mod recover;
mod session;

use crate::plan::{Action, ActionId, HookPoint};
use crate::state::StateError;

pub use crate::machine::{Backends, LocalBackends};
pub use boot::BootRetry;
pub use cluster::{ClusterBackends, ServerMemory};
pub use executor::{
    ApplyReport, Concurrency, Executor, Failure, DEFAULT_BOOT_TIMEOUT, DEFAULT_HOOK_TIMEOUT,
};
pub use session::{
    check_free_memory, default_parallelism, observe, observe_servers, status, status_with,
    HostStatus, Outcome, ProjectStatus, Run, RunOptions, ServerStatus, Session, SwitchStatusLine,
};

#[cfg(doc)]
use crate::plan::Plan;

/// What the executor tells its caller while it works. Every method has an
/// empty default; calls come from worker threads.
pub trait Progress: Sync {
    /// An action starts.
    fn started(&self, action: &Action) {
        let _ = action;
    }
    /// An action finished (`Err` carries why it failed).
    fn finished(&self, action: &Action, result: Result<(), &ApplyError>) {
        let _ = (action, result);
    }
    /// How `action` went, in a line (as which of two ways it took).
    fn said(&self, action: &Action, line: &str) {
        let _ = (action, line);
    }
    /// A guest of `action` died of a fault known to pass while booting and
    /// was started once more.
    fn boot_retried(&self, action: &Action, retry: &BootRetry) {
        let _ = (action, retry);
    }
    /// An action will not run because `because` failed.
    fn skipped(&self, action: &Action, because: ActionId) {
        let _ = (action, because);
    }
    /// A line a hook printed.
    fn hook_output(&self, point: HookPoint, line: &str) {
        let _ = (point, line);
    }
    /// A warning a plugin gave (see [`crate::plugin`]).
    fn plugin_warning(&self, note: &crate::plugin::Note) {
        let _ = note;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What can go wrong while applying a plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The state store failed (lock, load, save).
    #[error(transparent)]
    State(#[from] StateError),
    /// Recording progress failed in the middle of a run; nothing more was
    /// started.
    #[error("could not record progress: {0}")]
    Record(String),
    /// A backend operation failed.
    #[error("{action}: {source}")]
    Backend {
        /// The action, in words.
        action: String,
        /// The backend's error.
        source: mln_core::Error,
    },
    /// A started guest stopped, or did not confirm its boot in time.
    #[error("{action}: {host} {why}{}", if .console.is_empty() { String::new() } else { format!("; its console ends:\n{}", .console) })]
    Boot {
        /// The action, in words.
        action: String,
        /// The host.
        host: String,
        /// What happened, and the fix when the cause is known.
        why: String,
        /// The last lines of its console.
        console: String,
    },
    /// A hook block failed.
    #[error("{point} hook `{line}` failed ({status}){}", if .output.is_empty() { String::new() } else { format!(": {}", .output) })]
    Hook {
        /// The hook block.
        point: &'static str,
        /// The block's first line (with `...` when it has more): the block
        /// runs as one script.
        line: String,
        /// Its exit status, in words.
        status: String,
        /// What it printed on stderr.
        output: String,
    },
    /// A plugin stopped the verb (see [`crate::plugin`]): at `removing`,
    /// before anything was removed; at `built`, after the plan was
    /// applied and recorded.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    /// Something the action needs is not in the project or the state.
    #[error("{action}: {what}")]
    Missing {
        /// The action, in words.
        action: String,
        /// What is missing.
        what: String,
    },
    /// The plan's dependencies are inconsistent.
    #[error("malformed plan: {0}")]
    BadPlan(String),
    /// No project file was given and none is recorded.
    #[error("project {0}: nothing recorded; give the project file")]
    NoProject(String),
    /// Observing the backends failed, so planning would be guesswork.
    #[error("cannot see what runs: {0}")]
    Observe(mln_core::Error),
    /// The hosts the plan starts on a server need more memory than the
    /// server has free; nothing was touched.
    #[error(
        "{server}: not enough memory for this plan: its new and started hosts need {} MiB, \
         {} MiB is free (short by {} MiB)",
        .need >> 20, .free >> 20, .need.saturating_sub(*.free) >> 20
    )]
    Capacity {
        /// The server (`this machine` for local hosts).
        server: String,
        /// Bytes the plan's hosts need there.
        need: u64,
        /// Bytes free there.
        free: u64,
    },
}

#[cfg(test)]
mod tests;
