//! `mln class VERB FILE --roster CSV`: one copy of a project per student
//! (`PROJECT-STUDENT`, see `mln_lang::class`), worked on a few at a time;
//! run by root, each copy belongs to its student (`owned`).
//! Every copy is loaded and checked before any is touched; a copy that
//! fails is named and the others go on; the exit status is 1 when any
//! failed (for `status`: when any host of any copy is not up).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use mln_lang::class::{Roster, Student};
use mln_lang::plan::Goal;
use mln_lang::state::StateStore;
use serde::Serialize;

use crate::cli::{ClassArgs, ClassVerb, TableFormat};
use crate::lifecycle::{fail, failure_line, Places, Prepared};
use crate::logins::Logins;
use crate::output::Output;
use crate::owner::{self, User};

mod owned;
mod ports;

/// One student's copy.
struct Copy<'a> {
    student: &'a Student,
    project: String,
    definitions: mln_lang::Definitions,
    /// Root's login on its hosts (for the verbs that make them).
    login: Option<mln_lang::class::Login>,
}

/// What happened to one copy.
#[derive(Debug, Serialize)]
struct CopyResult {
    student: String,
    project: String,
    ok: bool,
    /// `up`, `stop`, ..., or `not built` (nothing recorded).
    outcome: String,
    actions: usize,
    seconds: f64,
    /// The port of this machine forwarded to the copy (`--forward-from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `mln class`.
pub fn class(out: &Output, args: &ClassArgs) -> u8 {
    let roster = match Roster::read(&args.roster) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let Some((base, mut copies)) = copies(out, args, &roster) else {
        return 1;
    };
    if matches!(args.verb, ClassVerb::Build | ClassVerb::Up) {
        let path = args
            .logins
            .clone()
            .unwrap_or_else(|| Logins::default_path(&args.roster));
        let logins = match Logins::load_or_make(&path, &roster, &base) {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        for copy in &mut copies {
            copy.login = logins.login(copy.student);
        }
        if args.format == TableFormat::Table {
            println!(
                "logins (root's password on every host of each copy, readable by you only): {}",
                logins.path.display()
            );
        }
    }
    let places = match Places::new(
        args.copy.run.state_dir.as_deref(),
        args.copy.run.template_dir.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let owners = owner::is_root() && !args.no_owners;
    if matches!(args.verb, ClassVerb::Build | ClassVerb::Up) {
        // Built once, before the copies (read by every student's mln).
        if let Err(e) = mln_core::template::Template::default_in(&places.template_dir) {
            return fail(format!("default template: {e}"));
        }
    }
    match args.verb {
        ClassVerb::Status => status(out, args, &places, &copies),
        ClassVerb::Build => apply(out, args, &places, owners, Goal::Build, &copies),
        ClassVerb::Up => apply(out, args, &places, owners, Goal::Up, &copies),
        ClassVerb::Down => apply(out, args, &places, owners, Goal::Stop, &copies),
        ClassVerb::Remove => apply(out, args, &places, owners, Goal::Remove, &copies),
    }
}

/// The project's name in the file and every student's copy, each loaded
/// and checked; `None` (reported) when one is not a valid project.
fn copies<'a>(
    out: &Output,
    args: &ClassArgs,
    roster: &'a Roster,
) -> Option<(String, Vec<Copy<'a>>)> {
    let given = crate::config::definitions(&args.copy.defines).ok()?;
    let base = match mln_lang::load_with(&args.file, &given) {
        Ok(c) => c.project().name.clone(),
        Err(report) => {
            out.report(&report);
            return None;
        }
    };
    let mut all = Vec::new();
    let mut good = true;
    for student in &roster.students {
        let mine = match student.definitions(&base) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {}:{}: {e}", roster.path.display(), student.line);
                good = false;
                continue;
            }
        };
        if let Err(report) = mln_lang::load_with(&args.file, &given.clone().and(&mine)) {
            eprintln!(
                "error: {}'s copy ({}):",
                student.name,
                student.project_name(&base)
            );
            out.report(&report);
            good = false;
            continue;
        }
        all.push(Copy {
            student,
            project: student.project_name(&base),
            definitions: mine,
            login: None,
        });
    }
    good.then_some((base, all))
}

/// Run `goal` on every copy, `--parallel` at a time.
fn apply(
    out: &Output,
    args: &ClassArgs,
    places: &Places,
    owners: bool,
    goal: Goal,
    copies: &[Copy],
) -> u8 {
    let recorded = StateStore::list(&places.state_root).unwrap_or_default();
    let parallel = args
        .parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| 2 * n.get()))
        .clamp(1, copies.len().max(1));
    let table = args.format == TableFormat::Table;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CopyResult>>> = Mutex::new(copies.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(copy) = copies.get(i) else { break };
                let mut result = one_copy(
                    out,
                    args,
                    places,
                    owners,
                    goal,
                    copy,
                    recorded.contains(&copy.project),
                );
                if result.ok && goal == Goal::Up {
                    if let Err(e) = ports::open(args, places, copy, &mut result) {
                        result.ok = false;
                        result.error = Some(e);
                    }
                }
                if table {
                    print_result(&result);
                }
                if let Some(slot) = results.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
                    *slot = Some(result);
                }
            });
        }
    });
    let results: Vec<CopyResult> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.student.as_str())
        .collect();
    if table {
        let ok = results.len() - failed.len();
        println!("class: {} {ok} of {} copies", goal.as_str(), results.len());
        if !failed.is_empty() {
            eprintln!("error: failed for {}", failed.join(", "));
        }
    } else {
        match serde_json::to_string_pretty(&results) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        }
    }
    u8::from(!failed.is_empty())
}

/// Run `goal` on one copy: from the file (build, up) or as recorded
/// (stop, remove: a copy never built has nothing to stop).
fn one_copy(
    out: &Output,
    args: &ClassArgs,
    places: &Places,
    owners: bool,
    goal: Goal,
    copy: &Copy,
    recorded: bool,
) -> CopyResult {
    let started = Instant::now();
    let mut result = CopyResult {
        student: copy.student.name.clone(),
        project: copy.project.clone(),
        ok: false,
        outcome: goal.as_str().to_string(),
        actions: 0,
        seconds: 0.0,
        port: None,
        error: None,
    };
    if matches!(goal, Goal::Stop | Goal::Remove) && !recorded {
        result.ok = true;
        result.outcome = "not built".into();
        if goal == Goal::Remove {
            // A folder given to a student and never used (or emptied by
            // their mln, which cannot remove it): fails unless empty.
            let _ = std::fs::remove_dir(places.state_root.join(&copy.project));
        }
        return result;
    }
    match copy_owner(places, owners, goal, copy) {
        Ok(Some(user)) => return owned::run(args, places, goal, copy, &user, result),
        Ok(None) => {}
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    }
    let lifecycle = match goal {
        Goal::Stop | Goal::Remove => {
            args.copy
                .lifecycle(None, Some(&copy.project), mln_lang::Definitions::new())
        }
        _ => {
            let mut lifecycle =
                args.copy
                    .lifecycle(Some(&args.file), None, copy.definitions.clone());
            lifecycle.login.clone_from(&copy.login);
            lifecycle
        }
    };
    let outcome = match Prepared::new(out, goal, &lifecycle, true) {
        Ok(prepared) => prepared.apply(out, true),
        Err(_) => Err("could not be prepared (see the error above)".into()),
    };
    result.seconds = started.elapsed().as_secs_f64();
    match outcome {
        Err(e) => result.error = Some(e),
        Ok(outcome) => match outcome.report {
            None => result.ok = true,
            Some(report) => {
                result.actions = report.done.len();
                result.ok = report.is_success();
                result.error = report
                    .failed
                    .first()
                    .map(|f| failure_line(&f.description, &f.error))
                    .or_else(|| {
                        (!report.not_run.is_empty())
                            .then(|| format!("{} action(s) not run", report.not_run.len()))
                    });
            }
        },
    }
    result
}

/// Whose the copy is, when its verb must run as that user: a copy
/// already given to a user always is (root's `mln` would hand the work
/// over and leave the class); a new one is its student's when `owners`.
fn copy_owner(
    places: &Places,
    owners: bool,
    goal: Goal,
    copy: &Copy,
) -> Result<Option<User>, String> {
    if !owner::is_root() {
        return Ok(None);
    }
    if let Some(user) = owner::owner_of(&places.state_root.join(&copy.project))? {
        return Ok(Some(user));
    }
    if !(owners && matches!(goal, Goal::Build | Goal::Up)) {
        return Ok(None);
    }
    User::lookup(&copy.student.name).map(Some).map_err(|e| {
        format!(
            "{e}: create it (useradd {}) or keep the copies root's (--no-owners)",
            copy.student.name
        )
    })
}

fn print_result(r: &CopyResult) {
    match &r.error {
        None => println!(
            "{}: {} ({} action(s) done, {:.1} s){}",
            r.project,
            r.outcome,
            r.actions,
            r.seconds,
            r.port.map(|p| format!(", port {p}")).unwrap_or_default()
        ),
        Some(e) => eprintln!("{}: FAILED after {:.1} s: {e}", r.project, r.seconds),
    }
}

/// One line per copy: its hosts up of all; exit status 1 unless every
/// host of every copy is up.
fn status(out: &Output, args: &ClassArgs, places: &Places, copies: &[Copy]) -> u8 {
    let recorded = StateStore::list(&places.state_root).unwrap_or_default();
    let names: Vec<String> = copies
        .iter()
        .filter(|c| recorded.contains(&c.project))
        .map(|c| c.project.clone())
        .collect();
    let (found, mut code) = crate::status::statuses(places, names);
    let mut rows = Vec::new();
    for copy in copies {
        let status = found.iter().find(|s| s.project == copy.project);
        let (up, hosts) = status.map_or((0, 0), |s| {
            (s.hosts.iter().filter(|h| h.is_up()).count(), s.hosts.len())
        });
        let state = match status {
            None => "not built",
            Some(_) if hosts > 0 && up == hosts => "up",
            Some(_) if up == 0 => "down",
            Some(_) => "partly up",
        };
        if state != "up" {
            code = 1;
        }
        rows.push(serde_json::json!({
            "student": copy.student.name,
            "project": copy.project,
            "state": state,
            "hosts_up": up,
            "hosts": hosts,
            "status": status,
        }));
        if args.format == TableFormat::Table {
            println!(
                "{:<24} {:<16} {} {up}/{hosts} hosts up",
                copy.project,
                copy.student.name,
                out.state(state, 10)
            );
        }
    }
    if args.format == TableFormat::Json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        }
    }
    code
}
