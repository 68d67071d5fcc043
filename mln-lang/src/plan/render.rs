//! A plan as a human diff, in the manner of `terraform plan`.

use std::fmt::Write;

use super::types::{HostChangeKind, Op, Plan, SwitchChangeKind};

/// `128M`, `1G`, `1536K`: the largest binary unit that divides evenly.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (unit, suffix) in UNITS {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

/// A service host in words: its name, or `local`.
pub(crate) fn server(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "local".to_string())
}

/// Counts of what a plan does to hosts and switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Hosts and switches created.
    pub create: usize,
    /// Hosts updated in place (live or with a restart).
    pub update: usize,
    /// Hosts rebuilt (and switches recreated).
    pub rebuild: usize,
    /// Hosts moved between service hosts.
    pub moved: usize,
    /// Hosts and switches removed.
    pub destroy: usize,
    /// Hosts started, stopped or repaired without a change.
    pub other: usize,
}

impl Plan {
    /// How many objects each kind of change touches.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for h in &self.hosts {
            match h.kind {
                HostChangeKind::Create => c.create += 1,
                HostChangeKind::Update(_) => c.update += 1,
                HostChangeKind::Rebuild => c.rebuild += 1,
                HostChangeKind::Move => c.moved += 1,
                HostChangeKind::Destroy => c.destroy += 1,
                HostChangeKind::Start | HostChangeKind::Stop | HostChangeKind::Repair => {
                    c.other += 1
                }
            }
        }
        for s in &self.switches {
            match s.kind {
                SwitchChangeKind::Create => c.create += 1,
                SwitchChangeKind::Recreate => c.rebuild += 1,
                SwitchChangeKind::Remove => c.destroy += 1,
            }
        }
        c
    }

    /// The plan as a readable diff: one line per changed host or switch
    /// (`+ create`, `~ update live`, `-/+ rebuild`, `→ move`, `- destroy`),
    /// its attribute changes with their class beneath, and a count line.
    ///
    /// ```
    /// use mln_lang::plan::{plan, DesiredProject, Goal, HostSpec, Observed, PlanOptions};
    /// let mut p = DesiredProject::new("lab");
    /// p.add_host(HostSpec::new("web"));
    /// let text = plan(&p, None, &Observed::default(), &PlanOptions::new(Goal::Up)).render_diff();
    /// assert!(text.contains("+ host web"));
    /// ```
    pub fn render_diff(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan for project {} ({}):",
            self.project,
            self.goal.as_str()
        );
        for s in &self.switches {
            let (sign, word) = match s.kind {
                SwitchChangeKind::Create => ("+", "create"),
                SwitchChangeKind::Recreate => ("-/+", "recreate"),
                SwitchChangeKind::Remove => ("-", "remove"),
            };
            let _ = writeln!(out, "  {sign} switch {} {word} ({})", s.switch, s.reason);
            if !s.replugged.is_empty() {
                let _ = writeln!(out, "      re-plugs {}", s.replugged.join(", "));
            }
        }
        for h in &self.hosts {
            let line = match h.kind {
                HostChangeKind::Create => format!("+ host {} create on {}", h.host, server(&h.to)),
                HostChangeKind::Update(class) => {
                    format!("~ host {} update {}", h.host, class.as_str())
                }
                HostChangeKind::Rebuild => format!("-/+ host {} rebuild", h.host),
                HostChangeKind::Move => {
                    let how = self
                        .actions
                        .iter()
                        .find_map(|a| match &a.op {
                            Op::Move {
                                host, live, lost, ..
                            } if *host == h.host => Some(match (live, lost) {
                                (_, true) => "started elsewhere: its server is lost",
                                (true, _) => "live",
                                _ => "cold",
                            }),
                            _ => None,
                        })
                        .unwrap_or("cold");
                    format!(
                        "→ host {} move {} → {} ({how})",
                        h.host,
                        server(&h.from),
                        server(&h.to),
                    )
                }
                HostChangeKind::Destroy => format!("- host {} destroy", h.host),
                HostChangeKind::Start => format!("> host {} start", h.host),
                HostChangeKind::Stop => format!("# host {} stop", h.host),
                HostChangeKind::Repair => format!("! host {} repair", h.host),
            };
            let _ = writeln!(out, "  {line}");
            for c in &h.changes {
                let _ = writeln!(
                    out,
                    "      {}: {} → {} ({})",
                    c.attr,
                    c.from,
                    c.to,
                    c.class.as_str()
                );
            }
            if h.kind == HostChangeKind::Rebuild {
                let _ = writeln!(
                    out,
                    "      warning: its disk is made anew from the template: \
                     what the guest wrote on it is lost"
                );
            }
            for l in &h.links {
                let _ = writeln!(
                    out,
                    "      links on {}: peers {} checked again",
                    l.switch,
                    if l.peers.is_empty() {
                        "(none)".to_string()
                    } else {
                        l.peers.join(", ")
                    }
                );
            }
        }
        let c = self.counts();
        let _ = writeln!(
            out,
            "Plan: {} to create, {} to update, {} to rebuild, {} to move, {} to destroy, {} to start/stop; {} actions.",
            c.create,
            c.update,
            c.rebuild,
            c.moved,
            c.destroy,
            c.other,
            self.actions.len()
        );
        out
    }

    /// The actions one per line with what they wait for, for `--verbose`.
    pub fn render_actions(&self) -> String {
        let mut out = String::new();
        for a in &self.actions {
            let _ = write!(out, "{:>4}  {}", a.id.0, a.op.describe());
            if let Some(s) = &a.service_host {
                let _ = write!(out, " on {s}");
            }
            if !a.after.is_empty() {
                let ids: Vec<String> = a.after.iter().map(|i| i.0.to_string()).collect();
                let _ = write!(out, "  (after {})", ids.join(", "));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_print_in_the_largest_even_unit() {
        assert_eq!(size(128 << 20), "128M");
        assert_eq!(size(2 << 30), "2G");
        assert_eq!(size(1536 << 10), "1536K");
        assert_eq!(size(1000), "1000B");
    }
}
