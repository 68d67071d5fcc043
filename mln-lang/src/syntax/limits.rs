//! Bounds on what the parser accepts, so a hostile or broken file costs a
//! diagnostic instead of memory, time or the stack.

/// The hard ceiling on [`Limits::max_nesting`].
///
/// The syntax tree is dropped, compared and serialised recursively, so a
/// tree deeper than this could overflow a thread's stack after parsing even
/// though the parser itself never recurses. A larger `max_nesting` is
/// treated as this value.
pub const NESTING_CEILING: usize = 1024;

/// Bounds on the input, each reported as `E0021` (limit exceeded) when
/// crossed. The defaults are far above anything a real project needs and
/// low enough that the worst accepted input still parses in a second or so.
///
/// ```
/// use mln_lang::syntax::Limits;
///
/// let tight = Limits { max_nesting: 8, ..Limits::default() };
/// assert!(tight.max_nesting < Limits::default().max_nesting);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file, in bytes. Default 64 MiB. Spans are 32-bit, so
    /// values above 4 GiB count as 4 GiB.
    pub max_file_bytes: usize,
    /// Largest total of the main file and every included file, in bytes.
    /// Default 256 MiB.
    pub max_total_bytes: usize,
    /// How deep `#include` may nest (the main file is depth 0). Default 16.
    pub max_include_depth: usize,
    /// How many `#include` directives may be followed in all (a file
    /// included twice counts twice, which stops "include bombs"). Default
    /// 1,024.
    pub max_includes: usize,
    /// How deep blocks may nest (`host a { network eth0 { } }` is depth 2).
    /// Default 64; values above [`NESTING_CEILING`] count as the ceiling.
    pub max_nesting: usize,
    /// Longest line, in bytes. Default 16 MiB.
    pub max_line_bytes: usize,
    /// After this many errors the parser stops; the last one's help line
    /// says so. Default 100.
    pub max_errors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 << 20,
            max_total_bytes: 256 << 20,
            max_include_depth: 16,
            max_includes: 1024,
            max_nesting: 64,
            max_line_bytes: 16 << 20,
            max_errors: 100,
        }
    }
}

impl Limits {
    /// `max_file_bytes`, capped where 32-bit spans end.
    pub fn effective_file_bytes(&self) -> usize {
        self.max_file_bytes
            .min(usize::try_from(u32::MAX).unwrap_or(usize::MAX))
    }

    /// `max_nesting`, capped at [`NESTING_CEILING`].
    pub fn effective_nesting(&self) -> usize {
        self.max_nesting.min(NESTING_CEILING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_capped_at_the_ceiling() {
        let l = Limits {
            max_nesting: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(l.effective_nesting(), NESTING_CEILING);
        assert_eq!(Limits::default().effective_nesting(), 64);
    }
}
