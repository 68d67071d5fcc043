//! `mln clean [-n]`: what crashed runs left on this machine
//! (`mln_lang::apply::clean`), listed and removed.

use std::path::Path;

use mln_lang::apply::clean::{clean as sweep_leftovers, CleanPlaces};
use mln_lang::apply::Backends;

use crate::backend::Machine;
use crate::cli::CleanArgs;
use crate::lifecycle::{fail, local_backends, Places};

/// Run `mln clean`.
pub fn clean(args: &CleanArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), args.template_dir.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let where_ = CleanPlaces {
        root: places.state_root.clone(),
        folders: vec![
            places.template_dir.clone(),
            mln_core::uml::kernels_dir(&places.state_root),
        ],
    };
    let backends = |dir: &Path| -> Option<Box<dyn Backends>> {
        local_backends(dir, &places, Machine::detect(), false, None)
            .ok()
            .map(|b| Box::new(b) as Box<dyn Backends>)
    };
    let done = match sweep_leftovers(&where_, args.dry_run, &backends) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for l in &done.leftovers {
        println!("{verb} {}: {}", l.path.display(), l.what);
    }
    for name in &done.busy {
        println!("skipped project {name}: a run holds its lock");
    }
    let ended = if args.dry_run { "would end" } else { "ended" };
    println!(
        "{} leftover(s); {ended} {} process(es)",
        done.leftovers.len(),
        done.processes
    );
    for f in &done.failed {
        eprintln!("error: {f}");
    }
    u8::from(!done.failed.is_empty())
}
