//! The plugins a verb calls (`mln_lang::plugin`): found in the site's and
//! the user's folders and those given, or none with `--no-plugins`.

use std::time::Duration;

use mln_lang::plugin::{Note, PluginError, PluginFolders, Plugins};
use mln_lang::{Code, Diagnostic};

use crate::cli::PluginArgs;

/// The plugins `args` ask for.
pub fn plugins(args: &PluginArgs) -> Result<Plugins, String> {
    let timeout = Duration::from_secs(args.plugin_timeout);
    if args.no_plugins {
        return Ok(Plugins::default().timeout(timeout));
    }
    let mut folders = PluginFolders::from_settings();
    folders.given.extend(args.plugins_dir.iter().cloned());
    Plugins::discover(&folders)
        .map(|p| p.timeout(timeout))
        .map_err(|e| e.to_string())
}

/// A plugin's warning as `mln check` reports it.
pub fn warning(note: &Note) -> Diagnostic {
    Diagnostic::new(Code::PluginWarning, None, note.to_string())
}

/// A plugin stopping `mln check`, as a diagnostic.
pub fn refusal(error: &PluginError) -> Diagnostic {
    Diagnostic::new(Code::PluginRefused, None, error.to_string())
}
