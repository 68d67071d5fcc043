//! Values given from outside the project file: `-D name=value` on the
//! command line, and the project name a copy of a project gets (`mln
//! class`). They are added to the parsed project as its last `global`
//! block, so they win over the file's own global statements, as a later
//! statement does; a variable that a host or superclass declares itself
//! still wins inside it, as any nearer variable does. Diagnostics about
//! them point into a source named [`COMMAND_LINE`].
//!
//! ```
//! use mln_lang::Definitions;
//! let text = "global { project lab; $net = 10.0.0 }\nhost a { network eth0 { address $net.1 } }\n";
//! let defines = Definitions::new()
//!     .project("lab-alice")
//!     .variable_arg("net=10.7.0")
//!     .unwrap();
//! let checked = mln_lang::load_str_with("lab.mln", text, &defines).unwrap();
//! assert_eq!(checked.project().name, "lab-alice");
//! let a = checked.project().host("a").unwrap();
//! assert_eq!(a.interfaces[0].address.unwrap().to_string(), "10.7.0.1");
//! ```

use crate::source::{SourceMap, Span, Spanned};
use crate::syntax::{Assign, Ast, Block, Item, Statement, Text};

/// What diagnostics call the definitions' source.
pub const COMMAND_LINE: &str = "<command line>";

/// Variables and a project name to add to a project (see the module
/// documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definitions {
    project: Option<String>,
    variables: Vec<(String, String)>,
}

/// A definition that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefineError {
    /// `-D` without `=`.
    #[error("-D {arg}: expected NAME=VALUE")]
    NoValue {
        /// The argument as given.
        arg: String,
    },
    /// A name that is not a variable name.
    #[error(
        "-D {name}=...: a variable name starts with a letter or `_` and holds letters, digits \
         and `_`"
    )]
    BadName {
        /// The name as given.
        name: String,
    },
    /// `$hostname` and `$project` are set by MLN itself.
    #[error("-D {name}=...: ${name} is set by mln itself and cannot be defined")]
    Reserved {
        /// The name.
        name: String,
    },
    /// A value of several lines.
    #[error("-D {name}=...: a value is one line")]
    Multiline {
        /// The variable's name.
        name: String,
    },
}

impl Definitions {
    /// No definitions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Name the project `name` (as `project NAME` in `global` would),
    /// whatever the file calls it. The checker checks the name.
    pub fn project(mut self, name: impl Into<String>) -> Self {
        self.project = Some(name.into());
        self
    }

    /// Define `$name` as `value`; a later definition of the same name wins.
    pub fn variable(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, DefineError> {
        let (name, value) = (name.into(), value.into());
        if !is_variable_name(&name) {
            return Err(DefineError::BadName { name });
        }
        if name == "hostname" || name == "project" {
            return Err(DefineError::Reserved { name });
        }
        if value.contains(['\n', '\r']) {
            return Err(DefineError::Multiline { name });
        }
        self.variables.retain(|(n, _)| *n != name);
        self.variables.push((name, value));
        Ok(self)
    }

    /// Define a variable from a command-line argument `NAME=VALUE`.
    pub fn variable_arg(self, arg: &str) -> Result<Self, DefineError> {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(DefineError::NoValue { arg: arg.into() });
        };
        self.variable(name.trim(), value.trim())
    }

    /// These definitions, then `later`'s: a name or project both give is
    /// `later`'s.
    pub fn and(mut self, later: &Definitions) -> Definitions {
        if later.project.is_some() {
            self.project.clone_from(&later.project);
        }
        for (name, value) in &later.variables {
            self.variables.retain(|(n, _)| n != name);
            self.variables.push((name.clone(), value.clone()));
        }
        self
    }

    /// True when there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.project.is_none() && self.variables.is_empty()
    }

    /// The project name given, if any.
    pub fn project_name(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// The variables given, in order.
    pub fn variables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.variables.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Add them to `ast` as its last `global` block, their text to
    /// `sources` as [`COMMAND_LINE`] (one line per definition, as
    /// `project NAME` and `-D NAME=VALUE`).
    pub(crate) fn add_to(&self, sources: &mut SourceMap, ast: &mut Ast) {
        if self.is_empty() {
            return;
        }
        let mut text = String::new();
        // (keyword or name, value, offsets of each in `text`)
        let mut lines = Vec::new();
        if let Some(name) = &self.project {
            let start = text.len();
            text.push_str("project ");
            let value = text.len();
            text.push_str(name);
            lines.push((None, start, value, text.len()));
            text.push('\n');
        }
        for (name, value) in &self.variables {
            let start = text.len();
            text.push_str("-D ");
            let name_at = text.len();
            text.push_str(name);
            text.push('=');
            let value_at = text.len();
            text.push_str(value);
            lines.push((Some(name_at..value_at - 1), start, value_at, text.len()));
            text.push('\n');
        }
        let file = sources.add(COMMAND_LINE, text.clone());
        let span = |range: std::ops::Range<usize>| Span::new(file, range);
        let items = lines
            .into_iter()
            .map(|(name, start, value, end)| {
                let value_node = Spanned::new(Text::from(&text[value..end]), span(value..end));
                match name {
                    None => Item::Statement(Statement {
                        keyword: Spanned::new(Text::from("project"), span(start..start + 7)),
                        value: Some(value_node),
                        span: span(start..end),
                    }),
                    Some(name) => Item::Assign(Assign {
                        name: Spanned::new(Text::from(&text[name.clone()]), span(name)),
                        value: value_node,
                        span: span(start..end),
                    }),
                }
            })
            .collect();
        ast.items.push(Item::Block(Block {
            name: Spanned::new(Text::from("global"), span(0..0)),
            label: None,
            items,
            span: span(0..text.len()),
        }));
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "global {\n  project lab\n  $net = 10.0.0\n}\n\
        superclass common { $gw = $net.254 }\n\
        host a { superclass common; network eth0 { address $net.1; gateway $gw } }\n\
        host b { $net = 192.168.1; network eth0 { address $net.2 } }\n";

    #[test]
    fn a_definition_wins_over_the_files_globals_and_loses_to_a_hosts_own() {
        let defines = Definitions::new()
            .variable_arg("net=10.9.0")
            .unwrap()
            .project("lab-bob");
        let checked = crate::load_str_with("lab.mln", LAB, &defines).unwrap();
        let p = checked.project();
        assert_eq!(p.name, "lab-bob");
        let a = p.host("a").unwrap();
        assert_eq!(a.interfaces[0].address.unwrap().to_string(), "10.9.0.1");
        assert_eq!(a.interfaces[0].gateway.unwrap().to_string(), "10.9.0.254");
        let b = p.host("b").unwrap();
        assert_eq!(b.interfaces[0].address.unwrap().to_string(), "192.168.1.2");
        // Nothing defined: the file as written.
        let plain = crate::load_str_with("lab.mln", LAB, &Definitions::new()).unwrap();
        assert_eq!(plain.project().name, "lab");
    }

    #[test]
    fn bad_definitions_are_refused_and_named() {
        let err = |arg: &str| Definitions::new().variable_arg(arg).unwrap_err();
        assert_eq!(err("net").to_string(), "-D net: expected NAME=VALUE");
        assert!(matches!(err("1x=2"), DefineError::BadName { .. }));
        assert!(matches!(err("a;b=2"), DefineError::BadName { .. }));
        assert!(matches!(err("hostname=x"), DefineError::Reserved { .. }));
        assert!(matches!(
            Definitions::new().variable("x", "a\nhost evil {}"),
            Err(DefineError::Multiline { .. })
        ));
        // A value may hold what a file's value may: `;`, `}`, `$`.
        let d = Definitions::new().variable_arg("x=a;b}$c").unwrap();
        assert_eq!(d.variables().collect::<Vec<_>>(), [("x", "a;b}$c")]);
    }

    #[test]
    fn a_bad_project_name_points_at_the_command_line() {
        let defines = Definitions::new().project("lab/alice");
        let report = crate::load_str_with("lab.mln", LAB, &defines).unwrap_err();
        let text = report.to_string();
        assert!(text.contains(COMMAND_LINE), "{text}");
        assert!(text.contains("lab/alice"), "{text}");
    }
}
