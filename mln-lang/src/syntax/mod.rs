//! Text to syntax tree: the nom parser, `#include`, limits.
//!
//! [`parse_source`] and [`parse_path`] read one project file (and every
//! file it includes) into an [`Ast`] whose every statement, keyword, value,
//! block and label carries its byte [`Span`](crate::Span). The lexical rules
//! are those of the language reference, "Lexical structure". Where the
//! reference leaves room, the parser decides:
//!
//! - Whitespace is space, tab, CR, VT and FF; CRLF files parse like LF files.
//!   A UTF-8 byte order mark at the start is skipped.
//! - `#` starts a comment anywhere outside an escape, even inside a word.
//!   `#include PATH` is a directive when only whitespace precedes it on its
//!   line; PATH is the rest of the line, trimmed. `#includes` is a comment.
//! - `\` escapes exactly one character, whatever it is (`\n` is `n`, an
//!   escaped newline is a newline inside the word); a `\` at the end of the
//!   file is an error (`E0001`).
//! - An included file is spliced in token by token: a block may open in one
//!   file and close in another (its span then covers only its header, since
//!   a span cannot cross files). The end of a file ends a statement.
//! - A `{` needs a name on its own line: `NAME {` or `NAME LABEL {`. A bare
//!   `{` or three words before it are `E0001`; the block is still opened so
//!   that braces keep balancing and later errors stay accurate.
//! - A statement starting with `$` is a declaration only when an `=` follows
//!   the name directly or starts the next word; otherwise it is an ordinary
//!   statement (a shell line such as `$HOME/bin/start` in `startup`).
//! - Errors do not stop the parse, except a crossed [`Limits`] value
//!   (`E0021`); after [`Limits::max_errors`] errors it stops too.

pub mod ast;
mod include;
mod lexer;
mod limits;
mod parser;
mod text;

use std::path::Path;

pub use ast::{Assign, Ast, Block, Item, Statement};
pub use limits::{Limits, NESTING_CEILING};
pub use text::Text;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::SourceMap;

/// Parse the project text `text`, read from (or named) `path`.
///
/// The file is added to `sources` (lossily when it is not valid UTF-8) so
/// that every diagnostic can be rendered. `#include` paths are relative to
/// `path`'s directory. Any error (syntax, encoding, include, limit) makes
/// the result `Err` with every diagnostic found.
///
/// ```
/// use std::path::Path;
/// use mln_lang::syntax::{parse_source, Item, Limits};
/// use mln_lang::SourceMap;
///
/// let mut sources = SourceMap::new();
/// let text = b"host a { memory 64M }\n";
/// let ast = parse_source(&mut sources, Path::new("a.mln"), text, &Limits::default()).unwrap();
/// let Item::Block(host) = &ast.items[0] else { panic!() };
/// assert_eq!(host.label.as_ref().unwrap().node, "a");
/// let Item::Statement(memory) = &host.items[0] else { panic!() };
/// assert_eq!(memory.value.as_ref().unwrap().node, "64M");
/// assert_eq!(sources.text(memory.span), "memory 64M");
///
/// let err = parse_source(&mut sources, Path::new("b.mln"), b"host b {\n", &Limits::default());
/// assert_eq!(err.unwrap_err().0[0].code, mln_lang::Code::UnclosedBlock);
/// ```
pub fn parse_source(
    sources: &mut SourceMap,
    path: &Path,
    text: &[u8],
    limits: &Limits,
) -> Result<Ast, Diagnostics> {
    parser::Parser::new(sources, limits).parse_main(path, text)
}

/// Read the file at `path` and parse it like [`parse_source`]. A file that
/// cannot be read is `E0018` naming the path.
///
/// ```
/// use mln_lang::syntax::{parse_path, Limits};
/// use mln_lang::SourceMap;
///
/// let dir = std::env::temp_dir().join(format!("mln-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("common.mln"), "switch lan {\n}\n").unwrap();
/// std::fs::write(dir.join("main.mln"), "global { project p }\n#include common.mln\n").unwrap();
///
/// let mut sources = SourceMap::new();
/// let ast = parse_path(&mut sources, &dir.join("main.mln"), &Limits::default()).unwrap();
/// assert_eq!(ast.items.len(), 2); // `global` and the included `switch lan`
///
/// let missing = parse_path(&mut sources, &dir.join("nope.mln"), &Limits::default());
/// assert_eq!(missing.unwrap_err().0[0].code, mln_lang::Code::IncludeNotFound);
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn parse_path(
    sources: &mut SourceMap,
    path: &Path,
    limits: &Limits,
) -> Result<Ast, Diagnostics> {
    match include::read_limited(path, limits.effective_file_bytes()) {
        Ok(bytes) => parse_source(sources, path, &bytes, limits),
        Err(include::ReadError::Io(e)) => Err(Diagnostic::new(
            Code::IncludeNotFound,
            None,
            format!("cannot read `{}`: {e}", path.display()),
        )
        .into()),
        Err(include::ReadError::TooBig) => Err(Diagnostic::new(
            Code::LimitExceeded,
            None,
            format!(
                "`{}` is larger than the limit of {} bytes",
                path.display(),
                limits.effective_file_bytes()
            ),
        )
        .into()),
    }
}
