//! A class's logins file: one generated root password per student, kept
//! beside the roster (`ROSTER-logins.csv`, or `--logins FILE`) and
//! readable by its owner only (mode 0600). The first `mln class up` or
//! `build` makes it; every later one reads it and adds only students new
//! to the roster, so a copy's password never changes under it (a changed
//! password would be a configuration change, and a restart).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mln_lang::class::{Login, Roster, Student};

/// Letters and digits nobody misreads (no `l`, `1`, `o`, `0`, `i`).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters in a generated password: about 59 bits.
const LENGTH: usize = 12;
const HEADER: &str = "student,project,password";

/// Every student's password.
pub struct Logins {
    /// Where they are kept.
    pub path: PathBuf,
    passwords: BTreeMap<String, String>,
}

impl Logins {
    /// Where a roster's logins are kept unless told: `class.csv` →
    /// `class-logins.csv`, beside it.
    pub fn default_path(roster: &Path) -> PathBuf {
        let stem = roster
            .file_stem()
            .map_or_else(|| "class".into(), |s| s.to_string_lossy().into_owned());
        roster.with_file_name(format!("{stem}-logins.csv"))
    }

    /// The logins in `path` with a new password for every student of
    /// `roster` it lacks, written back (mode 0600) when any was added.
    pub fn load_or_make(path: &Path, roster: &Roster, project: &str) -> Result<Logins, String> {
        let mut passwords = BTreeMap::new();
        match fs::read_to_string(path) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate().skip(1) {
                    let fields: Vec<&str> = line.split(',').collect();
                    match fields[..] {
                        [student, _, password] if !password.is_empty() => {
                            passwords.insert(student.to_string(), password.to_string());
                        }
                        _ if line.trim().is_empty() => {}
                        _ => {
                            return Err(format!("{}:{}: expected {HEADER}", path.display(), i + 1))
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let mut added = false;
        for student in &roster.students {
            if !passwords.contains_key(&student.name) {
                passwords.insert(student.name.clone(), generate()?);
                added = true;
            }
        }
        let logins = Logins {
            path: path.to_path_buf(),
            passwords,
        };
        if added {
            logins.write(roster, project)?;
        } else {
            keep_private(path)?;
        }
        Ok(logins)
    }

    /// `student`'s login: their password, and their key from the roster.
    pub fn login(&self, student: &Student) -> Option<Login> {
        Some(Login {
            password: self.passwords.get(&student.name)?.clone(),
            ssh_key: student.ssh_key.clone(),
        })
    }

    /// Every password, the roster's students first in its order (a
    /// student who left the roster keeps their line).
    fn write(&self, roster: &Roster, project: &str) -> Result<(), String> {
        let mut text = format!("{HEADER}\n");
        let mut written = Vec::new();
        for s in &roster.students {
            text.push_str(&format!(
                "{},{},{}\n",
                s.name,
                s.project_name(project),
                self.passwords[&s.name]
            ));
            written.push(&s.name);
        }
        for (name, password) in &self.passwords {
            if !written.contains(&name) {
                text.push_str(&format!("{name},{project}-{name},{password}\n"));
            }
        }
        let err = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let mut aside = self.path.clone().into_os_string();
        aside.push(format!(".{}", std::process::id()));
        let aside = PathBuf::from(aside);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&aside)
            .map_err(err)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&aside, &self.path))
            .map_err(|e| {
                let _ = fs::remove_file(&aside);
                err(e)
            })
    }
}

/// Take away what others may do with an existing logins file.
fn keep_private(path: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mode = fs::metadata(path).map_err(err)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

/// A new random password from [`ALPHABET`] (from `/dev/urandom`,
/// rejecting bytes that would favour some letters).
fn generate() -> Result<String, String> {
    let mut random = fs::File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?;
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(LENGTH);
    let mut buf = [0u8; 32];
    while out.len() < LENGTH {
        random
            .read_exact(&mut buf)
            .map_err(|e| format!("/dev/urandom: {e}"))?;
        for b in buf {
            if b < limit && out.len() < LENGTH {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_made_once_kept_private_and_grow_with_the_roster() {
        let dir = tempfile::tempdir().unwrap();
        let roster_path = dir.path().join("class.csv");
        let path = Logins::default_path(&roster_path);
        assert!(path.ends_with("class-logins.csv"));
        let two = Roster::parse(&roster_path, "student\nalice\nbob\n").unwrap();
        let first = Logins::load_or_make(&path, &two, "lab").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let alice = first.login(&two.students[0]).unwrap().password;
        let bob = first.login(&two.students[1]).unwrap().password;
        assert_eq!(alice.len(), LENGTH);
        assert_ne!(alice, bob);
        assert!(alice.bytes().all(|b| ALPHABET.contains(&b)));
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("student,project,password\nalice,lab-alice,"),
            "{text}"
        );

        // A later run keeps both and adds carol; a file others could read
        // is made private again.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let three = Roster::parse(&roster_path, "student\nalice\nbob\ncarol\n").unwrap();
        let again = Logins::load_or_make(&path, &three, "lab").unwrap();
        assert_eq!(again.login(&three.students[0]).unwrap().password, alice);
        assert_eq!(again.login(&three.students[1]).unwrap().password, bob);
        assert!(again.login(&three.students[2]).is_some());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        Logins::load_or_make(&path, &three, "lab").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        fs::write(&path, "student,project,password\nalice\n").unwrap();
        let bad = Logins::load_or_make(&path, &three, "lab").err().unwrap();
        assert!(bad.contains("class-logins.csv:2: expected"), "{bad}");
    }
}
