//! Diagnostics: errors and warnings as values, each with a stable code, a
//! message, a span and an optional help line. Rendering is the caller's
//! choice ([`render`], or the JSON form via serde).

use serde::{Deserialize, Serialize};

use crate::source::{SourceMap, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The project can still be used.
    Warning,
    /// The project cannot be used.
    Error,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal;)*) => {
        /// Every diagnostic the language can produce. Codes are stable:
        /// scripts and docs may rely on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Code {
            $(#[doc = $title] #[serde(rename = $code)] $variant,)*
        }

        impl Code {
            /// All codes, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code, e.g. `"E0004"`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A short title, e.g. `"unknown switch"`.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// The severity every diagnostic with this code has.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }
        }
    };
}

codes! {
    Syntax = "E0001", Error, "syntax error";
    UnclosedBlock = "E0002", Error, "unclosed block";
    StrayClose = "E0003", Error, "stray closing brace";
    UnknownSwitch = "E0004", Error, "unknown switch";
    UnknownSuperclass = "E0005", Error, "unknown superclass";
    SuperclassCycle = "E0006", Error, "superclass cycle";
    DuplicateName = "E0007", Error, "duplicate name";
    UnsafeName = "E0008", Error, "unsafe name";
    BadSize = "E0009", Error, "malformed size";
    BadAddress = "E0010", Error, "malformed address";
    BadNetmask = "E0011", Error, "malformed netmask";
    BadMac = "E0012", Error, "malformed MAC address";
    DuplicateAddress = "E0013", Error, "duplicate address on a switch";
    AddressOutsideSubnet = "E0014", Error, "address outside the switch's subnet";
    InterfaceNumbering = "E0015", Error, "interface names not eth0..ethN without gaps";
    OverCapacity = "E0016", Error, "memory over the service host's capacity";
    MissingProject = "E0017", Error, "missing project name";
    IncludeNotFound = "E0018", Error, "included file cannot be read";
    IncludeCycle = "E0019", Error, "include cycle";
    BadEncoding = "E0020", Error, "invalid text (not UTF-8, or a NUL byte)";
    LimitExceeded = "E0021", Error, "limit exceeded";
    BadNumber = "E0022", Error, "malformed number";
    BadValue = "E0023", Error, "invalid value";
    TooLittleMemory = "E0024", Error, "less memory than the platform boots with";
    PluginRefused = "E0025", Error, "a plugin refused the project";
    MixedOwners = "E0026", Error, "hosts and switches of one project with different owners";
    UnknownKeyword = "W0001", Warning, "unknown keyword";
    UnusedSwitch = "W0002", Warning, "switch nobody uses";
    NoInterface = "W0003", Warning, "host with no interface";
    UndefinedVariable = "W0004", Warning, "undefined variable";
    DuplicateHost = "W0005", Warning, "host block written twice: the last counts";
    TightMemory = "W0006", Warning, "memory that boots, but not reliably among many";
    PinningXenOnly = "W0007", Warning, "`cpus` on a UML host (not pinned)";
    PluginWarning = "W0008", Warning, "a plugin's warning";
    OwnerAndSudo = "W0009", Warning, "both `owner` and `sudo`: `sudo` counts";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secondary label: another place that matters (the first definition of a
/// duplicate, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What it is.
    pub message: String,
}

/// One error or warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error or warning (always `code.severity()`).
    pub severity: Severity,
    /// One line, lower case, no full stop.
    pub message: String,
    /// The place it is about; `None` only for whole-project problems.
    pub span: Option<Span>,
    /// Other places worth showing.
    pub labels: Vec<Label>,
    /// A fix, when one is obvious ("did you mean `lan`?").
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with `code` at `span`.
    pub fn new(code: Code, span: Option<Span>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            span,
            labels: Vec::new(),
            help: None,
        }
    }

    /// Add a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Add a secondary label.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// `"error"` or `"warning"`.
    pub fn severity_word(&self) -> &'static str {
        severity_word(self.severity)
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A list of diagnostics, the error type of every fallible API in this crate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Add one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Iterate.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.0 {
            writeln!(
                f,
                "{}[{}]: {}",
                severity_word(d.severity),
                d.code,
                d.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Render diagnostics the way rustc does (code, message, the source line with
/// a caret, help), with colour when `color` is true.
///
/// Filled in by the diagnostics renderer (codespan-reporting).
pub fn render(sources: &SourceMap, diagnostics: &[Diagnostic], color: bool) -> String {
    crate::render::render(sources, diagnostics, color)
}
