//! `mln status` and `mln list`: what recorded projects look like now.

use mln_lang::agent::ServerAccess;
use mln_lang::apply::{self, ClusterBackends, LocalBackends, ProjectStatus};
use mln_lang::state::StateStore;

use crate::backend::Machine;
use crate::cli::{ListArgs, StatusArgs, TableFormat};
use crate::lifecycle::{fail, Places};
use crate::output::Output;

/// The status of each project in `names` (errors on stderr); exit code 1
/// when one could not be read.
fn statuses(places: &Places, names: Vec<String>) -> (Vec<ProjectStatus>, u8) {
    let mut all = Vec::new();
    let mut code = 0;
    for name in names {
        let result = places.recorded(&name).and_then(|store| {
            let local = LocalBackends::new(store.dir()).map_err(|e| e.to_string())?;
            let local = Machine::detect().attach(local);
            let state = store.load().map_err(|e| e.to_string())?;
            let backends = ClusterBackends::new(&name, local, ServerAccess::from_env())
                .with_servers(
                    state.as_ref().and_then(|s| s.desired.as_ref()),
                    state.as_ref(),
                );
            // Servers are asked at once, so one that hangs costs its
            // timeout once, not once per question.
            for why in backends.connect_all().values() {
                eprintln!("warning: {why}");
            }
            apply::status_with(&store, &backends, Some(&backends)).map_err(|e| e.to_string())
        });
        match result {
            Ok(s) => all.push(s),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                code = 1;
            }
        }
    }
    (all, code)
}

/// `mln status -p NAME` (or every recorded project).
pub fn status(out: &Output, args: &StatusArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let names = match &args.project {
        Some(p) => vec![p.clone()],
        None => match StateStore::list(&places.state_root) {
            Ok(n) => n,
            Err(e) => return fail(e),
        },
    };
    let (all, code) = statuses(&places, names);
    if args.format() == TableFormat::Json {
        return match serde_json::to_string_pretty(&all) {
            Ok(s) => {
                println!("{s}");
                code
            }
            Err(e) => fail(e),
        };
    }
    for s in &all {
        println!("project {}", s.project);
        println!(
            "  {:<20} {:<10} {:<6} {:>8} {:>5}  SERVER",
            "HOST", "STATE", "PLAT", "MEMORY", "VCPU"
        );
        for h in &s.hosts {
            println!(
                "  {:<20} {} {:<6} {:>7}M {:>5}  {}",
                h.host,
                out.state(&h.state, 10),
                h.platform.keyword(),
                h.memory >> 20,
                h.vcpus,
                h.service_host.as_deref().unwrap_or("local")
            );
        }
        for sw in &s.switches {
            println!("  switch {:<13} {}", sw.switch, out.state(&sw.state, 0));
        }
        for sv in &s.servers {
            let name = sv.server.as_deref().unwrap_or("local");
            match &sv.reason {
                Some(why) => println!("  server {name:<13} {} {why}", out.state("unreachable", 0)),
                None => {
                    let mib =
                        |b: Option<u64>| b.map_or("?".to_string(), |b| format!("{}M", b >> 20));
                    println!(
                        "  server {name:<13} {} {} vm(s), {}M used, {} free of {}",
                        out.state("up", 0),
                        sv.vms,
                        sv.memory_used >> 20,
                        mib(sv.memory_free),
                        mib(sv.memory_total),
                    );
                }
            }
        }
    }
    code
}

/// `mln list`: every recorded project, one line each.
pub fn list(args: &ListArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let names = match StateStore::list(&places.state_root) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let (all, code) = statuses(&places, names);
    let lines: Vec<serde_json::Value> = all
        .iter()
        .map(|s| {
            serde_json::json!({
                "project": s.project,
                "hosts": s.hosts.len(),
                "running": s.hosts.iter().filter(|h| h.state == "running").count(),
                "switches": s.switches.len(),
            })
        })
        .collect();
    match args.format {
        TableFormat::Json => println!("{}", serde_json::Value::Array(lines)),
        TableFormat::Table => {
            for l in &lines {
                println!(
                    "{}: {} host(s), {} running, {} switch(es)",
                    l["project"].as_str().unwrap_or_default(),
                    l["hosts"],
                    l["running"],
                    l["switches"]
                );
            }
        }
    }
    code
}
