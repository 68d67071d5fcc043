//! `mln export -p PROJECT FILE` and `mln import FILE`: a stopped project
//! as one archive file and back (`mln_lang::archive`).

use mln_lang::agent::ServerAccess;
use mln_lang::apply::ClusterBackends;
use mln_lang::archive;

use crate::backend::Machine;
use crate::cli::{ExportArgs, ImportArgs};
use crate::lifecycle::{fail, local_backends, Places};

/// Run `mln export`.
pub fn export(args: &ExportArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let store = match places.recorded(&args.project) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // Reading disks needs no template: none is built or named.
    let local = match local_backends(store.dir(), &places, Machine::detect(), false, None) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let backends = ClusterBackends::new(&args.project, local, ServerAccess::from_env());
    match archive::export(&store, backends, &args.file) {
        Ok(manifest) => {
            let with_disks = manifest.hosts.iter().filter(|h| h.disks).count();
            println!(
                "{}: exported to {} ({} host(s), {with_disks} with disks; templates not included: {})",
                manifest.project,
                args.file.display(),
                manifest.hosts.len(),
                templates(&manifest),
            );
            0
        }
        Err(e) => fail(e),
    }
}

/// The templates the archive's disks need, for the user to carry along.
fn templates(manifest: &archive::ExportManifest) -> String {
    let mut names: Vec<&str> = manifest
        .hosts
        .iter()
        .filter_map(|h| h.template.as_ref().map(|t| t.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "none needed".into()
    } else {
        names.join(", ")
    }
}

/// Run `mln import`.
pub fn import(args: &ImportArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), args.template_dir.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let made = archive::import(
        &args.file,
        &places.state_root,
        &places.template_dir,
        |name, dir| {
            local_backends(dir, &places, Machine::detect(), true, None)
                .map(|local| ClusterBackends::new(name, local, ServerAccess::from_env()))
        },
    );
    match made {
        Ok(imported) => {
            let name = &imported.manifest.project;
            println!(
                "{name}: imported into {} ({} host(s)); `mln up -p {name}` starts it",
                imported.dir.display(),
                imported.manifest.hosts.len()
            );
            0
        }
        Err(e) => fail(e),
    }
}
