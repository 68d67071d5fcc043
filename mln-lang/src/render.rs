//! rustc-style rendering of diagnostics, by codespan-reporting.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term::{self, termcolor};

use crate::diag::{Diagnostic, Severity};
use crate::source::{FileId, SourceMap};

/// The sources as diagnostics quote them: the value of every
/// `root_passwd` and `project_password` is replaced by as many `*` as it
/// has bytes (so spans keep pointing at the same places), because
/// diagnostics end up in terminals, CI logs and bug reports.
struct View<'a>(&'a SourceMap, Vec<Option<String>>);

impl<'a> View<'a> {
    fn new(sources: &'a SourceMap, diagnostics: &[Diagnostic]) -> Self {
        let mut masked = Vec::new();
        for d in diagnostics {
            let spans = d.span.into_iter().chain(d.labels.iter().map(|l| l.span));
            for span in spans {
                let i = span.file.0 as usize;
                if masked.len() <= i {
                    masked.resize(i + 1, None);
                }
                if masked[i].is_none() {
                    masked[i] = sources.get(span.file).map(|f| mask_passwords(&f.text));
                }
            }
        }
        View(sources, masked)
    }

    fn text(&self, id: FileId) -> Option<&str> {
        match self.1.get(id.0 as usize) {
            Some(Some(t)) => Some(t),
            _ => self.0.get(id).map(|f| f.text.as_str()),
        }
    }
}

/// `text` with the value after each `root_passwd` / `project_password`
/// keyword starred out, byte for byte.
fn mask_passwords(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for key in ["root_passwd", "project_password"] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(key) {
            let start = from + pos;
            let mut i = start + key.len();
            from = i;
            let word_start = start == 0 || !is_word(bytes[start - 1]);
            if !word_start || i >= bytes.len() || !matches!(bytes[i], b' ' | b'\t') {
                continue;
            }
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                i += 1;
            }
            let quoted = bytes.get(i) == Some(&b'"');
            let value_start = i;
            if quoted {
                i += 1;
            }
            while i < bytes.len() {
                let b = bytes[i];
                if quoted && b == b'"' && i > value_start {
                    i += 1;
                    break;
                }
                if b == b'\n' || (!quoted && matches!(b, b' ' | b'\t' | b';' | b'{' | b'}')) {
                    break;
                }
                i += 1;
            }
            // Only whole UTF-8 sequences are replaced: `*` is one byte, so
            // the text stays valid and the same length.
            bytes[value_start..i].fill(b'*');
            from = i;
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> Files<'a> for View<'a> {
    type FileId = FileId;
    type Name = String;
    type Source = &'a str;

    fn name(&'a self, id: FileId) -> Result<String, FilesError> {
        let f = self.0.get(id).ok_or(FilesError::FileMissing)?;
        Ok(f.path.display().to_string())
    }

    fn source(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        self.text(id).ok_or(FilesError::FileMissing)
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
    let files = View::new(sources, diagnostics);
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
