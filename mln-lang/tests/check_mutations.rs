//! Robustness: broken variants of every sample and corpus file (one to
//! three edits each: lines dropped, doubled, swapped or moved, braces and
//! escapes inserted, text cut short) go through parse, resolve, check, the
//! capacity check and the renderer without a panic, and every diagnostic
//! points inside its file.
//!
//! The mutations come from a fixed seed, so a failure names a file and a
//! mutation number that reproduce it.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mln_lang::check::{check, check_capacity, LOCAL_MACHINE};
use mln_lang::resolve::resolve;
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::{render, Code, Diagnostic, SourceMap};

/// Mutations tried per file.
const PER_FILE: u64 = 40;

/// Snippets worth inserting: each one is some stage's edge case.
const INSERTS: &[&str] = &[
    "{",
    "}",
    "\n}\n",
    "\\",
    ";",
    "$",
    "$[",
    "#include nope.mln\n",
    "\0",
    "network eth0 {",
    "switch lan\n",
    "address 10.0.0.1\n",
    "superclass ",
    "host a {\n",
    "memory 9999999G\n",
    "eth1",
    "autoenum { numhosts 3 }\n",
    "\u{e9}",
    " ",
];

/// A small deterministic generator (64-bit LCG); quality is not the point.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(text: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let n = lines.len();
    match rng.below(7) {
        0 => {
            lines.remove(rng.below(n));
        }
        1 => {
            let i = rng.below(n);
            let copy = lines[i].clone();
            lines.insert(i, copy);
        }
        2 => {
            let (i, j) = (rng.below(n), rng.below(n));
            lines.swap(i, j);
        }
        3 => {
            let i = rng.below(n);
            let at = rng.below(lines[i].len() + 1);
            let snippet = INSERTS[rng.below(INSERTS.len())].as_bytes();
            lines[i].splice(at..at, snippet.iter().copied());
        }
        4 => {
            let i = rng.below(n);
            if !lines[i].is_empty() {
                let at = rng.below(lines[i].len());
                lines[i].remove(at);
            }
        }
        5 => {
            // Cut short anywhere, even inside a UTF-8 sequence.
            let keep = rng.below(text.len() + 1);
            return text[..keep].to_vec();
        }
        _ => {
            // Move one line into a block elsewhere.
            let i = rng.below(n);
            let line = lines.remove(i);
            let j = rng.below(lines.len() + 1);
            lines.insert(j, line);
        }
    }
    lines.join(&b'\n')
}

fn pipeline(path: &Path, text: &[u8]) -> (SourceMap, Vec<Diagnostic>) {
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
    let capacity = BTreeMap::from([
        (LOCAL_MACHINE.to_string(), 256u64 << 20),
        ("server-a".to_string(), 1u64 << 30),
    ]);
    diags.extend(check_capacity(
        &resolved.project,
        &resolved.origins,
        &capacity,
    ));
    (sources, diags)
}

/// What is wrong with the diagnostics, if anything.
fn invariants(sources: &SourceMap, diags: &[Diagnostic]) -> Result<(), String> {
    for d in diags {
        if d.severity != d.code.severity() {
            return Err(format!("{} has severity {:?}", d.code, d.severity));
        }
        let spans = d.span.into_iter().chain(d.labels.iter().map(|l| l.span));
        for s in spans {
            let Some(f) = sources.get(s.file) else {
                return Err(format!("{} points into an unknown file", d.code));
            };
            let ok = s.start <= s.end
                && f.text.is_char_boundary(s.start as usize)
                && f.text.is_char_boundary(s.end as usize);
            if !ok {
                return Err(format!(
                    "{} span {}..{} is outside or inside a character of {} ({} bytes)",
                    d.code,
                    s.start,
                    s.end,
                    f.path.display(),
                    f.text.len()
                ));
            }
        }
    }
    Ok(())
}

fn inputs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.join("../projects"), root.join("tests/invalid")] {
        let mut walk = vec![dir];
        while let Some(d) = walk.pop() {
            for entry in std::fs::read_dir(&d).expect("a folder") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    walk.push(path);
                } else if path.extension().is_some_and(|e| e == "mln") {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn broken_variants_of_every_file_never_panic_and_point_inside_their_file() {
    let files = inputs();
    assert!(files.len() >= 45, "only {} input files", files.len());
    let mut failures = Vec::new();
    let mut codes_seen = std::collections::BTreeSet::new();
    for path in &files {
        let text = std::fs::read(path).expect("an input file");
        let mut rng = Rng(0x6d6c_6e00 ^ text.len() as u64);
        for i in 0..PER_FILE {
            let mut variant = text.clone();
            for _ in 0..=rng.below(3) {
                variant = mutate(&variant, &mut rng);
            }
            let result = catch_unwind(AssertUnwindSafe(|| {
                let (sources, diags) = pipeline(path, &variant);
                let _ = render(&sources, &diags, false);
                let _ = render(&sources, &diags, true);
                invariants(&sources, &diags).map(|()| diags.iter().map(|d| d.code).collect())
            }));
            match result {
                Ok(Ok(codes)) => codes_seen.extend::<Vec<Code>>(codes),
                Ok(Err(e)) => failures.push(format!("{} mutation {i}: {e}", path.display())),
                Err(_) => failures.push(format!("{} mutation {i}: PANICKED", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Sanity: the mutations reach the checker, not only the parser.
    assert!(codes_seen.contains(&Code::UnknownSwitch) || codes_seen.contains(&Code::NoInterface));
}
