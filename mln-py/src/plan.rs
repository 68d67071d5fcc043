//! `mln.plan` and `mln.Plan`: the planner's answer, as Python objects.

use mln_lang::plan as lang;
use mln_lang::plan::{DesiredProject, Goal, HostChangeKind, ObjectRef, Observed, PlanOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert;
use crate::project::Project;

/// The goal called `name`.
pub(crate) fn goal(name: &str) -> PyResult<Goal> {
    name.parse()
        .map_err(|e: lang::UnknownGoal| PyValueError::new_err(e.to_string()))
}

/// What it takes to go from ``old`` (running, as if brought up completely;
/// ``None`` for nothing yet) to ``new``.
///
/// ``goal`` is ``"build"``, ``"up"``, ``"stop"``, ``"remove"`` or
/// ``"upgrade"``; the default is ``"up"`` without ``old`` and
/// ``"upgrade"`` with it. ``hosts`` restricts the plan to those hosts.
/// Planning is pure: nothing is touched.
#[pyfunction]
#[pyo3(signature = (old, new, *, goal=None, hosts=None))]
pub fn plan(
    py: Python<'_>,
    old: Option<PyRef<'_, Project>>,
    new: PyRef<'_, Project>,
    goal: Option<&str>,
    hosts: Option<Vec<String>>,
) -> PyResult<Plan> {
    let goal = match goal {
        Some(name) => self::goal(name)?,
        None if old.is_some() => Goal::Upgrade,
        None => Goal::Up,
    };
    let mut options = PlanOptions::new(goal);
    if let Some(hosts) = hosts {
        options = options.only(hosts);
    }
    let desired = DesiredProject::from_project(new.model());
    let before = old.map(|o| DesiredProject::from_project(o.model()));
    let result = py.detach(|| match &before {
        Some(old) => lang::diff(old, &desired, &options),
        None => Ok(lang::plan(&desired, None, &Observed::default(), &options)),
    });
    result
        .map(Plan)
        .map_err(|e| crate::errors::PlanError::new_err(e.to_string()))
}

/// A plan: the actions that take a project from what it is to what is
/// wanted, and per host and switch what changes.
///
/// ``str(plan)`` is the diff (like ``terraform plan``); ``len(plan)`` the
/// number of actions.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct Plan(pub(crate) lang::Plan);

#[pymethods]
impl Plan {
    /// The project's name.
    #[getter]
    fn project(&self) -> &str {
        &self.0.project
    }

    /// ``"build"``, ``"up"``, ``"stop"``, ``"remove"`` or ``"upgrade"``.
    #[getter]
    fn goal(&self) -> &'static str {
        self.0.goal.as_str()
    }

    /// Every action, in an order that respects their dependencies.
    #[getter]
    fn actions(&self) -> Vec<Action> {
        self.0.actions.iter().cloned().map(Action).collect()
    }

    /// What happens to each host that changes.
    #[getter]
    fn hosts(&self) -> Vec<HostChange> {
        self.0.hosts.iter().cloned().map(HostChange).collect()
    }

    /// What happens to each switch that changes.
    #[getter]
    fn switches(&self) -> Vec<SwitchChange> {
        self.0.switches.iter().cloned().map(SwitchChange).collect()
    }

    /// What happens to ``host``, or ``None`` when it is left alone.
    fn host(&self, host: &str) -> Option<HostChange> {
        self.0.host(host).cloned().map(HostChange)
    }

    /// How many hosts and switches each kind of change touches: a dict
    /// with ``create``, ``update``, ``rebuild``, ``moved``, ``destroy`` and
    /// ``other``.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0.counts())
    }

    /// The actions, one per line, with what each waits for.
    fn render_actions(&self) -> String {
        self.0.render_actions()
    }

    /// The plan as plain data (the JSON of ``mln plan --format json``).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    /// The plan as JSON text; indented by ``indent`` spaces when given.
    #[pyo3(signature = (indent=None))]
    fn to_json(&self, indent: Option<usize>) -> PyResult<String> {
        convert::to_json(&self.0, indent)
    }

    fn __len__(&self) -> usize {
        self.0.actions.len()
    }

    fn __str__(&self) -> String {
        self.0.render_diff()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Plan {} {} actions={}>",
            self.0.project,
            self.0.goal.as_str(),
            self.0.actions.len()
        )
    }
}

/// One step of a plan.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct Action(pub(crate) lang::Action);

fn object_name(o: &ObjectRef) -> String {
    match o {
        ObjectRef::Host(h) => format!("host:{h}"),
        ObjectRef::Switch(s) => format!("switch:{s}"),
        ObjectRef::Project => "project".to_string(),
        ObjectRef::Stale { server, host } => format!("stale:{server}/{host}"),
    }
}

#[pymethods]
impl Action {
    /// Its position in ``Plan.actions``.
    #[getter]
    fn id(&self) -> usize {
        self.0.id.0
    }

    /// What it does: ``"create_switch"``, ``"prepare_disk"``,
    /// ``"set_memory"``, ``"move"``, ...
    #[getter]
    fn op(&self) -> PyResult<String> {
        let value =
            serde_json::to_value(&self.0.op).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(value
            .get("op")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string())
    }

    /// In words: ``"set memory of api to 256M"``.
    #[getter]
    fn description(&self) -> String {
        self.0.op.describe()
    }

    /// The host it is about, if any.
    #[getter]
    fn host(&self) -> Option<String> {
        self.0.op.host().map(str::to_string)
    }

    /// The service host it runs on; ``None`` for the local machine.
    #[getter]
    fn service_host(&self) -> Option<String> {
        self.0.service_host.clone()
    }

    /// Every object it reads or changes: ``"host:NAME"``,
    /// ``"switch:NAME"``, ``"project"``, or ``"stale:SERVER/HOST"`` (what a
    /// server given up for lost still keeps of a host).
    #[getter]
    fn touches(&self) -> Vec<String> {
        self.0.touches.iter().map(object_name).collect()
    }

    /// Ids of the actions that must finish first.
    #[getter]
    fn after(&self) -> Vec<usize> {
        self.0.after.iter().map(|a| a.0).collect()
    }

    /// The action as plain data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    fn __str__(&self) -> String {
        self.0.op.describe()
    }

    fn __repr__(&self) -> String {
        format!("<Action {} {}>", self.0.id.0, self.0.op.describe())
    }
}

/// What happens to one host.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct HostChange(lang::HostChange);

#[pymethods]
impl HostChange {
    /// The host.
    #[getter]
    fn host(&self) -> &str {
        &self.0.host
    }

    /// ``"create"``, ``"update"``, ``"rebuild"``, ``"move"``,
    /// ``"destroy"``, ``"start"``, ``"stop"`` or ``"repair"``.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.0.kind {
            HostChangeKind::Create => "create",
            HostChangeKind::Update(_) => "update",
            HostChangeKind::Rebuild => "rebuild",
            HostChangeKind::Move => "move",
            HostChangeKind::Destroy => "destroy",
            HostChangeKind::Start => "start",
            HostChangeKind::Stop => "stop",
            HostChangeKind::Repair => "repair",
        }
    }

    /// For an update, the strongest class of its changes (``"live"``,
    /// ``"restart"``, ``"rebuild"``, ``"move"``); otherwise ``None``.
    #[getter]
    fn change_class(&self) -> Option<&'static str> {
        match self.0.kind {
            HostChangeKind::Update(c) => Some(c.as_str()),
            _ => None,
        }
    }

    /// Its service host now (``None``: local).
    #[getter]
    fn old_service_host(&self) -> Option<String> {
        self.0.from.clone()
    }

    /// Its service host after the plan (``None``: local).
    #[getter]
    fn new_service_host(&self) -> Option<String> {
        self.0.to.clone()
    }

    /// Every changed attribute.
    #[getter]
    fn changes(&self) -> Vec<AttrChange> {
        self.0.changes.iter().cloned().map(AttrChange).collect()
    }

    /// For a rebuild or move: ``(switch, [other hosts on it])``.
    #[getter]
    fn links(&self) -> Vec<(String, Vec<String>)> {
        self.0
            .links
            .iter()
            .map(|l| (l.switch.clone(), l.peers.clone()))
            .collect()
    }

    /// The change as plain data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    fn __repr__(&self) -> String {
        format!("<HostChange {} {}>", self.0.host, self.kind())
    }
}

/// One changed attribute of a host.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct AttrChange(lang::AttrChange);

#[pymethods]
impl AttrChange {
    /// The attribute (``"memory"``, ``"eth0.switch"``, ``"guest"``, ...).
    #[getter]
    fn attr(&self) -> &str {
        &self.0.attr
    }

    /// Its recorded value, in words.
    #[getter(old)]
    fn old_value(&self) -> &str {
        &self.0.from
    }

    /// Its desired value, in words.
    #[getter(new)]
    fn new_value(&self) -> &str {
        &self.0.to
    }

    /// ``"live"``, ``"restart"``, ``"rebuild"`` or ``"move"``.
    #[getter]
    fn change_class(&self) -> &'static str {
        self.0.class.as_str()
    }

    fn __repr__(&self) -> String {
        format!(
            "<AttrChange {} {} -> {} ({})>",
            self.0.attr,
            self.0.from,
            self.0.to,
            self.0.class.as_str()
        )
    }
}

/// What happens to one switch.
#[pyclass(frozen, module = "mln")]
#[derive(Debug, Clone)]
pub struct SwitchChange(lang::SwitchChange);

#[pymethods]
impl SwitchChange {
    /// The switch.
    #[getter]
    fn switch(&self) -> &str {
        &self.0.switch
    }

    /// ``"create"``, ``"recreate"`` or ``"remove"``.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.0.kind {
            lang::SwitchChangeKind::Create => "create",
            lang::SwitchChangeKind::Recreate => "recreate",
            lang::SwitchChangeKind::Remove => "remove",
        }
    }

    /// Why, in words.
    #[getter]
    fn reason(&self) -> &str {
        &self.0.reason
    }

    fn __repr__(&self) -> String {
        format!("<SwitchChange {} {}>", self.0.switch, self.kind())
    }
}
