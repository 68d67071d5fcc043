//! The verbs that change machines: build, up/start, down/stop, upgrade,
//! remove, plus `plan`. Each is one `mln_lang::apply::Run`, except
//! `upgrade`, which shows its plan and asks before applying that same plan
//! under one lock (`mln_lang::apply::Session`).

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use mln_core::template::Template;
use mln_lang::agent::ServerAccess;
use mln_lang::apply::{
    self, ApplyReport, ClusterBackends, LocalBackends, Run, RunOptions, Session,
};
use mln_lang::model::Project;
use mln_lang::plan::{DesiredProject, Goal, PlanOptions};
use mln_lang::state::StateStore;

use crate::backend::Machine;
use crate::cli::{LifecycleArgs, OutcomeFormat, UpgradeArgs};
use crate::config::{apply_defaults, resolve_path};
use crate::output::Output;
use crate::progress::Lines;
use mln_lang::site::SiteConfig;

/// Where projects and templates live: as the user chose (flag or
/// environment), else as the site settings say (`projects`, `templates`),
/// else by default; each with where it came from.
pub struct Places {
    pub state_root: PathBuf,
    pub state_root_source: String,
    pub template_dir: PathBuf,
    pub template_dir_source: String,
    /// The site settings read.
    pub site: SiteConfig,
}

impl Places {
    pub fn new(state_dir: Option<&Path>, template_dir: Option<&Path>) -> Result<Self, String> {
        let site = SiteConfig::load();
        let (state_root, state_root_source) = resolve_path(
            state_dir.map(Path::to_path_buf),
            "--state-dir or MLN_STATE_DIR",
            &site,
            "projects",
            || StateStore::default_root().map_err(|e| e.to_string()),
        )?;
        let given = template_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("MLN_TEMPLATE_DIR").map(PathBuf::from));
        let (template_dir, template_dir_source) = resolve_path(
            given,
            "--template-dir or MLN_TEMPLATE_DIR",
            &site,
            "templates",
            || Ok(state_root.join("templates")),
        )?;
        Ok(Places {
            state_root,
            state_root_source,
            template_dir,
            template_dir_source,
            site,
        })
    }

    /// The store of a project that has a recorded state; never creates one.
    pub fn recorded(&self, name: &str) -> Result<StateStore, String> {
        let known = StateStore::list(&self.state_root).map_err(|e| e.to_string())?;
        let folder = self.state_root.join(name);
        if !known.iter().any(|k| k == name)
            && std::fs::read_dir(&folder).is_err()
            && folder.is_dir()
        {
            let whose = crate::owner::owner_of(&folder)
                .ok()
                .flatten()
                .map_or_else(|| "someone else".to_string(), |u| u.name);
            return Err(format!(
                "project {name} belongs to {whose}: only they (and root) can work on it"
            ));
        }
        if !known.iter().any(|k| k == name) {
            return Err(format!(
                "project {name}: nothing recorded under {}",
                self.state_root.display()
            ));
        }
        StateStore::open(&self.state_root, name).map_err(|e| e.to_string())
    }
}

/// This machine's backends for the project kept in `dir`, with the
/// templates in `places`: every regular file by its file name, plus the
/// busybox default (built there on first use).
/// Without `templates` (planning only), no template is built or named.
pub fn local_backends(
    dir: &Path,
    places: &Places,
    machine: Machine,
    templates: bool,
    uml_kernel: Option<&Path>,
) -> Result<LocalBackends, String> {
    let mut backends = LocalBackends::new(dir).map_err(|e| e.to_string())?;
    if let Some(kernel) = uml_kernel {
        backends = backends.with_uml_kernel(kernel);
    }
    if !templates {
        return Ok(machine.attach(backends));
    }
    let default = default_template(&places.template_dir)?;
    let mut backends = backends.with_default_template(default);
    for (name, template) in folder_templates(&places.template_dir) {
        backends = backends.with_template(name, template);
    }
    Ok(machine.attach(backends))
}

/// `path` as [`Template::inspect`] reads it. One it cannot read stays a
/// template, without a boot marker, and `mln` says what that costs.
fn inspected(path: &Path) -> Template {
    Template::inspect(path).unwrap_or_else(|e| {
        log::warn!(
            "{e}; its guests count as booted once they answer, and `mln exec` cannot reach them"
        );
        Template::image(path, mln_core::template::ROOT_CMDLINE)
    })
}

/// The templates in `dir`: every regular file (or link to one) by its
/// file name, each as the image says it boots (`Template::inspect`: the
/// boot marker of MLN's templates and imports); also by its name without
/// the extension (`debian-12` for `debian-12.ext4`) where no other file
/// has that stem. Hidden files (a build or import under way) are not
/// templates.
fn folder_templates(dir: &Path) -> Vec<(String, Template)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with('.') && path.is_file() {
            found.push((name.to_string(), inspected(&path)));
        }
    }
    let stems: Vec<(String, Template)> = found
        .iter()
        .filter_map(|(name, t)| {
            let (stem, _) = name.rsplit_once('.')?;
            let unique = found
                .iter()
                .filter(|(n, _)| n == stem || n.rsplit_once('.').is_some_and(|(s, _)| s == stem))
                .count()
                == 1;
            (unique && !stem.is_empty()).then(|| (stem.to_string(), t.clone()))
        })
        .collect();
    found.extend(stems);
    found
}

fn default_template(dir: &Path) -> Result<Template, String> {
    Template::default_in(dir).map_err(|e| format!("default template: {e}"))
}

/// The project a lifecycle verb works on: from a file, or recorded by name.
fn target(args: &LifecycleArgs, out: &Output) -> Result<(String, Option<mln_lang::Checked>), u8> {
    let mut definitions = crate::config::definitions(&args.defines)?.and(&args.extra);
    if let Some(name) = &args.name {
        definitions = definitions.and(&mln_lang::Definitions::new().project(name));
    }
    match (&args.file, &args.project) {
        (Some(file), _) => match mln_lang::load_with(file, &definitions) {
            Ok(checked) => {
                if !checked.warnings.is_empty() {
                    out.report(&mln_lang::Report {
                        sources: checked.sources.clone(),
                        diagnostics: checked.warnings.clone(),
                    });
                }
                Ok((checked.project().name.clone(), Some(checked)))
            }
            Err(report) => {
                out.report(&report);
                Err(1)
            }
        },
        (None, Some(name)) => Ok((name.clone(), None)),
        (None, None) => {
            eprintln!("error: name a project file (FILE or -f FILE) or a project (-p NAME)");
            Err(2)
        }
    }
}

/// Root's login on every host from the environment: `MLN_ROOT_PASSWORD`
/// (and `MLN_ROOT_SSH_KEY`, a public key), over the file's `root_passwd`.
/// How `mln class` hands a student's password to their own `mln` without
/// putting it on a command line.
fn login_from_env() -> Option<mln_lang::class::Login> {
    let password = std::env::var("MLN_ROOT_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())?;
    Some(mln_lang::class::Login {
        password,
        ssh_key: std::env::var("MLN_ROOT_SSH_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
    })
}

/// The absolute folder of the project file `file` (`-` is standard
/// input: the current folder), where hook blocks run.
fn project_folder(file: &Path) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    if file == Path::new("-") {
        return Some(cwd);
    }
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
    Some(parent.map_or(cwd.clone(), |p| cwd.join(p)))
}

/// Everything a lifecycle verb needs, ready to run.
pub(crate) struct Prepared {
    pub(crate) name: String,
    pub(crate) store: StateStore,
    pub(crate) backends: ClusterBackends,
    /// The project from the file, its hosts on the backends they run on.
    pub(crate) project: Option<Project>,
    /// The project as last applied, re-placed by `--backend`.
    recorded: Option<DesiredProject>,
    pub(crate) options: RunOptions,
    /// The project file's folder, where its hook blocks run.
    pub(crate) hook_dir: Option<PathBuf>,
    /// The plugins the verb calls.
    pub(crate) plugins: mln_lang::plugin::Plugins,
}

impl Prepared {
    /// `templates`: whether the run may need them (not for planning).
    pub(crate) fn new(
        out: &Output,
        goal: Goal,
        args: &LifecycleArgs,
        templates: bool,
    ) -> Result<Self, u8> {
        let (name, checked) = target(args, out)?;
        let plugins = crate::plugins::plugins(&args.run.plugins).map_err(fail)?;
        let machine = Machine::detect();
        let places = Places::new(
            args.run.state_dir.as_deref(),
            args.run.template_dir.as_deref(),
        )
        .map_err(fail)?;
        // A project that names its owner is theirs; root on a user's
        // project works as that user (see `owner`).
        let folder = places.state_root.join(&name);
        let ownership = checked
            .as_ref()
            .and_then(|c| mln_lang::plan::Ownership::of(c.project()));
        // (Planning changes nothing: no folder is made or given.)
        if let Some(ownership) = ownership.as_ref().filter(|_| templates) {
            crate::owner::claim(&places.state_root, &folder, &name, ownership).map_err(fail)?;
            if crate::owner::is_root() {
                // Built by root, read by the owner's mln (as `mln class` does).
                mln_core::template::Template::default_in(&places.template_dir)
                    .map_err(|e| fail(format!("default template: {e}")))?;
            }
        }
        let removing = goal == Goal::Remove && args.hosts.is_empty() && !args.dry_run;
        crate::owner::hand_over(&folder, removing).map_err(fail)?;
        let mut project = checked.map(|c| c.project().clone());
        let hook_dir = args.file.as_deref().and_then(project_folder);
        if let Some(p) = &mut project {
            apply_defaults(p, &places.site).map_err(fail)?;
            if let Some(login) = args.login.clone().or_else(login_from_env) {
                login.apply(p);
            }
            // What stops or removes needs no `files` source.
            if !matches!(goal, Goal::Stop | Goal::Remove) {
                let site_files = places.site.path("files");
                let folders = mln_lang::files::FilesFolders {
                    site: site_files.as_deref(),
                    project: hook_dir.as_deref(),
                };
                mln_lang::files::locate_files(p, &folders).map_err(|e| fail(e.to_string()))?;
            }
        }
        let mut recorded = None;
        match &mut project {
            Some(p) => machine.place_project(p, args.backend).map_err(fail)?,
            // `-p NAME`: the project as last applied, which was placed when
            // it was applied; only `--backend` moves it.
            None if args.backend.is_some() => {
                let store = places.recorded(&name).map_err(fail)?;
                let mut desired = store
                    .load()
                    .map_err(|e| fail(e.to_string()))?
                    .and_then(|s| s.desired)
                    .ok_or_else(|| fail(format!("project {name}: nothing recorded")))?;
                machine
                    .place_desired(&mut desired, args.backend)
                    .map_err(fail)?;
                recorded = Some(desired);
            }
            None => {}
        }
        // A project named with `-p` must exist: no empty folder is made
        // for a mistyped name.
        let store = match project {
            Some(_) => StateStore::open(&places.state_root, &name).map_err(|e| e.to_string()),
            None => places.recorded(&name),
        }
        .map_err(fail)?;
        let templates = templates && !args.dry_run;
        let local = local_backends(
            store.dir(),
            &places,
            machine,
            templates,
            // The flag, else MLN_UML_KERNEL (which the backends read), else
            // the site's default_kernel.
            args.run
                .uml_kernel
                .clone()
                .or_else(|| {
                    std::env::var_os(mln_core::uml::KERNEL_ENV)
                        .is_none()
                        .then(|| places.site.path("default_kernel"))
                        .flatten()
                })
                .as_deref(),
        )
        .map_err(fail)?;
        let state = store.load().map_err(|e| fail(e.to_string()))?;
        let desired = project
            .as_ref()
            .map(DesiredProject::from_project)
            .or_else(|| recorded.clone())
            .or_else(|| state.as_ref().and_then(|s| s.desired.clone()));
        let backends = ClusterBackends::new(&name, local, ServerAccess::from_env())
            .with_servers(desired.as_ref(), state.as_ref());
        let mut options = RunOptions::new(goal);
        options.dry_run = args.dry_run;
        options.wait_for_lock = args.wait;
        if args.force {
            options.stop_timeout = std::time::Duration::ZERO;
        }
        if let Some(j) = args.jobs {
            options.parallelism = j.max(1);
        }
        options.boot_timeout = std::time::Duration::from_secs(args.run.boot_timeout);
        options.hook_timeout = std::time::Duration::from_secs(args.run.hook_timeout);
        if !args.hosts.is_empty() {
            options.hosts = Some(args.hosts.iter().cloned().collect::<BTreeSet<_>>());
        }
        Ok(Prepared {
            name,
            store,
            backends,
            project,
            recorded,
            options,
            hook_dir,
            plugins,
        })
    }

    /// Lock, observe, plan and (unless a dry run) apply; an error is
    /// printed.
    pub(crate) fn run(self, out: &Output, quiet: bool) -> Result<apply::Outcome, u8> {
        self.apply(out, quiet).map_err(fail)
    }

    /// As [`Prepared::run`], the error returned rather than printed.
    pub(crate) fn apply(self, out: &Output, quiet: bool) -> Result<apply::Outcome, String> {
        let progress = Lines::new(out);
        let silent = apply::NoProgress;
        let shown: &dyn apply::Progress = if quiet { &silent } else { &progress };
        let mut run = Run::new(self.store, &self.backends, self.options)
            .free_memory(&self.backends)
            .plugins(&self.plugins)
            .progress(shown);
        run = match (&self.project, &self.recorded) {
            (Some(p), _) => run.project(p),
            (None, Some(desired)) => run.desired(desired, None),
            (None, None) => run,
        };
        run.hooks_in(self.hook_dir.as_deref())
            .run()
            .map_err(|e| e.to_string())
    }
}

/// Run one lifecycle verb (on every recorded project with `-a`).
pub fn run(out: &Output, goal: Goal, args: &LifecycleArgs) -> u8 {
    if args.all {
        return run_all(out, goal, args);
    }
    let prepared = match Prepared::new(out, goal, args, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let name = prepared.name.clone();
    // The whole project going down takes its forwarded ports with it.
    if matches!(goal, Goal::Stop | Goal::Remove) && !args.dry_run && args.hosts.is_empty() {
        match crate::forward::stop_in(prepared.store.dir(), None) {
            Ok(0) => {}
            Ok(n) => eprintln!("{name}: {n} forwarded port(s) ended"),
            Err(e) => return fail(e),
        }
    }
    let outcome = match prepared.run(out, args.quiet) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if args.dry_run || args.verbose_plan {
        print_plan(&outcome.plan, args.format);
    }
    match outcome.report {
        Some(report) => finish(&name, goal.as_str(), &report, args.format),
        None => 0,
    }
}

/// `mln reset PROJECT [HOST...]`: the hosts made afresh from their
/// templates and the project as last applied, each keeping its run state.
pub fn reset(out: &Output, args: &crate::cli::ResetArgs) -> u8 {
    let lifecycle = args.lifecycle();
    let mut prepared = match Prepared::new(out, Goal::Upgrade, &lifecycle, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(hosts) = &prepared.options.hosts {
        let known = prepared
            .store
            .load()
            .ok()
            .flatten()
            .and_then(|s| s.desired)
            .map(|d| d.hosts.into_keys().collect::<BTreeSet<_>>())
            .unwrap_or_default();
        if let Some(unknown) = hosts.iter().find(|h| !known.contains(*h)) {
            return fail(format!("project {}: no host {unknown}", prepared.name));
        }
    }
    prepared.options.fresh = true;
    let name = prepared.name.clone();
    let outcome = match prepared.run(out, false) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if args.dry_run {
        print_plan(&outcome.plan, args.format);
        return 0;
    }
    match outcome.report {
        Some(report) => finish(&name, "reset", &report, args.format),
        None => 0,
    }
}

/// MLN's `-a`: the verb on every recorded project, one after another;
/// exit status 1 when any failed.
fn run_all(out: &Output, goal: Goal, args: &LifecycleArgs) -> u8 {
    let places = match Places::new(
        args.run.state_dir.as_deref(),
        args.run.template_dir.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let names = match StateStore::list(&places.state_root) {
        Ok(n) => n,
        Err(e) => return fail(e.to_string()),
    };
    let mut code = 0;
    for name in names {
        let one = args.for_project(&name);
        code = code.max(run(out, goal, &one));
    }
    code
}

/// Say what a run did, as `format` asks (each failure also on stderr);
/// its exit code.
pub(crate) fn finish(name: &str, verb: &str, report: &ApplyReport, format: OutcomeFormat) -> u8 {
    for (n, f) in report.failed.iter().enumerate() {
        let line = failure_line(&f.description, &f.error);
        let summary = summary_line(&line);
        if n < CONSOLES_SHOWN || summary.len() == line.len() {
            eprintln!("error: {line}");
        } else {
            // Fifty guests that crashed alike need not print fifty consoles.
            eprintln!("error: {summary} (`mln log -p {name} HOST` shows its console)");
        }
    }
    if !report.not_run.is_empty() {
        eprintln!(
            "{} action(s) not run because an action they wait for failed",
            report.not_run.len()
        );
    }
    let c = report.concurrency;
    if c.servers > 1 {
        // Over many servers, how much went on at once (the seed's figures).
        eprintln!(
            "{name}: at most {} action(s) at once over {} server(s), {} on one; {} guest(s) \
             booting at once",
            c.actions, c.servers, c.on_one_server, c.guests_booting
        );
    }
    match format {
        OutcomeFormat::Text if report.is_success() => {
            println!("{name}: {verb} ({} action(s) done)", report.done.len());
        }
        OutcomeFormat::Text => {}
        OutcomeFormat::Json => println!(
            "{}",
            outcome_json(
                name,
                verb,
                &report.failed,
                report.done.len(),
                report.not_run.len()
            )
        ),
    }
    if report.is_success() {
        0
    } else {
        1
    }
}

/// A run's outcome for `--format json`: `done` actions finished, those
/// `failed`, `not_run` left out because of them.
fn outcome_json(
    name: &str,
    verb: &str,
    failed: &[mln_lang::apply::Failure],
    done: usize,
    not_run: usize,
) -> serde_json::Value {
    let failed: Vec<serde_json::Value> = failed
        .iter()
        .map(|f| serde_json::json!({"action": f.description, "error": f.error}))
        .collect();
    serde_json::json!({
        "project": name,
        "verb": verb,
        "ok": failed.is_empty() && not_run == 0,
        "done": done,
        "failed": failed,
        "not_run": not_run,
    })
}

/// A plan about to be applied: its diff on stdout, or with `--format
/// json` on stderr (stdout keeps the outcome's one object).
pub(crate) fn show_before_applying(plan: &mln_lang::plan::Plan, format: OutcomeFormat) {
    match format {
        OutcomeFormat::Text => print!("{}", plan.render_diff()),
        OutcomeFormat::Json => eprint!("{}", plan.render_diff()),
    }
}

/// A plan as `format` asks: its diff, or its JSON.
pub(crate) fn print_plan(plan: &mln_lang::plan::Plan, format: OutcomeFormat) {
    match format {
        OutcomeFormat::Text => print!("{}", plan.render_diff()),
        OutcomeFormat::Json => println!("{}", plan.to_json()),
    }
}

/// `mln upgrade FILE`: plan against the running project, show the plan,
/// ask (unless `--yes`), and apply exactly that plan, holding the
/// project's lock throughout so nothing changes in between.
pub fn upgrade(out: &Output, args: &UpgradeArgs) -> u8 {
    let target = &args.target;
    if target.file.is_none() {
        eprintln!("error: upgrade needs the changed project file (FILE or -f FILE)");
        return 2;
    }
    let prepared = match Prepared::new(out, Goal::Upgrade, target, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if target.dry_run {
        return match prepared.run(out, target.quiet) {
            Ok(outcome) => {
                print_plan(&outcome.plan, target.format);
                0
            }
            Err(code) => code,
        };
    }
    let Some(project) = &prepared.project else {
        return 2;
    };
    let mut desired = DesiredProject::from_project(project);
    desired.hook_dir = prepared.hook_dir.clone();
    match prepared.plugins.prepare(project, &mut desired) {
        Ok(notes) => notes.iter().for_each(|n| eprintln!("warning: {n}")),
        Err(e) => return fail(e),
    }
    let model = serde_json::to_value(project).ok();
    let mut session = match Session::open(
        prepared.store,
        &prepared.backends,
        prepared.options.wait_for_lock,
    ) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    session.memory = Some(&prepared.backends);
    let plan = match session.plan(
        &desired,
        &PlanOptions {
            hosts: prepared.options.hosts.clone(),
            ..PlanOptions::new(Goal::Upgrade)
        },
    ) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    show_before_applying(&plan, target.format);
    if plan.is_empty() {
        match target.format {
            OutcomeFormat::Text => println!("{}: nothing to change", prepared.name),
            OutcomeFormat::Json => println!(
                "{}",
                outcome_json(&prepared.name, Goal::Upgrade.as_str(), &[], 0, 0)
            ),
        }
        return 0;
    }
    if !(args.yes || target.no_questions) {
        match confirm(&prepared.name) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("Not applied.");
                return 1;
            }
            Err(message) => {
                eprintln!("error: {message}");
                return 1;
            }
        }
    }
    let progress = Lines::new(out);
    match session.apply(
        &plan,
        &desired,
        model,
        prepared.options.parallelism,
        &progress,
    ) {
        Ok(report) => {
            drop(progress);
            let code = finish(
                &prepared.name,
                Goal::Upgrade.as_str(),
                &report,
                target.format,
            );
            if code != 0 {
                return code;
            }
            match prepared.plugins.built(project) {
                Ok(notes) => notes.iter().for_each(|n| eprintln!("warning: {n}")),
                Err(e) => return fail(e),
            }
            0
        }
        Err(e) => fail(e.to_string()),
    }
}

/// Ask on the terminal whether to apply; `Err` when there is no terminal
/// to ask on.
pub(crate) fn confirm(project: &str) -> Result<bool, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!(
            "not applying the plan to {project}: stdin is not a terminal to ask on; \
             add --yes to apply it without asking"
        ));
    }
    eprint!("Apply this plan to project {project}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `mln plan FILE`: what `upgrade` would do, as a diff or JSON.
pub fn plan(out: &Output, args: &LifecycleArgs) -> u8 {
    if args.file.is_none() {
        eprintln!("error: plan needs the project file (FILE or -f FILE)");
        return 2;
    }
    let mut prepared = match Prepared::new(out, Goal::Upgrade, args, false) {
        Ok(p) => p,
        Err(code) => return code,
    };
    prepared.options.dry_run = true;
    let outcome = match prepared.run(out, true) {
        Ok(o) => o,
        Err(code) => return code,
    };
    print_plan(&outcome.plan, args.format);
    0
}

/// Print `message` as an error; exit code 1.
pub fn fail(message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    1
}

/// A failed action in one line: its error, which names the action itself
/// for most failures, else `ACTION: ERROR`.
/// How many failures `finish` shows with the console excerpt their error
/// carries; the rest, one line each.
const CONSOLES_SHOWN: usize = 3;

/// The first line of a failure: what failed and why, without the console
/// lines that follow it.
pub fn summary_line(line: &str) -> &str {
    let first = line.lines().next().unwrap_or(line);
    first.strip_suffix("; its console ends:").unwrap_or(first)
}

pub fn failure_line(description: &str, error: &str) -> String {
    if error.starts_with(description) {
        error.to_string()
    } else {
        format!("{description}: {error}")
    }
}
