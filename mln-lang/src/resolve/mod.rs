//! Syntax tree to [`Project`]: variables, superclass chains with their
//! merge rules, `autoenum`, switch membership.
//!
//! The rules are those of the language reference, section "Resolution".
//! Everything here walks iteratively or with a small fixed depth bound, so
//! no input (a superclass chain of 100,000 links, say) can exhaust the
//! stack.
//!
//! Where the reference leaves room, this is what happens:
//!
//! - **Layers.** A host's settings come from, nearest first: its own
//!   blocks (several `host` blocks of one name are merged, later statements
//!   winning; the checker reports the duplicate), the settings `autoenum`
//!   generated for it, then its superclass chain. In one block the last
//!   statement wins.
//! - **Variables.** `$hostname` and `$project` cannot be redeclared. A
//!   variable's value may use other variables (16 levels deep at most; a
//!   cycle stops there and is left as written). One value expands to at
//!   most 1 MiB (E0021 beyond). Undefined variables in crypt hashes
//!   (`root_passwd`, `users`, `autouser`, `project_password`) are not
//!   reported: `$6$salt$...` is not a variable.
//! - **Lists.** Duplicates are a matter of inheritance only: every line of
//!   one layer is kept, in order, however often it repeats (a shell loop
//!   in `startup` needs its `sleep 1` each time). A layer's line that
//!   repeats an inherited line is dropped, once per inherited copy (see
//!   `lists`). Lines are expanded first, so a superclass's
//!   `echo $hostname` and the host's own `echo web1` count as one line.
//! - **Platform.** The nearest layer that names a platform decides; `xen`
//!   with `hvm` is a fully virtualised Xen guest; two different platforms
//!   in one layer are E0023.
//! - **Sizes.** A bare number means megabytes for every size keyword
//!   (`memory`, `size`, `free_space`, `swap`).
//! - **autoenum.** `addresses_begin` defaults to 1 (host 1 gets `net` + 1).
//!   `service_hosts` entries after the last count leave the remaining hosts
//!   on the local machine. At most [`MAX_GENERATED_HOSTS`] hosts are
//!   generated per project (E0021 beyond).
//! - **Typos.** Unknown statements are W0001 with the closest known
//!   keyword; unknown blocks are generic blocks, and W0001 only when their
//!   name is one typo from a known block (`starup`).

mod autoenum;
mod collect;
mod generic;
mod global;
mod host;
mod inherit;
pub(crate) mod lint;
mod lists;
mod values;
mod vars;

use std::collections::HashSet;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::{Origins, Project, SwitchPort};
use crate::source::{SourceMap, Span, Spanned};
use crate::syntax::{Ast, Text};

pub use autoenum::MAX_GENERATED_HOSTS;
pub(crate) use values::format_size;
pub use values::parse_cpu_list;

/// The bytes a size text (`256M`, `1GB`, `64`) stands for, `None` when it
/// is not a size. A bare number is megabytes.
pub(crate) fn parse_size_text(text: &str) -> Option<u64> {
    values::parse_size(text).ok()
}

/// A resolved project with where everything came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The project.
    pub project: Project,
    /// Spans of hosts, switches, superclasses and their keywords, for
    /// diagnostics about the model.
    pub origins: Origins,
    /// Warnings found while resolving (unknown keywords, undefined
    /// variables). Errors make [`resolve`] fail instead.
    pub warnings: Diagnostics,
}

/// Resolve a parsed project: expand variables, apply superclasses and
/// `autoenum`, read every value into its type, and fill in switch
/// membership.
///
/// `sources` is the map the parser filled; it is used to point diagnostics
/// about undefined variables at the variable itself rather than the whole
/// value.
///
/// Fails with every error found (and the warnings, too) when the project
/// cannot be resolved: a missing project name (E0017), an unknown
/// superclass (E0005) or a cycle (E0006), a malformed size, address,
/// netmask, MAC, number or value (E0009–E0012, E0022, E0023), or too many
/// generated hosts (E0021).
///
/// ```
/// use std::path::Path;
/// use mln_lang::resolve::resolve;
/// use mln_lang::syntax::{parse_source, Limits};
/// use mln_lang::{Code, SourceMap};
///
/// let text = b"global { project demo; $mem = 256M }
/// superclass small { memory 64M; startup { echo $hostname up } }
/// host web { superclass small; memory $mem }
/// host db  { superclass small; memroy 1G }
/// ";
/// let mut sources = SourceMap::new();
/// let ast = parse_source(&mut sources, Path::new("demo.mln"), text, &Limits::default()).unwrap();
/// let resolved = resolve(&ast, &sources).unwrap();
///
/// let web = resolved.project.host("web").unwrap();
/// assert_eq!(web.memory, 256 * 1024 * 1024);
/// assert_eq!(web.written["memory"], "256M");
/// assert_eq!(web.startup, ["echo web up"]);
///
/// // The typo does not pass silently.
/// let warning = &resolved.warnings.0[0];
/// assert_eq!(warning.code, Code::UnknownKeyword);
/// assert_eq!(warning.help.as_deref(), Some("did you mean `memory`?"));
/// assert_eq!(resolved.project.host("db").unwrap().unknown["memroy"], "1G");
/// /// ```
pub fn resolve(ast: &Ast, sources: &SourceMap) -> Result<Resolved, Diagnostics> {
    let mut ctx = Ctx::new(sources);
    let collected = collect::collect(&mut ctx, ast);
    let global = global::read(&mut ctx, &collected.globals);
    let mut origins = Origins {
        project: global.project_span,
        global: collected.globals.first().map(|b| b.span),
        ..Origins::default()
    };
    let mut project = Project {
        name: global.project.clone().unwrap_or_default(),
        variables: global.variables.clone(),
        hooks: global.hooks.clone(),
        project_password: global.project_password.clone(),
        persistent: global.persistent,
        unknown: global.unknown.clone(),
        global_blocks: global.blocks.clone(),
        ..Project::default()
    };
    if global.project.is_none() {
        let span = collected.globals.first().map(|b| b.name.span);
        ctx.report(
            Diagnostic::new(Code::MissingProject, span, "the project has no name")
                .with_help("add `global { project NAME }`"),
        );
    }

    let supers = inherit::Superclasses::new(&mut ctx, &collected);
    for (name, blocks) in collected.superclasses.iter() {
        let mut truncated = None;
        for b in blocks {
            lint::host_block(&mut ctx, b, "a superclass");
            let mut g = generic::convert(b, &mut |v| v.node.to_owned_string(), &mut truncated);
            g.label = Some(name.to_string());
            project.superclasses.push(g);
        }
        ctx.nesting_limit(truncated);
        if let Some((first, rest)) = blocks.split_first() {
            origins
                .superclasses
                .insert(name.to_string(), collect::block_origin(first, rest));
        }
    }

    let hosts = autoenum::place_hosts(&mut ctx, &collected, &global);
    project.hosts.reserve_exact(hosts.len());
    let mut host_origins = Vec::with_capacity(hosts.len());
    let mut chains = host::Chains::default();
    for entry in &hosts {
        for b in entry.blocks.iter() {
            lint::host_block(&mut ctx, b, "a host");
        }
        let (host, origin) =
            host::resolve_host(&mut ctx, sources, entry, &supers, &mut chains, &global);
        ctx.inherited_links = ctx.inherited_links.saturating_add(host.superclasses.len());
        host_origins.push((host.name.clone(), origin));
        project.hosts.push(host);
        if ctx.inherited_links > MAX_INHERITED_LINKS || ctx.expanded > MAX_TOTAL_EXPANSION {
            if ctx.inherited_links > MAX_INHERITED_LINKS {
                ctx.report(Diagnostic::new(
                    Code::LimitExceeded,
                    entry.blocks.first().map(|b| b.span).or(origins.global),
                    format!(
                        "hosts inherit more than {MAX_INHERITED_LINKS} superclass links in all \
                         (hosts times superclass chain length)"
                    ),
                ));
            }
            break;
        }
    }
    // Built in one go from sorted entries: far cheaper than one insert per
    // host. Names are unique (`place_hosts` merged repeats).
    origins.hosts = host_origins.into_iter().collect();

    for (name, blocks) in collected.switches.iter() {
        let Some((first, rest)) = blocks.split_first() else {
            continue;
        };
        let (switch, origin) = global::read_switch(&mut ctx, name, first, rest, &global);
        origins.switches.insert(name.to_string(), origin);
        project.switches.push(switch);
    }
    let index: std::collections::HashMap<&str, usize> = project
        .switches
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut ports: Vec<(usize, SwitchPort)> = Vec::with_capacity(project.hosts.len());
    for h in &project.hosts {
        for i in &h.interfaces {
            if let Some(&s) = i.switch.as_deref().and_then(|sw| index.get(sw)) {
                ports.push((
                    s,
                    SwitchPort {
                        host: h.name.clone(),
                        interface: i.name.clone(),
                    },
                ));
            }
        }
    }
    drop(index);
    for (s, port) in ports {
        if let Some(switch) = project.switches.get_mut(s) {
            switch.members.push(port);
        }
    }
    let mut truncated = None;
    for b in &collected.blocks {
        project.blocks.push(generic::convert(
            b,
            &mut |v| v.node.to_owned_string(),
            &mut truncated,
        ));
    }
    ctx.nesting_limit(truncated);

    ctx.finish().map(|warnings| Resolved {
        project,
        origins,
        warnings,
    })
}

/// The subject of a diagnostic about a value, formatted only when one is
/// reported: `` `memory` `` or `` `address` of eth0 ``.
pub(crate) struct What<'a>(pub &'a str, pub Option<&'a str>);

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(of) => write!(f, "`{}` of {of}", self.0),
            None => write!(f, "`{}`", self.0),
        }
    }
}

/// What every step of resolution shares: the sources, for precise spans,
/// and the diagnostics so far (each reported once, however many hosts
/// inherit the value it is about).
pub(crate) struct Ctx<'s> {
    sources: &'s SourceMap,
    diags: Vec<Diagnostic>,
    seen: HashSet<(Code, Option<Span>, String)>,
    /// Bytes produced by variable expansion so far, over the whole project.
    expanded: usize,
    /// Superclass links inherited so far, summed over every host.
    inherited_links: usize,
}

/// The most bytes variable expansion may produce over a whole project.
/// Each value is also bounded (1 MiB); this bounds their sum, which a short
/// file could otherwise multiply by its host count.
pub const MAX_TOTAL_EXPANSION: usize = 128 << 20;

/// The most superclass links all hosts together may inherit (hosts times
/// chain length), which bounds the model's size for any input.
pub const MAX_INHERITED_LINKS: usize = 2_000_000;

impl<'s> Ctx<'s> {
    fn new(sources: &'s SourceMap) -> Self {
        Ctx {
            sources,
            diags: Vec::new(),
            seen: HashSet::new(),
            expanded: 0,
            inherited_links: 0,
        }
    }

    /// Record `d` unless the same diagnostic was recorded before.
    pub(crate) fn report(&mut self, d: Diagnostic) {
        if self.seen.insert((d.code, d.span, d.message.clone())) {
            self.diags.push(d);
        }
    }

    /// A value failed to read: `code` at the value's span.
    pub(crate) fn bad(
        &mut self,
        code: Code,
        span: Span,
        what: impl std::fmt::Display,
        reason: String,
    ) {
        self.report(Diagnostic::new(
            code,
            Some(span),
            format!("{what}: {reason}"),
        ));
    }

    /// E0021 when a block nested deeper than the resolver follows.
    pub(crate) fn nesting_limit(&mut self, truncated: Option<Span>) {
        if let Some(span) = truncated {
            self.report(Diagnostic::new(
                Code::LimitExceeded,
                Some(span),
                format!(
                    "blocks nested more than {} deep are not read",
                    generic::MAX_NESTING
                ),
            ));
        }
    }

    /// The sources the syntax tree was read from.
    pub(crate) fn sources(&self) -> &'s SourceMap {
        self.sources
    }

    /// The span of `range` inside `text` (written at `span`), when the
    /// source text there is `text` exactly; otherwise the whole value.
    pub(crate) fn sub_span(&self, text: &str, span: Span, range: std::ops::Range<usize>) -> Span {
        if self.sources.text(span) == text && range.end <= text.len() {
            Span::new(
                span.file,
                span.start as usize + range.start..span.start as usize + range.end,
            )
        } else {
            span
        }
    }

    /// Expand `value` in `scope`, reporting undefined variables (unless
    /// `quiet`, for crypt hashes) and overlong expansions.
    pub(crate) fn expand(
        &mut self,
        scope: &vars::Scope<'_>,
        value: &Spanned<Text>,
        quiet: bool,
    ) -> String {
        self.expand_cow(scope, value, quiet).into_owned()
    }

    /// [`Ctx::expand`], borrowing the value when it has no variable.
    pub(crate) fn expand_cow<'v>(
        &mut self,
        scope: &vars::Scope<'_>,
        value: &'v Spanned<Text>,
        quiet: bool,
    ) -> std::borrow::Cow<'v, str> {
        self.expand_text(scope, value.node.as_str(), value.span, quiet)
    }

    /// [`Ctx::expand`] for one line of a list block.
    pub(crate) fn expand_line(
        &mut self,
        scope: &vars::Scope<'_>,
        line: &generic::Line<'_>,
        quiet: bool,
    ) -> String {
        self.expand_text(scope, &line.text, line.span, quiet)
            .into_owned()
    }

    /// Expand `text`, written at `span`; borrowed when it has no variable.
    fn expand_text<'v>(
        &mut self,
        scope: &vars::Scope<'_>,
        text: &'v str,
        span: Span,
        quiet: bool,
    ) -> std::borrow::Cow<'v, str> {
        if self.expanded > MAX_TOTAL_EXPANSION {
            // Already reported; stop paying for expansions.
            return std::borrow::Cow::Borrowed(text);
        }
        let e = scope.expand(text);
        if let std::borrow::Cow::Owned(expanded) = &e.text {
            self.expanded = self.expanded.saturating_add(expanded.len());
            if self.expanded > MAX_TOTAL_EXPANSION {
                self.report(Diagnostic::new(
                    Code::LimitExceeded,
                    Some(span),
                    format!(
                        "variables expand to more than {} MiB over the whole project",
                        MAX_TOTAL_EXPANSION >> 20
                    ),
                ));
            }
        }
        if !quiet {
            for (name, range) in &e.undefined {
                let span = self.sub_span(text, span, range.clone());
                self.report(
                    Diagnostic::new(
                        Code::UndefinedVariable,
                        Some(span),
                        format!("undefined variable `${name}` is left as written"),
                    )
                    .with_help(format!(
                        "declare it with `${name} = ...` in global, the host or a superclass, or give it with `-D {name}=...`"
                    )),
                );
            }
        }
        if e.too_long {
            self.report(Diagnostic::new(
                Code::LimitExceeded,
                Some(span),
                format!(
                    "variables expand to more than {} bytes",
                    vars::MAX_EXPANDED_LEN
                ),
            ));
        }
        e.text
    }

    fn finish(mut self) -> Result<Diagnostics, Diagnostics> {
        // Stable order: by file and position, whole-project problems last.
        self.diags.sort_by_key(|d| {
            d.span.map_or((u32::MAX, u32::MAX, u32::MAX), |s| {
                (s.file.0, s.start, s.end)
            })
        });
        let all = Diagnostics(self.diags);
        if all.has_errors() {
            Err(all)
        } else {
            Ok(all)
        }
    }
}
