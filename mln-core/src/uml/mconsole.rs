//! The UML management console protocol: one request datagram, one or more
//! reply datagrams, over the unix datagram socket a guest opens at
//! `UML_DIR/UMID/mconsole`.
//!
//! Wire format (host byte order, as UML's `mconsole.h`): a request is
//! `magic u32 = 0xcafebabe, version u32 = 2, len u32, data[512]`; a reply is
//! `err u32, more u32, len u32, data[512]`, repeated while `more` is set.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

const MAGIC: u32 = 0xcafe_babe;
const VERSION: u32 = 2;
const MAX_DATA: usize = 512;
const HEADER: usize = 12;

/// A client of one guest's management console.
#[derive(Debug, Clone)]
pub struct Mconsole {
    guest: String,
    socket: PathBuf,
    timeout: Duration,
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum McError {
    /// Nobody listens on the socket: the guest is gone.
    Unreachable(std::io::Error),
    /// The guest answered with an error.
    Refused(String),
    /// No answer in time.
    Timeout,
    /// Any other socket failure.
    Io(std::io::Error),
}

impl Mconsole {
    /// A client for the socket at `socket`, for the guest named `guest`
    /// (used in errors); replies are awaited for at most `timeout`.
    pub fn new(guest: &str, socket: &Path, timeout: Duration) -> Self {
        Mconsole {
            guest: guest.to_string(),
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    /// Send `command` (e.g. `version`, `stop`, `go`, `cad`, `halt`,
    /// `config mem=-16M`, `proc meminfo`) and return the reply text.
    pub fn request(&self, command: &str) -> Result<String> {
        self.request_raw(command).map_err(|e| match e {
            McError::Unreachable(e) => Error::Backend {
                what: self.guest.clone(),
                message: format!(
                    "management console {} does not answer: {e}",
                    self.socket.display()
                ),
            },
            McError::Refused(msg) => Error::Backend {
                what: self.guest.clone(),
                message: format!("management console refused `{command}`: {msg}"),
            },
            McError::Timeout => Error::Timeout {
                what: self.guest.clone(),
                op: "management console request",
                after: self.timeout,
            },
            McError::Io(e) => Error::io(&self.socket, e),
        })
    }

    pub(crate) fn request_raw(&self, command: &str) -> std::result::Result<String, McError> {
        let data = command.as_bytes();
        if data.len() >= MAX_DATA {
            return Err(McError::Refused("request longer than 511 bytes".into()));
        }
        let sock = bind_client().map_err(McError::Io)?;
        sock.connect(&self.socket).map_err(McError::Unreachable)?;
        sock.set_read_timeout(Some(self.timeout))
            .map_err(McError::Io)?;
        let mut req = Vec::with_capacity(HEADER + MAX_DATA);
        req.extend_from_slice(&MAGIC.to_ne_bytes());
        req.extend_from_slice(&VERSION.to_ne_bytes());
        req.extend_from_slice(&(data.len() as u32).to_ne_bytes());
        req.extend_from_slice(data);
        req.resize(HEADER + MAX_DATA, 0);
        sock.send(&req).map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                McError::Unreachable(e)
            }
            _ => McError::Io(e),
        })?;
        let mut text = Vec::new();
        let mut failed = false;
        loop {
            let mut buf = [0u8; HEADER + MAX_DATA];
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(McError::Timeout)
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(McError::Unreachable(e))
                }
                Err(e) => return Err(McError::Io(e)),
            };
            if n < HEADER {
                return Err(McError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "short reply",
                )));
            }
            let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
            let (err, more, len) = (word(0), word(4), word(8) as usize);
            failed |= err != 0;
            let len = len.min(n - HEADER).min(MAX_DATA);
            let chunk = &buf[HEADER..HEADER + len];
            // UML counts the terminating NUL in `len` on some replies.
            let end = chunk.iter().position(|&b| b == 0).unwrap_or(chunk.len());
            text.extend_from_slice(&chunk[..end]);
            if more == 0 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if failed {
            Err(McError::Refused(text))
        } else {
            Ok(text)
        }
    }
}

/// A datagram socket bound to a fresh abstract address, so the guest has an
/// address to reply to and no file is left behind.
fn bind_client() -> std::io::Result<UnixDatagram> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("mln-mconsole-{}-{n}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixDatagram::bind_addr(&addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_socket_is_unreachable_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let mc = Mconsole::new("g", &dir.path().join("mconsole"), Duration::from_secs(1));
        assert!(matches!(
            mc.request_raw("version"),
            Err(McError::Unreachable(_))
        ));
    }

    #[test]
    fn speaks_the_wire_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mconsole");
        let server = UnixDatagram::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; HEADER + MAX_DATA];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(n, HEADER + MAX_DATA);
            assert_eq!(&buf[0..4], &MAGIC.to_ne_bytes());
            assert_eq!(&buf[12..19], b"version");
            let from = from.as_abstract_name().unwrap().to_vec();
            let to = SocketAddr::from_abstract_name(&from).unwrap();
            for (more, part) in [(1u32, &b"6.1"[..]), (0, &b".0\0"[..])] {
                let mut r = Vec::new();
                r.extend_from_slice(&0u32.to_ne_bytes());
                r.extend_from_slice(&more.to_ne_bytes());
                r.extend_from_slice(&(part.len() as u32).to_ne_bytes());
                r.extend_from_slice(part);
                server.send_to_addr(&r, &to).unwrap();
            }
        });
        let mc = Mconsole::new("g", &path, Duration::from_secs(5));
        assert_eq!(mc.request("version").unwrap(), "6.1.0");
        t.join().unwrap();
    }
}
