//! `mln doctor`: which backends work on this host, why not, and the one
//! command that fixes each (`mln_core::doctor`).

use mln_core::doctor::{diagnose, DoctorOptions};

use crate::cli::{DoctorArgs, TableFormat};

/// Run `mln doctor`; exit 0 when UML guests can run (the backend every
/// project can fall back to), else 1.
pub fn doctor(args: &DoctorArgs) -> u8 {
    let store = match crate::kernel::store(args.state_dir.as_deref()) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    let mut options = DoctorOptions::new(store.dir());
    options.uml_kernel = args.uml_kernel.clone();
    let report = diagnose(&options);
    let uml_works = report.checks.iter().any(|c| c.subject == "uml" && c.works);
    if args.format == TableFormat::Json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    } else {
        println!("host: {}", report.cpu);
        for check in &report.checks {
            let mark = if check.works { "ok " } else { "NO " };
            println!("{mark} {:<10} {}", check.subject, check.summary);
            for line in &check.details {
                println!("               {line}");
            }
            if let Some(fix) = &check.fix {
                println!("    fix:       {fix}");
            }
        }
        println!("({:.1} s)", report.millis as f64 / 1e3);
    }
    if uml_works {
        0
    } else {
        1
    }
}
