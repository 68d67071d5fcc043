//! Where and how output goes: colour only on a terminal and never with
//! `NO_COLOR`.

use std::io::IsTerminal;

use crate::cli::ColorChoice;

/// Output settings decided once at start-up.
pub struct Output {
    /// Colour diagnostics on stderr.
    pub color_stderr: bool,
    /// Colour tables on stdout.
    pub color_stdout: bool,
}

impl Output {
    /// Decide from the user's choice, the environment and the terminal.
    pub fn detect(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |terminal: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && terminal,
        };
        Output {
            color_stderr: decide(std::io::stderr().is_terminal()),
            color_stdout: decide(std::io::stdout().is_terminal()),
        }
    }

    /// `text` padded to `width`, in green (good), yellow (half-way) or red
    /// (bad) when stdout is coloured.
    pub fn state(&self, text: &str, width: usize) -> String {
        let padded = format!("{text:<width$}");
        if !self.color_stdout {
            return padded;
        }
        let code = match text {
            "running" | "up" => "32",
            "built" | "paused" | "down" | "up (paused)" | "down (built)" | "down (shutdown)" => {
                "33"
            }
            _ => "31",
        };
        format!("\x1b[{code}m{padded}\x1b[0m")
    }

    /// Print a rendered report on stderr.
    pub fn report(&self, report: &mln_lang::Report) {
        eprint!("{}", report.render(self.color_stderr));
    }
}

/// Write `text` to stdout; exit code 0, also when the reader went away
/// (`mln graph FILE | head`), 1 when writing failed otherwise.
pub fn print(text: &str) -> u8 {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            1
        }
    }
}
