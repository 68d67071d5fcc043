//! Helper programs run with a bound on how long they may take: a program
//! that hangs (a kernel asked for its version that boots instead, an
//! `apt-get` waiting on a dead mirror) is killed, never waited for forever.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Run `cmd` to its end, capturing stdout and stderr (stdin is empty),
/// killing it after `timeout`. `what` names it in errors.
pub(crate) fn output_within(cmd: &mut Command, what: &str, timeout: Duration) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
    // Readers on threads, so a chatty program never blocks on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    what: what.to_string(),
                    op: "running a helper program",
                    after: timeout,
                });
            }
            Err(e) => return Err(Error::Spawn { program, source: e }),
        }
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

/// Like [`output_within`], but a non-zero exit is an [`Error::Command`]
/// carrying the end of stderr; returns stdout.
pub(crate) fn checked_within(cmd: &mut Command, what: &str, timeout: Duration) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = output_within(cmd, what, timeout)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = {
        let t = stderr.trim_end();
        let start = t.len().saturating_sub(1500);
        let start = (start..=t.len())
            .find(|&i| t.is_char_boundary(i))
            .unwrap_or(t.len());
        t[start..].to_string()
    };
    Err(Error::Command {
        program,
        status: out.status.to_string(),
        stderr: tail,
    })
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_program_is_killed_at_the_bound() {
        let started = Instant::now();
        let err = output_within(
            Command::new("sleep").arg("30"),
            "sleeper",
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn failure_carries_stderr() {
        let err = checked_within(
            Command::new("sh").args(["-c", "echo broken >&2; exit 3"]),
            "sh",
            Duration::from_secs(10),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broken") && text.contains('3'), "{text}");
    }
}
