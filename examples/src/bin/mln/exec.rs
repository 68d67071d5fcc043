//! `mln exec -p PROJECT HOST -- COMMAND...`: run a command in a running
//! guest through its agent (no network, no root), print its output and
//! exit with its status.

use std::io::Write;
use std::time::Duration;

use mln_core::Hypervisor;
use mln_lang::agent::ServerAccess;
use mln_lang::apply::{Backends, ClusterBackends, LocalBackends};
use mln_lang::plan::domain_name;

use crate::cli::ExecArgs;
use crate::lifecycle::{fail, Places};

/// Run `mln exec`; the command's exit status (1 when it could not run).
pub fn exec(args: &ExecArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let store = match places.recorded(&args.project) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let state = match store.load() {
        Ok(Some(s)) => s,
        Ok(None) => return fail(format!("project {}: nothing recorded", args.project)),
        Err(e) => return fail(e),
    };
    let Some(spec) = state.hosts.get(&args.host).map(|r| &r.spec) else {
        return fail(format!(
            "project {} has no host {}",
            args.project, args.host
        ));
    };
    let local = match LocalBackends::new(store.dir()) {
        Ok(b) => crate::backend::Machine::detect().attach(b),
        Err(e) => return fail(e),
    };
    let cluster = ClusterBackends::new(&args.project, local, ServerAccess::from_env())
        .with_servers(state.desired.as_ref(), Some(&state));
    let ran = cluster
        .hypervisor(spec.service_host.as_deref(), spec.platform)
        .and_then(|hv: &dyn Hypervisor| {
            hv.exec(
                &domain_name(&args.project, &args.host),
                &args.command,
                Duration::from_secs(args.timeout),
            )
        });
    match ran {
        Ok(out) => {
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            u8::try_from(out.status).unwrap_or(1)
        }
        Err(e) => fail(format!("{}: {e}", args.host)),
    }
}
