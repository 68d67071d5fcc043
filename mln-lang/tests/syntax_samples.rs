//! Every sample project in `projects/` parses without a diagnostic.

use std::path::{Path, PathBuf};

use mln_lang::syntax::{parse_path, Item, Limits};
use mln_lang::SourceMap;

fn samples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../projects");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "mln") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn all_sample_projects_parse() {
    let files = samples();
    assert!(files.len() >= 5, "found only {files:?}");
    for path in files {
        let mut sources = SourceMap::new();
        let ast = parse_path(&mut sources, &path, &Limits::default()).unwrap_or_else(|d| {
            panic!(
                "{}:\n{}",
                path.display(),
                mln_lang::render(&sources, &d.0, false)
            )
        });
        let first = ast.items.first().expect("an empty project");
        let Item::Block(global) = first else {
            panic!("{}: first item is not a block", path.display());
        };
        assert_eq!(global.name.node, "global", "{}", path.display());
    }
}

#[test]
fn sample_statements_cover_their_source_text() {
    // Every statement's span, read back, starts with its keyword and
    // (for these files, which use no escapes) ends with its value.
    for path in samples() {
        let mut sources = SourceMap::new();
        let ast = parse_path(&mut sources, &path, &Limits::default()).unwrap();
        let mut stack: Vec<&Item> = ast.items.iter().collect();
        while let Some(item) = stack.pop() {
            match item {
                Item::Statement(s) => {
                    let text = sources.text(s.span);
                    assert!(text.starts_with(s.keyword.node.as_str()), "{text:?}");
                    if let Some(v) = &s.value {
                        assert_eq!(sources.text(v.span), v.node);
                        assert!(text.ends_with(v.node.as_str()), "{text:?}");
                    }
                }
                Item::Assign(a) => {
                    assert_eq!(sources.text(a.name.span), a.name.node);
                    assert_eq!(sources.text(a.value.span), a.value.node);
                }
                Item::Block(b) => {
                    let text = sources.text(b.span);
                    assert!(text.starts_with(b.name.node.as_str()), "{text:?}");
                    assert!(text.ends_with('}'), "{text:?}");
                    stack.extend(b.items.iter());
                }
            }
        }
    }
}

#[test]
fn superclass_sample_has_the_expected_shape() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../projects/superclass.mln");
    let mut sources = SourceMap::new();
    let ast = parse_path(&mut sources, &path, &Limits::default()).unwrap();
    let headers: Vec<String> = ast
        .items
        .iter()
        .map(|i| match i {
            Item::Block(b) => match &b.label {
                Some(l) => format!("{} {}", b.name.node, l.node),
                None => b.name.node.to_string(),
            },
            other => panic!("unexpected top-level item {other:?}"),
        })
        .collect();
    assert_eq!(
        headers,
        [
            "global",
            "superclass base",
            "superclass web",
            "switch front",
            "host www1",
            "host www2",
            "host monitor"
        ]
    );
    let Item::Block(global) = &ast.items[0] else {
        unreachable!()
    };
    let Item::Assign(domain) = &global.items[1] else {
        panic!("{:?}", global.items[1]);
    };
    assert_eq!(domain.name.node, "domain");
    assert_eq!(domain.value.node, "example.org");
}
