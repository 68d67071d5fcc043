//! Progress of a running plan: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use mln_lang::apply::{ApplyError, Progress};
use mln_lang::plan::{Action, ActionId, HookPoint};

use crate::output::Output;

/// Renders executor progress.
pub struct Lines {
    bar: Option<ProgressBar>,
}

impl Lines {
    /// A spinner with the current action on a terminal, else plain lines.
    pub fn new(_out: &Output) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{elapsed}] {pos} done  {msg}")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Lines { bar }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Lines {
    fn started(&self, action: &Action) {
        match &self.bar {
            Some(bar) => bar.set_message(action.op.describe()),
            None => eprintln!("  … {}", action.op.describe()),
        }
    }

    fn finished(&self, action: &Action, result: Result<(), &ApplyError>) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        match result {
            Ok(()) => self.line(format!("  ✓ {}", action.op.describe())),
            // The whole error, console lines and all, comes once at the end.
            Err(e) => self.line(format!(
                "  ✗ {}",
                crate::lifecycle::summary_line(&crate::lifecycle::failure_line(
                    &action.op.describe(),
                    &e.to_string()
                ))
            )),
        }
    }

    fn skipped(&self, action: &Action, because: ActionId) {
        self.line(format!(
            "  - {} (not run: action {because:?} failed)",
            action.op.describe()
        ));
    }

    fn said(&self, action: &Action, line: &str) {
        self.line(format!("  · {}: {line}", action.op.describe()));
    }

    fn boot_retried(&self, action: &Action, retry: &mln_lang::apply::BootRetry) {
        self.line(format!(
            "  ↻ {}: {} {}; started it once more",
            action.op.describe(),
            retry.host,
            crate::lifecycle::summary_line(&retry.why)
        ));
    }

    fn hook_output(&self, point: HookPoint, line: &str) {
        self.line(format!("  [{point:?}] {line}"));
    }

    fn plugin_warning(&self, note: &mln_lang::plugin::Note) {
        self.line(format!("warning: {note}"));
    }
}
