//! A class: one copy of a project per student, from a roster.
//!
//! The roster is a CSV file whose first line names the columns. `student`
//! is required: a name that is both a Unix user name and the end of a
//! project name (`[a-z_][a-z0-9_-]*`, 32 characters at most). `ssh_key`
//! (a public key, as in a `.pub` file) is optional: it is `$ssh_key` in
//! that student's copy (`sshkey { root $ssh_key }`). Every other column
//! whose name is a variable name becomes a variable of that student's
//! copy (a `vlan` column gives `$vlan`). Blank lines and lines starting
//! with `#` are skipped; a field may be quoted (`"..."`, `""` for a quote).
//!
//! Each copy is the project with [`Definitions`]: named `PROJECT-STUDENT`,
//! `$student` and `$index` (1 for the first student) set, and the roster's
//! own columns. A copy keeps the file's addresses unless the teacher
//! writes them with these variables: copies are isolated (each has its
//! own switches), so the same addresses in two copies never meet.
//!
//! ```
//! use mln_lang::class::Roster;
//! let roster = Roster::parse("class.csv", "student,mem\nalice,64M\nbob,128M\n").unwrap();
//! let text = "global { project lab }\nhost pc { memory $mem }\n";
//! let bob = &roster.students[1];
//! let checked = mln_lang::load_str_with("lab.mln", text, &bob.definitions("lab").unwrap()).unwrap();
//! assert_eq!(checked.project().name, "lab-bob");
//! assert_eq!(checked.project().host("pc").unwrap().memory, 128 << 20);
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::defines::{DefineError, Definitions};

/// The longest student name (a Unix user name's limit).
pub const MAX_STUDENT_NAME: usize = 32;

/// The roster's columns with a meaning of their own.
const STUDENT: &str = "student";
const SSH_KEY: &str = "ssh_key";

/// Every student of a class, in roster order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The roster file.
    pub path: PathBuf,
    /// The students.
    pub students: Vec<Student>,
}

/// One line of the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Student {
    /// The student's name (also their Unix user name).
    pub name: String,
    /// 1 for the roster's first student.
    pub index: usize,
    /// Their SSH public key, if the roster gives one.
    pub ssh_key: Option<String>,
    /// The roster's other columns (those named like variables).
    pub variables: BTreeMap<String, String>,
    /// The roster line.
    pub line: usize,
}

/// A roster that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The roster.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line that is not what the roster needs.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The roster.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Roster {
    /// Read the roster at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Roster, RosterError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RosterError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse roster text; `path` is what errors call it.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Roster, RosterError> {
        let path = path.as_ref().to_path_buf();
        let err = |line: usize, message: String| RosterError::Line {
            path: path.clone(),
            line,
            message,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((header_line, header)) = lines.next() else {
            return Err(err(
                1,
                "empty roster: expected a header line such as `student,ssh_key`".into(),
            ));
        };
        let columns: Vec<String> = fields(header)
            .map_err(|m| err(header_line, m))?
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let Some(student_col) = columns.iter().position(|c| c == STUDENT) else {
            return Err(err(
                header_line,
                format!("no `{STUDENT}` column in the header"),
            ));
        };
        let mut students: Vec<Student> = Vec::new();
        for (line, text) in lines {
            let values = fields(text).map_err(|m| err(line, m))?;
            if values.len() != columns.len() {
                return Err(err(
                    line,
                    format!(
                        "{} field(s), the header has {}",
                        values.len(),
                        columns.len()
                    ),
                ));
            }
            let name = values[student_col].clone();
            check_student_name(&name).map_err(|m| err(line, m))?;
            if let Some(first) = students.iter().find(|s| s.name == name) {
                return Err(err(
                    line,
                    format!("student `{name}` is also on line {}", first.line),
                ));
            }
            let mut student = Student {
                name,
                index: students.len() + 1,
                ssh_key: None,
                variables: BTreeMap::new(),
                line,
            };
            for (column, value) in columns.iter().zip(values) {
                match column.as_str() {
                    STUDENT => {}
                    SSH_KEY => student.ssh_key = Some(value).filter(|v| !v.is_empty()),
                    other => {
                        student.variables.insert(other.to_string(), value);
                    }
                }
            }
            students.push(student);
        }
        if students.is_empty() {
            return Err(err(header_line, "no students after the header".into()));
        }
        Ok(Roster { path, students })
    }
}

impl Student {
    /// The name of this student's copy of `project`.
    pub fn project_name(&self, project: &str) -> String {
        format!("{project}-{}", self.name)
    }

    /// What makes this student's copy of `project`: its name, `$student`,
    /// `$index` and the roster's columns that are variable names (others
    /// are not variables and are left out).
    pub fn definitions(&self, project: &str) -> Result<Definitions, DefineError> {
        let mut d = Definitions::new()
            .project(self.project_name(project))
            .variable("student", &self.name)?
            .variable("index", self.index.to_string())?;
        if let Some(key) = &self.ssh_key {
            d = d.variable(SSH_KEY, key)?;
        }
        for (name, value) in &self.variables {
            d = match d.clone().variable(name, value) {
                Ok(d) => d,
                Err(DefineError::BadName { .. }) => d,
                Err(e) => return Err(e),
            };
        }
        Ok(d)
    }
}

/// A student's way into every host of their copy: root's password (plain
/// here; hashed, with a salt of the project and host, before it reaches a
/// guest, the state or a plan) and, when the roster gives one, their SSH
/// key for root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Root's password on the copy's hosts.
    pub password: String,
    /// A public key (`TYPE BASE64 [COMMENT]`) root accepts.
    pub ssh_key: Option<String>,
}

impl Login {
    /// Give every host of `project` this login: its `root_passwd` is the
    /// password (whatever the file said), its `sshkey` lines gain root's
    /// key.
    ///
    /// ```
    /// use mln_lang::class::Login;
    /// let mut lab = mln_lang::load_str("lab.mln", "global { project lab }\nhost a { root_passwd x }\n")
    ///     .unwrap().resolved.project;
    /// Login { password: "s3cret".into(), ssh_key: Some("ssh-ed25519 AAAA a@b".into()) }.apply(&mut lab);
    /// let a = lab.host("a").unwrap();
    /// assert_eq!(a.root_passwd.as_deref(), Some("s3cret"));
    /// assert_eq!(a.sshkey, ["root ssh-ed25519 AAAA a@b"]);
    /// ```
    pub fn apply(&self, project: &mut crate::model::Project) {
        for host in &mut project.hosts {
            host.root_passwd = Some(self.password.clone());
            if let Some(key) = &self.ssh_key {
                let line = format!("root {key}");
                if !host.sshkey.contains(&line) {
                    host.sshkey.push(line);
                }
            }
        }
    }
}

/// A student name: a Unix user name that also ends a project name.
fn check_student_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let good = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= MAX_STUDENT_NAME;
    if good {
        Ok(())
    } else {
        Err(format!(
            "student `{name}`: a student name is a Unix user name: lower-case letters, digits, \
             `_` and `-`, starting with a letter or `_`, {MAX_STUDENT_NAME} characters at most"
        ))
    }
}

/// The fields of one CSV line.
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err("text after a quoted field".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            field = field.trim().to_string();
        }
        out.push(field);
        match chars.next() {
            Some(',') => {}
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_gives_each_student_a_copy_with_their_variables() {
        let text = "# class of 2026\nstudent, ssh_key ,Vlan,full name\n\
            alice,\"ssh-ed25519 AAAA alice@home\",101,\"Alice, A.\"\n\n\
            bob,,102,Bob\n";
        let roster = Roster::parse("class.csv", text).unwrap();
        let [alice, bob] = &roster.students[..] else {
            panic!("{roster:?}")
        };
        assert_eq!(
            (alice.name.as_str(), alice.index, alice.line),
            ("alice", 1, 3)
        );
        assert_eq!(
            alice.ssh_key.as_deref(),
            Some("ssh-ed25519 AAAA alice@home")
        );
        assert_eq!(alice.variables["full name"], "Alice, A.");
        assert_eq!((bob.index, bob.ssh_key.as_deref()), (2, None));
        let d = bob.definitions("lab").unwrap();
        assert_eq!(d.project_name(), Some("lab-bob"));
        // `full name` is no variable name: left out.
        assert_eq!(
            d.variables().collect::<Vec<_>>(),
            [("student", "bob"), ("index", "2"), ("vlan", "102")]
        );
    }

    #[test]
    fn a_bad_roster_names_the_line() {
        let bad = |text: &str| Roster::parse("c.csv", text).unwrap_err().to_string();
        assert!(bad("").contains("c.csv:1: empty roster"));
        assert!(bad("name\nalice\n").contains("c.csv:1: no `student` column"));
        assert!(bad("student\n").contains("no students"));
        assert!(bad("student,x\nalice\n").contains("c.csv:2: 1 field(s), the header has 2"));
        assert!(bad("student\nalice\nbob\nalice\n")
            .contains("c.csv:4: student `alice` is also on line 2"));
        for name in ["Alice", "al/ice", "a;b", "1st", "", &"x".repeat(33)] {
            assert!(
                bad(&format!("student\n\"{name}\"\n")).contains("is a Unix user name"),
                "{name}"
            );
        }
        assert!(bad("student\n\"alice\n").contains("not closed"));
    }

    #[test]
    fn a_students_copy_is_named_for_them_and_keeps_the_files_addresses() {
        let root = env!("CARGO_MANIFEST_DIR");
        let roster = Roster::parse("c.csv", "student\nalice\nbob\n").unwrap();
        let copies: Vec<_> = roster
            .students
            .iter()
            .map(|s| {
                crate::load_with(
                    format!("{root}/../projects/lab.mln"),
                    &s.definitions("lab").unwrap(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(copies[0].project().name, "lab-alice");
        assert_eq!(copies[1].project().name, "lab-bob");
        assert_eq!(
            copies[0].project().hosts,
            copies[1].project().hosts,
            "the same hosts, addresses and all"
        );
    }
}
