//! Blocks without a fixed meaning: conversion from the syntax tree, the
//! key-by-key merge of inherited blocks, and list-block lines.

use std::collections::{HashMap, HashSet};

use crate::model::{GenericBlock, GenericItem};
use crate::source::{Span, Spanned};
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
    expand: &mut dyn FnMut(&Spanned<String>) -> String,
    truncated: &mut Option<Span>,
) -> GenericBlock {
    convert_at(block, expand, truncated, 0)
}

fn convert_at(
    block: &Block,
    expand: &mut dyn FnMut(&Spanned<String>) -> String,
    truncated: &mut Option<Span>,
    depth: usize,
) -> GenericBlock {
    let mut items = Vec::with_capacity(block.items.len());
    for item in &block.items {
        items.push(match item {
            Item::Statement(s) => GenericItem::Statement {
                keyword: s.keyword.node.clone(),
                value: s.value.as_ref().map(&mut *expand),
            },
            Item::Assign(a) => GenericItem::Assign {
                name: a.name.node.clone(),
                value: a.value.node.clone(),
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
        name: block.name.node.clone(),
        label: block.label.as_ref().map(|l| l.node.clone()),
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

/// The lines of a list block: `keyword value` per statement, `$name =
/// value` per declaration, nested blocks flattened to `name label {`, their
/// lines, `}`. Each line carries the span of the statement it came from.
pub(crate) fn lines(block: &Block, truncated: &mut Option<Span>) -> Vec<Spanned<String>> {
    let mut out = Vec::with_capacity(block.items.len());
    if block.items.iter().all(|i| !matches!(i, Item::Block(_))) {
        // The common case, a flat list: no stack needed.
        out.extend(block.items.iter().map(line));
        return out;
    }
    // An explicit stack instead of recursion: (items, next index, depth).
    let mut stack: Vec<(&[Item], usize, Span)> = vec![(&block.items, 0, block.span)];
    while let Some((items, i, span)) = stack.pop() {
        let Some(item) = items.get(i) else {
            if stack.is_empty() {
                break;
            }
            out.push(Spanned::new("}".to_string(), span));
            continue;
        };
        stack.push((items, i + 1, span));
        match item {
            Item::Statement(_) | Item::Assign(_) => out.push(line(item)),
            Item::Block(b) => {
                if stack.len() >= MAX_NESTING {
                    truncated.get_or_insert(b.span);
                    continue;
                }
                let head = match &b.label {
                    Some(l) => format!("{} {} {{", b.name.node, l.node),
                    None => format!("{} {{", b.name.node),
                };
                out.push(Spanned::new(head, b.name.span));
                stack.push((&b.items, 0, b.span));
            }
        }
    }
    out
}

/// One statement or declaration as a list line.
fn line(item: &Item) -> Spanned<String> {
    match item {
        Item::Statement(s) => {
            let line = match &s.value {
                Some(v) => {
                    let mut l = String::with_capacity(s.keyword.node.len() + 1 + v.node.len());
                    l.push_str(&s.keyword.node);
                    l.push(' ');
                    l.push_str(&v.node);
                    l
                }
                None => s.keyword.node.clone(),
            };
            Spanned::new(line, s.span)
        }
        Item::Assign(a) => Spanned::new(format!("${} = {}", a.name.node, a.value.node), a.span),
        Item::Block(b) => Spanned::new(b.name.node.clone(), b.name.span),
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
