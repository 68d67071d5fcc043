//! Variable expansion: `$name` and `$[name]`, looked up nearest first.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest text one value may expand to; beyond it expansion stops (a
/// guard against variables that refer to each other many times over).
pub(crate) const MAX_EXPANDED_LEN: usize = 1 << 20;
/// How deep variables may refer to variables.
const MAX_DEPTH: usize = 16;

/// Where a value is expanded: the declarations visible there, nearest first
/// (the host's own, its superclass chain, then `global`), and the built-in
/// `$hostname` and `$project`, which declarations cannot override.
pub(crate) struct Scope<'a> {
    /// `$hostname`, when expanding inside a host.
    pub hostname: Option<&'a str>,
    /// `$project`.
    pub project: &'a str,
    /// The host's own declarations, looked up first.
    pub own: Option<&'a BTreeMap<String, String>>,
    /// Then those of its superclasses, nearest first.
    pub inherited: &'a [&'a BTreeMap<String, String>],
    /// Then those of `global`.
    pub global: Option<&'a BTreeMap<String, String>>,
}

/// The result of expanding one value.
#[derive(Debug, Default)]
pub(crate) struct Expansion<'t> {
    /// The expanded text, whitespace runs collapsed like the parser does
    /// (borrowed when there was nothing to expand).
    pub text: Cow<'t, str>,
    /// Undefined variables left as written: name and byte range in the
    /// original (unexpanded) text.
    pub undefined: Vec<(String, std::ops::Range<usize>)>,
    /// True when expansion stopped at [`MAX_EXPANDED_LEN`].
    pub too_long: bool,
}

/// Expansion in progress.
#[derive(Default)]
struct Buffer {
    text: String,
    undefined: Vec<(String, std::ops::Range<usize>)>,
    too_long: bool,
}

impl Scope<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        match name {
            "hostname" if self.hostname.is_some() => return self.hostname,
            "project" => return Some(self.project),
            _ => {}
        }
        self.own
            .into_iter()
            .chain(self.inherited.iter().copied())
            .chain(self.global)
            .find_map(|l| l.get(name))
            .map(String::as_str)
    }

    /// Expand every variable in `text`.
    pub fn expand<'t>(&self, text: &'t str) -> Expansion<'t> {
        if !text.contains('$') {
            return Expansion {
                text: Cow::Borrowed(text),
                ..Expansion::default()
            };
        }
        let mut buf = Buffer {
            text: String::with_capacity(text.len() + 32),
            ..Buffer::default()
        };
        self.expand_into(text, 0, &mut buf, true);
        let text = if needs_collapse(&buf.text) {
            buf.text.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            buf.text
        };
        Expansion {
            text: Cow::Owned(text),
            undefined: buf.undefined,
            too_long: buf.too_long,
        }
    }

    fn expand_into(&self, text: &str, depth: usize, out: &mut Buffer, top: bool) {
        let mut rest = text;
        let mut offset = 0;
        while let Some(pos) = rest.find('$') {
            out.text.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (name, len) = match reference(after) {
                Some(r) => r,
                None => {
                    out.text.push('$');
                    rest = after;
                    offset += pos + 1;
                    continue;
                }
            };
            let written = &rest[pos..pos + 1 + len];
            match self.lookup(name) {
                Some(value) if depth < MAX_DEPTH => {
                    if value.contains('$') {
                        self.expand_into(value, depth + 1, out, false);
                    } else {
                        out.text.push_str(value);
                    }
                }
                found => {
                    if top && found.is_none() {
                        let start = offset + pos;
                        out.undefined
                            .push((name.to_string(), start..start + written.len()));
                    }
                    out.text.push_str(written);
                }
            }
            if out.text.len() > MAX_EXPANDED_LEN {
                out.too_long = true;
                return;
            }
            rest = &after[len..];
            offset += pos + 1 + len;
        }
        out.text.push_str(rest);
    }
}

/// True unless `text`'s whitespace is already single spaces between
/// words (what collapsing would make of it).
fn needs_collapse(text: &str) -> bool {
    let mut previous_space = true; // a leading space needs collapsing
    for c in text.chars() {
        if c == ' ' {
            if previous_space {
                return true;
            }
            previous_space = true;
        } else if c.is_whitespace() {
            return true;
        } else {
            previous_space = false;
        }
    }
    // A trailing space needs collapsing; so does nothing but a space.
    previous_space && !text.is_empty()
}

/// The variable named right after a `$`: `name` or `[name]`, with the
/// number of bytes the reference takes. `None` when no variable starts
/// here (`$1`, `$$`, `$ `).
fn reference(after: &str) -> Option<(&str, usize)> {
    if let Some(inner) = after.strip_prefix('[') {
        let end = inner.find(']')?;
        let name = &inner[..end];
        return is_name(name).then_some((name, end + 2));
    }
    let len = after
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let name = &after[..len];
    is_name(name).then_some((name, len))
}

/// A variable name: a letter or `_`, then letters, digits or `_`.
pub(crate) fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nearest_declaration_wins_and_builtins_apply() {
        let host = vars(&[("a", "host")]);
        let global = vars(&[("a", "global"), ("domain", "example.org")]);
        let s = Scope {
            hostname: Some("www1"),
            project: "p",
            own: Some(&host),
            inherited: &[],
            global: Some(&global),
        };
        let e = s.expand("$a $[domain] $hostname.$domain in $project");
        assert_eq!(e.text, "host example.org www1.example.org in p");
        assert!(e.undefined.is_empty());
    }

    #[test]
    fn undefined_and_non_variables_stay_as_written() {
        let s = Scope {
            hostname: None,
            project: "p",
            own: None,
            inherited: &[],
            global: None,
        };
        let e = s.expand("$6$salt$hash cost $1 and $$ $[x-y] $nope");
        assert_eq!(e.text, "$6$salt$hash cost $1 and $$ $[x-y] $nope");
        let names: Vec<_> = e.undefined.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["salt", "hash", "nope"]);
        assert_eq!(e.undefined[2].1, 35..40);
    }

    #[test]
    fn variables_refer_to_variables_but_cycles_stop() {
        let g = vars(&[("a", "$b!"), ("b", "$a")]);
        let s = Scope {
            hostname: None,
            project: "p",
            own: None,
            inherited: &[],
            global: Some(&g),
        };
        let e = s.expand("$a");
        assert!(e.text.starts_with("$"));
        assert!(e.text.ends_with("!!!!"));
    }

    #[test]
    fn whitespace_is_collapsed_only_when_needed() {
        for text in [
            "", "a", "a b", " a", "a ", "a  b", "a\tb", " ", "a b c", "\u{a0}",
        ] {
            let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(needs_collapse(text), collapsed != text, "{text:?}");
        }
    }

    #[test]
    fn exponential_expansion_is_cut_off() {
        let g = vars(&[
            ("a", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            ("b", "$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a"),
            ("c", "$b$b$b$b$b$b$b$b$b$b$b$b$b$b$b$b"),
            ("d", "$c$c$c$c$c$c$c$c$c$c$c$c$c$c$c$c"),
            ("e", "$d$d$d$d$d$d$d$d$d$d$d$d$d$d$d$d"),
            ("f", "$e$e$e$e$e$e$e$e$e$e$e$e$e$e$e$e"),
        ]);
        let s = Scope {
            hostname: None,
            project: "p",
            own: None,
            inherited: &[],
            global: Some(&g),
        };
        let e = s.expand("$f$f$f$f");
        assert!(e.too_long);
        assert!(e.text.len() <= MAX_EXPANDED_LEN + 1000);
    }
}
