//! A forwarded port per student (`mln class up --forward-from PORT
//! --forward-host HOST`): PORT for the roster's first student, PORT+1 for
//! the second, each leading to port 22 of `HOST` in that student's copy,
//! for students who are not on the server. Each is `mln forward
//! --background` run as the copy's owner, recorded with the copy, so the
//! copy's own `stop` and `remove` end it.

use super::{Copy, CopyResult};
use crate::cli::ClassArgs;
use crate::lifecycle::Places;
use crate::owner;

/// Open `copy`'s port when the class asks for ports; notes it in
/// `result`.
pub(super) fn open(
    args: &ClassArgs,
    places: &Places,
    copy: &Copy,
    result: &mut CopyResult,
) -> Result<(), String> {
    let (Some(from), Some(host)) = (args.forward_from, &args.forward_host) else {
        return Ok(());
    };
    let port = u16::try_from(copy.student.index - 1)
        .ok()
        .and_then(|i| from.checked_add(i))
        .ok_or_else(|| format!("port {from} + {} is past 65535", copy.student.index - 1))?;
    let exe = std::env::current_exe().map_err(|e| format!("this program: {e}"))?;
    let state = std::path::absolute(&places.state_root)
        .map_err(|e| format!("{}: {e}", places.state_root.display()))?;
    let folder = places.state_root.join(&copy.project);
    // Already open (the class brought up again): kept.
    let record = crate::forward::record_path(&folder, port);
    if let Ok(Some(running)) = mln_core::uml::ProcessRecord::read(&record) {
        if running.liveness() == mln_core::uml::Liveness::Alive {
            result.port = Some(port);
            return Ok(());
        }
    }
    let mut cmd = match owner::owner_of(&folder)? {
        Some(user) if owner::is_root() => user.command(&exe),
        _ => std::process::Command::new(&exe),
    };
    cmd.arg("forward")
        .arg(format!("{}/{host}", copy.project))
        .args(["--port", &port.to_string(), "--background", "--listen"])
        .arg(args.forward_listen.to_string())
        .arg("--state-dir")
        .arg(&state)
        .stdin(std::process::Stdio::null());
    let out = cmd.output().map_err(|e| format!("mln forward: {e}"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "port {port}: {}",
            said.trim().trim_start_matches("error: ")
        ));
    }
    result.port = Some(port);
    Ok(())
}
