//! Running one plugin program: argv `[PROGRAM, POINT]`, the request on
//! stdin, bounded in time, stdout and stderr captured, never a shell.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mln_core::bounded::output_within_input;

use super::protocol::{Point, Request, Response};
use super::PluginError;

/// Who is running and for what, for the error messages.
pub(crate) struct Call<'a> {
    pub plugin: &'a str,
    pub point: Point,
    pub project: &'a str,
    pub host: Option<&'a str>,
}

impl Call<'_> {
    pub(crate) fn place(&self) -> super::Place {
        super::Place {
            plugin: self.plugin.to_string(),
            point: self.point,
            host: self.host.map(str::to_string),
        }
    }
}

/// How much of a failing plugin's stderr an error carries (its end).
const STDERR_TAIL: usize = 2000;

/// Run `program` for `call` with `request`, at most `timeout`: its
/// response, or why it failed (it could not start, ran too long, exited
/// non-zero, printed something that is not a response).
pub(crate) fn run_program(
    program: &Path,
    call: &Call<'_>,
    request: &Request,
    timeout: Duration,
) -> Result<Response, PluginError> {
    let input = serde_json::to_vec(request).map_err(|e| PluginError::Request {
        at: call.place(),
        reason: e.to_string(),
    })?;
    let mut cmd = Command::new(program);
    cmd.arg(call.point.as_str())
        .env("MLN_PLUGIN_PROTOCOL", super::PROTOCOL.to_string())
        .env("MLN_PLUGIN_POINT", call.point.as_str())
        .env("MLN_PROJECT", call.project)
        .env_remove("MLN_HOST");
    if let Some(h) = call.host {
        cmd.env("MLN_HOST", h);
    }
    let out = output_within_input(&mut cmd, &input, call.plugin, timeout).map_err(|e| match e {
        mln_core::Error::Timeout { after, .. } => PluginError::Timeout {
            at: call.place(),
            after,
        },
        e => PluginError::Spawn {
            at: call.place(),
            program: program.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(PluginError::Failed {
            at: call.place(),
            status: out.status.to_string(),
            stderr: tail(stderr.trim(), STDERR_TAIL).to_string(),
        });
    }
    for line in stderr.lines() {
        log::info!("plugin {}: {line}", call.plugin);
    }
    let stdout = std::str::from_utf8(&out.stdout).map_err(|_| PluginError::BadResponse {
        at: call.place(),
        reason: "its output is not UTF-8 text".to_string(),
    })?;
    Response::parse(stdout, call.point).map_err(|reason| PluginError::BadResponse {
        at: call.place(),
        reason,
    })
}

/// The last `max` bytes of `text` or fewer, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("plug");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn call() -> Call<'static> {
        Call {
            plugin: "plug",
            point: Point::GuestConfig,
            project: "lab",
            host: Some("web"),
        }
    }

    fn request() -> Request {
        Request {
            protocol: 1,
            point: Point::GuestConfig,
            project: serde_json::json!({"name": "lab"}),
            host: Some(serde_json::json!({"name": "web"})),
        }
    }

    #[test]
    fn the_program_gets_the_request_point_and_environment() {
        let t = tempfile::tempdir().unwrap();
        let p = script(
            t.path(),
            r#"req=$(cat)
case "$req" in *'"point":"guest_config"'*) ;; *) exit 9 ;; esac
printf '{"startup":["echo %s %s %s %s"]}' "$1" "$MLN_PROJECT" "$MLN_HOST" "$MLN_PLUGIN_PROTOCOL""#,
        );
        let r = run_program(&p, &call(), &request(), Duration::from_secs(20)).unwrap();
        assert_eq!(r.startup, ["echo guest_config lab web 1"]);
    }

    #[test]
    fn a_failing_program_stops_with_its_stderr_and_place() {
        let t = tempfile::tempdir().unwrap();
        let p = script(t.path(), "echo 'no puppet master' >&2; exit 3");
        let e = run_program(&p, &call(), &request(), Duration::from_secs(20)).unwrap_err();
        let text = e.to_string();
        for want in [
            "plugin plug",
            "guest_config",
            "web",
            "exit status: 3",
            "no puppet master",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }

    #[test]
    fn a_hanging_program_is_killed_at_the_bound() {
        let t = tempfile::tempdir().unwrap();
        let p = script(t.path(), "sleep 30");
        let e = run_program(&p, &call(), &request(), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("killed"), "{e}");
    }

    #[test]
    fn output_that_is_not_a_response_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let p = script(t.path(), "echo done");
        let e = run_program(&p, &call(), &request(), Duration::from_secs(20)).unwrap_err();
        assert!(matches!(e, PluginError::BadResponse { .. }), "{e}");
        let missing = t.path().join("gone");
        let e = run_program(&missing, &call(), &request(), Duration::from_secs(20)).unwrap_err();
        assert!(matches!(e, PluginError::Spawn { .. }), "{e}");
    }

    #[test]
    fn the_tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("aé", 1), "");
    }
}
