//! "Did you mean ...?": the closest known name by edit distance.

/// Edit distance between `a` and `b`, in characters: insertions, deletions,
/// substitutions and swaps of two neighbours each count one (a swap is the
/// commonest typo: `lna` for `lan`, `memroy` for `memory`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before the previous is needed for swaps.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let substitute = prev[j] + usize::from(a[i] != b[j]);
            let mut d = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `wanted`, when it is close enough to be a typo:
/// at most a third of the longer name's length (and at least one edit)
/// away. Ties go to the first candidate given, so the answer is stable.
pub fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == wanted {
            continue;
        }
        let d = edit_distance(&wanted.to_lowercase(), &c.to_lowercase());
        let longer = wanted.chars().count().max(c.chars().count());
        let limit = (longer / 3).max(1);
        if d <= limit && best.map_or(true, |(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("lan", "lan"), 0);
        assert_eq!(edit_distance("lna", "lan"), 1);
        assert_eq!(edit_distance("memroy", "memory"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("abc", "ca"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("çé", "ce"), 2);
    }

    #[test]
    fn closest_suggests_a_typo_and_nothing_far_away() {
        let names = ["left", "right", "lan"];
        assert_eq!(closest("lna", names), Some("lan"));
        assert_eq!(closest("rigth", names), Some("right"));
        assert_eq!(closest("LAN0", names), Some("lan"));
        assert_eq!(closest("backbone", names), None);
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }

    #[test]
    fn closest_prefers_the_first_of_equally_close_names() {
        assert_eq!(closest("lab", ["lan", "lag"]), Some("lan"));
    }
}
