//! Graphviz DOT.

use std::fmt::Write;

use super::{host_label, End, Topology};
use crate::plan::DesiredProject;

/// The project's topology as an undirected Graphviz graph: hosts are
/// boxes (`"host:NAME"`), switches ellipses (`"switch:NAME"`), existing
/// host bridges notes (`"bridge:NAME"`), one edge per interface labelled
/// with the interface and its address; each service host is a cluster.
/// Render it with `dot -Tsvg lab.dot -o lab.svg`.
///
/// ```
/// use mln_lang::plan::{DesiredProject, HostSpec, HostInterface, SwitchSpec, derived_mac};
/// let mut p = DesiredProject::new("lab");
/// p.add_switch(SwitchSpec::new("lan"));
/// let mut web = HostSpec::new("web");
/// web.interfaces.push(HostInterface {
///     name: "eth0".into(),
///     switch: Some("lan".into()),
///     bridge: None,
///     mac: derived_mac("lab", "web", "eth0"),
///     address: Some("10.0.0.1".into()),
///     netmask: Some("255.255.255.0".into()),
///     gateway: None,
/// });
/// p.add_host(web);
/// let dot = mln_lang::graph::to_dot(&p);
/// assert!(dot.contains(r#""host:web" -- "switch:lan" [label="eth0\n10.0.0.1/24"]"#));
/// ```
pub fn to_dot(project: &DesiredProject) -> String {
    let t = Topology::of(project);
    let mut out = String::new();
    let _ = writeln!(out, "graph {} {{", quote(&[t.project]));
    let _ = writeln!(
        out,
        "  label={};",
        quote(&[&format!("project {}", t.project)])
    );
    out.push_str("  labelloc=t;\n");
    out.push_str("  fontname=\"Helvetica\";\n");
    out.push_str("  node [fontname=\"Helvetica\"];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (place, what) in &t.places {
        let indent = match place {
            Some(server) => {
                let _ = writeln!(
                    out,
                    "  subgraph {} {{",
                    quote(&[&format!("cluster_{server}")])
                );
                let _ = writeln!(out, "    label={};", quote(&[server]));
                out.push_str("    style=rounded;\n");
                "    "
            }
            None => "  ",
        };
        for (name, hub) in &what.switches {
            let label = if *hub {
                vec![*name, "(hub)"]
            } else {
                vec![*name]
            };
            let _ = writeln!(
                out,
                "{indent}{} [label={}, shape=ellipse, style=filled, fillcolor=\"#e8e8e8\"];",
                quote(&[&format!("switch:{name}")]),
                quote(&label)
            );
        }
        for h in &what.hosts {
            let [name, detail] = host_label(h);
            let _ = writeln!(
                out,
                "{indent}{} [label={}, shape=box];",
                quote(&[&format!("host:{name}")]),
                quote(&[&name, &detail])
            );
        }
        if place.is_some() {
            out.push_str("  }\n");
        }
    }
    for b in &t.bridges {
        let _ = writeln!(
            out,
            "  {} [label={}, shape=note];",
            quote(&[&format!("bridge:{b}")]),
            quote(&[&format!("bridge {b}")])
        );
    }
    for l in &t.links {
        let end = match l.end {
            End::Switch(s) => format!("switch:{s}"),
            End::Bridge(b) => format!("bridge:{b}"),
        };
        let label: Vec<&str> = l.label.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  {} -- {} [label={}];",
            quote(&[&format!("host:{}", l.host)]),
            quote(&[&end]),
            quote(&label)
        );
    }
    out.push_str("}\n");
    out
}

/// A DOT quoted string of `lines` joined by line breaks (`\n`), with
/// quotes and backslashes in them escaped.
fn quote(lines: &[&str]) -> String {
    let escaped: Vec<String> = lines
        .iter()
        .map(|l| {
            l.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        })
        .collect();
    format!("\"{}\"", escaped.join("\\n"))
}
