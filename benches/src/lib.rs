//! Generators of test projects shared by the benchmarks.
//!
//! The projects look like real ones: a `global` block with a variable and a
//! project hook, two superclasses (one inheriting from the other), a switch
//! per 250 hosts, and hosts with a network interface, a few keywords and a
//! `startup` list. Every tenth host has a second interface on a backbone
//! switch, every seventh overrides its memory.

#![forbid(unsafe_code)]

use std::fmt::Write;

mod cpu_time;
pub mod guests;

pub use cpu_time::ThreadCpuTime;

/// How many hosts share one generated switch (a /24 has room for them).
const HOSTS_PER_SWITCH: usize = 250;

/// The text of a valid project with `hosts` hosts.
///
/// ```
/// let text = benches::generate_project(3);
/// assert!(text.contains("host node1 {"));
/// assert!(text.contains("project bench"));
/// ```
pub fn generate_project(hosts: usize) -> String {
    // About 330 bytes per host.
    let mut out = String::with_capacity(1024 + hosts * 340);
    out.push_str(
        "# Generated benchmark project.\n\
         global {\n\
         \x20   project bench\n\
         \x20   $domain = bench.example.org\n\
         \x20   afterProjectStart {\n\
         \x20       echo \"project $project started\"\n\
         \x20   }\n\
         }\n\n\
         superclass base {\n\
         \x20   memory 128M\n\
         \x20   template debian-12.ext4\n\
         \x20   nameserver 10.0.0.254\n\
         \x20   term screen\n\
         \x20   startup {\n\
         \x20       hostname $hostname.$domain\n\
         \x20       echo \"booted\" > /etc/motd\n\
         \x20   }\n\
         }\n\n\
         superclass worker {\n\
         \x20   superclass base\n\
         \x20   xen\n\
         \x20   vcpus 2\n\
         \x20   free_space 500M\n\
         }\n\n\
         switch backbone {\n\
         \x20   hub\n\
         }\n\n",
    );
    let switches = hosts.div_ceil(HOSTS_PER_SWITCH);
    for s in 0..switches {
        let _ = write!(
            out,
            "switch lan{s} {{\n    service_host server-{}\n}}\n\n",
            s % 4
        );
    }
    for h in 0..hosts {
        let s = h / HOSTS_PER_SWITCH;
        let ip = h % HOSTS_PER_SWITCH + 1;
        let _ = write!(
            out,
            "host node{h} {{\n    superclass worker\n    service_host server-{}\n",
            s % 4
        );
        if h % 7 == 0 {
            out.push_str("    memory 256M\n");
        }
        let _ = write!(
            out,
            "    network eth0 {{\n        switch lan{s}\n        address 10.{}.{}.{ip}\n        netmask 255.255.255.0\n    }}\n",
            s / 256,
            s % 256
        );
        if h % 10 == 0 {
            let _ = writeln!(
                out,
                "    network eth1 {{ switch backbone; address 172.16.{}.{} }}",
                // One backbone address per tenth host: unique up to 640,000 hosts.
                h / 10 / 250,
                h / 10 % 250 + 1
            );
        }
        let _ = write!(
            out,
            "    startup {{\n        echo node{h} > /etc/hostname\n        service ssh start\n    }}\n}}\n\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_projects_are_valid() {
        let text = generate_project(100_000);
        if let Err(report) = mln_lang::load_str("bench.mln", &text) {
            panic!("{}", report.diagnostics);
        }
    }
    use mln_lang::syntax::{parse_source, Item, Limits};
    use mln_lang::SourceMap;
    use std::path::Path;

    #[test]
    fn generated_projects_parse() {
        for n in [0, 1, 10, 1000] {
            let text = generate_project(n);
            let mut sources = SourceMap::new();
            let ast = parse_source(
                &mut sources,
                Path::new("bench.mln"),
                text.as_bytes(),
                &Limits::default(),
            )
            .unwrap();
            let hosts = ast
                .items
                .iter()
                .filter(|i| matches!(i, Item::Block(b) if b.name.node == "host"))
                .count();
            assert_eq!(hosts, n);
        }
    }

    #[test]
    fn size_grows_linearly() {
        let per_host = (generate_project(1000).len() - generate_project(0).len()) / 1000;
        assert!((200..500).contains(&per_host), "{per_host}");
    }
}
