//! `mln exec -p PROJECT HOST -- COMMAND...`: run a command in a running
//! guest through its agent (no network, no root), print its output and
//! exit with its status.

use std::io::Write;
use std::time::Duration;

use mln_core::Hypervisor;
use mln_lang::apply::Backends;
use mln_lang::plan::domain_name;

use crate::cli::ExecArgs;
use crate::lifecycle::fail;

/// Run `mln exec`; the command's exit status (1 when it could not run).
pub fn exec(args: &ExecArgs) -> u8 {
    let crate::recorded::Host { spec, cluster } =
        match crate::recorded::host(args.state_dir.as_deref(), &args.project, &args.host) {
            Ok(h) => h,
            Err(code) => return code,
        };
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
