"""Reading the sample projects into Python objects."""

from pathlib import Path

import pytest

import mln
from conftest import PROJECTS

SAMPLES = sorted(PROJECTS.glob("*.mln")) + sorted(PROJECTS.glob("*/*.mln"))
MIB = 1024 * 1024


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(PROJECTS)))
def test_every_sample_loads_clean(path: Path) -> None:
    project = mln.load(path)
    assert project.name
    assert project.hosts
    assert project.file == str(path)
    assert [d for d in project.check() if d.is_error] == []


def test_load_accepts_str_and_pathlike() -> None:
    assert mln.load(str(PROJECTS / "lab.mln")) == mln.load(PROJECTS / "lab.mln")


def test_lab_hosts_switches_and_interfaces() -> None:
    lab = mln.load(PROJECTS / "lab.mln")
    assert lab.name == "lab"
    assert [h.name for h in lab.hosts] == ["router", "alice", "bob"]
    assert [s.name for s in lab.switches] == ["left", "right"]
    assert lab.superclasses == ["pc"]

    router = lab.host("router")
    assert router is not None
    assert router.memory == 64 * MIB
    assert router.vcpus == 1
    assert router.platform == "uml"
    assert router.service_host is None
    assert router.superclasses == ["pc"]
    assert router.nameserver == "192.168.1.1"
    assert router.startup == ["echo 1 > /proc/sys/net/ipv4/ip_forward"]
    assert [i.name for i in router.interfaces] == ["eth0", "eth1"]

    eth1 = router.interface("eth1")
    assert eth1 is not None
    assert eth1.switch == "right"
    assert eth1.address == "192.168.2.1"
    assert eth1.netmask == "255.255.255.0"
    assert eth1.gateway is None
    assert eth1.mac is None

    alice_eth0 = lab.hosts[1].interfaces[0]
    assert alice_eth0.gateway == "192.168.1.1"

    left = lab.switch("left")
    assert left is not None
    assert left.members == [("router", "eth0"), ("alice", "eth0")]
    assert lab.host("nobody") is None
    assert lab.switch("nowhere") is None


def test_superclass_chain_and_variables_are_resolved() -> None:
    farm = mln.load(PROJECTS / "superclass.mln")
    assert farm.variables == {"domain": "example.org"}
    www1 = farm.host("www1")
    assert www1 is not None
    assert www1.superclasses == ["web", "base"]
    assert www1.memory == 192 * MIB
    assert www1.template == "debian-12.ext4"
    assert any("www1.example.org" in line for line in www1.startup)


def test_autoenum_generates_hosts() -> None:
    room = mln.load(PROJECTS / "autoenum.mln")
    assert len(room.hosts) == 12
    addresses = [h.interfaces[0].address for h in room.hosts]
    assert len(set(addresses)) == 12
    assert all(h.memory == 64 * MIB for h in room.hosts)


def test_service_hosts_and_platform() -> None:
    spread = mln.load(PROJECTS / "multi-server.mln")
    servers = {h.name: h.service_host for h in spread.hosts}
    assert servers == {"db": "server-a", "app1": "server-a", "app2": "server-b"}
    assert {h.platform for h in spread.hosts} == {"xen"}
    db = spread.host("db")
    assert db is not None and db.memory == 512 * MIB


def test_parse_text_with_and_without_filename() -> None:
    text = "global { project p }\nswitch lan {\n}\nhost a { network eth0 { switch lan } }\n"
    p = mln.parse(text)
    assert p.file == "<string>"
    assert mln.parse(text, "p.mln").file == "p.mln"
    assert p.hosts[0].interfaces[0].switch == "lan"
    assert p.hosts[0].memory == 128 * MIB  # the default


def test_repr_names_the_object() -> None:
    lab = mln.load(PROJECTS / "lab.mln")
    assert repr(lab) == "<Project lab hosts=3 switches=2>"
    assert repr(lab.hosts[0]).startswith("<Host router")
    assert repr(lab.switches[0]).startswith("<Switch left")


def test_module_exports() -> None:
    assert isinstance(mln.__version__, str)
    assert issubclass(mln.ProjectError, mln.MlnError)
    assert mln.ParseError is mln.ProjectError
    for name in ("BackendError", "StateError", "PlanError"):
        assert issubclass(getattr(mln, name), mln.MlnError)
