//! How the list blocks of a host's layers (`startup`, `users`, ...) merge.
//!
//! The layers are visited farthest first (the top of the superclass chain,
//! then down to the host's own blocks), each appending its lines after the
//! lines inherited so far. A layer's line that repeats an inherited line
//! (after expansion) is dropped, once per inherited copy: a host that
//! writes out its superclass's whole list and adds to it does not run the
//! inherited lines twice. Lines that repeat within one layer are all kept,
//! in order: `sleep 1` written twice in one `startup` block runs twice.

use std::collections::HashMap;

/// Lists longer than this are matched through maps rather than by a scan.
const SCAN_LIMIT: usize = 32;

/// The state of one list's merge: which of the lines merged so far are
/// inherited by the layer being appended, and which of those it matched.
///
/// ```text
/// superclass base { startup { a; b } }
/// host h { superclass base; startup { a; b; sleep 1; c; sleep 1 } }
/// ```
/// gives `a; b; sleep 1; c; sleep 1` for `h`.
pub(crate) struct ListMerge {
    /// How many of the merged lines the current layer inherits (those of
    /// the farther layers).
    inherited: usize,
    /// Short lists: which inherited lines the current layer has matched.
    matched: Vec<bool>,
    /// Long lists: the maps that stand in for `matched`.
    counts: Option<Counts>,
}

/// Inherited lines by text, for long lists.
#[derive(Default)]
struct Counts {
    /// How often each inherited line occurs.
    inherited: HashMap<String, usize>,
    /// How many of those copies the current layer has matched.
    matched: HashMap<String, usize>,
}

impl ListMerge {
    /// A merge of `total` lines at most (all layers' lines together).
    pub(crate) fn new(total: usize) -> Self {
        Self {
            inherited: 0,
            matched: Vec::new(),
            counts: (total > SCAN_LIMIT).then(Counts::default),
        }
    }

    /// Start appending the next layer; `merged` are the lines merged so
    /// far, all of which it inherits.
    pub(crate) fn next_layer<'a>(&mut self, merged: impl Iterator<Item = &'a str>) {
        let before = self.inherited;
        let mut len = 0;
        match &mut self.counts {
            Some(counts) => {
                for line in merged {
                    if len >= before {
                        *counts.inherited.entry(line.to_string()).or_default() += 1;
                    }
                    len += 1;
                }
                counts.matched.clear();
            }
            None => {
                len = merged.count();
                self.matched.clear();
                self.matched.resize(len, false);
            }
        }
        self.inherited = len;
    }

    /// Whether `line`, of the current layer, repeats an inherited line
    /// that no earlier line of this layer matched; if so it matches it now
    /// and is to be dropped. `merged` are the lines merged so far.
    pub(crate) fn repeats<'a>(
        &mut self,
        merged: impl Iterator<Item = &'a str>,
        line: &str,
    ) -> bool {
        if self.inherited == 0 {
            return false;
        }
        match &mut self.counts {
            Some(counts) => {
                let Some(&have) = counts.inherited.get(line) else {
                    return false;
                };
                match counts.matched.get_mut(line) {
                    Some(n) if *n >= have => false,
                    Some(n) => {
                        *n += 1;
                        true
                    }
                    None => {
                        counts.matched.insert(line.to_string(), 1);
                        true
                    }
                }
            }
            None => {
                for (seen, done) in merged.zip(self.matched.iter_mut()) {
                    if !*done && seen == line {
                        *done = true;
                        return true;
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merge `layers` (farthest first) as the resolver does.
    fn merge(layers: &[&[&str]], long: bool) -> Vec<String> {
        let total = if long { SCAN_LIMIT + 1 } else { 0 };
        let mut m = ListMerge::new(total);
        let mut out: Vec<String> = Vec::new();
        for layer in layers {
            m.next_layer(out.iter().map(String::as_str));
            for &line in *layer {
                if !m.repeats(out.iter().map(String::as_str), line) {
                    out.push(line.to_string());
                }
            }
        }
        out
    }

    fn both(layers: &[&[&str]], want: &[&str]) {
        assert_eq!(merge(layers, false), want, "by scan");
        assert_eq!(merge(layers, true), want, "by maps");
    }

    #[test]
    fn repeats_within_one_layer_are_all_kept_in_order() {
        let lines = ["sleep 1", "ping -c1 x", "sleep 1", "ping -c1 x"];
        both(&[&lines], &lines);
        both(&[&[], &lines, &[]], &lines);
    }

    #[test]
    fn a_line_the_host_repeats_from_its_superclass_runs_once() {
        both(&[&["a", "b"], &["b", "c"]], &["a", "b", "c"]);
    }

    #[test]
    fn a_host_repeating_the_whole_inherited_list_does_not_run_it_twice() {
        let base = ["sleep 1", "ping x", "sleep 1", "ping x"];
        let host = ["sleep 1", "ping x", "sleep 1", "ping x", "done"];
        both(&[&base, &host], &host);
    }

    #[test]
    fn each_inherited_copy_absorbs_one_repeat_only() {
        // One inherited `sleep 1`: the host's second `sleep 1` is its own.
        both(
            &[&["sleep 1"], &["sleep 1", "ping", "sleep 1", "ping"]],
            &["sleep 1", "ping", "sleep 1", "ping"],
        );
        // Two inherited, one in the host: both inherited ones stay.
        both(&[&["x", "x"], &["x", "y"]], &["x", "x", "y"]);
    }

    #[test]
    fn a_layer_inherits_the_lines_of_every_farther_layer() {
        both(
            &[&["one", "two"], &["three", "one"], &["two", "four"]],
            &["one", "two", "three", "four"],
        );
        // A line a middle layer repeats within itself still absorbs only
        // one repeat each below.
        both(
            &[&["a"], &["b", "b"], &["b", "a", "b", "b"]],
            &["a", "b", "b", "b"],
        );
    }
}
