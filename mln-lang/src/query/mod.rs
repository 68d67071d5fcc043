//! MLN-compatible path queries on a resolved project: what
//! `mln parse -S PATH` (one value) and `mln parse -A PATH` (one line per
//! item) print. Existing MLN scripts call these, so the paths and the
//! text of the answers follow MLN.
//!
//! Paths are `/`-separated, the leading `/` optional:
//!
//! | path | answer |
//! |---|---|
//! | `/global/project` | the project name |
//! | `/global/KEY` | `project_password`, an unknown keyword, or a variable (`KEY` or `$KEY`) |
//! | `/global/HOOK` | the lines of a hook block (`afterHostsStart`, ...) |
//! | `/host` | host names, in order |
//! | `/host/NAME/KEY` | a host keyword: sizes as written (`256M`), defaults where the language has one (`memory`, `vcpus`, `boot_order`), flags `1` when set and nothing otherwise, `superclass` the nearest one |
//! | `/host/NAME/LIST` | `startup`, `users`, ... one line per item |
//! | `/host/NAME/network` | interface names |
//! | `/host/NAME/network/IFACE/KEY` | `switch`, `address`, `netmask`, `mac`, ... |
//! | `/host/NAME/BLOCK[/LABEL]/KEY...` | inside a generic block |
//! | `/switch`, `/switch/NAME/KEY` | switch names; `service_host`, `hub`, `bridge` (as written, else when a Xen guest plugs in the bridge `mln` makes), `xen` (`1` when a Xen guest plugs in), ... `members` and `hosts` (`HOST IFACE` lines), `hosts/HOST` (that host's interface) |
//! | `/superclass`, `/superclass/NAME/KEY` | superclass names; a keyword as written in the superclass |
//! | `/BLOCK[/LABEL]/KEY...` | inside a top-level generic block |

mod tree;

pub use tree::{query_tree, syntax_tree, Tree};

use crate::model::{GenericBlock, GenericItem, Host, Interface, Platform, Project, Switch};
use crate::resolve::format_size;

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Nothing lives at the path (an unknown host, a keyword not set).
    #[error("nothing at `{0}`")]
    NotFound(String),
    /// The path names a list or block; ask with `-A` ([`query_list`]).
    #[error("`{0}` is a list, not a single value (use -A)")]
    NotAScalar(String),
    /// The path is empty.
    #[error("empty query path")]
    EmptyPath,
}

/// What a path leads to.
enum Node {
    Scalar(String),
    List(Vec<String>),
}

/// The single value at `path`, as `mln parse -S` prints it.
///
/// ```
/// use mln_lang::model::{Host, Project};
/// use mln_lang::query::{query_scalar, QueryError};
///
/// let mut web = Host::new("web");
/// web.memory = 256 * 1024 * 1024;
/// web.written.insert("memory".into(), "256M".into());
/// let p = Project { name: "demo".into(), hosts: vec![web], ..Project::default() };
/// assert_eq!(query_scalar(&p, "/host/web/memory").unwrap(), "256M");
/// assert_eq!(query_scalar(&p, "/global/project").unwrap(), "demo");
/// assert!(matches!(query_scalar(&p, "/host/nope/memory"), Err(QueryError::NotFound(_))));
/// ```
pub fn query_scalar(project: &Project, path: &str) -> Result<String, QueryError> {
    match lookup(project, path)? {
        Node::Scalar(s) => Ok(s),
        Node::List(_) => Err(QueryError::NotAScalar(path.to_string())),
    }
}

/// The items at `path`, one per line as `mln parse -A` prints them. A
/// single value is a list of one.
///
/// ```
/// use mln_lang::model::{Host, Project};
/// use mln_lang::query::query_list;
///
/// let mut web = Host::new("web");
/// web.startup = vec!["echo one".into(), "echo two".into()];
/// let p = Project { name: "demo".into(), hosts: vec![web], ..Project::default() };
/// assert_eq!(query_list(&p, "/host/web/startup").unwrap(), ["echo one", "echo two"]);
/// assert_eq!(query_list(&p, "/host").unwrap(), ["web"]);
/// ```
pub fn query_list(project: &Project, path: &str) -> Result<Vec<String>, QueryError> {
    match lookup(project, path)? {
        Node::Scalar(s) => Ok(vec![s]),
        Node::List(l) => Ok(l),
    }
}

fn lookup(project: &Project, path: &str) -> Result<Node, QueryError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let not_found = || QueryError::NotFound(path.to_string());
    let found = match parts.as_slice() {
        [] => return Err(QueryError::EmptyPath),
        ["global"] => Some(Node::List(global_keys(project))),
        ["global", key] => global(project, key),
        ["host"] => Some(Node::List(
            project.hosts.iter().map(|h| h.name.clone()).collect(),
        )),
        ["host", name, rest @ ..] => project.host(name).and_then(|h| host(h, rest)),
        ["switch"] => Some(Node::List(
            project.switches.iter().map(|s| s.name.clone()).collect(),
        )),
        ["switch", name, rest @ ..] => project.switch(name).and_then(|s| switch(project, s, rest)),
        ["superclass"] => Some(Node::List(
            project
                .superclasses
                .iter()
                .filter_map(|s| s.label.clone())
                .collect(),
        )),
        ["superclass", name, rest @ ..] => {
            project.superclass(name).and_then(|s| generic_path(s, rest))
        }
        [name, rest @ ..] => block_path(&project.blocks, name, rest),
    };
    found.ok_or_else(not_found)
}

fn scalar(s: impl Into<String>) -> Option<Node> {
    Some(Node::Scalar(s.into()))
}

fn opt(v: &Option<String>) -> Option<Node> {
    v.clone().map(Node::Scalar)
}

/// A flag is `1` when set and, as in MLN, absent when not (scripts test
/// the output for emptiness).
fn flag(b: bool) -> Option<Node> {
    b.then(|| Node::Scalar("1".to_string()))
}

fn global_keys(p: &Project) -> Vec<String> {
    let mut keys = vec!["project".to_string()];
    if p.project_password.is_some() {
        keys.push("project_password".into());
    }
    if p.persistent {
        keys.push("persistent".into());
    }
    keys.extend(p.unknown.keys().cloned());
    keys
}

fn global(p: &Project, key: &str) -> Option<Node> {
    match key {
        "project" => scalar(&p.name),
        "project_password" => opt(&p.project_password),
        "persistent" => flag(p.persistent),
        _ => {
            if let Some(lines) = p.hooks.get(key) {
                return Some(Node::List(lines.clone()));
            }
            if let Some(v) = p.unknown.get(key) {
                return scalar(v);
            }
            let var = key.strip_prefix('$').unwrap_or(key);
            if let Some(v) = p.variables.get(var) {
                return scalar(v);
            }
            block_path(&p.global_blocks, key, &[])
        }
    }
}

fn size(h: &Host, key: &str, bytes: Option<u64>) -> Option<Node> {
    match h.written.get(key) {
        Some(w) => scalar(w),
        None => bytes.map(|b| Node::Scalar(format_size(b))),
    }
}

fn host(h: &Host, rest: &[&str]) -> Option<Node> {
    let key = match rest {
        [] => return Some(Node::List(host_keys(h))),
        ["network"] => {
            return Some(Node::List(
                h.interfaces.iter().map(|i| i.name.clone()).collect(),
            ))
        }
        ["network", iface, rest @ ..] => {
            return h.interface(iface).and_then(|i| interface(i, rest))
        }
        [key] => *key,
        [block, rest @ ..] => return block_path(&h.blocks, block, rest),
    };
    let lines = |v: Vec<String>| Some(Node::List(v));
    match key {
        "superclass" => h.superclasses.first().cloned().map(Node::Scalar),
        "xen" => flag(matches!(h.platform, Platform::Xen | Platform::Hvm)),
        "hvm" => flag(h.platform == Platform::Hvm),
        "kvm" => flag(h.platform == Platform::Kvm),
        "uml" => flag(h.platform == Platform::Uml),
        "platform" => scalar(h.platform.keyword()),
        "service_host" | "location" => opt(&h.service_host),
        "memory" => size(h, "memory", Some(h.memory)),
        "size" => size(h, "size", h.size),
        "free_space" => size(h, "free_space", h.free_space),
        "swap" => size(h, "swap", h.swap),
        "vcpus" => scalar(h.vcpus.to_string()),
        "cpus" => opt(&h.cpus),
        "template" => opt(&h.template),
        "lvm" => flag(h.lvm),
        "lvm_vg" => opt(&h.lvm_vg),
        "lvm_snapshot" => opt(&h.lvm_snapshot),
        "filepath" => opt(&h.filepath),
        "cow_filesystem" => opt(&h.cow_filesystem),
        "kernel" => opt(&h.kernel),
        "ramdisk" => opt(&h.ramdisk),
        "extra" => opt(&h.extra),
        "boot_order" => scalar(h.boot_order.to_string()),
        "term" => h.term.map(|t| Node::Scalar(t.keyword().to_string())),
        "nameserver" => h.nameserver.map(|a| Node::Scalar(a.to_string())),
        "root_passwd" => opt(&h.root_passwd),
        "owner" | "group" | "sudo" => opt(&h.owner_keys.get(key).cloned()),
        "users" => lines(
            h.users
                .iter()
                .map(|u| {
                    let mut w = vec![u.name.clone(), u.hash.clone()];
                    w.extend(u.home.clone());
                    w.extend(u.uid.map(|n| n.to_string()));
                    w.join(" ").trim_end().to_string()
                })
                .collect(),
        ),
        "groups" => lines(
            h.groups
                .iter()
                .map(|g| {
                    std::iter::once(g.name.as_str())
                        .chain(g.members.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect(),
        ),
        "files" => lines(
            h.files
                .iter()
                .map(|f| {
                    let mut w = vec![f.src.as_str(), f.dest.as_str()];
                    w.extend(f.mode.as_deref());
                    w.join(" ")
                })
                .collect(),
        ),
        "mount" => lines(
            h.mount
                .iter()
                .map(|m| {
                    let mut w = vec![m.src.as_str(), m.point.as_str(), m.fstype.as_str()];
                    w.extend(m.options.as_deref());
                    w.join(" ")
                })
                .collect(),
        ),
        "modules" => lines(h.modules.clone()),
        "startup" => lines(h.startup.clone()),
        "shutdown" => lines(h.shutdown.clone()),
        "sshkey" => lines(h.sshkey.clone()),
        "xen_extra" => lines(h.xen_extra.clone()),
        _ => {
            if let Some(v) = h.unknown.get(key) {
                return scalar(v);
            }
            if let Some(v) = h.variables.get(key.strip_prefix('$').unwrap_or(key)) {
                return scalar(v);
            }
            block_path(&h.blocks, key, &[])
        }
    }
}

fn host_keys(h: &Host) -> Vec<String> {
    let mut keys: Vec<String> = ["memory", "vcpus", "boot_order", "platform"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    keys.extend(
        h.written
            .keys()
            .filter(|k| *k != "memory")
            .map(|k| k.to_string()),
    );
    keys.extend(h.unknown.keys().cloned());
    keys
}

fn interface(i: &Interface, rest: &[&str]) -> Option<Node> {
    let ip = |a: Option<std::net::IpAddr>| a.map(|a| Node::Scalar(a.to_string()));
    match rest {
        [] => Some(Node::List(
            [
                "switch",
                "address",
                "netmask",
                "broadcast",
                "gateway",
                "mac",
                "bridge",
            ]
            .iter()
            .filter(|k| interface(i, &[k]).is_some())
            .map(|k| k.to_string())
            .chain(i.unknown.keys().cloned())
            .collect(),
        )),
        ["switch"] => opt(&i.switch),
        ["address"] => i.address.map(|a| Node::Scalar(a.to_string())),
        ["netmask"] => ip(i.netmask),
        ["broadcast"] => ip(i.broadcast),
        ["gateway"] => ip(i.gateway),
        ["mac"] => opt(&i.mac),
        ["bridge"] => opt(&i.bridge),
        [key] => i.unknown.get(*key).cloned().map(Node::Scalar),
        _ => None,
    }
}

fn switch(project: &Project, s: &Switch, rest: &[&str]) -> Option<Node> {
    match rest {
        [] => None,
        // MLN's view of the members: `hosts` lists `HOST IFACE`, and
        // `hosts/HOST` is the host's interface on the switch.
        ["hosts"] => Some(Node::List(
            s.members
                .iter()
                .map(|m| format!("{} {}", m.host, m.interface))
                .collect(),
        )),
        ["hosts", host] => {
            let ifaces: Vec<String> = s
                .members
                .iter()
                .filter(|m| m.host == *host)
                .map(|m| m.interface.clone())
                .collect();
            match ifaces.as_slice() {
                [] => None,
                [one] => scalar(one),
                _ => Some(Node::List(ifaces)),
            }
        }
        // Set when a Xen guest plugs into the switch (MLN then gives it a
        // bridge).
        ["xen"] => flag(s.members.iter().any(|m| {
            project
                .host(&m.host)
                .is_some_and(|h| matches!(h.platform, Platform::Xen | Platform::Hvm))
        })),
        ["service_host"] | ["location"] => opt(&s.service_host),
        ["hub"] => flag(s.hub),
        // The bridge a Xen guest's interface joins: the one written, else
        // the one `mln` makes for the switch (MLN 1.0.8 answered
        // `SWITCH.PROJECT` here, the name it gave its bridges).
        ["bridge"] => opt(&s.bridge).or_else(|| {
            switch(project, s, &["xen"]).map(|_| {
                Node::Scalar(mln_core::net::LinuxBridge::derived_name(
                    &project.name,
                    &s.name,
                ))
            })
        }),
        ["socket"] => opt(&s.socket),
        ["tap"] => opt(&s.tap),
        [key @ ("owner" | "group" | "sudo")] => opt(&s.owner_keys.get(key).cloned()),
        ["members"] => Some(Node::List(
            s.members
                .iter()
                .map(|m| format!("{} {}", m.host, m.interface))
                .collect(),
        )),
        [key] => s
            .unknown
            .get(*key)
            .cloned()
            .map(Node::Scalar)
            .or_else(|| block_path(&s.blocks, key, &[])),
        [block, rest @ ..] => block_path(&s.blocks, block, rest),
    }
}

/// `NAME[/LABEL]/KEY...` among `blocks`.
fn block_path(blocks: &[GenericBlock], name: &str, rest: &[&str]) -> Option<Node> {
    let matching = |label: Option<&str>| {
        blocks
            .iter()
            .find(|b| b.name == name && b.label.as_deref() == label)
    };
    if let Some((label, deeper)) = rest.split_first() {
        if let Some(b) = matching(Some(label)) {
            return generic_path(b, deeper);
        }
    }
    matching(None).and_then(|b| generic_path(b, rest))
}

/// `KEY...` inside one generic block: a statement's value, a nested
/// block's lines, or the block's own lines when `rest` is empty.
fn generic_path(block: &GenericBlock, rest: &[&str]) -> Option<Node> {
    let mut cur = block;
    let mut rest = rest;
    loop {
        let Some((key, deeper)) = rest.split_first() else {
            return Some(Node::List(lines(cur)));
        };
        let value = cur.items.iter().rev().find_map(|i| match i {
            GenericItem::Statement { keyword, value } if keyword == key && deeper.is_empty() => {
                Some(value.clone().unwrap_or_else(|| "1".to_string()))
            }
            GenericItem::Assign { name, value }
                if deeper.is_empty() && key.strip_prefix('$') == Some(name.as_str()) =>
            {
                Some(value.clone())
            }
            _ => None,
        });
        if let Some(v) = value {
            return scalar(v);
        }
        let inner = cur.items.iter().find_map(|i| match i {
            GenericItem::Block(b) if b.name == *key => match (deeper.first(), &b.label) {
                (Some(l), Some(bl)) if l == bl => Some((b, 1)),
                (_, None) => Some((b, 0)),
                _ => None,
            },
            _ => None,
        });
        let (b, skip) = inner?;
        cur = b;
        rest = deeper.get(skip..).unwrap_or_default();
    }
}

/// A block's items as lines: `keyword value`, `$name = value`, nested
/// blocks by their header.
fn lines(block: &GenericBlock) -> Vec<String> {
    block
        .items
        .iter()
        .map(|i| match i {
            GenericItem::Statement {
                keyword,
                value: Some(v),
            } => format!("{keyword} {v}"),
            GenericItem::Statement {
                keyword,
                value: None,
            } => keyword.clone(),
            GenericItem::Assign { name, value } => format!("${name} = {value}"),
            GenericItem::Block(b) => match &b.label {
                Some(l) => format!("{} {l}", b.name),
                None => b.name.clone(),
            },
        })
        .collect()
}
