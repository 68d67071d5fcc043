//! Where and how output goes: colour only on a terminal and never with
//! `NO_COLOR`.

use std::io::IsTerminal;

use crate::cli::ColorChoice;

/// Output settings decided once at start-up.
pub struct Output {
    /// Colour diagnostics on stderr.
    pub color_stderr: bool,
}

impl Output {
    /// Decide from the user's choice, the environment and the terminal.
    pub fn detect(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color_stderr = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stderr().is_terminal(),
        };
        Output { color_stderr }
    }

    /// Print a rendered report on stderr.
    pub fn report(&self, report: &mln_lang::Report) {
        eprint!("{}", report.render(self.color_stderr));
    }
}
