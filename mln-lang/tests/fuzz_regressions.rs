//! Inputs that once crashed, hung or blew up the front end (found by the
//! fuzz targets in `fuzz/` or by hand), kept so they never come back. Each
//! file in `tests/fuzz_regressions/` is parsed, resolved and checked on a
//! thread with a small stack; none may panic or overflow, and each must end
//! the way its header says.
//!
//! Header lines (comments, so the rest of the file stays as found):
//!
//! ```text
//! # expect: ok                   (parses, resolves and checks without error)
//! # expect: E0021                (that code among the diagnostics)
//! # expect: E0021 line 4         (that code, at that line of this file)
//! # expect: plan                 (two projects, the second after a line
//!                                 `# ---- new ----`: both load, and every
//!                                 plan from the first, running, to the
//!                                 second is well formed, dependencies
//!                                 without a cycle)
//! # known: REASON                (a bug not fixed yet: the file is listed
//!                                 but not run, because running it takes
//!                                 minutes or gigabytes; delete the line
//!                                 with the fix)
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mln_lang::check::check_project;
use mln_lang::plan::{plan, DesiredProject, Goal, Observed, Plan, PlanOptions, State};
use mln_lang::resolve::resolve;
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::{Diagnostic, SourceMap};

const FOLDER: &str = "tests/fuzz_regressions";

/// Far below a main thread's 8 MiB: anything that recurses per block,
/// link or host shows up here first.
const STACK: usize = 512 * 1024;

/// Between the old and the new project of a `# expect: plan` file.
const NEW: &str = "# ---- new ----";

#[derive(Debug, PartialEq)]
enum Expect {
    Ok,
    Plan,
    Code { code: String, line: Option<usize> },
}

#[derive(Debug)]
struct Header {
    expects: Vec<Expect>,
    known: Option<String>,
}

fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let mut header = Header {
        expects: Vec::new(),
        known: None,
    };
    // Header lines are ASCII even where the rest of the file is not UTF-8.
    for raw in bytes.split(|b| *b == b'\n') {
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("# expect:") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            header.expects.push(match words.as_slice() {
                ["ok"] => Expect::Ok,
                ["plan"] => Expect::Plan,
                [code] => Expect::Code {
                    code: code.to_string(),
                    line: None,
                },
                [code, "line", n] => Expect::Code {
                    code: code.to_string(),
                    line: Some(n.parse().map_err(|_| format!("bad line in `{line}`"))?),
                },
                _ => return Err(format!("bad expect line `{line}`")),
            });
        } else if let Some(rest) = line.strip_prefix("# known:") {
            header.known = Some(rest.trim().to_string());
        }
    }
    if header.expects.is_empty() {
        return Err("no `# expect:` line".to_string());
    }
    let alone = [Expect::Ok, Expect::Plan];
    if header.expects.len() > 1 && header.expects.iter().any(|e| alone.contains(e)) {
        return Err("`ok` or `plan` with other expectations".to_string());
    }
    Ok(header)
}

/// Every diagnostic of parse, resolve and check, with the sources.
fn run(path: &Path, bytes: &[u8]) -> (SourceMap, Vec<Diagnostic>) {
    let mut sources = SourceMap::new();
    let ast = match parse_source(&mut sources, path, bytes, &Limits::default()) {
        Ok(ast) => ast,
        Err(d) => return (sources, d.0),
    };
    let resolved = match resolve(&ast, &sources) {
        Ok(r) => r,
        Err(d) => return (sources, d.0),
    };
    let mut all = resolved.warnings.0;
    all.extend(check_project(&resolved.project, &resolved.origins).0);
    (sources, all)
}

/// `None` when the file ends as its header says, else why not.
fn verify(path: &Path, header: &Header, bytes: &[u8]) -> Option<String> {
    if header.expects == [Expect::Plan] {
        return verify_plans(bytes).err();
    }
    let (sources, diags) = run(path, bytes);
    let rendered = mln_lang::render(&sources, &diags, false);
    let found: Vec<(String, usize)> = diags
        .iter()
        .map(|d| {
            let line = d
                .span
                .and_then(|s| sources.get(s.file).map(|f| f.line_col(s.start as usize).0))
                .unwrap_or(0);
            (d.code.as_str().to_string(), line)
        })
        .collect();
    for expect in &header.expects {
        let met = match expect {
            Expect::Ok => !diags.iter().any(Diagnostic::is_error),
            // Only ever alone, and handled above.
            Expect::Plan => false,
            Expect::Code { code, line } => found
                .iter()
                .any(|(c, l)| c == code && line.map_or(true, |n| n == *l)),
        };
        if !met {
            return Some(format!("expected {expect:?}, found {found:?}\n{rendered}"));
        }
    }
    None
}

/// Load both halves of a plan file, pretend the first runs, and plan the
/// second for every goal.
fn verify_plans(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let (old, new) = text
        .split_once(NEW)
        .ok_or_else(|| format!("no `{NEW}` line"))?;
    let load = |name: &str, text: &str| {
        mln_lang::load_str(name, text)
            .map(|c| DesiredProject::from_project(c.project()))
            .map_err(|r| format!("{name} does not load:\n{r}"))
    };
    let old = load("old", old)?;
    let new = load("new", new)?;
    let state = State::as_if_up(&old);
    let observed = Observed::assume_recorded(&state);
    for goal in [
        Goal::Build,
        Goal::Up,
        Goal::Stop,
        Goal::Remove,
        Goal::Upgrade,
    ] {
        let plan = plan(&new, Some(&state), &observed, &PlanOptions::new(goal));
        acyclic(&plan).map_err(|e| format!("{goal:?}: {e}:\n{}", plan.render_actions()))?;
    }
    Ok(())
}

/// Every dependency names another action of the plan and they form no
/// cycle (Kahn's algorithm: no recursion).
fn acyclic(p: &Plan) -> Result<(), String> {
    let n = p.actions.len();
    let mut waiting_on = vec![0usize; n];
    let mut waiters: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, a) in p.actions.iter().enumerate() {
        for d in &a.after {
            if d.0 >= n || d.0 == i {
                return Err(format!("`{}` waits for #{}", a.op.describe(), d.0));
            }
            waiting_on[i] += 1;
            waiters[d.0].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &w in &waiters[i] {
            waiting_on[w] -= 1;
            if waiting_on[w] == 0 {
                ready.push(w);
            }
        }
    }
    if done == n {
        Ok(())
    } else {
        Err(format!(
            "{} actions wait on each other in a cycle",
            n - done
        ))
    }
}

fn files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(FOLDER)
        .expect("the regression folder")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mln"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_regression_ends_as_its_header_says() {
    let files = files();
    assert!(!files.is_empty(), "no regression files in {FOLDER}");
    let mut failures = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).expect("read a regression file");
        let header = match parse_header(&bytes) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if let Some(reason) = &header.known {
            eprintln!("not run (known bug): {}: {reason}", path.display());
            continue;
        }
        let name = path.display().to_string();
        let outcome = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                catch_unwind(AssertUnwindSafe(|| verify(&path, &header, &bytes)))
                    .unwrap_or_else(|_| Some("panicked".to_string()))
            })
            .expect("spawn a thread")
            .join()
            .unwrap_or_else(|_| Some("the thread died".to_string()));
        if let Some(why) = outcome {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn headers_are_read() {
    let h = parse_header(b"# expect: E0021 line 4\n# expect: W0004\n# known: slow\nx").unwrap();
    assert_eq!(
        h.expects,
        [
            Expect::Code {
                code: "E0021".into(),
                line: Some(4)
            },
            Expect::Code {
                code: "W0004".into(),
                line: None
            }
        ]
    );
    assert_eq!(h.known.as_deref(), Some("slow"));
    assert_eq!(
        parse_header(b"# expect: plan\n").unwrap().expects,
        [Expect::Plan]
    );
    assert!(parse_header(b"x 1\n").is_err());
    assert!(parse_header(b"# expect: ok\n# expect: E0001\n").is_err());
}
