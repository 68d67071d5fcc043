//! The verbs that only read project files: `check`, `show`, `parse`,
//! `diff`, `graph`. No state is read and no machine is touched.

use mln_lang::plan::{self, DesiredProject, Goal, PlanOptions};

use crate::cli::{
    CheckArgs, DiagFormat, DiffArgs, GraphArgs, GraphFormat, ParseArgs, PlanFormat, ShowArgs,
    ShowFormat,
};
use crate::output::{self, Output};

/// `mln check FILE...`: 0 when every file is valid, 1 otherwise.
/// A valid project is also shown to the plugins (`resolved`): their
/// warnings are W0008, their refusal E0025.
pub fn check(out: &Output, args: &CheckArgs) -> u8 {
    let plugins = match crate::plugins::plugins(&args.plugins) {
        Ok(p) => p,
        Err(e) => return crate::lifecycle::fail(e),
    };
    let mut failed = false;
    let mut json = Vec::new();
    let definitions = match crate::config::definitions(&args.defines) {
        Ok(d) => d,
        Err(code) => return code,
    };
    for file in &args.files {
        let (report, ok) = match mln_lang::load_with(file, &definitions) {
            Ok(checked) => {
                let mut diagnostics = checked.warnings.clone();
                let ok = match plugins.resolved(checked.project()) {
                    Ok(notes) => {
                        diagnostics
                            .0
                            .extend(notes.iter().map(crate::plugins::warning));
                        true
                    }
                    Err(e) => {
                        diagnostics.push(crate::plugins::refusal(&e));
                        false
                    }
                };
                (
                    mln_lang::Report {
                        sources: checked.sources,
                        diagnostics,
                    },
                    ok,
                )
            }
            Err(report) => (report, false),
        };
        failed |= !ok;
        match args.format {
            DiagFormat::Human => out.report(&report),
            DiagFormat::Json => json.extend(report.diagnostics.iter().map(|d| {
                serde_json::json!({
                    "file": file,
                    "code": d.code,
                    "severity": d.severity,
                    "message": d.message,
                    "location": d.span.map(|s| location(&report.sources, s)),
                    "help": d.help,
                })
            })),
        }
    }
    if args.format == DiagFormat::Json {
        println!("{}", serde_json::Value::Array(json));
    }
    u8::from(failed)
}

fn location(sources: &mln_lang::SourceMap, span: mln_lang::Span) -> serde_json::Value {
    let Some(file) = sources.get(span.file) else {
        return serde_json::Value::Null;
    };
    let (line, column) = file.line_col(span.start as usize);
    serde_json::json!({
        "path": file.path,
        "line": line,
        "column": column,
        "start": span.start,
        "end": span.end,
    })
}

/// Load a project, printing diagnostics; `None` when it has errors.
/// The checked project in `file`, or from standard input when `file` is
/// `-` (`#include`s then resolve from the current folder); a project
/// with errors is reported and gives `None`.
fn load_or_report(
    out: &Output,
    file: &std::path::Path,
    definitions: &mln_lang::Definitions,
) -> Option<mln_lang::Checked> {
    let loaded = if file == std::path::Path::new("-") {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            eprintln!("error: standard input: {e}");
            return None;
        }
        mln_lang::load_str_with("<stdin>", &text, definitions)
    } else {
        mln_lang::load_with(file, definitions)
    };
    match loaded {
        Ok(c) => Some(c),
        Err(report) => {
            out.report(&report);
            None
        }
    }
}

/// `mln show FILE`: the resolved project as JSON or canonical MLN.
pub fn show(out: &Output, args: &ShowArgs) -> u8 {
    let definitions = match crate::config::definitions(&args.defines) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let Some(checked) = load_or_report(out, &args.file, &definitions) else {
        return 1;
    };
    match args.format {
        ShowFormat::Json => match serde_json::to_string_pretty(&masked(checked.project())) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot write the project as JSON: {e}");
                return 1;
            }
        },
        ShowFormat::Mln => print!(
            "{}",
            mln_lang::print::to_mln(&for_mln_text(checked.project()))
        ),
    }
    0
}

const MASK: &str = "********";

/// The project as shown to people: passwords masked.
fn masked(project: &mln_lang::model::Project) -> mln_lang::model::Project {
    let mut p = project.clone();
    for h in &mut p.hosts {
        if h.root_passwd.is_some() {
            h.root_passwd = Some(MASK.to_string());
        }
        if let Some(v) = h.written.get_mut("root_passwd") {
            *v = MASK.to_string();
        }
    }
    if p.project_password.is_some() {
        p.project_password = Some(MASK.to_string());
    }
    p
}

/// The project as `show --format mln` prints it: a plain-text root
/// password becomes its hash (the text still parses back to a project
/// giving the guest the same password), the project password is masked.
fn for_mln_text(project: &mln_lang::model::Project) -> mln_lang::model::Project {
    let mut p = mln_lang::plan::with_hashed_passwords(project);
    if p.project_password.is_some() {
        p.project_password = Some(MASK.to_string());
    }
    p
}

/// `mln parse -f FILE`: the project as written, as MLN's tree (`-`:
/// standard input).
fn parse_tree(out: &Output, file: &std::path::Path) -> u8 {
    let parsed = if file == std::path::Path::new("-") {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            eprintln!("error: standard input: {e}");
            return 1;
        }
        mln_lang::parse_str("<stdin>", &text)
    } else {
        mln_lang::parse_file(file)
    };
    match parsed {
        Ok(parsed) => {
            print!("{}", mln_lang::query::syntax_tree(&parsed.ast).render());
            0
        }
        Err(report) => {
            out.report(&report);
            1
        }
    }
}

/// `mln parse -f FILE [-S PATH | -A PATH | -H PATH]`, answering as MLN
/// 1.0.8 does: a key nobody set is an empty line (`-S`) or nothing (`-A`,
/// `-H`) and success; `-S` on a block that is there prints `1`.
pub fn parse(out: &Output, args: &ParseArgs) -> u8 {
    if args.scalar.is_none() && args.list.is_none() && args.tree.is_none() {
        return parse_tree(out, &args.file);
    }
    let Some(checked) = load_or_report(out, &args.file, &mln_lang::Definitions::new()) else {
        return 1;
    };
    let project = checked.project();
    let result = match (&args.scalar, &args.list, &args.tree) {
        (Some(path), _, _) => match mln_lang::query::query_scalar(project, path) {
            Err(mln_lang::query::QueryError::NotAScalar(_)) => Ok("1".to_string()),
            other => other,
        }
        .map(|v| format!("{v}\n")),
        (None, Some(path), _) => mln_lang::query::query_list(project, path)
            .map(|lines| lines.iter().map(|l| format!("{l}\n")).collect()),
        (None, None, Some(path)) => {
            mln_lang::query::query_tree(project, &checked.resolved.origins, path)
                .map(|t| t.render())
        }
        (None, None, None) => Ok(String::new()),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(mln_lang::query::QueryError::NotFound(_)) => {
            if args.scalar.is_some() {
                println!();
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `mln diff OLD NEW`: the plan of going from OLD, taken as running
/// completely, to NEW. Pure: the planner only.
pub fn diff(out: &Output, args: &DiffArgs) -> u8 {
    let Some(old) = load_or_report(out, &args.old, &mln_lang::Definitions::new()) else {
        return 1;
    };
    let Some(new) = load_or_report(out, &args.new, &mln_lang::Definitions::new()) else {
        return 1;
    };
    let (old, new) = (old.project(), new.project());
    let plan = match plan::diff(&old.into(), &new.into(), &PlanOptions::new(Goal::Upgrade)) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!(
                "error: {} and {}: {e}",
                args.old.display(),
                args.new.display()
            );
            return 1;
        }
    };
    match args.format {
        PlanFormat::Diff => output::print(&plan.render_diff()),
        PlanFormat::Json => output::print(&format!("{}\n", plan.to_json())),
    }
}

/// `mln graph FILE`: the topology as Graphviz DOT or Mermaid.
pub fn graph(out: &Output, args: &GraphArgs) -> u8 {
    let Some(checked) = load_or_report(out, &args.file, &mln_lang::Definitions::new()) else {
        return 1;
    };
    let project = DesiredProject::from_project(checked.project());
    output::print(&match args.format {
        GraphFormat::Dot => mln_lang::graph::to_dot(&project),
        GraphFormat::Mermaid => mln_lang::graph::to_mermaid(&project),
    })
}
