//! One host: its layers (own blocks, generated settings, superclass chain)
//! merged by the inheritance rules, then every value read into its type.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::diag::{Code, Diagnostic};
use crate::model::{
    FileCopy, GenericBlock, Host, HostOrigin, Interface, InterfaceOrigin, Mount, Platform, Term,
    User, VecMap,
};
use crate::source::{SourceMap, Span, Spanned};
use crate::syntax::Text;
use crate::syntax::{Block, Item, Statement};

use super::autoenum::HostEntry;
use super::collect::label_span;
use super::generic::Line;
use super::global::Global;
use super::inherit::{superclass_of, variables_of, Superclasses};
use super::lint::HOST_LISTS;
use super::lists::ListMerge;
use super::values::{
    parse_address, parse_bool, parse_cpu_list, parse_ip, parse_mac, parse_netmask, parse_size,
    parse_u32,
};
use super::vars::Scope;
use super::{generic, Ctx, What};

/// `keyword` as a key of [`HostOrigin::keywords`]: borrowed for every
/// keyword the language knows (no copy per host), owned for the others.
fn keyword_key(keyword: &str) -> Cow<'static, str> {
    Cow::Borrowed(match keyword {
        "superclass" => "superclass",
        "xen" => "xen",
        "uml" => "uml",
        "kvm" => "kvm",
        "hvm" => "hvm",
        "service_host" => "service_host",
        "location" => "location",
        "memory" => "memory",
        "vcpus" => "vcpus",
        "cpus" => "cpus",
        "template" => "template",
        "size" => "size",
        "free_space" => "free_space",
        "swap" => "swap",
        "lvm" => "lvm",
        "lvm_vg" => "lvm_vg",
        "lvm_snapshot" => "lvm_snapshot",
        "filepath" => "filepath",
        "cow_filesystem" => "cow_filesystem",
        "kernel" => "kernel",
        "ramdisk" => "ramdisk",
        "extra" => "extra",
        "boot_order" => "boot_order",
        "term" => "term",
        "nameserver" => "nameserver",
        "root_passwd" => "root_passwd",
        "owner" => "owner",
        "group" => "group",
        "sudo" => "sudo",
        "users" => "users",
        "groups" => "groups",
        "files" => "files",
        "mount" => "mount",
        "modules" => "modules",
        "startup" => "startup",
        "shutdown" => "shutdown",
        "sshkey" => "sshkey",
        "xen_extra" => "xen_extra",
        "platform" => "platform",
        "switch" => "switch",
        "address" => "address",
        "netmask" => "netmask",
        "broadcast" => "broadcast",
        "gateway" => "gateway",
        "mac" => "mac",
        "bridge" => "bridge",
        _ => return Cow::Owned(keyword.to_string()),
    })
}

/// The keyword a statement stands for (aliases folded).
fn canonical(keyword: &str) -> &str {
    match keyword {
        "location" => "service_host",
        k => k,
    }
}

/// What one layer (a host's own blocks, one `autoenum` block's settings,
/// or one superclass) says, in the order the merge visits it: later
/// statements first. A superclass's summary is made once per chain and
/// shared by every host that inherits it, so list lines and the like are
/// not rebuilt per host.
#[derive(Default)]
struct Summary<'x> {
    /// Statements by canonical keyword, later first.
    scalars: Vec<(&'x str, &'x Statement)>,
    /// Platform flags, later first.
    platform: Vec<&'x Statement>,
    /// List lines per list (indexed like [`HOST_LISTS`]), in order.
    lists: [Vec<Line<'x>>; HOST_LISTS.len()],
    /// List block spans, later first.
    list_spans: Vec<(&'x str, Span)>,
    /// Named `network` blocks, later first.
    networks: Vec<&'x Block>,
    /// `xen_extra` lines, in order.
    extra: Vec<Line<'x>>,
    /// Generic blocks, in order.
    blocks: Vec<&'x Block>,
    /// A block nested too deep, when there is one.
    truncated: Option<Span>,
}

fn summarize<'x>(items: &[&'x Item], sources: &'x SourceMap) -> Summary<'x> {
    let mut m = Summary::default();
    summarize_into(&mut m, items, sources);
    m
}

impl Summary<'_> {
    /// Empty, keeping the room its vectors have.
    fn clear(&mut self) {
        self.scalars.clear();
        self.platform.clear();
        for l in &mut self.lists {
            l.clear();
        }
        self.list_spans.clear();
        self.networks.clear();
        self.extra.clear();
        self.blocks.clear();
        self.truncated = None;
    }
}

/// [`summarize`] into `m`, which is empty.
fn summarize_into<'x>(m: &mut Summary<'x>, items: &[&'x Item], sources: &'x SourceMap) {
    // Later statements in one layer win: walk backwards.
    for &item in items.iter().rev() {
        match item {
            Item::Statement(s) => {
                let k = canonical(&s.keyword.node);
                if matches!(k, "xen" | "uml" | "kvm" | "hvm") {
                    m.platform.push(s);
                } else if k != "superclass" {
                    m.scalars.push((k, s));
                }
            }
            Item::Block(b) if b.name.node == "network" => {
                if b.label.is_some() {
                    m.networks.push(b);
                }
            }
            Item::Block(b) => {
                let name = b.name.node.as_str();
                if let Some(&list) = HOST_LISTS.iter().find(|&&l| l == name) {
                    m.list_spans.push((list, b.span));
                } else if name == "xen_extra" {
                    m.list_spans.push(("xen_extra", b.span));
                } else {
                    m.blocks.push(b);
                }
            }
            Item::Assign(_) => {}
        }
    }
    m.blocks.reverse();
    // List lines in the order written, appended to vectors that keep their
    // room from host to host.
    for &item in items {
        let Item::Block(b) = item else { continue };
        let name = b.name.node.as_str();
        let mut truncated = None;
        if let Some(index) = HOST_LISTS.iter().position(|&l| l == name) {
            let Some(lines) = m.lists.get_mut(index) else {
                continue;
            };
            if name == "groups" {
                group_lines_into(b, lines);
            } else {
                generic::lines_into(b, sources, lines, &mut truncated);
            }
        } else if name == "xen_extra" {
            generic::lines_into(b, sources, &mut m.extra, &mut truncated);
        }
        // The last block of the layer that nests too deep is the one
        // named, as the backwards walk above would find it.
        if truncated.is_some() {
            m.truncated = truncated;
        }
    }
}

/// The layers of one host, nearest first: its own blocks, what `autoenum`
/// generated for it, its superclass chain.
#[derive(Clone, Copy)]
struct Layers<'r, 'x> {
    own: &'r Summary<'x>,
    generated: &'r [Summary<'x>],
    chain: &'r [Summary<'x>],
}

impl<'r, 'x> Layers<'r, 'x> {
    fn iter(self) -> impl DoubleEndedIterator<Item = &'r Summary<'x>> {
        std::iter::once(self.own)
            .chain(self.generated)
            .chain(self.chain)
    }
}

/// The scalar and interface statements of all layers, the nearest of each
/// key kept. Sorted vectors rather than maps: a host has a dozen keys, and
/// the vectors keep their room from one host to the next.
#[derive(Default)]
struct Merged<'x> {
    /// `(canonical keyword, visit order, statement)`, by keyword.
    scalars: Vec<(&'x str, usize, &'x Statement)>,
    /// `(interface, visit order, nearest block defining it)`, by interface.
    networks: Vec<(&'x str, usize, &'x Block)>,
    /// `(interface, keyword, visit order, statement)`, by interface then
    /// keyword.
    net_statements: Vec<(&'x str, &'x str, usize, &'x Statement)>,
    /// The visit order each layer starts at: which layer a statement
    /// came from (see [`Merged::layer_of`]).
    layer_starts: Vec<usize>,
}

impl<'x> Merged<'x> {
    /// Fill from `layers`: nearer layers win, and so do later statements in
    /// one layer (which the summaries list first).
    fn fill<'r>(&mut self, layers: impl Iterator<Item = &'r Summary<'x>>)
    where
        'x: 'r,
    {
        self.scalars.clear();
        self.networks.clear();
        self.net_statements.clear();
        self.layer_starts.clear();
        let mut order = 0usize;
        for layer in layers {
            self.layer_starts.push(order);
            for &(k, s) in &layer.scalars {
                self.scalars.push((k, order, s));
                order += 1;
            }
            for &b in &layer.networks {
                let Some(label) = &b.label else { continue };
                let name = label.node.as_str();
                self.networks.push((name, order, b));
                order += 1;
                for i in b.items.iter().rev() {
                    if let Item::Statement(s) = i {
                        self.net_statements
                            .push((name, s.keyword.node.as_str(), order, s));
                        order += 1;
                    }
                }
            }
        }
        // By key, then visit order; the first of each key is the one kept.
        // Keys with their order are unique, so an unstable sort is exact.
        self.scalars
            .sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        self.scalars.dedup_by(|later, first| later.0 == first.0);
        self.networks
            .sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        self.networks.dedup_by(|later, first| later.0 == first.0);
        self.net_statements
            .sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        self.net_statements
            .dedup_by(|later, first| (later.0, later.1) == (first.0, first.1));
    }
}

impl Merged<'_> {
    /// The layer (0: the host's own, then what autoenum generated, then
    /// its superclasses nearest first) of the statement visited at `order`.
    fn layer_of(&self, order: usize) -> usize {
        self.layer_starts
            .partition_point(|&start| start <= order)
            .saturating_sub(1)
    }
}

/// Where the values of each layer are expanded. A value is expanded where
/// it is written, as MLN does: the host's own and generated values with
/// the host's variables, a superclass's with that superclass's variables
/// (then those of the superclasses it inherits, then `global`'s), whatever
/// the host or a nearer superclass sets.
struct Scopes<'a> {
    hostname: &'a str,
    project: &'a str,
    own: &'a BTreeMap<String, String>,
    /// The host's layers before its superclasses (own and generated).
    host_layers: usize,
    chain: &'a [&'a BTreeMap<String, String>],
    global: &'a BTreeMap<String, String>,
}

impl<'a> Scopes<'a> {
    fn of_layer(&self, layer: usize) -> Scope<'a> {
        match layer.checked_sub(self.host_layers) {
            None => Scope {
                hostname: Some(self.hostname),
                project: self.project,
                own: Some(self.own),
                inherited: self.chain,
                global: Some(self.global),
            },
            Some(i) => Scope {
                hostname: Some(self.hostname),
                project: self.project,
                own: self.chain.get(i).copied(),
                inherited: self.chain.get(i + 1..).unwrap_or(&[]),
                global: Some(self.global),
            },
        }
    }
}

/// A superclass chain as the hosts that name its first superclass see it:
/// names, variables and one summary per superclass, nearest first.
struct Chain<'a> {
    names: Vec<&'a str>,
    variables: Vec<&'a BTreeMap<String, String>>,
    layers: Vec<Summary<'a>>,
}

/// Superclass chains already walked, by their first superclass: each is
/// walked and summarised once however many hosts inherit it.
#[derive(Default)]
pub(crate) struct Chains<'a> {
    by_first: HashMap<&'a str, Chain<'a>>,
    /// The last host's summary, items and merge, emptied: their room is
    /// reused.
    spare: Summary<'a>,
    spare_items: Vec<&'a Item>,
    spare_merged: Merged<'a>,
}

/// The chain starting at the superclass `first`, walked and summarised the
/// first time it is asked for.
fn chain_of<'m, 'a>(
    by_first: &'m mut HashMap<&'a str, Chain<'a>>,
    supers: &'a Superclasses<'_>,
    first: &str,
    sources: &'a SourceMap,
) -> Option<&'m Chain<'a>> {
    let key = supers.key(first)?;
    Some(by_first.entry(key).or_insert_with(|| {
        let chain = supers.chain(key);
        Chain {
            names: chain.iter().map(|(n, _)| *n).collect(),
            variables: chain.iter().map(|(_, s)| &s.variables).collect(),
            layers: chain
                .iter()
                .map(|(_, s)| summarize(&s.items, sources))
                .collect(),
        }
    }))
}

/// `groups { G { USER ... } }` or `groups { G USER ... }`: one line per
/// group, `G USER ...`, appended to `out`.
fn group_lines_into<'x>(b: &'x Block, out: &mut Vec<Line<'x>>) {
    let words = |s: &Statement| {
        std::iter::once(s.keyword.node.to_owned_string())
            .chain(s.value.iter().map(|v| v.node.to_owned_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    out.extend(b.items.iter().filter_map(|i| match i {
        Item::Statement(s) => Some(Line {
            text: Cow::Owned(words(s)),
            span: s.span,
        }),
        Item::Block(g) => {
            let mut line = g.name.node.to_owned_string();
            for i in &g.items {
                match i {
                    Item::Statement(s) => {
                        line.push(' ');
                        line.push_str(&words(s));
                    }
                    Item::Assign(_) | Item::Block(_) => {}
                }
            }
            Some(Line {
                text: Cow::Owned(line),
                span: g.span,
            })
        }
        Item::Assign(_) => None,
    }));
}

/// Resolve one host. `sources` holds the text of the syntax tree.
pub(crate) fn resolve_host<'s>(
    ctx: &mut Ctx<'_>,
    sources: &'s SourceMap,
    entry: &'s HostEntry<'_>,
    supers: &'s Superclasses<'_>,
    chains: &mut Chains<'s>,
    global: &Global,
) -> (Host, HostOrigin) {
    let Chains {
        by_first,
        spare,
        spare_items,
        spare_merged,
    } = chains;
    let mut host = Host::new(entry.name.as_ref());
    let mut own = std::mem::take(spare);
    own.clear();
    let mut own_items = std::mem::take(spare_items);
    own_items.clear();
    // A host written twice is its last block, as in MLN (the checker
    // warns, naming both).
    own_items.extend(entry.blocks.last().into_iter().flat_map(|b| b.items.iter()));
    let generated: Vec<Vec<&Item>> = entry
        .generated
        .iter()
        .rev()
        .map(|g| g.items.iter().collect())
        .collect();
    let own_vars = variables_of(own_items.iter().copied());

    // The nearest `superclass` statement among the host's own layers.
    let first = std::iter::once(&own_items)
        .chain(&generated)
        .find_map(|items| superclass_of(items.iter().copied()));
    let chain = match first {
        Some(first) if supers.check_exists(ctx, first) => {
            chain_of(by_first, supers, &first.node, sources)
        }
        _ => None,
    };
    summarize_into(&mut own, &own_items, sources);
    let generated: Vec<Summary<'_>> = generated
        .iter()
        .map(|items| summarize(items, sources))
        .collect();
    let layers = Layers {
        own: &own,
        generated: &generated,
        chain: chain.map_or(&[], |c| c.layers.as_slice()),
    };
    if let Some(chain) = chain {
        host.superclasses = chain.names.iter().map(|n| n.to_string()).collect();
    }
    let scopes = Scopes {
        hostname: &entry.name,
        project: global.project.as_deref().unwrap_or(""),
        own: &own_vars,
        host_layers: 1 + generated.len(),
        chain: chain.map_or(&[], |c| c.variables.as_slice()),
        global: &global.variables,
    };
    let scope = scopes.of_layer(0);

    let mut merged = std::mem::take(spare_merged);
    merged.fill(layers.iter());
    ctx.nesting_limit(layers.iter().find_map(|l| l.truncated));
    let mut origin = HostOrigin {
        span: entry
            .blocks
            .last()
            .map(|b| b.span)
            .or_else(|| entry.generated.first().map(|g| g.span))
            .unwrap_or(Span::new(crate::source::FileId(0), 0..0)),
        name: entry
            .blocks
            .last()
            .map(|b| label_span(b))
            .or_else(|| entry.generated.first().map(|g| g.span))
            .unwrap_or(Span::new(crate::source::FileId(0), 0..0)),
        // The blocks the last one replaces.
        duplicates: entry
            .blocks
            .iter()
            .rev()
            .skip(1)
            .map(|b| label_span(b))
            .collect(),
        generated: !entry.generated.is_empty(),
        keywords: VecMap::with_capacity(merged.scalars.len() + 4),
        interfaces: VecMap::with_capacity(merged.networks.len()),
    };

    read_platform(ctx, layers, &mut host, &mut origin);
    read_scalars(ctx, &scopes, &merged, &mut host, &mut origin);
    read_lists(ctx, &scopes, layers, &mut host);
    // List block spans, the nearest layer's first.
    for layer in layers.iter() {
        for &(list, span) in &layer.list_spans {
            if !origin.keywords.contains_key(list) {
                origin.keywords.insert(keyword_key(list), span);
            }
        }
    }
    read_interfaces(ctx, &scopes, &merged, &mut host, &mut origin);

    // xen_extra: merged by first word, the nearer layer winning.
    let mut extra: Vec<String> = Vec::new();
    for layer in layers.iter().rev().filter(|l| !l.extra.is_empty()) {
        let near: Vec<String> = layer
            .extra
            .iter()
            .map(|l| ctx.expand_line(&scope, l, false))
            .collect();
        let key = |l: &str| l.split_whitespace().next().map(str::to_string);
        let near_keys: HashSet<Option<String>> = near.iter().map(|l| key(l)).collect();
        extra.retain(|l| !near_keys.contains(&key(l)));
        extra.extend(near);
    }
    host.xen_extra = extra;

    let mut truncated = None;
    let mut layers_blocks: Vec<Vec<GenericBlock>> = Vec::new();
    for layer in layers.iter().rev().filter(|l| !l.blocks.is_empty()) {
        let mut converted = Vec::new();
        for b in &layer.blocks {
            let mut expand = |v: &Spanned<Text>| ctx.expand(&scope, v, false);
            converted.push(generic::convert(b, &mut expand, &mut truncated));
        }
        layers_blocks.push(converted);
    }
    ctx.nesting_limit(truncated);
    host.blocks = generic::merge_all(layers_blocks);
    host.variables = own_vars;
    *spare_merged = merged;
    *spare = own;
    *spare_items = own_items;
    (host, origin)
}

fn value_span(s: &Statement) -> Span {
    s.value.as_ref().map_or(s.keyword.span, |v| v.span)
}

fn read_platform(
    ctx: &mut Ctx<'_>,
    layers: Layers<'_, '_>,
    host: &mut Host,
    origin: &mut HostOrigin,
) {
    // The platform flags of the nearest layer that has any.
    let Some(statements) = layers
        .iter()
        .map(|l| l.platform.as_slice())
        .find(|p| !p.is_empty())
    else {
        return;
    };
    // The first statement that turns each platform on, in name order
    // (hvm, kvm, uml, xen).
    const NAMES: [&str; 4] = ["hvm", "kvm", "uml", "xen"];
    let mut on: [Option<&Statement>; 4] = [None; 4];
    for s in statements {
        match parse_bool(s.value_or_flag()) {
            Ok(true) => {
                if let Some(i) = NAMES.iter().position(|&n| n == s.keyword.node) {
                    on[i].get_or_insert(*s);
                }
            }
            Ok(false) => {}
            Err(e) => ctx.bad(
                Code::BadValue,
                value_span(s),
                What(&s.keyword.node, None),
                e,
            ),
        }
    }
    let has = |k: &str| NAMES.iter().zip(&on).any(|(&n, o)| n == k && o.is_some());
    let first_on = on.iter().flatten().next().copied();
    let platform = match (has("kvm"), has("xen") || has("hvm"), has("uml")) {
        (true, false, false) => Platform::Kvm,
        (false, true, false) if has("hvm") => Platform::Hvm,
        (false, true, false) => Platform::Xen,
        (false, false, true) => Platform::Uml,
        (false, false, false) => return,
        _ => {
            let words: Vec<&str> = NAMES
                .iter()
                .zip(&on)
                .filter(|(_, o)| o.is_some())
                .map(|(&n, _)| n)
                .collect();
            if let Some(s) = first_on {
                ctx.report(
                    Diagnostic::new(
                        Code::BadValue,
                        Some(s.keyword.span),
                        format!("conflicting platforms: {}", words.join(", ")),
                    )
                    .with_help("choose one of `xen`, `hvm`, `kvm`, `uml`"),
                );
            }
            return;
        }
    };
    host.platform = platform;
    if let Some(s) = first_on {
        origin
            .keywords
            .insert(Cow::Borrowed("platform"), s.keyword.span);
    }
}

fn read_scalars(
    ctx: &mut Ctx<'_>,
    scopes: &Scopes<'_>,
    merged: &Merged<'_>,
    host: &mut Host,
    origin: &mut HostOrigin,
) {
    for &(k, order, s) in &merged.scalars {
        let scope = &scopes.of_layer(merged.layer_of(order));
        if HOST_LISTS.contains(&k) || k == "xen_extra" || k == "network" {
            continue; // reported by the lint as a misuse
        }
        let span = value_span(s);
        let value: Cow<'_, str> = match &s.value {
            Some(v) => ctx.expand_cow(scope, v, k == "root_passwd"),
            None => Cow::Borrowed("1"),
        };
        origin.keywords.insert(keyword_key(k), span);
        let what = What(&s.keyword.node, None);
        match k {
            "service_host" => host.service_host = Some(value.into_owned()),
            "memory" | "size" | "free_space" | "swap" => match parse_size(&value) {
                Ok(bytes) => {
                    match k {
                        "memory" => host.memory = bytes,
                        "size" => host.size = Some(bytes),
                        "free_space" => host.free_space = Some(bytes),
                        _ => host.swap = Some(bytes),
                    }
                    host.written.insert(keyword_key(k), value.into_owned());
                }
                Err(e) => ctx.report(
                    Diagnostic::new(Code::BadSize, Some(span), format!("{what}: {e}"))
                        .with_help("a size is a number with an optional unit: K, M, G (binary), KB, MB, GB (decimal), b (512 bytes); a bare number is megabytes"),
                ),
            },
            "vcpus" => match parse_u32(&value) {
                Ok(0) => ctx.bad(Code::BadValue, span, what, "a host needs at least one CPU".into()),
                Ok(n) => host.vcpus = n,
                Err(e) => ctx.bad(Code::BadNumber, span, what, e),
            },
            "cpus" => match parse_cpu_list(&value) {
                Ok(_) => host.cpus = Some(value.trim().trim_matches('"').to_string()),
                Err(e) => ctx.bad(Code::BadValue, span, what, e),
            },
            "boot_order" => match parse_u32(&value) {
                Ok(n) => host.boot_order = n,
                Err(e) => ctx.bad(Code::BadNumber, span, what, e),
            },
            "lvm" => match parse_bool(&value) {
                Ok(b) => host.lvm = b,
                Err(e) => ctx.bad(Code::BadValue, span, what, e),
            },
            "term" => match &*value {
                "screen" => host.term = Some(Term::Screen),
                "xterm" => host.term = Some(Term::Xterm),
                "none" => host.term = Some(Term::None),
                _ => ctx.report(
                    Diagnostic::new(Code::BadValue, Some(span), format!("{what}: `{value}` is not a console"))
                        .with_help("use `screen`, `xterm` or `none`"),
                ),
            },
            "nameserver" => match parse_ip(&value) {
                Ok(a) => host.nameserver = Some(a),
                Err(e) => ctx.bad(Code::BadAddress, span, what, e),
            },
            "template" => host.template = Some(value.into_owned()),
            "lvm_vg" => host.lvm_vg = Some(value.into_owned()),
            "lvm_snapshot" => host.lvm_snapshot = Some(value.into_owned()),
            "filepath" => host.filepath = Some(value.into_owned()),
            "cow_filesystem" => host.cow_filesystem = Some(value.into_owned()),
            "kernel" => host.kernel = Some(value.into_owned()),
            "ramdisk" => host.ramdisk = Some(value.into_owned()),
            "extra" => host.extra = Some(value.into_owned()),
            "root_passwd" => host.root_passwd = Some(value.into_owned()),
            "owner" | "group" | "sudo" => {
                host.owner_keys.set(k, value.into_owned());
            }
            _ => {
                host.unknown
                    .insert(s.keyword.node.to_owned_string(), value.into_owned());
            }
        }
    }
}

fn read_lists(ctx: &mut Ctx<'_>, scopes: &Scopes<'_>, layers: Layers<'_, '_>, host: &mut Host) {
    for (index, list) in HOST_LISTS.iter().enumerate() {
        let lines_of = |layer: &Summary<'_>| layer.lists.get(index).map_or(0, Vec::len);
        let total: usize = layers.iter().map(lines_of).sum();
        if total == 0 {
            continue;
        }
        // Layer by layer, the farthest first: repeats of inherited lines
        // dropped, repeats within one layer kept (see `lists`).
        // (each layer's lines with the scope they expand in)
        let count = layers.iter().count();
        let layer_lines = || {
            layers
                .iter()
                .rev()
                .enumerate()
                .filter_map(move |(k, layer)| layer.lists.get(index).map(|l| (count - 1 - k, l)))
                .filter(|(_, lines)| !lines.is_empty())
        };
        let quiet = *list == "users";
        let mut merge = ListMerge::new(total);
        // Plain lists keep their lines whole: straight into the host.
        let plain = match *list {
            "modules" => Some(&mut host.modules),
            "startup" => Some(&mut host.startup),
            "shutdown" => Some(&mut host.shutdown),
            "sshkey" => Some(&mut host.sshkey),
            _ => None,
        };
        if let Some(out) = plain {
            out.reserve(total);
            for (i, layer) in layer_lines() {
                let scope = &scopes.of_layer(i);
                merge.next_layer(out.iter().map(String::as_str));
                for l in layer {
                    let text = ctx.expand_line(scope, l, quiet);
                    if *list == "sshkey" && !sshkey_line_ok(&text) {
                        ctx.report(
                            Diagnostic::new(
                                Code::BadValue,
                                Some(l.span),
                                format!("`sshkey` line `{text}` is not `USER KEY`"),
                            )
                            .with_help(
                                "write the user, then the public key as OpenSSH writes it: \
                                 `root ssh-ed25519 AAAA... you@desk`",
                            ),
                        );
                        continue;
                    }
                    if !merge.repeats(out.iter().map(String::as_str), &text) {
                        out.push(text);
                    }
                }
            }
            continue;
        }
        let mut lines: Vec<(String, Span)> = Vec::with_capacity(total);
        for (i, layer) in layer_lines() {
            let scope = &scopes.of_layer(i);
            merge.next_layer(lines.iter().map(|(t, _)| t.as_str()));
            for l in layer {
                let text = ctx.expand_line(scope, l, quiet);
                if !merge.repeats(lines.iter().map(|(t, _)| t.as_str()), &text) {
                    lines.push((text, l.span));
                }
            }
        }
        for (line, span) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            let too_few = |ctx: &mut Ctx<'_>, need: &str| {
                ctx.report(
                    Diagnostic::new(
                        Code::BadValue,
                        Some(span),
                        format!("`{list}` line `{line}` has too few fields"),
                    )
                    .with_help(format!("write `{need}`")),
                )
            };
            match *list {
                "users" => {
                    if words.len() > 4 {
                        ctx.report(
                            Diagnostic::new(
                                Code::BadValue,
                                Some(span),
                                format!("`users` line `{line}` has too many fields"),
                            )
                            .with_help("write `NAME HASH [HOME] [UID]`"),
                        );
                        continue;
                    }
                    let uid = match words.get(3).map(|u| parse_u32(u)) {
                        Some(Ok(u)) => Some(u),
                        Some(Err(e)) => {
                            ctx.bad(Code::BadNumber, span, "user id", e);
                            continue;
                        }
                        None => None,
                    };
                    if let Some(name) = words.first() {
                        host.users.push(User {
                            name: name.to_string(),
                            hash: words.get(1).map_or(String::new(), |h| h.to_string()),
                            home: words.get(2).map(|h| h.to_string()),
                            uid,
                        });
                    }
                }
                "groups" => {
                    if let Some((name, members)) = words.split_first() {
                        host.groups.push(crate::model::Group {
                            name: name.to_string(),
                            members: members.iter().map(|m| m.to_string()).collect(),
                        });
                    }
                }
                "files" => match words.as_slice() {
                    [src, dest] => host.files.push(FileCopy {
                        src: src.to_string(),
                        dest: dest.to_string(),
                        mode: None,
                    }),
                    [src, dest, mode] => host.files.push(FileCopy {
                        src: src.to_string(),
                        dest: dest.to_string(),
                        mode: Some(mode.to_string()),
                    }),
                    [_, _, _, ..] => ctx.report(
                        Diagnostic::new(
                            Code::BadValue,
                            Some(span),
                            format!("`files` line `{line}` has too many fields"),
                        )
                        .with_help("write `SRC DEST [MODE]`"),
                    ),
                    _ => too_few(ctx, "SRC DEST [MODE]"),
                },
                "mount" => match words.as_slice() {
                    [src, point, fstype, opts @ ..] => host.mount.push(Mount {
                        src: src.to_string(),
                        point: point.to_string(),
                        fstype: fstype.to_string(),
                        options: (!opts.is_empty()).then(|| opts.join(" ")),
                    }),
                    _ => too_few(ctx, "SRC POINT FSTYPE [OPTIONS]"),
                },
                _ => {}
            }
        }
    }
}

fn read_interfaces(
    ctx: &mut Ctx<'_>,
    scopes: &Scopes<'_>,
    merged: &Merged<'_>,
    host: &mut Host,
    origin: &mut HostOrigin,
) {
    host.interfaces.reserve_exact(merged.networks.len());
    // Both lists are sorted by interface: each interface's statements come
    // next in `statements`.
    let mut statements = merged.net_statements.as_slice();
    for &(name, _, block) in &merged.networks {
        let mine = statements.iter().take_while(|t| t.0 == name).count();
        let (mine, rest) = statements.split_at(mine);
        statements = rest;
        let mut iface = Interface::new(name);
        let mut o = InterfaceOrigin {
            span: block.span,
            name: block.label.as_ref().map_or(block.name.span, |l| l.span),
            keywords: VecMap::with_capacity(mine.len()),
        };
        for &(_, k, order, s) in mine {
            let scope = &scopes.of_layer(merged.layer_of(order));
            let span = value_span(s);
            o.keywords.insert(keyword_key(k), span);
            let value: Cow<'_, str> = match &s.value {
                Some(v) => ctx.expand_cow(scope, v, false),
                None => Cow::Borrowed("1"),
            };
            let what = What(k, Some(name));
            match k {
                "switch" => iface.switch = Some(value.into_owned()),
                "bridge" => iface.bridge = Some(value.into_owned()),
                "address" => match parse_address(&value) {
                    Ok(a) => iface.address = Some(a),
                    Err(e) => ctx.bad(Code::BadAddress, span, what, e),
                },
                "netmask" => match parse_netmask(&value) {
                    Ok(a) => iface.netmask = Some(a),
                    Err(e) => ctx.bad(Code::BadNetmask, span, what, e),
                },
                "broadcast" => match parse_ip(&value) {
                    Ok(a) => iface.broadcast = Some(a),
                    Err(e) => ctx.bad(Code::BadAddress, span, what, e),
                },
                "gateway" => match parse_ip(&value) {
                    Ok(a) => iface.gateway = Some(a),
                    Err(e) => ctx.bad(Code::BadAddress, span, what, e),
                },
                "mac" => match parse_mac(&value) {
                    Ok(m) => iface.mac = Some(m),
                    Err(e) => ctx.bad(Code::BadMac, span, what, e),
                },
                other => {
                    iface.unknown.insert(other.to_string(), value.into_owned());
                }
            }
        }
        origin.interfaces.insert(name.to_string(), o);
        host.interfaces.push(iface);
    }
    // eth0, eth1, ... by number; other names after, by name.
    host.interfaces.sort_by(|a, b| {
        (a.number().is_none(), a.number(), &a.name).cmp(&(
            b.number().is_none(),
            b.number(),
            &b.name,
        ))
    });
}

/// An `sshkey` line as MLN reads it: a user, then a public key
/// (`TYPE BASE64 [COMMENT]`).
fn sshkey_line_ok(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let (user, key_type, data) = (words.next(), words.next(), words.next());
    user.is_some_and(|u| !mln_core::guest::is_ssh_key_type(u))
        && key_type.is_some_and(mln_core::guest::is_ssh_key_type)
        && data.is_some()
}
