//! Running a project's hook blocks on the managing machine.

use std::process::{Command, Stdio};

use super::{ApplyError, Progress};
use crate::plan::HookPoint;

/// The `PATH` hooks run with: their environment is otherwise empty.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Run the lines of one hook block in order, each as `sh -c LINE` (hook
/// lines are shell written by the project's author). Nothing is
/// interpolated into them; they get a clean environment with only `PATH`,
/// `MLN_PROJECT` (the project's name, a safe identifier) and `MLN_HOOK`.
/// The first line that fails stops the block.
pub(crate) fn run_hook(
    project: &str,
    point: HookPoint,
    lines: &[String],
    progress: &dyn Progress,
) -> Result<(), ApplyError> {
    for line in lines {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .env_clear()
            .env("PATH", HOOK_PATH)
            .env("MLN_PROJECT", project)
            .env("MLN_HOOK", point.as_str())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ApplyError::Hook {
                point: point.as_str(),
                line: line.clone(),
                status: format!("could not run /bin/sh: {e}"),
                output: String::new(),
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for l in stdout.lines().chain(stderr.lines()) {
            progress.hook_output(point, l);
        }
        if !out.status.success() {
            return Err(ApplyError::Hook {
                point: point.as_str(),
                line: line.clone(),
                status: out.status.to_string(),
                output: stderr.trim().to_string(),
            });
        }
    }
    Ok(())
}
