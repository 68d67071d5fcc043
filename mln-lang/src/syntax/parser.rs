//! The parser: tokens to [`Ast`], with an explicit stack of open blocks and
//! a stack of open files, so neither nesting nor `#include` recurses.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::{FileId, SourceMap, Span, Spanned};

use super::ast::{Assign, Ast, Block, Item, Statement};
use super::include::{self, ReadError};
use super::lexer::{unescape, Cursor, Token, Word};
use super::limits::Limits;
use super::text::Text;

/// A file being read: its text, where we are, and how to name it.
struct OpenFile<'t> {
    text: Cow<'t, str>,
    cursor: Cursor,
    id: FileId,
    /// As shown in diagnostics, and the base of relative includes.
    path: PathBuf,
    /// As compared when looking for include cycles; found only once a file
    /// includes another (a system call the common case does not need).
    identity: Option<PathBuf>,
}

/// A block whose `}` has not been seen yet.
struct Frame {
    name: Spanned<Text>,
    label: Option<Spanned<Text>>,
    /// The `{`.
    open: Span,
    /// Where this block's items start in [`Parser::pending`].
    first: usize,
}

/// Parse state for one project (a main file and its includes).
pub(crate) struct Parser<'s, 't> {
    sources: &'s mut SourceMap,
    limits: &'s Limits,
    files: Vec<OpenFile<'t>>,
    /// `blocks[0]` is the top level, which has no braces.
    blocks: Vec<Frame>,
    /// Items of the top level.
    top: Vec<Item>,
    /// Items of every open nested block, outermost first. A block's items
    /// are moved out in one exact-size allocation when it closes, instead
    /// of each block growing its own vector.
    pending: Vec<Item>,
    /// Words of the statement being read (reused, to avoid allocating).
    words: Vec<Word>,
    diags: Vec<Diagnostic>,
    total_bytes: usize,
    includes: usize,
    /// A limit was hit or too many errors: stop reading.
    stopped: bool,
}

impl<'s, 't> Parser<'s, 't> {
    pub fn new(sources: &'s mut SourceMap, limits: &'s Limits) -> Self {
        let root = Frame {
            name: Spanned::new(Text::default(), Span::new(FileId(0), 0..0)),
            label: None,
            open: Span::new(FileId(0), 0..0),
            first: 0,
        };
        Parser {
            sources,
            limits,
            files: Vec::new(),
            blocks: vec![root],
            top: Vec::new(),
            pending: Vec::new(),
            words: Vec::new(),
            diags: Vec::new(),
            total_bytes: 0,
            includes: 0,
            stopped: false,
        }
    }

    /// Parse the main file `path` whose bytes are `bytes`.
    pub fn parse_main(mut self, path: &Path, bytes: &'t [u8]) -> Result<Ast, Diagnostics> {
        if bytes.len() > self.limits.effective_file_bytes() {
            self.sources.add(path, include::lossy(bytes));
            let d = Diagnostic::new(
                Code::LimitExceeded,
                None,
                format!(
                    "`{}` is {} bytes, more than the limit of {}",
                    path.display(),
                    bytes.len(),
                    self.limits.effective_file_bytes()
                ),
            );
            return Err(d.into());
        }
        let text = match include::validate(bytes) {
            Ok(text) => text,
            Err(bad) => {
                let id = self.sources.add(path, include::lossy(bytes));
                let span = Span::new(id, bad.start..bad.start + bad.len);
                return Err(Diagnostic::new(Code::BadEncoding, Some(span), bad.message).into());
            }
        };
        let id = self.sources.add(path, text.to_owned());
        self.total_bytes = text.len();
        self.files.push(OpenFile {
            cursor: Cursor::new(text),
            text: Cow::Borrowed(text),
            id,
            path: path.to_path_buf(),
            identity: None,
        });
        self.run();
        self.finish()
    }

    fn run(&mut self) {
        while !self.stopped {
            let Some(file) = self.files.last_mut() else {
                break;
            };
            let line_start = file.cursor.line_start();
            match file.cursor.next(&file.text) {
                Token::Word(w) => self.words.push(w),
                Token::Newline(at) => {
                    self.check_line(line_start, at);
                    self.end_statement();
                }
                Token::Semi(_) => self.end_statement(),
                Token::Open(at) => self.open_block(at),
                Token::Close(at) => {
                    self.end_statement();
                    self.close_block(at);
                }
                Token::Include { directive, path } => self.include(directive, path),
                Token::DanglingEscape(at) => {
                    let span = self.span(at, at + 1);
                    self.error(
                        Diagnostic::new(
                            Code::Syntax,
                            Some(span),
                            "`\\` at the end of the file escapes nothing",
                        )
                        .with_help("write `\\\\` for a literal backslash"),
                    );
                }
                Token::Eof => {
                    let end = file.text.len();
                    self.check_line(line_start, end);
                    self.end_statement();
                    self.files.pop();
                }
            }
        }
    }

    fn finish(mut self) -> Result<Ast, Diagnostics> {
        if !self.stopped {
            let unclosed: Vec<Diagnostic> = self
                .blocks
                .iter()
                .skip(1)
                .map(|f| {
                    Diagnostic::new(
                        Code::UnclosedBlock,
                        Some(f.open),
                        format!("unclosed block{}", header(f)),
                    )
                    .with_help("add a `}` where the block ends")
                })
                .collect();
            for d in unclosed {
                self.error(d);
            }
        }
        if !self.diags.is_empty() {
            return Err(Diagnostics(self.diags));
        }
        Ok(Ast { items: self.top })
    }

    /// Record an error; stop when there are too many.
    fn error(&mut self, d: Diagnostic) {
        if self.stopped {
            return;
        }
        let max = self.limits.max_errors.max(1);
        if self.diags.len() + 1 >= max {
            // The last one says why there are no more.
            let help = match &d.help {
                Some(h) => format!("{h}; the parser stopped after {max} errors"),
                None => format!("the parser stopped after {max} errors"),
            };
            self.diags.push(d.with_help(help));
            self.stopped = true;
        } else {
            self.diags.push(d);
        }
    }

    /// Record a crossed limit and stop.
    fn limit(&mut self, span: Option<Span>, message: String) {
        self.diags
            .push(Diagnostic::new(Code::LimitExceeded, span, message));
        self.stopped = true;
    }

    /// A span in the current file.
    fn span(&self, start: usize, end: usize) -> Span {
        let id = self.files.last().map_or(FileId(0), |f| f.id);
        Span::new(id, start..end)
    }

    fn check_line(&mut self, start: usize, end: usize) {
        if end.saturating_sub(start) <= self.limits.max_line_bytes {
            return;
        }
        let first = self
            .files
            .last()
            .and_then(|f| f.text.get(start..))
            .and_then(|s| s.chars().next())
            .map_or(0, char::len_utf8);
        let span = self.span(start, start + first);
        self.limit(
            Some(span),
            format!(
                "line of {} bytes, more than the limit of {}",
                end - start,
                self.limits.max_line_bytes
            ),
        );
    }

    /// The words read so far form a statement (or nothing, on a blank line).
    fn end_statement(&mut self) {
        if self.words.is_empty() {
            return;
        }
        let Some(file) = self.files.last() else {
            return;
        };
        let built = build_item(&file.text, file.id, &self.words);
        self.words.clear();
        match built {
            Some(Ok(item)) => self.push_item(item),
            Some(Err(d)) => self.error(d),
            None => {}
        }
    }

    fn open_block(&mut self, at: usize) {
        let brace = self.span(at, at + 1);
        if self.blocks.len() > self.limits.effective_nesting() {
            self.limit(
                Some(brace),
                format!(
                    "blocks nested more than {} deep",
                    self.limits.effective_nesting()
                ),
            );
            return;
        }
        let Some(file) = self.files.last() else {
            return;
        };
        let text: &str = &file.text;
        let word = |w: &Word| Spanned::new(cook(text, w), Span::new(file.id, w.start..w.end));
        let (name, label) = match self.words.as_slice() {
            [] => (Spanned::new(Text::default(), brace), None),
            [n] => (word(n), None),
            [n, l] => (word(n), Some(word(l))),
            [n, l, rest @ ..] => {
                let first = rest.first().map_or(at, |w| w.start);
                let last = rest.last().map_or(at, |w| w.end);
                let d = Diagnostic::new(
                    Code::Syntax,
                    Some(Span::new(file.id, first..last)),
                    "too many words before `{`",
                )
                .with_help("a block starts with `NAME {` or `NAME LABEL {`");
                let header = (word(n), Some(word(l)));
                self.words.clear();
                self.error(d);
                header
            }
        };
        if name.node.is_empty() && self.words.is_empty() {
            self.error(
                Diagnostic::new(Code::Syntax, Some(brace), "`{` without a block name")
                    .with_help("write the block name on the same line: `NAME {`"),
            );
        }
        self.words.clear();
        self.blocks.push(Frame {
            name,
            label,
            open: brace,
            first: self.pending.len(),
        });
    }

    fn close_block(&mut self, at: usize) {
        let brace = self.span(at, at + 1);
        if self.blocks.len() <= 1 {
            self.error(
                Diagnostic::new(Code::StrayClose, Some(brace), "`}` closes no block")
                    .with_help("remove it, or look above for a block that lost its `{`"),
            );
            return;
        }
        let Some(frame) = self.blocks.pop() else {
            return;
        };
        // A block may close in another file than it opened in (includes are
        // spliced as text); a span cannot cross files, so it then covers
        // only the header.
        let start = frame.name.span;
        let span = if brace.file == start.file {
            start.to(brace)
        } else {
            start.to(frame.open)
        };
        let block = Block {
            name: frame.name,
            label: frame.label,
            items: self.pending.drain(frame.first..).collect(),
            span,
        };
        self.push_item(Item::Block(block));
    }

    /// Add an item to the innermost open block.
    fn push_item(&mut self, item: Item) {
        if self.blocks.len() > 1 {
            self.pending.push(item);
        } else {
            self.top.push(item);
        }
    }

    fn include(&mut self, directive: (usize, usize), path: (usize, usize)) {
        let Some(file) = self.files.last() else {
            return;
        };
        let dspan = Span::new(file.id, directive.0..directive.1);
        let pspan = Span::new(file.id, path.0..path.1);
        let raw = file.text.get(path.0..path.1).unwrap_or_default();
        if raw.is_empty() {
            self.error(
                Diagnostic::new(Code::Syntax, Some(dspan), "`#include` without a file name")
                    .with_help("write `#include PATH`"),
            );
            return;
        }
        let target = file
            .path
            .parent()
            .map_or_else(|| PathBuf::from(raw), |dir| dir.join(raw));
        if self.files.len() > self.limits.max_include_depth {
            let msg = format!(
                "includes nested more than {} deep",
                self.limits.max_include_depth
            );
            self.limit(Some(dspan), msg);
            return;
        }
        if self.includes >= self.limits.max_includes {
            let msg = format!("more than {} includes", self.limits.max_includes);
            self.limit(Some(dspan), msg);
            return;
        }
        self.includes += 1;
        let identity = include::identity(&target);
        for f in &mut self.files {
            if f.identity.is_none() {
                f.identity = Some(include::identity(&f.path));
            }
        }
        if let Some(i) = self
            .files
            .iter()
            .position(|f| f.identity.as_ref() == Some(&identity))
        {
            let chain: Vec<String> = self.files[i..]
                .iter()
                .map(|f| f.path.display().to_string())
                .chain(std::iter::once(target.display().to_string()))
                .collect();
            self.error(
                Diagnostic::new(
                    Code::IncludeCycle,
                    Some(pspan),
                    format!("include cycle: {}", chain.join(" → ")),
                )
                .with_help("remove one of these `#include` lines"),
            );
            return;
        }
        let budget = self
            .limits
            .effective_file_bytes()
            .min(self.limits.max_total_bytes.saturating_sub(self.total_bytes));
        let bytes = match include::read_limited(&target, budget) {
            Ok(b) => b,
            Err(ReadError::Io(e)) => {
                self.error(Diagnostic::new(
                    Code::IncludeNotFound,
                    Some(pspan),
                    format!("cannot read included file `{}`: {e}", target.display()),
                ));
                return;
            }
            Err(ReadError::TooBig) => {
                let msg = format!(
                    "`{}` is larger than the limit of {budget} bytes left for this project",
                    target.display()
                );
                self.limit(Some(pspan), msg);
                return;
            }
        };
        self.total_bytes += bytes.len();
        let text = match include::validate(&bytes) {
            Ok(t) => t.to_owned(),
            Err(bad) => {
                let id = self.sources.add(&target, include::lossy(&bytes));
                let span = Span::new(id, bad.start..bad.start + bad.len);
                self.error(
                    Diagnostic::new(Code::BadEncoding, Some(span), bad.message)
                        .with_label(pspan, "included here"),
                );
                return;
            }
        };
        let id = self.sources.add(&target, text.clone());
        self.files.push(OpenFile {
            cursor: Cursor::new(&text),
            text: Cow::Owned(text),
            id,
            path: target,
            identity: Some(identity),
        });
    }
}

/// `` `host web1` ``, `` `global` `` (with a leading space), or nothing for a
/// block without a name: how a block is named in messages.
fn header(f: &Frame) -> String {
    match &f.label {
        Some(l) => format!(" `{} {}`", f.name.node, l.node),
        None if f.name.node.is_empty() => String::new(),
        None => format!(" `{}`", f.name.node),
    }
}

/// The text of one word, escapes resolved.
fn cook(text: &str, w: &Word) -> Text {
    let raw = text.get(w.start..w.end).unwrap_or_default();
    if w.escaped {
        let mut s = String::with_capacity(raw.len());
        unescape(raw, &mut s);
        Text::from(s)
    } else {
        Text::from(raw)
    }
}

/// Words re-joined with single spaces, escapes resolved.
fn join(text: &str, words: &[Word]) -> Text {
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return Text::default();
    };
    let raw = text.get(first.start..last.end).unwrap_or_default();
    // The common case: already single-spaced and without escapes.
    let simple = words.iter().all(|w| !w.escaped)
        && words
            .windows(2)
            .all(|p| p[1].start == p[0].end + 1 && text.as_bytes().get(p[0].end) == Some(&b' '));
    if simple {
        return Text::from(raw);
    }
    let mut out = String::with_capacity(raw.len());
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let raw = text.get(w.start..w.end).unwrap_or_default();
        if w.escaped {
            unescape(raw, &mut out);
        } else {
            out.push_str(raw);
        }
    }
    Text::from(out)
}

/// One statement or `$name = value` from its words (at least one), or
/// `None` for no words.
fn build_item(text: &str, file: FileId, words: &[Word]) -> Option<Result<Item, Diagnostic>> {
    let (first, last) = (words.first()?, words.last()?);
    let span = Span::new(file, first.start..last.end);
    match build_assign(text, file, words, span) {
        Ok(Some(assign)) => return Some(Ok(Item::Assign(assign))),
        Ok(None) => {}
        Err(d) => return Some(Err(d)),
    }
    let keyword = Spanned::new(cook(text, first), Span::new(file, first.start..first.end));
    let value = match words.get(1..) {
        Some(rest @ [head, ..]) => Some(Spanned::new(
            join(text, rest),
            Span::new(file, head.start..last.end),
        )),
        _ => None,
    };
    Some(Ok(Item::Statement(Statement {
        keyword,
        value,
        span,
    })))
}

/// `$name = value` (also `$name=value`, `$name =value`, `$name= value`).
///
/// A statement is a declaration when it starts with `$` and has an `=`
/// where a declaration puts it: inside the first word, or starting the
/// second. The name must then be valid (`$1 = x` is an error). Without such
/// an `=` it is an ordinary statement, such as the shell line
/// `$HOME/bin/start now` in a `startup` block; whether that belongs where it
/// stands is for the checker to say.
fn build_assign(
    text: &str,
    file: FileId,
    words: &[Word],
    span: Span,
) -> Result<Option<Assign>, Diagnostic> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    let raw = text.get(first.start..first.end).unwrap_or_default();
    let Some(after_dollar) = raw.strip_prefix('$') else {
        return Ok(None);
    };
    // Where the `=` is, and what follows it: the rest of its word (if any)
    // and the remaining words make the value.
    let (name, eq_word, eq_end, more) = if let Some(i) = after_dollar.find('=') {
        let eq_end = first.start + 1 + i + 1;
        let more = words.get(1..).unwrap_or_default();
        (
            after_dollar.get(..i).unwrap_or_default(),
            *first,
            eq_end,
            more,
        )
    } else {
        match words.get(1..).unwrap_or_default() {
            [second, more @ ..] if text.as_bytes().get(second.start) == Some(&b'=') => {
                (after_dollar, *second, second.start + 1, more)
            }
            _ => return Ok(None),
        }
    };
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let name_span = Span::new(file, first.start + 1..first.start + 1 + name.len());
    if !valid {
        let shown = Span::new(file, first.start..first.start + 1 + name.len());
        return Err(Diagnostic::new(
            Code::Syntax,
            Some(shown),
            format!("`${name}` is not a valid variable name"),
        )
        .with_help(
            "a variable name starts with a letter or `_` and has only letters, digits and `_`",
        ));
    }
    let mut rest: Vec<Word> = Vec::with_capacity(more.len() + 1);
    if eq_end < eq_word.end {
        rest.push(Word {
            start: eq_end,
            end: eq_word.end,
            escaped: eq_word.escaped,
        });
    }
    rest.extend_from_slice(more);
    let value = match (rest.first(), rest.last()) {
        (Some(a), Some(b)) => Spanned::new(join(text, &rest), Span::new(file, a.start..b.end)),
        _ => Spanned::new(Text::default(), Span::new(file, eq_end..eq_end)),
    };
    Ok(Some(Assign {
        name: Spanned::new(Text::from(name), name_span),
        value,
        span,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (SourceMap, Result<Ast, Diagnostics>) {
        let mut sources = SourceMap::new();
        let limits = Limits::default();
        let r = Parser::new(&mut sources, &limits).parse_main(Path::new("t.mln"), text.as_bytes());
        (sources, r)
    }

    fn codes(text: &str) -> Vec<Code> {
        parse(text)
            .1
            .unwrap_err()
            .0
            .iter()
            .map(|d| d.code)
            .collect()
    }

    fn statement(item: &Item) -> &Statement {
        match item {
            Item::Statement(s) => s,
            other => panic!("not a statement: {other:?}"),
        }
    }

    fn block(item: &Item) -> &Block {
        match item {
            Item::Block(b) => b,
            other => panic!("not a block: {other:?}"),
        }
    }

    #[test]
    fn value_is_rejoined_with_single_spaces() {
        let (s, r) = parse("template  my \t image.ext3  \n");
        let ast = r.unwrap();
        let st = statement(&ast.items[0]);
        assert_eq!(st.keyword.node, "template");
        let v = st.value.as_ref().unwrap();
        assert_eq!(v.node, "my image.ext3");
        assert_eq!(s.text(v.span), "my \t image.ext3");
        assert_eq!(s.text(st.span), "template  my \t image.ext3");
    }

    #[test]
    fn flag_has_no_value() {
        let ast = parse("xen\n").1.unwrap();
        let st = statement(&ast.items[0]);
        assert_eq!(st.value, None);
        assert_eq!(st.value_or_flag(), "1");
    }

    #[test]
    fn semicolons_and_braces_end_statements() {
        let ast = parse("host a { xen; memory 64M }").1.unwrap();
        let host = block(&ast.items[0]);
        assert_eq!(host.name.node, "host");
        assert_eq!(host.items.len(), 2);
        assert_eq!(statement(&host.items[1]).value_or_flag(), "64M");
    }

    #[test]
    fn assignment_forms() {
        for text in ["$d = a b", "$d=a b", "$d =a b", "$d= a  b"] {
            let (s, r) = parse(text);
            let ast = r.unwrap();
            let Item::Assign(a) = &ast.items[0] else {
                panic!("{text}: {:?}", ast.items[0]);
            };
            assert_eq!(a.name.node, "d", "{text}");
            assert_eq!(s.text(a.name.span), "d", "{text}");
            assert_eq!(a.value.node, "a b", "{text}");
            assert_eq!(s.text(a.value.span).split_whitespace().count(), 2, "{text}");
        }
        let ast = parse("$empty =\n").1.unwrap();
        let Item::Assign(a) = &ast.items[0] else {
            panic!()
        };
        assert_eq!(a.value.node, "");
        assert_eq!(a.value.span.start, a.value.span.end);
    }

    #[test]
    fn dollar_words_that_declare_nothing_are_statements() {
        for (text, keyword) in [
            ("$d a", "$d"),
            ("$HOME/bin/start now", "$HOME/bin/start"),
            ("$CMD --opt=1", "$CMD"),
        ] {
            let ast = parse(text).1.unwrap();
            assert_eq!(statement(&ast.items[0]).keyword.node, keyword, "{text}");
        }
    }

    #[test]
    fn declarations_with_bad_names_are_syntax_errors() {
        for text in ["$1 = a", "$ = a", "$=a", "$d-x = 1", "$a.b=1"] {
            assert_eq!(codes(text), vec![Code::Syntax], "{text}");
        }
    }

    #[test]
    fn escaped_dollar_is_a_keyword() {
        let ast = parse("\\$d = a").1.unwrap();
        assert_eq!(statement(&ast.items[0]).keyword.node, "$d");
    }

    #[test]
    fn block_headers() {
        assert_eq!(codes("{ }"), vec![Code::Syntax]);
        assert_eq!(codes("a b c {\n}"), vec![Code::Syntax]);
        assert_eq!(codes("}"), vec![Code::StrayClose]);
        assert_eq!(codes("a {\nb {\n}"), vec![Code::UnclosedBlock]);
        assert_eq!(codes("x \\"), vec![Code::Syntax]);
    }

    #[test]
    fn nesting_limit_stops_the_parse() {
        let text = "a {".repeat(100);
        let d = parse(&text).1.unwrap_err();
        assert_eq!(d.len(), 1);
        assert_eq!(d.0[0].code, Code::LimitExceeded);
        // The 65th `{` is the first one too deep.
        assert_eq!(d.0[0].span.unwrap().start, 64 * 3 + 2);
    }

    #[test]
    fn error_count_is_capped() {
        let d = parse(&"}".repeat(1000)).1.unwrap_err();
        let max = Limits::default().max_errors;
        assert_eq!(d.len(), max);
        assert!(d.iter().all(|d| d.code == Code::StrayClose));
        let last = d.0[max - 1].help.as_deref().unwrap_or_default();
        assert!(
            last.ends_with("the parser stopped after 100 errors"),
            "{last}"
        );
    }

    #[test]
    fn block_span_runs_from_name_to_closing_brace() {
        let (s, r) = parse("  host a {\n memory 1 }  ");
        let ast = r.unwrap();
        let b = block(&ast.items[0]);
        assert_eq!(s.text(b.span), "host a {\n memory 1 }");
        assert_eq!(s.text(b.label.as_ref().unwrap().span), "a");
    }
}
