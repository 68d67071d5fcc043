//! Projects that come back after the server restarts (`global {
//! persistent }`, MLN's `check_persistent`): `mln check-persistent` brings
//! up every recorded persistent project that has a host down, each as its
//! own `mln up -p NAME` (so a project that belongs to a user comes back as
//! theirs, see `owner`); `--install` writes a systemd unit that runs it at
//! boot.

use std::path::{Path, PathBuf};
use std::process::Command;

use mln_lang::state::StateStore;

use crate::cli::CheckPersistentArgs;
use crate::lifecycle::{fail, Places};

/// Where `--install` puts the unit unless told.
const UNIT_DIR: &str = "/etc/systemd/system";
const UNIT: &str = "mln-persistent.service";

/// `mln check-persistent`.
pub fn check_persistent(args: &CheckPersistentArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if args.install {
        return install(&places.state_root, args.unit_dir.as_deref());
    }
    let names = match StateStore::list(&places.state_root) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("this program: {e}")),
    };
    let mut code = 0;
    let mut checked = 0;
    for name in names {
        let persistent = StateStore::open(&places.state_root, &name)
            .ok()
            .and_then(|s| s.load().ok().flatten())
            .and_then(|s| s.desired)
            .is_some_and(|d| d.persistent);
        if !persistent {
            continue;
        }
        checked += 1;
        // `up` of a project that is up does nothing; of one whose guests
        // died with the server, it starts them again.
        let status = Command::new(&exe)
            .args(["up", "-q", "-p", &name, "--state-dir"])
            .arg(&places.state_root)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(_) => {
                eprintln!("error: persistent project {name} did not come back up");
                code = 1;
            }
            Err(e) => {
                eprintln!("error: persistent project {name}: {e}");
                code = 1;
            }
        }
    }
    println!("check-persistent: {checked} persistent project(s) checked");
    code
}

/// Write the systemd unit that runs `check-persistent` at boot.
fn install(state_root: &Path, unit_dir: Option<&Path>) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("this program: {e}")),
    };
    let dir = unit_dir.map_or_else(|| PathBuf::from(UNIT_DIR), Path::to_path_buf);
    let state_root = match std::path::absolute(state_root) {
        Ok(p) => p,
        Err(e) => return fail(format!("{}: {e}", state_root.display())),
    };
    let unit = unit_text(&exe, &state_root);
    let path = dir.join(UNIT);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, unit)) {
        return fail(format!("{}: {e}", path.display()));
    }
    println!("wrote {}", path.display());
    println!("enable it with: systemctl daemon-reload && systemctl enable {UNIT}");
    0
}

/// The unit: once at boot, after the network, `mln check-persistent` on
/// this state folder.
fn unit_text(exe: &Path, state_root: &Path) -> String {
    format!(
        "[Unit]\n\
         Description=Bring MLN's persistent projects back up\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart=\"{}\" check-persistent --state-dir \"{}\"\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        exe.display(),
        state_root.display()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unit_runs_check_persistent_on_the_state_folder_at_boot() {
        let text = super::unit_text("/usr/local/bin/mln".as_ref(), "/var/lib/mln".as_ref());
        assert!(text.contains(
            "ExecStart=\"/usr/local/bin/mln\" check-persistent --state-dir \"/var/lib/mln\"\n"
        ));
        assert!(text.contains("Type=oneshot"));
        assert!(text.contains("WantedBy=multi-user.target"));
    }
}
