//! What the fuzz targets share: the limits they parse with, a folder of
//! small files for `#include` to find, and the invariants every diagnostic
//! must keep (its span lies inside its file, on character boundaries, and
//! it renders without panicking).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mln_lang::syntax::{parse_source, Ast, Limits};
use mln_lang::{render, Diagnostic, SourceMap, Span};

/// Files the fuzzer can `#include` by name: plain, chained, a self cycle,
/// and one that leaves a block open across the file boundary. Their names
/// appear in the seed corpus.
const INCLUDES: &[(&str, &str)] = &[
    ("a.inc", "switch lan {\n}\n"),
    ("b.inc", "#include a.inc\nsuperclass base { memory 64M }\n"),
    ("self.inc", "#include self.inc\n"),
    ("open.inc", "host opened {\n  network eth0 {\n"),
    ("close.inc", "}\n}\n"),
];

/// The folder the main file of every input claims to be in.
pub fn include_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("mln-fuzz-includes");
        std::fs::create_dir_all(&dir).expect("create the include folder");
        // Several fuzzer processes may start at once: write each file under
        // a private name and rename it into place, so no reader ever sees
        // a half-written one.
        for (name, text) in INCLUDES {
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&tmp, text).expect("write an include file");
            std::fs::rename(&tmp, dir.join(name)).expect("install an include file");
        }
        dir
    })
}

/// The default limits, except that single files and whole projects are
/// capped at a few MiB: an input may `#include` an absolute path such as
/// `/dev/zero`, and reading 64 MiB of it per input would only slow the
/// fuzzer down without reaching new code.
pub fn limits() -> Limits {
    Limits {
        max_file_bytes: 4 << 20,
        max_total_bytes: 8 << 20,
        ..Limits::default()
    }
}

/// Parse `bytes` as the main file `fuzz.mln` in [`include_dir`].
pub fn parse(sources: &mut SourceMap, bytes: &[u8]) -> Option<Ast> {
    let path = include_dir().join("fuzz.mln");
    match parse_source(sources, &path, bytes, &limits()) {
        Ok(ast) => Some(ast),
        Err(diags) => {
            assert!(!diags.0.is_empty(), "parse failed without a diagnostic");
            assert!(diags.has_errors(), "parse failed with warnings only");
            assert_diagnostics(sources, &diags.0);
            None
        }
    }
}

/// Every span points into a file of `sources`, inside its text and on
/// character boundaries; rendering (plain and coloured) does not panic.
pub fn assert_diagnostics(sources: &SourceMap, diags: &[Diagnostic]) {
    for d in diags {
        assert_eq!(d.severity, d.code.severity(), "{d:?}");
        if let Some(span) = d.span {
            assert_span(sources, span, d);
        }
        for l in &d.labels {
            assert_span(sources, l.span, d);
        }
    }
    let _ = render(sources, diags, false);
    let _ = render(sources, diags, true);
}

fn assert_span(sources: &SourceMap, span: Span, d: &Diagnostic) {
    let file = sources
        .get(span.file)
        .unwrap_or_else(|| panic!("span in no file: {d:?}"));
    let text = &file.text;
    let (start, end) = (span.start as usize, span.end as usize);
    assert!(start <= end, "span backwards: {d:?}");
    assert!(
        end <= text.len(),
        "span past the end ({}): {d:?}",
        text.len()
    );
    assert!(
        text.is_char_boundary(start) && text.is_char_boundary(end),
        "span splits a character: {d:?}"
    );
}

/// Parse, resolve and check `bytes`; the project when it has no error.
pub fn load(bytes: &[u8]) -> Option<mln_lang::model::Project> {
    let mut sources = SourceMap::new();
    let ast = parse(&mut sources, bytes)?;
    let resolved = mln_lang::resolve::resolve(&ast, &sources).ok()?;
    let diags = mln_lang::check::check_project(&resolved.project, &resolved.origins);
    if diags.has_errors() {
        return None;
    }
    Some(resolved.project)
}
