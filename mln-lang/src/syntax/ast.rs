//! The syntax tree: statements and blocks exactly as written, with spans.
//! No meaning is attached here; the resolver gives it.

use serde::{Deserialize, Serialize};

use super::Text;
use crate::source::{Span, Spanned};

/// A parsed project file, includes spliced in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ast {
    /// Top-level items in file order (`global`, `host`, `switch`,
    /// `superclass`, generic blocks; stray top-level statements are kept too).
    pub items: Vec<Item>,
}

/// One item of a block body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// `keyword value...` or a bare flag `keyword`.
    Statement(Statement),
    /// `$name = value`.
    Assign(Assign),
    /// `name [label] { ... }`.
    Block(Block),
}

impl Item {
    /// The span of the whole item.
    pub fn span(&self) -> Span {
        match self {
            Item::Statement(s) => s.span,
            Item::Assign(a) => a.span,
            Item::Block(b) => b.span,
        }
    }
}

/// `keyword value`: the value is the rest of the statement, split on
/// whitespace and re-joined with single spaces, escapes (`\;`) resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The first word.
    pub keyword: Spanned<Text>,
    /// The rest, or `None` for a flag (which means `1`).
    pub value: Option<Spanned<Text>>,
    /// The whole statement.
    pub span: Span,
}

impl Statement {
    /// The value as written, or `"1"` for a flag.
    pub fn value_or_flag(&self) -> &str {
        self.value.as_ref().map_or("1", |v| v.node.as_str())
    }
}

/// `$name = value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assign {
    /// The variable name, without `$`.
    pub name: Spanned<Text>,
    /// The value (may be empty).
    pub value: Spanned<Text>,
    /// The whole declaration.
    pub span: Span,
}

/// `name [label] { items }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// `host`, `switch`, `network`, `startup`, ...
    pub name: Spanned<Text>,
    /// `host NAME`: the `NAME` (for list blocks such as `groups { g { ... } }`
    /// there is none).
    pub label: Option<Spanned<Text>>,
    /// The body.
    pub items: Vec<Item>,
    /// From the block's first word to its closing `}`.
    pub span: Span,
}
