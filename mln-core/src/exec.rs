//! Running a command in a running guest (`mln exec`), with no network
//! and no root on the managing machine: a line protocol with the guest's
//! agent on its second serial line (the busybox template's
//! `/etc/mln/agent` on `/dev/ttyS1`). UML puts that line on a host
//! pseudo-terminal (`ssl1=pts`), QEMU on a unix socket.
//!
//! ```text
//! → MLN-EXEC ID BASE64(shell command)
//! ← MLN-OUT ID BASE64(stdout)
//! ← MLN-ERR ID BASE64(stderr)
//! ← MLN-EXIT ID STATUS
//! ```
//!
//! One command at a time per guest (a lock file beside the channel); each
//! bounded in time. The command line is the argv given, each word quoted
//! for the guest's `sh`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a command run in a guest did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Its exit status (128 + N when killed by signal N, as `sh` says).
    pub status: i32,
    /// What it wrote on stdout.
    pub stdout: Vec<u8>,
    /// What it wrote on stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// `argv` as one command line for a POSIX shell: every word in single
/// quotes (a quote inside closed, escaped and reopened).
///
/// ```
/// assert_eq!(mln_core::exec::shell_line(&["echo".into(), "it's".into()]), r#"'echo' 'it'\''s'"#);
/// ```
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run `argv` through the agent at the other end of `channel` (read and
/// written; non-blocking, so that the wait is bounded), at most
/// `timeout`. `domain` names the guest in errors.
pub(crate) fn run<C: Read + Write>(
    domain: &str,
    channel: C,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput> {
    let deadline = Instant::now() + timeout;
    match run_on_line(domain, channel, argv, (deadline, timeout), &|| false)? {
        Sent::Answered(out) => Ok(out),
        Sent::LineReplaced => Err(Error::Backend {
            what: domain.to_string(),
            message: "its agent's line was replaced".into(),
        }),
    }
}

/// What became of a request sent on one line.
pub(crate) enum Sent {
    /// The agent answered.
    Answered(ExecOutput),
    /// Nothing came back, and the line is not the agent's any more (a
    /// guest's tty closed and opened again gets a new host terminal): the
    /// request never reached the agent; send it again on the new line.
    LineReplaced,
}

/// How often a request with no answer yet checks whether its line was
/// replaced.
const LINE_CHECK: Duration = Duration::from_secs(1);

/// [`run`] on one line of a guest whose agent's line may be replaced
/// under it: `replaced` is asked while nothing has come back. `until` is
/// the deadline and the whole time allowed (for the error).
pub(crate) fn run_on_line<C: Read + Write>(
    domain: &str,
    channel: C,
    argv: &[String],
    (deadline, timeout): (Instant, Duration),
    replaced: &dyn Fn() -> bool,
) -> Result<Sent> {
    let id = request_id();
    let io_err = |e: std::io::Error| Error::Backend {
        what: domain.to_string(),
        message: format!("talking to its agent: {e}"),
    };
    let mut reader = BufReader::new(channel);
    let line = format!("MLN-EXEC {id} {}\n", encode(shell_line(argv).as_bytes()));
    let left = deadline.saturating_duration_since(Instant::now());
    write_all_nonblocking(reader.get_mut(), line.as_bytes(), left).map_err(io_err)?;
    let mut heard = false;
    let mut next_check = Instant::now() + LINE_CHECK;
    let mut out = ExecOutput {
        status: -1,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let id = id.to_string();
    let mut text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout {
                what: domain.to_string(),
                op: "running a command in the guest",
                after: timeout,
            });
        }
        // A line may arrive in pieces: what was read stays in `text`.
        match reader.read_line(&mut text) {
            Ok(0) => {
                return Err(Error::Backend {
                    what: domain.to_string(),
                    message: "its agent's channel closed".into(),
                })
            }
            Ok(_) if !text.ends_with('\n') => continue,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !heard && Instant::now() >= next_check {
                    if replaced() {
                        return Ok(Sent::LineReplaced);
                    }
                    next_check = Instant::now() + LINE_CHECK;
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        }
        let line = std::mem::take(&mut text);
        heard = true;
        let mut words = line.trim_end_matches(['\r', '\n']).splitn(3, ' ');
        let (Some(tag), Some(got), payload) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if got != id {
            continue; // an earlier, timed-out request's answer
        }
        let payload = payload.unwrap_or("");
        match tag {
            "MLN-OUT" => out.stdout = decode(domain, payload)?,
            "MLN-ERR" => out.stderr = decode(domain, payload)?,
            "MLN-EXIT" => {
                out.status = payload.trim().parse().unwrap_or(-1);
                return Ok(Sent::Answered(out));
            }
            _ => {}
        }
    }
}

/// Write all of `bytes` to a non-blocking `w`, at most `timeout`.
fn write_all_nonblocking(
    w: &mut impl Write,
    mut bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    while !bytes.is_empty() {
        match w.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    w.flush()
}

/// Hold the guest's exec lock (`lock_path`) while `f` runs: the agent
/// serves one command at a time.
pub(crate) fn locked<T>(lock_path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(|e| Error::io(lock_path, e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io(lock_path, e.into()))?;
    let result = f();
    drop(lock);
    result
}

/// Open the guest side's host pseudo-terminal `/dev/pts/N` in raw mode
/// (no echo: the guest would read its own answers back), non-blocking.
pub(crate) fn open_pts(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(
            rustix::fs::OFlags::NOCTTY.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut t = rustix::termios::tcgetattr(&f).map_err(|e| Error::io(path, e.into()))?;
    t.make_raw();
    rustix::termios::tcsetattr(&f, rustix::termios::OptionalActions::Now, &t)
        .map_err(|e| Error::io(path, e.into()))?;
    Ok(f)
}

fn request_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    (t % 1_000_000_000) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed) % 1000
}

fn encode(bytes: &[u8]) -> String {
    crate::base64::encode(bytes)
}

fn decode(domain: &str, text: &str) -> Result<Vec<u8>> {
    crate::base64::decode(text).ok_or_else(|| Error::Backend {
        what: domain.to_string(),
        message: "its agent answered something that is not base64".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line that takes every write and never answers.
    struct Silent(Vec<u8>);

    impl Read for Silent {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::WouldBlock.into())
        }
    }

    impl Write for Silent {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_request_on_a_replaced_line_is_given_back_and_one_on_a_kept_line_times_out() {
        let argv = ["true".to_string()];
        let long = (
            Instant::now() + Duration::from_secs(30),
            Duration::from_secs(30),
        );
        let sent = run_on_line("g", Silent(Vec::new()), &argv, long, &|| true).unwrap();
        assert!(matches!(sent, Sent::LineReplaced));
        let short = (
            Instant::now() + Duration::from_millis(1500),
            Duration::from_millis(1500),
        );
        let err = run_on_line("g", Silent(Vec::new()), &argv, short, &|| false)
            .err()
            .unwrap();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }

    #[test]
    fn words_are_quoted_for_the_guests_shell() {
        let argv = ["sh", "-c", "echo $HOME; it's"].map(String::from);
        assert_eq!(shell_line(&argv), r#"'sh' '-c' 'echo $HOME; it'\''s'"#);
    }
}
