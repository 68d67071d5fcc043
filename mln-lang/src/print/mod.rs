//! A [`Project`] back to canonical MLN text.
//!
//! The text parses and resolves back to an equal project: every host is
//! written out with everything it resolved to (so inheritance adds nothing
//! new), superclasses and generic blocks are written as they were read,
//! and values are escaped where the lexer would otherwise split them.
//! Switch membership is not written: resolution recomputes it.
//!
//! One limit comes from the language: a value holding `$name` where a
//! variable `name` is in scope cannot be written literally (it would be
//! expanded when read back). Resolved projects never hold such text,
//! since resolution expanded it; a project built by a program might.
//!
//! Layout: `global` first, then superclasses, switches, hosts and other
//! blocks, four spaces per level, one statement per line.

use std::fmt::Write as _;

use crate::model::{
    GenericBlock, GenericItem, Hooks, Host, Interface, OwnerKeys, Platform, Project, Switch,
    DEFAULT_BOOT_ORDER, DEFAULT_MEMORY, DEFAULT_VCPUS,
};
use crate::resolve::format_size;

/// Canonical MLN text for `project`.
///
/// ```
/// use mln_lang::model::{Host, Project};
/// use mln_lang::print::to_mln;
///
/// let mut web = Host::new("web");
/// web.memory = 256 * 1024 * 1024;
/// let project = Project { name: "demo".into(), hosts: vec![web], ..Project::default() };
/// assert_eq!(
///     to_mln(&project),
///     "global {\n    project demo\n}\n\nhost web {\n    memory 256M\n}\n"
/// );
/// ```
pub fn to_mln(project: &Project) -> String {
    let mut p = Printer::default();
    p.open("global", None);
    p.statement("project", Some(&project.name));
    for (k, v) in &project.variables {
        p.assign(k, v);
    }
    if let Some(pw) = &project.project_password {
        p.statement("project_password", Some(pw));
    }
    if project.persistent {
        p.statement("persistent", None);
    }
    for (k, v) in &project.unknown {
        p.statement(k, Some(v));
    }
    hooks(&mut p, &project.hooks);
    for b in &project.global_blocks {
        p.generic(b);
    }
    p.close();
    for s in &project.superclasses {
        p.blank();
        p.generic(s);
    }
    for s in &project.switches {
        p.blank();
        switch(&mut p, s);
    }
    for h in &project.hosts {
        p.blank();
        host(&mut p, h, project);
    }
    for b in &project.blocks {
        p.blank();
        p.generic(b);
    }
    p.out
}

fn hooks(p: &mut Printer, hooks: &Hooks) {
    for name in Hooks::NAMES {
        if let Some(lines) = hooks.get(name).filter(|l| !l.is_empty()) {
            p.list(name, lines.iter().map(String::as_str));
        }
    }
}

fn switch(p: &mut Printer, s: &Switch) {
    p.open("switch", Some(&s.name));
    p.opt("service_host", &s.service_host);
    if s.hub {
        p.statement("hub", None);
    }
    p.opt("bridge", &s.bridge);
    p.opt("socket", &s.socket);
    p.opt("tap", &s.tap);
    for k in OwnerKeys::KEYWORDS {
        p.opt(k, &s.owner_keys.get(k).cloned());
    }
    for (k, v) in &s.unknown {
        p.statement(k, Some(v));
    }
    for b in &s.blocks {
        p.generic(b);
    }
    p.close();
}

/// True when a superclass of `h` sets one of `keywords` (so a host value
/// equal to the default must still be written, to win over it).
fn inherited(project: &Project, h: &Host, keywords: &[&str]) -> bool {
    h.superclasses.iter().any(|name| {
        let mut blocks = project
            .superclasses
            .iter()
            .filter(|s| s.label.as_deref() == Some(name.as_str()))
            .peekable();
        // Not kept (a model built by a program): assume it might.
        blocks.peek().is_none()
            || blocks.any(|s| {
                s.items.iter().any(|i| {
                    matches!(i, GenericItem::Statement { keyword, .. } if keywords.contains(&keyword.as_str()))
                })
            })
    })
}

fn host(p: &mut Printer, h: &Host, project: &Project) {
    let inherits = |keywords: &[&str]| inherited(project, h, keywords);
    p.open("host", Some(&h.name));
    if let Some(s) = h.superclasses.first() {
        p.statement("superclass", Some(s));
    }
    for (k, v) in &h.variables {
        p.assign(k, v);
    }
    if h.platform != Platform::Uml || inherits(&["xen", "uml", "kvm", "hvm"]) {
        p.statement(h.platform.keyword(), None);
    }
    p.opt("service_host", &h.service_host);
    let size = |key: &str, bytes: u64| match h.written.get(key) {
        Some(w) if crate::resolve::parse_size_text(w) == Some(bytes) => w.clone(),
        _ => format_size(bytes),
    };
    if h.memory != DEFAULT_MEMORY || h.written.contains_key("memory") || inherits(&["memory"]) {
        p.statement("memory", Some(&size("memory", h.memory)));
    }
    if h.vcpus != DEFAULT_VCPUS || inherits(&["vcpus"]) {
        p.statement("vcpus", Some(&h.vcpus.to_string()));
    }
    if let Some(cpus) = &h.cpus {
        p.statement("cpus", Some(cpus));
    }
    p.opt("template", &h.template);
    for (key, v) in [
        ("size", h.size),
        ("free_space", h.free_space),
        ("swap", h.swap),
    ] {
        if let Some(bytes) = v {
            p.statement(key, Some(&size(key, bytes)));
        }
    }
    if h.lvm {
        p.statement("lvm", None);
    } else if inherits(&["lvm"]) {
        p.statement("lvm", Some("0"));
    }
    p.opt("lvm_vg", &h.lvm_vg);
    p.opt("lvm_snapshot", &h.lvm_snapshot);
    p.opt("filepath", &h.filepath);
    p.opt("cow_filesystem", &h.cow_filesystem);
    p.opt("kernel", &h.kernel);
    p.opt("ramdisk", &h.ramdisk);
    p.opt("extra", &h.extra);
    if h.boot_order != DEFAULT_BOOT_ORDER || inherits(&["boot_order"]) {
        p.statement("boot_order", Some(&h.boot_order.to_string()));
    }
    if let Some(t) = h.term {
        p.statement("term", Some(t.keyword()));
    }
    if let Some(ns) = h.nameserver {
        p.statement("nameserver", Some(&ns.to_string()));
    }
    p.opt("root_passwd", &h.root_passwd);
    for k in OwnerKeys::KEYWORDS {
        p.opt(k, &h.owner_keys.get(k).cloned());
    }
    for (k, v) in &h.unknown {
        p.statement(k, Some(v));
    }
    for i in &h.interfaces {
        interface(p, i);
    }
    let users: Vec<String> = h
        .users
        .iter()
        .map(|u| {
            let mut line = u.name.clone();
            for w in [Some(&u.hash).filter(|h| !h.is_empty()), u.home.as_ref()]
                .into_iter()
                .flatten()
            {
                line.push(' ');
                line.push_str(w);
            }
            if let Some(uid) = u.uid {
                let _ = write!(line, " {uid}");
            }
            line
        })
        .collect();
    p.list_nonempty("users", users.iter().map(String::as_str));
    let groups: Vec<String> = h
        .groups
        .iter()
        .map(|g| {
            std::iter::once(g.name.as_str())
                .chain(g.members.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    p.list_nonempty("groups", groups.iter().map(String::as_str));
    let files: Vec<String> = h
        .files
        .iter()
        .map(|f| match &f.mode {
            Some(m) => format!("{} {} {m}", f.src, f.dest),
            None => format!("{} {}", f.src, f.dest),
        })
        .collect();
    p.list_nonempty("files", files.iter().map(String::as_str));
    let mounts: Vec<String> = h
        .mount
        .iter()
        .map(|m| match &m.options {
            Some(o) => format!("{} {} {} {o}", m.src, m.point, m.fstype),
            None => format!("{} {} {}", m.src, m.point, m.fstype),
        })
        .collect();
    p.list_nonempty("mount", mounts.iter().map(String::as_str));
    for (name, lines) in [
        ("modules", &h.modules),
        ("startup", &h.startup),
        ("shutdown", &h.shutdown),
        ("sshkey", &h.sshkey),
        ("xen_extra", &h.xen_extra),
    ] {
        p.list_nonempty(name, lines.iter().map(String::as_str));
    }
    for b in &h.blocks {
        p.generic(b);
    }
    p.close();
}

fn interface(p: &mut Printer, i: &Interface) {
    p.open("network", Some(&i.name));
    p.opt("switch", &i.switch);
    if let Some(a) = &i.address {
        p.statement("address", Some(&a.to_string()));
    }
    for (k, v) in [
        ("netmask", i.netmask),
        ("broadcast", i.broadcast),
        ("gateway", i.gateway),
    ] {
        if let Some(v) = v {
            p.statement(k, Some(&v.to_string()));
        }
    }
    p.opt("mac", &i.mac);
    p.opt("bridge", &i.bridge);
    for (k, v) in &i.unknown {
        p.statement(k, Some(v));
    }
    p.close();
}

/// Indented output with MLN escaping.
#[derive(Default)]
struct Printer {
    out: String,
    depth: usize,
}

impl Printer {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    fn open(&mut self, name: &str, label: Option<&str>) {
        self.indent();
        escape_word(&mut self.out, name);
        if let Some(l) = label {
            self.out.push(' ');
            escape_word(&mut self.out, l);
        }
        self.out.push_str(" {\n");
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("}\n");
    }

    /// `keyword value`; a value-less statement is a flag.
    fn statement(&mut self, keyword: &str, value: Option<&str>) {
        self.indent();
        escape_word(&mut self.out, keyword);
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.out.push(' ');
            escape_value(&mut self.out, v);
        }
        self.out.push('\n');
    }

    fn opt(&mut self, keyword: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.statement(keyword, Some(v));
        }
    }

    fn assign(&mut self, name: &str, value: &str) {
        self.indent();
        self.out.push('$');
        self.out.push_str(name);
        self.out.push_str(" =");
        if !value.is_empty() {
            self.out.push(' ');
            escape_value(&mut self.out, value);
        }
        self.out.push('\n');
    }

    /// A list block, one line per item (each line a statement whose first
    /// word is the keyword).
    fn list<'a>(&mut self, name: &str, lines: impl Iterator<Item = &'a str>) {
        self.open(name, None);
        for line in lines {
            match line.split_once(' ') {
                Some((k, v)) => self.statement(k, Some(v)),
                None => self.statement(line, None),
            }
        }
        self.close();
    }

    fn list_nonempty<'a>(&mut self, name: &str, lines: impl Iterator<Item = &'a str>) {
        let mut lines = lines.peekable();
        if lines.peek().is_some() {
            self.list(name, lines);
        }
    }

    /// A generic block, walked with an explicit stack (a model built by a
    /// program may nest deeper than any parsed file).
    fn generic(&mut self, block: &GenericBlock) {
        self.open(&block.name, block.label.as_deref());
        let mut stack = vec![block.items.iter()];
        while let Some(items) = stack.last_mut() {
            let Some(item) = items.next() else {
                stack.pop();
                self.close();
                continue;
            };
            match item {
                GenericItem::Statement { keyword, value } => {
                    self.statement(keyword, value.as_deref());
                }
                GenericItem::Assign { name, value } => self.assign(name, value),
                GenericItem::Block(b) => {
                    self.open(&b.name, b.label.as_deref());
                    stack.push(b.items.iter());
                }
            }
        }
    }
}

/// Characters the lexer treats specially inside a value.
fn special(c: char) -> bool {
    matches!(c, ';' | '{' | '}' | '#' | '\\')
}

fn escape_value(out: &mut String, value: &str) {
    for c in value.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A keyword or label: one word, so whitespace is escaped too, and a
/// leading `$` (which would start a variable declaration).
fn escape_word(out: &mut String, word: &str) {
    for (i, c) in word.chars().enumerate() {
        if special(c) || c.is_whitespace() || (i == 0 && c == '$') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped() {
        let mut s = String::new();
        escape_value(&mut s, "a;b {c} #d \\e $x");
        assert_eq!(s, "a\\;b \\{c\\} \\#d \\\\e $x");
        let mut s = String::new();
        escape_word(&mut s, "$a b");
        assert_eq!(s, "\\$a\\ b");
    }

    #[test]
    fn deep_generic_blocks_print_without_recursion() {
        let mut b = GenericBlock {
            name: "x".into(),
            label: None,
            items: vec![],
        };
        for _ in 0..10_000 {
            b = GenericBlock {
                name: "x".into(),
                label: None,
                items: vec![GenericItem::Block(b)],
            };
        }
        let mut p = Printer::default();
        p.generic(&b);
        assert_eq!(p.out.matches('{').count(), 10_001);
        // Dropping a deep model is recursive in std; unwind it by hand.
        let mut cur = Some(b);
        while let Some(mut c) = cur {
            cur = match c.items.pop() {
                Some(GenericItem::Block(inner)) => Some(inner),
                _ => None,
            };
        }
    }
}
