//! What `mln` and a plugin program say to each other: one JSON request on
//! the program's stdin, one JSON response (or nothing) on its stdout.
//! `docs/plugins.md` is the reference for plugin authors; the types here
//! are that document in code.

use serde::{Deserialize, Serialize};

/// The protocol version every request carries. A change that an existing
/// plugin could misread gets a new number.
pub const PROTOCOL: u32 = 1;

/// The fixed points at which plugins are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Point {
    /// The project file has been read and resolved (`mln check`, and
    /// before `build`, `up`, `upgrade` and `plan`): a plugin can refuse the
    /// project or warn about it.
    Resolved,
    /// A guest's configuration is being made (once per host, before
    /// planning `build`, `up`, `upgrade` and `plan`): a plugin can add
    /// files and startup lines to that guest.
    GuestConfig,
    /// `build`, `up` or `upgrade` has applied its plan successfully.
    Built,
    /// `remove` is about to remove the project; a plugin failing stops it
    /// before anything is removed.
    Removing,
}

impl Point {
    /// Every point, in the order a project meets them.
    pub const ALL: [Point; 4] = [
        Point::Resolved,
        Point::GuestConfig,
        Point::Built,
        Point::Removing,
    ];

    /// The name in requests, `argv[1]` and `MLN_PLUGIN_POINT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Point::Resolved => "resolved",
            Point::GuestConfig => "guest_config",
            Point::Built => "built",
            Point::Removing => "removing",
        }
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin reads on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// Where `mln` is.
    pub point: Point,
    /// The resolved project (`mln show --format json`), passwords hashed.
    pub project: serde_json::Value,
    /// At [`Point::GuestConfig`]: the host whose configuration is made,
    /// as in `project.hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<serde_json::Value>,
}

/// What a plugin prints on stdout; every field may be left out, and empty
/// output means an empty response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// Files to write into the guest (only at [`Point::GuestConfig`]).
    #[serde(default)]
    pub files: Vec<FileAdd>,
    /// Shell lines the guest runs at boot after the project's own
    /// `startup` lines (only at [`Point::GuestConfig`]).
    #[serde(default)]
    pub startup: Vec<String>,
    /// Warnings to show, errors that stop the action.
    #[serde(default)]
    pub diagnostics: Vec<PluginDiagnostic>,
}

/// One file a plugin adds to a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdd {
    /// Absolute path in the guest.
    pub path: String,
    /// The whole content, as text.
    pub content: String,
    /// Permission bits in octal, as text (`"0755"`); default `0644`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// How bad a plugin's diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginSeverity {
    /// Shown; the action goes on.
    Warning,
    /// The action stops with this message.
    Error,
}

/// One message from a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDiagnostic {
    /// Warning or error.
    pub severity: PluginSeverity,
    /// One line for the user.
    pub message: String,
}

impl Response {
    /// Read a plugin's stdout at `point`: empty output is an empty
    /// response; `Err` says in words what is wrong with it.
    ///
    /// ```
    /// use mln_lang::plugin::{Point, Response};
    /// let r = Response::parse(r#"{"startup":["echo hi"]}"#, Point::GuestConfig).unwrap();
    /// assert_eq!(r.startup, ["echo hi"]);
    /// assert_eq!(Response::parse(" \n", Point::Built).unwrap(), Response::default());
    /// assert!(Response::parse(r#"{"startup":["echo hi"]}"#, Point::Built).is_err());
    /// ```
    pub fn parse(stdout: &str, point: Point) -> Result<Response, String> {
        if stdout.trim().is_empty() {
            return Ok(Response::default());
        }
        let r: Response = serde_json::from_str(stdout)
            .map_err(|e| format!("its output is not a response: {e}"))?;
        if point != Point::GuestConfig && !(r.files.is_empty() && r.startup.is_empty()) {
            return Err(format!(
                "files and startup lines are taken only at guest_config, not at {point}"
            ));
        }
        for f in &r.files {
            check_path(&f.path)?;
            f.mode_bits()?;
        }
        if let Some(l) = r.startup.iter().find(|l| l.contains(['\n', '\r', '\0'])) {
            return Err(format!("startup line {l:?} is not one line"));
        }
        Ok(r)
    }
}

impl FileAdd {
    /// The mode as bits; `Err` when it is not octal up to `7777`.
    pub fn mode_bits(&self) -> Result<Option<u32>, String> {
        let Some(m) = &self.mode else {
            return Ok(None);
        };
        match u32::from_str_radix(m, 8) {
            Ok(bits) if bits <= 0o7777 => Ok(Some(bits)),
            _ => Err(format!(
                "file {}: mode {m:?} is not octal permission bits such as \"0644\"",
                self.path
            )),
        }
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.ends_with('/') || path.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "file path {path:?} is not an absolute file path on one line"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("file path {path:?} has a `..` in it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_response_is_read() {
        let r = Response::parse(
            r#"{"files":[{"path":"/etc/motd","content":"hi\n","mode":"0600"}],
                "startup":["echo up"],
                "diagnostics":[{"severity":"warning","message":"careful"}]}"#,
            Point::GuestConfig,
        )
        .unwrap();
        assert_eq!(r.files[0].mode_bits(), Ok(Some(0o600)));
        assert_eq!(r.diagnostics[0].severity, PluginSeverity::Warning);
        assert_eq!(r.startup, ["echo up"]);
    }

    #[test]
    fn malformed_responses_say_what_is_wrong() {
        let gc = Point::GuestConfig;
        for (out, want) in [
            ("hello", "not a response"),
            (r#"{"file":[]}"#, "unknown field `file`"),
            (
                r#"{"files":[{"path":"etc/motd","content":""}]}"#,
                "not an absolute",
            ),
            (r#"{"files":[{"path":"/etc/../x","content":""}]}"#, "`..`"),
            (
                r#"{"files":[{"path":"/x","content":"","mode":"rw"}]}"#,
                "not octal",
            ),
            (
                r#"{"files":[{"path":"/x","content":"","mode":"17777"}]}"#,
                "not octal",
            ),
            (r#"{"startup":["a\nb"]}"#, "not one line"),
            (
                r#"{"diagnostics":[{"severity":"fatal","message":"x"}]}"#,
                "unknown variant",
            ),
        ] {
            let e = Response::parse(out, gc).unwrap_err();
            assert!(e.contains(want), "{out}: {e}");
        }
        let e = Response::parse(r#"{"files":[{"path":"/x","content":""}]}"#, Point::Removing)
            .unwrap_err();
        assert!(e.contains("only at guest_config"), "{e}");
    }

    #[test]
    fn the_request_names_point_and_protocol() {
        let r = Request {
            protocol: PROTOCOL,
            point: Point::GuestConfig,
            project: serde_json::json!({"name": "lab"}),
            host: Some(serde_json::json!({"name": "web"})),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["protocol"], 1);
        assert_eq!(v["point"], "guest_config");
        assert_eq!(v["host"]["name"], "web");
        let built = Request {
            point: Point::Built,
            host: None,
            ..r
        };
        assert!(serde_json::to_value(&built).unwrap().get("host").is_none());
    }
}
