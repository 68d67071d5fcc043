//! Any bytes → the parser: no panic, no hang, and every diagnostic points
//! at real text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mln_lang::SourceMap;

fuzz_target!(|data: &[u8]| {
    let mut sources = SourceMap::new();
    let _ = mln_lang_fuzz::parse(&mut sources, data);
});
