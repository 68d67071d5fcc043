//! Test servers on one machine: a network namespace per server, joined by
//! a bridge, each running its own `sshd` on its own address, reached with a
//! generated key and host keys checked (see [`TestServers`]).

mod netns;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netns::{ip, Instance, MachineLock};

/// How long a new `sshd` has to accept its first connection.
const SSHD_READY: Duration = Duration::from_secs(10);

/// Why the test servers cannot be made here (not root, a tool missing, no
/// right to make network namespaces). A test prints it and returns:
///
/// ```no_run
/// let servers = match testkit::TestServers::start(&["server-a"]) {
///     Ok(s) => s,
///     Err(skip) => return eprintln!("SKIPPED: {skip}"),
/// };
/// # drop(servers);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    reason: String,
}

impl Skip {
    fn new(reason: impl Into<String>) -> Skip {
        Skip {
            reason: reason.into(),
        }
    }

    /// Why, in one line.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Skip {}

/// The programs the servers are made with, found once.
#[derive(Debug)]
struct Tools {
    ip: PathBuf,
    sshd: PathBuf,
    ssh: PathBuf,
    ssh_keygen: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools, Skip> {
        let find = |name: &str, package: &str| {
            find_program(name).ok_or_else(|| {
                Skip::new(format!(
                    "`{name}` not found (apt-get install {package}); test servers need it"
                ))
            })
        };
        Ok(Tools {
            ip: find("ip", "iproute2")?,
            sshd: find("sshd", "openssh-server")?,
            ssh: find("ssh", "openssh-client")?,
            ssh_keygen: find("ssh-keygen", "openssh-client")?,
        })
    }
}

/// `name` on `PATH`, or in the sbin folders a non-login root `PATH` can
/// lack (`sshd` must be run by its absolute path anyway).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// One server: its namespace, address, files and `sshd`.
#[derive(Debug)]
struct Server {
    name: String,
    namespace: String,
    address: Ipv4Addr,
    dir: PathBuf,
    sshd: Option<Child>,
}

impl Server {
    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn sshd_config(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    fn sshd_log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }
}

/// Servers for multi-server tests, made on this machine and removed on
/// drop (a panicking test included).
///
/// In a fresh folder (`$TMPDIR/mlntPPPPPPNN`, a prefix unique to the test
/// process and run, which every namespace and link name starts with too):
///
/// - a network namespace per server (`ip netns add PREFIX-NAME`), with
///   loopback up and `eth0` at `10.213.X.2`, `.3`, ... on a `/24` that
///   nothing on this machine uses; all `eth0`s are ports of one bridge in
///   a switch namespace (`PREFIX`), which the root namespace, the managing
///   side, reaches through its own veth at `10.213.X.1`;
/// - per server, `sshd` run in its namespace with its own host key,
///   listening on its own address, accepting root with the generated
///   client key only, and setting `MLN_STATE_DIR` (the server's own state
///   folder: all servers share one file system) and `MLN_SSH_CONFIG` (so
///   one server reaches the others) in every session;
/// - an ssh client configuration ([`TestServers::ssh_config`]) with a
///   `Host` entry per server name, host keys pre-filled in its known_hosts
///   and strict host key checking on.
///
/// Runs of a test process killed before its teardown are removed by the
/// next [`TestServers::start`] on the machine.
///
/// ```no_run
/// use std::process::Command;
/// let servers = match testkit::TestServers::start(&["server-a", "server-b"]) {
///     Ok(s) => s,
///     Err(skip) => return eprintln!("SKIPPED: {skip}"),
/// };
/// let ok = Command::new("ssh")
///     .arg("-F")
///     .arg(servers.ssh_config())
///     .args(["server-a", "true"])
///     .status()
///     .unwrap();
/// assert!(ok.success());
/// let mut mln = Command::new("mln");
/// mln.envs(servers.env()); // MLN_SSH_CONFIG
/// # drop(mln);
/// ```
#[derive(Debug)]
pub struct TestServers {
    tools: Tools,
    instance: Instance,
    dir: PathBuf,
    ssh_config: PathBuf,
    servers: Vec<Server>,
}

impl TestServers {
    /// Makes servers `names` and waits until each `sshd` accepts
    /// connections. [`Skip`] when this machine cannot (not root, `ip`,
    /// `sshd`, `ssh` or `ssh-keygen` missing, no right to make network
    /// namespaces); panics when making them fails otherwise, after
    /// removing what was made.
    ///
    /// Names are host names (letters, digits, `-`, `.`, `_`), distinct, at
    /// most 250 of them.
    pub fn start(names: &[&str]) -> Result<TestServers, Skip> {
        TestServers::start_with_env(names, &[])
    }

    /// [`TestServers::start`], each `sshd` also setting `env` (name,
    /// value) in its sessions, e.g. `MLN_AGENT` for a server that starts
    /// `mln agent` on another.
    pub fn start_with_env(names: &[&str], env: &[(&str, &OsStr)]) -> Result<TestServers, Skip> {
        check_names(names);
        let tools = Tools::find()?;
        if !rustix::process::geteuid().is_root() {
            return Err(Skip::new(
                "test servers need root (network namespaces, sshd); run as root",
            ));
        }
        let instance = Instance::claim().expect("256 test server runs at once in this process");
        let dir = netns::run_dir(&instance.prefix);
        let mut servers = TestServers {
            tools,
            instance,
            ssh_config: dir.join("ssh_config"),
            dir,
            servers: Vec::new(),
        };
        let subnet = servers.make_switch()?;
        servers.make_servers(names, subnet, env);
        for server in &mut servers.servers {
            let sshd = spawn_sshd(&servers.tools, server);
            server.sshd = Some(sshd);
        }
        for i in 0..servers.servers.len() {
            servers.wait_for_sshd(i);
        }
        Ok(servers)
    }

    /// Clears stale runs, claims a subnet and makes the switch namespace
    /// with the root namespace's veth into it: its subnet's X. Under the
    /// machine lock, so that parallel runs never pick the same subnet.
    fn make_switch(&mut self) -> Result<u8, Skip> {
        let ip_path = self.tools.ip.clone();
        let prefix = self.instance.prefix.clone();
        let _lock = MachineLock::take().map_err(Skip::new)?;
        netns::clear_stale(&ip_path);
        ip(&ip_path, &["netns", "add", &prefix])
            .map_err(|e| Skip::new(format!("cannot make network namespaces here: {e}")))?;
        let start = (std::process::id() as u8).wrapping_add(self.instance.number);
        let x = netns::free_subnet(&ip_path, start)
            .unwrap_or_else(|| panic!("every 10.213.X.0/24 is in use on this machine"));
        let root = format!("{}/24", netns::subnet_address(x, 1));
        let p = prefix.as_str();
        let steps: [&[&str]; 7] = [
            &["-n", p, "link", "set", "lo", "up"],
            &["-n", p, "link", "add", "br0", "type", "bridge"],
            &["-n", p, "link", "set", "br0", "up"],
            &[
                "link", "add", p, "type", "veth", "peer", "name", "root", "netns", p,
            ],
            &["-n", p, "link", "set", "root", "master", "br0", "up"],
            &["addr", "add", &root, "dev", p],
            &["link", "set", p, "up"],
        ];
        for args in steps {
            must(ip(&ip_path, args), "make the switch namespace");
        }
        Ok(x)
    }

    /// The folder, the client key, and per server its namespace, veth,
    /// host key and sshd configuration; then the client's configuration.
    fn make_servers(&mut self, names: &[&str], x: u8, env: &[(&str, &OsStr)]) {
        must(
            fs::DirBuilder::new().mode(0o700).create(&self.dir),
            "make the test servers' folder",
        );
        // sshd refuses to start without its privilege separation folder,
        // which only its init script or unit makes.
        if !Path::new("/run/sshd").is_dir() {
            must(
                fs::DirBuilder::new().mode(0o755).create("/run/sshd"),
                "make /run/sshd",
            );
        }
        let key = self.dir.join("client_key");
        keygen(&self.tools, &key);
        must(
            fs::copy(key.with_extension("pub"), self.authorized_keys()),
            "write authorized_keys",
        );
        let mut known_hosts = String::new();
        let mut client = String::new();
        for (i, name) in names.iter().enumerate() {
            let server = Server {
                name: name.to_string(),
                namespace: format!("{}-{name}", self.instance.prefix),
                address: netns::subnet_address(x, i as u8 + 2),
                dir: self.dir.join(name),
                sshd: None,
            };
            self.make_namespace(&server, i);
            must(
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(server.state_dir()),
                "make a server's state folder",
            );
            let host_key = server.dir.join("ssh_host_ed25519_key");
            keygen(&self.tools, &host_key);
            let public = must(
                fs::read_to_string(host_key.with_extension("pub")),
                "read a host key",
            );
            known_hosts.push_str(&format!("{name},{} {public}", server.address));
            must(
                fs::write(server.sshd_config(), self.sshd_config(&server, env)),
                "write sshd_config",
            );
            client.push_str(&self.client_entry(&server, &key));
            self.servers.push(server);
        }
        must(
            fs::write(self.known_hosts(), known_hosts),
            "write known_hosts",
        );
        must(fs::write(&self.ssh_config, client), "write ssh_config");
    }

    /// Server `i`'s namespace, joined to the bridge by a veth pair.
    fn make_namespace(&self, server: &Server, i: usize) {
        let sw = &self.instance.prefix;
        let ns = &server.namespace;
        let port = format!("s{i}");
        let address = format!("{}/24", server.address);
        let steps: [&[&str]; 6] = [
            &["netns", "add", ns],
            &["-n", ns, "link", "set", "lo", "up"],
            &[
                "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
            &["-n", ns, "addr", "add", &address, "dev", "eth0"],
            &["-n", ns, "link", "set", "eth0", "up"],
            &["-n", sw, "link", "set", &port, "master", "br0", "up"],
        ];
        for args in steps {
            must(ip(&self.tools.ip, args), "make a server's namespace");
        }
    }

    fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    fn sshd_config(&self, server: &Server, env: &[(&str, &OsStr)]) -> String {
        let mut set_env = vec![
            ("MLN_STATE_DIR", server.state_dir().into_os_string()),
            ("MLN_SSH_CONFIG", self.ssh_config.clone().into_os_string()),
        ];
        set_env.extend(env.iter().map(|(k, v)| (*k, v.to_os_string())));
        let set_env: Vec<String> = set_env
            .iter()
            .map(|(k, v)| {
                assert!(
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "bad environment variable name {k:?}"
                );
                format!("{k}={}", quoted(v))
            })
            .collect();
        format!(
            "# sshd of test server {name}\n\
             ListenAddress {address}\n\
             Port 22\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {keys}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             # The folder is under /tmp, which is writable by all.\n\
             StrictModes no\n\
             UseDNS no\n\
             PrintMotd no\n\
             # Agents, plugs and status queries can connect at once.\n\
             MaxStartups 100\n\
             LogLevel VERBOSE\n\
             SetEnv {set_env}\n",
            name = server.name,
            address = server.address,
            host_key = quoted(server.dir.join("ssh_host_ed25519_key").as_os_str()),
            pid = quoted(server.dir.join("sshd.pid").as_os_str()),
            keys = quoted(self.authorized_keys().as_os_str()),
            set_env = set_env.join(" "),
        )
    }

    fn client_entry(&self, server: &Server, key: &Path) -> String {
        format!(
            "Host {name}\n    \
             HostName {address}\n    \
             User root\n    \
             IdentityFile {key}\n    \
             IdentitiesOnly yes\n    \
             UserKnownHostsFile {known}\n    \
             GlobalKnownHostsFile /dev/null\n    \
             StrictHostKeyChecking yes\n    \
             BatchMode yes\n    \
             ConnectTimeout 5\n\n",
            name = server.name,
            address = server.address,
            key = quoted(key.as_os_str()),
            known = quoted(self.known_hosts().as_os_str()),
        )
    }

    fn server(&self, name: &str) -> &Server {
        &self.servers[self.index(name)]
    }

    fn names(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.name.as_str()).collect()
    }

    /// The ssh client configuration: a `Host` entry per server name (give
    /// it to `ssh -F`).
    pub fn ssh_config(&self) -> &Path {
        &self.ssh_config
    }

    /// The environment a test sets for `mln`: `MLN_SSH_CONFIG`, the
    /// [`TestServers::ssh_config`] the `mln` client passes to `ssh -F`.
    pub fn env(&self) -> Vec<(String, OsString)> {
        vec![(
            "MLN_SSH_CONFIG".to_string(),
            self.ssh_config.clone().into_os_string(),
        )]
    }

    /// The folder all of this run's files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the name of every namespace and root-namespace link of this
    /// run starts with (and its folder's name is).
    pub fn prefix(&self) -> &str {
        &self.instance.prefix
    }

    /// Server `name`'s address on the servers' network.
    ///
    /// # Panics
    /// When there is no such server (as do the other accessors).
    pub fn address(&self, name: &str) -> Ipv4Addr {
        self.server(name).address
    }

    /// Server `name`'s `MLN_STATE_DIR`, set in each of its ssh sessions.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.server(name).state_dir()
    }

    /// Server `name`'s network namespace, for `ip netns exec`.
    pub fn namespace(&self, name: &str) -> &str {
        &self.server(name).namespace
    }

    /// The pid of server `name`'s listening `sshd`, while it runs.
    pub fn sshd_pid(&self, name: &str) -> Option<u32> {
        self.server(name).sshd.as_ref().map(Child::id)
    }

    /// Stops server `name`'s listening `sshd`: new connections are
    /// refused at once, as by a server whose sshd is down. Sessions already
    /// open (and what they started) go on. Does nothing when stopped.
    pub fn stop_sshd(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(child) = self.servers[i].sshd.take() {
            stop_child(child);
        }
    }

    /// Starts server `name`'s `sshd` again and waits until it accepts
    /// connections. Does nothing when it runs.
    pub fn start_sshd(&mut self, name: &str) {
        let i = self.index(name);
        if self.servers[i].sshd.is_none() {
            let child = spawn_sshd(&self.tools, &self.servers[i]);
            self.servers[i].sshd = Some(child);
            self.wait_for_sshd(i);
        }
    }

    fn index(&self, name: &str) -> usize {
        self.servers
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no test server {name}; there are {:?}", self.names()))
    }

    /// Polls `ssh SERVER true` until it succeeds; panics with the sshd log
    /// when sshd exits or does not answer within [`SSHD_READY`].
    fn wait_for_sshd(&mut self, i: usize) {
        let deadline = Instant::now() + SSHD_READY;
        let config = self.ssh_config.clone();
        loop {
            let out = Command::new(&self.tools.ssh)
                .arg("-F")
                .arg(&config)
                .args([self.servers[i].name.as_str(), "true"])
                .stdin(Stdio::null())
                .output();
            if out.as_ref().is_ok_and(|o| o.status.success()) {
                return;
            }
            let server = &mut self.servers[i];
            let exited = server
                .sshd
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let said = out
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_else(|e| e.to_string());
                panic!(
                    "sshd of test server {} {}; ssh said: {said}\nsshd log:\n{}",
                    server.name,
                    match exited {
                        Some(status) => format!("exited ({status})"),
                        None => format!("did not answer within {SSHD_READY:?}"),
                    },
                    fs::read_to_string(server.sshd_log()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServers {
    fn drop(&mut self) {
        for server in &mut self.servers {
            if let Some(mut child) = server.sshd.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        netns::teardown(&self.tools.ip, &self.instance.prefix);
    }
}

/// `ip netns exec NS sshd -D -f CONFIG -E LOG`, its early complaints (before
/// `-E` applies) in the log too.
fn spawn_sshd(tools: &Tools, server: &Server) -> Child {
    let log = must(
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(server.sshd_log()),
        "open the sshd log",
    );
    must(
        Command::new(&tools.ip)
            .args(["netns", "exec", &server.namespace])
            .arg(&tools.sshd)
            .arg("-D")
            .arg("-f")
            .arg(server.sshd_config())
            .arg("-E")
            .arg(server.sshd_log())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn(),
        "run sshd",
    )
}

/// SIGTERM (sshd removes its pid file), SIGKILL after 5 s; reaped.
fn stop_child(mut child: Child) {
    netns::signal(child.id(), rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A new ed25519 key pair without passphrase: `path` and `path.pub`.
fn keygen(tools: &Tools, path: &Path) {
    let out = must(
        Command::new(&tools.ssh_keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "mln-testkit", "-f"])
            .arg(path)
            .stdin(Stdio::null())
            .output(),
        "run ssh-keygen",
    );
    assert!(
        out.status.success(),
        "ssh-keygen {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `"value"` for ssh and sshd configuration files, which split on blanks
/// and take quotes; panics on what they cannot hold (a quote, `%`, a
/// control character), as a path under an odd `TMPDIR` could.
fn quoted(value: &OsStr) -> String {
    let text = value
        .to_str()
        .unwrap_or_else(|| panic!("not UTF-8: {value:?}"));
    assert!(
        !text.contains(['"', '%']) && !text.chars().any(char::is_control),
        "cannot write {text:?} in an ssh configuration file"
    );
    format!("\"{text}\"")
}

fn must<T, E: fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("test servers: cannot {what}: {e}"))
}

/// Server names become namespace names, folder names and ssh `Host`
/// patterns: host names only.
fn check_names(names: &[&str]) {
    assert!(
        names.len() <= 250,
        "at most 250 test servers (one /24), not {}",
        names.len()
    );
    for (i, name) in names.iter().enumerate() {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            && !name.starts_with(['-', '.']);
        assert!(
            ok,
            "test server name {name:?}: letters, digits, '-', '.', '_' only"
        );
        assert!(!names[..i].contains(name), "test server {name} named twice");
    }
}
