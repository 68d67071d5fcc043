//! Reading a guest's console log: its end, the last lines that say
//! something to a person, and whether a line appeared after an offset.
//! Shared by the backends that keep a console log per guest (UML, QEMU).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Did the guest power itself off (rather than die)? The kernel's last words
/// on a clean halt say so.
pub(crate) fn powered_off(log_tail: &str) -> bool {
    log_tail.contains("reboot: System halted") || log_tail.contains("reboot: Power down")
}

/// Does the file at `path`, from byte `offset` on, contain `needle`?
/// Read in blocks, keeping an overlap so a needle across two blocks is
/// found, without holding a long console log in memory.
pub(crate) fn contains_from(path: &Path, offset: u64, needle: &str) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return false;
    }
    let needle = needle.as_bytes();
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        carry.extend_from_slice(&buf[..n]);
        if carry.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        let keep = needle.len().saturating_sub(1).min(carry.len());
        carry.drain(..carry.len() - keep);
    }
}

/// The last `n` lines of a console `text` that say something to a
/// person: a kernel's stack dump (`[<6069304e>] panic+0x0/0x376`,
/// `Call Trace:`, `Stack:` and its hex words) is left out.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let is_dump = |l: &str| {
        // A log level prefix (`<4>`) where the console shows one.
        let t = l.trim();
        let t = match t.strip_prefix('<').and_then(|r| r.split_once('>')) {
            Some((level, rest)) if level.bytes().all(|b| b.is_ascii_digit()) => rest.trim(),
            _ => t,
        };
        t.starts_with("[<")
            || t == "Call Trace:"
            || t == "Stack:"
            || (!t.is_empty()
                && t.split_whitespace()
                    .all(|w| w.len() >= 8 && w.bytes().all(|b| b.is_ascii_hexdigit())))
    };
    let lines: Vec<&str> = text.lines().filter(|l| !is_dump(l)).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How much of the end of a console is read to tell why its guest died:
/// a kernel's panic message comes before a stack dump of several KiB
/// (about 3 KiB on UML), and the dump is what ends the console.
pub(crate) const CRASH_WINDOW: u64 = 64 * 1024;

/// The last `max` bytes of a file, lossily decoded.
pub(crate) fn tail(path: &Path, max: u64) -> String {
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    String::from_utf8_lossy(&read_from(path, len.saturating_sub(max))).into_owned()
}

/// The bytes of the file at `path` from byte `from` on (none when it
/// cannot be read).
fn read_from(path: &Path, from: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    let Ok(mut f) = File::open(path) else {
        return buf;
    };
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        buf.clear();
    }
    buf
}

/// What the file at `path` holds from byte `offset` on (an earlier run's
/// output comes before it), at most its last `max` bytes; where those
/// begin inside a line, from the next whole line. Lossily decoded.
pub(crate) fn since(path: &Path, offset: u64, max: u64) -> String {
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    let start = len.saturating_sub(max).max(offset);
    if start >= len {
        return String::new();
    }
    // From the byte before the window, to see whether it begins a line.
    let cut = start > offset;
    let buf = read_from(path, if cut { start - 1 } else { start });
    let text = String::from_utf8_lossy(&buf);
    if cut {
        // Cut inside a line: a fragment such as `e>] ? block_signals`
        // reads as neither a message nor a dump line.
        if let Some((_, whole)) = text.split_once('\n') {
            return whole.to_string();
        }
    }
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_excerpts_leave_stack_dumps_out() {
        let console = "Run /sbin/init as init process\n\
                       Kernel panic - not syncing: Requested init /x failed (error -2).\n\
                       CPU: 0 PID: 1 Comm: swapper Not tainted 6.1.0\n\
                       Stack:\n 6093a2c0 6093a2c0 00000001 60b1f7c8\n\
                       Call Trace:\n [<606931e5>] panic+0x197/0x376\n [<6002c0ae>] new_thread_handler+0x7f/0xb0\n\
                       <4> [<607cff0b>] kernel_init+0x28/0x197\n";
        let excerpt = last_lines(console, 3);
        assert_eq!(
            excerpt.lines().collect::<Vec<_>>(),
            [
                "Run /sbin/init as init process",
                "Kernel panic - not syncing: Requested init /x failed (error -2).",
                "CPU: 0 PID: 1 Comm: swapper Not tainted 6.1.0"
            ]
        );
    }

    #[test]
    fn a_needle_across_two_blocks_is_found_after_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut text = "old run: MARKER\n".to_string();
        let offset = text.len() as u64;
        text.push_str(&"x".repeat(64 * 1024 - 3));
        text.push_str("MARKER\n");
        std::fs::write(&path, &text).unwrap();
        assert!(contains_from(&path, offset, "MARKER"));
        assert!(!contains_from(&path, offset, "old run"));
        assert!(tail(&path, 7).starts_with("MARKER"));
    }

    #[test]
    fn the_end_of_a_console_starts_at_a_whole_line_and_not_before_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, "old run\nfirst line\nsecond line\n").unwrap();
        // A window that begins inside "first line" starts at the next one.
        assert_eq!(since(&path, 0, 15), "second line\n");
        // The offset is the start of this run: nothing before it.
        assert_eq!(since(&path, 8, 1000), "first line\nsecond line\n");
        assert_eq!(since(&path, 31, 1000), "");
        assert_eq!(since(&dir.path().join("none"), 0, 10), "");
    }

    #[test]
    fn a_panic_before_a_long_stack_dump_is_still_read_and_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut text = "Run /sbin/init as init process\n\
                        userspace - ptrace set fp regs failed, errno = 14\n\
                        Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n\
                        Call Trace:\n"
            .to_string();
        for i in 0..200 {
            text.push_str(&format!(" [<6004{i:04x}>] ? block_signals+0x0/0xf\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let console = since(&path, 0, CRASH_WINDOW);
        assert!(console.contains("ptrace set fp regs failed"));
        let shown = last_lines(&console, 12);
        assert!(shown.ends_with("exitcode=0x0000000b"), "{shown}");
        assert!(!shown.contains("block_signals"), "{shown}");
    }
}
