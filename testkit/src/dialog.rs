//! A conversation with a program on its stdin and stdout (what `expect`
//! does): send text, wait for text, every wait bounded, the program killed
//! if the dialog is dropped before it ends.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running program, its output read as it comes.
pub struct Dialog {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Receiver<Vec<u8>>,
    /// Output not yet consumed by an `expect`.
    pending: Vec<u8>,
    /// Everything read so far, for failure messages.
    transcript: Vec<u8>,
}

impl Dialog {
    /// Start `cmd` with piped stdin and stdout (stderr is inherited: it
    /// shows in the test's output).
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Dialog> {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(Dialog {
            child,
            stdin,
            output: rx,
            pending: Vec::new(),
            transcript: Vec::new(),
        })
    }

    /// Type `text`.
    pub fn send(&mut self, text: &[u8]) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin already closed")?;
        stdin
            .write_all(text)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("typing {:?}: {e}", String::from_utf8_lossy(text)))
    }

    /// Wait at most `limit` for `needle` in the output; what came before
    /// it and the needle itself, or what was seen when it did not come.
    pub fn expect(&mut self, needle: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = find(&self.pending, needle.as_bytes()) {
                let rest = self.pending.split_off(i + needle.len());
                let seen = std::mem::replace(&mut self.pending, rest);
                return Ok(String::from_utf8_lossy(&seen).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => {
                    self.pending.extend_from_slice(&bytes);
                    self.transcript.extend_from_slice(&bytes);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{needle:?} did not come within {limit:?}; the output so far:\n{}",
                        String::from_utf8_lossy(&self.transcript)
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the output ended before {needle:?}:\n{}",
                        String::from_utf8_lossy(&self.transcript)
                    ))
                }
            }
        }
    }

    /// Close stdin and wait at most `limit` for the program to end.
    pub fn finish(mut self, limit: Duration) -> Result<ExitStatus, String> {
        drop(self.stdin.take());
        self.wait(limit)
    }

    /// Wait at most `limit` for the program to end on its own, stdin
    /// still open.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => return Err(format!("still running after {limit:?}")),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Drop for Dialog {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
