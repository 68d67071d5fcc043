//! The managing side: one `ssh` child per server running `mln agent`
//! there, with several requests in flight at once.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::protocol::{Envelope, ErrorBody, Hello, Request, Response};

/// Why a server's agent cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The server name could not be passed to ssh safely.
    #[error("{server}: not usable as a server name: {reason}")]
    BadServer {
        /// The name.
        server: String,
        /// Why.
        reason: &'static str,
    },
    /// A word of `MLN_AGENT` would mean something else to the server's
    /// shell.
    #[error("{server}: agent command word {word:?} refused: {reason}")]
    BadAgentCommand {
        /// The server.
        server: String,
        /// The word.
        word: String,
        /// Why.
        reason: &'static str,
    },
    /// ssh could not be started, could not connect, or the agent never
    /// said hello.
    #[error("{server}: unreachable: {reason}")]
    Unreachable {
        /// The server.
        server: String,
        /// ssh's complaint, or what happened.
        reason: String,
    },
    /// The agent answered but cannot be used (another protocol).
    #[error("{server}: agent refused: {reason}")]
    Incompatible {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The connection ended while it was in use.
    #[error("{server}: connection lost: {reason}")]
    Lost {
        /// The server.
        server: String,
        /// ssh's or the agent's last words.
        reason: String,
    },
}

impl AgentError {
    /// The server concerned.
    pub fn server(&self) -> &str {
        match self {
            AgentError::BadServer { server, .. }
            | AgentError::BadAgentCommand { server, .. }
            | AgentError::Unreachable { server, .. }
            | AgentError::Incompatible { server, .. }
            | AgentError::Lost { server, .. } => server,
        }
    }
}

impl From<AgentError> for mln_core::Error {
    fn from(e: AgentError) -> Self {
        let server = e.server().to_string();
        let text = e.to_string();
        let message = text
            .strip_prefix(&format!("{server}: "))
            .unwrap_or(&text)
            .to_string();
        mln_core::Error::Backend {
            what: server,
            message,
        }
    }
}

/// How the managing machine reaches servers: from the environment by
/// [`ServerAccess::from_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAccess {
    /// The ssh program (`MLN_SSH`, default `ssh`).
    pub ssh: OsString,
    /// An ssh client configuration (`MLN_SSH_CONFIG`), passed as `-F`.
    pub ssh_config: Option<PathBuf>,
    /// The agent program on servers and words before `agent`
    /// (`MLN_AGENT`, split at whitespace; default `mln`).
    pub agent: Vec<String>,
    /// How long ssh may take to connect and the agent to say hello.
    pub connect_timeout: Duration,
}

impl Default for ServerAccess {
    fn default() -> Self {
        ServerAccess {
            ssh: "ssh".into(),
            ssh_config: None,
            agent: vec!["mln".to_string()],
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerAccess {
    /// `MLN_SSH`, `MLN_SSH_CONFIG` and `MLN_AGENT` over the defaults.
    pub fn from_env() -> Self {
        let mut a = ServerAccess::default();
        if let Some(ssh) = std::env::var_os("MLN_SSH").filter(|s| !s.is_empty()) {
            a.ssh = ssh;
        }
        a.ssh_config = std::env::var_os("MLN_SSH_CONFIG")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(agent) = std::env::var_os("MLN_AGENT") {
            let words: Vec<String> = agent
                .to_string_lossy()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !words.is_empty() {
                a.agent = words;
            }
        }
        a
    }

    /// The ssh command that runs the agent on `server`, as an argv:
    /// `ssh [-F CONFIG] -o BatchMode=yes -- SERVER AGENT... agent`. ssh
    /// hands the words after the server to the server's shell joined by
    /// spaces, so the server name and every agent word are checked to be
    /// plain words; everything else travels inside the JSON.
    pub fn command(&self, server: &str) -> Result<Command, AgentError> {
        let argv = self.argv(server, &[])?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        Ok(cmd)
    }

    /// The argv of [`ServerAccess::command`] with `extra` words after
    /// `agent` (e.g. `plug PROJECT SWITCH`), each checked like the agent
    /// words.
    pub fn argv(&self, server: &str, extra: &[&str]) -> Result<Vec<OsString>, AgentError> {
        self.argv_with(server, &[], extra)
    }

    /// The argv that attaches this terminal to the console of `host` (a
    /// `platform` guest of `project`) on `server`:
    /// `ssh -t ... agent console PROJECT PLATFORM HOST`, with a terminal
    /// on the server when `terminal` (this side has one), else `-T`.
    pub fn console_argv(
        &self,
        server: &str,
        project: &str,
        platform: &str,
        host: &str,
        terminal: bool,
    ) -> Result<Vec<OsString>, AgentError> {
        let tty = if terminal { "-t" } else { "-T" };
        self.argv_with(server, &[tty], &["console", project, platform, host])
    }

    fn argv_with(
        &self,
        server: &str,
        ssh_options: &[&str],
        extra: &[&str],
    ) -> Result<Vec<OsString>, AgentError> {
        check_server(server)?;
        let words = self
            .agent
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied());
        for word in words {
            check_word(word).map_err(|reason| AgentError::BadAgentCommand {
                server: server.to_string(),
                word: word.to_string(),
                reason,
            })?;
        }
        let mut argv = vec![self.ssh.clone()];
        if let Some(cfg) = &self.ssh_config {
            argv.push("-F".into());
            argv.push(cfg.clone().into_os_string());
        }
        argv.extend(ssh_options.iter().map(OsString::from));
        for w in ["-o", "BatchMode=yes", "--", server] {
            argv.push(w.into());
        }
        argv.extend(self.agent.iter().map(OsString::from));
        argv.push("agent".into());
        argv.extend(extra.iter().map(OsString::from));
        Ok(argv)
    }
}

/// A server name ssh and the server's shell both take as one plain word.
pub fn check_server(server: &str) -> Result<(), AgentError> {
    let bad = |reason| AgentError::BadServer {
        server: server.to_string(),
        reason,
    };
    if server.is_empty() {
        return Err(bad("it is empty"));
    }
    if server.starts_with('-') {
        return Err(bad("it starts with `-`, which ssh would take as an option"));
    }
    if !server
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only letters, digits, `.`, `_` and `-` are allowed"));
    }
    Ok(())
}

/// A word the server's shell takes as itself: no whitespace, quote, glob,
/// redirection, variable or command separator.
fn check_word(word: &str) -> Result<(), &'static str> {
    if word.is_empty() {
        return Err("it is empty");
    }
    if word.starts_with('-') {
        return Err("it starts with `-`");
    }
    let plain = word.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'_' | b'-' | b'/' | b'=' | b':' | b',' | b'+' | b'@'
            )
    });
    if !plain {
        return Err("only letters, digits and . _ - / = : , + @ are allowed (no shell metacharacters or whitespace)");
    }
    Ok(())
}

enum Answer {
    Value(Value),
    Error(ErrorBody),
    Dead(AgentError),
}

#[derive(Default)]
struct Pending {
    next: u64,
    waiting: HashMap<u64, Sender<Answer>>,
    dead: Option<AgentError>,
}

/// What ssh printed last on stderr (a few lines).
#[derive(Default)]
struct StderrTail(VecDeque<String>);

impl StderrTail {
    fn reason(&self, otherwise: &str) -> String {
        let lines: Vec<&str> = self
            .0
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        match lines.len() {
            0 => otherwise.to_string(),
            n => lines[n.saturating_sub(3)..].join("; "),
        }
    }
}

/// A connection to one server's agent: `AgentClient::connect("server-a",
/// &ServerAccess::from_env())`, then `client.call_as::<Capacity>(&Request::Capacity)`
/// and the like, from several threads at once.
pub struct AgentClient {
    server: String,
    hello: Hello,
    pending: Arc<Mutex<Pending>>,
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AgentClient {
    /// Start the agent on `server` over ssh and wait for its hello (at
    /// most `access.connect_timeout`).
    pub fn connect(server: &str, access: &ServerAccess) -> Result<AgentClient, AgentError> {
        let mut cmd = access.command(server)?;
        let unreachable = |reason: String| AgentError::Unreachable {
            server: server.to_string(),
            reason,
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                unreachable(format!("cannot run {}: {e}", access.ssh.to_string_lossy()))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(unreachable("ssh has no pipes".into()));
        };
        let tail = Arc::new(Mutex::new(StderrTail::default()));
        let stderr_thread = {
            let tail = tail.clone();
            let server = server.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    log::debug!("{server}: {line}");
                    let mut t = lock(&tail);
                    if t.0.len() >= 20 {
                        t.0.pop_front();
                    }
                    t.0.push_back(line);
                }
            })
        };
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (hello_tx, hello_rx) = channel::<Result<Hello, String>>();
        let reader = {
            let pending = pending.clone();
            let server = server.to_string();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let mut hello_tx = Some(hello_tx);
                let mut greeted = false;
                for line in lines.by_ref() {
                    let Ok(line) = line else { break };
                    if let Some(tx) = hello_tx.take() {
                        let hello = serde_json::from_str::<Hello>(&line).map_err(|_| {
                            format!("the first line from the agent is not its hello: {line:.200}")
                        });
                        greeted = hello.is_ok();
                        let _ = tx.send(hello);
                        if !greeted {
                            break;
                        }
                        continue;
                    }
                    let resp: Response = match serde_json::from_str(&line) {
                        Ok(r) => r,
                        Err(e) => {
                            log::warn!("{server}: unreadable answer ({e}): {line:.200}");
                            continue;
                        }
                    };
                    let tx = lock(&pending).waiting.remove(&resp.id);
                    let answer = match (resp.ok, resp.err) {
                        (_, Some(err)) => Answer::Error(err),
                        (Some(v), None) => Answer::Value(v),
                        (None, None) => Answer::Value(Value::Null),
                    };
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(answer);
                        }
                        None => log::warn!("{server}: answer to unknown request {}", resp.id),
                    }
                }
                // The channel ended: ssh and the agent are gone or going.
                let _ = stderr_thread.join();
                let why = lock(&tail).reason("the agent exited");
                let error = if greeted {
                    AgentError::Lost {
                        server: server.clone(),
                        reason: why,
                    }
                } else {
                    AgentError::Unreachable {
                        server: server.clone(),
                        reason: why,
                    }
                };
                let mut p = lock(&pending);
                p.dead = Some(error.clone());
                for (_, tx) in p.waiting.drain() {
                    let _ = tx.send(Answer::Dead(error.clone()));
                }
                drop(p);
                drop(hello_tx);
            })
        };
        let client = |hello| AgentClient {
            server: server.to_string(),
            hello,
            pending: pending.clone(),
            stdin: Mutex::new(Some(stdin)),
            child: Mutex::new(child),
            reader: Mutex::new(Some(reader)),
        };
        match hello_rx.recv_timeout(access.connect_timeout) {
            Ok(Ok(hello)) => {
                let c = client(hello);
                if let Err(reason) = c.hello.check() {
                    return Err(AgentError::Incompatible {
                        server: server.to_string(),
                        reason,
                    });
                }
                log::info!(
                    "{server}: agent mln {} on {}",
                    c.hello.version,
                    c.hello.hostname
                );
                Ok(c)
            }
            Ok(Err(reason)) => {
                drop(client(Hello::new("", Vec::new())));
                Err(AgentError::Incompatible {
                    server: server.to_string(),
                    reason,
                })
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let c = client(Hello::new("", Vec::new()));
                let _ = lock(&c.child).kill();
                drop(c);
                Err(unreachable(format!(
                    "no answer within {:?}",
                    access.connect_timeout
                )))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let c = client(Hello::new("", Vec::new()));
                let error = lock(&pending).dead.clone();
                drop(c);
                Err(error.unwrap_or_else(|| unreachable("the agent exited".into())))
            }
        }
    }

    /// What the agent said first.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Send `req` and wait for its answer (other requests may be in flight
    /// from other threads meanwhile). A connection that ended fails this
    /// and every later request with the reason.
    pub fn call(&self, req: &Request) -> mln_core::Result<Value> {
        let (tx, rx) = channel();
        let id = {
            let mut p = lock(&self.pending);
            if let Some(e) = &p.dead {
                return Err(e.clone().into());
            }
            p.next += 1;
            let id = p.next;
            p.waiting.insert(id, tx);
            id
        };
        let line = serde_json::to_string(&Envelope {
            id,
            req: req.clone(),
        })
        .map_err(|e| mln_core::Error::Backend {
            what: self.server.clone(),
            message: format!("cannot encode request: {e}"),
        })?;
        let written = match lock(&self.stdin).as_mut() {
            Some(w) => w
                .write_all(line.as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .and_then(|()| w.flush()),
            None => Err(std::io::Error::other("closed")),
        };
        if let Err(e) = written {
            lock(&self.pending).waiting.remove(&id);
            let dead = lock(&self.pending).dead.clone();
            return Err(dead
                .unwrap_or_else(|| AgentError::Lost {
                    server: self.server.clone(),
                    reason: format!("cannot send: {e}"),
                })
                .into());
        }
        match rx.recv() {
            Ok(Answer::Value(v)) => Ok(v),
            Ok(Answer::Error(e)) => Err(e.into_core(&self.server)),
            Ok(Answer::Dead(e)) => Err(e.into()),
            Err(_) => Err(AgentError::Lost {
                server: self.server.clone(),
                reason: "the reader stopped".into(),
            }
            .into()),
        }
    }

    /// [`AgentClient::call`] with the answer decoded as `T`.
    pub fn call_as<T: DeserializeOwned>(&self, req: &Request) -> mln_core::Result<T> {
        let v = self.call(req)?;
        serde_json::from_value(v).map_err(|e| mln_core::Error::Backend {
            what: self.server.clone(),
            message: format!("unexpected answer: {e}"),
        })
    }
}

impl Drop for AgentClient {
    /// Close the agent's stdin (it finishes what it is doing and exits),
    /// give it a moment, then kill ssh.
    fn drop(&mut self) {
        drop(lock(&self.stdin).take());
        let mut child = lock(&self.child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        drop(child);
        if let Some(r) = lock(&self.reader).take() {
            let _ = r.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_and_agent_words_must_be_plain() {
        assert!(check_server("server-b.example_1").is_ok());
        for bad in ["", "-oProxyCommand=x", "a b", "a;b", "a$(x)", "a\nb", "ä"] {
            assert!(check_server(bad).is_err(), "{bad:?}");
        }
        let mut a = ServerAccess {
            agent: vec!["/opt/mln/bin/mln".into()],
            ..ServerAccess::default()
        };
        assert!(a.command("server-a").is_ok());
        for bad in [
            "mln;rm", "$(x)", "a b", "`x`", "'x'", "a|b", "a>b", "~x", "*",
        ] {
            a.agent = vec![bad.into()];
            assert!(
                matches!(a.command("s"), Err(AgentError::BadAgentCommand { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_command_is_an_argv_with_options_before_the_server() {
        let a = ServerAccess {
            ssh: "ssh".into(),
            ssh_config: Some("/tmp/cfg".into()),
            agent: vec!["env".into(), "/usr/bin/mln".into()],
            connect_timeout: Duration::from_secs(1),
        };
        let cmd = a.command("server-b").unwrap();
        let args: Vec<_> = cmd
            .get_args()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-F",
                "/tmp/cfg",
                "-o",
                "BatchMode=yes",
                "--",
                "server-b",
                "env",
                "/usr/bin/mln",
                "agent"
            ]
        );
    }

    #[test]
    fn an_ssh_that_fails_makes_an_unreachable_error_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ssh");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'ssh: connect to host 10.0.0.2 port 22: Connection refused' >&2\nexit 255\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let a = ServerAccess {
            ssh: fake.into_os_string(),
            ..ServerAccess::default()
        };
        let e = AgentClient::connect("server-b", &a).err().unwrap();
        assert_eq!(
            e.to_string(),
            "server-b: unreachable: ssh: connect to host 10.0.0.2 port 22: Connection refused"
        );
        let core: mln_core::Error = e.into();
        assert_eq!(
            core.to_string(),
            "server-b: unreachable: ssh: connect to host 10.0.0.2 port 22: Connection refused"
        );
    }

    fn fake_ssh(dir: &std::path::Path, body: &str) -> OsString {
        use std::os::unix::fs::PermissionsExt;
        let fake = dir.join("ssh");
        std::fs::write(&fake, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        fake.into_os_string()
    }

    #[test]
    fn a_silent_server_times_out_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServerAccess {
            ssh: fake_ssh(dir.path(), "exec sleep 30"),
            connect_timeout: Duration::from_millis(300),
            ..ServerAccess::default()
        };
        let t = Instant::now();
        let e = AgentClient::connect("server-c", &a).err().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(matches!(e, AgentError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("no answer within"), "{e}");
    }

    #[test]
    fn a_connection_that_dies_fails_pending_and_later_requests() {
        let dir = tempfile::tempdir().unwrap();
        // Says hello, takes one request, and dies without answering.
        let hello = serde_json::to_string(&Hello::new("fake", Vec::new())).unwrap();
        let body = format!("echo '{hello}'\nread line\necho 'agent: out of memory' >&2\nexit 1");
        let a = ServerAccess {
            ssh: fake_ssh(dir.path(), &body),
            ..ServerAccess::default()
        };
        let c = AgentClient::connect("server-d", &a).unwrap();
        let e = c.call(&Request::Capacity).unwrap_err();
        assert_eq!(
            e.to_string(),
            "server-d: connection lost: agent: out of memory"
        );
        let e = c.call(&Request::Projects).unwrap_err();
        assert_eq!(
            e.to_string(),
            "server-d: connection lost: agent: out of memory"
        );
    }
}
