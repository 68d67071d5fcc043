//! Hostile inputs: deep nesting, huge lines, huge files. Each is handled or
//! reported as E0021, never a stack overflow. No timing assertions here; the
//! benchmarks measure speed.

use std::path::Path;

use mln_lang::syntax::{parse_source, Ast, Item, Limits, NESTING_CEILING};
use mln_lang::{Code, Diagnostics, SourceMap};

fn parse_with(text: &[u8], limits: &Limits) -> (SourceMap, Result<Ast, Diagnostics>) {
    let mut sources = SourceMap::new();
    let r = parse_source(&mut sources, Path::new("t.mln"), text, limits);
    (sources, r)
}

#[test]
fn two_hundred_thousand_nested_blocks_hit_the_nesting_limit() {
    let n = 200_000;
    let text = format!("{}{}", "a {\n".repeat(n), "}\n".repeat(n));
    let (sources, r) = parse_with(text.as_bytes(), &Limits::default());
    let d = r.unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    assert_eq!(d.0[0].code, Code::LimitExceeded);
    // The first brace past the limit, on line 65.
    assert_eq!(sources.location(d.0[0].span.unwrap()), "t.mln:65:3");
}

#[test]
fn an_unbounded_nesting_limit_is_still_capped() {
    let n = 200_000;
    let text = "a{".repeat(n);
    let limits = Limits {
        max_nesting: usize::MAX,
        ..Limits::default()
    };
    let (_, r) = parse_with(text.as_bytes(), &limits);
    let d = r.unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(d.0[0].code, Code::LimitExceeded);
    // The brace that would open block number NESTING_CEILING + 1.
    assert_eq!(d.0[0].span.unwrap().start as usize, 2 * NESTING_CEILING + 1);
}

#[test]
fn nesting_at_the_limit_parses() {
    let n = Limits::default().max_nesting;
    let text = format!("{}{}", "a {\n".repeat(n), "}\n".repeat(n));
    let (_, r) = parse_with(text.as_bytes(), &Limits::default());
    let ast = r.unwrap();
    let mut depth = 0;
    let mut items = &ast.items;
    while let Some(Item::Block(b)) = items.first() {
        depth += 1;
        items = &b.items;
    }
    assert_eq!(depth, n);
}

#[test]
fn two_hundred_thousand_stray_braces_stop_at_the_error_cap() {
    let (_, r) = parse_with("}\n".repeat(200_000).as_bytes(), &Limits::default());
    let d = r.unwrap_err();
    assert_eq!(d.len(), Limits::default().max_errors);
    assert!(d.iter().all(|d| d.code == Code::StrayClose));
}

#[test]
fn a_five_megabyte_line_parses() {
    let words = 5 * 1024 * 1024 / 7 + 1;
    let mut text = String::from("host a {\n  startup {\n    echo");
    for i in 0..words {
        text.push_str(&format!(" w{:05}", i % 100_000));
    }
    text.push_str("\n  }\n}\n");
    assert!(text.len() > 5 * 1024 * 1024);
    let (sources, r) = parse_with(text.as_bytes(), &Limits::default());
    let ast = r.unwrap();
    let Item::Block(host) = &ast.items[0] else {
        panic!()
    };
    let Item::Block(startup) = &host.items[0] else {
        panic!()
    };
    let Item::Statement(echo) = &startup.items[0] else {
        panic!()
    };
    let value = echo.value.as_ref().unwrap();
    assert_eq!(value.node.split(' ').count(), words);
    assert_eq!(sources.text(value.span), value.node);
}

#[test]
fn a_five_megabyte_line_of_escapes_and_odd_spacing_parses() {
    let mut text = String::from("x");
    for _ in 0..(5 * 1024 * 1024 / 6) {
        text.push_str(" \t\\;a ");
    }
    let (_, r) = parse_with(text.as_bytes(), &Limits::default());
    let ast = r.unwrap();
    let Item::Statement(x) = &ast.items[0] else {
        panic!()
    };
    assert!(x.value_or_flag().starts_with(";a ;a"));
}

#[test]
fn a_line_over_the_limit_is_reported() {
    let limits = Limits {
        max_line_bytes: 100,
        ..Limits::default()
    };
    let text = format!("ok 1\nlong {}\n", "x".repeat(200));
    let (sources, r) = parse_with(text.as_bytes(), &limits);
    let d = r.unwrap_err();
    assert_eq!(d.0[0].code, Code::LimitExceeded);
    assert_eq!(sources.location(d.0[0].span.unwrap()), "t.mln:2:1");
}

#[test]
fn a_file_over_the_limit_is_reported() {
    let limits = Limits {
        max_file_bytes: 10,
        ..Limits::default()
    };
    let (_, r) = parse_with(b"host a {\n}\n", &limits);
    assert_eq!(r.unwrap_err().0[0].code, Code::LimitExceeded);
}

#[test]
fn many_statements_on_one_line() {
    let n = 500_000;
    let text = "xen;".repeat(n);
    let (_, r) = parse_with(text.as_bytes(), &Limits::default());
    assert_eq!(r.unwrap().items.len(), n);
}

#[test]
fn deep_nesting_needs_no_stack() {
    // The parser keeps open blocks on the heap: a 64 KiB stack is enough
    // for 200,000 unclosed blocks and for a thousand closed ones.
    let worker = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let limits = Limits {
                max_nesting: usize::MAX,
                ..Limits::default()
            };
            let mut sources = SourceMap::new();
            let open = "a {\n".repeat(200_000);
            let r = parse_source(&mut sources, Path::new("t.mln"), open.as_bytes(), &limits);
            let first = r.map(|_| ()).unwrap_err().0[0].code;

            let n = 1_000;
            let closed = format!("{}{}", "a {".repeat(n), "}".repeat(n));
            let r = parse_source(&mut sources, Path::new("u.mln"), closed.as_bytes(), &limits);
            // Only the item count leaves the thread: dropping a deep tree
            // is recursive, and that is the caller's business.
            let items = r.as_ref().map(|a| a.items.len()).unwrap_or(0);
            std::mem::forget(r);
            (first, items)
        })
        .unwrap();
    let (first, items) = worker.join().unwrap();
    assert_eq!(first, Code::LimitExceeded);
    assert_eq!(items, 1);
}
