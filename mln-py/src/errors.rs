//! The exceptions of the module, and the library's errors mapped onto them.

use mln_lang::Report;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::diagnostic::Diagnostic;

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
