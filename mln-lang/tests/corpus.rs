//! The invalid-file corpus: every file in `tests/invalid/*.mln` is parsed,
//! resolved and checked, and must produce the code it names in its header
//! at the line it names. No file may panic, and together the files must
//! cover every code in [`Code::ALL`]. The sample projects must come
//! through with no error.
//!
//! Header lines (comments, so the files stay valid MLN text otherwise):
//!
//! ```text
//! # expect: E0004 line 12                    (in this file)
//! # expect: E0019 line 3 in include/b.inc    (in a file it includes)
//! # capacity: server-a=1G                    (run the plan-time E0016 check)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mln_lang::check::{check, check_capacity};
use mln_lang::resolve::resolve;
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::{render, Code, Diagnostic, SourceMap};

/// Corpus files that currently fail because of a known bug elsewhere, with
/// the reason. They still run (and must not panic); a failure is reported
/// but does not fail the test. Remove an entry when its bug is fixed.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// The folder of the corpus, relative to the crate (tests run there).
const CORPUS: &str = "tests/invalid";

/// One `# expect:` line.
#[derive(Debug)]
struct Expect {
    code: String,
    line: usize,
    /// The file the diagnostic must point into, relative to the corpus
    /// folder; `None` for the corpus file itself.
    file: Option<PathBuf>,
}

/// What a corpus file asks for.
#[derive(Debug, Default)]
struct Header {
    expects: Vec<Expect>,
    capacity: BTreeMap<String, u64>,
}

fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let mut header = Header::default();
    // Header lines are plain ASCII even in the files whose body is not UTF-8.
    for raw in bytes.split(|b| *b == b'\n') {
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("# expect:") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (code, line, file) = match words.as_slice() {
                [code, "line", n] => (code, n, None),
                [code, "line", n, "in", f] => (code, n, Some(PathBuf::from(f))),
                _ => return Err(format!("bad expect line `{line}`")),
            };
            header.expects.push(Expect {
                code: code.to_string(),
                line: line
                    .parse()
                    .map_err(|_| format!("bad line number in `{line}`"))?,
                file,
            });
        } else if let Some(rest) = line.strip_prefix("# capacity:") {
            for pair in rest.split_whitespace() {
                let (host, size) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("bad capacity `{pair}`"))?;
                header.capacity.insert(host.to_string(), size_bytes(size)?);
            }
        }
    }
    if header.expects.is_empty() {
        return Err("no `# expect:` line".to_string());
    }
    Ok(header)
}

fn size_bytes(text: &str) -> Result<u64, String> {
    let (num, mult) = match text.as_bytes().last() {
        Some(b'K') => (&text[..text.len() - 1], 1u64 << 10),
        Some(b'M') => (&text[..text.len() - 1], 1 << 20),
        Some(b'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("bad size `{text}`"))
}

/// Parse, resolve and check `text` as the file `path`, the way `mln check`
/// does, returning every diagnostic of the first stage that fails (or of
/// all stages when none does).
fn pipeline(
    path: &Path,
    text: &[u8],
    capacity: &BTreeMap<String, u64>,
) -> (SourceMap, Vec<Diagnostic>) {
    let mut sources = SourceMap::new();
    let ast = match parse_source(&mut sources, path, text, &Limits::default()) {
        Ok(ast) => ast,
        Err(d) => return (sources, d.0),
    };
    let resolved = match resolve(&ast, &sources) {
        Ok(r) => r,
        Err(d) => return (sources, d.0),
    };
    let mut diags = resolved.warnings.0.clone();
    diags.extend(check(&resolved, &sources));
    diags.extend(check_capacity(
        &resolved.project,
        &resolved.origins,
        capacity,
    ));
    (sources, diags)
}

/// `(code, file, line)` of every diagnostic with a span.
fn places(sources: &SourceMap, diags: &[Diagnostic]) -> Vec<(String, Option<PathBuf>, usize)> {
    diags
        .iter()
        .map(
            |d| match d.span.and_then(|s| sources.get(s.file).map(|f| (s, f))) {
                Some((s, f)) => (
                    d.code.to_string(),
                    Some(f.path.clone()),
                    f.line_col(s.start as usize).0,
                ),
                None => (d.code.to_string(), None, 0),
            },
        )
        .collect()
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("the corpus folder")
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mln"))
        .collect();
    files.sort();
    files
}

/// Run one corpus file; `Err` says what went wrong.
fn run_case(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let header = parse_header(&bytes)?;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let (sources, diags) = pipeline(path, &bytes, &header.capacity);
        let rendered = render(&sources, &diags, false);
        (places(&sources, &diags), rendered)
    }));
    let (found, rendered) = outcome.map_err(|_| "PANICKED".to_string())?;
    let mut missing = Vec::new();
    for e in &header.expects {
        let want_file = match &e.file {
            Some(f) => Path::new(CORPUS).join(f),
            None => path.to_path_buf(),
        };
        let hit = found.iter().any(|(code, file, line)| {
            *code == e.code
                && *line == e.line
                && file.as_deref().is_some_and(|f| same_file(f, &want_file))
        });
        if !hit {
            missing.push(format!(
                "{} at line {} of {}",
                e.code,
                e.line,
                want_file.display()
            ));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "expected {}; got {:?}\n{rendered}",
            missing.join(", "),
            found
                .iter()
                .map(|(c, _, l)| format!("{c}@{l}"))
                .collect::<Vec<_>>()
        ))
    }
}

/// Paths name one file when they do after `..` and `.` are resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn every_corpus_file_gives_its_expected_code_and_line_without_panicking() {
    let files = corpus_files();
    assert!(files.len() >= 40, "only {} corpus files", files.len());
    let mut failures = Vec::new();
    let mut known = Vec::new();
    for path in &files {
        let name = file_name(path);
        let result = run_case(path);
        let is_known = KNOWN_FAILURES.iter().find(|(n, _)| *n == name);
        match (result, is_known) {
            (Ok(()), Some(_)) => {
                eprintln!("note: {name} passes now; remove it from KNOWN_FAILURES");
            }
            (Ok(()), None) => {}
            (Err(e), Some((_, why))) if !e.starts_with("PANICKED") => {
                known.push(format!("{name} (known: {why})"));
            }
            (Err(e), _) => failures.push(format!("{name}: {e}")),
        }
    }
    for k in &known {
        eprintln!("known failure: {k}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_corpus_covers_every_code() {
    let mut covered = BTreeSet::new();
    for path in corpus_files() {
        let name = file_name(&path);
        if KNOWN_FAILURES.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let bytes = std::fs::read(&path).expect("a corpus file");
        let header = parse_header(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        covered.extend(header.expects.into_iter().map(|e| e.code));
    }
    // Plugin programs give these, not the language: the plugin tests
    // (`src/plugin`, `examples/tests/cli_plugins.rs`) cover them.
    let from_plugins = [Code::PluginRefused, Code::PluginWarning];
    let uncovered: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !from_plugins.contains(c))
        .map(|c| c.as_str())
        .filter(|c| !covered.contains(*c))
        .collect();
    assert!(
        uncovered.is_empty(),
        "no passing corpus file for {uncovered:?}"
    );
}

#[test]
fn every_sample_project_passes_without_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../projects");
    let mut seen = 0;
    let mut walk = vec![dir];
    while let Some(d) = walk.pop() {
        for entry in std::fs::read_dir(&d).expect("the projects folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk.push(path);
            } else if path.extension().is_some_and(|e| e == "mln") {
                seen += 1;
                let bytes = std::fs::read(&path).expect("a sample");
                let (sources, diags) = pipeline(&path, &bytes, &BTreeMap::new());
                assert!(
                    diags.is_empty(),
                    "{}:\n{}",
                    path.display(),
                    render(&sources, &diags, false)
                );
            }
        }
    }
    assert!(seen >= 5, "only {seen} sample projects found");
}

/// Rendered diagnostics of a few representative files, as a user sees them.
fn rendered(name: &str) -> String {
    let path = Path::new(CORPUS).join(name);
    let bytes = std::fs::read(&path).expect("a corpus file");
    let header = parse_header(&bytes).expect("a header");
    let (sources, diags) = pipeline(&path, &bytes, &header.capacity);
    render(&sources, &diags, false)
}

macro_rules! snapshot {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            insta::assert_snapshot!(rendered($file));
        }
    };
}

snapshot!(render_unknown_switch_with_suggestion, "unknown-switch.mln");
snapshot!(
    render_unknown_switch_in_superclass,
    "unknown-switch-inherited.mln"
);
snapshot!(
    render_duplicate_host_with_first_definition,
    "duplicate-host.mln"
);
snapshot!(render_duplicate_address, "duplicate-address.mln");
snapshot!(render_address_outside_subnet, "address-outside-subnet.mln");
snapshot!(render_interface_gap, "interface-gap.mln");
snapshot!(render_unclosed_block, "unclosed-host.mln");
snapshot!(render_unknown_keyword_typo, "unknown-keyword-typo.mln");
snapshot!(render_error_in_included_file, "include-error-inside.mln");
snapshot!(
    render_unsafe_names_from_autoenum,
    "unsafe-autoenum-prefix.mln"
);
snapshot!(render_over_capacity_together, "over-capacity-together.mln");
snapshot!(render_undefined_variable, "undefined-variable.mln");
snapshot!(
    render_address_shared_by_generated_hosts,
    "duplicate-address-inherited.mln"
);
