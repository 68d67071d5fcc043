//! `#include`: relative paths, splicing, cycles, missing files, depth.

use std::path::Path;

use mln_lang::syntax::{parse_path, Ast, Item, Limits};
use mln_lang::{Code, Diagnostics, SourceMap};

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

fn parse(main: &Path) -> (SourceMap, Result<Ast, Diagnostics>) {
    let mut sources = SourceMap::new();
    let r = parse_path(&mut sources, main, &Limits::default());
    (sources, r)
}

fn headers(ast: &Ast) -> Vec<String> {
    ast.items
        .iter()
        .map(|i| match i {
            Item::Block(b) => format!(
                "{}{}",
                b.name.node,
                b.label
                    .as_ref()
                    .map(|l| format!(" {}", l.node))
                    .unwrap_or_default()
            ),
            Item::Statement(s) => s.keyword.node.to_string(),
            Item::Assign(a) => format!("${}", a.name.node),
        })
        .collect()
}

#[test]
fn include_is_relative_to_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p/main.mln",
        "global { project x }\n#include parts/hosts.mln\nswitch lan {\n}\n",
    );
    write(
        dir.path(),
        "p/parts/hosts.mln",
        "host a {\n}\n#include more.mln\n",
    );
    write(dir.path(), "p/parts/more.mln", "host b {\n}\n");
    // Run from elsewhere: the current directory must not matter.
    let (sources, r) = parse(&dir.path().join("p/main.mln"));
    let ast = r.unwrap();
    assert_eq!(headers(&ast), ["global", "host a", "host b", "switch lan"]);
    // Spans of included items point into the included file.
    let Item::Block(b) = &ast.items[2] else {
        panic!()
    };
    assert!(
        sources.location(b.span).ends_with("more.mln:1:1"),
        "{}",
        sources.location(b.span)
    );
    assert_eq!(sources.text(b.span), "host b {\n}");
}

#[test]
fn include_inside_a_block_splices_there() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.mln",
        "host a {\n  #include mem.mln\n  xen\n}\n",
    );
    write(dir.path(), "mem.mln", "memory 64M");
    let (sources, r) = parse(&dir.path().join("main.mln"));
    let ast = r.unwrap();
    let Item::Block(host) = &ast.items[0] else {
        panic!()
    };
    assert_eq!(host.items.len(), 2);
    let Item::Statement(mem) = &host.items[0] else {
        panic!()
    };
    assert_eq!(mem.value_or_flag(), "64M");
    assert_eq!(sources.text(mem.span), "memory 64M");
    assert!(sources.location(mem.span).ends_with("mem.mln:1:1"));
}

#[test]
fn a_block_may_close_in_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.mln", "#include open.mln\n  memory 1\n}\n");
    write(dir.path(), "open.mln", "host a {\n");
    let (sources, r) = parse(&dir.path().join("main.mln"));
    let ast = r.unwrap();
    let Item::Block(host) = &ast.items[0] else {
        panic!()
    };
    assert_eq!(host.items.len(), 1);
    // The span cannot cross files, so it covers the header.
    assert_eq!(sources.text(host.span), "host a {");
}

#[test]
fn the_same_file_may_be_included_twice() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.mln",
        "host a {\n#include common.mln\n}\nhost b {\n#include common.mln\n}\n",
    );
    write(dir.path(), "common.mln", "memory 64M\n");
    let (_, r) = parse(&dir.path().join("main.mln"));
    assert_eq!(headers(&r.unwrap()), ["host a", "host b"]);
}

#[test]
fn include_cycle_is_reported_with_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.mln", "host a {\n}\n#include b.mln\n");
    write(dir.path(), "b.mln", "#include ./a.mln\n");
    let (sources, r) = parse(&dir.path().join("a.mln"));
    let d = r.unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(d.0[0].code, Code::IncludeCycle);
    let msg = &d.0[0].message;
    assert!(
        msg.contains("a.mln → ") && msg.contains("b.mln → ") && msg.ends_with("a.mln"),
        "{msg}"
    );
    let span = d.0[0].span.unwrap();
    assert_eq!(sources.text(span), "./a.mln");
    assert!(sources.location(span).ends_with("b.mln:1:10"));
}

#[test]
fn a_file_including_itself_is_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.mln", "#include a.mln\n");
    let (_, r) = parse(&dir.path().join("a.mln"));
    assert_eq!(r.unwrap_err().0[0].code, Code::IncludeCycle);
}

#[test]
fn missing_include_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.mln",
        "global { project x }\n#include  nowhere.mln  \n",
    );
    let (sources, r) = parse(&dir.path().join("main.mln"));
    let d = r.unwrap_err();
    assert_eq!(d.0[0].code, Code::IncludeNotFound);
    assert!(d.0[0].message.contains("nowhere.mln"), "{}", d.0[0].message);
    assert_eq!(
        sources
            .location(d.0[0].span.unwrap())
            .rsplit_once(':')
            .unwrap()
            .0
            .rsplit(':')
            .next(),
        Some("2")
    );
    assert_eq!(sources.text(d.0[0].span.unwrap()), "nowhere.mln");
}

#[test]
fn unreadable_main_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = parse(&dir.path().join("absent.mln"));
    let d = r.unwrap_err();
    assert_eq!(d.0[0].code, Code::IncludeNotFound);
    assert!(d.0[0].message.contains("absent.mln"));
    // A directory is not a readable file either.
    let (_, r) = parse(dir.path());
    assert_eq!(r.unwrap_err().0[0].code, Code::IncludeNotFound);
}

#[test]
fn include_depth_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let depth = Limits::default().max_include_depth;
    for i in 0..=depth + 1 {
        write(
            dir.path(),
            &format!("f{i}.mln"),
            &format!("#include f{}.mln\n", i + 1),
        );
    }
    write(
        dir.path(),
        &format!("f{}.mln", depth + 2),
        "host end {\n}\n",
    );
    let (_, r) = parse(&dir.path().join("f0.mln"));
    let d = r.unwrap_err();
    assert_eq!(d.0[0].code, Code::LimitExceeded);

    // Exactly at the limit is fine.
    let (_, r) = parse(&dir.path().join("f2.mln"));
    assert_eq!(headers(&r.unwrap()), ["host end"]);
}

#[test]
fn include_count_is_limited() {
    // Each file includes the next twice: 2^20 inclusions if unchecked.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        write(
            dir.path(),
            &format!("f{i}.mln"),
            &format!("#include f{0}.mln\n#include f{0}.mln\n", i + 1),
        );
    }
    write(dir.path(), "f20.mln", "x\n");
    let (_, r) = parse(&dir.path().join("f0.mln"));
    let d = r.unwrap_err();
    assert_eq!(d.0.last().unwrap().code, Code::LimitExceeded);
}

#[test]
fn bad_encoding_in_an_included_file_points_into_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.mln", "#include bad.mln\n");
    std::fs::write(dir.path().join("bad.mln"), b"host a {\n}\nx \xc3(\n").unwrap();
    let (sources, r) = parse(&dir.path().join("main.mln"));
    let d = r.unwrap_err();
    assert_eq!(d.0[0].code, Code::BadEncoding);
    assert!(sources
        .location(d.0[0].span.unwrap())
        .ends_with("bad.mln:3:3"));
}

#[test]
fn include_without_a_path_is_a_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.mln", "#include   \n");
    let (_, r) = parse(&dir.path().join("main.mln"));
    assert_eq!(r.unwrap_err().0[0].code, Code::Syntax);
}

#[test]
fn include_not_at_line_start_is_a_comment() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.mln",
        "xen #include nowhere.mln\n#includes nowhere\n",
    );
    let (_, r) = parse(&dir.path().join("main.mln"));
    assert_eq!(headers(&r.unwrap()), ["xen"]);
}
