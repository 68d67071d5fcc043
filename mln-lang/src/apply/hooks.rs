//! Running a project's hook blocks on the managing machine.
//!
//! As MLN 1.0.8 did (it wrote each block to `HOOK.sh` under `#!/bin/bash`
//! and ran it from the project's folder), a block is one script: `cd` and
//! `if ... fi` span lines, and it sees the environment `mln` was run
//! with.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mln_core::bounded::output_within;

use super::{ApplyError, Progress};
use crate::plan::HookPoint;

/// The shell a hook block runs in: bash, as MLN's hook scripts were
/// `#!/bin/bash`, or `sh` where there is no bash.
fn shell() -> &'static str {
    if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// What an error calls a block: its first line, `...` when it has more.
fn first_line(lines: &[String]) -> String {
    match lines {
        [] => String::new(),
        [one] => one.clone(),
        [first, ..] => format!("{first} ..."),
    }
}

/// Run one hook block as one script, `SHELL -c BLOCK` (the block is the
/// project author's shell, passed whole as one argument; nothing is
/// interpolated into it), in `dir` (the project file's folder; the
/// current folder when `None`), with the caller's environment plus
/// `MLN_PROJECT` (the project's name) and `MLN_HOOK` (the block's name).
/// The script failing (its last command's status, as for any script)
/// fails the hook, and so does its still running after `timeout` (it is
/// killed then). What it leaves running in the background is its own:
/// `mln` reads its output only until it ends.
pub(crate) fn run_hook(
    project: &str,
    point: HookPoint,
    lines: &[String],
    dir: Option<&Path>,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<(), ApplyError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut script = lines.join("\n");
    script.push('\n');
    let shell = shell();
    let mut cmd = Command::new(shell);
    cmd.arg("-c")
        .arg(&script)
        .env("MLN_PROJECT", project)
        .env("MLN_HOOK", point.as_str());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let fail = |status: String, output: String| ApplyError::Hook {
        point: point.as_str(),
        line: first_line(lines),
        status,
        output,
    };
    let out = output_within(&mut cmd, point.as_str(), timeout).map_err(|e| match e {
        mln_core::Error::Timeout { after, .. } => fail(
            format!("still running after {after:?}; killed"),
            String::new(),
        ),
        e => {
            let place = dir.map_or(String::new(), |d| format!(" in {}", d.display()));
            fail(format!("could not run {shell}{place}: {e}"), String::new())
        }
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for l in stdout.lines().chain(stderr.lines()) {
        progress.hook_output(point, l);
    }
    if !out.status.success() {
        return Err(fail(out.status.to_string(), stderr.trim().to_string()));
    }
    Ok(())
}
