//! `mln forward PROJECT/HOST --port N [--to PORT]`: a port of this machine
//! that leads to a guest's port (its sshd, by default), for people who are
//! not on the server, such as students logging into their own copy of a
//! lab from their laptops.
//!
//! The listening socket is made here, in this machine's network; the
//! connections to the guest are made from a network namespace of the
//! guest's switch ([`crate::switch_entry`]): this program runs itself
//! again in there as `forward-inside`, the listener as its stdin, and
//! each accepted connection is joined to one it opens to the guest. It
//! runs until stopped (Ctrl-C, or its service manager), its namespace
//! going with it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mln_core::uml::{Liveness, ProcessRecord};
use serde::{Deserialize, Serialize};

use crate::cli::{ForwardArgs, ForwardInsideArgs};
use crate::lifecycle::fail;
use crate::switch_entry::{enter, HostEntry};

/// How long a connection to the guest may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a background forward may take to listen.
const STARTUP: Duration = Duration::from_secs(10);

/// `mln forward`.
pub fn forward(args: &ForwardArgs) -> u8 {
    if args.stop {
        let Some(project) = &args.project else {
            return fail("--stop needs -p PROJECT");
        };
        return match stop(args.state_dir.as_deref(), project, args.port) {
            Ok(0) if args.port.is_some() => {
                fail(format!("project {project}: no forward on that port"))
            }
            Ok(n) => {
                println!("{project}: {n} forward(s) ended");
                0
            }
            Err(e) => fail(e),
        };
    }
    let (Some(target), Some(port)) = (&args.target, args.port) else {
        return fail("give PROJECT/HOST and --port");
    };
    let host = match HostEntry::find(args.state_dir.as_deref(), args.project.as_deref(), target) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let listen = SocketAddr::new(args.listen, port);
    let to = SocketAddr::new(host.guest.into(), args.to);
    if args.background {
        // The forward started below takes its own address on the switch.
        let project_dir = host.project_dir.clone();
        drop(host);
        return background(args, &project_dir, listen, to);
    }
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => return fail(format!("listen on {listen}: {e}")),
    };
    eprintln!("{listen} → {target} {to} (Ctrl-C ends it)");
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("this program: {e}")),
    };
    let inner = [
        exe.into_os_string(),
        "forward-inside".into(),
        "--to".into(),
        to.to_string().into(),
    ];
    enter(
        &host.entry,
        &inner,
        Stdio::from(std::os::fd::OwnedFd::from(listener)),
    )
}

/// Where a project's background forwards are recorded: `PORT.pid` (pid
/// and start time), `PORT.json` (where it leads, [`Leads`]) and
/// `PORT.log` (what it said).
fn forwards_dir(project_dir: &Path) -> PathBuf {
    project_dir.join("forwards")
}

/// Where a background forward leads, recorded when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Leads {
    /// The address it listens on, on this machine.
    pub(crate) listen: SocketAddr,
    /// The host, as given (`PROJECT/HOST` or `HOST`).
    pub(crate) host: String,
    /// The guest's address and port it leads to.
    pub(crate) to: SocketAddr,
}

/// A project's background forward as `mln status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ForwardStatus {
    /// Where it leads.
    #[serde(flatten)]
    pub(crate) leads: Leads,
    /// `running`, or `ended` (its process is gone: `mln forward --stop`
    /// clears the record, `--background` starts it again).
    pub(crate) state: &'static str,
}

/// The background forwards recorded in the project folder `project_dir`,
/// by port.
pub(crate) fn list_in(project_dir: &Path) -> Vec<ForwardStatus> {
    let Ok(entries) = std::fs::read_dir(forwards_dir(project_dir)) else {
        return Vec::new();
    };
    let mut all: Vec<ForwardStatus> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let leads: Leads = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            let alive = ProcessRecord::read(&p.with_extension("pid"))
                .ok()
                .flatten()
                .is_some_and(|proc| proc.liveness() == Liveness::Alive);
            Some(ForwardStatus {
                leads,
                state: if alive { "running" } else { "ended" },
            })
        })
        .collect();
    all.sort_by_key(|f| f.leads.listen.port());
    all
}

/// The record of the project's background forward on `port`.
pub(crate) fn record_path(project_dir: &Path, port: u16) -> PathBuf {
    forwards_dir(project_dir).join(format!("{port}.pid"))
}

/// Start this same forward again as a process of its own group, recorded
/// in the project's folder, and return once it listens (or say why it
/// does not).
fn background(args: &ForwardArgs, project_dir: &Path, listen: SocketAddr, to: SocketAddr) -> u8 {
    let dir = forwards_dir(project_dir);
    let port = listen.port();
    let record = record_path(project_dir, port);
    if let Ok(Some(old)) = ProcessRecord::read(&record) {
        if old.liveness() == Liveness::Alive {
            return fail(format!(
                "a forward of this project already runs on port {port}"
            ));
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("{}: {e}", dir.display()));
    }
    let log_path = dir.join(format!("{port}.log"));
    let (log, log2) = match std::fs::File::create(&log_path).and_then(|f| Ok((f.try_clone()?, f))) {
        Ok(l) => l,
        Err(e) => return fail(format!("{}: {e}", log_path.display())),
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("this program: {e}")),
    };
    let mut cmd = Command::new(exe);
    cmd.arg("forward");
    if let Some(target) = &args.target {
        cmd.arg(target);
    }
    if let Some(project) = &args.project {
        cmd.args(["-p", project]);
    }
    cmd.args(["--port", &port.to_string(), "--to", &to.port().to_string()])
        .args(["--listen", &listen.ip().to_string()]);
    if let Some(state) = &args.state_dir {
        cmd.arg("--state-dir").arg(state);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return fail(format!("start the forward: {e}")),
    };
    let Some(proc) = ProcessRecord::of(child.id()) else {
        return fail("the forward ended at once");
    };
    let leads = Leads {
        listen,
        host: args.target.clone().unwrap_or_default(),
        to,
    };
    let written = proc
        .write(&record)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let json = serde_json::to_vec(&leads).map_err(|e| e.to_string())?;
            let path = record.with_extension("json");
            std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))
        });
    if let Err(e) = written {
        proc.signal_group(libc::SIGTERM);
        let _ = std::fs::remove_file(&record);
        return fail(e);
    }
    // Listening once a connection is taken (by the listener's queue).
    let probe = match listen.ip().is_unspecified() {
        true => SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), port),
        false => listen,
    };
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = std::fs::remove_file(&record);
            let _ = std::fs::remove_file(record.with_extension("json"));
            return fail(format!("the forward on port {port} ended: {}", said.trim()));
        }
        if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
            println!(
                "{listen} → {} {to}, in the background (`mln forward --stop -p PROJECT` ends it)",
                args.target.as_deref().unwrap_or_default()
            );
            return 0;
        }
        if Instant::now() >= deadline {
            proc.signal_group(libc::SIGTERM);
            let _ = std::fs::remove_file(&record);
            let _ = std::fs::remove_file(record.with_extension("json"));
            return fail(format!(
                "the forward on port {port} did not listen within {STARTUP:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// End the background forwards of `project` (only the one on `port` if
/// given); how many were ended.
pub(crate) fn stop(
    state_dir: Option<&Path>,
    project: &str,
    port: Option<u16>,
) -> Result<usize, String> {
    let places = crate::lifecycle::Places::new(state_dir, None)?;
    stop_in(&places.state_root.join(project), port)
}

/// [`stop`] for the project whose folder is `project_dir`.
pub(crate) fn stop_in(project_dir: &Path, port: Option<u16>) -> Result<usize, String> {
    let dir = forwards_dir(project_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut ended = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(this) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
            .and_then(|n| n.parse::<u16>().ok())
        else {
            continue;
        };
        if port.is_some_and(|p| p != this) {
            continue;
        }
        if let Some(proc) = ProcessRecord::read(&path).map_err(|e| e.to_string())? {
            if proc.liveness() == Liveness::Alive {
                proc.signal_group(libc::SIGTERM);
                if !proc.wait_exit(Duration::from_secs(5)) {
                    proc.signal_group(libc::SIGKILL);
                }
                ended += 1;
            }
        }
        for file in [
            path.clone(),
            path.with_extension("log"),
            path.with_extension("json"),
        ] {
            if let Err(e) = std::fs::remove_file(&file) {
                if e.kind() != ErrorKind::NotFound {
                    return Err(format!("{}: {e}", file.display()));
                }
            }
        }
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(ended)
}

/// `mln forward-inside`: serve the listener on stdin until it fails.
pub fn inside(args: &ForwardInsideArgs) -> u8 {
    crate::switch_entry::end_with_parent();
    let listener = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => TcpListener::from(fd),
        Err(e) => return fail(format!("the listener on stdin: {e}")),
    };
    loop {
        match listener.accept() {
            Ok((client, from)) => {
                let to = args.to;
                std::thread::spawn(move || {
                    if let Err(e) = join(client, to) {
                        log::warn!("{from} → {to}: {e}");
                    }
                });
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return fail(format!("accept: {e}")),
        }
    }
}

/// Open a connection to `to` and pass bytes both ways between it and
/// `client` until both sides are done.
fn join(client: TcpStream, to: SocketAddr) -> std::io::Result<()> {
    let guest = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
    let (client2, guest2) = (client.try_clone()?, guest.try_clone()?);
    let up = std::thread::spawn(move || pass(client2, guest2));
    pass(guest, client)?;
    up.join().unwrap_or(Ok(()))
}

/// Copy `from` to `to` until `from` ends, then end `to`'s writing half.
fn pass(mut from: TcpStream, mut to: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    Ok(())
}
