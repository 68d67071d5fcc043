//! A small synchronous client of the QEMU Machine Protocol (QMP): JSON
//! lines over the unix socket a guest's QEMU serves (`-qmp unix:...`).
//!
//! A session reads QEMU's greeting, leaves capability negotiation with
//! `qmp_capabilities`, then sends one command at a time and reads lines
//! until the reply with the command's `id` arrives; events in between
//! (`STOP`, `POWERDOWN`, ...) are skipped. Every read and write is bounded
//! by the client's timeout. A file descriptor can go along with a command
//! (SCM_RIGHTS ancillary data on the same message, as `getfd` needs it).
//!
//! Written here rather than taken from crates.io: the `qapi` crate's
//! synchronous client works over plain streams, so it can neither pass a
//! file descriptor nor bound a request, and its generated schema is a
//! large build for the dozen commands used here.
//!
//! Commands are types ([`Command`]) with typed replies:
//!
//! ```no_run
//! use std::time::Duration;
//! use mln_core::qemu::qmp::{QmpClient, QueryStatus};
//! let mut qmp = QmpClient::connect("alice", "/var/lib/mln/lab/qemu/alice/qmp".as_ref(), Duration::from_secs(5))?;
//! let status = qmp.execute(&QueryStatus)?;
//! println!("alice is {}", status.status);
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::io::{BufRead, BufReader, ErrorKind, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Longest line accepted from QEMU (replies used here are far shorter).
const MAX_LINE: u64 = 1 << 20;

/// A QMP command: its wire name, its arguments (the type's fields) and
/// the type of its reply.
pub trait Command: Serialize {
    /// The command's name on the wire (`query-status`).
    const NAME: &'static str;
    /// What the command returns.
    type Reply: DeserializeOwned;
}

/// A reply without content (`{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Empty {}

macro_rules! command {
    ($(#[$doc:meta])* $ty:ident = $name:literal -> $reply:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Serialize)]
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            type Reply = $reply;
        }
    };
}

command!(
    /// `query-status`: the VM's run state.
    QueryStatus = "query-status" -> StatusInfo
);
command!(
    /// `stop`: pause every vCPU.
    Stop = "stop" -> Empty
);
command!(
    /// `cont`: resume (or start a VM begun with `-S`).
    Cont = "cont" -> Empty
);
command!(
    /// `system_powerdown`: press the ACPI power button.
    SystemPowerdown = "system_powerdown" -> Empty
);
command!(
    /// `system_reset`: reset the machine, as its reset button would.
    SystemReset = "system_reset" -> Empty
);
command!(
    /// `quit`: end QEMU at once.
    Quit = "quit" -> Empty
);
command!(
    /// `query-balloon`: the memory the guest has now.
    QueryBalloon = "query-balloon" -> BalloonInfo
);
command!(
    /// `query-migrate`: how the current (or last) migration goes.
    QueryMigrate = "query-migrate" -> MigrationInfo
);

/// `balloon`: set the guest's memory target, bytes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Balloon {
    /// The target, bytes.
    pub value: u64,
}
impl Command for Balloon {
    const NAME: &'static str = "balloon";
    type Reply = Empty;
}

/// `getfd`: keep the file descriptor sent along with this command under
/// `fdname` (send it with [`QmpClient::execute_with_fd`]).
#[derive(Debug, Clone, Serialize)]
pub struct GetFd {
    /// The name later commands refer to it by (`fd:NAME`).
    pub fdname: String,
}
impl Command for GetFd {
    const NAME: &'static str = "getfd";
    type Reply = Empty;
}

/// `migrate`: send the VM's state to `uri` (here always `fd:NAME`).
#[derive(Debug, Clone, Serialize)]
pub struct Migrate {
    /// Where to (`fd:NAME` for a descriptor given with `getfd`).
    pub uri: String,
    /// Copy the disks in the stream too (QEMU's block migration), into
    /// disks the receiving QEMU already has.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub blk: bool,
    /// With `blk`: only what the top image holds, the receiver's backing
    /// file (the template) being the same.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inc: bool,
}
impl Command for Migrate {
    const NAME: &'static str = "migrate";
    type Reply = Empty;
}

/// `migrate-incoming`: load the VM's state from `uri` (QEMU started with
/// `-incoming defer`).
#[derive(Debug, Clone, Serialize)]
pub struct MigrateIncoming {
    /// Where from (`fd:NAME`).
    pub uri: String,
}
impl Command for MigrateIncoming {
    const NAME: &'static str = "migrate-incoming";
    type Reply = Empty;
}

/// `migrate-set-parameters` with the bandwidth limit, bytes per second.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SetMaxBandwidth {
    /// Bytes per second.
    #[serde(rename = "max-bandwidth")]
    pub max_bandwidth: u64,
}
impl Command for SetMaxBandwidth {
    const NAME: &'static str = "migrate-set-parameters";
    type Reply = Empty;
}

/// `set-action` with what a guest's reset request does: `reset` (reboot)
/// or `shutdown` (QEMU exits, as with `-no-reboot`).
#[derive(Debug, Clone, Serialize)]
pub struct SetRebootAction {
    /// `reset` or `shutdown`.
    pub reboot: &'static str,
}
impl Command for SetRebootAction {
    const NAME: &'static str = "set-action";
    type Reply = Empty;
}

/// What `query-status` returns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusInfo {
    /// QEMU's run state: `running`, `paused`, `prelaunch`, `inmigrate`,
    /// `postmigrate`, `shutdown`, `guest-panicked`, ...
    pub status: String,
    /// Whether the vCPUs run.
    pub running: bool,
}

/// What `query-balloon` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct BalloonInfo {
    /// The guest's memory now, bytes.
    pub actual: u64,
}

/// What `query-migrate` returns (the fields used here).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MigrationInfo {
    /// `none`, `setup`, `active`, `completed`, `failed`, `cancelled`, ...
    /// (absent before any migration).
    #[serde(default)]
    pub status: Option<String>,
    /// Why it failed, when it did.
    #[serde(default, rename = "error-desc")]
    pub error_desc: Option<String>,
    /// Once completed: how long the guest was stopped, milliseconds.
    #[serde(default)]
    pub downtime: Option<u64>,
    /// Once completed: how long the whole migration took, milliseconds.
    #[serde(default, rename = "total-time")]
    pub total_time: Option<u64>,
}

/// One QMP session with one guest's QEMU.
#[derive(Debug)]
pub struct QmpClient {
    domain: String,
    reader: BufReader<UnixStream>,
    timeout: Duration,
    next_id: u64,
}

impl QmpClient {
    /// Connect to the socket at `socket` of guest `domain` (named in
    /// errors), read the greeting and negotiate; every request may take
    /// at most `timeout`.
    pub fn connect(domain: &str, socket: &Path, timeout: Duration) -> Result<QmpClient> {
        let stream = UnixStream::connect(socket).map_err(|e| Error::Backend {
            what: domain.to_string(),
            message: format!("QMP socket {} does not answer: {e}", socket.display()),
        })?;
        let mut client = QmpClient {
            domain: domain.to_string(),
            reader: BufReader::new(stream),
            timeout,
            next_id: 0,
        };
        let deadline = Instant::now() + timeout;
        let greeting = client.read_message(deadline, "greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(client.protocol("greeting", format!("not a QMP greeting: {greeting}")));
        }
        client.call("qmp_capabilities", Value::Null, None)?;
        Ok(client)
    }

    /// Run `command` and return its typed reply.
    pub fn execute<C: Command>(&mut self, command: &C) -> Result<C::Reply> {
        self.execute_inner(command, None)
    }

    /// Run `command` with `fd` passed along (SCM_RIGHTS), as `getfd`
    /// needs; QEMU keeps its own copy, the caller keeps `fd`.
    pub fn execute_with_fd<C: Command>(
        &mut self,
        command: &C,
        fd: BorrowedFd<'_>,
    ) -> Result<C::Reply> {
        self.execute_inner(command, Some(fd))
    }

    fn execute_inner<C: Command>(
        &mut self,
        command: &C,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<C::Reply> {
        let arguments = serde_json::to_value(command)
            .map_err(|e| self.protocol(C::NAME, format!("arguments: {e}")))?;
        let reply = self.call(C::NAME, arguments, fd)?;
        serde_json::from_value(reply).map_err(|e| self.protocol(C::NAME, format!("reply: {e}")))
    }

    /// Send one command and return its `return` value.
    fn call(&mut self, name: &str, arguments: Value, fd: Option<BorrowedFd<'_>>) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = serde_json::json!({ "execute": name, "id": id });
        // Unit structs serialise to null, field-less structs to {}.
        if !arguments.is_null() && arguments != serde_json::json!({}) {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        let deadline = Instant::now() + self.timeout;
        self.send(name, &line, fd)?;
        loop {
            let message = self.read_message(deadline, name)?;
            if message.get("event").is_some() {
                continue;
            }
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(error) = message.get("error") {
                let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or("");
                return Err(Error::Qmp {
                    domain: self.domain.clone(),
                    command: name.to_string(),
                    message: format!("{}: {}", text("class"), text("desc")),
                });
            }
            return message.get("return").cloned().ok_or_else(|| {
                self.protocol(name, format!("neither return nor error: {message}"))
            });
        }
    }

    fn send(&mut self, name: &str, line: &[u8], fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let stream = self.reader.get_mut();
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| self.io(name, e))?;
        let stream = self.reader.get_ref();
        let sent = match fd {
            None => 0,
            Some(fd) => {
                let fds = [fd];
                let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                control.push(SendAncillaryMessage::ScmRights(&fds));
                rustix::net::sendmsg(
                    stream,
                    &[IoSlice::new(line)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )
                .map_err(|e| self.io(name, e.into()))?
            }
        };
        // The descriptor went with the first byte; the rest (if a short
        // write left any) follows as plain data.
        let mut stream = self.reader.get_ref();
        stream
            .write_all(&line[sent..])
            .map_err(|e| self.io(name, e))
    }

    /// The next JSON message, waiting at most until `deadline`.
    fn read_message(&mut self, deadline: Instant, what: &str) -> Result<Value> {
        let mut line = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| self.io(what, e))?;
            let mut limited = (&mut self.reader).take(MAX_LINE);
            match limited.read_line(&mut line) {
                Ok(0) => return Err(self.protocol(what, "QEMU closed the connection".to_string())),
                Ok(_) if line.ends_with('\n') => break,
                Ok(_) if line.len() as u64 >= MAX_LINE => {
                    return Err(self.protocol(what, "a line longer than 1 MiB".to_string()))
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.timed_out())
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(what, e)),
            }
        }
        serde_json::from_str(&line).map_err(|e| self.protocol(what, format!("{e}: {line}")))
    }

    fn timed_out(&self) -> Error {
        Error::Timeout {
            what: self.domain.clone(),
            op: "QMP request",
            after: self.timeout,
        }
    }

    fn protocol(&self, command: &str, message: String) -> Error {
        Error::Qmp {
            domain: self.domain.clone(),
            command: command.to_string(),
            message,
        }
    }

    fn io(&self, command: &str, e: std::io::Error) -> Error {
        self.protocol(command, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A stand-in QEMU: greets, answers `qmp_capabilities`, then answers
    /// each request with `reply(request)`, an event first.
    fn fake_qemu(
        listener: UnixListener,
        reply: impl Fn(&Value) -> Value + Send + 'static,
    ) -> std::thread::JoinHandle<Vec<Value>> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            writeln!(
                out,
                r#"{{"QMP": {{"version": {{}}, "capabilities": ["oob"]}}}}"#
            )
            .unwrap();
            let mut seen = Vec::new();
            for line in BufReader::new(stream).lines() {
                let request: Value = serde_json::from_str(&line.unwrap()).unwrap();
                let id = request["id"].clone();
                writeln!(out, r#"{{"event": "STOP", "timestamp": {{}}}}"#).unwrap();
                let mut answer = if request["execute"] == "qmp_capabilities" {
                    serde_json::json!({ "return": {} })
                } else {
                    reply(&request)
                };
                answer["id"] = id;
                writeln!(out, "{answer}").unwrap();
                seen.push(request);
            }
            seen
        })
    }

    #[test]
    fn typed_commands_and_replies_skip_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp");
        let server = fake_qemu(UnixListener::bind(&path).unwrap(), |r| {
            match r["execute"].as_str().unwrap() {
                "query-status" => {
                    serde_json::json!({ "return": { "status": "paused", "running": false, "singlestep": false } })
                }
                "balloon" => serde_json::json!({ "return": {} }),
                _ => {
                    serde_json::json!({ "error": { "class": "CommandNotFound", "desc": "no such command" } })
                }
            }
        });
        let mut qmp = QmpClient::connect("g", &path, Duration::from_secs(5)).unwrap();
        let status = qmp.execute(&QueryStatus).unwrap();
        assert_eq!((status.status.as_str(), status.running), ("paused", false));
        qmp.execute(&Balloon { value: 64 << 20 }).unwrap();
        match qmp.execute(&Quit) {
            Err(Error::Qmp {
                domain, message, ..
            }) => {
                assert_eq!(domain, "g");
                assert!(message.contains("no such command"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        drop(qmp);
        let seen = server.join().unwrap();
        assert_eq!(
            seen[0],
            serde_json::json!({ "execute": "qmp_capabilities", "id": 1 })
        );
        assert_eq!(
            seen[1].get("arguments"),
            None,
            "no arguments for a unit command"
        );
        assert_eq!(
            seen[2]["arguments"],
            serde_json::json!({ "value": 64 << 20 })
        );
    }

    #[test]
    fn a_silent_qemu_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp");
        let listener = UnixListener::bind(&path).unwrap();
        // Accepts, never greets.
        let holder = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
        });
        let started = Instant::now();
        let err = QmpClient::connect("g", &path, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(err);
        let _ = holder.join();
    }

    #[test]
    fn a_descriptor_travels_with_its_command() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut client = QmpClient {
            domain: "g".into(),
            reader: BufReader::new(ours),
            timeout: Duration::from_secs(5),
            next_id: 0,
        };
        let (probe_r, mut probe_w) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
            let mut buf = [0u8; 512];
            let got = rustix::net::recvmsg(
                &theirs,
                &mut [std::io::IoSliceMut::new(&mut buf)],
                &mut control,
                rustix::net::RecvFlags::empty(),
            )
            .unwrap();
            let request: Value = serde_json::from_slice(buf[..got.bytes].trim_ascii_end()).unwrap();
            let mut fds = Vec::new();
            for message in control.drain() {
                if let rustix::net::RecvAncillaryMessage::ScmRights(r) = message {
                    fds.extend(r);
                }
            }
            assert_eq!(fds.len(), 1);
            // What is written to the received descriptor reaches the probe.
            let mut passed = std::fs::File::from(fds.pop().unwrap());
            passed.write_all(b"through").unwrap();
            let mut out = &theirs;
            writeln!(out, r#"{{"return": {{}}, "id": {}}}"#, request["id"]).unwrap();
            request
        });
        client
            .execute_with_fd(&GetFd { fdname: "m".into() }, probe_w.as_fd())
            .unwrap();
        let request = server.join().unwrap();
        assert_eq!(request["execute"], "getfd");
        assert_eq!(request["arguments"]["fdname"], "m");
        probe_w.flush().unwrap();
        drop(probe_w);
        let mut got = String::new();
        (&probe_r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
    }
}
