//! Plugins built into `mln`: they answer the same requests as a program
//! would, but run in the process. A project turns one on by naming it in
//! a `plugins` block of `global`; a program of the same name in a plugins
//! folder replaces it.

use serde::Serialize;

use super::hosts_file;
use super::protocol::{FileAdd, Point, Response};
use crate::model::{GenericItem, Project};

/// The built-in plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Builtin {
    /// `hostsFile`: each guest's `/etc/hosts` lists every host by its
    /// address on a switch the guest shares with it (MLN's plugin of the
    /// same name).
    #[serde(rename = "hostsFile")]
    HostsFile,
}

impl Builtin {
    /// Every built-in.
    pub const ALL: [Builtin; 1] = [Builtin::HostsFile];

    /// Its name, as a project's `plugins` block names it.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::HostsFile => "hostsFile",
        }
    }

    /// Whether `project` turns it on: `global { plugins { hostsFile } }`.
    ///
    /// ```
    /// use mln_lang::plugin::Builtin;
    /// let on = mln_lang::load_str("a.mln", "global { project a; plugins { hostsFile } }\nhost h { }\n").unwrap();
    /// let off = mln_lang::load_str("b.mln", "global { project b }\nhost h { }\n").unwrap();
    /// assert!(Builtin::HostsFile.enabled(on.project()));
    /// assert!(!Builtin::HostsFile.enabled(off.project()));
    /// ```
    pub fn enabled(self, project: &Project) -> bool {
        project
            .global_blocks
            .iter()
            .filter(|b| b.name == "plugins")
            .flat_map(|b| &b.items)
            .any(|i| matches!(i, GenericItem::Statement { keyword, .. } if keyword == self.name()))
    }

    /// Its answer at `point` for `project` (and at
    /// [`Point::GuestConfig`], for the host called `host`).
    pub(crate) fn respond(self, point: Point, project: &Project, host: Option<&str>) -> Response {
        match (self, point, host) {
            (Builtin::HostsFile, Point::GuestConfig, Some(host)) if self.enabled(project) => {
                Response {
                    files: vec![FileAdd {
                        path: "/etc/hosts".to_string(),
                        content: hosts_file::etc_hosts(project, host),
                        mode: None,
                    }],
                    ..Response::default()
                }
            }
            _ => Response::default(),
        }
    }
}
