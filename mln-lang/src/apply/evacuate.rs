//! `mln evacuate SERVER`: the hosts of one server placed on the project's
//! other servers, as many as their free memory takes, largest first, each
//! where the most room is left. The result is the project as it should be
//! after the evacuation; a plan towards it with the server given up for
//! lost (`PlanOptions::lost`) makes its hosts afresh where they go, and
//! records what the lost server keeps, to remove when it answers again.

use std::collections::BTreeMap;

use super::ServerMemory;
use crate::plan::DesiredProject;

/// Where one host goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The host.
    pub host: String,
    /// The server it leaves.
    pub from: String,
    /// The server it goes to (`None`: this machine).
    pub to: Option<String>,
    /// Its memory, bytes.
    pub memory: u64,
}

/// The project with one server's hosts placed elsewhere.
#[derive(Debug, Clone)]
pub struct Evacuation {
    /// The project as it should be afterwards.
    pub desired: DesiredProject,
    /// Where each host went, in the order placed.
    pub placements: Vec<Placement>,
}

/// Why a server cannot be evacuated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvacuateError {
    /// No host of the project runs there.
    #[error("project {project} has no host on {server}")]
    NothingThere {
        /// The project.
        project: String,
        /// The server.
        server: String,
    },
    /// A switch's home instance is on the server: the hosts of the other
    /// servers would lose it with the server.
    #[error(
        "switch {switch} lives on {server}: give it another service_host in the project file \
         (or none, for this machine) and run upgrade first"
    )]
    SwitchHome {
        /// The switch.
        switch: String,
        /// The server.
        server: String,
    },
    /// Nowhere to go: no other server answered.
    #[error("no other server of project {project} answers, so {server}'s hosts have nowhere to go (name one with --to)")]
    NoTarget {
        /// The project.
        project: String,
        /// The server.
        server: String,
    },
    /// A host fits nowhere.
    #[error(
        "{host} needs {} and the most any other server has left is {} ({}); \
         nothing was changed",
        mib(*need),
        mib(*best_free),
        best.as_deref().unwrap_or("this machine")
    )]
    NoRoom {
        /// The host.
        host: String,
        /// Its memory, bytes.
        need: u64,
        /// The server with the most room left.
        best: Option<String>,
        /// That room, bytes.
        best_free: u64,
    },
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// The servers a project's hosts of `server` can go to: every other server
/// the project uses, and `extra` (`--to`); `None` is this machine, a
/// candidate when the project has hosts here or `extra` names it.
pub fn candidates(
    desired: &DesiredProject,
    server: &str,
    extra: &[Option<String>],
) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    let used = desired.hosts.values().map(|h| h.service_host.clone());
    for c in used.chain(extra.iter().cloned()) {
        if c.as_deref() != Some(server) && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Place the hosts of `desired` on `server` among `room` (free memory by
/// candidate server, bytes): largest first, each where the most is left.
pub fn place(
    desired: &DesiredProject,
    server: &str,
    room: &BTreeMap<Option<String>, u64>,
) -> Result<Evacuation, EvacuateError> {
    if let Some(sw) = desired
        .switches
        .values()
        .find(|s| s.service_host.as_deref() == Some(server))
    {
        return Err(EvacuateError::SwitchHome {
            switch: sw.name.clone(),
            server: server.to_string(),
        });
    }
    let mut leaving: Vec<(&String, u64)> = desired
        .hosts
        .values()
        .filter(|h| h.service_host.as_deref() == Some(server))
        .map(|h| (&h.name, h.memory))
        .collect();
    if leaving.is_empty() {
        return Err(EvacuateError::NothingThere {
            project: desired.name.clone(),
            server: server.to_string(),
        });
    }
    if room.is_empty() {
        return Err(EvacuateError::NoTarget {
            project: desired.name.clone(),
            server: server.to_string(),
        });
    }
    // Largest first; names break ties so the result does not depend on
    // map order.
    leaving.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut left = room.clone();
    let mut out = desired.clone();
    let mut placements = Vec::new();
    for (host, need) in leaving {
        // The most room, then the first by name.
        let best = left
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(s, free)| (s.clone(), *free));
        let Some((to, free)) = best.clone().filter(|(_, free)| *free >= need) else {
            let (best, best_free) = best.unwrap_or((None, 0));
            return Err(EvacuateError::NoRoom {
                host: host.clone(),
                need,
                best,
                best_free,
            });
        };
        left.insert(to.clone(), free - need);
        if let Some(h) = out.hosts.get_mut(host) {
            h.service_host = to.clone();
        }
        placements.push(Placement {
            host: host.clone(),
            from: server.to_string(),
            to,
            memory: need,
        });
    }
    Ok(Evacuation {
        desired: out,
        placements,
    })
}

/// The free memory of each of `candidates` that answers; the others are
/// left out (and logged).
pub fn room(
    memory: &dyn ServerMemory,
    candidates: &[Option<String>],
) -> BTreeMap<Option<String>, u64> {
    candidates
        .iter()
        .filter_map(|c| match memory.memory(c.as_deref()) {
            Ok(cap) => Some((c.clone(), cap.free())),
            Err(e) => {
                log::warn!(
                    "{}: not a place for evacuated hosts: {e}",
                    c.as_deref().unwrap_or("this machine")
                );
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{HostSpec, SwitchSpec};

    fn project() -> DesiredProject {
        let mut p = DesiredProject::new("lab");
        for (name, server, mib) in [
            ("a", "s1", 256),
            ("b", "s1", 128),
            ("c", "s1", 128),
            ("d", "s2", 64),
            ("e", "s3", 64),
        ] {
            let mut h = HostSpec::new(name);
            h.service_host = Some(server.to_string());
            h.memory = mib << 20;
            p.add_host(h);
        }
        p.add_switch(SwitchSpec::new("lan"));
        p
    }

    fn room(entries: &[(&str, u64)]) -> BTreeMap<Option<String>, u64> {
        entries
            .iter()
            .map(|(s, mib)| (Some(s.to_string()), mib << 20))
            .collect()
    }

    #[test]
    fn largest_first_where_the_most_room_is_left() {
        let e = place(&project(), "s1", &room(&[("s2", 300), ("s3", 260)])).unwrap();
        let got: Vec<(&str, Option<&str>)> = e
            .placements
            .iter()
            .map(|p| (p.host.as_str(), p.to.as_deref()))
            .collect();
        // a (256) to s2 (300 → 44); b (128) to s3 (260 → 132); c (128) to
        // s3 (132 → 4).
        assert_eq!(
            got,
            [("a", Some("s2")), ("b", Some("s3")), ("c", Some("s3"))]
        );
        assert_eq!(e.desired.hosts["a"].service_host.as_deref(), Some("s2"));
        assert_eq!(e.desired.hosts["d"].service_host.as_deref(), Some("s2"));
    }

    #[test]
    fn a_host_that_fits_nowhere_names_itself_and_the_best_server() {
        let err = place(&project(), "s1", &room(&[("s2", 200), ("s3", 100)])).unwrap_err();
        assert_eq!(
            err,
            EvacuateError::NoRoom {
                host: "a".into(),
                need: 256 << 20,
                best: Some("s2".into()),
                best_free: 200 << 20,
            }
        );
        assert!(err.to_string().contains("a needs 256 MiB"), "{err}");
    }

    #[test]
    fn a_switch_at_home_on_the_server_and_an_empty_server_are_refused() {
        let mut p = project();
        p.switches.get_mut("lan").unwrap().service_host = Some("s1".into());
        assert!(matches!(
            place(&p, "s1", &room(&[("s2", 1000)])),
            Err(EvacuateError::SwitchHome { .. })
        ));
        assert!(matches!(
            place(&project(), "s9", &room(&[("s2", 1000)])),
            Err(EvacuateError::NothingThere { .. })
        ));
        assert!(matches!(
            place(&project(), "s1", &BTreeMap::new()),
            Err(EvacuateError::NoTarget { .. })
        ));
    }

    #[test]
    fn candidates_are_the_other_servers_and_those_named() {
        let c = candidates(&project(), "s1", &[None, Some("s2".into())]);
        assert_eq!(c, [Some("s2".into()), Some("s3".into()), None]);
    }
}
