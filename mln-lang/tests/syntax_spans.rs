//! Spans are byte-exact, escapes resolve, and values are re-joined the way
//! the language reference says.

use std::path::Path;

use mln_lang::syntax::{parse_source, Ast, Block, Item, Limits, Statement};
use mln_lang::{Code, SourceMap, Span};

fn parse(text: &str) -> (SourceMap, Ast) {
    let mut sources = SourceMap::new();
    match parse_source(
        &mut sources,
        Path::new("t.mln"),
        text.as_bytes(),
        &Limits::default(),
    ) {
        Ok(ast) => (sources, ast),
        Err(d) => panic!("{}", mln_lang::render(&sources, &d.0, false)),
    }
}

fn block(i: &Item) -> &Block {
    match i {
        Item::Block(b) => b,
        other => panic!("not a block: {other:?}"),
    }
}

fn statement(i: &Item) -> &Statement {
    match i {
        Item::Statement(s) => s,
        other => panic!("not a statement: {other:?}"),
    }
}

fn range(s: Span) -> std::ops::Range<usize> {
    s.range()
}

#[test]
fn every_part_of_a_host_has_its_exact_span() {
    let text = "host web1 {\n  memory  256M\n  network eth0 { address 10.0.0.1 }\n}\n";
    let (_, ast) = parse(text);
    let host = block(&ast.items[0]);
    assert_eq!(range(host.name.span), 0..4);
    assert_eq!(range(host.label.as_ref().unwrap().span), 5..9);
    assert_eq!(range(host.span), 0..text.len() - 1);

    let memory = statement(&host.items[0]);
    assert_eq!(range(memory.keyword.span), 14..20);
    assert_eq!(range(memory.value.as_ref().unwrap().span), 22..26);
    assert_eq!(range(memory.span), 14..26);

    let net = block(&host.items[1]);
    assert_eq!(&text[range(net.span)], "network eth0 { address 10.0.0.1 }");
    assert_eq!(&text[range(net.label.as_ref().unwrap().span)], "eth0");
    let addr = statement(&net.items[0]);
    assert_eq!(&text[range(addr.span)], "address 10.0.0.1");
    assert_eq!(addr.value.as_ref().unwrap().node, "10.0.0.1");
}

#[test]
fn spans_count_bytes_not_characters() {
    let text = "# ünïcödé\nhost é { nameserver ñ }";
    let (sources, ast) = parse(text);
    let host = block(&ast.items[0]);
    let label = host.label.as_ref().unwrap();
    assert_eq!(label.node, "é");
    assert_eq!(range(label.span), 19..21);
    assert_eq!(sources.location(label.span), "t.mln:2:6");
    let ns = statement(&host.items[0]);
    assert_eq!(sources.text(ns.value.as_ref().unwrap().span), "ñ");
}

#[test]
fn escapes_make_separators_literal() {
    let text = r"startup { echo a\;b \{x\} \# not a comment\\ }";
    let (sources, ast) = parse(text);
    let startup = block(&ast.items[0]);
    assert_eq!(startup.items.len(), 1);
    let line = statement(&startup.items[0]);
    assert_eq!(line.keyword.node, "echo");
    let value = line.value.as_ref().unwrap();
    assert_eq!(value.node, r"a;b {x} # not a comment\");
    // The span covers the text as written, escapes included.
    assert_eq!(sources.text(value.span), r"a\;b \{x\} \# not a comment\\");
}

#[test]
fn escaped_space_and_newline_stay_inside_a_word() {
    let (_, ast) = parse("a b\\ \\ c\nd x\\\ny\n");
    assert_eq!(ast.items.len(), 2);
    assert_eq!(statement(&ast.items[0]).value_or_flag(), "b  c");
    assert_eq!(statement(&ast.items[1]).value_or_flag(), "x\ny");
}

#[test]
fn escaped_keyword_resolves() {
    let (_, ast) = parse("\\m\\emory 1");
    assert_eq!(statement(&ast.items[0]).keyword.node, "memory");
}

#[test]
fn comments_end_at_the_newline_and_can_follow_a_statement() {
    let (_, ast) = parse("memory 64M # was 32M { not a block\nxen # flag\n");
    assert_eq!(ast.items.len(), 2);
    assert_eq!(statement(&ast.items[0]).value_or_flag(), "64M");
    assert_eq!(statement(&ast.items[1]).value, None);
}

#[test]
fn crlf_line_endings_are_whitespace() {
    let (_, ast) = parse("host a {\r\n  memory 64M\r\n}\r\n");
    let host = block(&ast.items[0]);
    assert_eq!(statement(&host.items[0]).value_or_flag(), "64M");
}

#[test]
fn list_blocks_keep_their_lines_in_order() {
    let (_, ast) = parse("startup {\n  echo 1\n  echo 2; echo 3\n  service x start\n}");
    let lines: Vec<String> = block(&ast.items[0])
        .items
        .iter()
        .map(|i| {
            let s = statement(i);
            format!("{} {}", s.keyword.node, s.value_or_flag())
        })
        .collect();
    assert_eq!(lines, ["echo 1", "echo 2", "echo 3", "service x start"]);
}

#[test]
fn nested_label_less_blocks() {
    let (_, ast) = parse("host a { groups { wheel { alice bob } } }");
    let groups = block(&block(&ast.items[0]).items[0]);
    let wheel = block(&groups.items[0]);
    assert_eq!(wheel.name.node, "wheel");
    assert_eq!(wheel.label, None);
    let members = statement(&wheel.items[0]);
    assert_eq!(
        (members.keyword.node.as_str(), members.value_or_flag()),
        ("alice", "bob")
    );
}

#[test]
fn variable_declaration_spans() {
    let text = "global {\n  $domain   =   example.org  \n}";
    let (sources, ast) = parse(text);
    let Item::Assign(a) = &block(&ast.items[0]).items[0] else {
        panic!()
    };
    assert_eq!(sources.text(a.name.span), "domain");
    assert_eq!(sources.text(a.value.span), "example.org");
    assert_eq!(sources.text(a.span), "$domain   =   example.org");
}

#[test]
fn errors_point_at_the_brace_with_line_and_column() {
    let mut sources = SourceMap::new();
    let text = "host a {\n  memory 1\n\nhost b {\n}\n";
    let d = parse_source(
        &mut sources,
        Path::new("t.mln"),
        text.as_bytes(),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(d.0[0].code, Code::UnclosedBlock);
    assert_eq!(sources.location(d.0[0].span.unwrap()), "t.mln:1:8");

    let mut sources = SourceMap::new();
    let text = "host a {\n}\n  }\n";
    let d = parse_source(
        &mut sources,
        Path::new("t.mln"),
        text.as_bytes(),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(d.0[0].code, Code::StrayClose);
    assert_eq!(sources.location(d.0[0].span.unwrap()), "t.mln:3:3");
}

#[test]
fn invalid_utf8_and_nul_are_reported_at_their_position() {
    let mut sources = SourceMap::new();
    let d = parse_source(
        &mut sources,
        Path::new("t.mln"),
        b"host a {\n  memory 6\xff4M\n}\n",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(d.0[0].code, Code::BadEncoding);
    assert_eq!(sources.location(d.0[0].span.unwrap()), "t.mln:2:11");

    let mut sources = SourceMap::new();
    let d = parse_source(
        &mut sources,
        Path::new("t.mln"),
        b"a\nbc\0",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(d.0[0].code, Code::BadEncoding);
    assert_eq!(sources.location(d.0[0].span.unwrap()), "t.mln:2:3");
}
