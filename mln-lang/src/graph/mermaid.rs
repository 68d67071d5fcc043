//! Mermaid flowcharts.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{host_label, End, Topology};
use crate::plan::DesiredProject;

/// The project's topology as a Mermaid flowchart: hosts are rectangles,
/// switches circles, existing host bridges flags, one link per interface
/// labelled with the interface and its address; each service host is a
/// subgraph. Node ids are `h0`, `s0`, `b0`, ... (names can hold
/// characters Mermaid ids cannot), names are in the labels.
///
/// ```
/// use mln_lang::plan::{DesiredProject, HostSpec, SwitchSpec};
/// let mut p = DesiredProject::new("lab");
/// p.add_switch(SwitchSpec::new("lan"));
/// p.add_host(HostSpec::new("web"));
/// let text = mln_lang::graph::to_mermaid(&p);
/// assert!(text.contains(r#"s0(("lan"))"#));
/// assert!(text.contains(r#"h0["web<br/>uml, 128M"]"#));
/// ```
pub fn to_mermaid(project: &DesiredProject) -> String {
    let t = Topology::of(project);
    let mut out = String::new();
    let _ = writeln!(out, "---\ntitle: project {}\n---", t.project);
    out.push_str("flowchart LR\n");
    let mut switch_ids: BTreeMap<&str, String> = BTreeMap::new();
    let mut host_ids: BTreeMap<&str, String> = BTreeMap::new();
    let mut bridge_ids: BTreeMap<&str, String> = BTreeMap::new();
    for (n, (place, what)) in t.places.iter().enumerate() {
        let indent = match place {
            Some(server) => {
                let _ = writeln!(out, "  subgraph c{n}[{}]", quote(&[server]));
                "    "
            }
            None => "  ",
        };
        for (name, hub) in &what.switches {
            let id = format!("s{}", switch_ids.len());
            let label = if *hub {
                vec![*name, "(hub)"]
            } else {
                vec![*name]
            };
            let _ = writeln!(out, "{indent}{id}(({}))", quote(&label));
            switch_ids.insert(name, id);
        }
        for h in &what.hosts {
            let id = format!("h{}", host_ids.len());
            let [name, detail] = host_label(h);
            let _ = writeln!(out, "{indent}{id}[{}]", quote(&[&name, &detail]));
            host_ids.insert(&h.name, id);
        }
        if place.is_some() {
            out.push_str("  end\n");
        }
    }
    for b in &t.bridges {
        let id = format!("b{}", bridge_ids.len());
        let _ = writeln!(out, "  {id}>{}]", quote(&[&format!("bridge {b}")]));
        bridge_ids.insert(b, id);
    }
    for l in &t.links {
        let (Some(host), Some(end)) = (
            host_ids.get(l.host),
            match l.end {
                End::Switch(s) => switch_ids.get(s),
                End::Bridge(b) => bridge_ids.get(b),
            },
        ) else {
            continue;
        };
        let label: Vec<&str> = l.label.iter().map(String::as_str).collect();
        let _ = writeln!(out, "  {host} ---|{}| {end}", quote(&label));
    }
    out
}

/// A Mermaid quoted label of `lines` joined by `<br/>`, with the
/// characters Mermaid or HTML would read written as entity codes.
fn quote(lines: &[&str]) -> String {
    let escaped: Vec<String> = lines
        .iter()
        .map(|l| {
            l.replace('#', "#35;")
                .replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
        })
        .collect();
    format!("\"{}\"", escaped.join("<br/>"))
}
