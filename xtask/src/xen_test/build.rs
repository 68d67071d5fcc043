//! Building what the lab runs: the Xen test binaries and `mln`, with the
//! Xen backend's features ([`XEN_FEATURES`]), in one cargo run each.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_checked;

/// The cargo features the Xen tests and binaries are built with: the Xen
/// backend is off by default in mln-core (each test target requires it),
/// so it is asked for by name rather than left to the examples package's
/// defaults.
pub const XEN_FEATURES: &str = "mln-core/xen,examples/xen";

/// What one `cargo test --no-run` of the lab's targets made.
pub struct Built {
    /// (test name, executable), in the order asked for.
    pub tests: Vec<(String, PathBuf)>,
    /// The `mln` binary the `examples` tests run (built with the same
    /// features): the managing side on this machine and the agent in
    /// every dom0.
    pub mln: Option<PathBuf>,
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

/// The executables of `names` in cargo's JSON messages `out`.
fn artifacts(out: &str, names: &[&str], kind: &str) -> Vec<(String, PathBuf)> {
    let mut built = Vec::new();
    for line in out.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        let is_kind = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == kind));
        if msg["reason"] == "compiler-artifact" && is_kind && names.contains(&name) {
            if let Some(exe) = msg["executable"].as_str() {
                built.push((name.to_string(), PathBuf::from(exe)));
            }
        }
    }
    built
}

/// Build the test `targets` (package, test) in one cargo run.
pub fn tests(root: &Path, targets: &[(&str, &str)]) -> Result<Built, String> {
    let names: Vec<&str> = targets.iter().map(|(_, t)| *t).collect();
    eprintln!("xen-test: building the tests {}", names.join(", "));
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for (package, test) in targets {
        cmd.args(["-p", package, "--test", test]);
    }
    cmd.args(["--features", XEN_FEATURES]);
    let out = run_checked(cmd.current_dir(root))?;
    let built = artifacts(&out, &names, "test");
    let tests = names
        .iter()
        .map(|n| {
            built
                .iter()
                .find(|(b, _)| b == n)
                .cloned()
                .ok_or_else(|| format!("cargo built no executable for test {n}"))
        })
        .collect::<Result<_, _>>()?;
    let mln = artifacts(&out, &["mln"], "bin").pop().map(|(_, p)| p);
    Ok(Built { tests, mln })
}

/// Build binary `bin` of the `examples` package (release when `release`)
/// and return its path.
pub fn example(root: &Path, bin: &str, release: bool) -> Result<PathBuf, String> {
    let profile = if release { "release" } else { "dev" };
    eprintln!("xen-test: building examples' {bin} ({profile})");
    let mut cmd = cargo();
    cmd.args(["build", "-p", "examples", "--bin", bin])
        .args(["--features", XEN_FEATURES])
        .args(["--message-format=json-render-diagnostics"])
        .current_dir(root);
    if release {
        cmd.arg("--release");
    }
    let out = run_checked(&mut cmd)?;
    artifacts(&out, &[bin], "bin")
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| format!("cargo built no executable for {bin}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_found_by_name_and_kind() {
        let out = r#"{"reason":"compiler-artifact","target":{"name":"mln","kind":["bin"]},"executable":"/t/mln"}
{"reason":"compiler-artifact","target":{"name":"xen_move","kind":["test"]},"executable":"/t/xen_move-1"}
{"reason":"compiler-artifact","target":{"name":"mln","kind":["lib"]},"executable":null}
not json"#;
        assert_eq!(
            artifacts(out, &["xen_move"], "test"),
            [("xen_move".to_string(), PathBuf::from("/t/xen_move-1"))]
        );
        assert_eq!(
            artifacts(out, &["mln"], "bin"),
            [("mln".to_string(), PathBuf::from("/t/mln"))]
        );
        assert!(artifacts(out, &["mln"], "test").is_empty());
    }
}
