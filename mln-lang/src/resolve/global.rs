//! `global` and `switch` blocks: no inheritance, variables from `global`.

use std::collections::BTreeMap;

use crate::diag::Code;
use crate::model::{BlockOrigin, GenericBlock, Hooks, Switch};
use crate::source::Span;
use crate::syntax::Text;
use crate::syntax::{Block, Item};

use super::lint::{self, GLOBAL_KEYWORDS, SWITCH_KEYWORDS};
use super::values::parse_bool;
use super::vars::Scope;
use super::{collect, generic, Ctx};

/// What the `global` blocks say, merged (later statements win).
pub(crate) struct Global {
    pub project: Option<String>,
    pub project_span: Option<Span>,
    pub variables: BTreeMap<String, String>,
    pub hooks: Hooks,
    pub project_password: Option<String>,
    pub persistent: bool,
    pub unknown: BTreeMap<String, String>,
    pub blocks: Vec<GenericBlock>,
}

impl Global {
    /// The scope of values outside hosts: global variables and `$project`.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            hostname: None,
            project: self.project.as_deref().unwrap_or(""),
            own: None,
            inherited: &[],
            global: Some(&self.variables),
        }
    }
}

pub(crate) fn read(ctx: &mut Ctx<'_>, globals: &[&Block]) -> Global {
    let mut g = Global {
        project: None,
        project_span: None,
        variables: BTreeMap::new(),
        hooks: Hooks::default(),
        project_password: None,
        persistent: false,
        unknown: BTreeMap::new(),
        blocks: Vec::new(),
    };
    // Variables and the name first: every other value may use them.
    let mut project = None;
    for b in globals {
        for item in &b.items {
            match item {
                Item::Assign(a) => {
                    g.variables.insert(
                        a.name.node.to_owned_string(),
                        a.value.node.to_owned_string(),
                    );
                }
                Item::Statement(s) if s.keyword.node == "project" => project = Some(s),
                _ => {}
            }
        }
    }
    if let Some(s) = project {
        if let Some(v) = &s.value {
            let name = ctx.expand(&g.scope(), v, false);
            if !name.is_empty() {
                g.project = Some(name);
                g.project_span = Some(v.span);
            }
        }
    }
    let mut truncated = None;
    for b in globals {
        for item in &b.items {
            match item {
                Item::Statement(s) => {
                    let k = s.keyword.node.as_str();
                    let value = match &s.value {
                        Some(v) => ctx.expand(&g.scope(), v, k == "project_password"),
                        None => "1".to_string(),
                    };
                    match k {
                        "project" => {}
                        "project_password" => g.project_password = Some(value),
                        "persistent" => match parse_bool(&value) {
                            Ok(v) => g.persistent = v,
                            Err(e) => ctx.bad(Code::BadValue, s.span, "`persistent`", e),
                        },
                        _ => {
                            lint::unknown_keyword(ctx, &s.keyword, "global", GLOBAL_KEYWORDS);
                            g.unknown.insert(k.to_string(), value);
                        }
                    }
                }
                Item::Assign(_) => {}
                Item::Block(blk) => {
                    let name = blk.name.node.as_str();
                    if lint::is_autoenum(name) {
                        continue;
                    }
                    if g.hooks.get(name).is_some() {
                        let mut lines = Vec::new();
                        generic::lines_into(blk, ctx.sources(), &mut lines, &mut truncated);
                        let lines: Vec<String> = lines
                            .iter()
                            .map(|l| ctx.expand_line(&g.scope(), l, false))
                            .collect();
                        if let Some(hook) = g.hooks.get_mut(name) {
                            hook.extend(lines);
                        }
                    } else {
                        let mut known = Hooks::NAMES.to_vec();
                        known.push("autoenum");
                        lint::near_miss_block(ctx, &blk.name, &known);
                        g.blocks.push(generic::convert(
                            blk,
                            &mut |v| v.node.to_owned_string(),
                            &mut truncated,
                        ));
                    }
                }
            }
        }
    }
    ctx.nesting_limit(truncated);
    g
}

/// Read the blocks of one switch (several blocks with one name merge,
/// later statements winning).
pub(crate) fn read_switch(
    ctx: &mut Ctx<'_>,
    name: &str,
    first: &Block,
    rest: &[&Block],
    global: &Global,
) -> (Switch, BlockOrigin) {
    let mut sw = Switch::new(name);
    let mut origin = collect::block_origin(first, rest);
    let scope = global.scope();
    let mut truncated = None;
    for b in std::iter::once(first).chain(rest.iter().copied()) {
        for item in &b.items {
            match item {
                Item::Statement(s) => {
                    let k = s.keyword.node.as_str();
                    let span = s.value.as_ref().map_or(s.keyword.span, |v| v.span);
                    let value = match &s.value {
                        Some(v) => ctx.expand(&scope, v, false),
                        None => "1".to_string(),
                    };
                    if SWITCH_KEYWORDS.contains(&k) {
                        origin.keywords.insert(k.to_string(), span);
                    }
                    match k {
                        "service_host" | "location" => sw.service_host = Some(value),
                        "hub" => match parse_bool(&value) {
                            Ok(v) => sw.hub = v,
                            Err(e) => ctx.bad(Code::BadValue, span, "`hub`", e),
                        },
                        "bridge" => sw.bridge = Some(value),
                        "socket" => sw.socket = Some(value),
                        "tap" => sw.tap = Some(value),
                        "owner" | "group" | "sudo" => {
                            sw.owner_keys.set(k, value);
                        }
                        _ => {
                            lint::unknown_keyword(ctx, &s.keyword, "a switch", SWITCH_KEYWORDS);
                            sw.unknown.insert(k.to_string(), value);
                        }
                    }
                }
                Item::Assign(a) => ctx.report(
                    crate::diag::Diagnostic::new(
                        Code::UnknownKeyword,
                        Some(a.span),
                        "variables inside a switch block are ignored",
                    )
                    .with_help("declare it in global"),
                ),
                Item::Block(blk) => {
                    let mut expand =
                        |v: &crate::source::Spanned<Text>| ctx.expand(&scope, v, false);
                    sw.blocks
                        .push(generic::convert(blk, &mut expand, &mut truncated));
                }
            }
        }
    }
    ctx.nesting_limit(truncated);
    (sw, origin)
}
