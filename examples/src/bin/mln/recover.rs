//! `mln recover -p PROJECT [-f FILE]`: a project whose state file cannot
//! be read. The file is kept aside (`ROOT/PROJECT.damaged-state-*.json`),
//! what the project still runs on this machine is found from the running
//! processes and Xen domains and ended, and the project is forgotten.
//! Given its project file, its hosts on other servers are removed too: the
//! project is recorded as if it were up and removed as usual.

use std::time::Duration;

use mln_lang::apply::recover::sweep;
use mln_lang::plan::{DesiredProject, Goal};
use mln_lang::state::{State, StateError, StateStore};

use crate::cli::LifecycleArgs;
use crate::lifecycle::{fail, finish, Places, Prepared};
use crate::output::Output;

/// How long what the project runs has to end after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// Run `mln recover`.
pub fn recover(out: &Output, args: &LifecycleArgs) -> u8 {
    let name = match (&args.file, &args.project) {
        (Some(file), _) => match mln_lang::load(file) {
            Ok(c) => c.project().name.clone(),
            Err(report) => {
                out.report(&report);
                return 1;
            }
        },
        (None, Some(name)) => name.clone(),
        (None, None) => {
            eprintln!(
                "error: name the project (-p NAME), and its file (-f FILE) to reach its servers"
            );
            return 2;
        }
    };
    let places = match Places::new(
        args.run.state_dir.as_deref(),
        args.run.template_dir.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let store = match places.recorded(&name) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match store.load() {
        Ok(Some(_)) => {
            return fail(format!(
                "project {name}: its state is readable; `mln remove -p {name}` removes it"
            ))
        }
        Ok(None) => {}
        Err(StateError::Corrupt { .. } | StateError::Version { .. }) => {
            // The damaged file aside, an empty record in its place: the
            // project stays known while what it runs is found and ended.
            let kept = store.lock().and_then(|lock| {
                let kept = store.set_aside(&lock)?;
                store.save(&lock, &State::new(&name))?;
                Ok(kept)
            });
            let kept = match kept {
                Ok(k) => k,
                Err(e) => return fail(e),
            };
            println!(
                "{name}: its damaged state file is kept at {}",
                kept.display()
            );
        }
        Err(e) => return fail(e),
    }
    // This machine's backends, for the sweep (made while the project's
    // folder is still there: a removal through the file deletes it).
    let here = match Prepared::new(out, Goal::Remove, &args.for_project(&name), false) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let mut code = 0;
    if args.file.is_some() {
        code = remove_as_if_up(out, args, &store);
    }
    // Whatever is left here, found from what runs.
    let prepared = here;
    let swept = sweep(&name, store.dir(), &prepared.backends, GRACE);
    println!(
        "{name}: ended {} process(es) and {} Xen domain(s) still running here",
        swept.processes,
        swept.domains.len()
    );
    if !swept.left.is_empty() {
        eprintln!("error: {name}: processes {:?} would not end", swept.left);
        return 1;
    }
    if store.dir().exists() {
        let forget = store.lock().and_then(|lock| store.clone().remove_dir(lock));
        if let Err(e) = forget {
            return fail(e);
        }
    }
    println!("{name}: recovered and forgotten");
    code
}

/// Record the project file's project as if it were up, then remove it as
/// `mln remove` would: every host on every server it names.
fn remove_as_if_up(out: &Output, args: &LifecycleArgs, store: &StateStore) -> u8 {
    let prepared = match Prepared::new(out, Goal::Remove, args, false) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let Some(project) = &prepared.project else {
        return fail("no project file");
    };
    let desired = DesiredProject::from_project(project);
    let recorded = store
        .lock()
        .and_then(|lock| store.save(&lock, &State::as_if_up(&desired)));
    if let Err(e) = recorded {
        return fail(e);
    }
    let name = prepared.name.clone();
    match prepared.run(out, args.quiet) {
        Ok(outcome) => outcome.report.map_or(0, |report| {
            finish(&name, Goal::Remove.as_str(), &report, args.format)
        }),
        Err(code) => code,
    }
}
