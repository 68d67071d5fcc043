//! What a kernel module needs loaded before it: the `depends=` entry of
//! its `.modinfo` ELF section, read directly (Debian's kernel package
//! ships no `modules.dep`, which `depmod` makes at install time, and the
//! host may have no `kmod`). From these, [`load_order`] puts modules in
//! the order `modules.dep` would: every module after what it depends on.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Every `*.ko` under `dir`, by module name (`-` read as `_`, as the
/// kernel does).
pub(super) fn index(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut found = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                stack.push(path);
            } else if let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".ko"))
            {
                found.insert(name.replace('-', "_"), path);
            }
        }
    }
    Ok(found)
}

/// `wanted` and everything they depend on, each after its dependencies,
/// each once.
pub(super) fn load_order(
    index: &HashMap<String, PathBuf>,
    wanted: &[&str],
) -> Result<Vec<(String, PathBuf)>> {
    let mut order = Vec::new();
    for name in wanted {
        visit(index, name, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

fn visit(
    index: &HashMap<String, PathBuf>,
    name: &str,
    path_here: &mut Vec<String>,
    order: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    if order.iter().any(|(n, _)| n == name) {
        return Ok(());
    }
    let file = index.get(name).ok_or_else(|| Error::MissingFile {
        what: "kernel module",
        path: PathBuf::from(format!("{name}.ko")),
    })?;
    if path_here.iter().any(|n| n == name) {
        return Err(Error::Backend {
            what: file.display().to_string(),
            message: format!("modules depend on each other in a circle: {path_here:?}"),
        });
    }
    path_here.push(name.to_string());
    for dep in depends(file)? {
        visit(index, &dep, path_here, order)?;
    }
    path_here.pop();
    order.push((name.to_string(), file.clone()));
    Ok(())
}

/// The modules `file` depends on, from its `.modinfo` section.
pub(super) fn depends(file: &Path) -> Result<Vec<String>> {
    let bytes = fs::read(file).map_err(|e| Error::io(file, e))?;
    let section = modinfo_section(&bytes).ok_or_else(|| Error::Backend {
        what: file.display().to_string(),
        message: "not a kernel module (no .modinfo section in a 64-bit ELF file)".into(),
    })?;
    Ok(section
        .split(|&b| b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|list| list.split(|&b| b == b','))
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).replace('-', "_"))
        .collect())
}

/// The bytes of the `.modinfo` section of a little-endian ELF64 file.
fn modinfo_section(elf: &[u8]) -> Option<&[u8]> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    // Offset and size of section `i`.
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = usize::try_from(u32_at(h)?).ok()?;
        let offset = usize::try_from(u64_at(h + 0x18)?).ok()?;
        let size = usize::try_from(u64_at(h + 0x20)?).ok()?;
        Some((name, offset, size))
    };
    let (_, names_at, names_len) = section(shstrndx)?;
    let names = elf.get(names_at..names_at.checked_add(names_len)?)?;
    (0..shnum).find_map(|i| {
        let (name, offset, size) = section(i)?;
        let rest = names.get(name..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        (&rest[..end] == b".modinfo").then(|| elf.get(offset..offset.checked_add(size)?))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 file with a `.modinfo` section holding `info`.
    fn module(info: &[u8]) -> Vec<u8> {
        let names = b"\0.shstrtab\0.modinfo\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let names_at = elf.len();
        elf.extend_from_slice(names);
        let info_at = elf.len();
        elf.extend_from_slice(info);
        let shoff = elf.len();
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        let header = |name: u32, offset: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(offset as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        elf.extend(header(0, 0, 0));
        elf.extend(header(1, names_at, names.len()));
        elf.extend(header(11, info_at, info.len()));
        elf
    }

    #[test]
    fn dependencies_come_first_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("kernel/drivers");
        fs::create_dir_all(&sub).unwrap();
        let write = |name: &str, deps: &str| {
            let info = format!("license=GPL\0depends={deps}\0name={name}\0");
            fs::write(sub.join(format!("{name}.ko")), module(info.as_bytes())).unwrap();
        };
        write("virtio_ring", "");
        write("virtio", "virtio_ring");
        write("virtio_pci", "virtio_ring,virtio");
        write("virtio-blk", "virtio,virtio_ring");
        let idx = index(dir.path()).unwrap();
        assert!(idx.contains_key("virtio_blk"));
        let order: Vec<String> = load_order(&idx, &["virtio_pci", "virtio_blk"])
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(order, ["virtio_ring", "virtio", "virtio_pci", "virtio_blk"]);
        assert!(matches!(
            load_order(&idx, &["ext4"]),
            Err(Error::MissingFile { .. })
        ));
        write("a", "b");
        write("b", "a");
        let idx = index(dir.path()).unwrap();
        assert!(load_order(&idx, &["a"]).is_err());
    }
}
