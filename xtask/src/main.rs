//! `cargo xtask <task>`: repository automation.
fn main() {}
