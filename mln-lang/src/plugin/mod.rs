//! Plugins: programs `mln` calls at fixed points of a project's life,
//! with no recompiling (MLN's autoenum, hostsFile, sshkey, puppet, ...
//! plugins were Perl files `mln` loaded; these are executables).
//!
//! [`Plugins::discover`] finds them: the executables in the site's plugins
//! folder (`plugins_dir` of `/etc/mln/mln.conf`, else `/etc/mln/plugins`),
//! the user's (`plugins_dir` of `~/.mln`, else `~/.mln.d/plugins`) and any
//! given (`--plugins-dir`, `MLN_PLUGINS_DIR`), a later folder's program
//! replacing an earlier one's of the same file name, plus the built-ins
//! ([`Builtin`]), which a program of their name replaces too. They run in
//! the order of their names.
//!
//! Each is called at each [`Point`] as `PROGRAM POINT`, a JSON
//! [`Request`] on stdin, and answers with a JSON [`Response`] (or nothing)
//! on stdout: at [`Point::GuestConfig`], files and startup lines for that
//! guest; anywhere, warnings, and errors that stop the action. A program
//! that exits non-zero, runs longer than its bound, or prints something
//! that is not a response stops the action too, with its stderr. The
//! protocol is documented for plugin authors in `docs/plugins.md`.
//!
//! ```no_run
//! use mln_lang::plugin::{PluginFolders, Plugins};
//! let checked = mln_lang::load("projects/lab.mln")?;
//! let plugins = Plugins::discover(&PluginFolders::from_settings())?;
//! for warning in plugins.resolved(checked.project())? {
//!     eprintln!("warning: {warning}");
//! }
//! let mut desired = mln_lang::plan::DesiredProject::from_project(checked.project());
//! plugins.guest_configs(checked.project(), &mut desired)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builtin;
mod discover;
mod hosts_file;
mod protocol;
mod run;

use std::path::PathBuf;
use std::time::Duration;

pub use builtin::Builtin;
pub use discover::{
    Origin, Plugin, PluginFolders, Program, PLUGINS_DIR_ENV, SITE_PLUGINS, USER_PLUGINS,
};
pub use hosts_file::etc_hosts;
pub use protocol::{FileAdd, PluginDiagnostic, PluginSeverity, Point, Request, Response, PROTOCOL};

use crate::model::Project;
use crate::plan::{with_hashed_passwords, DesiredProject, WrittenFile};

/// How long one plugin program may run at one point unless told.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Which plugin was running where: what messages name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The plugin's name.
    pub plugin: String,
    /// The point.
    pub point: Point,
    /// The host, at [`Point::GuestConfig`].
    pub host: Option<String>,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {} at {}", self.plugin, self.point)?;
        if let Some(h) = &self.host {
            write!(f, " for host {h}")?;
        }
        Ok(())
    }
}

/// A warning a plugin gave; the action went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Who said it, where.
    pub at: Place,
    /// What it said.
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Why plugins stopped an action.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// A plugins folder exists but cannot be read.
    #[error("plugins folder {}: {source}", .path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The request could not be made (the project does not serialise).
    #[error("{at}: cannot make the request: {reason}")]
    Request {
        /// Where.
        at: Place,
        /// Why.
        reason: String,
    },
    /// The program could not be started.
    #[error("{at}: cannot run {}: {reason}", .program.display())]
    Spawn {
        /// Where.
        at: Place,
        /// The program.
        program: PathBuf,
        /// Why.
        reason: String,
    },
    /// The program ran longer than its bound and was killed.
    #[error("{at}: still running after {after:?}; killed")]
    Timeout {
        /// Where.
        at: Place,
        /// The bound.
        after: Duration,
    },
    /// The program exited non-zero.
    #[error("{at} failed ({status}){}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Failed {
        /// Where.
        at: Place,
        /// Its exit status, in words.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The program printed something that is not a response.
    #[error("{at}: {reason}")]
    BadResponse {
        /// Where.
        at: Place,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin answered with an error diagnostic.
    #[error("{at}: {message}")]
    Refused {
        /// Where.
        at: Place,
        /// Its message.
        message: String,
    },
}

/// The plugins `mln` calls, in order, and how long each may run.
#[derive(Debug, Clone)]
pub struct Plugins {
    list: Vec<Plugin>,
    timeout: Duration,
}

impl Default for Plugins {
    /// Only the built-ins.
    fn default() -> Self {
        Plugins {
            list: Vec::new(),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
        }
        .with_builtins()
    }
}

impl Plugins {
    /// The built-ins and every plugin program in `folders` (see the
    /// module docs); a folder that exists but cannot be read is an error.
    pub fn discover(folders: &PluginFolders) -> Result<Plugins, PluginError> {
        Ok(Plugins {
            list: discover::discover(folders)?,
            timeout: DEFAULT_PLUGIN_TIMEOUT,
        })
    }

    fn with_builtins(mut self) -> Self {
        self.list = discover::discover(&PluginFolders::default()).unwrap_or_default();
        self
    }

    /// Let each program run at most `timeout` at each call (default
    /// [`DEFAULT_PLUGIN_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The plugins, in the order they run.
    pub fn list(&self) -> &[Plugin] {
        &self.list
    }

    /// After `project` is resolved: the warnings plugins gave.
    pub fn resolved(&self, project: &Project) -> Result<Vec<Note>, PluginError> {
        self.project_point(Point::Resolved, project)
    }

    /// Before planning a build of `project` into `desired`: the
    /// [`Point::Resolved`] calls, then [`Plugins::guest_configs`]; the
    /// warnings of both.
    pub fn prepare(
        &self,
        project: &Project,
        desired: &mut DesiredProject,
    ) -> Result<Vec<Note>, PluginError> {
        let mut notes = self.resolved(project)?;
        notes.extend(self.guest_configs(project, desired)?);
        Ok(notes)
    }

    /// After `build`, `up` or `upgrade` applied its plan to `project`.
    pub fn built(&self, project: &Project) -> Result<Vec<Note>, PluginError> {
        self.project_point(Point::Built, project)
    }

    /// Before `remove` removes anything of `project`: an error here means
    /// nothing is to be removed.
    pub fn removing(&self, project: &Project) -> Result<Vec<Note>, PluginError> {
        self.project_point(Point::Removing, project)
    }

    /// Ask every plugin, for every host of `desired` that `project`
    /// has, what it adds to the guest's configuration, and add it:
    /// files to [`crate::plan::GuestSpec::written`], startup lines to
    /// [`crate::plan::GuestSpec::plugin_startup`] (run after the host's
    /// own). What the plugins add is part of the desired
    /// project, so the plan sees a change in it and the state records it.
    pub fn guest_configs(
        &self,
        project: &Project,
        desired: &mut DesiredProject,
    ) -> Result<Vec<Note>, PluginError> {
        let mut notes = Vec::new();
        let json = self.request_project(project)?;
        for (name, spec) in &mut desired.hosts {
            let host_json = json
                .as_ref()
                .and_then(|j| {
                    j.get("hosts")?
                        .as_array()?
                        .iter()
                        .find(|h| h["name"] == **name)
                })
                .cloned();
            if project.host(name).is_none() {
                continue;
            }
            for (plugin, response) in self.call(
                Point::GuestConfig,
                project,
                json.as_ref(),
                Some((name, host_json)),
            )? {
                notes.extend(warnings(&plugin, Point::GuestConfig, Some(name), &response));
                for f in response.files {
                    let mode = f.mode_bits().map_err(|reason| PluginError::BadResponse {
                        at: place(&plugin, Point::GuestConfig, Some(name)),
                        reason,
                    })?;
                    spec.guest.written.push(WrittenFile {
                        path: f.path,
                        content: f.content,
                        mode,
                        plugin: plugin.clone(),
                    });
                }
                spec.guest.plugin_startup.extend(response.startup);
            }
        }
        Ok(notes)
    }

    fn project_point(&self, point: Point, project: &Project) -> Result<Vec<Note>, PluginError> {
        let json = self.request_project(project)?;
        Ok(self
            .call(point, project, json.as_ref(), None)?
            .iter()
            .flat_map(|(plugin, r)| warnings(plugin, point, None, r))
            .collect())
    }

    /// The project as requests carry it (passwords hashed); `None` when
    /// no program will be asked.
    fn request_project(&self, project: &Project) -> Result<Option<serde_json::Value>, PluginError> {
        if !self
            .list
            .iter()
            .any(|p| matches!(p.program, Program::Executable(_)))
        {
            return Ok(None);
        }
        serde_json::to_value(with_hashed_passwords(project))
            .map(Some)
            .map_err(|e| PluginError::Request {
                at: place("*", Point::Resolved, None),
                reason: e.to_string(),
            })
    }

    /// Every plugin's response at `point` (for `host`, its name and JSON),
    /// in order; an error diagnostic or a failing program stops at once.
    fn call(
        &self,
        point: Point,
        project: &Project,
        json: Option<&serde_json::Value>,
        host: Option<(&str, Option<serde_json::Value>)>,
    ) -> Result<Vec<(String, Response)>, PluginError> {
        let host_name = host.as_ref().map(|(n, _)| *n);
        let mut out = Vec::new();
        for p in &self.list {
            let response = match (&p.program, json) {
                (Program::Builtin(b), _) => b.respond(point, project, host_name),
                (Program::Executable(path), Some(json)) => {
                    let request = Request {
                        protocol: PROTOCOL,
                        point,
                        project: json.clone(),
                        host: host.as_ref().and_then(|(_, j)| j.clone()),
                    };
                    let call = run::Call {
                        plugin: &p.name,
                        point,
                        project: &project.name,
                        host: host_name,
                    };
                    run::run_program(path, &call, &request, self.timeout)?
                }
                (Program::Executable(_), None) => continue,
            };
            if let Some(d) = response
                .diagnostics
                .iter()
                .find(|d| d.severity == PluginSeverity::Error)
            {
                return Err(PluginError::Refused {
                    at: place(&p.name, point, host_name),
                    message: d.message.clone(),
                });
            }
            out.push((p.name.clone(), response));
        }
        Ok(out)
    }
}

/// Give the hosts of `desired` what plugins added to them in `recorded`
/// (the project as last built): for verbs that call no plugins (`stop`,
/// `remove`) but record the project file they were given, so that a later
/// `start -p NAME` still writes the guests what the plugins added.
pub fn keep_additions(desired: &mut DesiredProject, recorded: &DesiredProject) {
    for (name, spec) in &mut desired.hosts {
        if let Some(old) = recorded.hosts.get(name) {
            spec.guest.written.clone_from(&old.guest.written);
            spec.guest
                .plugin_startup
                .clone_from(&old.guest.plugin_startup);
        }
    }
}

fn place(plugin: &str, point: Point, host: Option<&str>) -> Place {
    Place {
        plugin: plugin.to_string(),
        point,
        host: host.map(str::to_string),
    }
}

fn warnings(plugin: &str, point: Point, host: Option<&str>, r: &Response) -> Vec<Note> {
    r.diagnostics
        .iter()
        .filter(|d| d.severity == PluginSeverity::Warning)
        .map(|d| Note {
            at: place(plugin, point, host),
            message: d.message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
