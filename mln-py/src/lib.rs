//! The Python module `mln`: the MLN library (mln-lang) from Python.
//!
//! Every function here only converts between Python and the library and
//! maps its errors to exceptions; the meaning lives in mln-lang.

#![forbid(unsafe_code)]

mod convert;
mod diagnostic;
mod errors;
mod lifecycle;
mod model;
mod plan;
mod project;

use pyo3::prelude::*;

/// Build networks of virtual machines from MLN project files.
///
/// ``mln.load(path)`` or ``mln.parse(text)`` give a ``Project``;
/// ``project.check()`` its diagnostics; ``mln.plan(old, new)`` what it
/// takes to go from one to the other.
#[pymodule]
fn mln(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(project::parse, m)?)?;
    m.add_function(wrap_pyfunction!(project::load, m)?)?;
    m.add_function(wrap_pyfunction!(plan::plan, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::build, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::up, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::start, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::upgrade, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::stop, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::remove, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::status, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::projects, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::console_log, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::exec, m)?)?;
    m.add_class::<lifecycle::ExecResult>()?;
    m.add_class::<project::Project>()?;
    m.add_class::<model::Host>()?;
    m.add_class::<model::Interface>()?;
    m.add_class::<model::Switch>()?;
    m.add_class::<diagnostic::Diagnostic>()?;
    m.add_class::<plan::Plan>()?;
    m.add_class::<plan::Action>()?;
    m.add_class::<plan::HostChange>()?;
    m.add_class::<plan::AttrChange>()?;
    m.add_class::<plan::SwitchChange>()?;
    m.add_class::<lifecycle::Template>()?;
    m.add_class::<lifecycle::Outcome>()?;
    m.add_class::<lifecycle::Status>()?;
    m.add_class::<lifecycle::HostStatus>()?;
    m.add("MlnError", py.get_type::<errors::MlnError>())?;
    m.add("ProjectError", py.get_type::<errors::ProjectError>())?;
    m.add("ParseError", py.get_type::<errors::ProjectError>())?;
    m.add("PlanError", py.get_type::<errors::PlanError>())?;
    m.add("ApplyError", py.get_type::<errors::ApplyError>())?;
    m.add("StateError", py.get_type::<errors::StateError>())?;
    m.add("BackendError", py.get_type::<errors::BackendError>())?;
    Ok(())
}
