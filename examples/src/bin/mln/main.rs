//! `mln`: build and run networks of virtual machines from MLN project files.
//!
//! A thin front end: arguments are parsed here, all the work is done by
//! `mln-lang` and `mln-core`.

#![forbid(unsafe_code)]

mod agent;
mod archive;
mod backend;
mod class;
mod clean;
mod cli;
mod config;
mod console;
mod doctor;
mod evacuate;
mod exec;
mod forward;
mod inspect;
mod kernel;
mod lifecycle;
mod log;
mod logins;
mod output;
mod owner;
mod persistent;
mod plugins;
mod progress;
mod recorded;
mod recover;
mod status;
mod switch_entry;
mod template;

use mln_lang::plan::Goal;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    raise_open_file_limit();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(if args.verbose { "info" } else { "warn" }),
    )
    .init();
    let out = output::Output::detect(args.color);
    let code = match args.command {
        cli::Command::Check(a) => inspect::check(&out, &a),
        cli::Command::Show(a) => inspect::show(&out, &a),
        cli::Command::Parse(a) => inspect::parse(&out, &a),
        cli::Command::Diff(a) => inspect::diff(&out, &a),
        cli::Command::Graph(a) => inspect::graph(&out, &a),
        cli::Command::Build(a) => lifecycle::run(&out, Goal::Build, &a.normalized()),
        cli::Command::Up(a) => lifecycle::run(&out, Goal::Up, &a.normalized()),
        cli::Command::Down(a) => lifecycle::run(&out, Goal::Stop, &a.normalized()),
        cli::Command::Upgrade(mut a) => {
            a.target = a.target.normalized();
            lifecycle::upgrade(&out, &a)
        }
        cli::Command::Remove(a) => lifecycle::run(&out, Goal::Remove, &a.normalized()),
        cli::Command::Recover(a) => recover::recover(&out, &a.normalized()),
        cli::Command::Plan(a) => lifecycle::plan(&out, &a.target.normalized()),
        cli::Command::Status(a) => status::status(&out, &a),
        cli::Command::List(a) => status::list(&a),
        cli::Command::Log(a) => log::log(&a),
        cli::Command::Agent(a) => agent::agent(&a),
        cli::Command::Kernel(a) => kernel::kernel(&a),
        cli::Command::Doctor(a) => doctor::doctor(&a),
        cli::Command::Config(a) => config::config(&a),
        cli::Command::Exec(a) => exec::exec(&a),
        cli::Command::Ssh(a) => switch_entry::ssh(&a),
        cli::Command::SwitchExec(a) => switch_entry::switch_exec(&a),
        cli::Command::EnterSwitch(a) => switch_entry::enter_switch(&a),
        cli::Command::Forward(a) => forward::forward(&a),
        cli::Command::ForwardInside(a) => forward::inside(&a),
        cli::Command::Evacuate(a) => evacuate::evacuate(&out, &a),
        cli::Command::Console(a) => console::console(&a),
        cli::Command::Class(a) => class::class(&out, &a),
        cli::Command::Reset(a) => lifecycle::reset(&out, &a),
        cli::Command::CheckPersistent(a) => persistent::check_persistent(&a),
        cli::Command::Template(a) => template::template(&a),
        cli::Command::Export(a) => archive::export(&a),
        cli::Command::Import(a) => archive::import(&a),
        cli::Command::Clean(a) => clean::clean(&a),
    };
    ExitCode::from(code)
}

/// Raise the soft limit on open files to the hard one: a project of
/// hundreds of guests keeps a console log, a lock and a socket or two open
/// per guest while it starts them, past the common soft limit of 1024.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            ::log::info!("could not raise the open file limit: {e}");
        }
    }
}
