//! `mln`: build and run networks of virtual machines from MLN project files.
//!
//! A thin front end: arguments are parsed here, all the work is done by
//! `mln-lang` and `mln-core`.

mod cli;
mod inspect;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(if args.verbose { "info" } else { "warn" }),
    )
    .init();
    let out = output::Output::detect(args.color);
    let code = match args.command {
        cli::Command::Check(a) => inspect::check(&out, &a),
        cli::Command::Show(a) => inspect::show(&out, &a),
        cli::Command::Parse(a) => inspect::parse(&out, &a),
    };
    ExitCode::from(code)
}
