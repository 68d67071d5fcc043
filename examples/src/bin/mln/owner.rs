//! Projects that belong to a user. A project folder owned by a user other
//! than root is that user's project: `mln` run by root on it hands the
//! work to that user (the same command, run as them through `setpriv`),
//! so its guests and switches run as them and everything they make is
//! theirs. The folder is 0700, so the operating system keeps every other
//! user out of its disks, consoles, sockets and state. `mln class` gives
//! each copy to its student this way (MLN's `owner`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// util-linux's privilege switcher (in Debian's base system): sets the
/// user, group and the user's supplementary groups, then execs the rest.
const SETPRIV: &str = "setpriv";

/// A Unix user, as the user database (`getent passwd`) has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home folder.
    pub home: PathBuf,
}

impl User {
    /// The user named (or numbered) `key`; `Err` says why not.
    pub fn lookup(key: &str) -> Result<User, String> {
        let line = getent("passwd", key, "user")?;
        let fields: Vec<&str> = line.split(':').collect();
        match fields[..] {
            [name, _, uid, gid, _, home, ..] => Ok(User {
                name: name.to_string(),
                uid: uid.parse().map_err(|_| format!("user {key}: uid {uid}"))?,
                gid: gid.parse().map_err(|_| format!("user {key}: gid {gid}"))?,
                home: PathBuf::from(home),
            }),
            _ => Err(format!("user {key}: unexpected passwd entry {line}")),
        }
    }

    /// `program` run as this user: their ids and groups, `HOME`, `USER`
    /// and `LOGNAME` theirs, the rest of the environment kept.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(SETPRIV);
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        cmd
    }
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The user a project folder belongs to, when it is not root's (or
/// there is no folder yet).
pub fn owner_of(folder: &Path) -> Result<Option<User>, String> {
    let Ok(meta) = std::fs::metadata(folder) else {
        return Ok(None);
    };
    if meta.uid() == 0 {
        return Ok(None);
    }
    User::lookup(&meta.uid().to_string())
        .map(Some)
        .map_err(|e| format!("{} belongs to uid {}: {e}", folder.display(), meta.uid()))
}

/// Run as root on a project folder that belongs to a user: become this
/// same command run as them. Returns only when there is nothing to hand
/// over, or with the error that stopped it. With `removing`, the command
/// runs as them to its end and root then deletes the folder they emptied
/// (they cannot: the state folder is root's), exiting with their status.
pub fn hand_over(folder: &Path, removing: bool) -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    let Some(user) = owner_of(folder)? else {
        return Ok(());
    };
    let exe = std::env::current_exe().map_err(|e| format!("this program: {e}"))?;
    log::info!(
        "{} belongs to {}: running as them",
        folder.display(),
        user.name
    );
    let mut cmd = user.command(&exe);
    cmd.args(std::env::args_os().skip(1));
    if !removing {
        let e = cmd.exec();
        return Err(format!("cannot run as {}: {SETPRIV}: {e}", user.name));
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run as {}: {SETPRIV}: {e}", user.name))?;
    if status.success() {
        if let Err(e) = std::fs::remove_dir(folder) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(format!("{}: {e}", folder.display()));
            }
        }
    }
    std::process::exit(status.code().unwrap_or(1));
}

/// Give the project folder `folder` (made now if missing) to `user`,
/// mode 0700, and let every user pass through `root` (its parents up to
/// the state folder) to reach it. A folder that is already someone
/// else's, or already holds a project that is not `user`'s, is refused.
pub fn give(root: &Path, folder: &Path, user: &User) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(root).map_err(|e| err(root, e))?;
    let meta = std::fs::metadata(root).map_err(|e| err(root, e))?;
    let mode = meta.permissions().mode();
    if mode & 0o011 != 0o011 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | 0o011))
            .map_err(|e| err(root, e))?;
    }
    match std::fs::metadata(folder) {
        Ok(meta) if meta.uid() == user.uid => return Ok(()),
        Ok(meta) if std::fs::read_dir(folder).map_or(true, |mut d| d.next().is_some()) => {
            return Err(format!(
                "{} already holds a project of uid {}: remove it before giving it to {}",
                folder.display(),
                meta.uid(),
                user.name
            ))
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir(folder).map_err(|e| err(folder, e))?,
    }
    std::os::unix::fs::chown(folder, Some(user.uid), Some(user.gid)).map_err(|e| err(folder, e))?;
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| err(folder, e))
}

/// The entry for `key` in the user database `db` (`passwd`, `group`), as
/// `getent` prints it; `what` names an entry in the error for a missing one.
fn getent(db: &str, key: &str, what: &str) -> Result<String, String> {
    let out = Command::new("getent")
        .args([db, key])
        .output()
        .map_err(|e| format!("getent {db} {key}: {e}"))?;
    if !out.status.success() {
        return Err(format!("no Unix {what} {key}"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The group id of the group named (or numbered) `key`.
fn group_id(key: &str) -> Result<u32, String> {
    let line = getent("group", key, "group")?;
    line.split(':')
        .nth(2)
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| format!("group {key}: unexpected group entry {line}"))
}

/// A project whose hosts or switches name an owner (MLN's `owner`, `sudo`
/// and `group` keys): run by root, its folder `folder` (under the state
/// folder `root`) is given to that user, and to the group with mode 0770
/// when one is named, so that the work is then done as them
/// ([`hand_over`]); run by anyone else, it must be theirs.
pub fn claim(
    root: &Path,
    folder: &Path,
    project: &str,
    ownership: &mln_lang::plan::Ownership,
) -> Result<(), String> {
    let user =
        User::lookup(&ownership.user).map_err(|e| format!("project {project}'s owner: {e}"))?;
    let group = match &ownership.group {
        Some(g) => Some(group_id(g).map_err(|e| format!("project {project}'s group: {e}"))?),
        None => None,
    };
    if !is_root() {
        let me = rustix::process::geteuid().as_raw();
        return if me == user.uid {
            Ok(())
        } else {
            Err(format!(
                "project {project} belongs to {} (its `owner`): run mln as {} or as root",
                user.name, user.name
            ))
        };
    }
    give(root, folder, &user)?;
    if let Some(gid) = group {
        let err = |e: std::io::Error| format!("{}: {e}", folder.display());
        std::os::unix::fs::chown(folder, None, Some(gid)).map_err(err)?;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o770)).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_the_user_database_and_a_stranger_is_not() {
        let root = User::lookup("0").unwrap();
        assert_eq!((root.name.as_str(), root.uid, root.gid), ("root", 0, 0));
        assert_eq!(User::lookup("root").unwrap(), root);
        let none = User::lookup("no-such-user-mln").unwrap_err();
        assert_eq!(none, "no Unix user no-such-user-mln");
        let dir = tempfile::tempdir().unwrap();
        // A folder of root's (or none) is nobody's to hand over to.
        if is_root() {
            assert_eq!(owner_of(dir.path()).unwrap(), None);
        }
        assert_eq!(owner_of(&dir.path().join("missing")).unwrap(), None);
    }
}
