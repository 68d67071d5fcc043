//! The memory a UML kernel keeps for itself, on top of what its guest is
//! given.
//!
//! A UML kernel is a host program whose own image (code, data, bss) lives
//! in the guest's physical memory, with the page descriptors of all of it:
//! `mem=32M` on Debian 12's 6.1 kernel leaves the guest about 21 MiB, and
//! on the 7.2 kernel `mln kernel fetch` brings (12 MiB of image) about 19
//! MiB, with under 4 MiB free once a busybox guest is up. Such guests boot
//! alone, but when 50 boot together a quarter to a third of them run out
//! of memory ("System is deadlocked on memory"), some before their
//! console is registered, so that they die without a word (UML's panic
//! ends in SIGABRT). MLN's kernels were 3 MiB, so `memory
//! 32M` meant a guest of about 30 MiB, the size MLN projects were written
//! for. So the backend boots with `mem=` the guest's memory plus this
//! reservation, read from the kernel's program headers: a guest's
//! `MemTotal` is about the memory its project gives it, whatever the
//! kernel's size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;
/// Bytes of page descriptor (`struct page`) per page of memory.
const PAGE_DESCRIPTOR: u64 = 64;
/// What else the kernel sets aside at boot (its first page tables, the
/// zero page, memblock's own arrays), measured as under 200 KiB.
const SLACK: u64 = MIB / 2;
/// ELF program header type of a loadable segment.
const PT_LOAD: u32 = 1;
/// More program headers than this is no kernel.
const MAX_HEADERS: u16 = 64;

/// The bytes to add to `memory` on a UML kernel's `mem=` so that its guest
/// has about `memory` of its own: the span of the kernel's loadable
/// segments, the page descriptors of the whole, and [`SLACK`], rounded up
/// to a MiB. Zero for a program that is not a 64-bit ELF executable
/// (a stand-in for the kernel).
pub fn reservation(kernel: &Path, memory: u64) -> Result<u64> {
    let Some(image) = image_span(kernel)? else {
        return Ok(0);
    };
    let pages = (memory + image).div_ceil(PAGE);
    let total = image + pages * PAGE_DESCRIPTOR + SLACK;
    Ok(total.div_ceil(MIB) * MIB)
}

/// From the lowest address of the ELF file's loadable segments to the end
/// of the highest (bss included); `None` for a file that is not a 64-bit
/// little-endian ELF executable.
fn image_span(path: &Path) -> Result<Option<u64>> {
    let io = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            what: "kernel",
            path: path.to_path_buf(),
        },
        _ => io(e),
    })?;
    let mut header = [0u8; 64];
    if file.read_exact(&mut header).is_err() || !is_elf64_le(&header) {
        return Ok(None);
    }
    let phoff = u64_at(&header, 0x20);
    let entry_size = u16_at(&header, 0x36);
    let count = u16_at(&header, 0x38);
    if entry_size < 56 || count == 0 || count > MAX_HEADERS {
        return Ok(None);
    }
    let mut table = vec![0u8; usize::from(entry_size) * usize::from(count)];
    file.seek(SeekFrom::Start(phoff)).map_err(io)?;
    if file.read_exact(&mut table).is_err() {
        return Ok(None);
    }
    Ok(load_span(&table, usize::from(entry_size)))
}

fn is_elf64_le(header: &[u8; 64]) -> bool {
    header[..4] == *b"\x7fELF" && header[4] == 2 && header[5] == 1
}

/// The span of the `PT_LOAD` entries of a program header table.
fn load_span(table: &[u8], entry_size: usize) -> Option<u64> {
    let (start, end) = table
        .chunks_exact(entry_size)
        .filter(|h| u32_at(h, 0) == PT_LOAD)
        .map(|h| {
            let vaddr = u64_at(h, 0x10);
            (vaddr, vaddr.saturating_add(u64_at(h, 0x28)))
        })
        .fold((u64::MAX, 0), |(lo, hi), (s, e)| (lo.min(s), hi.max(e)));
    (end > start).then(|| end - start)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program header: type, then vaddr at 0x10 and memsz at 0x28.
    fn header(kind: u32, vaddr: u64, memsz: u64) -> Vec<u8> {
        let mut h = vec![0u8; 56];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[0x10..0x18].copy_from_slice(&vaddr.to_le_bytes());
        h[0x28..0x30].copy_from_slice(&memsz.to_le_bytes());
        h
    }

    #[test]
    fn the_span_runs_from_the_lowest_load_to_the_end_of_the_highest() {
        // The 7.2 kernel's layout: text, data, then bss past a TLS entry.
        let table = [
            header(PT_LOAD, 0x6000_0000, 0x334),
            header(PT_LOAD, 0x6000_1000, 0x7a_83bd),
            header(7, 0x60aa_18e0, 0x28),
            header(PT_LOAD, 0x60be_8000, 0x4_53e4),
        ]
        .concat();
        assert_eq!(load_span(&table, 56), Some(0xc2_d3e4));
        assert_eq!(load_span(&header(7, 0, 10), 56), None, "no PT_LOAD");
    }

    #[test]
    fn a_script_standing_in_for_the_kernel_reserves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("linux.uml");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        assert_eq!(reservation(&script, 32 * MIB).unwrap(), 0);
    }

    #[test]
    fn a_real_program_reserves_its_image_and_page_descriptors_in_whole_mib() {
        // Any ELF executable has the layout a UML kernel has; this test's
        // own binary is one that is always there.
        let me = std::env::current_exe().unwrap();
        let span = image_span(&me).unwrap().unwrap();
        let r = reservation(&me, 32 * MIB).unwrap();
        assert_eq!(r % MIB, 0);
        assert!(r >= span + (32 * MIB + span) / PAGE * PAGE_DESCRIPTOR + SLACK);
        assert!(r < span + 2 * MIB + (32 * MIB + span) / 64);
        assert!(
            reservation(&me, 1024 * MIB).unwrap() > r,
            "more memory, more descriptors"
        );
    }
}
