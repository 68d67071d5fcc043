//! MLN's data tree, as `mln parse` prints it: with no path, the project
//! as written ([`syntax_tree`]); with `-H PATH`, the part at `PATH` with
//! superclasses and variables applied ([`query_tree`]).
//!
//! MLN 1.0.8 kept the tree in Perl hashes and printed it in hash order,
//! which changes from run to run; this prints it in file order.

use std::fmt::Write as _;

use super::{host, interface, lines, switch, Node, QueryError};
use crate::model::{GenericBlock, GenericItem, Host, Origins, Project, Switch};
use crate::syntax::{Ast, Item};

/// One block of the tree: its lines (`keyword value`, `$name = value`),
/// then its blocks, each under its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Lines in order.
    pub lines: Vec<String>,
    /// Nested blocks in order, by name (a labelled block `host a {` is the
    /// block `a` inside the block `host`).
    pub blocks: Vec<(String, Tree)>,
}

impl Tree {
    /// The block named `name`, made empty at the end when missing.
    fn block(&mut self, name: &str) -> &mut Tree {
        let at = match self.blocks.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.blocks.push((name.to_string(), Tree::default()));
                self.blocks.len() - 1
            }
        };
        &mut self.blocks[at].1
    }

    /// As MLN prints it: one tab of indent per level, `NAME {` ... `}`.
    ///
    /// ```
    /// let parsed = mln_lang::parse_str("p.mln", "global { project p }\nhost a {\n memory 64M\n}\n").unwrap();
    /// let text = mln_lang::query::syntax_tree(&parsed.ast).render();
    /// assert_eq!(text, "global {\n\tproject p\n}\nhost {\n\ta {\n\t\tmemory 64M\n\t}\n}\n");
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let pad = "\t".repeat(depth);
        for l in &self.lines {
            let _ = writeln!(out, "{pad}{l}");
        }
        for (name, b) in &self.blocks {
            let _ = writeln!(out, "{pad}{name} {{");
            b.render_into(out, depth + 1);
            let _ = writeln!(out, "{pad}}}");
        }
    }
}

/// The project as written, as `mln parse -f FILE` prints it: variables
/// and values unexpanded, superclasses not applied. As in MLN 1.0.8, a
/// block's `$variables` come first, then its other lines, then its
/// blocks; a second block of one name and label replaces the first.
pub fn syntax_tree(ast: &Ast) -> Tree {
    let mut root = Tree::default();
    fill(&mut root, &ast.items);
    root
}

fn fill(tree: &mut Tree, items: &[Item]) {
    let vars = items.iter().filter_map(|i| match i {
        Item::Assign(a) => Some(format!("${} = {}", a.name.node, a.value.node)),
        _ => None,
    });
    tree.lines.extend(vars.collect::<Vec<_>>());
    for item in items {
        match item {
            Item::Assign(_) => {}
            Item::Statement(s) => tree.lines.push(match &s.value {
                Some(v) => format!("{} {}", s.keyword.node, v.node),
                None => s.keyword.node.to_string(),
            }),
            Item::Block(b) => {
                let mut target = tree.block(&b.name.node);
                if let Some(label) = &b.label {
                    target = target.block(&label.node);
                }
                // The later block of a name is the block (MLN's hash).
                *target = Tree::default();
                fill(target, &b.items);
            }
        }
    }
}

/// The tree at `path` with superclasses and variables applied, as
/// `mln parse -H PATH` prints it: `/host` (every host), `/host/NAME`,
/// `/host/NAME/network[/IFACE]`, `/switch[/NAME]` (with `hosts { HOST
/// IFACE }`, and `xen 1` and the `bridge` when a Xen guest plugs in),
/// `/global`, `/superclass[/NAME]`, or any block. A host shows the
/// keywords written for it or its superclasses (`origins` says which).
///
/// ```
/// let checked = mln_lang::load_str("p.mln",
///     "global { project p }\nsuperclass s { memory 64M }\nhost a { superclass s }\n").unwrap();
/// let tree = mln_lang::query::query_tree(checked.project(), &checked.resolved.origins, "/host/a").unwrap();
/// assert_eq!(tree.render(), "superclass s\nmemory 64M\n");
/// ```
pub fn query_tree(project: &Project, origins: &Origins, path: &str) -> Result<Tree, QueryError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let not_found = || QueryError::NotFound(path.to_string());
    let by_name = |items: Vec<(String, Tree)>| Tree {
        lines: Vec::new(),
        blocks: items,
    };
    let tree = match parts.as_slice() {
        [] => return Err(QueryError::EmptyPath),
        ["host"] => by_name(
            project
                .hosts
                .iter()
                .map(|h| (h.name.clone(), host_tree(h, origins)))
                .collect(),
        ),
        ["host", name] => host_tree(project.host(name).ok_or_else(not_found)?, origins),
        ["host", name, "network"] => {
            let h = project.host(name).ok_or_else(not_found)?;
            by_name(
                h.interfaces
                    .iter()
                    .map(|i| (i.name.clone(), interface_tree(i)))
                    .collect(),
            )
        }
        ["host", name, "network", iface] => {
            let h = project.host(name).ok_or_else(not_found)?;
            interface_tree(h.interface(iface).ok_or_else(not_found)?)
        }
        ["switch"] => by_name(
            project
                .switches
                .iter()
                .map(|s| (s.name.clone(), switch_tree(project, s)))
                .collect(),
        ),
        ["switch", name] => switch_tree(project, project.switch(name).ok_or_else(not_found)?),
        ["global"] => global_tree(project),
        ["superclass"] => by_name(
            project
                .superclasses
                .iter()
                .filter_map(|s| Some((s.label.clone()?, generic_tree(s))))
                .collect(),
        ),
        ["superclass", name] => generic_tree(project.superclass(name).ok_or_else(not_found)?),
        _ => match super::lookup(project, path)? {
            Node::Scalar(s) => Tree {
                lines: vec![s],
                blocks: Vec::new(),
            },
            Node::List(l) => Tree {
                lines: l,
                blocks: Vec::new(),
            },
        },
    };
    Ok(tree)
}

/// A value (`KEY VALUE`) or a list (`KEY { lines }`) into `tree`.
fn put(tree: &mut Tree, key: &str, node: Option<Node>) {
    match node {
        Some(Node::Scalar(v)) => tree.lines.push(format!("{key} {v}")),
        Some(Node::List(l)) if !l.is_empty() => tree.blocks.push((
            key.to_string(),
            Tree {
                lines: l,
                blocks: Vec::new(),
            },
        )),
        _ => {}
    }
}

const LISTS: [&str; 9] = [
    "startup",
    "shutdown",
    "users",
    "groups",
    "files",
    "mount",
    "modules",
    "sshkey",
    "xen_extra",
];

fn host_tree(h: &Host, origins: &Origins) -> Tree {
    let mut tree = Tree::default();
    let mut keys: Vec<(Option<crate::Span>, String)> = origins
        .hosts
        .get(&h.name)
        .map(|o| {
            o.keywords
                .iter()
                .map(|(k, span)| (Some(*span), k.to_string()))
                .collect()
        })
        .unwrap_or_default();
    keys.sort_by_key(|(span, _)| span.map(|s| (s.file.0, s.start)));
    // The nearest superclass, then the keywords in the order written.
    put(&mut tree, "superclass", host(h, &["superclass"]));
    let mut seen: Vec<String> = vec!["superclass".to_string()];
    let lists = LISTS.iter().map(|l| (None, l.to_string()));
    for (_, key) in keys.into_iter().chain(lists) {
        if key == "network" || seen.contains(&key) || h.blocks.iter().any(|b| b.name == key) {
            continue;
        }
        if key == "platform" {
            // Written as a flag: `xen`, `uml`, `kvm` or `hvm`.
            tree.lines.push(format!("{} 1", h.platform.keyword()));
        } else {
            put(&mut tree, &key, host(h, &[key.as_str()]));
        }
        seen.push(key);
    }
    for (name, value) in &h.variables {
        tree.lines.push(format!("${name} = {value}"));
    }
    if !h.interfaces.is_empty() {
        let network = tree.block("network");
        for i in &h.interfaces {
            network.blocks.push((i.name.clone(), interface_tree(i)));
        }
    }
    add_blocks(&mut tree, &h.blocks);
    tree
}

fn interface_tree(i: &crate::model::Interface) -> Tree {
    let mut tree = Tree::default();
    if let Some(Node::List(keys)) = interface(i, &[]) {
        for k in keys {
            put(&mut tree, &k, interface(i, &[k.as_str()]));
        }
    }
    tree
}

fn switch_tree(project: &Project, s: &Switch) -> Tree {
    let mut tree = Tree::default();
    // Every switch statement (`location` is `service_host` by another
    // name), then whether it is a Xen bridge.
    let keys = crate::resolve::lint::SWITCH_KEYWORDS
        .iter()
        .filter(|k| **k != "location")
        .chain(&["xen"]);
    for &key in keys {
        put(&mut tree, key, switch(project, s, &[key]));
    }
    for (k, v) in &s.unknown {
        tree.lines.push(format!("{k} {v}"));
    }
    put(&mut tree, "hosts", switch(project, s, &["hosts"]));
    add_blocks(&mut tree, &s.blocks);
    tree
}

fn global_tree(p: &Project) -> Tree {
    let mut tree = Tree::default();
    for (name, value) in &p.variables {
        tree.lines.push(format!("${name} = {value}"));
    }
    tree.lines.push(format!("project {}", p.name));
    if let Some(pw) = &p.project_password {
        tree.lines.push(format!("project_password {pw}"));
    }
    if p.persistent {
        tree.lines.push("persistent 1".into());
    }
    for (k, v) in &p.unknown {
        tree.lines.push(format!("{k} {v}"));
    }
    for name in crate::model::Hooks::NAMES {
        if let Some(lines) = p.hooks.get(name) {
            put(&mut tree, name, Some(Node::List(lines.clone())));
        }
    }
    add_blocks(&mut tree, &p.global_blocks);
    tree
}

fn add_blocks(tree: &mut Tree, blocks: &[GenericBlock]) {
    for b in blocks {
        let mut target = tree.block(&b.name);
        if let Some(label) = &b.label {
            target = target.block(label);
        }
        *target = generic_tree(b);
    }
}

/// A block the language gives no meaning to, as written.
fn generic_tree(block: &GenericBlock) -> Tree {
    let mut tree = Tree::default();
    for item in &block.items {
        match item {
            GenericItem::Block(b) => add_blocks(&mut tree, std::slice::from_ref(b)),
            _ => tree.lines.extend(lines(&GenericBlock {
                name: String::new(),
                label: None,
                items: vec![item.clone()],
            })),
        }
    }
    tree
}
