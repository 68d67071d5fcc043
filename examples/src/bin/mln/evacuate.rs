//! `mln evacuate SERVER -p PROJECT`: the project's hosts on SERVER placed
//! on its other servers (as much as each has free memory), then planned
//! and applied like an upgrade. A server that answers has its hosts moved
//! (live where they can be); one that does not is given up for lost: its
//! hosts start where they go from the disks they ran from where that
//! server sees them too (shared storage), else are made afresh from their
//! templates and configuration; what it keeps is removed when it answers
//! again.

use mln_lang::apply::evacuate::{self, Placement};
use mln_lang::apply::{Backends, Session};
use mln_lang::plan::{Goal, PlanOptions};

use crate::cli::{EvacuateArgs, OutcomeFormat};
use crate::lifecycle::{confirm, fail, finish, show_before_applying, Prepared};
use crate::output::Output;
use crate::progress::Lines;

/// Run `mln evacuate`.
pub fn evacuate(out: &Output, args: &EvacuateArgs) -> u8 {
    let mut prepared = match Prepared::new(out, Goal::Upgrade, &args.target, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let server = args.server.as_str();
    // Hosts go to servers the project already spans (its switches reach
    // there); another server needs a host of the project file first.
    let known: Vec<&str> = prepared.backends.servers().collect();
    if let Some(other) = args
        .to
        .iter()
        .find(|t| *t != "local" && !known.contains(&t.as_str()))
    {
        return fail(format!(
            "--to {other}: not a server of project {}; evacuate places hosts on the \
             project's own servers (or `local`): give {other} a host in the project file \
             and upgrade first",
            prepared.name
        ));
    }
    let unreachable = prepared.backends.connect_all();
    let lost = unreachable.get(server).cloned();
    match &lost {
        Some(why) => {
            eprintln!("{server} does not answer ({why}): its hosts start elsewhere");
            prepared.backends.give_up(server);
        }
        None => eprintln!("{server} answers: its hosts move as in an upgrade"),
    }
    let mut session = match Session::open(
        prepared.store.clone(),
        &prepared.backends,
        prepared.options.wait_for_lock,
    ) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    session.memory = Some(&prepared.backends);
    let desired = match session.desired(None) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let named: Vec<Option<String>> = args
        .to
        .iter()
        .map(|t| (t != "local").then(|| t.clone()))
        .collect();
    let candidates: Vec<Option<String>> = evacuate::candidates(&desired, server, &named)
        .into_iter()
        .filter(|c| c.as_ref().map_or(true, |c| !unreachable.contains_key(c)))
        .collect();
    let room = evacuate::room(&prepared.backends, &candidates);
    let evacuation = match evacuate::place(&desired, server, &room) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let options = PlanOptions::new(Goal::Upgrade).lost(lost.as_ref().map(|_| server.to_string()));
    let plan = match session.plan(&evacuation.desired, &options) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    show_before_applying(&plan, args.target.format);
    for p in &evacuation.placements {
        let fate = match lost {
            None => Fate::Moves,
            Some(_) => {
                let old = session.recorded().and_then(|st| st.hosts.get(&p.host));
                let new = evacuation.desired.hosts.get(&p.host);
                let shared = match (old, new) {
                    (Some(old), Some(new)) => prepared
                        .backends
                        .sees_disks_of(&prepared.name, &old.spec, new)
                        .unwrap_or_else(|e| {
                            log::warn!("{}: whether its disks are shared is unknown: {e}", p.host);
                            false
                        }),
                    _ => false,
                };
                if shared {
                    Fate::StartsFromSharedDisks
                } else {
                    Fate::MadeAfresh
                }
            }
        };
        match args.target.format {
            OutcomeFormat::Text => println!("  {}", placement_line(p, fate)),
            OutcomeFormat::Json => eprintln!("  {}", placement_line(p, fate)),
        }
    }
    if args.target.dry_run {
        return 0;
    }
    if !(args.yes || args.target.no_questions) {
        match confirm(&prepared.name) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("Not applied.");
                return 1;
            }
            Err(message) => return fail(message),
        }
    }
    let progress = Lines::new(out);
    match session.apply(
        &plan,
        &evacuation.desired,
        None,
        prepared.options.parallelism,
        &progress,
    ) {
        Ok(report) => {
            drop(progress);
            let code = finish(
                &prepared.name,
                Goal::Upgrade.as_str(),
                &report,
                args.target.format,
            );
            if code == 0 && lost.is_some() && args.target.format == OutcomeFormat::Text {
                println!(
                    "{}: what {server} keeps of its hosts is removed when it answers again \
                     (any mln run of the project does it); the project file still places \
                     them on {server}: edit it, or `mln upgrade` moves them back",
                    prepared.name
                );
            }
            code
        }
        Err(e) => fail(e),
    }
}

/// What an evacuation does to one host.
#[derive(Clone, Copy)]
enum Fate {
    /// Its server answers: it moves as in an upgrade.
    Moves,
    /// Its server is lost and the new one sees its disk files.
    StartsFromSharedDisks,
    /// Its server is lost with its disks.
    MadeAfresh,
}

/// One line per host: where it goes and what it loses.
fn placement_line(p: &Placement, fate: Fate) -> String {
    let to = p.to.as_deref().unwrap_or("this machine");
    match fate {
        Fate::Moves => format!("{}: {} → {to}", p.host, p.from),
        Fate::StartsFromSharedDisks => format!(
            "{}: {} → {to}, started from the disks it ran from, which {to} sees too \
             (shared storage): make sure {} is really down, as two machines writing one \
             disk ruin it",
            p.host, p.from, p.from
        ),
        Fate::MadeAfresh => format!(
            "{}: {} → {to}, made afresh from its template and configuration: \
             what changed inside it on {} since it was built is lost",
            p.host, p.from, p.from
        ),
    }
}
