//! Kernel modules with what they need first, so dom0's /init can `insmod`
//! them in order (busybox's `insmod` does not resolve dependencies, and a
//! module loaded before one it needs fails). The kernel package ships no
//! `modules.dep` (depmod makes it on install), so each module's own
//! `depends=` entry (its `.modinfo` section) is read instead.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::io_err;

/// A module name as the kernel spells it in `depends=` (`-` is `_`).
fn normal(name: &str) -> String {
    name.replace('-', "_")
}

/// Every `.ko` under `dir`, by normalised module name.
fn index(dir: &Path, found: &mut HashMap<String, PathBuf>) -> Result<(), String> {
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = e.map_err(io_err(dir))?.path();
        if path.is_dir() {
            index(&path, found)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            found.insert(normal(stem), path);
        }
    }
    Ok(())
}

/// The `depends=` list of a module's bytes.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(normal)
        .collect()
}

/// `wanted` and what they need, each once, in an order that loads;
/// `deps_of` gives a module's direct dependencies.
fn order(
    wanted: &[&str],
    mut deps_of: impl FnMut(&str) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    let mut done: Vec<String> = Vec::new();
    // Depth-first, by hand: (module, its dependencies not yet visited).
    for w in wanted {
        let mut stack: Vec<(String, Vec<String>)> = Vec::new();
        let root = normal(w);
        if done.contains(&root) {
            continue;
        }
        let deps = deps_of(&root)?;
        stack.push((root, deps));
        while let Some((m, deps)) = stack.last_mut() {
            match deps.pop() {
                Some(d) if done.contains(&d) => {}
                Some(d) => {
                    if stack.iter().any(|(s, _)| *s == d) {
                        return Err(format!("modules: a dependency cycle through {d}"));
                    }
                    let dd = deps_of(&d)?;
                    stack.push((d, dd));
                }
                None => {
                    done.push(m.clone());
                    stack.pop();
                }
            }
        }
    }
    Ok(done)
}

/// The files (under `kver`, the kernel's modules folder) of `wanted` and
/// all they need, in load order.
pub fn closure(kver: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut files = HashMap::new();
    index(&kver.join("kernel"), &mut files)?;
    let names = order(wanted, |m| {
        let path = files
            .get(m)
            .ok_or_else(|| format!("the kernel has no module {m}"))?;
        Ok(depends(&fs::read(path).map_err(io_err(path))?))
    })?;
    Ok(names.iter().filter_map(|n| files.get(n).cloned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_module_needs_loads_before_it_once() {
        let deps: HashMap<&str, Vec<&str>> = [
            ("9p", vec!["netfs", "9pnet"]),
            ("9pnet", vec![]),
            ("netfs", vec!["fscache"]),
            ("fscache", vec![]),
            ("9pnet_virtio", vec!["9pnet", "virtio_ring"]),
            ("virtio_ring", vec![]),
        ]
        .into_iter()
        .collect();
        let lookup = |m: &str| {
            deps.get(m)
                .map(|d| d.iter().map(|s| s.to_string()).collect())
                .ok_or_else(|| format!("no {m}"))
        };
        let got = order(&["9p", "9pnet-virtio"], lookup).unwrap();
        for (before, after) in [
            ("fscache", "netfs"),
            ("netfs", "9p"),
            ("9pnet", "9p"),
            ("virtio_ring", "9pnet_virtio"),
        ] {
            let at = |m| got.iter().position(|g| g == m).unwrap();
            assert!(at(before) < at(after), "{before} before {after}: {got:?}");
        }
        assert_eq!(got.len(), 6, "each once: {got:?}");
        assert!(order(&["nosuch"], lookup).is_err());
    }

    #[test]
    fn depends_are_read_from_the_modinfo_strings() {
        let ko = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0vermagic=6.1\0";
        assert_eq!(depends(ko), ["virtio", "virtio_ring"]);
        assert!(depends(b"\0depends=\0name=x\0").is_empty());
        assert!(depends(b"nothing").is_empty());
    }
}
