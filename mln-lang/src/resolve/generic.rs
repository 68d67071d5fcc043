//! Blocks without a fixed meaning: conversion from the syntax tree, the
//! key-by-key merge of inherited blocks, and list-block lines.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::model::{GenericBlock, GenericItem};
use crate::source::{SourceMap, Span, Spanned};
use crate::syntax::Text;
use crate::syntax::{Block, Item};

/// How deep blocks may nest inside a host, superclass or generic block;
/// deeper content is dropped with an E0021. Above the parser's own ceiling,
/// so it only guards syntax trees built by programs; it keeps every
/// recursive walk here bounded.
pub(crate) const MAX_NESTING: usize = crate::syntax::NESTING_CEILING + 8;

/// Convert `block`, passing every value through `expand`. Sets `*truncated`
/// when nesting went past [`MAX_NESTING`].
pub(crate) fn convert(
    block: &Block,
    expand: &mut dyn FnMut(&Spanned<Text>) -> String,
    truncated: &mut Option<Span>,
) -> GenericBlock {
    convert_at(block, expand, truncated, 0)
}

fn convert_at(
    block: &Block,
    expand: &mut dyn FnMut(&Spanned<Text>) -> String,
    truncated: &mut Option<Span>,
    depth: usize,
) -> GenericBlock {
    let mut items = Vec::with_capacity(block.items.len());
    for item in &block.items {
        items.push(match item {
            Item::Statement(s) => GenericItem::Statement {
                keyword: s.keyword.node.to_owned_string(),
                value: s.value.as_ref().map(&mut *expand),
            },
            Item::Assign(a) => GenericItem::Assign {
                name: a.name.node.to_owned_string(),
                value: a.value.node.to_owned_string(),
            },
            Item::Block(b) => {
                if depth + 1 >= MAX_NESTING {
                    truncated.get_or_insert(b.span);
                    continue;
                }
                GenericItem::Block(convert_at(b, expand, truncated, depth + 1))
            }
        });
    }
    GenericBlock {
        name: block.name.node.to_owned_string(),
        label: block.label.as_ref().map(|l| l.node.to_owned_string()),
        items,
    }
}

/// Merge `near` (the host's, which wins) over `far` (inherited): far's
/// items that near does not override, then near's items, blocks present in
/// both merged the same way.
pub(crate) fn merge(near: GenericBlock, far: &GenericBlock) -> GenericBlock {
    merge_at(near, far, 0)
}

/// What an item overrides in an inherited block: a statement its keyword,
/// a declaration its variable, a block its name and label.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Statement(&'a str),
    Assign(&'a str),
    Block(&'a str, Option<&'a str>),
}

fn key(item: &GenericItem) -> Key<'_> {
    match item {
        GenericItem::Statement { keyword, .. } => Key::Statement(keyword),
        GenericItem::Assign { name, .. } => Key::Assign(name),
        GenericItem::Block(b) => Key::Block(&b.name, b.label.as_deref()),
    }
}

fn merge_at(near: GenericBlock, far: &GenericBlock, depth: usize) -> GenericBlock {
    // Hash sets and maps keep this linear however long the blocks are.
    let overridden: HashSet<Key<'_>> = near.items.iter().map(key).collect();
    let mut items: Vec<GenericItem> = far
        .items
        .iter()
        .filter(|i| !overridden.contains(&key(i)))
        .cloned()
        .collect();
    drop(overridden);
    let mut inherited: HashMap<(&str, Option<&str>), &GenericBlock> = HashMap::new();
    for f in &far.items {
        if let GenericItem::Block(f) = f {
            inherited.entry((&f.name, f.label.as_deref())).or_insert(f);
        }
    }
    for item in near.items {
        match item {
            GenericItem::Block(b) if depth < MAX_NESTING => {
                let found = inherited
                    .get(&(b.name.as_str(), b.label.as_deref()))
                    .copied();
                match found {
                    Some(f) => items.push(GenericItem::Block(merge_at(b, f, depth + 1))),
                    None => items.push(GenericItem::Block(b)),
                }
            }
            other => items.push(other),
        }
    }
    GenericBlock {
        name: near.name,
        label: near.label,
        items,
    }
}

/// Merge a list of blocks, nearest last (as they come when folding a
/// superclass chain from the far end), into one list keyed by name and
/// label, in first-appearance order.
pub(crate) fn merge_all(layers: Vec<Vec<GenericBlock>>) -> Vec<GenericBlock> {
    let mut out: Vec<GenericBlock> = Vec::new();
    let mut index: HashMap<(String, Option<String>), usize> = HashMap::new();
    for layer in layers {
        for b in layer {
            match index.get(&(b.name.clone(), b.label.clone())) {
                Some(&i) => {
                    if let Some(slot) = out.get_mut(i) {
                        let far = std::mem::take(slot);
                        *slot = merge(b, &far);
                    }
                }
                None => {
                    index.insert((b.name.clone(), b.label.clone()), out.len());
                    out.push(b);
                }
            }
        }
    }
    out
}

/// One line of a list block and the span of the statement it came from.
/// The text is borrowed from the source when it is written there exactly
/// (`keyword value`, single-spaced), as nearly every line is, so reading a
/// list copies nothing until its lines go into the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line<'x> {
    pub text: Cow<'x, str>,
    pub span: Span,
}

/// The lines of a list block, appended to `out`: `keyword value` per
/// statement, `$name = value` per declaration, nested blocks flattened to
/// `name label {`, their lines, `}`. `sources` holds the text the block was
/// read from.
pub(crate) fn lines_into<'x>(
    block: &'x Block,
    sources: &'x SourceMap,
    out: &mut Vec<Line<'x>>,
    truncated: &mut Option<Span>,
) {
    out.reserve(block.items.len());
    if block.items.iter().all(|i| !matches!(i, Item::Block(_))) {
        // The common case, a flat list: no stack needed.
        out.extend(block.items.iter().map(|i| line(i, sources)));
        return;
    }
    // An explicit stack instead of recursion: (items, next index, depth).
    let mut stack: Vec<(&[Item], usize, Span)> = vec![(&block.items, 0, block.span)];
    while let Some((items, i, span)) = stack.pop() {
        let Some(item) = items.get(i) else {
            if stack.is_empty() {
                break;
            }
            out.push(Line {
                text: Cow::Borrowed("}"),
                span,
            });
            continue;
        };
        stack.push((items, i + 1, span));
        match item {
            Item::Statement(_) | Item::Assign(_) => out.push(line(item, sources)),
            Item::Block(b) => {
                if stack.len() >= MAX_NESTING {
                    truncated.get_or_insert(b.span);
                    continue;
                }
                let head = match &b.label {
                    Some(l) => format!("{} {} {{", b.name.node, l.node),
                    None => format!("{} {{", b.name.node),
                };
                out.push(Line {
                    text: Cow::Owned(head),
                    span: b.name.span,
                });
                stack.push((&b.items, 0, b.span));
            }
        }
    }
}

/// One statement or declaration as a list line.
fn line<'x>(item: &'x Item, sources: &'x SourceMap) -> Line<'x> {
    match item {
        Item::Statement(s) => {
            let text = match &s.value {
                Some(v) => {
                    let (k, v) = (s.keyword.node.as_str(), v.node.as_str());
                    let written = sources.text(s.span);
                    let exact = written.len() == k.len() + 1 + v.len()
                        && written.starts_with(k)
                        && written.as_bytes().get(k.len()) == Some(&b' ')
                        && written.ends_with(v);
                    if exact {
                        Cow::Borrowed(written)
                    } else {
                        let mut l = String::with_capacity(k.len() + 1 + v.len());
                        l.push_str(k);
                        l.push(' ');
                        l.push_str(v);
                        Cow::Owned(l)
                    }
                }
                None => Cow::Borrowed(s.keyword.node.as_str()),
            };
            Line { text, span: s.span }
        }
        Item::Assign(a) => Line {
            text: Cow::Owned(format!("${} = {}", a.name.node, a.value.node)),
            span: a.span,
        },
        Item::Block(b) => Line {
            text: Cow::Borrowed(b.name.node.as_str()),
            span: b.name.span,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(k: &str, v: &str) -> GenericItem {
        GenericItem::Statement {
            keyword: k.into(),
            value: Some(v.into()),
        }
    }

    fn block(name: &str, items: Vec<GenericItem>) -> GenericBlock {
        GenericBlock {
            name: name.into(),
            label: None,
            items,
        }
    }

    #[test]
    fn list_lines_borrow_the_source_when_written_single_spaced() {
        let text =
            "startup {\n    echo a b\n    echo  a\\;b\n    halt\n    $x = 1\n    n { k v }\n}\n";
        let mut sources = SourceMap::new();
        let ast = crate::syntax::parse_source(
            &mut sources,
            std::path::Path::new("t.mln"),
            text.as_bytes(),
            &crate::syntax::Limits::default(),
        )
        .unwrap();
        let Item::Block(block) = &ast.items[0] else {
            panic!("not a block")
        };
        let mut out = Vec::new();
        lines_into(block, &sources, &mut out, &mut None);
        let texts: Vec<&str> = out.iter().map(|l| l.text.as_ref()).collect();
        assert_eq!(
            texts,
            ["echo a b", "echo a;b", "halt", "$x = 1", "n {", "k v", "}"]
        );
        let borrowed: Vec<bool> = out
            .iter()
            .map(|l| matches!(l.text, Cow::Borrowed(_)))
            .collect();
        assert_eq!(borrowed, [true, false, true, false, false, true, true]);
        assert_eq!(sources.text(out[0].span), "echo a b");
    }

    #[test]
    fn merge_keeps_inherited_keys_and_lets_the_host_win() {
        let far = block(
            "plugin",
            vec![
                st("a", "1"),
                st("b", "1"),
                GenericItem::Block(block("x", vec![st("p", "1"), st("q", "1")])),
            ],
        );
        let near = block(
            "plugin",
            vec![
                st("b", "2"),
                GenericItem::Block(block("x", vec![st("q", "2")])),
            ],
        );
        let m = merge(near, &far);
        assert_eq!(
            m.items,
            vec![
                st("a", "1"),
                st("b", "2"),
                GenericItem::Block(block("x", vec![st("p", "1"), st("q", "2")]))
            ]
        );
        // Merging the result over the same parent again changes nothing.
        assert_eq!(merge(m.clone(), &far), m);
    }
}
