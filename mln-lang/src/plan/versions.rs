//! The plan between two versions of one project, with no state store and
//! no machine: what `mln upgrade` would do if `old` ran exactly as
//! written (`mln diff OLD NEW`, `mln.plan(old, new)` in Python).

use super::build::{plan, PlanOptions};
use super::recorded::State;
use super::spec::DesiredProject;
use super::types::{Observed, Plan};

/// Why two project versions cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// The two files are different projects (their `project` names
    /// differ): their hosts would all be removed and created.
    #[error(
        "the old version is project {old} but the new one is project {new}: \
         a diff compares two versions of one project"
    )]
    OtherProject {
        /// The old version's project name.
        old: String,
        /// The new version's.
        new: String,
    },
}

/// The plan that takes `old`, taken as brought up completely (every host
/// built and running, every switch up), to `new`, for `options` (usually
/// [`super::Goal::Upgrade`]). Pure: nothing is read or touched.
///
/// ```
/// use mln_lang::plan::{diff, DesiredProject, Goal, HostSpec, PlanOptions};
/// let mut v1 = DesiredProject::new("lab");
/// v1.add_host(HostSpec::new("web"));
/// let mut v2 = v1.clone();
/// v2.add_host(HostSpec::new("db"));
/// let plan = diff(&v1, &v2, &PlanOptions::new(Goal::Upgrade))?;
/// assert!(plan.render_diff().contains("1 to create"));
/// assert!(diff(&v1, &DesiredProject::new("other"), &PlanOptions::new(Goal::Upgrade)).is_err());
/// # Ok::<(), mln_lang::plan::DiffError>(())
/// ```
pub fn diff(
    old: &DesiredProject,
    new: &DesiredProject,
    options: &PlanOptions,
) -> Result<Plan, DiffError> {
    if old.name != new.name {
        return Err(DiffError::OtherProject {
            old: old.name.clone(),
            new: new.name.clone(),
        });
    }
    let state = State::as_if_up(old);
    let observed = Observed::assume_recorded(&state);
    Ok(plan(new, Some(&state), &observed, options))
}
