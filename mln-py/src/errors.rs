//! The exceptions of the module, and the library's errors mapped onto them.

use mln_lang::Report;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::diagnostic::Diagnostic;
use crate::lifecycle::Outcome;

create_exception!(
    mln,
    MlnError,
    PyException,
    "Base class of every error the mln module raises."
);
create_exception!(
    mln,
    ProjectError,
    MlnError,
    "A project that cannot be read, resolved or checked.\n\n\
     ``diagnostics`` lists every error and warning (``mln.Diagnostic``); \
     ``str(err)`` is them rendered rustc-style with the source lines.\n\
     ``mln.ParseError`` is the same class."
);
create_exception!(
    mln,
    PlanError,
    MlnError,
    "A plan that cannot be made or applied as asked."
);
create_exception!(
    mln,
    ApplyError,
    MlnError,
    "Some actions of a plan failed. ``outcome`` (``mln.Outcome``) says which \
     finished, which failed and why, and which were not run."
);
create_exception!(
    mln,
    StateError,
    MlnError,
    "The state store cannot be read, written or locked."
);
create_exception!(
    mln,
    BackendError,
    MlnError,
    "A hypervisor, switch or disk operation failed."
);

/// `ProjectError` with the report's diagnostics and its rendering.
pub(crate) fn project_error(py: Python<'_>, report: &Report) -> PyErr {
    let message = report.render(false);
    let diagnostics = Diagnostic::all(&report.sources, &report.diagnostics);
    let err = ProjectError::new_err(message.trim_end().to_string());
    if let Err(e) = attach_diagnostics(py, &err, diagnostics) {
        return e;
    }
    err
}

fn attach_diagnostics(py: Python<'_>, err: &PyErr, diagnostics: Vec<Diagnostic>) -> PyResult<()> {
    let list = PyList::new(py, diagnostics)?;
    err.value(py).setattr("diagnostics", list)
}

/// "action" or "actions", for `n` of them.
fn actions(n: usize) -> &'static str {
    if n == 1 {
        "action"
    } else {
        "actions"
    }
}

/// `ApplyError` for a run some of whose actions failed.
pub(crate) fn apply_failed(py: Python<'_>, outcome: Outcome) -> PyErr {
    let failed = outcome.failed();
    let total = outcome.0.plan.actions.len();
    let mut message = format!("{} of {total} {} failed", failed.len(), actions(total));
    for (_, description, error) in &failed {
        // The executor's errors usually start with the action already.
        let error = error.as_str();
        if error.starts_with(description.as_str()) {
            message.push_str(&format!("\n  {error}"));
        } else {
            message.push_str(&format!("\n  {description}: {error}"));
        }
    }
    let not_run = outcome.not_run().len();
    if not_run > 0 {
        message.push_str(&format!("\n  {not_run} {} not run", actions(not_run)));
    }
    let err = ApplyError::new_err(message);
    if let Err(e) = err.value(py).setattr("outcome", outcome) {
        return e;
    }
    err
}
