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
pub(crate) fn statuses(places: &Places, names: Vec<String>) -> (Vec<ProjectStatus>, u8) {
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
            let status = apply::status_with(&store, &backends, Some(&backends))
                .map_err(|e| e.to_string())?;
            Ok(status)
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

/// `mln status -p NAME` (or every recorded project), in MLN's words:
/// every host and switch is `up` or `down`, a host that is down with why
/// next to it. Exit status as MLN's: 0 when everything asked about is up;
/// else 1 with `-p` or `-h`, and with `-u` (`-d`) 0 when something is
/// (nothing is) up.
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
    let (mut all, code) = statuses(&places, names);
    for s in &mut all {
        if !args.hosts.is_empty() {
            s.hosts.retain(|h| args.hosts.contains(&h.host));
            s.switches.clear();
        }
    }
    let tally = Tally::of(&all);
    if args.up_only || args.down_only {
        let keep_up = args.up_only;
        for s in &mut all {
            s.hosts.retain(|h| h.is_up() == keep_up);
            s.switches.retain(|sw| (sw.state == "up") == keep_up);
        }
    }
    if args.format() == TableFormat::Json {
        // Each project with its background forwards (`mln forward`).
        let with_forwards: Result<Vec<serde_json::Value>, _> = all
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s)?;
                let forwards = crate::forward::list_in(&places.state_root.join(&s.project));
                if let Some(o) = v.as_object_mut() {
                    o.insert("forwards".into(), serde_json::to_value(forwards)?);
                }
                Ok::<_, serde_json::Error>(v)
            })
            .collect();
        return match with_forwards.and_then(|v| serde_json::to_string_pretty(&v)) {
            Ok(s) => {
                println!("{s}");
                code.max(tally.exit_code(args))
            }
            Err(e) => fail(e),
        };
    }
    for s in &all {
        print_project(out, s);
        print_forwards(out, &places.state_root.join(&s.project));
    }
    code.max(tally.exit_code(args))
}

/// How many hosts and switches were looked at, and how many are up.
struct Tally {
    tested: usize,
    up: usize,
}

impl Tally {
    fn of(all: &[ProjectStatus]) -> Tally {
        let mut t = Tally { tested: 0, up: 0 };
        for s in all {
            t.tested += s.hosts.len() + s.switches.len();
            t.up += s.hosts.iter().filter(|h| h.is_up()).count();
            t.up += s.switches.iter().filter(|sw| sw.state == "up").count();
        }
        t
    }

    /// MLN 1.0.8's `printStatus` exit status.
    fn exit_code(&self, args: &StatusArgs) -> u8 {
        if self.tested == self.up {
            0
        } else if args.project.is_some() || !args.hosts.is_empty() {
            1
        } else if args.up_only {
            u8::from(self.up == 0)
        } else if args.down_only {
            u8::from(self.up != 0)
        } else {
            0
        }
    }
}

/// A host's state in MLN's words: `up`, or `down (why)`.
fn mln_state(h: &mln_lang::apply::HostStatus) -> String {
    match (h.is_up(), h.state.as_str()) {
        (true, "running") => "up".to_string(),
        (true, why) | (false, why) => {
            let word = if h.is_up() { "up" } else { "down" };
            format!("{word} ({why})")
        }
    }
}

fn print_project(out: &Output, s: &ProjectStatus) {
    println!("project {}", s.project);
    println!(
        "  {:<20} {:<18} {:<7} {:>8} {:>5}  SERVER",
        "HOST", "STATE", "PLAT", "MEMORY", "VCPU"
    );
    for h in &s.hosts {
        println!(
            "  {:<20} {} {:<7} {:>7}M {:>5}  {}",
            h.host,
            out.state(&mln_state(h), 18),
            match &h.acceleration {
                Some(accel) => format!("{}/{}", h.platform, accel.to_lowercase()),
                None => h.platform.to_string(),
            },
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
                let mib = |b: Option<u64>| b.map_or("?".to_string(), |b| format!("{}M", b >> 20));
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

/// The project's background forwards, one line each.
fn print_forwards(out: &Output, project_dir: &std::path::Path) {
    for f in crate::forward::list_in(project_dir) {
        println!(
            "  forward {:<12} {} → {} {}",
            f.leads.listen.port(),
            out.state(f.state, 0),
            f.leads.host,
            f.leads.to
        );
    }
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
