//! Where each part of a resolved project was written: the side table of
//! spans the checker points its diagnostics at.
//!
//! Kept apart from [`Project`](super::Project) so that two projects read
//! from different files still compare equal.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::VecMap;

use crate::source::Span;

/// Spans of everything the resolver read, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origins {
    /// The value of `global { project NAME }`.
    #[serde(default)]
    pub project: Option<Span>,
    /// The `global` block (the first one when there are several).
    #[serde(default)]
    pub global: Option<Span>,
    /// Hosts by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostOrigin>,
    /// Switches by name.
    #[serde(default)]
    pub switches: BTreeMap<String, BlockOrigin>,
    /// Superclasses by name.
    #[serde(default)]
    pub superclasses: BTreeMap<String, BlockOrigin>,
}

/// Where a host was defined and where each of its settings came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOrigin {
    /// The `host NAME { ... }` block; for a host made by `autoenum` and not
    /// written out, the `autoenum` block.
    pub span: Span,
    /// The name as written (the label of the host block, or the `autoenum`
    /// block for a generated host).
    pub name: Span,
    /// Name spans of further `host` blocks with the same name (merged into
    /// the first, later statements winning). Generated hosts overridden by
    /// a written host are not duplicates.
    #[serde(default)]
    pub duplicates: Vec<Span>,
    /// True when `autoenum` generated the host.
    #[serde(default)]
    pub generated: bool,
    /// For each keyword (and list block) that has a value: the span of the
    /// statement's value (or keyword, for a flag; or block, for a list
    /// block) it came from, which may lie in a superclass. Keys are
    /// borrowed for the keywords the language knows, so a project of many
    /// hosts does not copy them once per host; look them up with `&str`.
    #[serde(default)]
    pub keywords: VecMap<Cow<'static, str>, Span>,
    /// Interfaces by name.
    #[serde(default)]
    pub interfaces: VecMap<String, InterfaceOrigin>,
}

/// Where an interface was defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceOrigin {
    /// The nearest `network IFACE { ... }` block that defines it (the
    /// host's own when it has one, else the superclass's).
    pub span: Span,
    /// The `IFACE` label of that block.
    pub name: Span,
    /// For each keyword: the span of the value it came from (keys as in
    /// [`HostOrigin::keywords`]).
    #[serde(default)]
    pub keywords: VecMap<Cow<'static, str>, Span>,
}

/// Where a switch or superclass was defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOrigin {
    /// The whole block (the first one with this name).
    pub span: Span,
    /// The name as written.
    pub name: Span,
    /// Name spans of further blocks with the same name.
    #[serde(default)]
    pub duplicates: Vec<Span>,
    /// For each keyword: the span of its value (or keyword, for a flag).
    #[serde(default)]
    pub keywords: BTreeMap<String, Span>,
}
