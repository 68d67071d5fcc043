//! The MLN language: from project text to a checked model.
//!
//! `parse_str`/`parse_file` read text into a syntax tree with spans
//! ([`syntax`]), `resolve` turns it into a [`model::Project`], `check`
//! reports every problem as a [`Diagnostic`] with a stable [`Code`].

#![forbid(unsafe_code)]

pub mod diag;
mod front;
mod render;
pub mod source;
pub mod syntax;

pub use diag::{render, Code, Diagnostic, Diagnostics, Severity};
pub use front::{check, load, load_str, parse_file, parse_str, resolve, Checked, Parsed, Report};
pub use print::to_mln;
pub use query::{query_list, query_scalar, QueryError};
pub use source::{FileId, SourceMap, Span, Spanned};

pub mod agent;
pub mod apply;
pub mod check;
pub mod graph;
pub mod model;
pub mod plan;
pub mod print;
pub mod query;
pub mod resolve;
pub mod state;
