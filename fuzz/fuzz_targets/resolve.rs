//! Any bytes → parse → resolve → check: no panic, no hang, every
//! diagnostic points at real text, and errors come only with an error
//! code.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mln_lang::check::check_project;
use mln_lang::resolve::resolve;
use mln_lang::SourceMap;
use mln_lang_fuzz::{assert_diagnostics, parse};

fuzz_target!(|data: &[u8]| {
    let mut sources = SourceMap::new();
    let Some(ast) = parse(&mut sources, data) else {
        return;
    };
    match resolve(&ast, &sources) {
        Ok(resolved) => {
            assert!(!resolved.warnings.has_errors(), "an error among warnings");
            assert_diagnostics(&sources, &resolved.warnings.0);
            let diags = check_project(&resolved.project, &resolved.origins);
            assert_diagnostics(&sources, &diags.0);
        }
        Err(diags) => {
            assert!(diags.has_errors(), "resolve failed without an error");
            assert_diagnostics(&sources, &diags.0);
        }
    }
});
