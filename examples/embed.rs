//! Embedding MLN: load and check a project, list its hosts, plan an
//! upgrade between two versions, bring the project up and down.
//!
//!     cargo run -p examples --example embed

use mln_lang::apply::{LocalBackends, Run, RunOptions};
use mln_lang::mln_core::template::Template;
use mln_lang::plan::{self, Goal, PlanOptions};
use mln_lang::state::StateStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = env!("CARGO_MANIFEST_DIR");
    let lab = mln_lang::load(format!("{root}/../projects/lab.mln"))?;
    for host in &lab.project().hosts {
        println!(
            "{}: {} MiB, {}",
            host.name,
            host.memory >> 20,
            host.platform
        );
    }
    let v1 = mln_lang::load(format!("{root}/../projects/upgrade/v1.mln"))?;
    let v2 = mln_lang::load(format!("{root}/../projects/upgrade/v2.mln"))?;
    let upgrade = PlanOptions::new(Goal::Upgrade);
    print!(
        "{}",
        plan::diff(&v1.project().into(), &v2.project().into(), &upgrade)?.render_diff()
    );

    let state = std::env::temp_dir().join(format!("mln-embed-{}", std::process::id()));
    let store = StateStore::open(&state, &lab.project().name)?;
    let backends = LocalBackends::new(store.dir())?
        .with_default_template(Template::default_in(state.join("templates"))?);
    let up = Run::new(store.clone(), &backends, RunOptions::new(Goal::Up)).project(lab.project());
    let report = up.run()?.report.ok_or("not applied")?;
    println!(
        "up: {} actions done, {} failed",
        report.done.len(),
        report.failed.len()
    );
    let down = Run::new(store, &backends, RunOptions::new(Goal::Remove)).run()?;
    let _ = std::fs::remove_dir_all(&state);
    match (
        report.is_success(),
        down.report.is_some_and(|r| r.is_success()),
    ) {
        (true, true) => Ok(()),
        _ => Err(format!("failed: {:?}", report.failed).into()),
    }
}
