//! Property: a tree written out as text (words escaped, random spacing and
//! separators) parses back to the same keywords, values, names and nesting,
//! and every span reads back as the text written for it.

use std::path::Path;

use mln_lang::syntax::{parse_source, Item, Limits};
use mln_lang::SourceMap;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Node {
    Statement(String, Vec<String>),
    Assign(String, Vec<String>),
    Block(String, Option<String>, Vec<Node>),
}

/// A word: anything, separators and escapes included, never empty.
fn word() -> impl Strategy<Value = String> {
    "[a-z0-9;{}#\\\\$=\"é. \t]{1,8}".prop_filter("not only blanks", |w| !w.trim().is_empty())
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,6}"
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (word(), proptest::collection::vec(word(), 0..4)).prop_map(|(k, v)| Node::Statement(k, v)),
        (name(), proptest::collection::vec(word(), 0..4)).prop_map(|(n, v)| Node::Assign(n, v)),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        (
            word(),
            proptest::option::of(word()),
            proptest::collection::vec(inner, 0..6),
        )
            .prop_map(|(n, l, items)| Node::Block(n, l, items))
    })
}

/// `w` with every character that means something escaped.
fn escape(w: &str) -> String {
    let mut out = String::new();
    for c in w.chars() {
        if matches!(c, ';' | '{' | '}' | '#' | '\\' | ' ' | '\t' | '$' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Spacing between words: one or more blanks.
fn gap(i: usize) -> &'static str {
    [" ", "  ", "\t", " \t "][i % 4]
}

fn write(nodes: &[Node], out: &mut String, seed: &mut usize) {
    for n in nodes {
        *seed = seed.wrapping_mul(31).wrapping_add(7);
        match n {
            Node::Statement(k, v) => {
                out.push_str(&escape(k));
                for w in v {
                    out.push_str(gap(*seed));
                    out.push_str(&escape(w));
                }
            }
            Node::Assign(name, v) => {
                out.push('$');
                out.push_str(name);
                out.push_str([" = ", "=", " =", "= "][*seed % 4]);
                for (i, w) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(gap(*seed));
                    }
                    out.push_str(&escape(w));
                }
            }
            Node::Block(name, label, items) => {
                out.push_str(&escape(name));
                if let Some(l) = label {
                    out.push(' ');
                    out.push_str(&escape(l));
                }
                out.push_str(" {\n");
                write(items, out, seed);
                out.push('}');
            }
        }
        out.push_str(["\n", ";", " ; ", "\r\n", " # comment\n"][*seed % 5]);
    }
}

fn same(expected: &[Node], got: &[Item], sources: &SourceMap) -> Result<(), TestCaseError> {
    prop_assert_eq!(expected.len(), got.len());
    for (e, g) in expected.iter().zip(got) {
        match (e, g) {
            (Node::Statement(k, v), Item::Statement(s)) => {
                prop_assert_eq!(&s.keyword.node, k);
                prop_assert_eq!(sources.text(s.keyword.span), escape(k));
                let value = v.join(" ");
                prop_assert_eq!(
                    s.value.as_ref().map(|v| v.node.to_string()),
                    (!v.is_empty()).then_some(value)
                );
            }
            (Node::Assign(n, v), Item::Assign(a)) => {
                prop_assert_eq!(&a.name.node, n);
                prop_assert_eq!(sources.text(a.name.span), n);
                prop_assert_eq!(&a.value.node, &v.join(" "));
            }
            (Node::Block(n, l, items), Item::Block(b)) => {
                prop_assert_eq!(&b.name.node, n);
                prop_assert_eq!(b.label.as_ref().map(|l| l.node.to_string()), l.clone());
                let closed = sources.text(b.span).ends_with('}');
                prop_assert!(closed, "block span {:?}", b.span);
                same(items, &b.items, sources)?;
            }
            (e, g) => prop_assert!(false, "expected {:?}, got {:?}", e, g),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn written_trees_parse_back(nodes in proptest::collection::vec(node(), 0..8), seed in 0usize..1000) {
        let mut text = String::new();
        let mut s = seed;
        write(&nodes, &mut text, &mut s);
        let mut sources = SourceMap::new();
        let parsed = parse_source(&mut sources, Path::new("t.mln"), text.as_bytes(), &Limits::default());
        match parsed {
            Ok(ast) => same(&nodes, &ast.items, &sources)?,
            Err(d) => prop_assert!(false, "{}\n{}", text, mln_lang::render(&sources, &d.0, false)),
        }
    }
}
