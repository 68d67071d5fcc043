//! Superclasses: their parents, variables, and the checks that every
//! chain ends (E0005 unknown superclass, E0006 cycle), all iterative.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::diag::{Code, Diagnostic};
use crate::source::Spanned;
use crate::syntax::Item;
use crate::syntax::Text;

use super::collect::Collected;
use super::values::closest;
use super::Ctx;

/// One superclass: its blocks, the parent it names, its variables.
pub(crate) struct Superclass<'a> {
    /// The items of all its blocks, in order.
    pub items: Vec<&'a Item>,
    pub parent: Option<&'a Spanned<Text>>,
    pub variables: BTreeMap<String, String>,
}

/// Every superclass of the project, by name.
pub(crate) struct Superclasses<'a> {
    by_name: HashMap<&'a str, Superclass<'a>>,
}

/// The last `superclass NAME` statement among `items`.
pub(crate) fn superclass_of<'a>(
    items: impl DoubleEndedIterator<Item = &'a Item>,
) -> Option<&'a Spanned<Text>> {
    items.rev().find_map(|i| match i {
        Item::Statement(s) if s.keyword.node == "superclass" => s.value.as_ref(),
        _ => None,
    })
}

/// Variables declared among `items` (later declarations win).
pub(crate) fn variables_of<'a>(items: impl Iterator<Item = &'a Item>) -> BTreeMap<String, String> {
    items
        .filter_map(|i| match i {
            Item::Assign(a) => Some((
                a.name.node.to_owned_string(),
                a.value.node.to_owned_string(),
            )),
            _ => None,
        })
        .collect()
}

impl<'a> Superclasses<'a> {
    /// Read every superclass and report unknown parents and cycles.
    pub fn new(ctx: &mut Ctx<'_>, collected: &'a Collected<'a>) -> Self {
        let mut by_name = HashMap::new();
        let mut order = Vec::new();
        for (name, blocks) in collected.superclasses.iter() {
            let items: Vec<&Item> = blocks.iter().flat_map(|b| b.items.iter()).collect();
            let parent = superclass_of(items.iter().copied());
            let variables = variables_of(items.iter().copied());
            by_name.insert(
                name,
                Superclass {
                    items,
                    parent,
                    variables,
                },
            );
            order.push(name);
        }
        let supers = Superclasses { by_name };
        for name in &order {
            if let Some(p) = supers.by_name.get(name).and_then(|s| s.parent) {
                supers.check_exists(ctx, p);
            }
        }
        supers.report_cycles(ctx, &order);
        supers
    }

    /// The name of the superclass called `name`, borrowed from the
    /// project, when there is one.
    pub fn key(&self, name: &str) -> Option<&'a str> {
        self.by_name.get_key_value(name).map(|(k, _)| *k)
    }

    /// E0005 unless `reference` names a superclass; true when it does.
    pub fn check_exists(&self, ctx: &mut Ctx<'_>, reference: &Spanned<Text>) -> bool {
        if self.by_name.contains_key(reference.node.as_str()) {
            return true;
        }
        let names: Vec<&str> = self.by_name.keys().copied().collect();
        let mut d = Diagnostic::new(
            Code::UnknownSuperclass,
            Some(reference.span),
            format!("unknown superclass `{}`", reference.node),
        );
        if let Some(c) = closest(&reference.node, &names) {
            d = d.with_help(format!("did you mean `{c}`?"));
        }
        ctx.report(d);
        false
    }

    /// The chain starting at `first`, nearest first, stopping before an
    /// unknown name or a name already in the chain (both reported
    /// elsewhere).
    pub fn chain(&self, first: &str) -> Vec<(&str, &Superclass<'a>)> {
        let mut out: Vec<(&str, &Superclass<'a>)> = Vec::new();
        // Short chains (all real ones) are checked for repeats by a scan;
        // long ones switch to a set.
        let mut seen: Option<HashSet<&str>> = None;
        let mut next = Some(first);
        while let Some(name) = next {
            let Some((&key, s)) = self.by_name.get_key_value(name) else {
                break;
            };
            let repeated = match &mut seen {
                Some(set) => !set.insert(key),
                None if out.len() < 32 => out.iter().any(|(n, _)| *n == key),
                None => {
                    let mut set: HashSet<&str> = out.iter().map(|(n, _)| *n).collect();
                    let repeated = !set.insert(key);
                    seen = Some(set);
                    repeated
                }
            };
            if repeated {
                break;
            }
            out.push((key, s));
            next = s.parent.map(|p| p.node.as_str());
        }
        out
    }

    /// E0006 once per cycle, at the `superclass` statement that closes it.
    fn report_cycles(&self, ctx: &mut Ctx<'_>, order: &[&'a str]) {
        // 0: not seen, 1: on the current walk, 2: finished.
        let mut state: HashMap<&str, u8> = HashMap::new();
        for &start in order {
            let mut path: Vec<&str> = Vec::new();
            let mut cur = Some(start);
            while let Some(name) = cur {
                let Some((&key, s)) = self.by_name.get_key_value(name) else {
                    break;
                };
                match state.get(key).copied().unwrap_or(0) {
                    0 => {
                        state.insert(key, 1);
                        path.push(key);
                        cur = s.parent.map(|p| p.node.as_str());
                    }
                    1 => {
                        let from = path.iter().position(|&n| n == key).unwrap_or(0);
                        let members = &path[from..];
                        let closing = path
                            .last()
                            .and_then(|n| self.by_name.get(n))
                            .and_then(|s| s.parent);
                        if let Some(at) = closing {
                            let mut shown: Vec<String> =
                                members.iter().take(8).map(|n| format!("`{n}`")).collect();
                            if members.len() > 8 {
                                shown.push(format!("... ({} superclasses)", members.len()));
                            }
                            shown.push(format!("`{key}`"));
                            let mut d = Diagnostic::new(
                                Code::SuperclassCycle,
                                Some(at.span),
                                format!("superclass cycle: {}", shown.join(" -> ")),
                            );
                            for n in members.iter().take(8) {
                                if let Some(p) = self.by_name.get(n).and_then(|s| s.parent) {
                                    if p.span != at.span {
                                        d = d.with_label(
                                            p.span,
                                            format!("`{n}` inherits from `{}` here", p.node),
                                        );
                                    }
                                }
                            }
                            ctx.report(d);
                        }
                        break;
                    }
                    _ => break,
                }
            }
            for n in path {
                state.insert(n, 2);
            }
        }
    }
}
