//! rustc-style rendering of diagnostics, by codespan-reporting.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term::{self, termcolor};

use crate::diag::{Diagnostic, Severity};
use crate::source::{FileId, SourceMap};

struct View<'a>(&'a SourceMap);

impl<'a> Files<'a> for View<'a> {
    type FileId = FileId;
    type Name = String;
    type Source = &'a str;

    fn name(&'a self, id: FileId) -> Result<String, FilesError> {
        let f = self.0.get(id).ok_or(FilesError::FileMissing)?;
        Ok(f.path.display().to_string())
    }

    fn source(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        let f = self.0.get(id).ok_or(FilesError::FileMissing)?;
        Ok(f.text.as_str())
    }

    fn line_index(&'a self, id: FileId, byte_index: usize) -> Result<usize, FilesError> {
        let f = self.0.get(id).ok_or(FilesError::FileMissing)?;
        Ok(match f.line_starts().binary_search(&byte_index) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        })
    }

    fn line_range(
        &'a self,
        id: FileId,
        line_index: usize,
    ) -> Result<std::ops::Range<usize>, FilesError> {
        let f = self.0.get(id).ok_or(FilesError::FileMissing)?;
        let starts = f.line_starts();
        let start = *starts.get(line_index).ok_or(FilesError::LineTooLarge {
            given: line_index,
            max: starts.len().saturating_sub(1),
        })?;
        let end = starts.get(line_index + 1).copied().unwrap_or(f.text.len());
        Ok(start..end)
    }
}

fn convert(d: &Diagnostic, sources: &SourceMap) -> cs::Diagnostic<FileId> {
    let base = match d.severity {
        Severity::Error => cs::Diagnostic::error(),
        Severity::Warning => cs::Diagnostic::warning(),
    };
    let mut labels = Vec::new();
    // A span pointing outside its file would make the renderer fail; drop it.
    let valid = |s: crate::source::Span| {
        sources
            .get(s.file)
            .is_some_and(|f| s.end as usize <= f.text.len() && s.start <= s.end)
    };
    if let Some(span) = d.span.filter(|s| valid(*s)) {
        labels.push(cs::Label::primary(span.file, span.range()));
    }
    for l in d.labels.iter().filter(|l| valid(l.span)) {
        labels.push(cs::Label::secondary(l.span.file, l.span.range()).with_message(&l.message));
    }
    let mut out = base
        .with_code(d.code.as_str())
        .with_message(&d.message)
        .with_labels(labels);
    if let Some(h) = &d.help {
        out = out.with_notes(vec![format!("help: {h}")]);
    }
    out
}

/// Render `diagnostics` against `sources`; ANSI colours when `color`.
pub fn render(sources: &SourceMap, diagnostics: &[Diagnostic], color: bool) -> String {
    let files = View(sources);
    let config = term::Config::default();
    let mut buffer = if color {
        termcolor::Buffer::ansi()
    } else {
        termcolor::Buffer::no_color()
    };
    for d in diagnostics {
        let cd = convert(d, sources);
        if term::emit_to_write_style(&mut buffer, &config, &files, &cd).is_err() {
            // The spans were checked above; if rendering still fails, fall
            // back to the one-line form rather than lose the diagnostic.
            let place = d.span.map(|s| sources.location(s)).unwrap_or_default();
            let line = format!("{}[{}]: {} {place}\n", d.severity_word(), d.code, d.message);
            let _ = std::io::Write::write_all(&mut buffer, line.as_bytes());
        }
    }
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}
