"""Projects to dicts, JSON and MLN text, and back."""

import json
from pathlib import Path

import pytest

import mln
from conftest import PROJECTS

SAMPLES = sorted(PROJECTS.glob("*.mln")) + sorted(PROJECTS.glob("*/*.mln"))
IDS = [str(p.relative_to(PROJECTS)) for p in SAMPLES]


@pytest.mark.parametrize("path", SAMPLES, ids=IDS)
def test_dict_round_trip(path: Path) -> None:
    project = mln.load(path)
    data = project.to_dict()
    assert data["name"] == project.name
    assert [h["name"] for h in data["hosts"]] == [h.name for h in project.hosts]
    again = mln.Project.from_dict(data)
    assert again == project
    assert again.to_dict() == data
    assert again.file is None


@pytest.mark.parametrize("path", SAMPLES, ids=IDS)
def test_json_round_trip(path: Path) -> None:
    project = mln.load(path)
    text = project.to_json()
    assert json.loads(text) == project.to_dict()
    assert mln.Project.from_json(text) == project
    pretty = project.to_json(indent=2)
    assert pretty.startswith('{\n  "name"')
    assert json.loads(pretty) == json.loads(text)


@pytest.mark.parametrize("path", SAMPLES, ids=IDS)
def test_mln_text_round_trip(path: Path) -> None:
    project = mln.load(path)
    assert mln.parse(project.to_mln(), str(path)) == project


def test_dict_field_names_are_the_json_model() -> None:
    lab = mln.load(PROJECTS / "lab.mln")
    router = lab.host("router")
    assert router is not None
    d = router.to_dict()
    assert d["memory"] == 64 * 1024 * 1024
    assert d["written"] == {"memory": "64M"}
    eth0 = d["interfaces"][0]
    assert eth0["address"] == {"static": {"addr": "192.168.1.1", "prefix": None}}
    assert router.interfaces[0].to_dict() == eth0
    assert json.loads(router.to_json()) == d
    switch = lab.switches[0].to_dict()
    assert switch["members"] == [
        {"host": "router", "interface": "eth0"},
        {"host": "alice", "interface": "eth0"},
    ]


def test_edited_dict_makes_a_different_project() -> None:
    lab = mln.load(PROJECTS / "lab.mln")
    data = lab.to_dict()
    data["hosts"][0]["memory"] = 256 * 1024 * 1024
    edited = mln.Project.from_dict(data)
    assert edited != lab
    router = edited.host("router")
    assert router is not None and router.memory == 256 * 1024 * 1024


def test_project_from_data_is_checked_without_places() -> None:
    data = mln.parse("global { project p }\nswitch lan {\n}\n").to_dict()
    data["hosts"] = [
        {
            "name": "a",
            "memory": 1 << 27,
            "vcpus": 1,
            "boot_order": 99,
            "interfaces": [{"name": "eth0", "switch": "lna"}],
        }
    ]
    project = mln.Project.from_dict(data)
    (d,) = [d for d in project.check() if d.code == "E0004"]
    assert d.line is None and d.file is None


def test_bad_data_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        mln.Project.from_dict({"hosts": "not a list"})
    with pytest.raises(ValueError):
        mln.Project.from_json("{")


def test_platforms_are_spelled_as_in_the_model_json() -> None:
    # One spelling per value: the model's JSON, Host.platform and the MLN
    # keyword are the same word (``hvm``, not ``xen_hvm``).
    project = mln.parse(
        "global { project spell }\nhost u { uml }\nhost x { xen; kernel /k }\n"
        "host h { hvm }\nhost k { kvm }\n",
        "spell.mln",
        check=False,
    )
    data = project.to_dict()
    by_name = {h["name"]: h["platform"] for h in data["hosts"]}
    assert by_name == {h.name: h.platform for h in project.hosts}
    assert sorted(by_name.values()) == ["hvm", "kvm", "uml", "xen"]
