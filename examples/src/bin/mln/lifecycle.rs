//! The verbs that change machines: build, start, stop, upgrade, remove,
//! plus `status` and `plan`. Each is one call of `mln_lang::apply::run`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mln_core::template::{BusyboxSource, BusyboxTemplate, Template};
use mln_lang::apply::{self, LocalBackends, RunOptions};
use mln_lang::plan::Goal;
use mln_lang::state::StateStore;

use crate::cli::{LifecycleArgs, PlanFormat, StatusArgs};
use crate::output::Output;
use crate::progress::Lines;

/// Where projects and templates live, as the user chose or by default.
struct Places {
    state_root: PathBuf,
    template_dir: PathBuf,
}

impl Places {
    fn new(state_dir: Option<&Path>, template_dir: Option<&Path>) -> Result<Self, String> {
        let state_root = match state_dir {
            Some(d) => d.to_path_buf(),
            None => StateStore::default_root().map_err(|e| e.to_string())?,
        };
        let template_dir = template_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("MLN_TEMPLATE_DIR").map(PathBuf::from))
            .unwrap_or_else(|| state_root.join("templates"));
        Ok(Places {
            state_root,
            template_dir,
        })
    }
}

/// The templates in `dir`: every regular file by its file name, plus the
/// busybox default (built there on first use).
fn backends_for(store: &StateStore, places: &Places) -> Result<LocalBackends, String> {
    let default = default_template(&places.template_dir)?;
    let mut backends = LocalBackends::new(store.dir())
        .map_err(|e| e.to_string())?
        .with_default_template(default);
    if let Ok(entries) = std::fs::read_dir(&places.template_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if path.is_file() {
                backends = backends.with_template(
                    name.to_string(),
                    Template {
                        image: path.clone(),
                        cmdline: "root=/dev/ubda rw".to_string(),
                    },
                );
            }
        }
    }
    Ok(attach_xen(backends))
}

#[cfg(feature = "xen")]
fn attach_xen(backends: LocalBackends) -> LocalBackends {
    match mln_core::xen::XenHypervisor::connect() {
        Ok(xen) => backends.with_xen(Box::new(xen)),
        Err(e) => {
            log::info!("Xen guests cannot run here: {e}");
            backends
        }
    }
}

#[cfg(not(feature = "xen"))]
fn attach_xen(backends: LocalBackends) -> LocalBackends {
    backends
}

fn default_template(dir: &Path) -> Result<Template, String> {
    let scratch = dir.join("download");
    let source = BusyboxSource::find(&scratch).map_err(|e| format!("default template: {e}"))?;
    BusyboxTemplate::new(source)
        .build(dir)
        .map_err(|e| format!("default template: {e}"))
}

/// The project a lifecycle verb works on: from a file, or recorded by name.
fn target(args: &LifecycleArgs, out: &Output) -> Result<(String, Option<mln_lang::Checked>), u8> {
    match (&args.file, &args.project) {
        (Some(file), _) => match mln_lang::load(file) {
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

/// Run one lifecycle verb.
pub fn run(out: &Output, goal: Goal, args: &LifecycleArgs) -> u8 {
    let (name, checked) = match target(args, out) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if goal == Goal::Upgrade && checked.is_none() {
        eprintln!("error: upgrade needs the changed project file (FILE or -f FILE)");
        return 2;
    }
    let places = match Places::new(args.state_dir.as_deref(), args.template_dir.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let store = match StateStore::open(&places.state_root, &name) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let backends = match backends_for(&store, &places) {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let mut options = RunOptions::new(goal);
    options.dry_run = args.dry_run;
    options.wait_for_lock = args.wait;
    if let Some(j) = args.jobs {
        options.parallelism = j.max(1);
    }
    if !args.hosts.is_empty() {
        options.hosts = Some(args.hosts.iter().cloned().collect::<BTreeSet<_>>());
    }
    let progress = Lines::new(out);
    let outcome = apply::run(
        store,
        &backends,
        checked.as_ref().map(|c| c.project()),
        &options,
        &progress,
    );
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return fail(&e.to_string()),
    };
    if args.dry_run || args.verbose_plan {
        print!("{}", outcome.plan.render_diff());
    }
    let Some(report) = outcome.report else {
        return 0;
    };
    for f in &report.failed {
        eprintln!("error: {}: {}", f.description, f.error);
    }
    if !report.not_run.is_empty() {
        eprintln!(
            "{} action(s) not run because an action they wait for failed",
            report.not_run.len()
        );
    }
    if report.is_success() {
        println!(
            "{name}: {} ({} action(s) done)",
            goal.as_str(),
            report.done.len()
        );
        0
    } else {
        1
    }
}

/// `mln plan FILE`: what `upgrade` would do, as a diff or JSON.
pub fn plan(out: &Output, args: &LifecycleArgs, format: PlanFormat) -> u8 {
    let (name, checked) = match target(args, out) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let Some(checked) = checked else {
        eprintln!("error: plan needs the project file (FILE or -f FILE)");
        return 2;
    };
    let places = match Places::new(args.state_dir.as_deref(), args.template_dir.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let store = match StateStore::open(&places.state_root, &name) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let backends = match LocalBackends::new(store.dir()) {
        Ok(b) => attach_xen(b),
        Err(e) => return fail(&e.to_string()),
    };
    let mut options = RunOptions::new(Goal::Upgrade);
    options.dry_run = true;
    let outcome = match apply::run(
        store,
        &backends,
        Some(checked.project()),
        &options,
        &apply::NoProgress,
    ) {
        Ok(o) => o,
        Err(e) => return fail(&e.to_string()),
    };
    match format {
        PlanFormat::Diff => print!("{}", outcome.plan.render_diff()),
        PlanFormat::Json => println!("{}", outcome.plan.to_json()),
    }
    0
}

/// `mln status -p NAME` (or every recorded project).
pub fn status(args: &StatusArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let names = match &args.project {
        Some(p) => vec![p.clone()],
        None => match StateStore::list(&places.state_root) {
            Ok(n) => n,
            Err(e) => return fail(&e.to_string()),
        },
    };
    let mut all = Vec::new();
    let mut code = 0;
    for name in names {
        let result = StateStore::open(&places.state_root, &name)
            .map_err(|e| e.to_string())
            .and_then(|store| {
                let backends = LocalBackends::new(store.dir()).map_err(|e| e.to_string())?;
                apply::status(&store, &attach_xen(backends)).map_err(|e| e.to_string())
            });
        match result {
            Ok(s) => all.push(s),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                code = 1;
            }
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&all) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&e.to_string()),
        }
        return code;
    }
    for s in &all {
        println!("project {}", s.project);
        println!(
            "  {:<20} {:<10} {:<6} {:>8} {:>5}  {}",
            "HOST", "STATE", "PLAT", "MEMORY", "VCPU", "SERVER"
        );
        for h in &s.hosts {
            println!(
                "  {:<20} {:<10} {:<6} {:>7}M {:>5}  {}",
                h.host,
                h.state,
                format!("{:?}", h.platform).to_lowercase(),
                h.memory >> 20,
                h.vcpus,
                h.service_host.as_deref().unwrap_or("local")
            );
        }
        for sw in &s.switches {
            println!("  switch {:<13} {}", sw.switch, sw.state);
        }
    }
    code
}

fn fail(message: &str) -> u8 {
    eprintln!("error: {message}");
    1
}
