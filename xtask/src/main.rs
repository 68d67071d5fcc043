//! `cargo xtask <task>`: repository automation (matklad's xtask pattern).
//!
//! - `xen-test`: boot real Xen 4.17 inside QEMU and run the Xen backend's
//!   tests in its dom0 (`--demo`, `--bench`: run the lifecycle demo or the
//!   domain creation benchmark there instead).
//! - `template`: build the default busybox guest template.
//! - `scale`: N UML guests (50, 100, 200) up, pinged, stopped and
//!   removed, against a plain loop and the CPU floor (issue #18).
//! - `servers N`: N servers on this machine (network namespaces with sshd
//!   and `mln agent`) to try multi-server projects on, until Enter.

#![forbid(unsafe_code)]

use std::process::ExitCode;

mod scale;
mod servers;
mod template;
mod xen_test;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match task {
        "xen-test" => xen_test::run(rest),
        "template" => template::run(rest),
        "servers" => servers::run(rest),
        "scale" => scale::run(rest),
        _ => {
            eprintln!("usage: cargo xtask <xen-test|template|servers|scale> [options]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
