//! Tokens of one file: words, separators, comments and `#include`.
//!
//! The lexer works on bytes: every byte that means something (whitespace,
//! `;`, `{`, `}`, `#`, `\`) is ASCII, so a token boundary is always a char
//! boundary of the UTF-8 text. It keeps only a position, so the caller may
//! own the text however it likes.

use nom::bytes::complete::{tag, take_till, take_while, take_while1};
use nom::IResult;

type Res<'a> = IResult<&'a [u8], &'a [u8]>;

/// One word: a run of plain characters and escapes (`\x`), as a byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// True when the word contains a `\` escape, so its text differs from
    /// its bytes.
    pub escaped: bool,
}

/// What the lexer found next. Whitespace and comments are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Word(Word),
    /// A `\n` at this offset.
    Newline(usize),
    /// A `;` at this offset.
    Semi(usize),
    /// A `{` at this offset.
    Open(usize),
    /// A `}` at this offset.
    Close(usize),
    /// `#include PATH` at the start of a line: the directive without its
    /// trailing whitespace, and the path (empty when missing).
    Include {
        directive: (usize, usize),
        path: (usize, usize),
    },
    /// A `\` with nothing after it (the end of the file).
    DanglingEscape(usize),
    /// The end of the file.
    Eof,
}

/// Bytes that end a plain run: whitespace, separators, comment, escape.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let specials = b" \t\r\x0b\x0c\n;{}#\\";
    let mut i = 0;
    while i < specials.len() {
        t[specials[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whitespace that separates words but does not end a statement.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

fn plain(i: &[u8]) -> Res<'_> {
    take_while(|b: u8| !SPECIAL[b as usize])(i)
}

fn blanks(i: &[u8]) -> Res<'_> {
    take_while1(is_blank)(i)
}

fn rest_of_line(i: &[u8]) -> Res<'_> {
    take_till(|b: u8| b == b'\n')(i)
}

fn include_tag(i: &[u8]) -> Res<'_> {
    tag(&b"#include"[..])(i)
}

/// A position in one file's text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cursor {
    pos: usize,
    line_start: usize,
    at_line_start: bool,
}

impl Cursor {
    /// A cursor at the start of a file (after a UTF-8 byte order mark, if
    /// any, which editors on some systems write).
    pub fn new(text: &str) -> Self {
        let pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Cursor {
            pos,
            line_start: 0,
            at_line_start: true,
        }
    }

    /// Offset of the first byte of the current line.
    pub fn line_start(&self) -> usize {
        self.line_start
    }

    /// The next token of `text` (always the same text for one cursor).
    pub fn next(&mut self, text: &str) -> Token {
        let bytes = text.as_bytes();
        loop {
            let rest = bytes.get(self.pos..).unwrap_or_default();
            let Some(&b) = rest.first() else {
                return Token::Eof;
            };
            let at = self.pos;
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line_start = self.pos;
                    self.at_line_start = true;
                    return Token::Newline(at);
                }
                b';' => return self.punct(Token::Semi(at)),
                b'{' => return self.punct(Token::Open(at)),
                b'}' => return self.punct(Token::Close(at)),
                b'#' => {
                    if self.at_line_start {
                        if let Some(tok) = self.include(rest) {
                            return tok;
                        }
                    }
                    // A comment: skip to the newline, which ends the statement.
                    let len = rest_of_line(rest).map_or(rest.len(), |(_, c)| c.len());
                    self.pos += len;
                }
                _ if is_blank(b) => {
                    let len = blanks(rest).map_or(1, |(_, s)| s.len());
                    self.pos += len;
                }
                _ => {
                    self.at_line_start = false;
                    return self.word(text);
                }
            }
        }
    }

    fn punct(&mut self, tok: Token) -> Token {
        self.pos += 1;
        self.at_line_start = false;
        tok
    }

    /// `#include PATH` at `rest` (which starts with `#`), or `None` when
    /// this is an ordinary comment such as `#includes` or `# include`.
    fn include(&mut self, rest: &[u8]) -> Option<Token> {
        let (after, _) = include_tag(rest).ok()?;
        match after.first() {
            None | Some(b'\n') => {}
            Some(&b) if is_blank(b) => {}
            Some(_) => return None,
        }
        let line = rest_of_line(rest).map_or(rest, |(_, l)| l);
        let start = self.pos;
        let tag_len = b"#include".len();
        let body = line.get(tag_len..).unwrap_or_default();
        let lead = body.iter().take_while(|&&b| is_blank(b)).count();
        let trail = body.iter().rev().take_while(|&&b| is_blank(b)).count();
        let path_start = start + tag_len + lead;
        let path_end = (start + line.len() - trail).max(path_start);
        self.pos += line.len();
        self.at_line_start = false;
        Some(Token::Include {
            directive: (start, path_end.max(start + tag_len)),
            path: (path_start, path_end),
        })
    }

    /// A word starting at the cursor (which is on a non-special byte or `\`).
    fn word(&mut self, text: &str) -> Token {
        let bytes = text.as_bytes();
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = bytes.get(self.pos..).unwrap_or_default();
            self.pos += plain(rest).map_or(0, |(_, run)| run.len());
            if bytes.get(self.pos) != Some(&b'\\') {
                break;
            }
            // `\` is ASCII, so the byte after it starts a char.
            match text.get(self.pos + 1..).and_then(|s| s.chars().next()) {
                Some(c) => {
                    self.pos += 1 + c.len_utf8();
                    escaped = true;
                }
                None if self.pos == start => {
                    self.pos += 1;
                    return Token::DanglingEscape(start);
                }
                // End the word here; the `\` comes back as its own token.
                None => break,
            }
        }
        Token::Word(Word {
            start,
            end: self.pos,
            escaped,
        })
    }
}

/// The text a word stands for: its bytes with every `\x` replaced by `x`.
pub(crate) fn unescape(raw: &str, out: &mut String) {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Token> {
        let mut c = Cursor::new(text);
        let mut out = Vec::new();
        loop {
            let t = c.next(text);
            out.push(t);
            if t == Token::Eof {
                return out;
            }
        }
    }

    fn w(start: usize, end: usize) -> Token {
        Token::Word(Word {
            start,
            end,
            escaped: false,
        })
    }

    #[test]
    fn words_and_separators() {
        assert_eq!(
            tokens("host a {x;}\n"),
            vec![
                w(0, 4),
                w(5, 6),
                Token::Open(7),
                w(8, 9),
                Token::Semi(9),
                Token::Close(10),
                Token::Newline(11),
                Token::Eof
            ]
        );
    }

    #[test]
    fn escapes_keep_separators_inside_a_word() {
        let t = tokens(r"a\;b\ c d");
        assert_eq!(
            t[0],
            Token::Word(Word {
                start: 0,
                end: 7,
                escaped: true
            })
        );
        assert_eq!(t[1], w(8, 9));
        let mut s = String::new();
        unescape(r"a\;b\ c", &mut s);
        assert_eq!(s, "a;b c");
    }

    #[test]
    fn escape_takes_a_whole_multibyte_char() {
        let t = tokens("\\é");
        assert_eq!(
            t[0],
            Token::Word(Word {
                start: 0,
                end: 3,
                escaped: true
            })
        );
    }

    #[test]
    fn dangling_escape_at_end_of_file() {
        assert_eq!(
            tokens("ab\\"),
            vec![w(0, 2), Token::DanglingEscape(2), Token::Eof]
        );
    }

    #[test]
    fn comments_are_skipped_but_end_at_the_newline() {
        assert_eq!(
            tokens("a # b { c\nd"),
            vec![w(0, 1), Token::Newline(9), w(10, 11), Token::Eof]
        );
    }

    #[test]
    fn include_only_at_the_start_of_a_line() {
        assert_eq!(
            tokens("  #include  x.mln  \n"),
            vec![
                Token::Include {
                    directive: (2, 17),
                    path: (12, 17)
                },
                Token::Newline(19),
                Token::Eof
            ]
        );
        assert_eq!(tokens("a #include x"), vec![w(0, 1), Token::Eof]);
        assert_eq!(tokens("#includes x"), vec![Token::Eof]);
        assert_eq!(
            tokens("#include"),
            vec![
                Token::Include {
                    directive: (0, 8),
                    path: (8, 8)
                },
                Token::Eof
            ]
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(tokens("\u{feff}a"), vec![w(3, 4), Token::Eof]);
    }
}
