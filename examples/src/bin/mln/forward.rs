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
use std::process::Stdio;
use std::time::Duration;

use crate::cli::{ForwardArgs, ForwardInsideArgs};
use crate::lifecycle::fail;
use crate::switch_entry::{enter, HostEntry};

/// How long a connection to the guest may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `mln forward`.
pub fn forward(args: &ForwardArgs) -> u8 {
    let host = match HostEntry::find(
        args.state_dir.as_deref(),
        args.project.as_deref(),
        &args.target,
    ) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let listen = SocketAddr::new(args.listen, args.port);
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => return fail(format!("listen on {listen}: {e}")),
    };
    let to = SocketAddr::new(host.guest.into(), args.to);
    eprintln!("{listen} → {} {to} (Ctrl-C ends it)", args.target);
    let argv = [
        "forward-inside".into(),
        "--to".into(),
        to.to_string().into(),
    ];
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("this program: {e}")),
    };
    let mut inner = vec![exe.into_os_string()];
    inner.extend(argv);
    enter(
        &host.entry,
        &inner,
        Stdio::from(std::os::fd::OwnedFd::from(listener)),
    )
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
