//! `mln ssh` and `mln switch-exec`: this machine on a project switch's
//! network for one command, through a tap of its own in a network
//! namespace of its own (`mln_core::net::SwitchEntry`). Nothing of the
//! machine's own network changes, and the namespace goes with the
//! command, so copies of a lab with the same addresses never meet.
//!
//! Each verb finds the switch's socket on this machine and a free address
//! on it, then runs itself again as `unshare --net … mln enter-switch
//! --socket S --address A/N -- COMMAND…`, whose [`enter_switch`] plugs the
//! tap in and runs the command.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use mln_core::guest::InterfaceAddress;
use mln_core::net::entry::Claim;
use mln_core::net::{Switch, SwitchEntry, SwitchStatus, VdeSwitch};
use mln_lang::plan::State;
use mln_lang::state::StateStore;

use crate::cli::{EnterSwitchArgs, SshArgs, SwitchExecArgs};
use crate::lifecycle::fail;

/// `mln ssh [-p PROJECT] PROJECT/HOST [-- COMMAND...]`.
pub fn ssh(args: &SshArgs) -> u8 {
    match HostEntry::find(
        args.state_dir.as_deref(),
        args.project.as_deref(),
        &args.target,
    ) {
        Ok(h) => enter(&h.entry, &ssh_argv(args, h.guest), Stdio::inherit()),
        Err(code) => code,
    }
}

/// A host's address on a switch that runs here, and a tap's way onto
/// that switch.
pub(crate) struct HostEntry {
    /// The project's folder.
    pub(crate) project_dir: PathBuf,
    /// The host's address.
    pub(crate) guest: Ipv4Addr,
    /// A free address on its switch, for the tap.
    pub(crate) entry: SwitchEntry,
    /// Holds that address for this entry while it lives.
    _claim: Claim,
}

impl HostEntry {
    /// The host `target` names (`PROJECT/HOST`, or `HOST` with
    /// `project`): its first interface with a fixed IPv4 address on a
    /// switch that runs on this machine. The exit code after saying why
    /// when there is none.
    pub(crate) fn find(
        state_dir: Option<&std::path::Path>,
        project: Option<&str>,
        target: &str,
    ) -> Result<HostEntry, u8> {
        let (project, host) = match (project, target.split_once('/')) {
            (None, Some((p, h))) => (p.to_string(), h.to_string()),
            (Some(p), None) => (p.to_string(), target.to_string()),
            (Some(_), Some(_)) => {
                return Err(fail(
                    "give the project once: PROJECT/HOST, or -p PROJECT HOST",
                ))
            }
            (None, None) => {
                return Err(fail(format!(
                    "{target}: which project? PROJECT/HOST, or -p PROJECT"
                )))
            }
        };
        let (store, state) = crate::recorded::project(state_dir, &project)?;
        let Some(record) = state.hosts.get(&host) else {
            return Err(fail(format!("project {project} has no host {host}")));
        };
        let mut why =
            format!("{host} has no interface with a fixed IPv4 address on a project switch");
        for iface in &record.spec.interfaces {
            let (
                Some(switch),
                Ok(InterfaceAddress::Static {
                    address: IpAddr::V4(guest),
                    prefix,
                    ..
                }),
            ) = (&iface.switch, iface.guest_address(&host))
            else {
                continue;
            };
            let socket = match socket_here(&store, &state, switch) {
                Ok(s) => s,
                Err(e) => {
                    why = format!("{host}'s {}: {e}", iface.name);
                    continue;
                }
            };
            let (entry, claim) =
                SwitchEntry::claim(&socket, guest, prefix, &taken_on(&state, switch))
                    .map_err(|e| fail(format!("switch {switch}: {e}")))?;
            return Ok(HostEntry {
                project_dir: store.dir().to_path_buf(),
                guest,
                entry,
                _claim: claim,
            });
        }
        Err(fail(format!("project {project}: {why}")))
    }
}

/// `mln switch-exec -p PROJECT SWITCH [--address A/N] -- COMMAND...`.
pub fn switch_exec(args: &SwitchExecArgs) -> u8 {
    let (store, state) = match crate::recorded::project(args.state_dir.as_deref(), &args.project) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if !state.switches.contains_key(&args.switch) {
        return fail(format!(
            "project {} has no switch {}",
            args.project, args.switch
        ));
    }
    let socket = match socket_here(&store, &state, &args.switch) {
        Ok(s) => s,
        Err(e) => return fail(format!("project {}: {e}", args.project)),
    };
    let (entry, _claim) = match &args.address {
        Some(text) => match parse_cidr(text) {
            Some((address, prefix)) => (SwitchEntry::new(socket, address, prefix), None),
            None => return fail(format!("--address {text}: not A.B.C.D/N")),
        },
        None => {
            let Some((on, prefix)) = first_subnet(&state, &args.switch) else {
                return fail(format!(
                    "switch {}: no host has a fixed IPv4 address on it; give --address A.B.C.D/N",
                    args.switch
                ));
            };
            match SwitchEntry::claim(&socket, on, prefix, &taken_on(&state, &args.switch)) {
                Ok((entry, claim)) => (entry, Some(claim)),
                Err(e) => return fail(format!("switch {}: {e}", args.switch)),
            }
        }
    };
    let argv: Vec<OsString> = args.command.iter().map(OsString::from).collect();
    enter(&entry, &argv, Stdio::inherit())
}

/// `mln enter-switch`: in the namespace `unshare` made, plug the tap in,
/// run the command, unplug; the command's exit status.
pub fn enter_switch(args: &EnterSwitchArgs) -> u8 {
    end_with_parent();
    let Some((address, prefix)) = parse_cidr(&args.address) else {
        return fail(format!("--address {}: not A.B.C.D/N", args.address));
    };
    let entry = SwitchEntry::new(&args.socket, address, prefix);
    let plugged = match entry.plug_in() {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let Some((program, rest)) = args.command.split_first() else {
        return fail("no command");
    };
    let status = Command::new(program).args(rest).status();
    drop(plugged);
    match status {
        Ok(s) => s.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)),
        Err(e) => fail(format!("{}: {e}", program.to_string_lossy())),
    }
}

/// Run `argv` on `entry`'s switch, its stdin `stdin`: this program again,
/// in a namespace of its own, as `enter-switch`; its exit status.
pub(crate) fn enter(entry: &SwitchEntry, argv: &[OsString], stdin: Stdio) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("this program: {e}")),
    };
    let mut inner: Vec<OsString> = vec![
        exe.into(),
        "enter-switch".into(),
        "--socket".into(),
        entry.socket().as_os_str().to_owned(),
        "--address".into(),
        format!("{}/{}", entry.address(), entry.prefix()).into(),
        "--".into(),
    ];
    inner.extend(argv.iter().cloned());
    let wrapped = SwitchEntry::enter_argv(&inner);
    let Some((program, rest)) = wrapped.split_first() else {
        return fail("no command");
    };
    match Command::new(program).args(rest).stdin(stdin).status() {
        Ok(s) => s.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)),
        Err(e) => fail(format!("{}: {e}", program.to_string_lossy())),
    }
}

/// The ssh command line for `guest`. Host keys are not pinned: the path is
/// this machine's own switch, and a reset or rebuilt guest has new keys.
/// Where this user is not root, ssh runs as the namespace's root and would
/// look for its keys and settings in root's home, so this user's own are
/// named.
fn ssh_argv(args: &SshArgs, guest: Ipv4Addr) -> Vec<OsString> {
    let mut argv: Vec<OsString> = [
        "ssh",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "LogLevel=ERROR",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let mut identities = args.identities.clone();
    if !rustix::process::geteuid().is_root() {
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            let config = home.join(".ssh/config");
            argv.push("-F".into());
            argv.push(if config.exists() {
                config.into()
            } else {
                "/dev/null".into()
            });
            if identities.is_empty() {
                identities = ["id_ed25519", "id_ecdsa", "id_rsa"]
                    .iter()
                    .map(|k| home.join(".ssh").join(k))
                    .filter(|k| k.exists())
                    .collect();
            }
        }
    }
    for key in identities {
        argv.push("-i".into());
        argv.push(key.into());
    }
    argv.push("-l".into());
    argv.push(args.user.clone().into());
    argv.push(guest.to_string().into());
    if !args.command.is_empty() {
        argv.push("--".into());
        argv.extend(args.command.iter().map(OsString::from));
    }
    argv
}

/// The vde control folder of `switch`'s instance on this machine: the
/// project's own switch, or the socket of one it joins.
fn socket_here(store: &StateStore, state: &State, switch: &str) -> Result<PathBuf, String> {
    if let Ok(sw) = VdeSwitch::open(switch, store.dir().join("switches")) {
        if matches!(sw.status(), SwitchStatus::Running { .. }) {
            return Ok(sw.ctl_dir());
        }
    }
    let joined = state
        .switches
        .get(switch)
        .and_then(|r| r.socket.clone())
        .filter(|s| s.join("ctl").exists());
    match (
        joined,
        state
            .switches
            .get(switch)
            .and_then(|r| r.spec.service_host.clone()),
    ) {
        (Some(socket), _) => Ok(socket),
        (None, Some(server)) => Err(format!(
            "switch {switch} does not run on this machine (its home is {server}): run this there"
        )),
        (None, None) => Err(format!("switch {switch} does not run (is the project up?)")),
    }
}

/// Every IPv4 address the project's hosts have on `switch`, and their
/// gateways there.
fn taken_on(state: &State, switch: &str) -> Vec<Ipv4Addr> {
    let mut taken = Vec::new();
    for (name, record) in &state.hosts {
        for iface in record
            .spec
            .interfaces
            .iter()
            .filter(|i| i.switch.as_deref() == Some(switch))
        {
            if let Ok(InterfaceAddress::Static {
                address: IpAddr::V4(a),
                ..
            }) = iface.guest_address(name)
            {
                taken.push(a);
            }
            if let Some(Ok(IpAddr::V4(g))) = iface.gateway.as_deref().map(str::parse) {
                taken.push(g);
            }
        }
    }
    taken
}

/// The subnet of the first fixed IPv4 address a host has on `switch`.
fn first_subnet(state: &State, switch: &str) -> Option<(Ipv4Addr, u8)> {
    state.hosts.iter().find_map(|(name, record)| {
        record
            .spec
            .interfaces
            .iter()
            .filter(|i| i.switch.as_deref() == Some(switch))
            .find_map(|i| match i.guest_address(name) {
                Ok(InterfaceAddress::Static {
                    address: IpAddr::V4(a),
                    prefix,
                    ..
                }) => Some((a, prefix)),
                _ => None,
            })
    })
}

/// `A.B.C.D/N` with N at most 30.
fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, n) = text.split_once('/')?;
    let prefix: u8 = n.parse().ok().filter(|p| *p <= 30)?;
    Some((a.parse().ok()?, prefix))
}

/// Have this process ended (SIGTERM) when the one that started it ends,
/// however it ends: a namespace's processes never outlive the `mln` whose
/// work they are.
pub(crate) fn end_with_parent() {
    let signal = Some(rustix::process::Signal::TERM);
    if let Err(e) = rustix::process::set_parent_process_death_signal(signal) {
        log::warn!("cannot tie this process to its parent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cidr;

    #[test]
    fn addresses_are_read_with_their_prefix() {
        assert_eq!(
            parse_cidr("10.0.0.9/24"),
            Some(("10.0.0.9".parse().unwrap(), 24))
        );
        assert_eq!(parse_cidr("10.0.0.9"), None);
        assert_eq!(parse_cidr("10.0.0.9/31"), None);
        assert_eq!(parse_cidr("ten/24"), None);
    }
}
