//! Bringing projects up and down: `mln.up`, `mln.stop`, `mln.status`, ...
//! over mln-lang's executor and this machine's backends.
//!
//! Every call releases the GIL while it works; the progress callback takes
//! it back for each event it reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use mln_lang::agent::ServerAccess;
use mln_lang::apply::{self, ClusterBackends, LocalBackends, Progress, RunOptions};
use mln_lang::plan::{domain_name, ActionId, Goal, HookPoint};
use mln_lang::state::StateStore;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert;
use crate::errors::{self, BackendError, MlnError, PlanError, StateError};
use crate::plan::{Action, Plan};
use crate::project::{load, Project};

/// A guest template: an ext4 image every host's copy-on-write disk is made
/// over, and the kernel arguments that boot it.
#[pyclass(frozen, module = "mln", from_py_object)]
#[derive(Debug, Clone)]
pub struct Template(mln_core::template::Template);

#[pymethods]
impl Template {
    /// A template from an existing image.
    #[new]
    #[pyo3(signature = (image, cmdline="root=/dev/ubda rw"))]
    fn new(image: PathBuf, cmdline: &str) -> Self {
        Template(mln_core::template::Template::image(image, cmdline))
    }

    /// The busybox template, built from this machine's static busybox into
    /// ``out_dir`` (or reused when already built there from the same
    /// inputs). Raises ``mln.BackendError`` when it cannot be built.
    #[staticmethod]
    fn busybox(py: Python<'_>, out_dir: PathBuf) -> PyResult<Self> {
        py.detach(|| mln_core::template::Template::default_in(&out_dir))
            .map(Template)
            .map_err(|e| BackendError::new_err(e.to_string()))
    }

    /// The Debian template (Debian 12 unless ``suite`` names another),
    /// built with mmdebstrap into ``out_dir`` (or reused when built there
    /// from the same inputs; a first build takes a minute or two), its
    /// name ``debian-12.ext4`` a link to the image. Raises
    /// ``mln.BackendError`` when it cannot be built (no mmdebstrap; as a
    /// normal user, no subordinate ids for a user namespace).
    #[staticmethod]
    #[pyo3(signature = (out_dir, suite="bookworm"))]
    fn debian(py: Python<'_>, out_dir: PathBuf, suite: &str) -> PyResult<Self> {
        let builder = mln_core::template::DebianTemplate::new().suite(suite);
        py.detach(|| builder.build(&out_dir, &|_| {}))
            .map(|built| Template(built.template))
            .map_err(|e| BackendError::new_err(e.to_string()))
    }

    /// An image in a templates folder, as the image says it boots (the
    /// boot marker of MLN's templates and imported images); an image that
    /// cannot be read raises.
    #[staticmethod]
    fn inspect(py: Python<'_>, image: PathBuf) -> PyResult<Self> {
        py.detach(|| mln_core::template::Template::inspect(image))
            .map(Template)
            .map_err(|e| BackendError::new_err(e.to_string()))
    }

    /// The image file.
    #[getter]
    fn image(&self) -> PathBuf {
        self.0.image.clone()
    }

    /// Kernel arguments for a guest whose first disk is over the image.
    #[getter]
    fn cmdline(&self) -> &str {
        &self.0.cmdline
    }

    /// The line its guests print on the console once booted (``None``:
    /// they print none, and count as booted once they stay up).
    #[getter]
    fn boot_marker(&self) -> Option<&str> {
        self.0.boot_marker.as_deref()
    }

    fn __repr__(&self) -> String {
        format!("<Template {}>", self.0.image.display())
    }
}

/// What a lifecycle call did.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct Outcome(pub(crate) apply::Outcome);

#[pymethods]
impl Outcome {
    /// The plan that was computed (and applied, unless a dry run).
    #[getter]
    fn plan(&self) -> Plan {
        Plan(self.0.plan.clone())
    }

    /// True for a dry run: nothing was applied.
    #[getter]
    fn dry_run(&self) -> bool {
        self.0.report.is_none()
    }

    /// True when every action finished (always for a dry run).
    #[getter]
    pub(crate) fn succeeded(&self) -> bool {
        self.0.report.as_ref().is_none_or(|r| r.is_success())
    }

    /// Ids of the actions that finished, in completion order.
    #[getter]
    fn done(&self) -> Vec<usize> {
        self.0
            .report
            .iter()
            .flat_map(|r| r.done.iter().map(|a| a.0))
            .collect()
    }

    /// ``(action id, description, error)`` of every action that failed.
    #[getter]
    pub(crate) fn failed(&self) -> Vec<(usize, String, String)> {
        self.0
            .report
            .iter()
            .flat_map(|r| r.failed.iter())
            .map(|f| (f.action.0, f.description.clone(), f.error.clone()))
            .collect()
    }

    /// ``(host, how its first boot ended)`` of every guest that died of a
    /// fault known to pass while booting and was started once more.
    #[getter]
    fn boot_retries(&self) -> Vec<(String, String)> {
        self.0
            .report
            .iter()
            .flat_map(|r| r.boot_retries.iter())
            .map(|b| (b.host.clone(), b.why.clone()))
            .collect()
    }

    /// Ids of the actions not run because something they wait for failed.
    #[getter]
    pub(crate) fn not_run(&self) -> Vec<usize> {
        self.0
            .report
            .iter()
            .flat_map(|r| r.not_run.iter().map(|a| a.0))
            .collect()
    }

    /// The plan and the report as plain data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Outcome {} {} actions={} {}>",
            self.0.plan.project,
            self.0.plan.goal.as_str(),
            self.0.plan.actions.len(),
            match &self.0.report {
                None => "dry-run",
                Some(r) if r.is_success() => "ok",
                Some(_) => "failed",
            }
        )
    }
}

/// One host as ``mln.status`` sees it.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct HostStatus(apply::HostStatus);

#[pymethods]
impl HostStatus {
    /// The host.
    #[getter]
    fn host(&self) -> &str {
        &self.0.host
    }

    /// Its service host (``None``: local).
    #[getter]
    fn service_host(&self) -> Option<String> {
        self.0.service_host.clone()
    }

    /// ``"uml"``, ``"xen"``, ``"hvm"`` or ``"kvm"``.
    #[getter]
    fn platform(&self) -> &'static str {
        self.0.platform.keyword()
    }

    /// What the backend says (``"running"``, ``"paused"``, ...), or
    /// ``"built"``, ``"partial"`` or ``"absent"``.
    #[getter]
    fn state(&self) -> &str {
        &self.0.state
    }

    /// The Xen domid or UML pid, while it runs.
    #[getter]
    fn id(&self) -> Option<u32> {
        self.0.id
    }

    /// Memory now, bytes.
    #[getter]
    fn memory(&self) -> u64 {
        self.0.memory
    }

    /// vCPUs.
    #[getter]
    fn vcpus(&self) -> u32 {
        self.0.vcpus
    }

    /// For a QEMU guest, the accelerator it runs under (`"KVM"`, `"TCG"`);
    /// `None` for the other platforms.
    #[getter]
    fn acceleration(&self) -> Option<&str> {
        self.0.acceleration.as_deref()
    }

    fn __repr__(&self) -> String {
        format!("<HostStatus {} {}>", self.0.host, self.0.state)
    }
}

/// Every host and switch of a project with what the backends say about it.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct Status(apply::ProjectStatus);

#[pymethods]
impl Status {
    /// The project.
    #[getter]
    fn project(&self) -> &str {
        &self.0.project
    }

    /// Hosts by name.
    #[getter]
    fn hosts(&self) -> Vec<HostStatus> {
        self.0.hosts.iter().cloned().map(HostStatus).collect()
    }

    /// ``{switch: "up" | "down" | "absent"}``.
    #[getter]
    fn switches(&self) -> BTreeMap<String, String> {
        self.0
            .switches
            .iter()
            .map(|s| (s.switch.clone(), s.state.clone()))
            .collect()
    }

    /// The state of ``host``, or ``None`` when the project has no such
    /// host.
    fn host(&self, host: &str) -> Option<HostStatus> {
        self.0
            .hosts
            .iter()
            .find(|h| h.host == host)
            .cloned()
            .map(HostStatus)
    }

    /// The status as plain data (``mln status --format json``).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    fn __repr__(&self) -> String {
        format!("<Status {} hosts={}>", self.0.project, self.0.hosts.len())
    }
}

/// The executor's progress, handed to a Python callable
/// ``progress(event, action, message)``. The first exception the callable
/// raises is kept and raised when the run is over.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    error: Mutex<Option<PyErr>>,
}

impl PyProgress {
    fn emit(&self, event: &str, action: Option<&mln_lang::plan::Action>, message: Option<String>) {
        let Some(callback) = &self.callback else {
            return;
        };
        Python::attach(|py| {
            let action = action.map(|a| Action(a.clone()));
            if let Err(e) = callback.call1(py, (event, action, message)) {
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert(e);
                }
            }
        });
    }

    fn take_error(&self) -> Option<PyErr> {
        self.error.lock().ok().and_then(|mut slot| slot.take())
    }
}

impl Progress for PyProgress {
    fn started(&self, action: &mln_lang::plan::Action) {
        self.emit("started", Some(action), None);
    }

    fn finished(&self, action: &mln_lang::plan::Action, result: Result<(), &apply::ApplyError>) {
        match result {
            Ok(()) => self.emit("finished", Some(action), None),
            Err(e) => self.emit("failed", Some(action), Some(e.to_string())),
        }
    }

    fn said(&self, action: &mln_lang::plan::Action, line: &str) {
        self.emit("said", Some(action), Some(line.to_string()));
    }

    fn boot_retried(&self, action: &mln_lang::plan::Action, retry: &apply::BootRetry) {
        let why = format!("{}: {}; started it once more", retry.host, retry.why);
        self.emit("retried", Some(action), Some(why));
    }

    fn skipped(&self, action: &mln_lang::plan::Action, because: ActionId) {
        let why = format!("action {} failed", because.0);
        self.emit("skipped", Some(action), Some(why));
    }

    fn hook_output(&self, point: HookPoint, line: &str) {
        let _ = point;
        self.emit("hook", None, Some(line.to_string()));
    }
}

/// The exception for an error of the executor.
fn apply_error(e: apply::ApplyError) -> PyErr {
    let message = e.to_string();
    use apply::ApplyError as E;
    match e {
        E::State(_) | E::Record(_) => StateError::new_err(message),
        E::Backend { .. } | E::Hook { .. } | E::Observe(_) => BackendError::new_err(message),
        E::Missing { .. } | E::BadPlan(_) | E::NoProject(_) | E::Capacity { .. } => {
            PlanError::new_err(message)
        }
        _ => MlnError::new_err(message),
    }
}

/// This machine's backends plus an agent, over SSH, for every other
/// service host the project (`model`, else the recorded one) uses.
fn cluster(
    name: &str,
    store: &StateStore,
    local: LocalBackends,
    model: Option<&mln_lang::model::Project>,
) -> PyResult<ClusterBackends> {
    let state = store
        .load()
        .map_err(|e| StateError::new_err(e.to_string()))?;
    let desired = model
        .map(mln_lang::plan::DesiredProject::from_project)
        .or_else(|| state.as_ref().and_then(|s| s.desired.clone()));
    Ok(ClusterBackends::new(name, local, ServerAccess::from_env())
        .with_servers(desired.as_ref(), state.as_ref()))
}

/// The project's state folder under `state_dir` (the default root when
/// `None`).
fn store(state_dir: Option<PathBuf>, project: &str) -> PyResult<StateStore> {
    match state_dir {
        Some(root) => StateStore::open(root, project),
        None => StateStore::open_default(project),
    }
    .map_err(|e| StateError::new_err(e.to_string()))
}

/// A `Project`, a path to load, or (when `by_name`) a project name.
enum Target {
    Project(Project),
    Name(String),
}

fn target(py: Python<'_>, project: &Bound<'_, PyAny>, by_name: bool) -> PyResult<Target> {
    if let Ok(p) = project.cast::<Project>() {
        return Ok(Target::Project(p.get().clone()));
    }
    if by_name {
        if let Ok(name) = project.extract::<String>() {
            return Ok(Target::Name(name));
        }
        return Err(PyTypeError::new_err(
            "expected an mln.Project or a project name",
        ));
    }
    match project.extract::<PathBuf>() {
        Ok(path) => load(py, path, true).map(Target::Project),
        Err(_) => Err(PyTypeError::new_err(
            "expected an mln.Project or the path of a project file",
        )),
    }
}

/// The arguments every lifecycle verb takes.
struct Verb<'py> {
    project: Bound<'py, PyAny>,
    by_name: bool,
    goal: Goal,
    state_dir: Option<PathBuf>,
    template: Option<Template>,
    templates: Option<BTreeMap<String, Template>>,
    hosts: Option<Vec<String>>,
    parallelism: usize,
    wait: bool,
    dry_run: bool,
    progress: Option<Py<PyAny>>,
}

impl Verb<'_> {
    fn run(self) -> PyResult<Outcome> {
        let py = self.project.py();
        let target = target(py, &self.project, self.by_name)?;
        let name = match &target {
            Target::Project(p) => p.model().name.clone(),
            Target::Name(n) => n.clone(),
        };
        let store = store(self.state_dir, &name)?;
        let mut backends =
            LocalBackends::new(store.dir()).map_err(|e| BackendError::new_err(e.to_string()))?;
        if let Some(t) = self.template {
            backends = backends.with_default_template(t.0);
        }
        for (name, t) in self.templates.unwrap_or_default() {
            backends = backends.with_template(name, t.0);
        }
        let mut options = RunOptions::new(self.goal);
        options.hosts = self.hosts.map(|h| h.into_iter().collect());
        options.parallelism = self.parallelism;
        options.wait_for_lock = self.wait;
        options.dry_run = self.dry_run;
        let progress = PyProgress {
            callback: self.progress,
            error: Mutex::new(None),
        };
        let model = match &target {
            Target::Project(p) => Some(p.model()),
            Target::Name(_) => None,
        };
        let backends = cluster(&name, &store, backends, model)?;
        let result = py.detach(|| {
            let run = apply::Run::new(store, &backends, options)
                .free_memory(&backends)
                .progress(&progress);
            match model {
                Some(project) => run.project(project),
                None => run,
            }
            .run()
        });
        if let Some(e) = progress.take_error() {
            return Err(e);
        }
        let outcome = Outcome(result.map_err(apply_error)?);
        if !outcome.succeeded() {
            return Err(errors::apply_failed(py, outcome));
        }
        Ok(outcome)
    }
}

macro_rules! verb {
    ($(#[$doc:meta])* $name:ident, $goal:expr, $by_name:expr) => {
        $(#[$doc])*
        #[pyfunction]
        #[pyo3(signature = (
            project, *, state_dir=None, template=None, templates=None, hosts=None,
            parallelism=4, wait=false, dry_run=false, progress=None
        ))]
        #[allow(clippy::too_many_arguments)]
        pub fn $name(
            project: Bound<'_, PyAny>,
            state_dir: Option<PathBuf>,
            template: Option<Template>,
            templates: Option<BTreeMap<String, Template>>,
            hosts: Option<Vec<String>>,
            parallelism: usize,
            wait: bool,
            dry_run: bool,
            progress: Option<Py<PyAny>>,
        ) -> PyResult<Outcome> {
            Verb {
                project,
                by_name: $by_name,
                goal: $goal,
                state_dir,
                template,
                templates,
                hosts,
                parallelism,
                wait,
                dry_run,
                progress,
            }
            .run()
        }
    };
}

verb!(
    /// Prepare every host (disks, guest configuration) and start nothing.
    build,
    Goal::Build,
    false
);
verb!(
    /// Build what is missing and start every host.
    up,
    Goal::Up,
    false
);
verb!(
    /// Build what is missing and start every host: ``mln start``, the same
    /// as ``up``.
    start,
    Goal::Up,
    false
);
verb!(
    /// Bring a running project in line with a changed file.
    upgrade,
    Goal::Upgrade,
    false
);
verb!(
    /// Stop every running host; keep disks and configuration.
    stop,
    Goal::Stop,
    true
);
verb!(
    /// Stop and delete everything the project made.
    remove,
    Goal::Remove,
    true
);

/// Every host and switch of a project (an ``mln.Project`` or a project
/// name) with what the backends say about it.
#[pyfunction]
#[pyo3(signature = (project, *, state_dir=None))]
pub fn status(
    py: Python<'_>,
    project: Bound<'_, PyAny>,
    state_dir: Option<PathBuf>,
) -> PyResult<Status> {
    let name = match target(py, &project, true)? {
        Target::Project(p) => p.model().name.clone(),
        Target::Name(n) => n,
    };
    let store = store(state_dir, &name)?;
    let local =
        LocalBackends::new(store.dir()).map_err(|e| BackendError::new_err(e.to_string()))?;
    let backends = cluster(&name, &store, local, None)?;
    py.detach(|| apply::status_with(&store, &backends, Some(&backends)))
        .map(Status)
        .map_err(apply_error)
}

/// The console log of ``host`` of ``project`` (an ``mln.Project`` or a
/// project name) when it runs on User-Mode Linux on this machine: what its
/// kernel and its startup lines printed.
#[pyfunction]
#[pyo3(signature = (project, host, *, state_dir=None))]
pub fn console_log(
    py: Python<'_>,
    project: Bound<'_, PyAny>,
    host: &str,
    state_dir: Option<PathBuf>,
) -> PyResult<PathBuf> {
    let name = match target(py, &project, true)? {
        Target::Project(p) => p.model().name.clone(),
        Target::Name(n) => n,
    };
    let store = store(state_dir, &name)?;
    LocalBackends::new(store.dir())
        .and_then(|b| b.console_log(&name, host))
        .map_err(|e| BackendError::new_err(e.to_string()))
}

/// What a command run in a guest did: ``status`` (its exit status),
/// ``stdout`` and ``stderr`` (bytes).
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct ExecResult {
    /// The exit status.
    #[pyo3(get)]
    status: i32,
    /// What it wrote on stdout.
    #[pyo3(get)]
    stdout: Vec<u8>,
    /// What it wrote on stderr.
    #[pyo3(get)]
    stderr: Vec<u8>,
}

#[pymethods]
impl ExecResult {
    fn __repr__(&self) -> String {
        format!(
            "<ExecResult status={} stdout={} bytes stderr={} bytes>",
            self.status,
            self.stdout.len(),
            self.stderr.len()
        )
    }
}

/// Run ``command`` (a list of words, passed as they are) in the running
/// guest of ``host`` of ``project`` (an ``mln.Project`` or a project name),
/// through its agent: no network, no root. Waits at most ``timeout``
/// seconds, without the GIL. Raises ``mln.BackendError`` when it cannot
/// run; a command that fails is an ``ExecResult`` with its status.
#[pyfunction]
#[pyo3(signature = (project, host, command, *, state_dir=None, timeout=60.0))]
pub fn exec(
    py: Python<'_>,
    project: Bound<'_, PyAny>,
    host: &str,
    command: Vec<String>,
    state_dir: Option<PathBuf>,
    timeout: f64,
) -> PyResult<ExecResult> {
    let name = match target(py, &project, true)? {
        Target::Project(p) => p.model().name.clone(),
        Target::Name(n) => n,
    };
    let store = store(state_dir, &name)?;
    let spec = store
        .load()
        .map_err(|e| StateError::new_err(e.to_string()))?
        .and_then(|s| s.hosts.get(host).map(|r| r.spec.clone()))
        .ok_or_else(|| PlanError::new_err(format!("project {name} has no host {host}")))?;
    let local =
        LocalBackends::new(store.dir()).map_err(|e| BackendError::new_err(e.to_string()))?;
    let backends = cluster(&name, &store, local, None)?;
    let timeout = std::time::Duration::from_secs_f64(timeout.max(0.0));
    let domain = domain_name(&name, host);
    let out = py
        .detach(|| {
            use mln_lang::apply::Backends;
            backends
                .hypervisor(spec.service_host.as_deref(), spec.platform)
                .and_then(|hv| hv.exec(&domain, &command, timeout))
        })
        .map_err(|e| BackendError::new_err(format!("{host}: {e}")))?;
    Ok(ExecResult {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Names of the projects recorded under ``state_dir`` (the default root
/// when ``None``).
#[pyfunction]
#[pyo3(signature = (state_dir=None))]
pub fn projects(py: Python<'_>, state_dir: Option<PathBuf>) -> PyResult<Bound<'_, PyList>> {
    let root = match state_dir {
        Some(root) => root,
        None => StateStore::default_root().map_err(|e| StateError::new_err(e.to_string()))?,
    };
    let names = StateStore::list(&root).map_err(|e| StateError::new_err(e.to_string()))?;
    PyList::new(py, names)
}
