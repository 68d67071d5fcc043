//! Snapshots of rendered syntax diagnostics: what a user sees.

use std::path::Path;

use mln_lang::syntax::{parse_source, Limits};
use mln_lang::SourceMap;

fn rendered(text: &[u8]) -> String {
    rendered_with(text, &Limits::default())
}

fn rendered_with(text: &[u8], limits: &Limits) -> String {
    let mut sources = SourceMap::new();
    match parse_source(&mut sources, Path::new("project.mln"), text, limits) {
        Ok(_) => panic!("expected diagnostics"),
        Err(d) => mln_lang::render(&sources, &d.0, false),
    }
}

#[test]
fn unclosed_block() {
    insta::assert_snapshot!(rendered(
        b"global {\n    project lab\n}\n\nhost a {\n    memory 64M\n    network eth0 {\n        switch lan\n}\n"
    ));
}

#[test]
fn stray_close() {
    insta::assert_snapshot!(rendered(b"host a {\n    memory 64M\n}\n}\n"));
}

#[test]
fn block_without_name() {
    insta::assert_snapshot!(rendered(b"host a\n{\n    memory 64M\n}\n"));
}

#[test]
fn too_many_words_before_brace() {
    insta::assert_snapshot!(rendered(b"host a b c {\n}\n"));
}

#[test]
fn dangling_escape() {
    insta::assert_snapshot!(rendered(b"host a {\n}\nxen \\"));
}

#[test]
fn invalid_utf8() {
    insta::assert_snapshot!(rendered(b"host caf\xe9 {\n}\n"));
}

#[test]
fn nul_byte() {
    insta::assert_snapshot!(rendered(b"host a {\n    memory 64M\0\n}\n"));
}

#[test]
fn nesting_limit() {
    let limits = Limits {
        max_nesting: 2,
        ..Limits::default()
    };
    insta::assert_snapshot!(rendered_with(
        b"host a {\n    groups {\n        wheel { alice }\n    }\n}\n",
        &limits
    ));
}

#[test]
fn variable_with_bad_name() {
    insta::assert_snapshot!(rendered(b"global {\n    $1st = x\n}\n"));
}

#[test]
fn several_errors_in_one_file() {
    insta::assert_snapshot!(rendered(b"}\nhost a {\n    memory 64M\n}\n{\nhost b {\n"));
}

#[test]
fn include_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.mln"),
        "#include b.mln\n#include missing.mln\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.mln"), "host b {\n}\n#include a.mln\n").unwrap();
    let mut sources = SourceMap::new();
    let d =
        mln_lang::syntax::parse_path(&mut sources, &dir.path().join("a.mln"), &Limits::default())
            .unwrap_err();
    // Temp paths differ per run; show them relative to the directory.
    let prefix = format!("{}/", dir.path().display());
    let text = mln_lang::render(&sources, &d.0, false).replace(&prefix, "");
    let text = text.replace("No such file or directory (os error 2)", "<not found>");
    insta::assert_snapshot!(text);
}
