//! `mln console -p PROJECT HOST`: this terminal on a running guest's
//! console, a login prompt there (the template's), until Ctrl-] detaches.
//! A guest on another server is reached through `ssh -t` to its agent
//! (`mln agent console`), which runs the same loop there.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use mln_core::attach::{attach, ConsoleEndpoint, Ended, RawMode};

use crate::cli::ConsoleArgs;
use crate::lifecycle::fail;

/// Run `mln console`; 0 when the session ended normally.
pub fn console(args: &ConsoleArgs) -> u8 {
    let crate::recorded::Host { spec, cluster } =
        match crate::recorded::host(args.state_dir.as_deref(), &args.project, &args.host) {
            Ok(h) => h,
            Err(code) => return code,
        };
    let terminal = std::io::stdin().is_terminal();
    let guest = format!("{}.{}", args.project, args.host);
    match cluster.console(
        spec.service_host.as_deref(),
        spec.platform,
        &args.host,
        terminal,
    ) {
        Ok(endpoint) => session(&guest, &endpoint),
        Err(e) => fail(format!("{}: {e}", args.host)),
    }
}

/// This process's stdin and stdout on `endpoint` (raw when stdin is a
/// terminal), with a line on stderr saying how to leave; 0 on a normal
/// end.
pub fn session(guest: &str, endpoint: &ConsoleEndpoint) -> u8 {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal && !matches!(endpoint, ConsoleEndpoint::Program(_)) {
        eprintln!("Connected to {guest}'s console; Ctrl-] leaves it. Press Enter for a prompt.");
    }
    // A program (xl console, ssh -t) sets the terminal up itself.
    let raw = match endpoint {
        ConsoleEndpoint::Program(_) => None,
        _ => match RawMode::enter(stdin.as_fd()) {
            Ok(r) => r,
            Err(e) => return fail(format!("{guest}: {e}")),
        },
    };
    let ended = attach(
        guest,
        endpoint,
        stdin.as_fd(),
        &mut std::io::stdout().lock(),
    );
    drop(raw);
    match ended {
        Ok(Ended::Detached | Ended::InputClosed) => {
            if terminal {
                eprintln!();
            }
            0
        }
        Ok(Ended::ConsoleClosed) => {
            if !matches!(endpoint, ConsoleEndpoint::Program(_)) {
                eprintln!("\r\n{guest}: its console closed (the guest stopped or restarted)");
            }
            0
        }
        Err(e) => fail(e),
    }
}
