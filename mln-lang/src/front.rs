//! The front door: one call from a file (or text) to a checked project,
//! with the sources kept beside the diagnostics so callers can render them.

use std::fmt;
use std::path::Path;

use crate::diag::Diagnostics;
use crate::resolve::Resolved;
use crate::source::SourceMap;
use crate::syntax::{self, Ast, Limits};

/// A parsed project file and every file it included.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The files read; diagnostics point into them.
    pub sources: SourceMap,
    /// The syntax tree.
    pub ast: Ast,
}

/// A project that resolved and passed the checks (warnings allowed).
#[derive(Debug, Clone)]
pub struct Checked {
    /// The files read.
    pub sources: SourceMap,
    /// The resolved project and where each part was written.
    pub resolved: Resolved,
    /// Every warning, from the resolver and the checker, in source order.
    pub warnings: Diagnostics,
}

impl Checked {
    /// The resolved project.
    pub fn project(&self) -> &crate::model::Project {
        &self.resolved.project
    }
}

/// Diagnostics with the sources they point into: the error of every
/// front-door function. `Display` renders them rustc-style without colour.
#[derive(Debug, Clone)]
pub struct Report {
    /// The files read.
    pub sources: SourceMap,
    /// Errors and warnings.
    pub diagnostics: Diagnostics,
}

impl Report {
    /// Render rustc-style; ANSI colours when `color`.
    pub fn render(&self, color: bool) -> String {
        crate::render(&self.sources, &self.diagnostics.0, color)
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.has_errors()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Report {}

/// Parse project text. `name` is what diagnostics call the file; `#include`
/// paths are relative to its folder.
///
/// ```
/// let parsed = mln_lang::parse_str("lab.mln", "global { project lab }\n").unwrap();
/// assert_eq!(parsed.ast.items.len(), 1);
/// let err = mln_lang::parse_str("bad.mln", "host a {\n").unwrap_err();
/// assert!(err.to_string().contains("bad.mln:1:8"));
/// ```
pub fn parse_str(name: &str, text: &str) -> Result<Parsed, Report> {
    let mut sources = SourceMap::new();
    match syntax::parse_source(
        &mut sources,
        Path::new(name),
        text.as_bytes(),
        &Limits::default(),
    ) {
        Ok(ast) => Ok(Parsed { sources, ast }),
        Err(diagnostics) => Err(Report {
            sources,
            diagnostics,
        }),
    }
}

/// Read and parse the project file at `path` (and its includes).
///
/// ```
/// let err = mln_lang::parse_file("/nonexistent/x.mln").unwrap_err();
/// assert_eq!(err.diagnostics.0[0].code, mln_lang::Code::IncludeNotFound);
/// ```
pub fn parse_file(path: impl AsRef<Path>) -> Result<Parsed, Report> {
    let mut sources = SourceMap::new();
    match syntax::parse_path(&mut sources, path.as_ref(), &Limits::default()) {
        Ok(ast) => Ok(Parsed { sources, ast }),
        Err(diagnostics) => Err(Report {
            sources,
            diagnostics,
        }),
    }
}

impl Parsed {
    /// Add `definitions` (command-line variables, a project name) as the
    /// project's last `global` block; see [`crate::Definitions`].
    pub fn define(&mut self, definitions: &crate::Definitions) {
        definitions.add_to(&mut self.sources, &mut self.ast);
    }

    /// Resolve the parsed project into the model (variables,
    /// superclasses, autoenum, switch membership).
    ///
    /// ```
    /// let parsed = mln_lang::parse_str("p.mln", "global { project p }\nhost a { memory 1G }\n").unwrap();
    /// let resolved = parsed.resolve().unwrap();
    /// assert_eq!(resolved.project.host("a").unwrap().memory, 1 << 30);
    /// ```
    pub fn resolve(&self) -> Result<Resolved, Report> {
        crate::resolve::resolve(&self.ast, &self.sources).map_err(|diagnostics| Report {
            sources: self.sources.clone(),
            diagnostics,
        })
    }

    /// Check `resolved` (this project, resolved); the result holds the
    /// resolver's warnings and every checker diagnostic, in source order.
    /// `Err` when any is an error.
    ///
    /// ```
    /// let parsed = mln_lang::parse_str("p.mln",
    ///     "global { project p }\nswitch lan {\n}\nhost a { network eth0 { switch lna } }\n").unwrap();
    /// let resolved = parsed.resolve().unwrap();
    /// let report = parsed.check(&resolved).unwrap_err();
    /// assert_eq!(report.diagnostics.0[0].code.as_str(), "E0004");
    /// ```
    pub fn check(&self, resolved: &Resolved) -> Result<Diagnostics, Report> {
        let mut all = resolved.warnings.clone();
        all.0.extend(crate::check::check_project(
            &resolved.project,
            &resolved.origins,
        ));
        all.0
            .sort_by_key(|d| d.span.map_or((u32::MAX, u32::MAX), |s| (s.file.0, s.start)));
        if all.has_errors() {
            Err(Report {
                sources: self.sources.clone(),
                diagnostics: all,
            })
        } else {
            Ok(all)
        }
    }
}

/// Parse, resolve and check the project file at `path`.
///
/// ```
/// let root = env!("CARGO_MANIFEST_DIR");
/// let checked = mln_lang::load(format!("{root}/../projects/lab.mln")).unwrap();
/// assert_eq!(checked.project().name, "lab");
/// assert_eq!(checked.project().hosts.len(), 3);
/// ```
pub fn load(path: impl AsRef<Path>) -> Result<Checked, Report> {
    finish(parse_file(path)?)
}

/// Parse, resolve and check project text (see [`parse_str`] for `name`).
pub fn load_str(name: &str, text: &str) -> Result<Checked, Report> {
    finish(parse_str(name, text)?)
}

/// [`load`] with `definitions` added (`-D name=value`, a project name):
/// see [`crate::Definitions`].
pub fn load_with(
    path: impl AsRef<Path>,
    definitions: &crate::Definitions,
) -> Result<Checked, Report> {
    let mut parsed = parse_file(path)?;
    parsed.define(definitions);
    finish(parsed)
}

/// [`load_str`] with `definitions` added.
pub fn load_str_with(
    name: &str,
    text: &str,
    definitions: &crate::Definitions,
) -> Result<Checked, Report> {
    let mut parsed = parse_str(name, text)?;
    parsed.define(definitions);
    finish(parsed)
}

fn finish(parsed: Parsed) -> Result<Checked, Report> {
    let resolved = parsed.resolve()?;
    let warnings = parsed.check(&resolved)?;
    Ok(Checked {
        sources: parsed.sources,
        resolved,
        warnings,
    })
}
