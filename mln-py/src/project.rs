//! `mln.Project` and the functions that read one: `mln.parse`, `mln.load`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use mln_lang::resolve::Resolved;
use mln_lang::syntax::Ast;
use mln_lang::{Parsed, Report, SourceMap};
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::convert;
use crate::diagnostic::Diagnostic;
use crate::errors::project_error;
use crate::model::{Host, Switch};

/// A parsed project and its resolution, shared by every Python handle.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The sources the diagnostics point into, and the syntax tree (empty
    /// for a project made from data).
    pub parsed: Parsed,
    /// The model and where each part was written.
    pub resolved: Resolved,
}

/// A resolved MLN project: hosts and switches with everything inherited
/// and every variable expanded.
///
/// Made by ``mln.parse``, ``mln.load``, ``Project.from_dict`` or
/// ``Project.from_json``. Two projects are equal when their models are,
/// wherever they were read from.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct Project {
    pub(crate) inner: Arc<Loaded>,
}

impl Project {
    /// The resolved model.
    pub(crate) fn model(&self) -> &mln_lang::model::Project {
        &self.inner.resolved.project
    }

    fn from_model(project: mln_lang::model::Project) -> Self {
        Project {
            inner: Arc::new(Loaded {
                parsed: Parsed {
                    sources: SourceMap::new(),
                    ast: Ast::default(),
                },
                resolved: Resolved {
                    project,
                    origins: Default::default(),
                    warnings: Default::default(),
                },
            }),
        }
    }
}

/// Resolve `parsed` and, when `check`, refuse a project with errors.
fn finish(parsed: Parsed, check: bool) -> Result<Loaded, Report> {
    let resolved = parsed.resolve()?;
    if check {
        parsed.check(&resolved)?;
    }
    Ok(Loaded { parsed, resolved })
}

fn wrap(py: Python<'_>, result: Result<Loaded, Report>) -> PyResult<Project> {
    match result {
        Ok(loaded) => Ok(Project {
            inner: Arc::new(loaded),
        }),
        Err(report) => Err(project_error(py, &report)),
    }
}

/// Parse, resolve and (unless ``check=False``) check MLN project text.
///
/// ``filename`` is what diagnostics call the text (default
/// ``"<string>"``); ``#include`` paths are relative to its folder. With
/// ``check=False`` only errors that keep the project from resolving are
/// raised; ``Project.check()`` reports the rest.
///
/// Raises ``mln.ProjectError`` (with ``.diagnostics``) on errors.
#[pyfunction]
#[pyo3(signature = (text, filename=None, *, check=true))]
pub fn parse(
    py: Python<'_>,
    text: &str,
    filename: Option<PathBuf>,
    check: bool,
) -> PyResult<Project> {
    let name = filename.map_or_else(
        || "<string>".to_string(),
        |p| p.to_string_lossy().into_owned(),
    );
    let result = py.detach(|| mln_lang::parse_str(&name, text).and_then(|p| finish(p, check)));
    wrap(py, result)
}

/// Read, resolve and (unless ``check=False``) check the project file at
/// ``path`` and every file it includes.
///
/// Raises ``mln.ProjectError`` (with ``.diagnostics``) on errors,
/// including a file that cannot be read (code ``E0018``).
#[pyfunction]
#[pyo3(signature = (path, *, check=true))]
pub fn load(py: Python<'_>, path: PathBuf, check: bool) -> PyResult<Project> {
    let result = py.detach(|| mln_lang::parse_file(&path).and_then(|p| finish(p, check)));
    wrap(py, result)
}

#[pymethods]
impl Project {
    /// ``global { project NAME }``.
    #[getter]
    fn name(&self) -> &str {
        &self.model().name
    }

    /// Hosts in file order.
    #[getter]
    fn hosts(&self) -> Vec<Host> {
        self.model().hosts.iter().cloned().map(Host).collect()
    }

    /// Switches in file order.
    #[getter]
    fn switches(&self) -> Vec<Switch> {
        self.model().switches.iter().cloned().map(Switch).collect()
    }

    /// Variables declared in ``global``, values as written.
    #[getter]
    fn variables(&self) -> BTreeMap<String, String> {
        self.model().variables.clone()
    }

    /// Names of the superclasses, in file order.
    #[getter]
    fn superclasses(&self) -> Vec<String> {
        self.model()
            .superclasses
            .iter()
            .filter_map(|s| s.label.clone())
            .collect()
    }

    /// The project file it was read from; ``None`` for a project made from
    /// data.
    #[getter]
    fn file(&self) -> Option<String> {
        let (_, first) = self.inner.parsed.sources.files().next()?;
        Some(first.path.display().to_string())
    }

    /// The host called ``name``, or ``None``.
    fn host(&self, name: &str) -> Option<Host> {
        self.model().host(name).cloned().map(Host)
    }

    /// The switch called ``name``, or ``None``.
    fn switch(&self, name: &str) -> Option<Switch> {
        self.model().switch(name).cloned().map(Switch)
    }

    /// Every error and warning of the resolver and the checker, in source
    /// order. Empty for a clean project.
    ///
    /// ``capacity`` maps service host names (``"localhost"`` for the local
    /// machine) to the memory in bytes their guests may use, and adds the
    /// plan-time memory check (E0016) for them.
    #[pyo3(signature = (capacity=None))]
    fn check(&self, capacity: Option<BTreeMap<String, u64>>) -> Vec<Diagnostic> {
        let Loaded { parsed, resolved } = &*self.inner;
        let mut out = match parsed.check(resolved) {
            Ok(warnings) => Diagnostic::all(&parsed.sources, &warnings),
            Err(report) => Diagnostic::all(&report.sources, &report.diagnostics),
        };
        if let Some(capacity) = capacity {
            let over =
                mln_lang::check::check_capacity(&resolved.project, &resolved.origins, &capacity);
            out.extend(Diagnostic::all(&parsed.sources, &over));
        }
        out
    }

    /// Canonical MLN text: parses back to an equal project.
    fn to_mln(&self) -> String {
        mln_lang::print::to_mln(self.model())
    }

    /// The whole model as plain data (the field names of
    /// ``mln show --format json``).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, self.model())
    }

    /// The model as JSON text; indented by ``indent`` spaces when given.
    #[pyo3(signature = (indent=None))]
    fn to_json(&self, indent: Option<usize>) -> PyResult<String> {
        convert::to_json(self.model(), indent)
    }

    /// A project from the data ``to_dict`` returns. Raises ``ValueError``
    /// when it does not describe a project.
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        convert::from_py(data, "an MLN project").map(Project::from_model)
    }

    /// A project from the text ``to_json`` returns. Raises ``ValueError``
    /// when it does not describe a project.
    #[classmethod]
    fn from_json(_cls: &Bound<'_, PyType>, text: &str) -> PyResult<Self> {
        convert::from_json(text, "an MLN project").map(Project::from_model)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Project>()
            .is_ok_and(|o| o.get().model() == self.model())
    }

    fn __repr__(&self) -> String {
        let m = self.model();
        format!(
            "<Project {} hosts={} switches={}>",
            m.name,
            m.hosts.len(),
            m.switches.len()
        )
    }
}
