//! A copy that belongs to its student (`mln class` run by root): its
//! project folder is given to the student's Unix user, and the verb runs
//! as them, as `mln VERB` through `setpriv` (`crate::owner`), so every
//! guest, switch and file of the copy is theirs and no other student's.
//! Root's password reaches their `mln` in its environment
//! (`MLN_ROOT_PASSWORD`), never on a command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ValueEnum;
use mln_lang::plan::Goal;

use super::{Copy, CopyResult};
use crate::cli::ClassArgs;
use crate::lifecycle::Places;
use crate::owner::{self, User};

/// Run `goal` on `copy` as `user`.
pub(super) fn run(
    args: &ClassArgs,
    places: &Places,
    goal: Goal,
    copy: &Copy,
    user: &User,
    mut result: CopyResult,
) -> CopyResult {
    let started = Instant::now();
    let folder = places.state_root.join(&copy.project);
    if matches!(goal, Goal::Build | Goal::Up) {
        if let Err(e) = owner::give(&places.state_root, &folder, user) {
            result.error = Some(e);
            return result;
        }
    }
    let argv = match argv(args, places, goal, copy) {
        Ok(a) => a,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            result.error = Some(format!("this program: {e}"));
            return result;
        }
    };
    let mut cmd = user.command(&exe);
    cmd.args(&argv).stdin(std::process::Stdio::null());
    if let Some(login) = &copy.login {
        cmd.env("MLN_ROOT_PASSWORD", &login.password);
        match &login.ssh_key {
            Some(key) => cmd.env("MLN_ROOT_SSH_KEY", key),
            None => cmd.env_remove("MLN_ROOT_SSH_KEY"),
        };
    }
    let out = cmd.output();
    result.seconds = started.elapsed().as_secs_f64();
    match out {
        Err(e) => result.error = Some(format!("cannot run as {}: {e}", user.name)),
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let outcome = Outcome::read(&stdout);
            result.actions = outcome.as_ref().map_or(0, |o| o.done);
            result.ok = out.status.success();
            // Their mln emptied the folder; the state folder is root's.
            if result.ok && goal == Goal::Remove {
                if let Err(e) = std::fs::remove_dir(&folder) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        result.ok = false;
                        result.error = Some(format!("{}: {e}", folder.display()));
                    }
                }
            }
            if !result.ok {
                result.error = Some(
                    outcome
                        .and_then(|o| o.failed.into_iter().next())
                        .map(|f| crate::lifecycle::failure_line(&f.action, &f.error))
                        .unwrap_or_else(|| last_error(&stderr)),
                );
            }
        }
    }
    result
}

/// The last `error:` line of what their `mln` said, else its last line.
fn last_error(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("failed without a word")
        .trim_start_matches("error: ")
        .to_string()
}

/// The command line of the student's `mln`: every path absolute (their
/// working folder may be one they cannot read).
fn argv(
    args: &ClassArgs,
    places: &Places,
    goal: Goal,
    copy: &Copy,
) -> Result<Vec<OsString>, String> {
    let absolute = |p: &Path| -> Result<PathBuf, String> {
        std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let verb = match goal {
        Goal::Build => "build",
        Goal::Up => "up",
        Goal::Stop => "stop",
        Goal::Remove => "remove",
        Goal::Upgrade => "upgrade",
    };
    let mut argv: Vec<OsString> = vec![verb.into()];
    match goal {
        Goal::Build | Goal::Up => {
            argv.push(absolute(&args.file)?.into());
            argv.push("--name".into());
            argv.push(copy.project.clone().into());
            let given = args.copy.defines.iter().cloned();
            let mine = copy
                .definitions
                .variables()
                .map(|(n, v)| format!("{n}={v}"));
            for d in given.chain(mine) {
                argv.push("-D".into());
                argv.push(d.into());
            }
        }
        _ => {
            argv.push("-p".into());
            argv.push(copy.project.clone().into());
        }
    }
    argv.push("--state-dir".into());
    argv.push(absolute(&places.state_root)?.into());
    argv.push("--template-dir".into());
    argv.push(absolute(&places.template_dir)?.into());
    if let Some(kernel) = &args.copy.run.uml_kernel {
        argv.push("--uml-kernel".into());
        argv.push(absolute(kernel)?.into());
    }
    if let Some(backend) = args.copy.backend.and_then(|b| b.to_possible_value()) {
        argv.push("--backend".into());
        argv.push(backend.get_name().into());
    }
    if let Some(jobs) = args.copy.jobs {
        argv.push(format!("--jobs={jobs}").into());
    }
    argv.push(format!("--boot-timeout={}", args.copy.run.boot_timeout).into());
    argv.push(format!("--hook-timeout={}", args.copy.run.hook_timeout).into());
    let plugins = &args.copy.run.plugins;
    for dir in &plugins.plugins_dir {
        argv.push("--plugins-dir".into());
        argv.push(absolute(dir)?.into());
    }
    if plugins.no_plugins {
        argv.push("--no-plugins".into());
    }
    argv.push(format!("--plugin-timeout={}", plugins.plugin_timeout).into());
    argv.push("--quiet".into());
    argv.push("--format=json".into());
    Ok(argv)
}

/// What their `mln VERB --format json` said of its run (its one JSON
/// object on stdout); `None` when it said none (it failed before
/// applying anything).
#[derive(Debug, serde::Deserialize)]
struct Outcome {
    done: usize,
    failed: Vec<FailedAction>,
}

#[derive(Debug, serde::Deserialize)]
struct FailedAction {
    action: String,
    error: String,
}

impl Outcome {
    fn read(stdout: &str) -> Option<Outcome> {
        stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn the_outcome_is_read_from_the_json_line() {
        let said = "{\"project\":\"lab-ann\",\"verb\":\"up\",\"ok\":false,\"done\":3,\
                    \"failed\":[{\"action\":\"start host a\",\"error\":\"no kernel\"}],\"not_run\":2}\n";
        let o = Outcome::read(said).unwrap();
        assert_eq!(o.done, 3);
        assert_eq!(o.failed[0].action, "start host a");
        assert_eq!(o.failed[0].error, "no kernel");
        assert!(Outcome::read("lab-ann: up (14 action(s) done)\n").is_none());
    }
}
