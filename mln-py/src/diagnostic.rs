//! `mln.Diagnostic`: one error or warning, with the place it points at
//! already turned into file, line and column.

use mln_lang::{SourceMap, Span};
use pyo3::prelude::*;

/// One error or warning about a project.
///
/// ``code`` is stable (``"E0004"``), ``severity`` is ``"error"`` or
/// ``"warning"``; ``file``, ``line`` and ``column`` (1-based, columns in
/// characters) are ``None`` for problems about the whole project.
#[pyclass(frozen, module = "mln", get_all)]
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The stable code, e.g. ``"E0004"``.
    pub code: String,
    /// ``"error"`` or ``"warning"``.
    pub severity: String,
    /// The code's short title, e.g. ``"unknown switch"``.
    pub title: String,
    /// One line, lower case.
    pub message: String,
    /// The file it points into.
    pub file: Option<String>,
    /// 1-based line of the start.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the start.
    pub column: Option<usize>,
    /// 1-based line of the end.
    pub end_line: Option<usize>,
    /// 1-based column of the end (one past the last character).
    pub end_column: Option<usize>,
    /// A fix, when one is obvious.
    pub help: Option<String>,
}

/// A place in the sources: file, line, column, end line, end column.
type Place = (String, usize, usize, usize, usize);

fn place(sources: &SourceMap, span: Span) -> Option<Place> {
    let file = sources.get(span.file)?;
    let (line, column) = file.line_col(span.start as usize);
    let (end_line, end_column) = file.line_col(span.end as usize);
    Some((
        file.path.display().to_string(),
        line,
        column,
        end_line,
        end_column,
    ))
}

impl Diagnostic {
    /// The Python view of `d`, whose span points into `sources`.
    pub(crate) fn new(sources: &SourceMap, d: &mln_lang::Diagnostic) -> Self {
        let at = d.span.and_then(|s| place(sources, s));
        Diagnostic {
            code: d.code.as_str().to_string(),
            severity: d.severity_word().to_string(),
            title: d.code.title().to_string(),
            message: d.message.clone(),
            file: at.as_ref().map(|p| p.0.clone()),
            line: at.as_ref().map(|p| p.1),
            column: at.as_ref().map(|p| p.2),
            end_line: at.as_ref().map(|p| p.3),
            end_column: at.as_ref().map(|p| p.4),
            help: d.help.clone(),
        }
    }

    /// Every diagnostic of `diags`, in order.
    pub(crate) fn all(sources: &SourceMap, diags: &mln_lang::Diagnostics) -> Vec<Self> {
        diags.iter().map(|d| Diagnostic::new(sources, d)).collect()
    }
}

#[pymethods]
impl Diagnostic {
    /// True for errors.
    #[getter]
    fn is_error(&self) -> bool {
        self.severity == "error"
    }

    /// The diagnostic as a plain dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        d.set_item("code", &self.code)?;
        d.set_item("severity", &self.severity)?;
        d.set_item("title", &self.title)?;
        d.set_item("message", &self.message)?;
        d.set_item("file", &self.file)?;
        d.set_item("line", self.line)?;
        d.set_item("column", self.column)?;
        d.set_item("end_line", self.end_line)?;
        d.set_item("end_column", self.end_column)?;
        d.set_item("help", &self.help)?;
        Ok(d)
    }

    fn __str__(&self) -> String {
        let head = format!("{}[{}]: {}", self.severity, self.code, self.message);
        match (&self.file, self.line, self.column) {
            (Some(f), Some(l), Some(c)) => format!("{f}:{l}:{c}: {head}"),
            _ => head,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<Diagnostic {} {:?} at {}:{}:{}>",
            self.code,
            self.message,
            self.file.as_deref().unwrap_or("?"),
            self.line.unwrap_or(0),
            self.column.unwrap_or(0)
        )
    }
}
