//! Every diagnostic the resolver produces, each from a small project file,
//! with its exact span; and hostile inputs that must neither panic nor
//! exhaust the stack.

use std::path::Path;

use mln_lang::resolve::{resolve, Resolved};
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::{Code, Diagnostic, Diagnostics, SourceMap};

fn run(text: &str) -> (SourceMap, Result<Resolved, Diagnostics>) {
    let mut sources = SourceMap::new();
    let limits = Limits {
        max_nesting: 1024,
        ..Limits::default()
    };
    let ast = parse_source(&mut sources, Path::new("t.mln"), text.as_bytes(), &limits)
        .unwrap_or_else(|d| panic!("parse: {d}"));
    let r = resolve(&ast, &sources);
    (sources, r)
}

/// The diagnostics with `code`, as (source text under the span, message,
/// help).
fn found(text: &str, code: Code) -> Vec<(String, Diagnostic)> {
    let (sources, r) = run(text);
    let diags = match r {
        Ok(r) => r.warnings,
        Err(d) => d,
    };
    diags
        .0
        .into_iter()
        .filter(|d| d.code == code)
        .map(|d| {
            (
                d.span
                    .map_or(String::new(), |s| sources.text(s).to_string()),
                d,
            )
        })
        .collect()
}

/// Exactly one `code`, at the text `at`; returns it.
fn one(text: &str, code: Code, at: &str) -> Diagnostic {
    let f = found(text, code);
    assert_eq!(f.len(), 1, "{code}: {f:#?}");
    assert_eq!(f[0].0, at, "{code}: {:#?}", f[0].1);
    f[0].1.clone()
}

fn is_error(text: &str) -> bool {
    run(text).1.is_err()
}

const G: &str = "global { project t }\n";

#[test]
fn e0005_unknown_superclass_with_suggestion() {
    let t = format!("{G}superclass web {{ memory 1G }}\nhost a {{ superclass wbe }}\n");
    let d = one(&t, Code::UnknownSuperclass, "wbe");
    assert_eq!(d.help.as_deref(), Some("did you mean `web`?"));
    assert!(is_error(&t));
    // A superclass naming a missing parent, reported once for all its hosts.
    let t = format!(
        "{G}superclass web {{ superclass nothing }}\nhost a {{ superclass web }}\nhost b {{ superclass web }}\n"
    );
    one(&t, Code::UnknownSuperclass, "nothing");
    // The superclass of autoenum.
    let t = "global { project t; autoenum { superclass ghost; numhosts 3 } }\n";
    one(t, Code::UnknownSuperclass, "ghost");
}

#[test]
fn e0006_superclass_cycles() {
    let t = format!("{G}superclass a {{ superclass b }}\nsuperclass b {{ superclass a }}\nhost h {{ superclass a }}\n");
    let d = one(&t, Code::SuperclassCycle, "a");
    assert!(d.message.contains("`a` -> `b` -> `a`"), "{}", d.message);
    let t = format!("{G}superclass me {{ superclass me }}\n");
    one(&t, Code::SuperclassCycle, "me");
}

#[test]
fn e0009_bad_size_at_the_value_even_when_inherited() {
    let t = format!("{G}host a {{ memory 12Q }}\n");
    let d = one(&t, Code::BadSize, "12Q");
    assert!(d.help.is_some());
    // In a superclass: one diagnostic, pointing into the superclass.
    let t = format!(
        "{G}superclass s {{ swap lots }}\nhost a {{ superclass s }}\nhost b {{ superclass s }}\n"
    );
    one(&t, Code::BadSize, "lots");
    // Through a variable: the value as written.
    let t = "global { project t; $m = 3X }\nhost a { size $m }\n";
    one(t, Code::BadSize, "$m");
}

#[test]
fn e0010_bad_addresses() {
    one(
        &format!("{G}host a {{ network eth0 {{ address 10.0.0.256 }} }}\n"),
        Code::BadAddress,
        "10.0.0.256",
    );
    one(
        &format!("{G}host a {{ network eth0 {{ address 10.0.0.1/40 }} }}\n"),
        Code::BadAddress,
        "10.0.0.1/40",
    );
    one(
        &format!("{G}host a {{ network eth0 {{ gateway gw }} }}\n"),
        Code::BadAddress,
        "gw",
    );
    one(
        &format!("{G}host a {{ nameserver dns1 }}\n"),
        Code::BadAddress,
        "dns1",
    );
    one(
        "global { project t; autoenum { numhosts 2; net 10.0.0; address auto } }\n",
        Code::BadAddress,
        "10.0.0",
    );
    // autoenum running past the end of the address space
    one(
        "global { project t; autoenum { numhosts 2; net 255.255.255.255; address auto } }\n",
        Code::BadAddress,
        "255.255.255.255",
    );
}

#[test]
fn e0011_bad_netmask() {
    one(
        &format!("{G}host a {{ network eth0 {{ netmask 255.0.255.0 }} }}\n"),
        Code::BadNetmask,
        "255.0.255.0",
    );
    one(
        &format!("{G}host a {{ network eth0 {{ netmask 24 }} }}\n"),
        Code::BadNetmask,
        "24",
    );
}

#[test]
fn e0012_bad_mac() {
    one(
        &format!("{G}host a {{ network eth0 {{ mac 00:11:22:33:44 }} }}\n"),
        Code::BadMac,
        "00:11:22:33:44",
    );
    one(
        &format!("{G}host a {{ network eth0 {{ mac 00:11:22:33:44:zz }} }}\n"),
        Code::BadMac,
        "00:11:22:33:44:zz",
    );
}

#[test]
fn e0017_missing_project() {
    let d = found("host a { memory 1G }\n", Code::MissingProject);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1.span, None);
    one("global { $x = 1 }\n", Code::MissingProject, "global");
    one("global { project }\n", Code::MissingProject, "global");
}

#[test]
fn e0021_too_many_generated_hosts() {
    let t = "global { project t; autoenum { numhosts 4000000000 } }\n";
    one(t, Code::LimitExceeded, "4000000000");
    let t = "global { project t; autoenum { numhosts 60000 }; autoenum1 { numhosts 60000; hostprefix x } }\n";
    let (_, r) = run(t);
    assert!(r.is_err());
}

#[test]
fn e0022_bad_numbers() {
    one(
        &format!("{G}host a {{ vcpus two }}\n"),
        Code::BadNumber,
        "two",
    );
    one(
        &format!("{G}host a {{ boot_order -1 }}\n"),
        Code::BadNumber,
        "-1",
    );
    one(
        "global { project t; autoenum { numhosts many } }\n",
        Code::BadNumber,
        "many",
    );
    one(
        "global { project t; autoenum { numhosts 2; addresses_begin x } }\n",
        Code::BadNumber,
        "x",
    );
    one(
        "global { project t; autoenum { numhosts 2; service_hosts { s1 some } } }\n",
        Code::BadNumber,
        "some",
    );
    one(
        &format!("{G}host a {{ users {{ bob hash /home/bob uid }} }}\n"),
        Code::BadNumber,
        "bob hash /home/bob uid",
    );
}

#[test]
fn e0023_bad_values() {
    one(
        &format!("{G}host a {{ term kitty }}\n"),
        Code::BadValue,
        "kitty",
    );
    one(&format!("{G}host a {{ vcpus 0 }}\n"), Code::BadValue, "0");
    one(
        &format!("{G}host a {{ xen; kvm }}\n"),
        Code::BadValue,
        "kvm",
    );
    one(
        &format!("{G}host a {{ startup reboot }}\n"),
        Code::BadValue,
        "startup",
    );
    one(
        &format!("{G}host a {{ network {{ address 10.0.0.1 }} }}\n"),
        Code::BadValue,
        "network",
    );
    one(
        &format!("{G}host {{ memory 1G }}\n"),
        Code::BadValue,
        "host",
    );
    one(
        &format!("{G}host a {{ lvm maybe }}\n"),
        Code::BadValue,
        "maybe",
    );
    one(
        &format!("{G}switch s {{ hub perhaps }}\n"),
        Code::BadValue,
        "perhaps",
    );
    one(
        &format!("{G}host a {{ files {{ /only-one }} }}\n"),
        Code::BadValue,
        "/only-one",
    );
    one(
        &format!("{G}host a {{ mount {{ /dev/sdb /mnt }} }}\n"),
        Code::BadValue,
        "/dev/sdb /mnt",
    );
    one(
        "global { project t; autoenum { hostprefix x } }\n",
        Code::BadValue,
        "autoenum",
    );
    one(
        "global { project t; autoenum { numhosts 2; address auto } }\n",
        Code::BadValue,
        "auto",
    );
    one(
        "global { project t; autoenum { numhosts 2; net 10.0.0.0; address manual } }\n",
        Code::BadValue,
        "manual",
    );
}

#[test]
fn w0001_unknown_keywords_with_suggestions() {
    let t = format!("{G}host a {{ memroy 256M }}\n");
    let d = one(&t, Code::UnknownKeyword, "memroy");
    assert_eq!(d.help.as_deref(), Some("did you mean `memory`?"));
    assert!(!is_error(&t));
    let d = one(
        &format!("{G}host a {{ network eth0 {{ adress 10.0.0.1 }} }}\n"),
        Code::UnknownKeyword,
        "adress",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `address`?"));
    let d = one(
        &format!("{G}switch s {{ brige br0 }}\n"),
        Code::UnknownKeyword,
        "brige",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `bridge`?"));
    let d = one(
        "global { project t; projet_password x }\n",
        Code::UnknownKeyword,
        "projet_password",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `project_password`?"));
    let d = one(
        "global { project t; autoenum { numhost 3 } }\n",
        Code::UnknownKeyword,
        "numhost",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `numhosts`?"));
    // In a superclass: once, however many hosts inherit it.
    one(
        &format!("{G}superclass s {{ tempalte x }}\nhost a {{ superclass s }}\nhost b {{ superclass s }}\n"),
        Code::UnknownKeyword,
        "tempalte",
    );
    // Blocks one typo away from a known block are flagged too (and kept).
    let d = one(
        &format!("{G}host a {{ starup {{ echo hi }} }}\n"),
        Code::UnknownKeyword,
        "starup",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `startup`?"));
    let d = one("globl { project t }\n", Code::UnknownKeyword, "globl");
    assert_eq!(d.help.as_deref(), Some("did you mean `global`?"));
    let d = one(
        "global { project t; afterHostStart { echo } }\n",
        Code::UnknownKeyword,
        "afterHostStart",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `afterHostsStart`?"));
    // A plugin's own block is not a typo.
    assert!(found(
        &format!("{G}host a {{ monitoring {{ port 80 }} }}\n"),
        Code::UnknownKeyword
    )
    .is_empty());
    // The value is kept for extensions.
    let (_, r) = run(&format!("{G}host a {{ gpu passthrough }}\n"));
    assert_eq!(r.unwrap().project.hosts[0].unknown["gpu"], "passthrough");
}

#[test]
fn w0004_undefined_variable_points_at_the_variable() {
    let t = format!("{G}host a {{ startup {{ echo $greeting world }} }}\n");
    let d = one(&t, Code::UndefinedVariable, "$greeting");
    assert!(d.message.contains("`$greeting`"));
    let (_, r) = run(&t);
    assert_eq!(
        r.unwrap().project.hosts[0].startup,
        ["echo $greeting world"]
    );
    one(
        &format!("{G}host a {{ template $[img].ext4 }}\n"),
        Code::UndefinedVariable,
        "$[img]",
    );
    // Crypt hashes are not variables.
    assert!(found(
        &format!("{G}host a {{ root_passwd $6$salt$hash; users {{ bob $1$ab$cd }} }}\n"),
        Code::UndefinedVariable
    )
    .is_empty());
    // `$1` is not a variable at all.
    assert!(found(
        &format!("{G}host a {{ startup {{ echo $1 }} }}\n"),
        Code::UndefinedVariable
    )
    .is_empty());
}

#[test]
fn a_superclass_chain_of_100000_resolves_without_recursion() {
    let n = 100_000;
    let mut t = String::from(G);
    for i in 0..n - 1 {
        t.push_str(&format!("superclass s{i} {{ superclass s{} }}\n", i + 1));
    }
    t.push_str(&format!(
        "superclass s{} {{ memory 1M; startup {{ echo deep }} }}\n",
        n - 1
    ));
    t.push_str("host h { superclass s0 }\n");
    let (_, r) = run(&t);
    let p = r.unwrap().project;
    assert_eq!(p.hosts[0].memory, 1024 * 1024);
    assert_eq!(p.hosts[0].superclasses.len(), n);
    assert_eq!(p.hosts[0].startup, ["echo deep"]);

    // And closed into a cycle: one bounded error.
    let mut t = String::from(G);
    for i in 0..n {
        t.push_str(&format!(
            "superclass s{i} {{ superclass s{} }}\n",
            (i + 1) % n
        ));
    }
    t.push_str("host h { superclass s0 }\n");
    let f = found(&t, Code::SuperclassCycle);
    assert_eq!(f.len(), 1);
    assert!(f[0].1.message.len() < 500);
}

#[test]
fn deeply_nested_generic_blocks_are_fine() {
    let depth = 1000;
    let t = format!(
        "{G}host a {{ {} x 1 {} }}\n",
        "b { ".repeat(depth),
        "} ".repeat(depth)
    );
    let (_, r) = run(&t);
    let r = r.unwrap();
    assert_eq!(r.project.hosts[0].blocks.len(), 1);
}

#[test]
fn variable_bombs_are_cut_off() {
    let mut t = String::from("global { project t; $a = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
    for (v, prev) in [
        ("b", "a"),
        ("c", "b"),
        ("d", "c"),
        ("e", "d"),
        ("f", "e"),
        ("g", "f"),
    ] {
        t.push_str(&format!("${v} = {}\n", format!("${prev} ").repeat(16)));
    }
    t.push_str("}\nhost h { template $g }\n");
    let f = found(&t, Code::LimitExceeded);
    assert_eq!(f.len(), 1);
}

#[test]
fn large_generic_blocks_merge_in_linear_time() {
    let n = 20_000;
    let body = |v: &str| {
        (0..n)
            .map(|i| format!("k{i} {v}; b{i} {{ x {v} }}\n"))
            .collect::<String>()
    };
    let t = format!(
        "{G}superclass s {{ plugin {{ {} }} }}\nhost a {{ superclass s; plugin {{ {} }} }}\n",
        body("old"),
        body("new")
    );
    let (_, r) = run(&t);
    let p = r.unwrap().project;
    let plugin = &p.hosts[0].blocks[0];
    assert_eq!(plugin.items.len(), 2 * n);
}

#[test]
fn sshkey_lines_need_a_user_then_a_key() {
    let text = format!(
        "{G}host h {{\n  sshkey {{\n    root ssh-ed25519 AAAAC3Nza you@desk\n    ssh-ed25519 AAAAC3Nza you@desk\n  }}\n}}\n"
    );
    let d = one(&text, Code::BadValue, "ssh-ed25519 AAAAC3Nza you@desk");
    assert!(d.message.contains("not `USER KEY`"), "{d:?}");
    assert!(is_error(&text));
    let good =
        format!("{G}host h {{\n  sshkey {{\n    root ssh-ed25519 AAAAC3Nza you@desk\n  }}\n}}\n");
    assert!(!is_error(&good));
}
