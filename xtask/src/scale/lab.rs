//! The projects the scale benchmark brings up: N identical busybox UML
//! guests on switches of up to `per_switch` ports, the last guest of each
//! switch pinging the first and saying so on its console.

use std::fmt::Write as _;

/// What the last guest of a switch writes once it reached the first.
pub const PING_OK: &str = "MLN-SCALE-PING-OK";

/// A flat lab.
pub struct Lab {
    pub project: String,
    pub guests: usize,
    pub per_switch: usize,
    pub memory: String,
}

impl Lab {
    pub fn switches(&self) -> usize {
        self.guests.div_ceil(self.per_switch)
    }

    /// The last guest of each switch with more than one guest: those that
    /// ping.
    pub fn pingers(&self) -> Vec<String> {
        (0..self.switches())
            .map(|s| ((s + 1) * self.per_switch).min(self.guests) - 1)
            .filter(|&last| last % self.per_switch > 0)
            .map(|g| format!("g{g}"))
            .collect()
    }

    /// The project file.
    pub fn text(&self) -> String {
        let mut t = format!(
            "global {{\n    project {}\n}}\n\nsuperclass guest {{\n    uml\n    memory {}\n}}\n\n",
            self.project, self.memory
        );
        for s in 0..self.switches() {
            let _ = writeln!(t, "switch s{s} {{\n}}");
        }
        let pingers = self.pingers();
        for g in 0..self.guests {
            let (s, k) = (g / self.per_switch, g % self.per_switch + 1);
            let _ = write!(
                t,
                "\nhost g{g} {{\n    superclass guest\n    network eth0 {{\n        switch s{s}\n        \
                 address 10.{}.{}.{}\n        netmask 255.255.0.0\n    }}\n",
                s + 1,
                k / 256,
                k % 256
            );
            if pingers.contains(&format!("g{g}")) {
                let _ = write!(
                    t,
                    "    startup {{\n        (for i in 1 2 3 4 5 6 7 8 9 10; do \
                     ping -c 1 -W 1 10.{}.0.1 >/dev/null 2>&1 && \
                     echo {PING_OK} && break; sleep 1; done) &\n    }}\n",
                    s + 1
                );
            }
            t.push_str("}\n");
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_are_filled_in_order_and_their_last_guest_pings() {
        let lab = Lab {
            project: "scale5".into(),
            guests: 5,
            per_switch: 2,
            memory: "64M".into(),
        };
        assert_eq!(lab.switches(), 3);
        // g4 is alone on s2: nobody to ping.
        assert_eq!(lab.pingers(), ["g1", "g3"]);
        let text = lab.text();
        assert!(text.contains("host g3 {\n    superclass guest\n    network eth0 {\n        switch s1\n        address 10.2.0.2\n"));
        assert_eq!(text.matches(PING_OK).count(), 2);
        assert!(text.contains("ping -c 1 -W 1 10.2.0.1"));
    }
}
