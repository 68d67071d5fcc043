//! Text to syntax tree: the nom parser, `#include`, limits.

pub mod ast;

pub use ast::{Assign, Ast, Block, Item, Statement};
