//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (warnings may have been printed)
  1  the project has errors, or an operation failed
  2  bad command-line usage";

/// Build and run networks of virtual machines from MLN project files.
#[derive(Debug, Parser)]
#[command(name = "mln", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log what is being done.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

/// Colour choice; `auto` means on a terminal and without `NO_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check project files; print every error and warning.
    Check(CheckArgs),
    /// Print the resolved project as JSON or canonical MLN text.
    Show(ShowArgs),
    /// MLN-compatible queries: print one resolved value or list.
    Parse(ParseArgs),
}

/// Output format of diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagFormat {
    /// rustc-style text on stderr.
    Human,
    /// One JSON array of diagnostics on stdout.
    Json,
}

/// `mln check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Project files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
    pub format: DiagFormat,
}

/// Output format of `mln show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// The resolved model as JSON.
    Json,
    /// Canonical MLN text that parses back to the same model.
    Mln,
}

/// `mln show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Project file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Json)]
    pub format: ShowFormat,
}

/// `mln parse -f FILE [-S PATH | -A PATH]`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Project file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Print one scalar, e.g. `/host/NAME/memory`.
    #[arg(short = 'S', conflicts_with = "list")]
    pub scalar: Option<String>,
    /// Print a list block one item per line, e.g. `/host/NAME/startup`.
    #[arg(short = 'A')]
    pub list: Option<String>,
}
