"""Build networks of virtual machines from MLN project files.

``mln.load(path)`` or ``mln.parse(text)`` give a :class:`Project`;
``project.check()`` its diagnostics; ``mln.plan(old, new)`` what it takes
to go from one version of a project to the next.
"""

from os import PathLike
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Tuple, Union, final

__all__ = [
    "Action",
    "ApplyError",
    "AttrChange",
    "BackendError",
    "Diagnostic",
    "ExecResult",
    "Host",
    "HostChange",
    "HostStatus",
    "Interface",
    "MlnError",
    "Outcome",
    "ParseError",
    "Plan",
    "PlanError",
    "Project",
    "ProjectError",
    "StateError",
    "Status",
    "Switch",
    "SwitchChange",
    "Template",
    "__version__",
    "build",
    "console_log",
    "exec",
    "load",
    "parse",
    "plan",
    "projects",
    "remove",
    "start",
    "status",
    "stop",
    "up",
    "upgrade",
]

__version__: str

_Path = Union[str, "PathLike[str]"]
_Platform = Literal["uml", "xen", "hvm", "kvm"]
_Severity = Literal["error", "warning"]

class MlnError(Exception):
    """Base class of every error the mln module raises."""

class ProjectError(MlnError):
    """A project that cannot be read, resolved or checked.

    ``str(err)`` is every diagnostic rendered rustc-style, with the source
    lines.
    """

    diagnostics: List[Diagnostic]

ParseError = ProjectError

class PlanError(MlnError):
    """A plan that cannot be made or applied as asked."""

class ApplyError(MlnError):
    """Some actions of a plan failed; ``outcome`` says which and why."""

    outcome: Outcome

class StateError(MlnError):
    """The state store cannot be read, written or locked."""

class BackendError(MlnError):
    """A hypervisor, switch or disk operation failed."""

@final
class Diagnostic:
    """One error or warning about a project.

    ``file``, ``line`` and ``column`` (1-based, columns in characters) are
    ``None`` for problems about the whole project.
    """

    @property
    def code(self) -> str:
        """The stable code, e.g. ``"E0004"``."""
    @property
    def severity(self) -> _Severity: ...
    @property
    def title(self) -> str:
        """The code's short title, e.g. ``"unknown switch"``."""
    @property
    def message(self) -> str: ...
    @property
    def file(self) -> Optional[str]: ...
    @property
    def line(self) -> Optional[int]: ...
    @property
    def column(self) -> Optional[int]: ...
    @property
    def end_line(self) -> Optional[int]: ...
    @property
    def end_column(self) -> Optional[int]: ...
    @property
    def help(self) -> Optional[str]:
        """A fix, when one is obvious ("did you mean `lan`?")."""
    @property
    def is_error(self) -> bool: ...
    def to_dict(self) -> Dict[str, Any]: ...

@final
class Interface:
    """One network interface of a host (``network eth0 { ... }``)."""

    @property
    def name(self) -> str: ...
    @property
    def switch(self) -> Optional[str]: ...
    @property
    def address(self) -> Optional[str]:
        """``"10.0.0.1"``, ``"10.0.0.1/24"``, ``"dhcp"``, or ``None``."""
    @property
    def netmask(self) -> Optional[str]: ...
    @property
    def broadcast(self) -> Optional[str]: ...
    @property
    def gateway(self) -> Optional[str]: ...
    @property
    def mac(self) -> Optional[str]:
        """A fixed MAC address; ``None`` for a generated, stable one."""
    @property
    def bridge(self) -> Optional[str]: ...
    def to_dict(self) -> Dict[str, Any]: ...

@final
class Host:
    """One virtual machine, everything inherited merged in. Sizes are bytes."""

    @property
    def name(self) -> str: ...
    @property
    def superclasses(self) -> List[str]:
        """The superclass chain, nearest first."""
    @property
    def platform(self) -> _Platform: ...
    @property
    def service_host(self) -> Optional[str]:
        """The server that runs it; ``None`` for the local machine."""
    @property
    def memory(self) -> int: ...
    @property
    def vcpus(self) -> int: ...
    @property
    def template(self) -> Optional[str]: ...
    @property
    def size(self) -> Optional[int]: ...
    @property
    def free_space(self) -> Optional[int]: ...
    @property
    def swap(self) -> Optional[int]: ...
    @property
    def kernel(self) -> Optional[str]: ...
    @property
    def ramdisk(self) -> Optional[str]: ...
    @property
    def extra(self) -> Optional[str]: ...
    @property
    def boot_order(self) -> int: ...
    @property
    def term(self) -> Optional[Literal["screen", "xterm", "none"]]: ...
    @property
    def nameserver(self) -> Optional[str]: ...
    @property
    def startup(self) -> List[str]: ...
    @property
    def shutdown(self) -> List[str]: ...
    @property
    def modules(self) -> List[str]: ...
    @property
    def sshkey(self) -> List[str]: ...
    @property
    def interfaces(self) -> List[Interface]: ...
    @property
    def variables(self) -> Dict[str, str]: ...
    @property
    def unknown(self) -> Dict[str, str]: ...
    def interface(self, name: str) -> Optional[Interface]: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self, indent: Optional[int] = None) -> str: ...

@final
class Switch:
    """A project switch (``switch NAME { ... }``)."""

    @property
    def name(self) -> str: ...
    @property
    def service_host(self) -> Optional[str]: ...
    @property
    def hub(self) -> bool: ...
    @property
    def bridge(self) -> Optional[str]: ...
    @property
    def socket(self) -> Optional[str]: ...
    @property
    def tap(self) -> Optional[str]: ...
    @property
    def members(self) -> List[Tuple[str, str]]:
        """The ``(host, interface)`` pairs plugged into it."""
    def to_dict(self) -> Dict[str, Any]: ...

@final
class Project:
    """A resolved MLN project. Equal to another when their models are."""

    @property
    def name(self) -> str: ...
    @property
    def hosts(self) -> List[Host]: ...
    @property
    def switches(self) -> List[Switch]: ...
    @property
    def variables(self) -> Dict[str, str]: ...
    @property
    def superclasses(self) -> List[str]: ...
    @property
    def file(self) -> Optional[str]:
        """The file it was read from; ``None`` for a project made from data."""
    def host(self, name: str) -> Optional[Host]: ...
    def switch(self, name: str) -> Optional[Switch]: ...
    def check(self, capacity: Optional[Mapping[str, int]] = None) -> List[Diagnostic]:
        """Every error and warning, in source order.

        ``capacity`` (bytes of memory per service host, ``"localhost"`` for
        the local machine) adds the plan-time memory check (``E0016``).
        """
    def to_mln(self) -> str:
        """Canonical MLN text; parses back to an equal project."""
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self, indent: Optional[int] = None) -> str: ...
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Project: ...
    @classmethod
    def from_json(cls, text: str) -> Project: ...

def parse(text: str, filename: Optional[_Path] = None, *, check: bool = True) -> Project:
    """Parse, resolve and (unless ``check=False``) check MLN text.

    Raises :class:`ProjectError` on errors.
    """

def load(path: _Path, *, check: bool = True) -> Project:
    """Read, resolve and (unless ``check=False``) check a project file.

    Raises :class:`ProjectError` on errors.
    """

_Goal = Literal["build", "up", "stop", "remove", "upgrade"]
_ChangeClass = Literal["live", "restart", "rebuild", "move"]

@final
class Action:
    """One step of a plan."""

    @property
    def id(self) -> int:
        """Its position in ``Plan.actions``."""
    @property
    def op(self) -> str:
        """``"create_switch"``, ``"prepare_disk"``, ``"set_memory"``, ``"move"``, ..."""
    @property
    def description(self) -> str:
        """In words: ``"set memory of api to 256M"``."""
    @property
    def host(self) -> Optional[str]: ...
    @property
    def service_host(self) -> Optional[str]:
        """Where it runs; ``None`` for the local machine."""
    @property
    def touches(self) -> List[str]:
        """``"host:NAME"``, ``"switch:NAME"``, ``"project"`` or ``"stale:SERVER/HOST"``."""
    @property
    def after(self) -> List[int]:
        """Ids of the actions that must finish first."""
    def to_dict(self) -> Dict[str, Any]: ...

@final
class AttrChange:
    """One changed attribute of a host."""

    @property
    def attr(self) -> str: ...
    @property
    def old(self) -> str: ...
    @property
    def new(self) -> str: ...
    @property
    def change_class(self) -> _ChangeClass: ...

@final
class HostChange:
    """What happens to one host."""

    @property
    def host(self) -> str: ...
    @property
    def kind(
        self,
    ) -> Literal["create", "update", "rebuild", "move", "destroy", "start", "stop", "repair"]: ...
    @property
    def change_class(self) -> Optional[_ChangeClass]:
        """For an update, the strongest class of its changes."""
    @property
    def old_service_host(self) -> Optional[str]: ...
    @property
    def new_service_host(self) -> Optional[str]: ...
    @property
    def changes(self) -> List[AttrChange]: ...
    @property
    def links(self) -> List[Tuple[str, List[str]]]:
        """For a rebuild or move: ``(switch, [other hosts on it])``."""
    def to_dict(self) -> Dict[str, Any]: ...

@final
class SwitchChange:
    """What happens to one switch."""

    @property
    def switch(self) -> str: ...
    @property
    def kind(self) -> Literal["create", "recreate", "remove"]: ...
    @property
    def reason(self) -> str: ...

@final
class Plan:
    """The actions between what a project is and what is wanted.

    ``str(plan)`` is the diff; ``len(plan)`` the number of actions.
    """

    @property
    def project(self) -> str: ...
    @property
    def goal(self) -> _Goal: ...
    @property
    def actions(self) -> List[Action]: ...
    @property
    def hosts(self) -> List[HostChange]: ...
    @property
    def switches(self) -> List[SwitchChange]: ...
    def host(self, host: str) -> Optional[HostChange]: ...
    def counts(self) -> Dict[str, int]:
        """``create``, ``update``, ``rebuild``, ``moved``, ``destroy``, ``other``."""
    def render_actions(self) -> str: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self, indent: Optional[int] = None) -> str: ...
    def __len__(self) -> int: ...

@final
class ExecResult:
    """What a command run in a guest did."""

    @property
    def status(self) -> int: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...

def exec(
    project: Union[Project, str],
    host: str,
    command: List[str],
    *,
    state_dir: Optional[_Path] = None,
    timeout: float = 60.0,
) -> ExecResult:
    """Run ``command`` (words passed as they are) in the running guest of
    ``host``, through its agent: no network, no root. Raises
    ``mln.BackendError`` when it cannot run."""

def plan(
    old: Optional[Project],
    new: Project,
    *,
    goal: Optional[_Goal] = None,
    hosts: Optional[List[str]] = None,
) -> Plan:
    """What it takes to go from ``old`` (as if running; ``None`` for
    nothing yet) to ``new``. Default goal: ``"up"`` without ``old``,
    ``"upgrade"`` with it. Pure: nothing is touched. Raises
    ``mln.PlanError`` when ``old`` and ``new`` are different projects.
    """

@final
class Template:
    """A guest template: an ext4 image hosts' copy-on-write disks are made
    over, and the kernel arguments that boot it."""

    def __new__(cls, image: _Path, cmdline: str = "root=/dev/ubda rw") -> Template: ...
    @staticmethod
    def busybox(out_dir: _Path) -> Template:
        """The busybox template, built into ``out_dir`` (or reused)."""
    @staticmethod
    def debian(out_dir: _Path, suite: str = "bookworm") -> Template:
        """The Debian template (mmdebstrap), built into ``out_dir`` (or
        reused)."""
    @staticmethod
    def inspect(image: _Path) -> Template:
        """An image as it says it boots (its boot marker)."""
    @property
    def image(self) -> Path: ...
    @property
    def cmdline(self) -> str: ...
    @property
    def boot_marker(self) -> Optional[str]: ...

@final
class Outcome:
    """What a lifecycle call did."""

    @property
    def plan(self) -> Plan: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def done(self) -> List[int]:
        """Ids of the actions that finished, in completion order."""
    @property
    def failed(self) -> List[Tuple[int, str, str]]:
        """``(action id, description, error)`` of every failed action."""
    @property
    def not_run(self) -> List[int]: ...
    @property
    def boot_retries(self) -> List[Tuple[str, str]]:
        """``(host, how its first boot ended)`` of every guest that died of
        a fault known to pass while booting and was started once more."""
    def to_dict(self) -> Dict[str, Any]: ...

@final
class HostStatus:
    @property
    def host(self) -> str: ...
    @property
    def service_host(self) -> Optional[str]: ...
    @property
    def platform(self) -> _Platform: ...
    @property
    def state(self) -> str:
        """``"running"``, ``"paused"``, ... or ``"built"``, ``"partial"``, ``"absent"``."""
    @property
    def id(self) -> Optional[int]:
        """The Xen domid or UML pid, while it runs."""
    @property
    def memory(self) -> int: ...
    @property
    def vcpus(self) -> int: ...
    @property
    def acceleration(self) -> Optional[str]:
        """For a QEMU guest, ``"KVM"`` or ``"TCG"``; ``None`` otherwise."""

@final
class Status:
    """Every host and switch of a project with what the backends say."""

    @property
    def project(self) -> str: ...
    @property
    def hosts(self) -> List[HostStatus]: ...
    @property
    def switches(self) -> Dict[str, Literal["up", "down", "absent"]]: ...
    def host(self, host: str) -> Optional[HostStatus]: ...
    def to_dict(self) -> Dict[str, Any]: ...

_ProgressEvent = Literal["started", "finished", "failed", "skipped", "said", "retried", "hook"]
_Progress = Callable[[_ProgressEvent, Optional[Action], Optional[str]], object]
"""``progress(event, action, message)``: called from worker threads while a
run goes on; ``message`` is the error (``"failed"``), the failed action
(``"skipped"``), which way an action went (``"said"``), the guest started
once more after a passing fault and why (``"retried"``) or the hook's output
line (``"hook"``, ``action`` None)."""

def build(
    project: Union[Project, _Path],
    *,
    state_dir: Optional[_Path] = None,
    template: Optional[Template] = None,
    templates: Optional[Mapping[str, Template]] = None,
    hosts: Optional[List[str]] = None,
    parallelism: int = 4,
    wait: bool = False,
    dry_run: bool = False,
    progress: Optional[_Progress] = None,
) -> Outcome:
    """Prepare every host (disks, guest configuration); start nothing.

    ``project`` is a :class:`Project` or the path of a project file. State
    lives under ``state_dir`` (default ``/var/lib/mln`` for root, else
    ``$XDG_STATE_HOME/mln``). ``template`` is the template of hosts without
    ``template``; ``templates`` names the others. ``parallelism`` is how
    many actions run at once on each server (this machine is one). Raises
    :class:`ApplyError` when some actions fail, :class:`StateError`,
    :class:`BackendError` or :class:`PlanError` when the run cannot start.
    The GIL is released while it runs.
    """

def up(
    project: Union[Project, _Path],
    *,
    state_dir: Optional[_Path] = None,
    template: Optional[Template] = None,
    templates: Optional[Mapping[str, Template]] = None,
    hosts: Optional[List[str]] = None,
    parallelism: int = 4,
    wait: bool = False,
    dry_run: bool = False,
    progress: Optional[_Progress] = None,
) -> Outcome:
    """Build what is missing and start every host (see :func:`build`)."""

def start(
    project: Union[Project, _Path],
    *,
    state_dir: Optional[_Path] = None,
    template: Optional[Template] = None,
    templates: Optional[Mapping[str, Template]] = None,
    hosts: Optional[List[str]] = None,
    parallelism: int = 4,
    wait: bool = False,
    dry_run: bool = False,
    progress: Optional[_Progress] = None,
) -> Outcome:
    """``mln start``: the same as :func:`up`."""

def upgrade(
    project: Union[Project, _Path],
    *,
    state_dir: Optional[_Path] = None,
    template: Optional[Template] = None,
    templates: Optional[Mapping[str, Template]] = None,
    hosts: Optional[List[str]] = None,
    parallelism: int = 4,
    wait: bool = False,
    dry_run: bool = False,
    progress: Optional[_Progress] = None,
) -> Outcome:
    """Bring a running project in line with a changed file."""

def stop(
    project: Union[Project, str],
    *,
    state_dir: Optional[_Path] = None,
    template: Optional[Template] = None,
    templates: Optional[Mapping[str, Template]] = None,
    hosts: Optional[List[str]] = None,
    parallelism: int = 4,
    wait: bool = False,
    dry_run: bool = False,
    progress: Optional[_Progress] = None,
) -> Outcome:
    """Stop every running host, keeping disks. ``project`` is a
    :class:`Project` or the name of a recorded project."""

def remove(
    project: Union[Project, str],
    *,
    state_dir: Optional[_Path] = None,
    template: Optional[Template] = None,
    templates: Optional[Mapping[str, Template]] = None,
    hosts: Optional[List[str]] = None,
    parallelism: int = 4,
    wait: bool = False,
    dry_run: bool = False,
    progress: Optional[_Progress] = None,
) -> Outcome:
    """Stop and delete everything the project made."""

def status(project: Union[Project, str], *, state_dir: Optional[_Path] = None) -> Status:
    """Every host and switch of a recorded project with what runs."""

def console_log(
    project: Union[Project, str], host: str, *, state_dir: Optional[_Path] = None
) -> Path:
    """The console log of a UML host on this machine."""

def projects(state_dir: Optional[_Path] = None) -> List[str]:
    """Names of the projects recorded under ``state_dir``."""
