//! The two Xen servers of `cargo xtask xen-test`, as this machine reaches
//! them: real `ssh` with the lab's key and configuration
//! (`MLN_XEN_LAB_SSH_CONFIG`), and the real `mln` (the managing side
//! here, `mln agent` on each server).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long one command may take (a bound on a hang, not on speed: the
/// servers are emulated machines on a shared 2-core host).
pub const LIMIT: Duration = Duration::from_secs(600);

/// The lab as the harness describes it in the environment.
pub struct Servers {
    /// The ssh configuration naming `server-a` and `server-b`.
    pub ssh_config: PathBuf,
    /// The folder both servers mount at `/srv/shared`, seen from here.
    pub shared: PathBuf,
    /// `mln`, the same binary the servers run as their agent.
    pub mln: PathBuf,
    /// Where figures for `benches/README.md` go, one line each.
    pub figures: Option<PathBuf>,
    /// The LAN's `vde_switch` control folder on this machine (`xenbr0`
    /// in each dom0 is plugged into it).
    pub lan: Option<PathBuf>,
}

pub use testkit::{output_text as text, run_within as run};

impl Servers {
    /// The lab, or `None` (the test is skipped, and fails under CI) when
    /// this process was not started by the harness.
    pub fn from_env(test: &str) -> Option<Servers> {
        let var = |k: &str| std::env::var_os(k).map(PathBuf::from);
        match (
            var("MLN_XEN_LAB_SSH_CONFIG"),
            var("MLN_XEN_LAB_SHARED"),
            var("MLN_XEN_LAB_MLN"),
        ) {
            (Some(ssh_config), Some(shared), Some(mln)) => Some(Servers {
                ssh_config,
                shared,
                mln,
                figures: var("MLN_XEN_LAB_FIGURES"),
                lan: var("MLN_XEN_LAB_LAN"),
            }),
            _ => {
                testkit::skip(
                    test,
                    "not in the two-server Xen lab; use `cargo xtask xen-test`",
                );
                None
            }
        }
    }

    /// `ssh SERVER ARGV...` (ssh joins the words for the server's shell:
    /// only plain words here).
    pub fn ssh(&self, server: &str, argv: &[&str]) -> Output {
        assert!(
            argv.iter().all(|w| w
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-=:".contains(c))),
            "not a plain word in {argv:?}"
        );
        run(
            Command::new("ssh")
                .arg("-F")
                .arg(&self.ssh_config)
                .arg("--")
                .arg(server)
                .args(argv),
            LIMIT,
        )
    }

    /// [`Servers::ssh`] that must succeed; its stdout.
    pub fn ssh_ok(&self, server: &str, argv: &[&str]) -> String {
        let o = self.ssh(server, argv);
        assert!(o.status.success(), "ssh {server} {argv:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `mln ARGS` as a user runs it against these servers, with its state
    /// in `state`.
    pub fn mln(&self, state: &Path, args: &[&str]) -> Output {
        self.mln_within(state, args, LIMIT)
    }

    /// [`Servers::mln`] with its own bound.
    pub fn mln_within(&self, state: &Path, args: &[&str], limit: Duration) -> Output {
        run(
            Command::new(&self.mln)
                .args(args)
                .env("MLN_STATE_DIR", state)
                .env("MLN_SSH_CONFIG", &self.ssh_config)
                .env_remove("MLN_SSH")
                .env_remove("MLN_AGENT"),
            limit,
        )
    }

    /// [`Servers::mln`] that must succeed; what it printed.
    pub fn mln_ok(&self, state: &Path, args: &[&str]) -> String {
        let o = self.mln(state, args);
        assert!(o.status.success(), "mln {args:?}: {}", text(&o));
        text(&o)
    }

    /// What `server`'s xenconsoled logged of `domain`'s console, under
    /// every name a guest has there (a received guest is logged under its
    /// incoming name).
    pub fn console(&self, server: &str, domain: &str) -> String {
        let mut all = String::new();
        for name in [domain.to_string(), format!("{domain}--incoming")] {
            let path = format!("/var/log/xen/console/guest-{name}.log");
            let o = self.ssh(server, &["cat", &path]);
            all.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        all
    }

    /// The names of the domains `server`'s Xen runs (`xl list`).
    pub fn domains(&self, server: &str) -> Vec<String> {
        names(&self.ssh_ok(server, &["xl", "list"]))
    }

    /// [`Servers::domains`], or none when the server cannot say (for
    /// cleaning up after a failure, where a dead server is no error).
    pub fn domains_quietly(&self, server: &str) -> Vec<String> {
        let o = self.ssh(server, &["xl", "list"]);
        names(&String::from_utf8_lossy(&o.stdout))
    }

    /// Record a figure for `benches/README.md` (and print it).
    pub fn figure(&self, line: &str) {
        eprintln!("figure: {line}");
        if let Some(path) = &self.figures {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    /// Poll `f` every half second until it holds; fail with `what` after
    /// [`LIMIT`].
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < LIMIT, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The domain names in `xl list` output, without Domain-0.
fn names(xl_list: &str) -> Vec<String> {
    xl_list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n != "Domain-0")
        .collect()
}

/// The sequence numbers of the ping replies in console text.
pub fn ping_replies(console: &str) -> BTreeSet<u64> {
    console
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let seq = l.split("seq=").nth(1)?;
            seq.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Replies missing between the first and the last one in `seqs` that lie
/// within `from..=to`.
pub fn lost_between(seqs: &BTreeSet<u64>, from: u64, to: u64) -> u64 {
    let got = seqs.range(from..=to).count() as u64;
    (to + 1).saturating_sub(from).saturating_sub(got)
}

/// The boot ids a guest printed (`boot_id=...`), in order, each once.
pub fn boot_ids(console: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in console
        .lines()
        .filter_map(|l| l.split("boot_id=").nth(1))
        .filter_map(|r| r.split_whitespace().next())
    {
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    ids
}

/// The guest's uptime in its last `GUEST-TICK` line, seconds.
pub fn last_uptime(console: &str) -> Option<f64> {
    console
        .lines()
        .filter(|l| l.contains("GUEST-TICK"))
        .filter_map(|l| l.split("uptime=").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .next_back()
}
