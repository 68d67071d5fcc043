//! With the `bindgen` feature: the committed bindings are exactly what the
//! installed headers give, so they cannot drift from build.rs's
//! configuration unnoticed. Fails on a system whose Xen is not the one they
//! were generated from; `regenerate.sh` then makes new ones.

#![cfg(feature = "bindgen")]

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));
const COMMITTED: &str = include_str!("../src/bindings_4_17.rs");
const GENERATED_HAVE: &str = include_str!(concat!(env!("OUT_DIR"), "/have.rs"));
const COMMITTED_HAVE: &str = include_str!("../src/have_4_17.rs");

#[test]
fn committed_bindings_are_what_bindgen_generates_here() {
    // The committed files are a comment header followed by the output.
    assert!(
        COMMITTED.ends_with(GENERATED),
        "src/bindings_4_17.rs differs from the bindings generated from this \
         system's headers; run xenlight-sys/regenerate.sh"
    );
    assert!(
        COMMITTED_HAVE.ends_with(GENERATED_HAVE),
        "src/have_4_17.rs differs from this system's LIBXL_HAVE_* macros; \
         run xenlight-sys/regenerate.sh"
    );
}
