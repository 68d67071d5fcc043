//! The MLN language: from project text to a checked model.
//!
//! [`parse_str`]/[`parse_file`] read text into a syntax tree with spans
//! ([`syntax`]), [`Parsed::resolve`] turns it into a [`model::Project`],
//! [`Parsed::check`] reports every problem as a [`Diagnostic`] with a
//! stable [`Code`]; [`load`] does all three.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// The lifecycle library this crate plans for and drives: its types
/// (`MacAddr`, `BackendKind`, `Hypervisor`, `DomainSpec`, ...) appear in
/// this crate's public signatures, so an embedder needs no dependency of
/// its own on it.
pub use mln_core;

mod defines;
pub mod diag;
mod front;
mod render;
pub mod source;
pub mod syntax;

pub use defines::{DefineError, Definitions, COMMAND_LINE};
pub use diag::{render, Code, Diagnostic, Diagnostics, Severity};
pub use front::{
    load, load_str, load_str_with, load_with, parse_file, parse_str, Checked, Parsed, Report,
};
pub use print::to_mln;
pub use query::{query_list, query_scalar, QueryError};
pub use source::{FileId, SourceMap, Span, Spanned};

pub mod check;
pub mod class;
pub mod files;
pub mod graph;
pub mod model;
pub mod plan;
pub mod print;
pub mod query;
pub mod resolve;

// The runtime: applying plans to machines (feature `runtime`, on by
// default). A tool that only reads MLN files turns it off.
#[cfg(feature = "runtime")]
pub mod agent;
#[cfg(feature = "runtime")]
pub mod apply;
#[cfg(feature = "runtime")]
pub mod archive;
#[cfg(feature = "runtime")]
pub mod machine;
#[cfg(feature = "runtime")]
pub mod plugin;
#[cfg(feature = "runtime")]
pub mod site;
#[cfg(feature = "runtime")]
pub mod state;
