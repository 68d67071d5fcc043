//! `mln log -p PROJECT HOST`: a host's console log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use mln_core::BackendKind;
use mln_lang::agent::ServerAccess;
use mln_lang::apply::{ClusterBackends, LocalBackends};
use mln_lang::plan::domain_name;

use crate::cli::LogArgs;
use crate::lifecycle::fail;

/// How often `--follow` looks for new output.
const POLL: Duration = Duration::from_millis(250);

/// Print the console log of a host (all its runs so far); with `--follow`,
/// keep printing what it writes.
pub fn log(args: &LogArgs) -> u8 {
    let (store, state) = match crate::recorded::project(args.state_dir.as_deref(), &args.project) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let spec = state
        .hosts
        .get(&args.host)
        .map(|r| &r.spec)
        .or_else(|| state.desired.as_ref().and_then(|d| d.hosts.get(&args.host)));
    let Some(spec) = spec else {
        let mut names: Vec<&str> = state.hosts.keys().map(String::as_str).collect();
        names.sort_unstable();
        return fail(format!(
            "project {} has no host {} (its hosts: {})",
            args.project,
            args.host,
            names.join(", ")
        ));
    };
    let backend = state
        .hosts
        .get(&args.host)
        .and_then(|r| r.domain.as_ref().map(|d| d.backend))
        .or_else(|| spec.platform.backend());
    // Xen keeps a guest's console log only where xenconsoled is told to.
    let xen_hint = (backend == Some(BackendKind::Xen)).then(|| {
        format!(
            "; xenconsoled keeps a Xen guest's console only when it runs with --log=guest \
             (XENCONSOLED_TRACE=guest in /etc/default/xencommons, writing {}): until then, \
             attach with `xl console {}`",
            mln_lang::machine::XEN_CONSOLE_LOGS,
            domain_name(&args.project, &args.host)
        )
    });
    let xen_hint = xen_hint.as_deref().unwrap_or_default();
    let local = match LocalBackends::new(store.dir()) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let cluster = ClusterBackends::new(&args.project, local, ServerAccess::from_env())
        .with_servers(state.desired.as_ref(), Some(&state));
    if let Some(server) = cluster.remote(spec.service_host.as_deref()) {
        return remote_log(&cluster, server, &args.host, args.follow, xen_hint);
    }
    let path = match cluster.local().console_log(&args.project, &args.host) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if backend == Some(BackendKind::Qemu) {
        // Which accelerator this QEMU guest runs under, on stderr: stdout
        // stays the console alone.
        let name = domain_name(&args.project, &args.host);
        if let Ok(Some(accel)) = cluster.local().qemu().and_then(|q| q.acceleration(&name)) {
            eprintln!(
                "# {}: QEMU guest under {accel}; its serial console:",
                args.host
            );
        }
    }
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(format!(
                "{} has no console log yet: it has not been started{xen_hint}",
                args.host
            ))
        }
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    let mut stdout = std::io::stdout().lock();
    let mut at = match copy(&mut file, &mut stdout) {
        Ok(n) => n,
        // Whoever reads stopped reading (`mln log | head`): done.
        Err(Stop::Output) => return 0,
        Err(Stop::Input(e)) => return fail(format!("{}: {e}", path.display())),
    };
    if !args.follow {
        return 0;
    }
    loop {
        std::thread::sleep(POLL);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            // The host was removed: its log went with it.
            Err(_) => return 0,
        };
        if len == at {
            continue;
        }
        if len < at || !same_file(&file, &path) {
            // Truncated or replaced: start over from the top.
            file = match File::open(&path) {
                Ok(f) => f,
                Err(_) => return 0,
            };
            at = 0;
        }
        if let Err(e) = file.seek(SeekFrom::Start(at)) {
            return fail(format!("{}: {e}", path.display()));
        }
        match copy(&mut file, &mut stdout) {
            Ok(n) => at += n,
            Err(Stop::Output) => return 0,
            Err(Stop::Input(e)) => return fail(format!("{}: {e}", path.display())),
        }
    }
}

/// How much of a remote console is fetched at once.
const REMOTE_CHUNK: u64 = 16 << 20;

/// [`log()`] for a host on another server, through its agent.
fn remote_log(
    cluster: &ClusterBackends,
    server: &str,
    host: &str,
    follow: bool,
    xen_hint: &str,
) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let mut at: Option<u64> = None;
    loop {
        let tail = match cluster.console_tail(Some(server), host, REMOTE_CHUNK) {
            Ok(t) => t,
            Err(mln_core::Error::NotFound { .. }) if at.is_none() => {
                return fail(format!(
                    "{host} has no console log yet on {server}: it has not been started{xen_hint}"
                ))
            }
            Err(_) if at.is_some() => return 0,
            Err(e) => return fail(e),
        };
        let text = match at {
            // Only what was written since the last look.
            Some(prev) if tail.size >= prev => {
                let new = usize::try_from(tail.size - prev).unwrap_or(usize::MAX);
                let bytes = tail.text.as_bytes();
                String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(new)..]).into_owned()
            }
            _ => tail.text,
        };
        if stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return 0;
        }
        if !follow {
            return 0;
        }
        at = Some(tail.size);
        std::thread::sleep(POLL * 4);
    }
}

enum Stop {
    Input(std::io::Error),
    Output,
}

/// Copy what is left of `from` to `to` (console bytes as they are, not
/// necessarily UTF-8); the number of bytes copied.
fn copy(from: &mut File, to: &mut impl Write) -> Result<u64, Stop> {
    let mut bytes = Vec::new();
    from.read_to_end(&mut bytes).map_err(Stop::Input)?;
    to.write_all(&bytes).map_err(|_| Stop::Output)?;
    to.flush().map_err(|_| Stop::Output)?;
    Ok(bytes.len() as u64)
}

/// Whether `path` still names the file `file` has open.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}
