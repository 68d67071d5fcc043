//! First pass: sort the top-level items into globals, hosts, switches,
//! superclasses and generic blocks, blocks of one name together.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic};
use crate::model::BlockOrigin;
use crate::syntax::{Ast, Block, Item};

use super::Ctx;

/// Named blocks in first-appearance order; later blocks with the same name
/// are merged into the first (and reported by the checker as duplicates).
pub(crate) struct Named<'a> {
    list: Vec<Entry<'a>>,
    /// Names borrowed from the syntax tree: no copy per host.
    index: HashMap<&'a str, usize>,
}

/// The blocks of one name. Nearly every name has one block, kept inline:
/// a project of many hosts then needs no vector per host.
struct Entry<'a> {
    name: &'a str,
    first: &'a Block,
    /// Every block, `first` included, once there is a second; else empty.
    all: Vec<&'a Block>,
}

impl<'a> Entry<'a> {
    fn blocks(&self) -> &[&'a Block] {
        if self.all.is_empty() {
            std::slice::from_ref(&self.first)
        } else {
            &self.all
        }
    }
}

impl<'a> Named<'a> {
    fn new() -> Self {
        Named {
            list: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Room for `n` names (at most one per top-level item, so never more
    /// than the input holds).
    fn with_capacity(n: usize) -> Self {
        Named {
            list: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
        }
    }

    /// Add `block` under `name`; true when it is the first of that name.
    fn add(&mut self, name: &'a str, block: &'a Block) -> bool {
        let next = self.list.len();
        let i = *self.index.entry(name).or_insert(next);
        match self.list.get_mut(i) {
            Some(entry) => {
                if entry.all.is_empty() {
                    entry.all.push(entry.first);
                }
                entry.all.push(block);
                false
            }
            None => {
                self.list.push(Entry {
                    name,
                    first: block,
                    all: Vec::new(),
                });
                true
            }
        }
    }

    /// Names and their blocks, in first-appearance order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &[&'a Block])> + '_ {
        self.list.iter().map(|e| (e.name, e.blocks()))
    }

    /// The name at `i` (in first-appearance order) and its blocks.
    pub fn get(&self, i: usize) -> Option<(&'a str, &[&'a Block])> {
        self.list.get(i).map(|e| (e.name, e.blocks()))
    }

    /// How many names there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

/// Where hosts appear among the top-level items, for ordering generated
/// hosts: a written host, or a `global` block (which may hold `autoenum`).
pub(crate) enum Order<'a> {
    /// Index into [`Collected::hosts`].
    Host(usize),
    /// A `global` block.
    Global(&'a Block),
}

/// The top-level items, sorted.
pub(crate) struct Collected<'a> {
    pub globals: Vec<&'a Block>,
    pub hosts: Named<'a>,
    pub order: Vec<Order<'a>>,
    pub switches: Named<'a>,
    pub superclasses: Named<'a>,
    pub blocks: Vec<&'a Block>,
}

pub(crate) fn collect<'a>(ctx: &mut Ctx<'_>, ast: &'a Ast) -> Collected<'a> {
    let mut c = Collected {
        globals: Vec::new(),
        hosts: Named::with_capacity(ast.items.len()),
        order: Vec::with_capacity(ast.items.len()),
        switches: Named::new(),
        superclasses: Named::new(),
        blocks: Vec::new(),
    };
    for item in &ast.items {
        let b = match item {
            Item::Block(b) => b,
            Item::Statement(s) => {
                ctx.report(
                    Diagnostic::new(
                        Code::UnknownKeyword,
                        Some(s.keyword.span),
                        format!(
                            "statement `{}` outside any block is ignored",
                            s.keyword.node
                        ),
                    )
                    .with_help("put it inside `global { ... }` or a host"),
                );
                continue;
            }
            Item::Assign(a) => {
                ctx.report(
                    Diagnostic::new(
                        Code::UnknownKeyword,
                        Some(a.span),
                        format!("variable `${}` outside any block is ignored", a.name.node),
                    )
                    .with_help("declare it inside `global { ... }`"),
                );
                continue;
            }
        };
        let kind = b.name.node.as_str();
        if !matches!(kind, "host" | "switch" | "superclass") {
            if kind == "global" {
                c.globals.push(b);
                c.order.push(Order::Global(b));
            } else {
                super::lint::near_miss_block(
                    ctx,
                    &b.name,
                    &["global", "host", "switch", "superclass"],
                );
                c.blocks.push(b);
            }
            continue;
        }
        let Some(label) = &b.label else {
            ctx.report(
                Diagnostic::new(
                    Code::BadValue,
                    Some(b.name.span),
                    format!("`{kind}` block without a name"),
                )
                .with_help(format!("write `{kind} NAME {{ ... }}`")),
            );
            continue;
        };
        match kind {
            "host" => {
                if c.hosts.add(&label.node, b) {
                    c.order.push(Order::Host(c.hosts.len() - 1));
                }
            }
            "switch" => {
                c.switches.add(&label.node, b);
            }
            _ => {
                c.superclasses.add(&label.node, b);
            }
        }
    }
    c
}

/// The origin of a named block: the first block, its name, the names of
/// the others with the same name (`rest`).
pub(crate) fn block_origin(first: &Block, rest: &[&Block]) -> BlockOrigin {
    BlockOrigin {
        span: first.span,
        name: label_span(first),
        duplicates: rest.iter().map(|b| label_span(b)).collect(),
        keywords: Default::default(),
    }
}

/// The span of a block's label, or of its name when it has none.
pub(crate) fn label_span(b: &Block) -> crate::source::Span {
    b.label.as_ref().map_or(b.name.span, |l| l.span)
}
