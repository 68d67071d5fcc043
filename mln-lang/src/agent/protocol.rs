//! The agent protocol: JSON lines between a managing `mln` and `mln agent`
//! on a server, over the SSH channel (see `docs/agent-protocol.md`).
//!
//! The agent speaks first with a [`Hello`]; then the client sends
//! [`Envelope`]s (`{"id":N,"req":{"op":..,..}}`) and the agent answers each
//! with a [`Response`] carrying the same id, `ok` or `err`, in whatever
//! order the requests finish: `{"id":7,"req":{"op":"capacity"}}` (see the
//! tests below).

use std::collections::BTreeMap;

use mln_core::{DomainInfo, DomainSpec, Error};
use serde::{Deserialize, Serialize};

use crate::plan::{DesiredProject, HostSpec, Platform, SwitchSpec};
use crate::state::SwitchRecord;

/// The protocol's major version: a client refuses an agent whose major
/// version differs. Adding a request kind or an optional field does not
/// change it (an older agent answers a new kind with `unsupported`).
pub const PROTOCOL: u32 = 1;

/// What the agent says first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always `mln`.
    pub agent: String,
    /// [`PROTOCOL`] of the agent.
    pub protocol: u32,
    /// The agent's `mln` version.
    pub version: String,
    /// The server's host name.
    pub hostname: String,
    /// The platforms the agent can run.
    #[serde(default)]
    pub platforms: Vec<Platform>,
}

impl Hello {
    /// This program's hello.
    pub fn new(hostname: impl Into<String>, platforms: Vec<Platform>) -> Self {
        Hello {
            agent: "mln".to_string(),
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: hostname.into(),
            platforms,
        }
    }

    /// Whether a client of this [`PROTOCOL`] may talk to the agent that
    /// sent this hello; `Err` says why not.
    pub fn check(&self) -> Result<(), String> {
        if self.agent != "mln" {
            return Err(format!(
                "the program answering is {:?}, not an mln agent",
                self.agent
            ));
        }
        if self.protocol != PROTOCOL {
            return Err(format!(
                "the agent speaks protocol {} (mln {}), this mln speaks {PROTOCOL}: \
                 install the same mln on both machines",
                self.protocol, self.version
            ));
        }
        Ok(())
    }
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Chosen by the client, echoed in the response.
    pub id: u64,
    /// What is asked.
    pub req: Request,
}

/// A request: a hypervisor operation on one platform of one project, a
/// [`crate::machine::Backends`] operation for a project, or a question about
/// the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// [`mln_core::Hypervisor::create`]; answers a [`DomainInfo`].
    Create {
        project: String,
        platform: Platform,
        spec: DomainSpec,
    },
    /// [`mln_core::Hypervisor::start`].
    Start {
        project: String,
        platform: Platform,
        name: String,
    },
    /// [`mln_core::Hypervisor::pause`].
    Pause {
        project: String,
        platform: Platform,
        name: String,
    },
    /// [`mln_core::Hypervisor::resume`].
    Resume {
        project: String,
        platform: Platform,
        name: String,
    },
    /// [`mln_core::Hypervisor::shutdown`], waiting `timeout_ms`.
    Shutdown {
        project: String,
        platform: Platform,
        name: String,
        timeout_ms: u64,
    },
    /// [`mln_core::Hypervisor::reboot`].
    Reboot {
        project: String,
        platform: Platform,
        name: String,
    },
    /// [`mln_core::Hypervisor::destroy`].
    Destroy {
        project: String,
        platform: Platform,
        name: String,
    },
    /// [`mln_core::Hypervisor::info`]; answers a [`DomainInfo`].
    Info {
        project: String,
        platform: Platform,
        name: String,
    },
    /// [`mln_core::Hypervisor::boot_status`]; answers a
    /// [`mln_core::BootStatus`].
    BootStatus {
        project: String,
        platform: Platform,
        name: String,
    },
    /// [`mln_core::Hypervisor::exec`], waiting `timeout_ms`; answers an
    /// [`mln_core::exec::ExecOutput`].
    Exec {
        project: String,
        platform: Platform,
        name: String,
        argv: Vec<String>,
        timeout_ms: u64,
    },
    /// [`mln_core::Hypervisor::list`]; answers `[DomainInfo]`.
    List { project: String, platform: Platform },
    /// [`mln_core::Hypervisor::set_memory`].
    SetMemory {
        project: String,
        platform: Platform,
        name: String,
        bytes: u64,
    },
    /// [`mln_core::Hypervisor::set_vcpus`].
    SetVcpus {
        project: String,
        platform: Platform,
        name: String,
        count: u32,
    },
    /// Start the server's instance of a switch; answers its [`SwitchRecord`].
    CreateSwitch { project: String, spec: SwitchSpec },
    /// Stop the server's instance of a switch.
    RemoveSwitch { project: String, spec: SwitchSpec },
    /// The project's switches on the server; answers `[[name, up]]`.
    ListSwitches { project: String },
    /// Make a host's disks; answers their paths.
    PrepareDisk { project: String, host: HostSpec },
    /// Write a host's guest configuration.
    WriteGuestConfig {
        project: DesiredProject,
        host: HostSpec,
    },
    /// Put a host's guest configuration disk, made on the managing
    /// machine (where the `files` it carries are), in its place.
    PutGuestConfig {
        project: String,
        host: HostSpec,
        /// The disk's bytes, base64.
        disk: String,
    },
    /// Delete a host's disks and configuration.
    RemoveDisk { project: String, host: HostSpec },
    /// Bring a stopped host's disks to its spec before its domain is made
    /// (a root disk grown, swap made or removed).
    FitDisks { project: String, host: HostSpec },
    /// The domain that runs `host` on the server, attached to the server's
    /// instances of `switches`; answers a [`DomainSpec`].
    DomainSpec {
        project: String,
        host: HostSpec,
        switches: BTreeMap<String, SwitchRecord>,
    },
    /// Plug a running guest's interface into the server's instance of
    /// `switch` again.
    Replug {
        project: String,
        host: HostSpec,
        interface: String,
        switch: SwitchRecord,
    },
    /// The server's memory; answers [`Capacity`].
    Capacity,
    /// The last `bytes` of a host's console log; answers [`ConsoleTail`].
    ConsoleTail {
        project: String,
        host: String,
        bytes: u64,
    },
    /// What the server runs; answers `[ServerProject]`.
    Projects,
    /// What the server holds of a UML host's disks (files and checksums,
    /// and the record of a move into it); answers
    /// [`super::disks::HostDisks`].
    HostDisks { project: String, host: HostSpec },
    /// The move of a host's disks into this server is over: forget its
    /// record.
    EndMove { project: String, host: HostSpec },
    /// Write `token` beside the host's root disk, or remove the mark
    /// (`token` absent); answers the disk's path, or null when there is no
    /// disk here ([`super::migrate::mark`]).
    StorageMark {
        project: String,
        host: HostSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Whether the host's root disk is here with a mark holding `token`
    /// beside it: the same file as on the server that wrote the mark
    /// ([`super::migrate::marked`]).
    StorageCheck {
        project: String,
        host: HostSpec,
        token: String,
    },
    /// Mark the host's disks here as placed by `server` (the managing
    /// side's name for this server); answers null
    /// ([`crate::machine::home::claim`]).
    ClaimDisks {
        project: String,
        host: HostSpec,
        server: String,
    },
    /// The server the mark beside the host's root disk here names, or
    /// null ([`crate::machine::home::placed_by`]).
    DisksPlacedBy { project: String, host: HostSpec },
    /// The two ends of the ssh connection the agent was reached over, as
    /// the server sees them (`SSH_CONNECTION`); answers an [`Underlay`].
    /// VXLAN links between this machine and the server run between them.
    Underlay,
    /// Make the VXLAN link `spec` a port of the Linux bridge of the
    /// server's instance of `switch` ([`mln_core::net::Vxlan::create`]);
    /// answers null.
    CreateVxlan {
        project: String,
        switch: String,
        spec: mln_core::net::VxlanSpec,
    },
    /// Remove the link `device` of `switch`; answers null (also when there
    /// is none).
    RemoveVxlan {
        project: String,
        switch: String,
        device: String,
    },
    /// Whether the link `device` of `switch` is up
    /// ([`mln_core::net::Vxlan::is_up`]); answers a bool.
    VxlanUp {
        project: String,
        switch: String,
        device: String,
    },
}

/// The addresses of an ssh connection as its server sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Underlay {
    /// The client's address: the managing machine, as the server sees it.
    pub client: std::net::IpAddr,
    /// The address the server was reached at.
    pub server: std::net::IpAddr,
}

impl Underlay {
    /// Read `SSH_CONNECTION` (`CLIENT_IP CLIENT_PORT SERVER_IP
    /// SERVER_PORT`); `None` when it is not that.
    pub fn from_ssh_connection(value: &str) -> Option<Self> {
        let mut words = value.split_whitespace();
        let client = words.next()?;
        words.next()?;
        let server = words.next()?;
        words.next()?;
        if words.next().is_some() {
            return None;
        }
        // An IPv6 address may come with a zone (`fe80::1%eth0`): such a
        // link-local pair is no use to a VXLAN link, so it does not parse.
        Some(Underlay {
            client: client.parse().ok()?,
            server: server.parse().ok()?,
        })
    }
}

/// Every request kind this agent knows, as it appears in `op`.
pub const KNOWN_OPS: &[&str] = &[
    "create",
    "start",
    "pause",
    "resume",
    "shutdown",
    "reboot",
    "destroy",
    "info",
    "boot_status",
    "exec",
    "list",
    "set_memory",
    "set_vcpus",
    "create_switch",
    "remove_switch",
    "list_switches",
    "prepare_disk",
    "write_guest_config",
    "put_guest_config",
    "remove_disk",
    "fit_disks",
    "domain_spec",
    "replug",
    "capacity",
    "console_tail",
    "projects",
    "host_disks",
    "end_move",
    "storage_mark",
    "storage_check",
    "claim_disks",
    "disks_placed_by",
    "underlay",
    "create_vxlan",
    "remove_vxlan",
    "vxlan_up",
];

/// A server's memory, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// `MemTotal` of `/proc/meminfo`.
    pub mem_total: u64,
    /// `MemAvailable` of `/proc/meminfo`.
    pub mem_available: u64,
    /// The Xen hypervisor's free memory, when the agent runs Xen.
    #[serde(default)]
    pub xen_free: Option<u64>,
    /// All the memory the Xen hypervisor manages, when the agent runs Xen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xen_total: Option<u64>,
}

impl Capacity {
    /// What new guests can have: the hypervisor's free memory on Xen,
    /// `MemAvailable` otherwise.
    pub fn free(&self) -> u64 {
        self.xen_free.unwrap_or(self.mem_available)
    }

    /// The whole of what [`Capacity::free`] is part of: the hypervisor's
    /// memory on Xen (dom0's `MemTotal` is only dom0's share), `MemTotal`
    /// otherwise.
    pub fn total(&self) -> u64 {
        self.xen_total.unwrap_or(self.mem_total)
    }
}

/// The end of a console log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleTail {
    /// The log's size, bytes.
    pub size: u64,
    /// Its last bytes, invalid UTF-8 replaced.
    pub text: String,
}

/// One project as a server runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerProject {
    /// The project.
    pub project: String,
    /// Its domains there.
    pub domains: Vec<DomainInfo>,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id (0 for a line that could not be read at all).
    pub id: u64,
    /// The answer, when it worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<serde_json::Value>,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<ErrorBody>,
}

impl Response {
    /// A success.
    pub fn ok(id: u64, value: serde_json::Value) -> Self {
        Response {
            id,
            ok: Some(value),
            err: None,
        }
    }

    /// A failure.
    pub fn err(id: u64, err: ErrorBody) -> Self {
        Response {
            id,
            ok: None,
            err: Some(err),
        }
    }
}

/// A failed request: a stable `kind` a client can act on, the message in
/// words and, for `not_found`/`already_exists`, the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `not_found`, `already_exists`, `unsupported`, `bad_request`,
    /// `timeout`, `wrong_state`, `invalid`, `io`, `passing_boot_crash` (a
    /// guest died of a fault known to pass, see [`Error::BootCrash`]) or
    /// `backend`.
    pub kind: String,
    /// What went wrong, in words.
    pub message: String,
    /// The object the error is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

impl ErrorBody {
    /// An error of `kind`.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            kind: kind.to_string(),
            message: message.into(),
            object: None,
        }
    }

    /// How an agent reports a backend's error.
    pub fn from_core(e: &Error) -> Self {
        let (kind, object) = match e {
            Error::NotFound { domain } => ("not_found", Some(domain.clone())),
            Error::AlreadyExists { domain } => ("already_exists", Some(domain.clone())),
            Error::Unsupported { .. } | Error::XenUnavailable { .. } => ("unsupported", None),
            Error::Timeout { what, .. } => ("timeout", Some(what.clone())),
            Error::WrongState { domain, .. } => ("wrong_state", Some(domain.clone())),
            Error::InvalidName { name, .. } => ("invalid", Some(name.clone())),
            Error::InvalidGuestConfig { host, .. } => ("invalid", Some(host.clone())),
            Error::InvalidMac(_) => ("invalid", None),
            Error::BootCrash {
                domain,
                transient: true,
                ..
            } => ("passing_boot_crash", Some(domain.clone())),
            Error::Io { .. } | Error::MissingFile { .. } | Error::UnusablePath { .. } => {
                ("io", None)
            }
            _ => ("backend", None),
        };
        let message = match e {
            // The object is said apart: the words alone, worded again at
            // the other end.
            Error::BootCrash {
                message,
                transient: true,
                ..
            } => message.clone(),
            _ => e.to_string(),
        };
        ErrorBody {
            kind: kind.to_string(),
            message,
            object,
        }
    }

    /// The error a client hands its caller for this answer from `server`:
    /// `not_found` and `already_exists` keep their meaning (the executor
    /// treats a missing domain as already stopped), `unsupported` stays
    /// unsupported (it falls back to a restart), everything else names
    /// the server.
    pub fn into_core(self, server: &str) -> Error {
        match (self.kind.as_str(), self.object) {
            ("not_found", Some(domain)) => Error::NotFound { domain },
            ("already_exists", Some(domain)) => Error::AlreadyExists { domain },
            ("passing_boot_crash", Some(domain)) => Error::BootCrash {
                domain,
                message: format!("on {server}: {}", self.message),
                transient: true,
            },
            ("unsupported", _) => {
                // What exactly the server cannot do is in its words only:
                // said here, as the error itself is a fixed one the
                // executor knows to fall back on.
                log::warn!("{server}: {}", self.message);
                Error::Unsupported {
                    backend: "remote",
                    op: "this operation on that server",
                }
            }
            _ => Error::Backend {
                what: server.to_string(),
                message: self.message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_is_one_json_line() {
        let line = serde_json::to_string(&Envelope {
            id: 7,
            req: Request::Capacity,
        })
        .unwrap();
        assert_eq!(line, r#"{"id":7,"req":{"op":"capacity"}}"#);
    }

    #[test]
    fn ssh_connection_gives_the_underlay() {
        let u = Underlay::from_ssh_connection("192.0.2.1 50022 192.0.2.7 22").unwrap();
        assert_eq!(u.server.to_string(), "192.0.2.7");
        assert!(Underlay::from_ssh_connection("192.0.2.1 50022").is_none());
    }

    #[test]
    fn requests_are_tagged_snake_case_objects() {
        let req = Request::Shutdown {
            project: "lab".into(),
            platform: Platform::Uml,
            name: "lab.a".into(),
            timeout_ms: 1500,
        };
        let line = serde_json::to_string(&Envelope {
            id: 3,
            req: req.clone(),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"id":3,"req":{"op":"shutdown","project":"lab","platform":"uml","name":"lab.a","timeout_ms":1500}}"#
        );
        let back: Envelope = serde_json::from_str(&line).unwrap();
        assert_eq!(back.req, req);
    }

    #[test]
    fn every_request_kind_is_listed_as_known() {
        let samples = [
            Request::Capacity,
            Request::Projects,
            Request::FitDisks {
                project: "p".into(),
                host: HostSpec::new("h"),
            },
            Request::ListSwitches {
                project: "p".into(),
            },
            Request::ConsoleTail {
                project: "p".into(),
                host: "h".into(),
                bytes: 10,
            },
            Request::List {
                project: "p".into(),
                platform: Platform::Uml,
            },
            Request::Underlay,
            Request::RemoveVxlan {
                project: "p".into(),
                switch: "s".into(),
                device: "d".into(),
            },
            Request::VxlanUp {
                project: "p".into(),
                switch: "s".into(),
                device: "d".into(),
            },
        ];
        for r in samples {
            let v = serde_json::to_value(&r).unwrap();
            assert!(KNOWN_OPS.contains(&v["op"].as_str().unwrap()), "{v}");
        }
    }

    #[test]
    fn ssh_connection_gives_both_ends_or_nothing() {
        let u = Underlay::from_ssh_connection("198.51.100.1 40000 198.51.100.2 22").unwrap();
        assert_eq!(u.client.to_string(), "198.51.100.1");
        assert_eq!(u.server.to_string(), "198.51.100.2");
        let v6 = Underlay::from_ssh_connection("2001:db8::1 40000 2001:db8::2 22").unwrap();
        assert!(v6.server.is_ipv6());
        for bad in [
            "",
            "198.51.100.1 40000 198.51.100.2",
            "198.51.100.1 40000 198.51.100.2 22 x",
            "host 40000 198.51.100.2 22",
            "fe80::1%eth0 40000 fe80::2%eth0 22",
        ] {
            assert!(Underlay::from_ssh_connection(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn responses_carry_either_ok_or_err() {
        let ok = Response::ok(1, serde_json::json!(null));
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"id":1,"ok":null}"#);
        let err = Response::err(2, ErrorBody::new("unsupported", "no"));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"id":2,"err":{"kind":"unsupported","message":"no"}}"#
        );
    }

    #[test]
    fn a_client_refuses_another_major_protocol() {
        let mut h = Hello::new("server-a", vec![Platform::Uml]);
        assert!(h.check().is_ok());
        let line = serde_json::to_string(&h).unwrap();
        assert!(
            line.starts_with(r#"{"agent":"mln","protocol":1,"version":"#),
            "{line}"
        );
        h.protocol = PROTOCOL + 1;
        let why = h.check().unwrap_err();
        assert!(why.contains("protocol 2"), "{why}");
        h.protocol = PROTOCOL;
        h.agent = "bash".into();
        assert!(h.check().is_err());
    }

    #[test]
    fn not_found_survives_the_wire_and_other_errors_name_the_server() {
        let e = ErrorBody::from_core(&Error::NotFound {
            domain: "lab.a".into(),
        });
        let back: ErrorBody = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert!(
            matches!(back.into_core("server-a"), Error::NotFound { domain } if domain == "lab.a")
        );
        let e = ErrorBody::from_core(&Error::Backend {
            what: "lab.a".into(),
            message: "died".into(),
        });
        assert_eq!(e.into_core("server-a").to_string(), "server-a: lab.a: died");
    }

    #[test]
    fn a_passing_boot_crash_stays_one_across_the_wire_and_a_lasting_one_does_not() {
        let crash = |transient| Error::BootCrash {
            domain: "lab.a".into(),
            message: "error loading journal".into(),
            transient,
        };
        let wire = |e: &Error| -> ErrorBody {
            serde_json::from_str(&serde_json::to_string(&ErrorBody::from_core(e)).unwrap()).unwrap()
        };
        match wire(&crash(true)).into_core("server-a") {
            Error::BootCrash {
                domain,
                message,
                transient: true,
            } => {
                assert_eq!(domain, "lab.a");
                assert!(message.contains("server-a") && message.contains("journal"));
            }
            other => panic!("{other:?}"),
        }
        let lasting = wire(&crash(false)).into_core("server-a");
        assert!(matches!(lasting, Error::Backend { .. }), "{lasting:?}");
    }
}
