//! `cargo xtask servers N`: N servers on this one machine, to try a
//! project that spans many servers (the seed's 50 guests over 25 servers)
//! without 25 machines. Each server is a network namespace with its own
//! address and `sshd`, reached with a generated key, running this
//! checkout's `mln` as its agent: what the multi-server tests use
//! (`testkit::TestServers`). They run until Enter or Ctrl-C here, then
//! everything they ran is killed and removed.
//!
//! Usage: `cargo xtask servers N [--names PREFIX]` (servers PREFIX1 …
//! PREFIXN, default `server-`). Needs root.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;

use testkit::TestServers;

const USAGE: &str = "usage: cargo xtask servers N [--names PREFIX]";

struct Options {
    count: usize,
    prefix: String,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut count = None;
    let mut prefix = "server-".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--names" => prefix = it.next().ok_or("--names needs a prefix")?.clone(),
            n => {
                let c: usize = n
                    .parse()
                    .map_err(|_| format!("{n:?}: not a count; {USAGE}"))?;
                if !(1..=250).contains(&c) {
                    return Err(format!("{c} servers: give 1 to 250"));
                }
                count = Some(c);
            }
        }
    }
    Ok(Options {
        count: count.ok_or(USAGE)?,
        prefix,
    })
}

/// Build `mln` (debug) and return its path.
fn build_mln() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "-p", "examples", "--bin", "mln"])
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !st.success() {
        return Err("cargo build of mln failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let mln = target.join("debug/mln");
    std::fs::canonicalize(&mln).map_err(|e| format!("{}: {e}", mln.display()))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let mln = build_mln()?;
    let names: Vec<String> = (1..=opts.count)
        .map(|i| format!("{}{i}", opts.prefix))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // The agents boot guests with the kernel this shell would give `mln`.
    let passed: Vec<(&str, std::ffi::OsString)> = [
        mln_core::uml::KERNEL_ENV,
        mln_core::uml::KERNELS_DIR_ENV,
        "MLN_TEMPLATE_DIR",
    ]
    .into_iter()
    .filter_map(|k| std::env::var_os(k).map(|v| (k, v)))
    .collect();
    // `mln` is found on the servers' PATH: a managing `mln` runs `mln
    // agent` there by name unless told otherwise (`MLN_AGENT`).
    let bin = mln.parent().unwrap_or(std::path::Path::new("/"));
    let path = std::ffi::OsString::from(format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display()
    ));
    let mut env: Vec<(&str, &OsStr)> = vec![("MLN_AGENT", mln.as_os_str()), ("PATH", &path)];
    env.extend(passed.iter().map(|(k, v)| (*k, v.as_os_str())));

    let (tx, rx) = mpsc::channel::<&'static str>();
    let on_signal = tx.clone();
    ctrlc::set_handler(move || {
        let _ = on_signal.send("Ctrl-C");
    })
    .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    eprintln!("xtask servers: starting {} servers", names.len());
    let servers = TestServers::start_with_env(&names, &env).map_err(|s| s.to_string())?;
    let first = names.first().copied().unwrap_or_default();
    let last = names.last().copied().unwrap_or_default();
    println!(
        "{} servers run ({first} … {last}), each a network namespace with its own sshd \
         on 10.213.x.0/24 and {} as its agent; their files are in {}.\n\
         In another shell:\n\n    \
         export MLN_SSH_CONFIG={}\n    \
         mln up PROJECT.mln      # hosts with service_host {first} … {last}\n\n\
         (`mln` is on the servers' PATH.) `mln remove` the projects first; Enter or \
         Ctrl-C here then stops the servers and kills and removes whatever they still run.",
        names.len(),
        mln.display(),
        servers.dir().display(),
        servers.ssh_config().display(),
    );
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send("Enter");
    });
    let why = rx.recv().unwrap_or("end of input");
    eprintln!("xtask servers: {why}: stopping {} servers", names.len());
    drop(servers);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_count_is_needed_and_bounded() {
        let o = parse_args(&args(&["25"])).unwrap();
        assert_eq!((o.count, o.prefix.as_str()), (25, "server-"));
        let o = parse_args(&args(&["--names", "node", "3"])).unwrap();
        assert_eq!((o.count, o.prefix.as_str()), (3, "node"));
        assert!(parse_args(&args(&[])).is_err());
        assert!(parse_args(&args(&["0"])).is_err());
        assert!(parse_args(&args(&["251"])).is_err());
        assert!(parse_args(&args(&["many"])).is_err());
    }
}
