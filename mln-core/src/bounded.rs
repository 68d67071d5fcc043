//! Helper programs run with a bound on how long they may take: a program
//! that hangs (a kernel asked for its version that boots instead, an
//! `apt-get` waiting on a dead mirror) is killed, never waited for forever.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long the output of a program that has ended is still read: a
/// program that started something in the background and left it holding
/// its stdout (a hook that starts a daemon) is not waited for.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Run `cmd` to its end, capturing stdout and stderr (stdin is empty),
/// killing it after `timeout` with [`Error::Timeout`]. `what` names it in
/// errors. Once it has ended, its output is read for at most 2 s more, so
/// something it left running in the background that still holds its
/// stdout or stderr does not hold the caller up (what that prints later
/// is not captured). On a timeout only `cmd` itself is killed.
pub fn output_within(cmd: &mut Command, what: &str, timeout: Duration) -> Result<Output> {
    run_within(cmd, None, what, timeout)
}

/// [`output_within`], with `input` on the program's stdin (written from
/// a thread, so a program that prints before it reads all of it does not
/// deadlock; one that never reads it is not waited for).
pub fn output_within_input(
    cmd: &mut Command,
    input: &[u8],
    what: &str,
    timeout: Duration,
) -> Result<Output> {
    run_within(cmd, Some(input.to_vec()), what, timeout)
}

fn run_within(
    cmd: &mut Command,
    input: Option<Vec<u8>>,
    what: &str,
    timeout: Duration,
) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), input) {
        // A program that exits without reading closes the pipe: the
        // write then fails, which is its business, not an error here.
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut pipe, &input);
        });
    }
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
    let grace = Instant::now() + PIPE_GRACE;
    let collect = |r: Option<mpsc::Receiver<Vec<u8>>>| {
        let mut all = Vec::new();
        if let Some(r) = r {
            while let Ok(chunk) = r.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                all.extend_from_slice(&chunk);
            }
        }
        all
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Like [`output_within`], but a non-zero exit is an [`Error::Command`]
/// carrying the end of stderr; returns stdout.
pub fn checked_within(cmd: &mut Command, what: &str, timeout: Duration) -> Result<String> {
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

/// What `r` gives, sent chunk by chunk as read, until its end (a thread
/// that nobody waits for when the end never comes).
/// How a program watched by [`watch_within`] was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// It printed what was looked for.
    Printed,
    /// It ended (or closed its stdout) without printing it.
    Ended,
    /// It printed nothing for the silence bound: hung.
    Silent,
    /// The overall bound passed while it was still printing.
    TimedOut,
}

/// Run `cmd` (stdin empty, stderr discarded) while watching its stdout for
/// `needle`, and kill it as soon as it is printed, the program stops
/// printing for `silence` (a guest that hangs goes quiet, one that boots
/// never does for long), or `timeout` passes. Says which.
pub fn watch_within(
    cmd: &mut Command,
    needle: &str,
    timeout: Duration,
    silence: Duration,
) -> Result<Watched> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| Error::Spawn { program, source })?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Ok(Watched::Ended);
    };
    let chunks = drain(stdout);
    let deadline = Instant::now() + timeout;
    let needle = needle.as_bytes();
    let mut seen: Vec<u8> = Vec::new();
    let watched = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Watched::TimedOut;
        }
        match chunks.recv_timeout(left.min(silence)) {
            Ok(chunk) => {
                seen.extend_from_slice(&chunk);
                if seen.windows(needle.len()).any(|w| w == needle) {
                    break Watched::Printed;
                }
                // Keep only what a needle split across chunks needs.
                let keep = needle.len().saturating_sub(1).min(seen.len());
                seen.drain(..seen.len() - keep);
            }
            Err(mpsc::RecvTimeoutError::Timeout) if left > silence => break Watched::Silent,
            Err(mpsc::RecvTimeoutError::Timeout) => break Watched::TimedOut,
            Err(mpsc::RecvTimeoutError::Disconnected) => break Watched::Ended,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(watched)
}

fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_program_is_left_when_it_prints_the_needle_goes_quiet_or_ends() {
        let sh = |script: &str| {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        };
        let (long, quiet) = (Duration::from_secs(20), Duration::from_millis(500));
        let started = Instant::now();
        let w = watch_within(
            &mut sh("printf boot-; sleep 0.1; echo OK; sleep 30"),
            "boot-OK",
            long,
            quiet,
        );
        assert_eq!(w.ok(), Some(Watched::Printed));
        let w = watch_within(&mut sh("echo early; sleep 30"), "boot-OK", long, quiet);
        assert_eq!(w.ok(), Some(Watched::Silent));
        let w = watch_within(&mut sh("echo done"), "boot-OK", long, quiet);
        assert_eq!(w.ok(), Some(Watched::Ended));
        let w = watch_within(
            &mut sh("while :; do echo busy; sleep 0.1; done"),
            "boot-OK",
            Duration::from_secs(1),
            quiet,
        );
        assert_eq!(w.ok(), Some(Watched::TimedOut));
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "nothing waited for its sleep"
        );
    }

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
    fn input_reaches_the_program() {
        let out = output_within_input(
            &mut Command::new("cat"),
            b"hello",
            "cat",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, b"hello");
        // One that never reads its input is not waited for.
        let big = vec![b'x'; 1 << 20];
        let out = output_within_input(
            Command::new("sh").args(["-c", "echo done"]),
            &big,
            "sh",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, b"done\n");
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

    #[test]
    fn a_background_child_holding_stdout_does_not_hold_the_caller() {
        let started = Instant::now();
        let out = output_within(
            Command::new("sh").args(["-c", "sleep 30 & echo started"]),
            "sh",
            Duration::from_secs(20),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
        assert!(started.elapsed() < Duration::from_secs(15));
    }
}
