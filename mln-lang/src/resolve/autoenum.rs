//! `autoenum`: hosts generated from a superclass, numbered, addressed and
//! spread over service hosts; and the order of all hosts.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use crate::diag::{Code, Diagnostic};
use crate::source::{Span, Spanned};
use crate::syntax::Text;
use crate::syntax::{Block, Item, Statement};

use super::collect::{Collected, Order};
use super::global::Global;
use super::lint::{self, AUTOENUM_KEYWORDS};
use super::values::{parse_ip, parse_u32};
use super::Ctx;

/// The most hosts `autoenum` blocks may generate in one project, together;
/// more is an E0021 error.
pub const MAX_GENERATED_HOSTS: u32 = 100_000;

/// One host to resolve: its written blocks and the settings `autoenum`
/// generated for it.
pub(crate) struct HostEntry<'a> {
    pub name: Cow<'a, str>,
    pub blocks: Cow<'a, [&'a Block]>,
    /// Generated settings as statements, one layer per `autoenum` block
    /// (later blocks win).
    pub generated: Vec<Generated>,
}

/// The settings one `autoenum` block gives one host, as syntax items whose
/// spans point into the `autoenum` block.
pub(crate) struct Generated {
    pub items: Vec<Item>,
    pub span: Span,
}

/// All hosts in order: written hosts where they first appear, generated
/// ones where their `global` block stands (unless written earlier).
pub(crate) fn place_hosts<'c>(
    ctx: &mut Ctx<'_>,
    collected: &'c Collected<'_>,
    global: &Global,
) -> Vec<HostEntry<'c>> {
    let mut entries: Vec<HostEntry<'c>> = Vec::with_capacity(collected.hosts.len());
    // Written host names are unique already (`collect` merged repeats):
    // the index by name is needed, and built, only once `autoenum` adds
    // hosts that may repeat them.
    let mut index: Option<HashMap<Cow<'c, str>, usize>> = None;
    let mut budget = MAX_GENERATED_HOSTS;
    for order in &collected.order {
        match order {
            Order::Host(i) => {
                let Some((name, blocks)) = collected.hosts.get(*i) else {
                    continue;
                };
                let found = index.as_ref().and_then(|index| index.get(name).copied());
                match found {
                    Some(e) => entries[e].blocks.to_mut().extend(blocks.iter().copied()),
                    None => {
                        if let Some(index) = &mut index {
                            index.insert(Cow::Borrowed(name), entries.len());
                        }
                        entries.push(HostEntry {
                            name: Cow::Borrowed(name),
                            blocks: Cow::Borrowed(blocks),
                            generated: Vec::new(),
                        });
                    }
                }
            }
            Order::Global(b) => {
                for item in &b.items {
                    let Item::Block(blk) = item else { continue };
                    if !lint::is_autoenum(&blk.name.node) {
                        continue;
                    }
                    let index = index.get_or_insert_with(|| {
                        let mut index = HashMap::with_capacity(collected.hosts.len());
                        for (i, e) in entries.iter().enumerate() {
                            index.insert(e.name.clone(), i);
                        }
                        index
                    });
                    for (name, generated) in generate(ctx, blk, global, &mut budget) {
                        match index.get(name.as_str()) {
                            Some(&e) => entries[e].generated.push(generated),
                            None => {
                                index.insert(Cow::Owned(name.clone()), entries.len());
                                entries.push(HostEntry {
                                    name: Cow::Owned(name),
                                    blocks: Cow::Borrowed(&[]),
                                    generated: vec![generated],
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    entries
}

/// The settings of one `autoenum` block.
struct Spec<'b> {
    superclass: Option<Spanned<Text>>,
    numhosts: Option<(u32, Span)>,
    prefix: String,
    net: Option<(IpAddr, Span)>,
    address_auto: Option<Span>,
    begin: u32,
    service_hosts: Vec<(Spanned<Text>, Option<u32>)>,
    autouser: Option<Spanned<Text>>,
    block: &'b Block,
}

fn read_spec<'b>(ctx: &mut Ctx<'_>, block: &'b Block, global: &Global) -> Spec<'b> {
    let mut spec = Spec {
        superclass: None,
        numhosts: None,
        prefix: "node".to_string(),
        net: None,
        address_auto: None,
        begin: 1,
        service_hosts: Vec::new(),
        autouser: None,
        block,
    };
    let scope = global.scope();
    for item in &block.items {
        match item {
            Item::Statement(s) => {
                let k = s.keyword.node.as_str();
                let span = s.value.as_ref().map_or(s.keyword.span, |v| v.span);
                let value = match &s.value {
                    Some(v) => ctx.expand(&scope, v, k == "autouser"),
                    None => "1".to_string(),
                };
                match k {
                    "superclass" => spec.superclass = Some(Spanned::new(Text::from(value), span)),
                    "numhosts" => match parse_u32(&value) {
                        Ok(n) => spec.numhosts = Some((n, span)),
                        Err(e) => ctx.bad(Code::BadNumber, span, "`numhosts`", e),
                    },
                    "hostprefix" => spec.prefix = value,
                    "net" => match parse_ip(&value) {
                        Ok(a) => spec.net = Some((a, span)),
                        Err(e) => ctx.bad(Code::BadAddress, span, "`net`", e),
                    },
                    "address" => {
                        if value == "auto" {
                            spec.address_auto = Some(span);
                        } else {
                            ctx.report(
                                Diagnostic::new(
                                    Code::BadValue,
                                    Some(span),
                                    format!("`address {value}` in autoenum: only `auto` is known"),
                                )
                                .with_help("write `address auto` and `net A.B.C.D`"),
                            );
                        }
                    }
                    "addresses_begin" => match parse_u32(&value) {
                        Ok(n) => spec.begin = n,
                        Err(e) => ctx.bad(Code::BadNumber, span, "`addresses_begin`", e),
                    },
                    "autouser" => spec.autouser = Some(Spanned::new(Text::from(value), span)),
                    _ => {
                        let mut known = AUTOENUM_KEYWORDS.to_vec();
                        known.push("service_hosts");
                        lint::unknown_keyword(ctx, &s.keyword, "autoenum", &known);
                    }
                }
            }
            Item::Block(b) if b.name.node == "service_hosts" => {
                for item in &b.items {
                    let Item::Statement(s) = item else { continue };
                    let host = Spanned::new(s.keyword.node.clone(), s.keyword.span);
                    let span = s.value.as_ref().map_or(s.keyword.span, |v| v.span);
                    let value = s.value.as_ref().map(|v| ctx.expand(&scope, v, false));
                    match value.as_deref() {
                        Some("all") => spec.service_hosts.push((host, None)),
                        Some(v) => match parse_u32(v) {
                            Ok(n) => spec.service_hosts.push((host, Some(n))),
                            Err(e) => {
                                ctx.bad(Code::BadNumber, span, "host count in `service_hosts`", e)
                            }
                        },
                        None => ctx.report(
                            Diagnostic::new(
                                Code::BadValue,
                                Some(s.span),
                                format!(
                                    "`{}` in service_hosts needs a host count or `all`",
                                    s.keyword.node
                                ),
                            )
                            .with_help(format!(
                                "write `{} all` or `{} 4`",
                                s.keyword.node, s.keyword.node
                            )),
                        ),
                    }
                }
            }
            Item::Block(b) => ctx.report(Diagnostic::new(
                Code::UnknownKeyword,
                Some(b.name.span),
                format!("unknown block `{}` in autoenum is ignored", b.name.node),
            )),
            Item::Assign(_) => {}
        }
    }
    spec
}

/// The hosts one `autoenum` block generates.
fn generate(
    ctx: &mut Ctx<'_>,
    block: &Block,
    global: &Global,
    budget: &mut u32,
) -> Vec<(String, Generated)> {
    let spec = read_spec(ctx, block, global);
    let Some((n, n_span)) = spec.numhosts else {
        ctx.report(
            Diagnostic::new(
                Code::BadValue,
                Some(block.name.span),
                "autoenum without `numhosts`",
            )
            .with_help("add `numhosts N`"),
        );
        return Vec::new();
    };
    if n > *budget {
        ctx.report(Diagnostic::new(
            Code::LimitExceeded,
            Some(n_span),
            format!("autoenum may generate at most {MAX_GENERATED_HOSTS} hosts in a project"),
        ));
        return Vec::new();
    }
    *budget -= n;
    let base = match (spec.address_auto, spec.net) {
        (Some(span), None) => {
            ctx.report(
                Diagnostic::new(Code::BadValue, Some(span), "`address auto` without `net`")
                    .with_help("add `net A.B.C.D`"),
            );
            None
        }
        (Some(_), Some((net, span))) => Some((net, span)),
        _ => None,
    };
    let width = n.to_string().len();
    let mut share = spec.service_hosts.iter().map(|(h, c)| (h, *c));
    let mut current = share.next();
    let mut given = 0u32;
    let mut out = Vec::with_capacity(n as usize);
    for i in 1..=n {
        let name = format!("{}{:0width$}", spec.prefix, i);
        let mut items = Vec::new();
        if let Some(s) = &spec.superclass {
            items.push(statement("superclass", s.node.clone(), s.span, s.span));
        }
        if let Some((net, span)) = base {
            let offset = u128::from(i) + u128::from(spec.begin);
            match add(net, offset.saturating_sub(1)) {
                Some(addr) => items.push(Item::Block(Block {
                    name: Spanned::new(Text::from("network"), spec.block.name.span),
                    label: Some(Spanned::new(Text::from("eth0"), spec.block.name.span)),
                    items: vec![statement(
                        "address",
                        Text::from(addr.to_string()),
                        span,
                        spec.address_auto.unwrap_or(span),
                    )],
                    span,
                })),
                None => ctx.report(Diagnostic::new(
                    Code::BadAddress,
                    Some(span),
                    format!(
                        "`net {net}` has no room for {n} hosts from `addresses_begin {}`",
                        spec.begin
                    ),
                )),
            }
        }
        // Hand out hosts to service hosts in order; `all` takes the rest.
        while let Some((_, Some(count))) = current {
            if given < count {
                break;
            }
            given = 0;
            current = share.next();
        }
        if let Some((h, _)) = current {
            items.push(statement("service_host", h.node.clone(), h.span, h.span));
            given += 1;
        }
        if let Some(hash) = &spec.autouser {
            items.push(Item::Block(Block {
                name: Spanned::new(Text::from("users"), hash.span),
                label: None,
                items: vec![statement(&name, hash.node.clone(), hash.span, hash.span)],
                span: hash.span,
            }));
        }
        out.push((
            name,
            Generated {
                items,
                span: block.span,
            },
        ));
    }
    out
}

fn statement(keyword: &str, value: Text, keyword_span: Span, value_span: Span) -> Item {
    Item::Statement(Statement {
        keyword: Spanned::new(Text::from(keyword), keyword_span),
        value: Some(Spanned::new(value, value_span)),
        span: keyword_span.to(value_span),
    })
}

/// `net + offset`, or `None` past the end of the address space.
fn add(net: IpAddr, offset: u128) -> Option<IpAddr> {
    match net {
        IpAddr::V4(a) => {
            let v = u128::from(u32::from(a)).checked_add(offset)?;
            u32::try_from(v).ok().map(|v| IpAddr::V4(v.into()))
        }
        IpAddr::V6(a) => u128::from(a)
            .checked_add(offset)
            .map(|v| IpAddr::V6(v.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_from_the_net() {
        let net: IpAddr = "10.20.0.0".parse().unwrap();
        assert_eq!(add(net, 10).unwrap().to_string(), "10.20.0.10");
        assert_eq!(add(net, 300).unwrap().to_string(), "10.20.1.44");
        assert!(add("255.255.255.255".parse().unwrap(), 1).is_none());
    }
}
