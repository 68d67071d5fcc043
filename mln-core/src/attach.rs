//! Attaching a person's terminal to a guest's console (`mln console`):
//! where each backend puts the console ([`ConsoleEndpoint`]), a raw-mode
//! guard for the caller's terminal ([`RawMode`]), and the copy loop
//! ([`attach`]) that ends on the detach key, on end of input, or when the
//! guest's side closes.
//!
//! UML gives the guest's second console (`tty1`) a host pseudo-terminal;
//! QEMU serves its first serial line on a unix socket (and logs it); Xen
//! has `xl console`. The template runs a login prompt on that line, named
//! to it by `mln.console=LINE` on the kernel command line.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::termios::{tcgetattr, tcsetattr, OptionalActions, Termios};

use crate::error::{Error, Result};

/// Ctrl-]: the byte that detaches (as with `xl console` and telnet).
pub const DETACH_KEY: u8 = 0x1d;

/// The kernel argument that names the line the template runs its login
/// prompt on (`tty1`, `ttyS0`, `hvc0`).
pub fn console_word(line: &str) -> String {
    format!("mln.console={line}")
}

/// Where a running guest's interactive console is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEndpoint {
    /// A host pseudo-terminal (`/dev/pts/N`): a UML guest's `tty1`.
    Pty(PathBuf),
    /// A unix socket: a QEMU guest's first serial line.
    Socket(PathBuf),
    /// A program that attaches the caller's own terminal itself, as an
    /// argv: `xl console NAME` for Xen, `ssh -t SERVER mln agent console
    /// ...` for a guest on another server.
    Program(Vec<OsString>),
}

/// Why [`attach`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The detach key was typed.
    Detached,
    /// The input ended (a pipe closed).
    InputClosed,
    /// The guest's side closed (it stopped or rebooted, or the program
    /// ended).
    ConsoleClosed,
}

/// The caller's terminal in raw mode (every key passed on as typed, no
/// echo, no signals from Ctrl-C) until dropped, when its settings are put
/// back.
pub struct RawMode<'fd> {
    fd: BorrowedFd<'fd>,
    saved: Termios,
}

impl<'fd> RawMode<'fd> {
    /// Raw mode on `fd` when it is a terminal; `None` when it is not (a
    /// pipe, a file), where there is nothing to change.
    pub fn enter(fd: BorrowedFd<'fd>) -> Result<Option<Self>> {
        if !rustix::termios::isatty(fd) {
            return Ok(None);
        }
        let saved = tcgetattr(fd).map_err(|e| io_error("the terminal", e))?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(fd, OptionalActions::Now, &raw).map_err(|e| io_error("the terminal", e))?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

/// Copy between `input`/`output` and the console at `endpoint` of guest
/// `guest` until the detach key, end of input, or the console's end. A
/// [`ConsoleEndpoint::Program`] runs with this process's own standard
/// input and output instead (and its end is [`Ended::ConsoleClosed`]).
pub fn attach(
    guest: &str,
    endpoint: &ConsoleEndpoint,
    input: BorrowedFd<'_>,
    output: &mut dyn Write,
) -> Result<Ended> {
    match endpoint {
        ConsoleEndpoint::Pty(path) => {
            let pty = crate::exec::open_pts(path)?;
            // What the guest wrote while nobody was attached (an earlier
            // session's screen, old prompts) waits in the terminal: drop it.
            rustix::termios::tcflush(&pty, rustix::termios::QueueSelector::IFlush)
                .map_err(|e| io_error(guest, e))?;
            copy(guest, &pty, input, output)
        }
        ConsoleEndpoint::Socket(path) => {
            let sock = UnixStream::connect(path).map_err(|e| Error::Backend {
                what: guest.to_string(),
                message: format!("its console socket {}: {e}", path.display()),
            })?;
            copy(guest, &sock, input, output)
        }
        ConsoleEndpoint::Program(argv) => {
            let (program, args) = argv.split_first().ok_or_else(|| Error::Backend {
                what: guest.to_string(),
                message: "no console program".into(),
            })?;
            let status = Command::new(program)
                .args(args)
                .status()
                .map_err(|e| Error::Backend {
                    what: guest.to_string(),
                    message: format!("running {}: {e}", program.to_string_lossy()),
                })?;
            if status.success() {
                Ok(Ended::ConsoleClosed)
            } else {
                Err(Error::Backend {
                    what: guest.to_string(),
                    message: format!("{} ended with {status}", program.to_string_lossy()),
                })
            }
        }
    }
}

/// The copy loop over a console that is a file descriptor both ways.
fn copy<C>(guest: &str, console: C, input: BorrowedFd<'_>, output: &mut dyn Write) -> Result<Ended>
where
    C: AsFd + Read + Write,
{
    let mut console = console;
    let mut buf = [0u8; 4096];
    let lost = |e: std::io::Error| Error::Backend {
        what: guest.to_string(),
        message: format!("its console: {e}"),
    };
    loop {
        let (input_ready, console_ready) = {
            let console_fd = console.as_fd();
            let mut fds = [
                PollFd::new(&input, PollFlags::IN),
                PollFd::new(&console_fd, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_error("waiting for the console", e)),
            }
            let ready = |f: &PollFd<'_>| !f.revents().is_empty();
            (ready(&fds[0]), ready(&fds[1]))
        };
        if console_ready {
            match console.read(&mut buf) {
                Ok(0) => return Ok(Ended::ConsoleClosed),
                Ok(n) => {
                    output.write_all(&buf[..n]).map_err(lost)?;
                    output.flush().map_err(lost)?;
                }
                Err(e) if retry(&e) => {}
                // A pseudo-terminal whose other side closed says EIO.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(Ended::ConsoleClosed),
                Err(e) => return Err(lost(e)),
            }
        }
        if input_ready {
            let n = match rustix::io::read(input, &mut buf) {
                Ok(0) => return Ok(Ended::InputClosed),
                Ok(n) => n,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
                Err(e) => return Err(io_error("reading the input", e)),
            };
            let typed = &buf[..n];
            let (send, detach) = match typed.iter().position(|&b| b == DETACH_KEY) {
                Some(i) => (&typed[..i], true),
                None => (typed, false),
            };
            write_console(&mut console, send).map_err(lost)?;
            if detach {
                return Ok(Ended::Detached);
            }
        }
    }
}

/// Write all of `bytes` to a console that may be non-blocking.
fn write_console<C: Write>(console: &mut C, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match console.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if retry(&e) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

fn io_error(what: &str, e: rustix::io::Errno) -> Error {
    Error::Backend {
        what: what.to_string(),
        message: std::io::Error::from(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A console served on a socket, echoing in upper case: what is typed
    /// reaches it, what it says comes out, and Ctrl-] ends the session
    /// without being sent.
    #[test]
    fn copies_both_ways_and_detaches_on_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            // Until the session closes the socket (a reset, when an
            // echo arrives after it left, counts as closing).
            while let Ok(n @ 1..) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
                let _ = s.write_all(&buf[..n].to_ascii_uppercase());
            }
            got
        });
        let (reader, mut writer) = UnixStream::pair().unwrap();
        let mut out = Vec::new();
        writer.write_all(b"hello\n").unwrap();
        // The echo comes back before the detach key is typed.
        let typist = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            writer.write_all(&[b'x', DETACH_KEY, b'y']).unwrap();
            writer
        });
        let ended = attach(
            "g",
            &ConsoleEndpoint::Socket(path),
            reader.as_fd(),
            &mut out,
        )
        .unwrap();
        assert_eq!(ended, Ended::Detached);
        drop(typist.join().unwrap());
        assert_eq!(String::from_utf8_lossy(&out), "HELLO\n");
        // The session's socket closed: the server saw all but the key.
        let sent = server.join().unwrap();
        assert_eq!(sent, b"hello\nx");
    }

    #[test]
    fn end_of_input_and_a_closed_console_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"bye\n").unwrap();
        });
        let (reader, writer) = UnixStream::pair().unwrap();
        let mut out = Vec::new();
        let ended = attach(
            "g",
            &ConsoleEndpoint::Socket(path.clone()),
            reader.as_fd(),
            &mut out,
        )
        .unwrap();
        server.join().unwrap();
        assert_eq!(ended, Ended::ConsoleClosed);
        assert_eq!(out, b"bye\n");
        drop(writer);

        let listener = UnixListener::bind(dir.path().join("c2.sock")).unwrap();
        let keep = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let (reader, writer) = UnixStream::pair().unwrap();
        drop(writer);
        let ended = attach(
            "g",
            &ConsoleEndpoint::Socket(dir.path().join("c2.sock")),
            reader.as_fd(),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(ended, Ended::InputClosed);
        drop(keep.join());
    }

    #[test]
    fn a_missing_socket_names_the_guest() {
        let (reader, _writer) = UnixStream::pair().unwrap();
        let err = attach(
            "lab.a",
            &ConsoleEndpoint::Socket("/nonexistent/console.sock".into()),
            reader.as_fd(),
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("lab.a") && err.contains("/nonexistent"),
            "{err}"
        );
    }
}
