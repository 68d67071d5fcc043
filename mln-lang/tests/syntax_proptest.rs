//! The parser never panics, and whatever it returns points inside the text:
//! every span of the tree and of every diagnostic is in bounds, on char
//! boundaries, and renders.

use std::path::Path;

use mln_lang::syntax::{parse_source, Item, Limits};
use mln_lang::{SourceMap, Span};
use proptest::prelude::*;

fn check_span(sources: &SourceMap, span: Span) {
    let file = sources.get(span.file).expect("span names a known file");
    assert!(span.start <= span.end, "{span:?}");
    assert!(
        file.text.get(span.range()).is_some(),
        "span {span:?} outside or inside a char of {:?}",
        file.text
    );
}

fn run(bytes: &[u8]) {
    let limits = Limits {
        max_nesting: 16,
        max_errors: 20,
        ..Limits::default()
    };
    let mut sources = SourceMap::new();
    match parse_source(&mut sources, Path::new("fuzz.mln"), bytes, &limits) {
        Ok(ast) => {
            let mut stack: Vec<&Item> = ast.items.iter().collect();
            while let Some(item) = stack.pop() {
                check_span(&sources, item.span());
                match item {
                    Item::Statement(s) => {
                        check_span(&sources, s.keyword.span);
                        assert!(!s.keyword.node.is_empty());
                        if let Some(v) = &s.value {
                            check_span(&sources, v.span);
                            assert!(!v.node.is_empty());
                        }
                    }
                    Item::Assign(a) => {
                        check_span(&sources, a.name.span);
                        check_span(&sources, a.value.span);
                    }
                    Item::Block(b) => {
                        check_span(&sources, b.name.span);
                        if let Some(l) = &b.label {
                            check_span(&sources, l.span);
                        }
                        stack.extend(b.items.iter());
                    }
                }
            }
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in diags.iter() {
                if let Some(s) = d.span {
                    check_span(&sources, s);
                }
                for l in &d.labels {
                    check_span(&sources, l.span);
                }
            }
            let rendered = mln_lang::render(&sources, &diags.0, false);
            assert!(rendered.contains("error["), "{rendered}");
        }
    }
}

/// Pieces that mean something to the lexer, plus some that do not.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just(";".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\\".to_string()),
        Just("#".to_string()),
        Just("#include ".to_string()),
        Just("$".to_string()),
        Just("=".to_string()),
        Just("host".to_string()),
        Just("network eth0".to_string()),
        Just("é".to_string()),
        Just("\u{feff}".to_string()),
        "[a-z0-9_$=.]{1,6}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        run(&bytes);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(token(), 0..120)) {
        run(tokens.concat().as_bytes());
    }

    #[test]
    fn balanced_soup_parses(words in proptest::collection::vec("[a-z]{1,5}", 1..40), depth in 0usize..10) {
        // Statements inside `depth` nested blocks always parse.
        let mut text = String::new();
        for _ in 0..depth {
            text.push_str("blk {\n");
        }
        for w in &words {
            text.push_str(w);
            text.push_str(" v\n");
        }
        for _ in 0..depth {
            text.push_str("}\n");
        }
        let mut sources = SourceMap::new();
        let ast = parse_source(&mut sources, Path::new("t.mln"), text.as_bytes(), &Limits::default());
        prop_assert!(ast.is_ok());
    }
}
