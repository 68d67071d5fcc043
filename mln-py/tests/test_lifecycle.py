"""Bringing a one-host project up and down with real User-Mode Linux
guests, through Python.

Needs `linux.uml`, `vde_switch`, a static busybox and e2fsprogs (Debian:
user-mode-linux, vde2, busybox-static, e2fsprogs). Without them the UML
tests are skipped, loudly; under CI (CI set) they fail instead."""

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

import mln

# The kernel guests boot with: MLN_UML_KERNEL (set by .ci/test to one that
# boots on the host) or Debian's.
KERNEL = os.environ.get("MLN_UML_KERNEL") or "/usr/bin/linux.uml"
NEEDED = [KERNEL, "vde_switch", "mkfs.ext4", "debugfs"]
MISSING = [n for n in NEEDED if shutil.which(n) is None and not os.path.exists(n)]


def require_uml() -> None:
    if MISSING:
        message = f"UML test needs {', '.join(MISSING)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


SOLO = """global { project pysolo }
switch lan {
}
host solo {
    memory 48M
    network eth0 {
        switch lan
        address 10.77.0.1
        netmask 255.255.255.0
    }
    startup {
        echo hello-from-$hostname
    }
}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> mln.Template:
    require_uml()
    return mln.Template.busybox(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A state root; whatever a test leaves running is removed after it.

    Short and directly under /tmp: switch sockets made inside it must fit
    a unix socket path."""
    root = Path(tempfile.mkdtemp(prefix="mlnpy.", dir="/tmp"))
    yield root
    for name in mln.projects(root):
        try:
            mln.remove(name, state_dir=root)
        except mln.MlnError as err:  # report, but keep cleaning
            print(f"cleanup of {name}: {err}")
    shutil.rmtree(root, ignore_errors=True)


def wait_for(path: Path, text: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    seen = ""
    while time.monotonic() < deadline:
        if path.exists():
            seen = path.read_text(errors="replace")
            if text in seen:
                return seen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {path} after {seconds}s:\n{seen[-2000:]}")


Event = Tuple[str, Optional[str], Optional[str]]


def test_up_status_stop_remove_a_uml_guest(template: mln.Template, state_dir: Path) -> None:
    project = mln.parse(SOLO, "solo.mln")
    events: List[Event] = []
    threads = set()

    def progress(event: str, action: Optional[mln.Action], message: Optional[str]) -> None:
        threads.add(threading.get_ident())
        events.append((event, action.description if action else None, message))

    # Another Python thread keeps running while the guest comes up: the
    # GIL is released.
    ticks: List[float] = []
    done = threading.Event()

    def tick() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        outcome = mln.up(project, state_dir=state_dir, template=template, progress=progress)
    finally:
        done.set()
        ticker.join()
    assert outcome.succeeded and not outcome.dry_run
    assert sorted(outcome.done) == list(range(len(outcome.plan.actions)))
    assert outcome.failed == [] and outcome.not_run == []
    assert len(ticks) > 5
    assert threading.get_ident() not in threads or len(threads) > 1

    started = [d for e, d, _ in events if e == "started" and d]
    finished = [d for e, d, _ in events if e == "finished" and d]
    assert sorted(started) == sorted(finished) == sorted(
        a.description for a in outcome.plan.actions
    )
    assert "start solo" in finished and "create switch lan" in finished

    status = mln.status(project, state_dir=state_dir)
    solo = status.host("solo")
    assert solo is not None
    assert (solo.state, solo.platform, solo.memory) == ("running", "uml", 48 << 20)
    assert solo.id is not None and solo.id > 0
    assert status.switches == {"lan": "up"}
    assert mln.projects(state_dir) == ["pysolo"]

    # The guest really booted and ran its startup lines.
    log = Path(mln.console_log(project, "solo", state_dir=state_dir))
    wait_for(log, "hello-from-solo", 90)

    # Up again (`start`, as the command line calls it): nothing to do.
    again = mln.start(project, state_dir=state_dir, template=template)
    assert len(again.plan) == 0

    stopped = mln.stop("pysolo", state_dir=state_dir)
    assert stopped.succeeded
    after_stop = mln.status("pysolo", state_dir=state_dir)
    assert after_stop.hosts[0].state == "built"

    removed = mln.remove(project, state_dir=state_dir)
    assert removed.succeeded
    assert mln.projects(state_dir) == []


def test_dry_run_plans_and_changes_nothing(template: mln.Template, state_dir: Path) -> None:
    project = mln.parse(SOLO, "solo.mln")
    outcome = mln.up(project, state_dir=state_dir, template=template, dry_run=True)
    assert outcome.dry_run and outcome.succeeded
    assert {h.kind for h in outcome.plan.hosts} == {"create"}
    assert outcome.done == []
    assert mln.projects(state_dir) == []


def test_failed_actions_raise_apply_error_with_the_outcome(tmp_path: Path) -> None:
    # No template: preparing the disk fails before any guest or switch.
    project = mln.parse("global { project pynotemplate }\nhost lonely {\n}\n", check=False)
    with pytest.raises(mln.ApplyError) as info:
        mln.up(project, state_dir=tmp_path)
    outcome = info.value.outcome
    assert not outcome.succeeded
    ((_, description, error),) = outcome.failed
    assert description == "prepare disk of lonely"
    assert "template" in error
    assert "prepare disk of lonely" in str(info.value)
    assert str(info.value).count("prepare disk of lonely") == 1, str(info.value)
    assert str(info.value).startswith("1 of ")
    mln.remove(project, state_dir=tmp_path)
    assert mln.projects(tmp_path) == []


def test_a_guest_that_crashes_at_boot_raises_apply_error_naming_it(
    template: mln.Template, state_dir: Path
) -> None:
    # A real kernel told to run an init that is not there panics at boot.
    crashy = SOLO.replace("project pysolo", "project pycrash").replace(
        "memory 48M", "memory 48M\n    extra init=/nonexistent"
    )
    project = mln.parse(crashy, "crash.mln")
    with pytest.raises(mln.ApplyError) as info:
        mln.up(project, state_dir=state_dir, template=template)
    ((_, description, error),) = info.value.outcome.failed
    assert description == "start solo"
    assert "solo crashed while booting" in error
    assert "Kernel panic" in error
    assert mln.status(project, state_dir=state_dir).host("solo").state == "crashed"  # type: ignore[union-attr]
    assert mln.remove(project, state_dir=state_dir).succeeded


def test_stopping_an_unknown_project_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(mln.PlanError, match="nothing recorded"):
        mln.stop("neverseen", state_dir=tmp_path)


def test_progress_callback_errors_reach_the_caller(tmp_path: Path) -> None:
    project = mln.parse("global { project pyboom }\nhost h {\n}\n", check=False)

    def progress(event: str, action: Optional[mln.Action], message: Optional[str]) -> None:
        raise RuntimeError("callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        mln.build(project, state_dir=tmp_path, progress=progress)
    mln.remove(project, state_dir=tmp_path)


def test_lifecycle_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        mln.up(42, state_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(mln.ProjectError):
        mln.up(tmp_path / "missing.mln", state_dir=tmp_path)


def test_upgrade_adds_a_host_next_to_a_running_one(
    template: mln.Template, state_dir: Path
) -> None:
    v1 = mln.parse(SOLO, "solo.mln")
    duo = SOLO.replace("10.77.0.1", "10.77.0.2").replace("host solo", "host duo")
    v2 = mln.parse(SOLO + duo.split("}\n", 2)[2], "solo.mln")
    assert [h.name for h in v2.hosts] == ["solo", "duo"]

    mln.up(v1, state_dir=state_dir, template=template)
    wait_for(Path(mln.console_log(v1, "solo", state_dir=state_dir)), "hello-from-solo", 90)
    solo_pid = mln.status(v1, state_dir=state_dir).hosts[0].id

    preview = mln.upgrade(v2, state_dir=state_dir, template=template, dry_run=True)
    assert [(h.host, h.kind) for h in preview.plan.hosts] == [("duo", "create")]
    assert [(h.host, h.kind) for h in mln.plan(v1, v2).hosts] == [("duo", "create")]

    outcome = mln.upgrade(v2, state_dir=state_dir, template=template)
    assert outcome.succeeded
    wait_for(Path(mln.console_log(v2, "duo", state_dir=state_dir)), "hello-from-duo", 90)
    status = mln.status("pysolo", state_dir=state_dir)
    assert {h.host: h.state for h in status.hosts} == {"solo": "running", "duo": "running"}
    solo = status.host("solo")
    assert solo is not None and solo.id == solo_pid  # left alone

    assert mln.remove(v2, state_dir=state_dir).succeeded
    assert mln.projects(state_dir) == []


def test_exec_runs_a_command_in_a_guest(template: mln.Template, state_dir: Path) -> None:
    project = mln.parse(SOLO, "solo.mln")
    mln.up(project, state_dir=state_dir, template=template)
    done = mln.exec(project, "solo", ["sh", "-c", "hostname; echo oops >&2; exit 4"],
                    state_dir=state_dir)
    assert done.status == 4
    assert done.stdout == b"solo\n"
    assert done.stderr == b"oops\n"
    ok = mln.exec("pysolo", "solo", ["cat", "/proc/sys/kernel/hostname"], state_dir=state_dir)
    assert (ok.status, ok.stdout) == (0, b"solo\n")
    with pytest.raises(mln.BackendError):
        mln.exec("pysolo", "solo", ["true"], state_dir=state_dir, timeout=0.0)
    assert mln.remove(project, state_dir=state_dir).succeeded


KVM_SOLO = SOLO.replace("global { project pysolo }", "global { project pykvm }").replace(
    "    memory 48M\n", "    kvm\n    memory 128M\n"
)


def test_up_exec_status_remove_a_kvm_guest(template: mln.Template, state_dir: Path) -> None:
    """A `kvm` host runs as a QEMU guest (KVM where it works, TCG
    elsewhere), through the same calls as a UML one."""
    if shutil.which("qemu-system-x86_64") is None:
        message = "KVM test needs qemu-system-x86_64"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    project = mln.parse(KVM_SOLO, "kvm.mln")
    host = project.host("solo")
    assert host is not None and host.platform == "kvm"
    outcome = mln.up(project, state_dir=state_dir, template=template)
    assert outcome.succeeded
    solo = mln.status(project, state_dir=state_dir).host("solo")
    assert solo is not None
    assert (solo.state, solo.platform) == ("running", "kvm")
    assert solo.acceleration in ("KVM", "TCG")
    assert solo.id is not None and solo.id > 0  # the QEMU process
    done = mln.exec(project, "solo", ["cat", "/proc/sys/kernel/hostname"], state_dir=state_dir)
    assert (done.status, done.stdout) == (0, b"solo\n")
    log = Path(mln.console_log(project, "solo", state_dir=state_dir))
    wait_for(log, "hello-from-solo", 120)
    assert mln.stop("pykvm", state_dir=state_dir).succeeded
    assert mln.status("pykvm", state_dir=state_dir).hosts[0].state == "built"
    assert mln.remove(project, state_dir=state_dir).succeeded
    assert mln.projects(state_dir) == []
    assert not Path(f"/proc/{solo.id}").exists(), "QEMU still runs"
